package keycache

import (
	"context"
	"errors"
	"sync"
)

type flightKind uint8

const (
	flightLatest flightKind = iota
	flightLoad
	flightRefresh
)

type flightKey struct {
	kind flightKind
	key  Key
}

// group runs at most one load per key at a time; callers that arrive while
// a load runs wait for its result (like x/sync/singleflight, with entry
// reference counting and context-aware waiting).
type group struct {
	mu sync.Mutex
	m  map[flightKey]*flight
}

type flight struct {
	done    chan struct{}
	e       *Entry
	err     error
	waiters int32
}

// do runs fn once for k. Every caller that gets a non-nil entry owns one
// reference to it. A waiter whose own ctx ends stops waiting; a waiter
// whose leader failed only because the leader's ctx ended tries again.
func (g *group) do(ctx context.Context, k flightKey, fn func() (*Entry, error)) (*Entry, error) {
	for {
		g.mu.Lock()
		if g.m == nil {
			g.m = make(map[flightKey]*flight)
		}
		if f, ok := g.m[k]; ok {
			f.waiters++
			g.mu.Unlock()
			select {
			case <-f.done:
				if f.err != nil && isContextErr(f.err) && ctx.Err() == nil {
					continue
				}
				return f.e, f.err
			case <-ctx.Done():
				go func() {
					<-f.done
					if f.e != nil {
						f.e.Release()
					}
				}()
				return nil, ctx.Err()
			}
		}
		f := &flight{done: make(chan struct{})}
		g.m[k] = f
		g.mu.Unlock()
		return g.lead(k, f, fn)
	}
}

func (g *group) lead(k flightKey, f *flight, fn func() (*Entry, error)) (e *Entry, err error) {
	finished := false
	defer func() {
		if !finished {
			err = errors.New("keycache: key load panicked")
			e = nil
		}
		g.mu.Lock()
		delete(g.m, k)
		n := f.waiters
		g.mu.Unlock()
		if e != nil && n > 0 {
			e.refs.Add(n)
		}
		f.e, f.err = e, err
		close(f.done)
	}()
	e, err = fn()
	finished = true
	return e, err
}

func isContextErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
