package stream

import (
	"errors"
	"fmt"
	"io"
	"sync"
)

// pipeline is the ordered job queue shared by Writer and Reader, after
// the ordered job pattern of klauspost/compress/zstd: the owner (the
// goroutine that calls Write, ReadFrom, Read or WriteTo) pushes each job
// to the back of the queue and to the workers, and takes jobs from the
// front, in dispatch order, once they are finished. The queue holds at
// most depth jobs, which bounds the buffers in use (backpressure).
//
// A job is finished when a worker has processed it and, on a Writer, when
// the sealed chunk has been written to dst (see committer): the owner
// reads the next chunks while the workers seal or open the queued ones.
// When the queue is full, the owner sleeps until only low jobs are left
// unfinished, not merely until the next one is: waking a parked goroutine
// costs tens of microseconds on a virtual machine (longer than sealing a
// 64 KiB chunk takes), so an owner that slept once per chunk would starve
// the workers, while the low jobs left queued keep them busy as the owner
// wakes up.
//
// The workers are started on the first push and stopped by stop, which
// also waits for and recycles every queued job; a pipeline can be used
// again after stop. Its methods are for the owner only.
type pipeline struct {
	ch    *chunker
	op    int // opSeal or opOpen
	n     int // workers
	depth int // most jobs queued at once
	low   int // jobs left unfinished when a waiting owner wakes up
	steal bool
	c     *committer // Writer: writes sealed chunks in order; nil on a Reader

	w     *workers // nil when stopped
	ring  []*job   // queue: ring[head], ring[head+1], … (mod depth)
	head  int
	count int
}

// queueBytes is the plaintext the pipeline queues at least, whatever the
// worker count: enough sealing or opening work (about 0.4 ms of AES-GCM
// on one core) to cover the time a sleeping owner takes to wake up.
const queueBytes = 1 << 20

// pipelineDepth returns the queue depth and low-water mark for workers
// goroutines and chunks of chunk bytes: at least queueBytes of chunks, at
// least two chunks per worker (so that a worker that finishes a chunk
// finds the next one queued), and at least two.
func pipelineDepth(workers, chunk int) (depth, low int) {
	depth = max(2*workers, queueBytes/chunk, 2)
	return depth, depth / 2
}

// newPipeline returns a stopped pipeline. c is the Writer's committer (nil
// for a Reader).
func newPipeline(ch *chunker, op, workers int, c *committer) *pipeline {
	d, low := pipelineDepth(workers, ch.chunk)
	return &pipeline{
		ch:    ch,
		op:    op,
		n:     workers,
		depth: d,
		low:   low,
		// With several workers, the owner processes queued jobs itself
		// while it waits, so that on a busy machine, where the workers
		// may not get a CPU, the pipeline runs no slower than the owner
		// alone. With one worker it only waits: one worker means one
		// goroutine of crypto.
		steal: workers > 1,
		c:     c,
		ring:  make([]*job, d),
	}
}

// process seals or opens j and finishes it: a Reader's job is done at
// once; a Writer's job goes to the committer, which marks it done once
// the chunk is written. It runs on a worker, or on the owner.
func (p *pipeline) process(j *job) {
	p.ch.run(j, p.op)
	if p.c != nil {
		p.c.commit(j)
	} else {
		j.done <- struct{}{}
	}
}

// full reports whether the queue holds depth jobs.
func (p *pipeline) full() bool { return p.count == p.depth }

// empty reports whether no job is queued.
func (p *pipeline) empty() bool { return p.count == 0 }

// push queues j and hands it to the workers. The queue must not be full.
func (p *pipeline) push(j *job) {
	p.enqueue(j)
	if p.w == nil {
		p.w = startWorkers(p.n, p.depth, p.process)
	}
	p.w.jobs <- j // never blocks: the channel holds depth jobs
}

// runHere queues j and processes it in the owner's goroutine, for a final
// chunk with nothing queued before it: there is nothing to overlap with,
// so there is no reason to wake a worker.
func (p *pipeline) runHere(j *job) {
	p.enqueue(j)
	p.process(j)
}

func (p *pipeline) enqueue(j *job) {
	if p.full() {
		panic("stream: internal error: push to a full pipeline")
	}
	p.ring[(p.head+p.count)%p.depth] = j
	p.count++
}

// at returns the i-th queued job from the front.
func (p *pipeline) at(i int) *job { return p.ring[(p.head+i)%p.depth] }

// ready reports, without blocking, whether the front job is finished.
// The queue must not be empty.
func (p *pipeline) ready() bool {
	j := p.at(0)
	if !j.got {
		select {
		case <-j.done:
			j.got = true
		default:
		}
	}
	return j.got
}

// waitLow blocks until all but low of the queued jobs are finished (with
// one worker, which finishes jobs in order, exactly; with several, the job
// that leaves low behind it is finished, and the ones before it almost
// always). The queue must hold more than low jobs.
func (p *pipeline) waitLow() { p.wait(p.at(p.count - 1 - p.low)) }

// pop waits until the front job is finished and removes it from the
// queue. The queue must not be empty.
func (p *pipeline) pop() *job {
	j := p.at(0)
	p.wait(j)
	p.ring[p.head] = nil
	p.head = (p.head + 1) % p.depth
	p.count--
	return j
}

// wait blocks until j is finished, processing queued jobs meanwhile if
// p.steal.
func (p *pipeline) wait(j *job) {
	if j.got {
		return
	}
	if p.steal && p.w != nil {
	loop:
		for {
			select {
			case <-j.done:
				break loop
			case x := <-p.w.jobs:
				p.process(x) // x stays queued; its done is now pending
			}
		}
	} else {
		<-j.done
	}
	j.got = true
}

// stop stops the workers (they first finish the jobs already handed to
// them) and recycles every queued job.
func (p *pipeline) stop() {
	if p.w != nil {
		p.w.stop()
		p.w = nil
	}
	for p.count > 0 {
		releaseJob(p.pop()) // every queued job is finished, so pop does not block
	}
	p.head = 0
}

// workers is a pool of goroutines that process jobs. Its owner starts it,
// sends jobs, and stops it with stop, which returns after every worker
// has exited.
type workers struct {
	jobs chan *job
	wg   sync.WaitGroup
}

func startWorkers(n, capacity int, process func(*job)) *workers {
	w := &workers{jobs: make(chan *job, capacity)}
	w.wg.Add(n)
	for range n {
		go func() {
			defer w.wg.Done()
			for j := range w.jobs {
				process(j)
			}
		}()
	}
	return w
}

func (w *workers) stop() {
	close(w.jobs)
	w.wg.Wait()
}

// committer writes a Writer's sealed chunks to dst in chunk order, as soon
// as each is sealed, from whichever goroutine sealed the chunk that is
// next in line (a worker, or the owner); it never runs two Writes to dst
// at once. So a sealed chunk reaches dst without waiting for the caller
// to write or read more, and a caller blocked on its input, or simply not
// writing for a while, holds back nothing that could be written. A
// goroutine that seals a chunk while another is writing leaves the chunk
// to that writer and goes back to sealing.
//
// After the first error (a failed seal, a failed write, or fail), no more
// chunks are written; every later job is finished with that error.
type committer struct {
	mu      sync.Mutex
	dst     io.Writer
	slots   []*job // sealed jobs not yet written, by index mod len(slots)
	next    uint64 // index of the next chunk to write
	writing bool   // a goroutine is in the write loop
	err     error
}

func newCommitter(depth int) *committer {
	return &committer{slots: make([]*job, depth)}
}

// reset prepares for a new stream into dst whose first chunk is first.
// No job may be in flight.
func (c *committer) reset(dst io.Writer, first uint64) {
	c.mu.Lock()
	c.dst, c.next, c.err = dst, first, nil
	clear(c.slots)
	c.mu.Unlock()
}

// errAbandoned stops the committer of a stream that Reset abandons.
var errAbandoned = errors.New("stream: internal error: stream abandoned")

// fail makes the committer write nothing more.
func (c *committer) fail(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	c.mu.Unlock()
}

// commit takes a sealed job; it writes it, and the sealed jobs after it,
// if it is next in line and no other goroutine is writing.
func (c *committer) commit(j *job) {
	c.mu.Lock()
	c.slots[j.idx%uint64(len(c.slots))] = j
	if c.writing {
		c.mu.Unlock()
		return // the writing goroutine will find j
	}
	c.writing = true
	for {
		s := &c.slots[c.next%uint64(len(c.slots))]
		k := *s
		if k == nil || k.idx != c.next {
			break
		}
		*s = nil
		c.next++
		err := c.err
		c.mu.Unlock()
		if err == nil && k.err == nil {
			err = c.write(k)
		}
		c.mu.Lock()
		switch {
		case k.err != nil:
			c.fail0(k.err)
		case err != nil:
			c.fail0(err)
			k.err = c.err
		}
		k.done <- struct{}{}
	}
	c.writing = false
	c.mu.Unlock()
}

// write writes k's sealed chunk to dst. A panic in dst's Write, which
// runs on a worker goroutine that the caller cannot recover on, becomes
// the stream's error.
func (c *committer) write(k *job) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("stream: panic in the destination's Write (chunk %d): %v", k.idx, r)
		}
	}()
	return writeAll(c.dst, k.out)
}

// fail0 is fail with c.mu held.
func (c *committer) fail0(err error) {
	if c.err == nil {
		c.err = err
	}
}
