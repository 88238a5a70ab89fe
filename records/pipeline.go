package records

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/enc-pipe/enc-pipe/metrics"
)

// Headers added to a record routed to the dead-letter sink.
const (
	HeaderErrorKind = "enc-pipe.error.kind" // an ErrorKind
	HeaderError     = "enc-pipe.error"      // the error message (never the record's content)
	HeaderSource    = "enc-pipe.source"     // the record's Position
)

// Defaults of Pipeline.
const (
	DefaultMaxInFlight      = 1024
	DefaultMaxInFlightBytes = 64 << 20
	DefaultMaxBatch         = 512
	DefaultDrainTimeout     = 10 * time.Second
)

// Pipeline moves records from a Source through a Transformer to a Sink on a
// bounded pool of workers.
//
// Records are written in the order the source produced them, so order is
// kept per source partition (and per line). At most MaxInFlight records,
// and about MaxInFlightBytes of them, are between the source and their
// acknowledgement at once, which bounds memory.
//
// Every record the source produced ends one of three ways: written to the
// sink, written to the dead-letter sink with its reason in headers, or
// left unacknowledged when Run returns an error, which then names the
// first failure. A source never learns of a record as done before the sink
// (or the dead-letter sink) has it.
//
// Configure the exported fields before Run; a Pipeline runs once. Stats may
// be called at any time, from any goroutine.
type Pipeline struct {
	Source    Source
	Transform Transformer
	Sink      Sink
	// Metrics receives the counts of Stats as they change, the records
	// in flight, and the source's lag and the Transformer's cache counts
	// when they report them (the Metric names of stats.go). Nil: none.
	Metrics metrics.Provider
	// DeadLetter receives the records that fail with a *RecordError, as
	// the source produced them, with HeaderErrorKind, HeaderError and
	// HeaderSource added. When nil, the first such record stops the run.
	// Records that the Encrypter could not encrypt are plaintext: give the
	// dead-letter sink the protection of the source.
	DeadLetter Sink
	// Workers is the number of goroutines running Transform. Default:
	// GOMAXPROCS.
	Workers int
	// MaxInFlight bounds the records read but not yet acknowledged.
	// Default: DefaultMaxInFlight.
	MaxInFlight int
	// MaxInFlightBytes bounds the bytes (key, value and headers as read) of
	// those records; a record larger than the bound is let in alone.
	// Default: DefaultMaxInFlightBytes.
	MaxInFlightBytes int64
	// MaxBatch bounds the records given to one Sink.Write. Default:
	// DefaultMaxBatch.
	MaxBatch int
	// DrainTimeout bounds how long, after Run's context is cancelled, the
	// records already read are still transformed, written and
	// acknowledged. Default: DefaultDrainTimeout.
	DrainTimeout time.Duration

	ran   atomic.Bool
	stats counters
}

// item is one record on its way through a run.
type item struct {
	rec  *Record
	orig Record // as read, for the dead-letter sink
	size int64
	err  error
}

// job is a run of records read in a row, transformed by one worker in
// order: one record when the source would block, up to maxJobRecords when
// it has more ready (ReadySource), so that goroutines hand each other
// records in groups rather than one at a time.
type job struct {
	items []item
	bytes int64
	done  chan struct{}
}

// Bounds of a job.
const (
	maxJobRecords = 64
	maxJobBytes   = 256 << 10
)

// run is the state of one Run.
type run struct {
	p        *Pipeline
	gate     gate
	readCtx  context.Context // cancelled to stop reading
	stopRead context.CancelCauseFunc
	workCtx  context.Context // transforms, writes and acks
	stopWork context.CancelCauseFunc

	work  chan *job
	order chan *job
	acks  chan []*item

	errMu    sync.Mutex
	firstErr error
	// halted stops writing and acknowledging: set after a failure of the
	// sink or of an acknowledgement, and after a failing record once the
	// records before it are written. A source error alone does not halt:
	// what was read is still written.
	halted    atomic.Bool
	ackFailed bool // owned by the acknowledger
}

// Run reads the source until io.EOF and returns nil once every record has
// been written (or dead-lettered) and acknowledged. On the first failure
// (a record error without a dead-letter sink, a source, sink or
// acknowledgement error, a panic in Transform) it stops reading, writes and
// acknowledges the records before the failing one, and returns the
// failure. When ctx is cancelled it stops reading, drains the records
// already read for at most DrainTimeout, and returns the context's cause.
// It returns after every goroutine it started has ended. Run does not
// close the source or the sinks.
func (p *Pipeline) Run(ctx context.Context) error {
	if p.Source == nil || p.Transform == nil || p.Sink == nil {
		return errors.New("records: Pipeline needs a Source, a Transform and a Sink")
	}
	if p.ran.Swap(true) {
		return errors.New("records: Pipeline.Run called twice")
	}
	p.stats.bind(p)
	workers := p.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	maxInFlight := p.MaxInFlight
	if maxInFlight <= 0 {
		maxInFlight = DefaultMaxInFlight
	}
	maxBytes := p.MaxInFlightBytes
	if maxBytes <= 0 {
		maxBytes = DefaultMaxInFlightBytes
	}
	drain := p.DrainTimeout
	if drain <= 0 {
		drain = DefaultDrainTimeout
	}

	r := &run{
		p:     p,
		work:  make(chan *job, maxInFlight),
		order: make(chan *job, maxInFlight),
		acks:  make(chan []*item, maxInFlight),
	}
	r.gate.init(maxInFlight, maxBytes)
	r.readCtx, r.stopRead = context.WithCancelCause(ctx)
	r.workCtx, r.stopWork = context.WithCancelCause(context.WithoutCancel(ctx))
	defer r.stopRead(nil)
	defer r.stopWork(nil)
	// After a cancellation the drain gets DrainTimeout, then in-flight
	// transforms, writes and acknowledgements are cancelled too.
	stopDrain := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(drain, func() {
			r.stopWork(fmt.Errorf("records: records in flight not drained within %v: %w", drain, context.Cause(ctx)))
		})
		context.AfterFunc(r.workCtx, func() { t.Stop() })
	})
	defer stopDrain()

	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); r.read() }()
	var workersWG sync.WaitGroup
	for range workers {
		workersWG.Add(1)
		go func() { defer workersWG.Done(); r.transform() }()
	}
	var ackWG sync.WaitGroup
	ackWG.Add(1)
	go func() { defer ackWG.Done(); r.ack() }()

	r.write()
	close(r.acks)
	ackWG.Wait()
	// Stop whatever is still reading or transforming after a failure.
	r.stopRead(errStopped)
	r.stopWork(errStopped)
	wg.Wait()
	workersWG.Wait()

	if err := r.err(); err != nil {
		return err
	}
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return nil
}

var errStopped = errors.New("records: pipeline stopped")

// fail records the first fatal error and stops reading.
func (r *run) fail(err error) {
	r.errMu.Lock()
	if r.firstErr == nil {
		r.firstErr = err
	}
	r.errMu.Unlock()
	r.stopRead(errStopped)
}

func (r *run) err() error {
	r.errMu.Lock()
	defer r.errMu.Unlock()
	return r.firstErr
}

// halt records err and stops writing.
func (r *run) halt(err error) {
	r.fail(err)
	r.halted.Store(true)
}

// read feeds jobs to the workers and, in the same order, to the writer.
// A job is handed on as soon as the source has no record ready, or before
// the reader would wait for room in flight, so that a partial job never
// waits for a record.
func (r *run) read() {
	defer close(r.work)
	defer close(r.order)
	src := r.p.Source
	ready := func() bool { return false }
	if rs, ok := src.(ReadySource); ok {
		ready = rs.Ready
	}
	limit := min(maxJobRecords, r.gate.maxCount)
	var j *job
	send := func() {
		if j != nil && len(j.items) > 0 {
			r.order <- j
			r.work <- j
		}
		j = nil
	}
	defer send() // what was read is transformed and written
	for {
		if !r.gate.tryAcquire() {
			send()
			if err := r.gate.acquire(r.readCtx); err != nil {
				return // stopped or cancelled
			}
		}
		rec, err := src.Next(r.readCtx)
		var unread *RecordError
		switch {
		case err != nil && rec != nil && errors.As(err, &unread):
			// A record the source could not read: it goes to the
			// writer, already failed, like a failed Transform.
			if unread.Pos == (Position{}) {
				unread.Pos = rec.Source
			}
		case err != nil:
			r.gate.release(1, 0)
			if err != io.EOF && r.readCtx.Err() == nil {
				r.fail(fmt.Errorf("records: read: %w", err))
			}
			return
		case rec == nil:
			r.gate.release(1, 0)
			r.fail(errors.New("records: read: source returned a nil record"))
			return
		}
		it := item{rec: rec, orig: *rec, size: rec.size(), err: err}
		if !r.gate.tryAcquireBytes(it.size) {
			send()
			if err := r.gate.acquireBytes(r.readCtx, it.size); err != nil {
				// Read but never handed on: not acknowledged, so it is
				// read again after a restart.
				r.gate.release(1, 0)
				return
			}
		}
		r.p.stats.read.Add(1)
		r.p.stats.bytesRead.Add(it.size)
		if j == nil {
			j = &job{items: make([]item, 0, 1), done: make(chan struct{})}
		}
		j.items = append(j.items, it)
		j.bytes += it.size
		if len(j.items) >= limit || j.bytes >= maxJobBytes || !ready() {
			send()
		}
	}
}

func (r *run) transform() {
	for j := range r.work {
		for i := range j.items {
			it := &j.items[i]
			switch {
			case it.err != nil: // the source could not read it
			case r.workCtx.Err() == nil && !r.halted.Load():
				it.err = r.safeTransform(it.rec)
			default:
				it.err = errStopped
			}
		}
		close(j.done)
	}
}

func (r *run) safeTransform(rec *Record) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("records: Transform panicked: %v", v)
		}
	}()
	err = r.p.Transform.Transform(r.workCtx, rec)
	var re *RecordError
	if errors.As(err, &re) && re.Pos == (Position{}) {
		re.Pos = rec.Source
	}
	return err
}

// write takes jobs in the order they were read and batches their finished
// records. A separate goroutine writes one batch at a time; a batch is
// handed over as soon as that goroutine is idle, or when it is full, so
// batches grow while a write is in flight and stay small when records
// trickle in.
func (r *run) write() {
	maxBatch := r.p.MaxBatch
	if maxBatch <= 0 {
		maxBatch = DefaultMaxBatch
	}
	sinkCh := make(chan []*item)
	sinkDone := make(chan struct{})
	go func() {
		defer close(sinkDone)
		for batch := range sinkCh {
			r.flush(batch)
		}
	}()
	var batch []*item
	// finish hands over the last batch and waits for the sink.
	finish := func() {
		if len(batch) > 0 {
			sinkCh <- batch
			batch = nil
		}
		close(sinkCh)
		<-sinkDone
	}
	for {
		if r.halted.Load() {
			finish()
			r.discard()
			return
		}
		var j *job
		var more bool
		if len(batch) == 0 {
			j, more = <-r.order
		} else {
			select {
			case j, more = <-r.order:
			case sinkCh <- batch:
				batch = nil
				continue
			}
		}
		if !more {
			finish()
			return
		}
		if len(batch) > 0 {
			select {
			case <-j.done:
			case sinkCh <- batch:
				batch = nil
				<-j.done
			}
		} else {
			<-j.done
		}
		for i := range j.items {
			it := &j.items[i]
			if it.err != nil && !r.routable(it) {
				// Everything before it is written and acknowledged;
				// it and what follows are not.
				finish()
				if !r.halted.Load() {
					switch {
					case it.err != errStopped:
						r.halt(it.err)
					case r.workCtx.Err() != nil:
						r.halt(context.Cause(r.workCtx))
					}
				}
				r.halted.Store(true)
				r.releaseItems(j.items[i:])
				r.discard()
				return
			}
			batch = append(batch, it)
			if len(batch) >= maxBatch {
				sinkCh <- batch
				batch = nil
			}
		}
	}
}

// routable reports whether it's error sends it to the dead-letter sink,
// and counts it.
func (r *run) routable(it *item) bool {
	var re *RecordError
	if !errors.As(it.err, &re) {
		if it.err != errStopped {
			r.p.stats.fatal.Add(1)
		}
		return false
	}
	r.p.stats.countKind(re.Kind)
	return r.p.DeadLetter != nil
}

// flush writes batch (dead ones to the dead-letter sink) and queues it for
// acknowledgement. After a failure, which it records, it only releases.
func (r *run) flush(batch []*item) {
	if r.halted.Load() || r.workCtx.Err() != nil {
		r.release(batch)
		if r.workCtx.Err() != nil {
			r.halt(context.Cause(r.workCtx))
		}
		return
	}
	recs := make([]*Record, 0, len(batch))
	var dead []*Record
	var bytes int64
	for _, it := range batch {
		if it.err == nil {
			recs = append(recs, it.rec)
			bytes += it.rec.size()
		} else {
			dead = append(dead, deadLetter(it))
		}
	}
	if len(recs) > 0 {
		if err := r.p.Sink.Write(r.workCtx, recs); err != nil {
			r.release(batch)
			r.halt(fmt.Errorf("records: write: %w", err))
			return
		}
		r.p.stats.written.Add(int64(len(recs)))
		r.p.stats.bytesWritten.Add(bytes)
	}
	if len(dead) > 0 {
		if err := r.p.DeadLetter.Write(r.workCtx, dead); err != nil {
			r.release(batch)
			r.halt(fmt.Errorf("records: write to the dead-letter sink: %w", err))
			return
		}
		r.p.stats.dead.Add(int64(len(dead)))
	}
	r.acks <- batch
}

func deadLetter(it *item) *Record {
	var re *RecordError
	errors.As(it.err, &re)
	d := it.orig
	d.Headers = append(append([]Header(nil), it.orig.Headers...),
		Header{Key: HeaderErrorKind, Value: []byte(re.Kind)},
		Header{Key: HeaderError, Value: []byte(re.Err.Error())},
		Header{Key: HeaderSource, Value: []byte(re.Pos.String())},
	)
	return &d
}

// discard empties the order channel after a failure, until the reader has
// stopped and closed it.
func (r *run) discard() {
	for j := range r.order {
		<-j.done
		r.releaseItems(j.items)
	}
}

func (r *run) releaseItems(items []item) {
	var n int64
	for i := range items {
		n += items[i].size
	}
	r.gate.release(len(items), n)
}

func (r *run) release(batch []*item) {
	var n int64
	for _, it := range batch {
		n += it.size
	}
	r.gate.release(len(batch), n)
}

// ack acknowledges written batches in order, coalescing those queued.
func (r *run) ack() {
	for batch := range r.acks {
		items := batch
	more:
		for {
			select {
			case b, ok := <-r.acks:
				if !ok {
					break more
				}
				items = append(items, b...)
			default:
				break more
			}
		}
		// Records already written are acknowledged even after a later
		// record failed; nothing is after an acknowledgement failed.
		if !r.ackFailed && r.workCtx.Err() == nil {
			recs := make([]*Record, len(items))
			for i, it := range items {
				recs[i] = it.rec
			}
			if err := r.p.Source.Ack(r.workCtx, recs); err != nil {
				r.ackFailed = true
				r.halt(fmt.Errorf("records: acknowledge: %w", err))
			} else {
				r.p.stats.acked.Add(int64(len(recs)))
			}
		}
		r.release(items)
	}
}

// gate bounds the records and bytes in flight.
type gate struct {
	mu       sync.Mutex
	wake     chan struct{} // closed and replaced on every release
	count    int
	bytes    int64
	maxCount int
	maxBytes int64
}

func (g *gate) init(maxCount int, maxBytes int64) {
	g.maxCount, g.maxBytes, g.wake = maxCount, maxBytes, make(chan struct{})
}

func (g *gate) wait(ctx context.Context, full func() bool, take func()) error {
	g.mu.Lock()
	for full() {
		ch := g.wake
		g.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
		g.mu.Lock()
	}
	take()
	g.mu.Unlock()
	return nil
}

// tryAcquire takes one record slot if one is free.
func (g *gate) tryAcquire() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.count >= g.maxCount {
		return false
	}
	g.count++
	return true
}

// tryAcquireBytes takes n bytes if acquireBytes would not wait.
func (g *gate) tryAcquireBytes(n int64) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.bytes > 0 && g.bytes+n > g.maxBytes {
		return false
	}
	g.bytes += n
	return true
}

// acquire takes one record slot.
func (g *gate) acquire(ctx context.Context) error {
	return g.wait(ctx, func() bool { return g.count >= g.maxCount }, func() { g.count++ })
}

// acquireBytes takes n bytes; a record larger than the bound waits until it
// is alone.
func (g *gate) acquireBytes(ctx context.Context, n int64) error {
	return g.wait(ctx, func() bool { return g.bytes > 0 && g.bytes+n > g.maxBytes }, func() { g.bytes += n })
}

func (g *gate) release(count int, n int64) {
	g.mu.Lock()
	g.count -= count
	g.bytes -= n
	close(g.wake)
	g.wake = make(chan struct{})
	g.mu.Unlock()
}
