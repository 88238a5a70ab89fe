//go:build !unix

package main

import (
	"errors"
	"os"
)

// descriptorName reports no descriptor names: they are a Unix notion.
func descriptorName(string) (int, bool) { return 0, false }

func dupDescriptor(int, string) (*os.File, error) { return nil, errors.ErrUnsupported }

// closedDescriptor cannot tell a closed standard stream here.
func closedDescriptor(*os.File) bool { return false }
