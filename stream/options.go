package stream

import (
	"fmt"
	"runtime"
	"sort"
	"unicode/utf8"
)

// Option configures a Writer, Reader or ReaderAt. Options validate their
// argument; the constructor returns the first option error, which wraps
// ErrInvalidOption. Options that do not apply to a constructor are
// ignored by it, as each option's documentation says.
type Option func(*options) error

type options struct {
	chunkLog2   uint8
	concurrency int // resolved: >= 1
	codec       Codec
	contentType string
	metadata    map[string]string
	ownKey      bool

	// Test hooks, set only by export_test.go.
	salt       []byte     // fixed salt instead of a random one
	firstIndex uint64     // index of the first chunk
	testHook   func(*job) // runs before each chunk is processed
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
)

func (o *options) setDefault() {
	*o = options{
		chunkLog2:   defaultChunkLog2,
		concurrency: runtime.GOMAXPROCS(0),
		codec:       CodecNone,
	}
}

func buildOptions(opts []Option) (*options, error) {
	o := new(options)
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

// WithChunkSize sets the plaintext chunk size of a Writer: a power of two
// from MinChunkSize (4 KiB) to MaxChunkSize (16 MiB). The default is
// DefaultChunkSize (64 KiB). Readers ignore it: they use the chunk size
// recorded in the header.
func WithChunkSize(n int) Option {
	return func(o *options) error {
		if n < MinChunkSize || n > MaxChunkSize || n&(n-1) != 0 {
			return fmt.Errorf("%w: chunk size %d is not a power of two from %d to %d", ErrInvalidOption, n, MinChunkSize, MaxChunkSize)
		}
		l := uint8(0)
		for 1<<l < n {
			l++
		}
		o.chunkLog2 = l
		return nil
	}
}

// WithConcurrency sets how many goroutines seal or open chunks. 0 means
// GOMAXPROCS (the default). With 1, one worker goroutine seals or opens
// while the caller's goroutine reads the next chunks, so that I/O and
// AES-GCM overlap on two cores; a stream that fits in one chunk is
// processed in the caller's goroutine and starts none. With more, the
// caller also seals or opens queued chunks while it waits for them. A
// ReaderAt opens the chunks of one ReadAt on up to n goroutines (with 1,
// in the caller's).
func WithConcurrency(n int) Option {
	return func(o *options) error {
		if n < 0 || n > 1024 {
			return fmt.Errorf("%w: concurrency %d is not in [0, 1024]", ErrInvalidOption, n)
		}
		if n == 0 {
			n = runtime.GOMAXPROCS(0)
		}
		o.concurrency = n
		return nil
	}
}

// WithCompression makes a Writer compress every chunk with codec before
// sealing it (the compression runs in the worker pool). A compressed
// stream is not seekable: NewReaderAt and CiphertextRange refuse it with
// ErrNotSeekable. Readers ignore this option: the header names the codec.
func WithCompression(codec Codec) Option {
	return func(o *options) error {
		if !codec.valid() {
			return fmt.Errorf("%w: unknown compression codec %d", ErrInvalidOption, codec)
		}
		o.codec = codec
		return nil
	}
}

// WithContentType records a media type (for example "application/json")
// in the authenticated header metadata of a Writer's stream. At most 4096
// bytes of UTF-8. Readers ignore it; see Header.ContentType.
func WithContentType(contentType string) Option {
	return func(o *options) error {
		if err := checkMetaValue(contentType); err != nil {
			return fmt.Errorf("%w: content type: %v", ErrInvalidOption, err)
		}
		o.contentType = contentType
		return nil
	}
}

// WithMetadata records user key/value pairs in the authenticated header
// metadata of a Writer's stream. Keys are 1 to 64 printable ASCII bytes
// (0x21-0x7E), not "compression" or "content-type", which are reserved;
// values are at most 4096 bytes of UTF-8; at most 62 pairs. The map is
// copied. Readers ignore it; see Header.Metadata.
func WithMetadata(kv map[string]string) Option {
	return func(o *options) error {
		if len(kv) > maxMetaEntries-2 {
			return fmt.Errorf("%w: %d metadata entries, at most %d", ErrInvalidOption, len(kv), maxMetaEntries-2)
		}
		m := make(map[string]string, len(kv))
		for k, v := range kv {
			if k == metaCompression || k == metaContentType {
				return fmt.Errorf("%w: metadata key %q is reserved", ErrInvalidOption, k)
			}
			if err := checkMetaKey(k); err != nil {
				return fmt.Errorf("%w: metadata key %q: %v", ErrInvalidOption, k, err)
			}
			if err := checkMetaValue(v); err != nil {
				return fmt.Errorf("%w: metadata value of %q: %v", ErrInvalidOption, k, err)
			}
			m[k] = v
		}
		o.metadata = m
		return nil
	}
}

// WithKeyOwnership hands the data key to the Writer, Reader or ReaderAt:
// it closes the key when it is closed, when it fails for good (a sticky
// error), when a Reader reaches the end of the stream, and when the
// constructor itself fails. Without this option the caller owns the key
// and must keep it open until Close returns.
func WithKeyOwnership() Option {
	return func(o *options) error {
		o.ownKey = true
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
