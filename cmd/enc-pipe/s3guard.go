package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/spf13/cobra"

	"github.com/enc-pipe/enc-pipe/sinks/s3sink"
)

// The upload guard: a process that outlives enc-pipe if it is killed
// (SIGKILL, the OOM killer) and aborts the multipart uploads it left
// incomplete. enc-pipe starts it, with its own S3 settings, when its first
// multipart upload starts, and tells it through a pipe about every upload
// that starts and ends. When the pipe closes (enc-pipe exited, however it
// exited), the guard aborts the uploads that did not end, then exits.
// It ignores the signals of the terminal: a Ctrl-C is enc-pipe's to handle.

const guardCommand = "s3-upload-guard"

// uploadGuard is the enc-pipe side: an s3sink.Tracker that starts the
// guard on first use.
type uploadGuard struct {
	a       *app
	mu      sync.Mutex
	w       io.WriteCloser
	started bool
}

var _ s3sink.Tracker = (*uploadGuard)(nil)

func (a *app) uploadTracker() s3sink.Tracker {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.s3.guard == nil {
		a.s3.guard = &uploadGuard{a: a}
	}
	return a.s3.guard
}

func (g *uploadGuard) Started(bucket, key, id string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.started {
		g.started = true
		if err := g.start(); err != nil {
			g.a.warnf("cannot start the S3 upload guard (an upload left by a killed run will need a lifecycle rule to go): %v", err)
		}
	}
	g.send("start", bucket, key, id)
}

func (g *uploadGuard) Ended(bucket, key, id string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.send("end", bucket, key, id)
}

func (g *uploadGuard) send(fields ...string) {
	if g.w == nil {
		return
	}
	for i, f := range fields {
		fields[i] = strings.NewReplacer("\\", "\\\\", "\t", "\\t", "\n", "\\n").Replace(f)
	}
	fmt.Fprintln(g.w, strings.Join(fields, "\t"))
}

func (g *uploadGuard) start() error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	args := []string{guardCommand, "--s3-endpoint", g.a.s3.endpoint, "--s3-path-style", g.a.s3.pathStyle, "--s3-region", g.a.s3.region}
	cmd := exec.Command(exe, args...)
	cmd.Stdout, cmd.Stderr = nil, nil
	detach(cmd)
	w, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	// The guard is not waited for: it exits when this process has gone.
	go cmd.Wait()
	g.w = w
	return nil
}

// newGuardCommand is the hidden guard command.
func (a *app) newGuardCommand() *cobra.Command {
	return &cobra.Command{
		Use:    guardCommand,
		Short:  "Abort the S3 uploads that a killed enc-pipe left (started by enc-pipe itself)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			signal.Ignore(syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGPIPE)
			return a.runGuard(a.stdin)
		},
	}
}

type pendingUpload struct{ bucket, key string }

func (a *app) runGuard(in io.Reader) error {
	pending := map[string]pendingUpload{}
	unescape := strings.NewReplacer("\\\\", "\\", "\\t", "\t", "\\n", "\n")
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		if len(f) != 4 {
			continue
		}
		for i := range f {
			f[i] = unescape.Replace(f[i])
		}
		switch f[0] {
		case "start":
			pending[f[3]] = pendingUpload{f[1], f[2]}
		case "end":
			delete(pending, f[3])
		}
	}
	if len(pending) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	client, err := a.s3Client(ctx)
	if err != nil {
		return err
	}
	for id, u := range pending {
		for attempt := range 5 {
			_, err = client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &u.bucket, Key: &u.key, UploadId: &id})
			if err == nil || ctx.Err() != nil {
				break
			}
			time.Sleep(time.Duration(attempt+1) * 200 * time.Millisecond)
		}
	}
	return nil
}
