package records

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"strconv"
	"unicode/utf8"

	"github.com/enc-pipe/enc-pipe/envelope"
)

// Format is an encrypted record's format.
type Format int

// Record formats. A reader tells them apart by the first byte: '{' (after
// optional JSON whitespace) is a DataRowRecord, BinaryMagic the binary form.
const (
	// FormatDRR is Asherah's DataRowRecord as JSON, readable by any
	// Asherah client that shares the metastore. Each record carries a
	// fresh data key. It authenticates nothing outside the value.
	FormatDRR Format = iota + 1
	// FormatBinary is enc-pipe's compact binary record (docs/FORMAT.md):
	// a cached data key with bounded uses and lifetime, and associated
	// data binding the record to its partition, its key and its field.
	FormatBinary
)

// String is "drr" or "binary".
func (f Format) String() string {
	switch f {
	case FormatDRR:
		return "drr"
	case FormatBinary:
		return "binary"
	}
	return "Format(" + strconv.Itoa(int(f)) + ")"
}

// ParseFormat parses "drr" or "binary".
func ParseFormat(s string) (Format, error) {
	switch s {
	case "drr":
		return FormatDRR, nil
	case "binary":
		return FormatBinary, nil
	}
	return 0, errors.New("records: unknown format " + strconv.Quote(s) + " (want drr or binary)")
}

// Binary record constants (docs/FORMAT.md, "Binary records").
const (
	// BinaryMagic is the first byte of a binary record. It is not a byte
	// a JSON text can start with, nor valid UTF-8 followed by the version.
	BinaryMagic byte = 0xEC
	// BinaryVersion is the version byte this package writes and reads.
	BinaryVersion byte = 1

	flagKeyBound  = 0x01 // the record key is in the associated data
	flagKeyInside = 0x02 // the record key is inside the ciphertext
	flagsKnown    = flagKeyBound | flagKeyInside

	maxKeyIDLen   = 1024
	minWrappedLen = envelope.Overhead + 1
	maxWrappedLen = 256
	nonceSize     = envelope.GCMNonceSize
	tagSize       = envelope.GCMTagSize
	aadLabel      = "enc-pipe record v1\x00"
)

// DetectFormat tells which format an encrypted value is in, or false when
// it is neither.
func DetectFormat(value []byte) (Format, bool) {
	for _, c := range value {
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		case '{':
			return FormatDRR, true
		}
		break
	}
	if len(value) > 0 && value[0] == BinaryMagic {
		return FormatBinary, true
	}
	return 0, false
}

// binHeader is a parsed binary record.
type binHeader struct {
	flags     byte
	ikID      string
	ikCreated int64
	wrapped   []byte
	nonce     []byte
	sealed    []byte // ciphertext || tag
	headerLen int    // bytes from the magic to the end of the nonce
}

// appendBinaryPrefix appends the header of a binary record up to (not
// including) the nonce.
func appendBinaryPrefix(b []byte, flags byte, rec *envelope.EnvelopeKeyRecord) []byte {
	b = append(b, BinaryMagic, BinaryVersion, flags)
	b = binary.AppendUvarint(b, uint64(len(rec.ParentKeyMeta.ID)))
	b = append(b, rec.ParentKeyMeta.ID...)
	b = binary.AppendUvarint(b, uint64(rec.ParentKeyMeta.Created))
	b = binary.AppendUvarint(b, uint64(len(rec.EncryptedKey)))
	return append(b, rec.EncryptedKey...)
}

var errBinary = errors.New("malformed binary record")

// parseBinary parses a binary record's header. It checks the layout only;
// authentication comes later.
func parseBinary(b []byte) (binHeader, error) {
	var h binHeader
	if len(b) < 3 || b[0] != BinaryMagic {
		return h, recordErr(KindFormat, errBinary)
	}
	if b[1] != BinaryVersion {
		return h, recordErrf(KindFormat, "binary record version %d is not supported (this reader knows %d)", b[1], BinaryVersion)
	}
	h.flags = b[2]
	if h.flags&^flagsKnown != 0 || h.flags == flagKeyBound|flagKeyInside {
		return h, recordErrf(KindFormat, "binary record flags %#02x are not supported", h.flags)
	}
	p := 3
	n, ok := uvarint(b, &p)
	if !ok || n == 0 || n > maxKeyIDLen || uint64(len(b)-p) < n {
		return h, recordErr(KindFormat, errBinary)
	}
	id := b[p : p+int(n)]
	if !utf8.Valid(id) {
		return h, recordErr(KindFormat, errBinary)
	}
	h.ikID = string(id)
	p += int(n)
	created, ok := uvarint(b, &p)
	if !ok || created > 1<<62 {
		return h, recordErr(KindFormat, errBinary)
	}
	h.ikCreated = int64(created)
	n, ok = uvarint(b, &p)
	if !ok || n < minWrappedLen || n > maxWrappedLen || uint64(len(b)-p) < n {
		return h, recordErr(KindFormat, errBinary)
	}
	h.wrapped = b[p : p+int(n)]
	p += int(n)
	if len(b)-p < nonceSize+tagSize {
		return h, recordErr(KindFormat, errBinary)
	}
	h.nonce = b[p : p+nonceSize]
	p += nonceSize
	h.headerLen = p
	h.sealed = b[p:]
	return h, nil
}

// uvarint reads a minimally encoded uvarint at b[*p:].
func uvarint(b []byte, p *int) (uint64, bool) {
	v, n := binary.Uvarint(b[*p:])
	if n <= 0 || n != uvarintLen(v) {
		return 0, false
	}
	*p += n
	return v, true
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// appendAAD appends a binary record's associated data: the label, the
// header (magic to nonce), the partition, the field name ("" for a whole
// record) and, when bound, the record key (length+1, 0 for a null key).
func appendAAD(b, header []byte, partition, field string, flags byte, key []byte) []byte {
	b = append(b, aadLabel...)
	b = append(b, header...)
	b = binary.AppendUvarint(b, uint64(len(partition)))
	b = append(b, partition...)
	b = binary.AppendUvarint(b, uint64(len(field)))
	b = append(b, field...)
	if flags&flagKeyBound != 0 {
		b = appendOptional(b, key)
	}
	return b
}

// appendOptional appends uvarint(len+1) and the bytes, or 0 for nil.
func appendOptional(b, v []byte) []byte {
	if v == nil {
		return append(b, 0)
	}
	b = binary.AppendUvarint(b, uint64(len(v))+1)
	return append(b, v...)
}

// readOptional reads what appendOptional wrote.
func readOptional(b []byte, p *int) ([]byte, bool) {
	n, ok := uvarint(b, p)
	if !ok || n > uint64(len(b)-*p)+1 {
		return nil, false
	}
	if n == 0 {
		return nil, true
	}
	v := b[*p : *p+int(n-1)]
	*p += int(n - 1)
	return v, true
}

// appendDRRJSON appends drr as Asherah writes it, byte for byte what
// encoding/json.Marshal gives for envelope.DataRowRecord.
func appendDRRJSON(b []byte, drr *envelope.DataRowRecord) []byte {
	k := drr.Key
	b = append(b, `{"Key":{`...)
	if k.Revoked {
		b = append(b, `"Revoked":true,`...)
	}
	b = append(b, `"Created":`...)
	b = strconv.AppendInt(b, k.Created, 10)
	b = append(b, `,"Key":`...)
	b = appendBase64(b, k.EncryptedKey)
	if k.ParentKeyMeta != nil {
		b = append(b, `,"ParentKeyMeta":{"KeyId":`...)
		b = appendJSONString(b, k.ParentKeyMeta.ID)
		b = append(b, `,"Created":`...)
		b = strconv.AppendInt(b, k.ParentKeyMeta.Created, 10)
		b = append(b, '}')
	}
	b = append(b, `},"Data":`...)
	b = appendBase64(b, drr.Data)
	return append(b, '}')
}

func appendBase64(b, v []byte) []byte {
	if v == nil {
		return append(b, "null"...)
	}
	b = append(b, '"')
	b = base64.StdEncoding.AppendEncode(b, v)
	return append(b, '"')
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as encoding/json.Marshal does (HTML
// characters, U+2028 and U+2029 escaped, invalid UTF-8 as U+FFFD).
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, "\uFFFD"...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
