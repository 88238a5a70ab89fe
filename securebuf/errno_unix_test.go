//go:build linux || darwin || freebsd

package securebuf

import "golang.org/x/sys/unix"

func enomem() error { return unix.ENOMEM }
