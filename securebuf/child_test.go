package securebuf

import (
	"fmt"
	"os"
)

// childEnv selects a child mode when the test binary re-executes itself.
const childEnv = "SECUREBUF_TEST_CHILD"

var childModes = map[string]func() error{}

func runChild(mode string) int {
	fn, ok := childModes[mode]
	if !ok {
		fmt.Fprintf(os.Stderr, "unknown child mode %q\n", mode)
		return 100
	}
	if err := fn(); err != nil {
		fmt.Fprintf(os.Stderr, "child %s: %v\n", mode, err)
		return 1
	}
	return 0
}
