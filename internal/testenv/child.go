package testenv

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Child processes for tests that need several processes racing each other
// (for example two writers creating the same key in a shared metastore).
// The parent test calls RunChildren; the same test, run again in each
// child, sees IsChild and does the child's part:
//
//	func TestRace(t *testing.T) {
//		if i, ok := testenv.IsChild(); ok {
//			... prepare ...
//			testenv.ChildReady()   // blocks until every child is ready
//			testenv.ChildResult(...) // report back
//			return
//		}
//		results := testenv.RunChildren(t, 2, "MY_SETTING=x")
//		...
//	}

const (
	childEnv    = "ENCPIPE_TEST_CHILD"
	readyLine   = "ENCPIPE-CHILD-READY"
	resultMark  = "ENCPIPE-CHILD-RESULT "
	releaseLine = "go"
)

// IsChild reports whether this process is a child started by RunChildren,
// and if so its index (0 to n-1).
func IsChild() (int, bool) {
	v := os.Getenv(childEnv)
	if v == "" {
		return 0, false
	}
	i, err := strconv.Atoi(v)
	return i, err == nil
}

// ChildReady tells the parent that this child is ready and blocks until
// the parent releases all children at once.
func ChildReady() {
	fmt.Println(readyLine)
	bufio.NewReader(os.Stdin).ReadString('\n')
}

// ChildResult sends one line (no newlines in it) back to the parent.
func ChildResult(line string) {
	fmt.Println(resultMark + strings.ReplaceAll(line, "\n", " "))
}

// RunChildren re-executes the test binary n times, running only the
// calling top-level test, with env added to each child's environment. It
// waits until every child has called ChildReady, releases them together,
// waits for them to exit (at most 2 minutes), and returns each child's
// ChildResult lines. A child that fails fails the test, with its output.
func RunChildren(t *testing.T, n int, env ...string) [][]string {
	t.Helper()
	if strings.Contains(t.Name(), "/") {
		t.Fatalf("RunChildren must be called from a top-level test, not %s", t.Name())
	}
	type child struct {
		cmd    *exec.Cmd
		stdin  io.WriteCloser
		out    bytes.Buffer // stdout other than the protocol lines
		errOut bytes.Buffer
		ready  chan struct{}
		result []string
		done   chan error
	}
	children := make([]*child, n)
	for i := range children {
		c := &child{ready: make(chan struct{}), done: make(chan error, 1)}
		c.cmd = exec.Command(os.Args[0], "-test.run=^"+regexp.QuoteMeta(t.Name())+"$", "-test.count=1", "-test.timeout=2m")
		c.cmd.Env = append(append(os.Environ(), env...), fmt.Sprintf("%s=%d", childEnv, i))
		c.cmd.Stderr = &c.errOut
		var err error
		if c.stdin, err = c.cmd.StdinPipe(); err != nil {
			t.Fatal(err)
		}
		stdout, err := c.cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := c.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() {
			sc := bufio.NewScanner(stdout)
			sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
			readySeen := false
			for sc.Scan() {
				line := sc.Text()
				switch {
				case line == readyLine && !readySeen:
					readySeen = true
					close(c.ready)
				case strings.HasPrefix(line, resultMark):
					c.result = append(c.result, strings.TrimPrefix(line, resultMark))
				default:
					c.out.WriteString(line + "\n")
				}
			}
			c.done <- c.cmd.Wait()
		}()
		children[i] = c
	}
	// Output is read only after a child's done channel has fired, or
	// after the test has failed and will not read it again concurrently.
	output := func(c *child) string { return c.out.String() + c.errOut.String() }
	t.Cleanup(func() {
		for _, c := range children {
			c.cmd.Process.Kill() // harmless when it has exited
			c.stdin.Close()
		}
	})
	deadline := time.After(2 * time.Minute)
	for i, c := range children {
		select {
		case <-c.ready:
		case err := <-c.done:
			t.Fatalf("child %d exited before it was ready: %v\n%s", i, err, output(c))
		case <-deadline:
			t.Fatalf("child %d not ready after 2 minutes", i)
		}
	}
	for _, c := range children {
		io.WriteString(c.stdin, releaseLine+"\n")
		c.stdin.Close()
	}
	results := make([][]string, n)
	for i, c := range children {
		select {
		case err := <-c.done:
			if err != nil {
				t.Fatalf("child %d failed: %v\n%s", i, err, output(c))
			}
		case <-deadline:
			t.Fatalf("child %d did not finish in 2 minutes", i)
		}
		results[i] = c.result
	}
	return results
}
