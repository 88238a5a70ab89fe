package records_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/enc-pipe/enc-pipe/records"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// memSource produces n records over `lanes` source partitions; it checks
// that acknowledgements come in order, without gaps, and only for records
// the sinks already hold.
type memSource struct {
	t        testing.TB
	n        int
	lanes    int
	next     int
	endless  bool
	written  func(*records.Record) bool // reports whether a sink holds r
	unread   func(i int) bool           // records Next returns with a *RecordError
	ready    bool                       // what Ready says: records come in runs
	mu       sync.Mutex
	acked    []*records.Record
	inFlight atomic.Int64
	maxSeen  atomic.Int64
}

func (s *memSource) Next(ctx context.Context) (*records.Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if s.next >= s.n && !s.endless {
		return nil, io.EOF
	}
	i := s.next
	s.next++
	if v := s.inFlight.Add(1); v > s.maxSeen.Load() {
		s.maxSeen.Store(v)
	}
	r := &records.Record{
		Value:  []byte(strconv.Itoa(i)),
		Source: records.Position{Topic: "t", Partition: i % s.lanes, Offset: int64(i)},
	}
	if s.unread != nil && s.unread(i) {
		return r, &records.RecordError{Kind: records.KindSize, Err: errors.New("unreadable " + strconv.Itoa(i))}
	}
	return r, nil
}

func (s *memSource) Ack(ctx context.Context, recs []*records.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range recs {
		if want := int64(len(s.acked)); r.Source.Offset != want {
			s.t.Errorf("ack of record %d, want %d next: out of order or with a gap", r.Source.Offset, want)
		}
		if s.written != nil && !s.written(r) {
			s.t.Errorf("ack of record %d before a sink has it", r.Source.Offset)
		}
		s.acked = append(s.acked, r)
	}
	s.inFlight.Add(-int64(len(recs)))
	return nil
}

// Ready makes memSource a ReadySource; with ready false it behaves like a
// plain Source (one record per job).
func (s *memSource) Ready() bool { return s.ready }

func (s *memSource) ackedCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.acked)
}

type memSink struct {
	mu    sync.Mutex
	recs  []*records.Record
	held  map[*records.Record]bool
	fail  func(n int) error // called with the count before the write
	delay time.Duration
}

func (s *memSink) Write(ctx context.Context, recs []*records.Record) error {
	if s.delay > 0 {
		select {
		case <-time.After(s.delay):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		if err := s.fail(len(s.recs)); err != nil {
			return err
		}
	}
	if s.held == nil {
		s.held = map[*records.Record]bool{}
	}
	for _, r := range recs {
		s.recs = append(s.recs, r)
		s.held[r] = true
	}
	return nil
}

func (s *memSink) has(r *records.Record) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.held[r]
}

func (s *memSink) all() []*records.Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*records.Record(nil), s.recs...)
}

// jitter is a transform that sleeps a random time and marks the value.
func jitter(maxDelay time.Duration) records.TransformFunc {
	return func(ctx context.Context, r *records.Record) error {
		time.Sleep(time.Duration(rand.Int64N(int64(maxDelay))))
		r.Value = append([]byte("x"), r.Value...)
		return nil
	}
}

func TestPipelineKeepsSourceOrderUnderRandomWorkerDelays(t *testing.T) {
	eachReady(t, testPipelineKeepsSourceOrderUnderRandomWorkerDelays)
}

func testPipelineKeepsSourceOrderUnderRandomWorkerDelays(t *testing.T, ready bool) {
	sink := &memSink{}
	src := &memSource{t: t, ready: ready, n: 3000, lanes: 4, written: sink.has}
	p := &records.Pipeline{Source: src, Transform: jitter(200 * time.Microsecond), Sink: sink, Workers: 8, MaxInFlight: 64, MaxBatch: 16}
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := sink.all()
	if len(got) != src.n {
		t.Fatalf("sink got %d records, want %d", len(got), src.n)
	}
	lastPerLane := map[int]int64{}
	for i, r := range got {
		if r.Source.Offset != int64(i) || string(r.Value) != "x"+strconv.Itoa(i) {
			t.Fatalf("record %d is %s (offset %d)", i, r.Value, r.Source.Offset)
		}
		if last, ok := lastPerLane[r.Source.Partition]; ok && r.Source.Offset <= last {
			t.Fatalf("partition %d: offset %d after %d", r.Source.Partition, r.Source.Offset, last)
		}
		lastPerLane[r.Source.Partition] = r.Source.Offset
	}
	if src.ackedCount() != src.n {
		t.Fatalf("%d acknowledged, want %d", src.ackedCount(), src.n)
	}
	st := p.Stats()
	if st.Read != int64(src.n) || st.Written != int64(src.n) || st.Acked != int64(src.n) {
		t.Fatalf("stats %+v", st)
	}
}

func TestPipelineBoundsRecordsInFlight(t *testing.T) { eachReady(t, testPipelineBoundsRecordsInFlight) }

func testPipelineBoundsRecordsInFlight(t *testing.T, ready bool) {
	sink := &memSink{delay: time.Millisecond}
	src := &memSource{t: t, ready: ready, n: 500, lanes: 1, written: sink.has}
	const max = 10
	p := &records.Pipeline{Source: src, Transform: jitter(50 * time.Microsecond), Sink: sink, Workers: 4, MaxInFlight: max}
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := src.maxSeen.Load(); got > max || got < 2 {
		t.Fatalf("at most %d records were between Next and Ack, want 2..%d", got, max)
	}
}

func TestPipelineBoundsBytesInFlight(t *testing.T) { eachReady(t, testPipelineBoundsBytesInFlight) }

func testPipelineBoundsBytesInFlight(t *testing.T, ready bool) {
	sink := &memSink{delay: 200 * time.Microsecond}
	src := &bigSource{ready: ready, n: 100, size: 1000}
	p := &records.Pipeline{Source: src, Transform: jitter(10 * time.Microsecond), Sink: sink, Workers: 4, MaxInFlightBytes: 3500}
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := src.maxBytes.Load(); got > 3500+1000 {
		t.Fatalf("%d bytes were in flight (including the one record waiting to enter), want at most 4500", got)
	}
	if len(sink.all()) != 100 {
		t.Fatalf("sink got %d records", len(sink.all()))
	}
}

type bigSource struct {
	ready    bool
	n, size  int
	next     int
	inFlight atomic.Int64
	maxBytes atomic.Int64
}

func (s *bigSource) Next(ctx context.Context) (*records.Record, error) {
	if s.next == s.n {
		return nil, io.EOF
	}
	s.next++
	if v := s.inFlight.Add(int64(s.size)); v > s.maxBytes.Load() {
		s.maxBytes.Store(v)
	}
	return &records.Record{Value: make([]byte, s.size), Source: records.Position{Offset: int64(s.next)}}, nil
}

func (s *bigSource) Ready() bool { return s.ready }

func (s *bigSource) Ack(ctx context.Context, recs []*records.Record) error {
	s.inFlight.Add(-int64(len(recs) * s.size))
	return nil
}

// failEvery makes records whose number is a multiple of k fail with a
// record error.
func failEvery(k int) records.TransformFunc {
	return func(ctx context.Context, r *records.Record) error {
		n, _ := strconv.Atoi(string(r.Value))
		if n%k == k-1 {
			return &records.RecordError{Kind: records.KindAuth, Err: errors.New("bad record " + strconv.Itoa(n))}
		}
		r.Value = append([]byte("ok"), r.Value...)
		return nil
	}
}

func TestPipelineDeadLettersRecordErrorsWithTheirReason(t *testing.T) {
	eachReady(t, testPipelineDeadLettersRecordErrorsWithTheirReason)
}

func testPipelineDeadLettersRecordErrorsWithTheirReason(t *testing.T, ready bool) {
	sink, dead := &memSink{}, &memSink{}
	src := &memSource{t: t, ready: ready, n: 1000, lanes: 3, written: func(r *records.Record) bool { return sink.has(r) || len(r.Value) > 0 }}
	p := &records.Pipeline{Source: src, Transform: failEvery(7), Sink: sink, DeadLetter: dead, Workers: 4}
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	wantDead := src.n / 7
	if len(dead.all()) != wantDead || len(sink.all()) != src.n-wantDead {
		t.Fatalf("sink %d, dead %d; want %d and %d", len(sink.all()), len(dead.all()), src.n-wantDead, wantDead)
	}
	for _, d := range dead.all() {
		n, _ := strconv.Atoi(string(d.Value))
		if n%7 != 6 || string(d.Value) != strconv.FormatInt(d.Source.Offset, 10) {
			t.Fatalf("dead letter %q (offset %d) is not an original failing record", d.Value, d.Source.Offset)
		}
		h := headers(d)
		if h[records.HeaderErrorKind] != "auth" || h[records.HeaderError] != "bad record "+strconv.Itoa(n) || h[records.HeaderSource] != d.Source.String() {
			t.Fatalf("dead letter headers %v", h)
		}
	}
	if src.ackedCount() != src.n {
		t.Fatalf("%d acknowledged, want every record (%d)", src.ackedCount(), src.n)
	}
	st := p.Stats()
	if st.DeadLettered != int64(wantDead) || st.Errors[records.KindAuth] != int64(wantDead) {
		t.Fatalf("stats %+v", st)
	}
}

func headers(r *records.Record) map[string]string {
	m := map[string]string{}
	for _, h := range r.Headers {
		m[h.Key] = string(h.Value)
	}
	return m
}

func TestPipelineStopsAtTheFirstRecordErrorWithoutDeadLetterSink(t *testing.T) {
	eachReady(t, testPipelineStopsAtTheFirstRecordErrorWithoutDeadLetterSink)
}

func testPipelineStopsAtTheFirstRecordErrorWithoutDeadLetterSink(t *testing.T, ready bool) {
	sink := &memSink{}
	src := &memSource{t: t, ready: ready, n: 1000, lanes: 2, written: sink.has}
	p := &records.Pipeline{Source: src, Transform: failEvery(100), Sink: sink, Workers: 4, MaxBatch: 8}
	err := p.Run(context.Background())
	var re *records.RecordError
	if !errors.As(err, &re) || !errors.Is(err, records.ErrAuth) || re.Pos.Offset != 99 {
		t.Fatalf("Run = %v, want the record error of offset 99", err)
	}
	got := sink.all()
	if len(got) != 99 {
		t.Fatalf("sink got %d records, want the 99 before the failing one", len(got))
	}
	if src.ackedCount() != 99 {
		t.Fatalf("%d acknowledged, want 99", src.ackedCount())
	}
}

func TestPipelineStopsOnSinkErrorWithoutAcknowledging(t *testing.T) {
	eachReady(t, testPipelineStopsOnSinkErrorWithoutAcknowledging)
}

func testPipelineStopsOnSinkErrorWithoutAcknowledging(t *testing.T, ready bool) {
	boom := errors.New("disk full")
	sink := &memSink{fail: func(n int) error {
		if n >= 100 {
			return boom
		}
		return nil
	}}
	src := &memSource{t: t, ready: ready, n: 1000, lanes: 1, written: sink.has}
	p := &records.Pipeline{Source: src, Transform: jitter(time.Microsecond), Sink: sink, Workers: 2, MaxBatch: 10}
	if err := p.Run(context.Background()); !errors.Is(err, boom) {
		t.Fatalf("Run = %v, want %v", err, boom)
	}
	// The sink refuses every write once it holds 100 records: nothing
	// past what it holds may be acknowledged.
	if got, held := src.ackedCount(), len(sink.all()); got > held || held >= src.n {
		t.Fatalf("%d acknowledged with %d written", got, held)
	}
}

func TestPipelineCancellationDrainsWhatWasRead(t *testing.T) {
	eachReady(t, testPipelineCancellationDrainsWhatWasRead)
}

func testPipelineCancellationDrainsWhatWasRead(t *testing.T, ready bool) {
	sink := &memSink{}
	src := &memSource{t: t, ready: ready, endless: true, lanes: 4, written: sink.has}
	ctx, cancel := context.WithCancel(context.Background())
	p := &records.Pipeline{Source: src, Transform: jitter(100 * time.Microsecond), Sink: sink, Workers: 3}
	go func() {
		for p.Stats().Written < 500 {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	if err := p.Run(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want context.Canceled", err)
	}
	st := p.Stats()
	if st.Read != st.Written || st.Written != st.Acked || int(st.Acked) != src.ackedCount() {
		t.Fatalf("after the drain: %+v, %d acknowledged; want every record read written and acknowledged", st, src.ackedCount())
	}
}

// blockingSink never finishes a write until its context ends.
type blockingSink struct{}

func (blockingSink) Write(ctx context.Context, _ []*records.Record) error {
	<-ctx.Done()
	return context.Cause(ctx)
}

func TestPipelineDrainGivesUpAfterDrainTimeout(t *testing.T) {
	src := &memSource{t: t, endless: true, lanes: 1}
	ctx, cancel := context.WithCancel(context.Background())
	p := &records.Pipeline{Source: src, Transform: jitter(time.Microsecond), Sink: blockingSink{}, DrainTimeout: 50 * time.Millisecond}
	time.AfterFunc(20*time.Millisecond, cancel)
	start := time.Now()
	err := p.Run(ctx)
	if err == nil || !errors.Is(err, context.Canceled) || time.Since(start) > 5*time.Second {
		t.Fatalf("Run = %v after %v, want a drain timeout wrapping context.Canceled", err, time.Since(start))
	}
	if src.ackedCount() != 0 {
		t.Fatalf("%d acknowledged, none were written", src.ackedCount())
	}
}

func TestPipelineTurnsATransformPanicIntoAnError(t *testing.T) {
	eachReady(t, testPipelineTurnsATransformPanicIntoAnError)
}

func testPipelineTurnsATransformPanicIntoAnError(t *testing.T, ready bool) {
	sink := &memSink{}
	src := &memSource{t: t, ready: ready, n: 100, lanes: 1, written: sink.has}
	p := &records.Pipeline{Source: src, Sink: sink, Transform: records.TransformFunc(func(ctx context.Context, r *records.Record) error {
		if string(r.Value) == "42" {
			panic("bug")
		}
		return nil
	})}
	if err := p.Run(context.Background()); err == nil || !errors.Is(err, err) || fmt.Sprint(err) != "records: Transform panicked: bug" {
		t.Fatalf("Run = %v", err)
	}
	if src.ackedCount() > 42 || p.Stats().Fatal != 1 {
		t.Fatalf("%d acknowledged, stats %+v", src.ackedCount(), p.Stats())
	}
}

type failingSource struct{ n int }

func (s *failingSource) Next(ctx context.Context) (*records.Record, error) {
	if s.n == 0 {
		return nil, errors.New("broker gone")
	}
	s.n--
	return &records.Record{Value: []byte("v")}, nil
}
func (s *failingSource) Ack(context.Context, []*records.Record) error { return nil }

func TestPipelineWritesWhatWasReadBeforeASourceError(t *testing.T) {
	sink := &memSink{}
	p := &records.Pipeline{Source: &failingSource{n: 10}, Transform: jitter(time.Microsecond), Sink: sink}
	if err := p.Run(context.Background()); err == nil || err.Error() != "records: read: broker gone" {
		t.Fatalf("Run = %v", err)
	}
	if len(sink.all()) != 10 {
		t.Fatalf("sink got %d, want the 10 records read before the error", len(sink.all()))
	}
}

// A record the source hands over with a *RecordError skips the transform
// and is dead-lettered in its place; everything is acknowledged in order.
func TestPipelineDeadLettersRecordsTheSourceCouldNotRead(t *testing.T) {
	eachReady(t, testPipelineDeadLettersRecordsTheSourceCouldNotRead)
}

func testPipelineDeadLettersRecordsTheSourceCouldNotRead(t *testing.T, ready bool) {
	sink, dead := &memSink{}, &memSink{}
	unread := func(i int) bool { return i%13 == 5 }
	src := &memSource{t: t, ready: ready, n: 1000, lanes: 2, unread: unread, written: func(r *records.Record) bool { return sink.has(r) || dead.has(r) || len(r.Value) > 0 }}
	var transformed atomic.Int64
	xf := records.TransformFunc(func(ctx context.Context, r *records.Record) error {
		n, _ := strconv.Atoi(string(r.Value))
		if unread(n) {
			t.Errorf("record %d, which the source could not read, was transformed", n)
		}
		transformed.Add(1)
		return nil
	})
	p := &records.Pipeline{Source: src, Transform: xf, Sink: sink, DeadLetter: dead, Workers: 4, MaxBatch: 16}
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	var want []int64
	for i := range src.n {
		if unread(i) {
			want = append(want, int64(i))
		}
	}
	got := dead.all()
	if len(got) != len(want) || int(transformed.Load())+len(want) != src.n || len(sink.all()) != src.n-len(want) {
		t.Fatalf("%d dead letters (want %d), %d transformed, %d written", len(got), len(want), transformed.Load(), len(sink.all()))
	}
	for i, d := range got {
		h := headers(d)
		if d.Source.Offset != want[i] || h[records.HeaderErrorKind] != string(records.KindSize) || h[records.HeaderError] != "unreadable "+strconv.FormatInt(want[i], 10) {
			t.Fatalf("dead letter %d: offset %d, headers %v; want offset %d", i, d.Source.Offset, h, want[i])
		}
	}
	if src.ackedCount() != src.n {
		t.Fatalf("%d acknowledged, want %d", src.ackedCount(), src.n)
	}
}

// Without a dead-letter sink, the first record the source could not read
// stops the run after the records before it are written.
func TestPipelineStopsAtARecordTheSourceCouldNotRead(t *testing.T) {
	eachReady(t, testPipelineStopsAtARecordTheSourceCouldNotRead)
}

func testPipelineStopsAtARecordTheSourceCouldNotRead(t *testing.T, ready bool) {
	sink := &memSink{}
	src := &memSource{t: t, ready: ready, n: 1000, lanes: 1, unread: func(i int) bool { return i == 321 || i == 500 }, written: sink.has}
	p := &records.Pipeline{Source: src, Transform: jitter(50 * time.Microsecond), Sink: sink, Workers: 8, MaxBatch: 8}
	err := p.Run(context.Background())
	var re *records.RecordError
	if !errors.As(err, &re) || !errors.Is(err, records.ErrSize) || re.Pos.Offset != 321 {
		t.Fatalf("Run = %v, want the error of record 321", err)
	}
	if got := sink.all(); len(got) != 321 || src.ackedCount() != 321 {
		t.Fatalf("%d written, %d acknowledged; want the 321 before it", len(got), src.ackedCount())
	}
}

// eachReady runs test with a source that has no record ready (one record
// per job) and with one that always has (jobs of many records).
func eachReady(t *testing.T, test func(t *testing.T, ready bool)) {
	for _, ready := range []bool{false, true} {
		t.Run(fmt.Sprintf("ready=%v", ready), func(t *testing.T) { test(t, ready) })
	}
}
