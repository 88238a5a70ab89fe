package stream

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"strings"
	"unicode/utf8"
)

// Format constants (docs/FORMAT.md is the normative description).
const (
	// Version is the format version this package reads and writes.
	Version = 0x01
	// SuiteAES256GCMHKDFSHA256 is the only suite of version 1: AES-256-GCM
	// chunks under HKDF-SHA-256 subkeys with STREAM nonces.
	SuiteAES256GCMHKDFSHA256 = 0x01

	// FlagCompressed marks a stream whose chunks are compressed and
	// length-framed; the codec is in the "compression" metadata entry.
	FlagCompressed = 0x01
	knownFlags     = FlagCompressed

	// TagSize is the size of the GCM tag that each chunk adds.
	TagSize = 16
	// SaltSize is the size of the header's random salt.
	SaltSize = 32
	// MACSize is the size of the header MAC.
	MACSize = 32
	// KeySize is the required size of a data key.
	KeySize = 32

	// MaxHeaderSize bounds the whole header, MAC included.
	MaxHeaderSize = 65536
	// MaxKeyRecordSize bounds the key record field.
	MaxKeyRecordSize = 16384
	// MaxPartitionSize bounds the partition field.
	MaxPartitionSize = 1024

	maxMetaEntries = 64
	maxMetaKey     = 64
	maxMetaValue   = 4096

	// MaxChunks is the largest number of chunks in one stream.
	MaxChunks = 1 << 32

	// epochShift: chunks [e<<epochShift, (e+1)<<epochShift) use K_payload[e].
	epochShift = 24

	prefixSize     = 12 // magic, version, suite, chunk_log2, flags, header_len
	fixedSize      = prefixSize + SaltSize
	minHeaderSize  = fixedSize + 2 + 1 + 2 + 1 + 2 + MACSize
	frameSize      = 4 // length prefix of a compressed chunk
	markerStored   = 0x00
	markerCompress = 0x01

	metaCompression = "compression"
	metaContentType = "content-type"
)

// magic is the first four bytes of every stream. 0x89 is not ASCII and not
// a valid UTF-8 start byte, and the '\n' catches newline translation.
var magic = [4]byte{0x89, 'E', 'P', '\n'}

// Codec names a compression codec for WithCompression.
type Codec uint8

// Compression codecs.
const (
	CodecNone Codec = iota // no compression (the default)
	CodecZstd              // Zstandard, klauspost/compress/zstd, SpeedFastest
	CodecS2                // S2 block format, klauspost/compress/s2
)

var codecNames = [...]string{CodecNone: "none", CodecZstd: "zstd", CodecS2: "s2"}

func (c Codec) valid() bool { return int(c) < len(codecNames) }

// String returns the codec's name as written in the header: "none",
// "zstd" or "s2".
func (c Codec) String() string {
	if !c.valid() {
		return fmt.Sprintf("codec(%d)", uint8(c))
	}
	return codecNames[c]
}

// ParseCodec returns the codec named s ("none", "zstd" or "s2"); another
// name gives an error that wraps ErrInvalidArgument.
func ParseCodec(s string) (Codec, error) {
	for i, n := range codecNames {
		if n == s {
			return Codec(i), nil
		}
	}
	return 0, fmt.Errorf("%w: unknown compression codec %q (want none, zstd or s2)", ErrInvalidArgument, s)
}

// HeaderParams are the caller-supplied header fields of a new stream.
type HeaderParams struct {
	// KeyRecord is the stream's data key wrapped by the partition's
	// intermediate key: the JSON bytes of an Asherah EnvelopeKeyRecord.
	// It is opaque to this package. Required, at most MaxKeyRecordSize.
	KeyRecord []byte
	// Partition is the id of the partition whose intermediate key wraps
	// the data key. Required, valid UTF-8, at most MaxPartitionSize bytes.
	Partition string
}

// Header is a parsed stream header. ReadHeader returns it without
// authenticating it; NewReader and NewReaderAt authenticate it (with the
// data key) before they return. A Header is immutable and safe for
// concurrent use.
type Header struct {
	chunkLog2   uint8
	flags       uint8
	codec       Codec
	keyRecord   []byte
	partition   string
	contentType string
	metadata    map[string]string
	raw         []byte // the exact header bytes, MAC included
}

// ChunkSize is the plaintext size of every chunk but the last.
func (h *Header) ChunkSize() int { return 1 << h.chunkLog2 }

// Len is the size of the header in bytes: chunk i starts at
// Len() + i*(ChunkSize()+TagSize) in an uncompressed stream.
func (h *Header) Len() int64 { return int64(len(h.raw)) }

// Compression is the codec the chunks are compressed with.
func (h *Header) Compression() Codec { return h.codec }

// KeyRecord returns a copy of the key record (the wrapped data key).
func (h *Header) KeyRecord() []byte { return append([]byte(nil), h.keyRecord...) }

// Partition is the partition id whose intermediate key wraps the data key.
func (h *Header) Partition() string { return h.partition }

// ContentType is the media type recorded by WithContentType, or "".
func (h *Header) ContentType() string { return h.contentType }

// Metadata returns a copy of the user metadata recorded by WithMetadata.
func (h *Header) Metadata() map[string]string { return maps.Clone(h.metadata) }

// Bytes returns a copy of the header's exact bytes, MAC included.
func (h *Header) Bytes() []byte { return append([]byte(nil), h.raw...) }

func (h *Header) mac() []byte  { return h.raw[len(h.raw)-MACSize:] }
func (h *Header) salt() []byte { return h.raw[prefixSize:fixedSize] }

// ReadHeader reads and parses a stream header from src. It reads exactly
// the header's bytes and nothing more, so src is left at the first chunk,
// ready for NewReader. The header is not authenticated: its fields are
// only hints (which partition and key to load) until NewReader or
// NewReaderAt verify its MAC. Every length is bounded, so a hostile
// header costs at most MaxHeaderSize bytes of memory.
//
// Errors: a *HeaderError that matches ErrUnsupported (not an enc-pipe
// stream, or a version, suite, flag or codec this build does not know) or
// ErrAuth (a field that breaks the format's rules); ErrTruncated (the input
// ends inside the header, or is empty); or src's error.
func ReadHeader(src io.Reader) (*Header, error) {
	var prefix [prefixSize]byte
	if _, err := io.ReadFull(src, prefix[:]); err != nil {
		return nil, readErr(err)
	}
	if [4]byte(prefix[:4]) != magic {
		return nil, notStream()
	}
	if err := checkPrefix(prefix[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(prefix[8:12])
	raw := make([]byte, n)
	copy(raw, prefix[:])
	if _, err := io.ReadFull(src, raw[prefixSize:]); err != nil {
		return nil, readErr(err)
	}
	return parseHeader(raw)
}

// ParseHeader parses a header held in memory. b must hold the whole header
// and may hold more (the bytes after the header are ignored; Header.Len
// says where the first chunk starts). Errors are those of ReadHeader.
func ParseHeader(b []byte) (*Header, error) {
	if len(b) < prefixSize {
		if len(b) >= 4 && [4]byte(b[:4]) != magic {
			return nil, notStream()
		}
		return nil, ErrTruncated
	}
	if [4]byte(b[:4]) != magic {
		return nil, notStream()
	}
	if err := checkPrefix(b); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint32(b[8:12]))
	if len(b) < n {
		return nil, ErrTruncated
	}
	return parseHeader(append([]byte(nil), b[:n]...))
}

// notStream is the error for input that does not start with the magic (a
// new value each time: callers may hold on to a *HeaderError).
func notStream() error {
	return headerErr(ErrUnsupported, "magic", "not an enc-pipe stream (bad magic)")
}

// readErr maps a short read to ErrTruncated and keeps other I/O errors.
func readErr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return ErrTruncated
	}
	return err
}

// checkPrefix validates the fixed 12-byte prefix after the magic.
func checkPrefix(p []byte) error {
	if p[4] != Version {
		return headerErr(ErrUnsupported, "version", "unsupported version %d (this build reads version %d)", p[4], Version)
	}
	if p[5] != SuiteAES256GCMHKDFSHA256 {
		return headerErr(ErrUnsupported, "suite", "unsupported suite %d", p[5])
	}
	if p[6] < minChunkLog2 || p[6] > maxChunkLog2 {
		return headerErr(ErrAuth, "chunk size", "invalid header: chunk size 2^%d is not in [2^%d, 2^%d]", p[6], minChunkLog2, maxChunkLog2)
	}
	if p[7]&^knownFlags != 0 {
		return headerErr(ErrUnsupported, "flags", "unsupported flags %#02x", p[7])
	}
	n := binary.BigEndian.Uint32(p[8:12])
	if n < minHeaderSize || n > MaxHeaderSize {
		return headerErr(ErrAuth, "header length", "invalid header: header length %d is not in [%d, %d]", n, minHeaderSize, MaxHeaderSize)
	}
	return nil
}

// parseHeader parses raw, which holds exactly one header whose prefix was
// checked. raw is retained.
func parseHeader(raw []byte) (*Header, error) {
	h := &Header{chunkLog2: raw[6], flags: raw[7], raw: raw}
	body := raw[fixedSize : len(raw)-MACSize]
	p := parser{b: body}

	h.keyRecord = p.field16("key record", 1, MaxKeyRecordSize)
	partition := p.field16("partition", 1, MaxPartitionSize)
	h.partition = string(partition)
	if p.err == nil && !utf8.Valid(partition) {
		p.fail("partition", "partition is not valid UTF-8")
	}
	count := p.u16("metadata count")
	if p.err == nil && count > maxMetaEntries {
		p.fail("metadata", fmt.Sprintf("metadata count %d exceeds %d", count, maxMetaEntries))
	}
	var prev string
	for i := 0; i < int(count) && p.err == nil; i++ {
		k := string(p.field8("metadata key", 1, maxMetaKey))
		v := string(p.field16("metadata value", 0, maxMetaValue))
		if p.err != nil {
			break
		}
		if err := checkMetaKey(k); err != nil {
			p.fail("metadata", fmt.Sprintf("metadata key %d: %v", i, err))
			break
		}
		if !utf8.ValidString(v) {
			p.fail("metadata", fmt.Sprintf("metadata value of %q is not valid UTF-8", k))
			break
		}
		if i > 0 && k <= prev {
			p.fail("metadata", "metadata keys are not in strictly ascending order")
			break
		}
		prev = k
		switch k {
		case metaCompression:
			c, err := ParseCodec(v)
			if err != nil || c == CodecNone {
				return nil, headerErr(ErrUnsupported, "compression", "unsupported compression codec %q", v)
			}
			h.codec = c
		case metaContentType:
			h.contentType = v
		default:
			if h.metadata == nil {
				h.metadata = make(map[string]string)
			}
			h.metadata[k] = v
		}
	}
	if p.err == nil && len(p.b) != 0 {
		p.fail("header length", fmt.Sprintf("%d unused bytes before the MAC", len(p.b)))
	}
	if p.err != nil {
		return nil, p.err
	}
	if (h.flags&FlagCompressed != 0) != (h.codec != CodecNone) {
		return nil, headerErr(ErrAuth, "compression", "invalid header: compressed flag and compression metadata disagree")
	}
	return h, nil
}

// parser reads length-prefixed fields; the first error sticks.
type parser struct {
	b   []byte
	err error
}

// fail records a rule broken in field (see HeaderError.Field).
func (p *parser) fail(field, msg string) {
	if p.err == nil {
		p.err = headerErr(ErrAuth, field, "invalid header: %s", msg)
	}
}

// fieldOf maps a parser name ("metadata key length", ...) to a
// HeaderError.Field.
func fieldOf(name string) string {
	for _, f := range [...]string{"key record", "partition", "metadata"} {
		if strings.HasPrefix(name, f) {
			return f
		}
	}
	return name
}

func (p *parser) take(name string, n int) []byte {
	if p.err != nil {
		return nil
	}
	if n > len(p.b) {
		p.fail(fieldOf(name), fmt.Sprintf("%s runs past the end of the header", name))
		return nil
	}
	v := p.b[:n:n]
	p.b = p.b[n:]
	return v
}

func (p *parser) u16(name string) int {
	b := p.take(name, 2)
	if b == nil {
		return 0
	}
	return int(binary.BigEndian.Uint16(b))
}

func (p *parser) field16(name string, lo, hi int) []byte {
	n := p.u16(name + " length")
	if p.err == nil && (n < lo || n > hi) {
		p.fail(fieldOf(name), fmt.Sprintf("%s length %d is not in [%d, %d]", name, n, lo, hi))
	}
	return p.take(name, n)
}

func (p *parser) field8(name string, lo, hi int) []byte {
	b := p.take(name+" length", 1)
	if b == nil {
		return nil
	}
	n := int(b[0])
	if n < lo || n > hi {
		p.fail(fieldOf(name), fmt.Sprintf("%s length %d is not in [%d, %d]", name, n, lo, hi))
	}
	return p.take(name, n)
}

// buildHeader serializes a header without its MAC (the caller appends the
// MAC). It validates params the way parseHeader validates input.
func buildHeader(o *writerOptions, params HeaderParams, salt []byte) (*Header, error) {
	if len(params.KeyRecord) < 1 || len(params.KeyRecord) > MaxKeyRecordSize {
		return nil, fmt.Errorf("%w: key record length %d is not in [1, %d]", ErrInvalidArgument, len(params.KeyRecord), MaxKeyRecordSize)
	}
	if len(params.Partition) < 1 || len(params.Partition) > MaxPartitionSize {
		return nil, fmt.Errorf("%w: partition length %d is not in [1, %d]", ErrInvalidArgument, len(params.Partition), MaxPartitionSize)
	}
	if !utf8.ValidString(params.Partition) {
		return nil, fmt.Errorf("%w: partition is not valid UTF-8", ErrInvalidArgument)
	}
	meta := maps.Clone(o.metadata)
	if meta == nil {
		meta = make(map[string]string)
	}
	var flags uint8
	if o.codec != CodecNone {
		flags |= FlagCompressed
		meta[metaCompression] = o.codec.String()
	}
	if o.contentType != "" {
		meta[metaContentType] = o.contentType
	}

	b := make([]byte, 0, 256)
	b = append(b, magic[:]...)
	b = append(b, Version, SuiteAES256GCMHKDFSHA256, o.chunkLog2, flags, 0, 0, 0, 0)
	b = append(b, salt...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(params.KeyRecord)))
	b = append(b, params.KeyRecord...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(params.Partition)))
	b = append(b, params.Partition...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(meta)))
	for _, k := range sortedKeys(meta) {
		b = append(b, byte(len(k)))
		b = append(b, k...)
		b = binary.BigEndian.AppendUint16(b, uint16(len(meta[k])))
		b = append(b, meta[k]...)
	}
	total := len(b) + MACSize
	if total > MaxHeaderSize {
		return nil, fmt.Errorf("%w: header would be %d bytes, more than %d", ErrInvalidArgument, total, MaxHeaderSize)
	}
	binary.BigEndian.PutUint32(b[8:12], uint32(total))
	b = append(b, make([]byte, MACSize)...)

	h := &Header{
		chunkLog2:   o.chunkLog2,
		flags:       flags,
		codec:       o.codec,
		keyRecord:   b[fixedSize+2 : fixedSize+2+len(params.KeyRecord)],
		partition:   params.Partition,
		contentType: o.contentType,
		raw:         b,
	}
	if len(o.metadata) > 0 {
		h.metadata = maps.Clone(o.metadata)
	}
	return h, nil
}
