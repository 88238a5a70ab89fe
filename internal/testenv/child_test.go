package testenv_test

import (
	"fmt"
	"os"
	"strconv"
	"testing"

	"github.com/enc-pipe/enc-pipe/internal/testenv"
)

// TestRunChildren starts three children, which report their index, their
// environment and a line written only after the common release.
func TestRunChildren(t *testing.T) {
	if i, ok := testenv.IsChild(); ok {
		testenv.ChildResult("index " + strconv.Itoa(i) + " " + os.Getenv("CHILD_SETTING"))
		testenv.ChildReady()
		testenv.ChildResult("released")
		return
	}
	results := testenv.RunChildren(t, 3, "CHILD_SETTING=x")
	if len(results) != 3 {
		t.Fatalf("%d results", len(results))
	}
	for i, lines := range results {
		want := []string{fmt.Sprintf("index %d x", i), "released"}
		if fmt.Sprint(lines) != fmt.Sprint(want) {
			t.Errorf("child %d reported %q, want %q", i, lines, want)
		}
	}
}
