//go:build !linux

package envelope_test

import "testing"

func cpuHasPKU(testing.TB) bool { return false }
