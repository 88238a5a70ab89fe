package stream

import "crypto/cipher"

// Test-only hooks, visible to package stream_test.

// WithSaltForTest fixes the header salt (golden vectors, fuzz checks).
func WithSaltForTest(salt []byte) WriterOption {
	return func(o *writerOptions) error {
		o.salt = append([]byte(nil), salt...)
		return nil
	}
}

// FirstIndexForTest makes the first chunk have index i, to reach the
// epoch boundary and the chunk limit without writing terabytes: one
// option for the Writer, one for the Reader (a ReaderAt ignores it).
func FirstIndexForTest(i uint64) (WriterOption, ReaderOption) {
	return func(o *writerOptions) error {
			o.firstIndex = i
			return nil
		}, func(o *readerOptions) error {
			o.firstIndex = i
			return nil
		}
}

// ChunkHookForTest runs f(index) before each chunk is sealed (by a Writer
// given the first option) or opened (by a Reader given the second; a
// ReaderAt ignores it), on whatever goroutine processes the chunk.
func ChunkHookForTest(f func(idx uint64)) (WriterOption, ReaderOption) {
	hook := func(j *job) { f(j.idx) }
	return func(o *writerOptions) error {
			o.testHook = hook
			return nil
		}, func(o *readerOptions) error {
			o.testHook = hook
			return nil
		}
}

// EpochShift is the number of chunk-index bits inside one key epoch.
const EpochShift = epochShift

// PipelineDepthForTest is how many chunks a Writer or Reader with the
// given workers and chunk size queues at most.
func PipelineDepthForTest(workers, chunk int) int {
	d, _ := pipelineDepth(workers, chunk)
	return d
}

// Reasons of the ChunkErrors that name a stream's end.
const (
	ReasonTrailingForTest     = reasonTrailing
	ReasonCutOrChangedForTest = reasonCutOrChanged
)

// CiphersForTest returns the payload ciphers the stream's key schedule
// holds now: epoch 0's first. None once they are wiped and dropped.
func (w *Writer) CiphersForTest() []cipher.AEAD       { return w.ks.ciphersForTest() }
func (r *Reader) CiphersForTest() []cipher.AEAD       { return r.ks.ciphersForTest() }
func (r *ReaderAt) CiphersForTest() []cipher.AEAD     { return r.ks.ciphersForTest() }
func (l *LazyReaderAt) CiphersForTest() []cipher.AEAD { return l.r.ks.ciphersForTest() }

func (ks *keySchedule) ciphersForTest() []cipher.AEAD {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	var all []cipher.AEAD
	if ks.aead0 != nil {
		all = append(all, ks.aead0)
	}
	for e, a := range ks.aeads {
		if e != 0 {
			all = append(all, a)
		}
	}
	return all
}
