package records

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/enc-pipe/enc-pipe/envelope"
	"github.com/enc-pipe/enc-pipe/internal/jsonscan"
	"github.com/enc-pipe/enc-pipe/securebuf"
)

// EncryptConfig configures an Encrypter. Only Factory and Partition are
// required.
type EncryptConfig struct {
	// Factory hands out the partitions' sessions. The Encrypter does not
	// close it.
	Factory *envelope.SessionFactory
	// Partition says where each record's partition comes from.
	Partition PartitionSource
	// Format of the encrypted values. Default: FormatDRR.
	Format Format
	// JSON requires every value to be one JSON text with no duplicate
	// member names at any depth. A FieldPartition and Fields imply it.
	JSON bool
	// Fields, when not empty, encrypts only these top-level members of
	// each value (a JSON object), in place: each becomes a DataRowRecord
	// object (FormatDRR) or the standard base64 of a binary record, as a
	// JSON string (FormatBinary), whose plaintext is the member's JSON
	// text. Absent members are left absent. A field partition must not be
	// one of them.
	Fields []string
	// EncryptKey (FormatBinary, whole records) moves the record key into
	// the ciphertext: the record leaves with no key. Records keep their
	// source partition only through a partitioner that does not need the
	// key.
	EncryptKey bool
	// UnboundKey leaves the record key out of a binary record's
	// associated data. By default it is bound: a value moved to a record
	// with another key fails to decrypt (KindAuth). Set it when records
	// are re-keyed between encryption and decryption.
	UnboundKey bool
	// MaxValueSize makes a record whose encrypted value would be longer
	// fail with KindSize; the error says how large a whole record of its
	// partition may be. 0 means no limit. For JSON Lines, use the sink's
	// LineOptions.MaxValueSize.
	MaxValueSize int
	// SessionCacheSize bounds the partitions kept open. Default:
	// DefaultSessionCacheSize.
	SessionCacheSize int
	// DataKeyMaxUses, DataKeyMaxBytes and DataKeyMaxAge bound the use of
	// one data key of a partition (FormatBinary). Defaults:
	// DefaultDataKeyMaxUses (at most 2^32), DefaultDataKeyMaxBytes,
	// DefaultDataKeyMaxAge.
	DataKeyMaxUses  uint64
	DataKeyMaxBytes int64
	DataKeyMaxAge   time.Duration
	// Secrets provides the locked scratch slots that hold data keys while
	// cached. Default: a securebuf.Factory of the Encrypter's own.
	Secrets *securebuf.Factory
	// Now is the clock for data key ages. Default: time.Now.
	Now func() time.Time
}

// Encrypter is the Transformer that encrypts records. It is safe for
// concurrent use. Close it after the last Transform has returned.
type Encrypter struct {
	cfg    EncryptConfig
	fields map[string]bool
	flags  byte
	lim    dataKeyLimits
	cache  *keyCache
	scans  scanners
}

var _ Transformer = (*Encrypter)(nil)

// NewEncrypter checks cfg and returns an Encrypter.
func NewEncrypter(cfg EncryptConfig) (*Encrypter, error) {
	if !cfg.Partition.IsSet() {
		return nil, errors.New("records: EncryptConfig.Partition is required")
	}
	if err := cfg.Partition.validate(); err != nil {
		return nil, err
	}
	if cfg.Format == 0 {
		cfg.Format = FormatDRR
	}
	if cfg.Format != FormatDRR && cfg.Format != FormatBinary {
		return nil, fmt.Errorf("records: unknown %v", cfg.Format)
	}
	e := &Encrypter{cfg: cfg}
	var err error
	if e.fields, err = fieldSet(cfg.Fields, cfg.Partition); err != nil {
		return nil, err
	}
	if cfg.EncryptKey && (cfg.Format != FormatBinary || e.fields != nil) {
		return nil, errors.New("records: EncryptKey needs FormatBinary and whole records")
	}
	switch {
	case cfg.EncryptKey:
		e.flags = flagKeyInside
	case !cfg.UnboundKey:
		e.flags = flagKeyBound
	}
	e.lim = dataKeyLimits{uses: cfg.DataKeyMaxUses, bytes: cfg.DataKeyMaxBytes, age: cfg.DataKeyMaxAge, now: cfg.Now}
	if e.lim.uses == 0 {
		e.lim.uses = DefaultDataKeyMaxUses
	}
	e.lim.uses = min(e.lim.uses, maxDataKeyUses)
	if e.lim.bytes <= 0 {
		e.lim.bytes = DefaultDataKeyMaxBytes
	}
	if e.lim.age <= 0 {
		e.lim.age = DefaultDataKeyMaxAge
	}
	if e.lim.now == nil {
		e.lim.now = time.Now
	}
	if e.cache, err = newKeyCache(cfg.Factory, cfg.Secrets, cfg.SessionCacheSize, 0); err != nil {
		return nil, err
	}
	return e, nil
}

func fieldSet(fields []string, ps PartitionSource) (map[string]bool, error) {
	if len(fields) == 0 {
		return nil, nil
	}
	set := map[string]bool{}
	for _, f := range fields {
		if f == "" {
			return nil, errors.New("records: empty field name")
		}
		set[f] = true
	}
	if ps.kind == partitionField && set[string(ps.path[0])] {
		return nil, fmt.Errorf("records: the partition field %q cannot be encrypted: it must stay readable", ps.value)
	}
	return set, nil
}

// Close closes the cached sessions and data keys. It does not close the
// factory.
func (e *Encrypter) Close() error { return e.cache.close() }

// CacheStats reports the session and data key lookups served from the
// caches and those that had to load.
func (e *Encrypter) CacheStats() (hits, misses int64) {
	return e.cache.stats()
}

// Transform encrypts r's value (or its fields) under its partition and sets
// r.Partition. A null value (a tombstone) is passed on as it is. Record
// errors are *RecordError; other errors (a metastore or KMS failure) must
// stop the run.
func (e *Encrypter) Transform(ctx context.Context, r *Record) error {
	if r.Value == nil {
		return nil
	}
	needJSON := e.cfg.JSON || e.fields != nil || e.cfg.Partition.kind == partitionField
	var res *jsonscan.Result
	if needJSON {
		sc := e.scans.get()
		defer e.scans.put(sc)
		var err error
		if res, err = sc.Scan(r.Value, jsonscan.Options{Path: e.cfg.Partition.path, Members: e.fields != nil}); err != nil {
			return inputErr(err)
		}
	}
	var partition string
	var err error
	if e.cfg.Partition.kind == partitionField {
		partition, err = e.cfg.Partition.fromScan(r.Value, res)
	} else {
		partition, err = e.cfg.Partition.fromRecord(r)
	}
	if err != nil {
		return err
	}
	ent, err := e.cache.get(partition)
	if err != nil {
		return classify(err, partition)
	}
	defer e.cache.put(ent)

	var out []byte
	if e.fields != nil {
		if !res.Object {
			return recordErrf(KindJSON, "value is not a JSON object")
		}
		out, err = e.sealFields(ctx, ent, r, res)
	} else {
		out, err = e.seal(ctx, ent, r, r.Value, "", e.cfg.EncryptKey)
	}
	if err != nil {
		return err
	}
	if limit := e.cfg.MaxValueSize; limit > 0 && len(out) > limit {
		if e.fields != nil {
			return recordErrf(KindSize, "with its fields encrypted, this object would take %d bytes, more than the limit of %d bytes", len(out), limit)
		}
		return recordErrf(KindSize, "a record of %d bytes takes %d bytes encrypted, more than the limit of %d bytes; records of this partition hold at most %d bytes",
			len(r.Value), len(out), limit, e.maxPlaintext(len(r.Value), len(out)))
	}
	r.Value = out
	r.Partition = partition
	if e.cfg.EncryptKey {
		r.Key = nil
	}
	return nil
}

// maxPlaintext returns the largest whole record that encrypts to at most
// MaxValueSize bytes, given that one of n bytes took out bytes under the
// same partition key. Only the payload grows with the plaintext: in a
// DataRowRecord its base64 (4 characters per started 3 bytes of
// plaintext, nonce and tag), in a binary record the ciphertext, byte for
// byte; the rest (wrapped data key, key id, timestamps) is fixed.
func (e *Encrypter) maxPlaintext(n, out int) int {
	limit := e.cfg.MaxValueSize
	var m int
	if e.cfg.Format == FormatDRR {
		fixed := out - base64.StdEncoding.EncodedLen(n+envelope.Overhead)
		m = (limit-fixed)/4*3 - envelope.Overhead
	} else {
		m = limit - (out - n)
	}
	return max(m, 0)
}

// seal encrypts pt in the configured format: a DataRowRecord's JSON, or a
// binary record bound to field ("" for a whole record).
func (e *Encrypter) seal(ctx context.Context, ent *entry, r *Record, pt []byte, field string, keyInside bool) ([]byte, error) {
	if e.cfg.Format == FormatDRR {
		drr, err := ent.sess.Encrypt(ctx, pt)
		if err != nil {
			return nil, classify(err, ent.partition)
		}
		return appendDRRJSON(make([]byte, 0, base64.StdEncoding.EncodedLen(len(drr.Data))+160+2*len(ent.partition)), drr), nil
	}
	parcel := pt
	if keyInside {
		parcel = append(appendOptional(make([]byte, 0, len(r.Key)+len(pt)+binary.MaxVarintLen64), r.Key), pt...)
		defer clear(parcel)
	}
	flags := e.flags
	if field != "" {
		flags &^= flagKeyInside
	}
	dk, use, err := e.cache.currentKey(ctx, ent, flags, e.lim, len(parcel))
	if err != nil {
		return nil, classify(err, ent.partition)
	}
	defer dk.release()
	out := make([]byte, 0, len(dk.prefix)+nonceSize+len(parcel)+tagSize)
	out = append(out, dk.prefix...)
	out[2] = flags
	out = append(out, dk.noncePrefix[:]...)
	out = binary.BigEndian.AppendUint64(out, use)
	aad := appendAAD(make([]byte, 0, len(aadLabel)+len(out)+len(ent.partition)+len(field)+len(r.Key)+24), out, ent.partition, field, flags, r.Key)
	gcm, err := newGCM(dk.key)
	if err != nil {
		return nil, err
	}
	return gcm.Seal(out, out[len(out)-nonceSize:], parcel, aad), nil
}

func (e *Encrypter) sealFields(ctx context.Context, ent *entry, r *Record, res *jsonscan.Result) ([]byte, error) {
	v := r.Value
	out := make([]byte, 0, len(v)+len(e.fields)*256)
	out = append(out, '{')
	for i, m := range res.Members {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, v[m.NameStart:m.NameEnd]...)
		out = append(out, ':')
		val := v[m.ValueStart:m.ValueEnd]
		if !e.fields[string(m.Name)] {
			out = append(out, val...)
			continue
		}
		sealed, err := e.seal(ctx, ent, r, val, string(m.Name), false)
		if err != nil {
			return nil, err
		}
		if e.cfg.Format == FormatDRR {
			out = append(out, sealed...)
		} else {
			out = append(out, '"')
			out = base64.StdEncoding.AppendEncode(out, sealed)
			out = append(out, '"')
		}
	}
	return append(out, '}'), nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// classify turns an envelope error into a record error when it is the
// record's fault, and wraps it otherwise (a failure that must stop the
// run).
func classify(err error, partition string) error {
	var ke *envelope.KeyError
	switch {
	case errors.As(err, &ke):
		if errors.Is(err, envelope.ErrNotFound) {
			return recordErr(KindKey, err)
		}
	case errors.Is(err, envelope.ErrPartitionMismatch):
		return recordErr(KindPartition, err)
	case errors.Is(err, envelope.ErrEmptyPartition):
		return recordErr(KindPartition, err)
	case errors.Is(err, envelope.ErrInvalidRecord):
		return recordErr(KindFormat, err)
	case errors.Is(err, envelope.ErrDecrypt):
		return recordErr(KindAuth, err)
	case errors.Is(err, envelope.ErrDataTooLarge):
		return recordErr(KindSize, err)
	}
	return fmt.Errorf("records: partition %q: %w", partition, err)
}

// DecryptConfig configures a Decrypter. Only Factory is required.
type DecryptConfig struct {
	// Factory hands out the partitions' sessions. The Decrypter does not
	// close it.
	Factory *envelope.SessionFactory
	// Partition says where each record's partition comes from; a record
	// whose key is not that partition's fails with KindPartition. Unset,
	// it is read from the key id in each record's ciphertext, which any
	// partition of the service and product passes. A FieldPartition works
	// with Fields only (a whole record's fields are encrypted).
	Partition PartitionSource
	// JSON requires every decrypted value to be one JSON text with no
	// duplicate member names.
	JSON bool
	// SingleLine refuses decrypted values that contain a line feed or a
	// carriage return (JSON Lines output).
	SingleLine bool
	// Fields decrypts these top-level members of each value in place, as
	// EncryptConfig.Fields wrote them. All of a record's encrypted fields
	// must belong to one partition.
	Fields []string
	// SessionCacheSize bounds the partitions kept open. Default:
	// DefaultSessionCacheSize.
	SessionCacheSize int
	// DataKeyCacheSize bounds the unwrapped data keys of binary records
	// kept for later records. Default: DefaultDataKeyCacheSize; negative
	// means none.
	DataKeyCacheSize int
	// Secrets provides the locked scratch slots for data keys. Default: a
	// securebuf.Factory of the Decrypter's own.
	Secrets *securebuf.Factory
}

// Decrypter is the Transformer that decrypts records of both formats. It
// is safe for concurrent use. Close it after the last Transform has
// returned.
type Decrypter struct {
	cfg    DecryptConfig
	fields map[string]bool
	tail   string // "_{service}_{product}" of the factory's key ids
	cache  *keyCache
	scans  scanners
}

var _ Transformer = (*Decrypter)(nil)

// NewDecrypter checks cfg and returns a Decrypter.
func NewDecrypter(cfg DecryptConfig) (*Decrypter, error) {
	if err := cfg.Partition.validate(); err != nil {
		return nil, err
	}
	d := &Decrypter{cfg: cfg}
	var err error
	if d.fields, err = fieldSet(cfg.Fields, cfg.Partition); err != nil {
		return nil, err
	}
	if cfg.Partition.kind == partitionField && d.fields == nil {
		return nil, errors.New("records: a field partition needs Fields when decrypting: a whole record's fields are encrypted")
	}
	if cfg.Factory == nil {
		return nil, errors.New("records: a SessionFactory is required")
	}
	// _IK_{partition}_{service}_{product}[_{suffix}]: the tail follows a
	// partition that cannot otherwise appear in it.
	const probe = "\x00"
	id := cfg.Factory.IntermediateKeyID(probe)
	d.tail = id[len("_IK_")+len(probe):]
	if sfx := cfg.Factory.RegionSuffix(); sfx != "" {
		d.tail = d.tail[:len(d.tail)-len(sfx)-1]
	}
	dks := cfg.DataKeyCacheSize
	if dks == 0 {
		dks = DefaultDataKeyCacheSize
	}
	if dks < 0 {
		dks = 0
	}
	if d.cache, err = newKeyCache(cfg.Factory, cfg.Secrets, cfg.SessionCacheSize, dks); err != nil {
		return nil, err
	}
	return d, nil
}

// Close closes the cached sessions and data keys. It does not close the
// factory.
func (d *Decrypter) Close() error { return d.cache.close() }

// CacheStats reports the session and data key lookups served from the
// caches and those that had to load.
func (d *Decrypter) CacheStats() (hits, misses int64) {
	return d.cache.stats()
}

// Transform decrypts r's value (or its fields) and sets r.Partition. A
// null value is passed on as it is. It never leaves plaintext in r when it
// fails.
func (d *Decrypter) Transform(ctx context.Context, r *Record) error {
	if r.Value == nil {
		return nil
	}
	if d.fields != nil {
		return d.openFields(ctx, r)
	}
	fixed := ""
	if d.cfg.Partition.IsSet() {
		var err error
		if fixed, err = d.cfg.Partition.fromRecord(r); err != nil {
			return err
		}
	}
	pt, key, partition, err := d.open(ctx, r, r.Value, fixed, "", true)
	if err != nil {
		return err
	}
	if err := d.checkPlaintext(pt); err != nil {
		clear(pt)
		return err
	}
	r.Value = pt
	r.Partition = partition
	if key != nil {
		r.Key = key
	}
	return nil
}

func (d *Decrypter) checkPlaintext(pt []byte) error {
	if d.cfg.SingleLine && bytes.ContainsAny(pt, "\r\n") {
		return recordErrf(KindFormat, "decrypted value is not one line")
	}
	if d.cfg.JSON {
		sc := d.scans.get()
		defer d.scans.put(sc)
		if _, err := sc.Scan(pt, jsonscan.Options{}); err != nil {
			// %v: the detail is about the plaintext; the chain does not
			// carry it (its Error.Name is plaintext).
			return recordErrf(KindFormat, "decrypted value: %v", err)
		}
	}
	return nil
}

// open decrypts one encrypted value. partition is the expected partition,
// or "" to take it from the key id. It returns the plaintext, the record
// key when it was inside the ciphertext, and the partition.
func (d *Decrypter) open(ctx context.Context, r *Record, v []byte, partition, field string, whole bool) (pt, key []byte, _ string, err error) {
	f, ok := DetectFormat(v)
	if !ok {
		return nil, nil, "", recordErrf(KindFormat, "not an encrypted record (neither a DataRowRecord nor a binary record)")
	}
	if f == FormatDRR {
		if err := d.checkDRR(v); err != nil {
			return nil, nil, "", err
		}
		var drr envelope.DataRowRecord
		if err := json.Unmarshal(v, &drr); err != nil {
			return nil, nil, "", recordErrf(KindFormat, "not a DataRowRecord: %v", err)
		}
		if drr.Key == nil || drr.Key.ParentKeyMeta == nil || drr.Data == nil {
			return nil, nil, "", recordErrf(KindFormat, "not a DataRowRecord: Key, Key.ParentKeyMeta or Data missing")
		}
		if partition, err = d.partitionOf(partition, drr.Key.ParentKeyMeta.ID); err != nil {
			return nil, nil, "", err
		}
		ent, err := d.cache.get(partition)
		if err != nil {
			return nil, nil, "", classify(err, partition)
		}
		defer d.cache.put(ent)
		pt, err := ent.sess.Decrypt(ctx, drr)
		if err != nil {
			return nil, nil, "", classify(err, partition)
		}
		return pt, nil, partition, nil
	}
	h, err := parseBinary(v)
	if err != nil {
		return nil, nil, "", err
	}
	if h.flags&flagKeyInside != 0 && (!whole || len(r.Key) > 0) {
		return nil, nil, "", recordErrf(KindFormat, "binary record with an encrypted key, but it is a field or the record has a key in clear")
	}
	if partition, err = d.partitionOf(partition, h.ikID); err != nil {
		return nil, nil, "", err
	}
	ent, err := d.cache.get(partition)
	if err != nil {
		return nil, nil, "", classify(err, partition)
	}
	defer d.cache.put(ent)
	dk, err := d.cache.openedKey(ctx, ent, &h)
	if err != nil {
		return nil, nil, "", classify(err, partition)
	}
	defer dk.release()
	aad := appendAAD(make([]byte, 0, len(aadLabel)+h.headerLen+len(partition)+len(field)+len(r.Key)+24), v[:h.headerLen], partition, field, h.flags, r.Key)
	gcm, err := newGCM(dk.key)
	if err != nil {
		return nil, nil, "", err
	}
	pt, err = gcm.Open(nil, h.nonce, h.sealed, aad)
	if err != nil {
		return nil, nil, "", recordErrf(KindAuth, "binary record failed authentication (altered, or moved to another partition, key or field)")
	}
	if h.flags&flagKeyInside != 0 {
		p := 0
		k, ok := readOptional(pt, &p)
		if !ok {
			clear(pt)
			return nil, nil, "", recordErr(KindFormat, errBinary)
		}
		if k != nil {
			key = append(make([]byte, 0, len(k)), k...) // non-nil: the record had a key, maybe empty
		}
		rest := append([]byte(nil), pt[p:]...)
		clear(pt)
		pt = rest
	}
	return pt, key, partition, nil
}

// partitionOf checks or derives a record's partition from its key id.
func (d *Decrypter) partitionOf(want, keyID string) (string, error) {
	if want != "" {
		return want, nil
	}
	p, ok := partitionFromKeyID(keyID, d.tail)
	if !ok {
		return "", recordErrf(KindPartition, "key id %q is not an intermediate key of this service and product", keyID)
	}
	return p, nil
}

// checkDRR checks a DataRowRecord's JSON before it is decoded into Go
// structs, whose fields encoding/json matches without regard to case: a
// name twice is bad JSON (KindJSON), names equal up to case ("Data" and
// "data" both set Data) make it not a DataRowRecord (KindFormat).
func (d *Decrypter) checkDRR(v []byte) error {
	sc := d.scans.get()
	_, err := sc.Scan(v, jsonscan.Options{Fold: true})
	d.scans.put(sc)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, jsonscan.ErrDuplicateName), errors.Is(err, jsonscan.ErrInvalidName):
		return recordErr(KindJSON, err)
	}
	return recordErrf(KindFormat, "not a DataRowRecord: %w", err)
}

func (d *Decrypter) openFields(ctx context.Context, r *Record) error {
	sc := d.scans.get()
	defer d.scans.put(sc)
	v := r.Value
	res, err := sc.Scan(v, jsonscan.Options{Path: d.cfg.Partition.path, Members: true})
	if err != nil {
		return inputErr(err)
	}
	if !res.Object {
		return recordErrf(KindJSON, "value is not a JSON object")
	}
	partition := ""
	switch d.cfg.Partition.kind {
	case partitionField:
		partition, err = d.cfg.Partition.fromScan(v, res)
	case partitionUnset:
	default:
		partition, err = d.cfg.Partition.fromRecord(r)
	}
	if err != nil {
		return err
	}
	var plains [][]byte
	defer func() {
		for _, p := range plains {
			clear(p)
		}
	}()
	out := make([]byte, 0, len(v))
	out = append(out, '{')
	for i, m := range res.Members {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, v[m.NameStart:m.NameEnd]...)
		out = append(out, ':')
		val := v[m.ValueStart:m.ValueEnd]
		name := string(m.Name)
		if !d.fields[name] {
			out = append(out, val...)
			continue
		}
		enc := val
		if val[0] == '"' {
			var s string
			if err := json.Unmarshal(val, &s); err != nil {
				return recordErrf(KindFormat, "field %q: %v", name, err)
			}
			if enc, err = base64.StdEncoding.DecodeString(s); err != nil {
				return recordErrf(KindFormat, "field %q: not the base64 of a binary record", name)
			}
		}
		pt, _, p, err := d.open(ctx, r, enc, partition, name, false)
		if err != nil {
			var re *RecordError
			if errors.As(err, &re) {
				re.Err = fmt.Errorf("field %q: %w", name, re.Err)
			}
			return err
		}
		plains = append(plains, pt)
		if partition == "" {
			partition = p
		} else if p != partition {
			return recordErrf(KindPartition, "field %q belongs to another partition than the record's other fields", name)
		}
		sc2 := d.scans.get()
		_, err = sc2.Scan(pt, jsonscan.Options{})
		d.scans.put(sc2)
		if err != nil {
			return recordErrf(KindFormat, "field %q: decrypted value: %v", name, err)
		}
		out = append(out, pt...)
	}
	out = append(out, '}')
	if d.cfg.SingleLine && bytes.ContainsAny(out, "\r\n") {
		clear(out)
		return recordErrf(KindFormat, "decrypted value is not one line")
	}
	r.Value = out
	r.Partition = partition
	return nil
}

// scanners pools the JSON scanners of an Encrypter or Decrypter: a record
// takes one for as long as it needs it and puts it back.
type scanners struct{ p sync.Pool }

func (s *scanners) get() *jsonscan.Scanner {
	if sc, ok := s.p.Get().(*jsonscan.Scanner); ok {
		return sc
	}
	return new(jsonscan.Scanner)
}

func (s *scanners) put(sc *jsonscan.Scanner) { s.p.Put(sc) }
