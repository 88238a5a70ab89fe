package stream

// Test-only hooks, visible to package stream_test.

// WithSaltForTest fixes the header salt (golden vectors, fuzz checks).
func WithSaltForTest(salt []byte) Option {
	return func(o *options) error {
		o.salt = append([]byte(nil), salt...)
		return nil
	}
}

// WithFirstIndexForTest makes the first chunk have index i, to reach the
// epoch boundary and the chunk limit without writing terabytes.
func WithFirstIndexForTest(i uint64) Option {
	return func(o *options) error {
		o.firstIndex = i
		return nil
	}
}

// WithChunkHookForTest runs f(index) before each chunk is sealed or opened,
// on whatever goroutine processes the chunk.
func WithChunkHookForTest(f func(idx uint64)) Option {
	return func(o *options) error {
		o.testHook = func(j *job) { f(j.idx) }
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
