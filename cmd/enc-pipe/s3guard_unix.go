//go:build unix

package main

import (
	"os/exec"
	"syscall"
)

// detach puts the guard in a process group of its own, so that a signal
// sent to enc-pipe's group (Ctrl-C in a terminal) does not reach it.
func detach(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}
