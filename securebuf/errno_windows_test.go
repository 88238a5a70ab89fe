package securebuf

import "golang.org/x/sys/windows"

func enomem() error { return windows.ERROR_NOT_ENOUGH_MEMORY }
