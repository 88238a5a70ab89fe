package stream

import (
	"fmt"
	"runtime"
	"sort"
	"unicode/utf8"
)

// WriterOption configures NewWriter; a Writer keeps its options across
// Reset. Options validate their argument: NewWriter returns the first
// option error, which wraps ErrInvalidArgument.
//
// Writers and readers take separate option types, as zstd's EOption and
// DOption do, so an option can only be given to the side it configures:
// passing a WriterOption to NewReader does not compile.
type WriterOption func(*writerOptions) error

// ReaderOption configures NewReader and NewReaderAt; a Reader keeps its
// options across Reset. Options validate their argument: the constructor
// returns the first option error, which wraps ErrInvalidArgument.
type ReaderOption func(*readerOptions) error

type writerOptions struct {
	chunkLog2   uint8
	concurrency int // resolved: >= 1
	codec       Codec
	contentType string
	metadata    map[string]string
	metrics     *streamMetrics // nil: none

	// Test hooks, set only by export_test.go.
	salt       []byte     // fixed salt instead of a random one
	firstIndex uint64     // index of the first chunk
	testHook   func(*job) // runs before each chunk is sealed
}

type readerOptions struct {
	concurrency int            // resolved: >= 1
	metrics     *streamMetrics // nil: none

	// Test hooks, set only by export_test.go.
	firstIndex uint64     // index of the first chunk (Reader only)
	testHook   func(*job) // runs before each chunk is opened (Reader only)
}

const (
	// DefaultChunkSize is the plaintext chunk size of a Writer without
	// WithChunkSize: 64 KiB.
	DefaultChunkSize = 1 << defaultChunkLog2
	// MinChunkSize and MaxChunkSize bound WithChunkSize and the chunk
	// size a reader accepts from a header.
	MinChunkSize = 1 << minChunkLog2
	MaxChunkSize = 1 << maxChunkLog2

	defaultChunkLog2 = 16
	minChunkLog2     = 12
	maxChunkLog2     = 24

	// maxConcurrency bounds WithWriterConcurrency and WithReaderConcurrency.
	maxConcurrency = 1024
)

func (o *writerOptions) setDefault() {
	*o = writerOptions{
		chunkLog2:   defaultChunkLog2,
		concurrency: runtime.GOMAXPROCS(0),
		codec:       CodecNone,
	}
}

func (o *readerOptions) setDefault() {
	*o = readerOptions{concurrency: runtime.GOMAXPROCS(0)}
}

func buildWriterOptions(opts []WriterOption) (*writerOptions, error) {
	o := new(writerOptions)
	o.setDefault()
	for _, opt := range opts {
		if opt == nil {
			continue
		}
		if err := opt(o); err != nil {
			return nil, err
		}
	}
	return o, nil
}

func buildReaderOptions(opts []ReaderOption) (*readerOptions, error) {
	o := new(readerOptions)
	o.setDefault()
	for _, opt := range opts {
		if opt == nil {
			continue
		}
		if err := opt(o); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// resolveConcurrency checks n and maps 0 to GOMAXPROCS.
func resolveConcurrency(n int) (int, error) {
	if n < 0 || n > maxConcurrency {
		return 0, fmt.Errorf("%w: concurrency %d is not in [0, %d]", ErrInvalidArgument, n, maxConcurrency)
	}
	if n == 0 {
		n = runtime.GOMAXPROCS(0)
	}
	return n, nil
}

// WithChunkSize sets the plaintext chunk size: a power of two from
// MinChunkSize (4 KiB) to MaxChunkSize (16 MiB). The default is
// DefaultChunkSize (64 KiB). (Readers take the chunk size from the
// header.)
func WithChunkSize(n int) WriterOption {
	return func(o *writerOptions) error {
		if n < MinChunkSize || n > MaxChunkSize || n&(n-1) != 0 {
			return fmt.Errorf("%w: chunk size %d is not a power of two from %d to %d", ErrInvalidArgument, n, MinChunkSize, MaxChunkSize)
		}
		l := uint8(0)
		for 1<<l < n {
			l++
		}
		o.chunkLog2 = l
		return nil
	}
}

// WithWriterConcurrency sets how many goroutines seal chunks, from 0 to
// 1024. 0 means GOMAXPROCS (the default). With 1, one worker goroutine
// seals while the caller's goroutine fills the next chunks, so that
// copying the input and AES-GCM overlap on two cores; a stream that fits
// in one chunk is sealed in the caller's goroutine and starts none. With
// more, the caller also seals queued chunks while it waits for them.
func WithWriterConcurrency(n int) WriterOption {
	return func(o *writerOptions) error {
		c, err := resolveConcurrency(n)
		if err != nil {
			return err
		}
		o.concurrency = c
		return nil
	}
}

// WithReaderConcurrency sets how many goroutines open chunks, from 0 to
// 1024. 0 means GOMAXPROCS (the default). A Reader with 1 opens chunks on
// one worker goroutine while the caller's goroutine reads the next ones
// from src; a stream that fits in one chunk is opened in the caller's
// goroutine and starts none. With more, the caller also opens queued
// chunks while it waits for them. A ReaderAt opens the chunks of one
// ReadAt on up to n goroutines (with 1, in the caller's).
func WithReaderConcurrency(n int) ReaderOption {
	return func(o *readerOptions) error {
		c, err := resolveConcurrency(n)
		if err != nil {
			return err
		}
		o.concurrency = c
		return nil
	}
}

// WithCompression compresses every chunk with codec before sealing it
// (the compression runs in the worker pool). A compressed stream is not
// seekable: NewReaderAt and CiphertextRange refuse it with
// ErrUnsupported. (Readers take the codec from the header.)
func WithCompression(codec Codec) WriterOption {
	return func(o *writerOptions) error {
		if !codec.valid() {
			return fmt.Errorf("%w: unknown compression codec %d", ErrInvalidArgument, codec)
		}
		o.codec = codec
		return nil
	}
}

// WithContentType records a media type (for example "application/json")
// in the authenticated header metadata, at most 4096 bytes of UTF-8. A
// reader finds it in Header.ContentType.
func WithContentType(contentType string) WriterOption {
	return func(o *writerOptions) error {
		if err := checkMetaValue(contentType); err != nil {
			return fmt.Errorf("%w: content type: %v", ErrInvalidArgument, err)
		}
		o.contentType = contentType
		return nil
	}
}

// WithMetadata records user key/value pairs in the authenticated header
// metadata. Keys are 1 to 64 printable ASCII bytes (0x21-0x7E), not
// "compression" or "content-type", which are reserved; values are at most
// 4096 bytes of UTF-8; at most 62 pairs. The map is copied. A reader
// finds them in Header.Metadata.
func WithMetadata(kv map[string]string) WriterOption {
	return func(o *writerOptions) error {
		if len(kv) > maxMetaEntries-2 {
			return fmt.Errorf("%w: %d metadata entries, at most %d", ErrInvalidArgument, len(kv), maxMetaEntries-2)
		}
		m := make(map[string]string, len(kv))
		for k, v := range kv {
			if k == metaCompression || k == metaContentType {
				return fmt.Errorf("%w: metadata key %q is reserved", ErrInvalidArgument, k)
			}
			if err := checkMetaKey(k); err != nil {
				return fmt.Errorf("%w: metadata key %q: %v", ErrInvalidArgument, k, err)
			}
			if err := checkMetaValue(v); err != nil {
				return fmt.Errorf("%w: metadata value of %q: %v", ErrInvalidArgument, k, err)
			}
			m[k] = v
		}
		o.metadata = m
		return nil
	}
}

func checkMetaKey(k string) error {
	if len(k) < 1 || len(k) > maxMetaKey {
		return fmt.Errorf("length %d is not in [1, %d]", len(k), maxMetaKey)
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x21 || k[i] > 0x7e {
			return fmt.Errorf("byte %#x at %d is not printable ASCII", k[i], i)
		}
	}
	return nil
}

func checkMetaValue(v string) error {
	if len(v) > maxMetaValue {
		return fmt.Errorf("length %d exceeds %d", len(v), maxMetaValue)
	}
	if !utf8.ValidString(v) {
		return fmt.Errorf("not valid UTF-8")
	}
	return nil
}

// sortedKeys returns the keys of m in ascending byte order.
func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
