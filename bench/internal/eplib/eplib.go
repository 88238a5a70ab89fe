// Package eplib is the benchmark harness's only contact with the enc-pipe
// library: stream encryption with a raw data key (no KMS, no metastore) for
// epbench, and warm envelope sessions in either secure-memory mode for
// recbench. When the library's API changes, this file is the one to adapt.
//
// Benchmark use only: keys come from files or are fixed, and nothing here
// is meant to protect real data.
package eplib

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/enc-pipe/enc-pipe/envelope"
	"github.com/enc-pipe/enc-pipe/envelope/kms/statickms"
	"github.com/enc-pipe/enc-pipe/envelope/metastore/memstore"
	"github.com/enc-pipe/enc-pipe/securebuf"
	"github.com/enc-pipe/enc-pipe/stream"
)

// DefaultChunkSize is the library's default plaintext chunk size.
const DefaultChunkSize = stream.DefaultChunkSize

// StreamConfig is what epbench varies.
type StreamConfig struct {
	Workers   int    // worker goroutines; 0 = GOMAXPROCS
	ChunkSize int    // plaintext chunk size; 0 = DefaultChunkSize
	Compress  string // none, zstd or s2; "" = none
}

// Encrypt writes src to dst as one enc-pipe stream under the 32-byte data
// key, which it copies into protected memory and wipes. It does not close
// dst.
func Encrypt(dst io.Writer, src io.Reader, key []byte, cfg StreamConfig) error {
	sec, closeKey, err := secret(key)
	if err != nil {
		return err
	}
	defer closeKey()
	if cfg.ChunkSize == 0 {
		cfg.ChunkSize = DefaultChunkSize
	}
	if cfg.Compress == "" {
		cfg.Compress = "none"
	}
	codec, err := stream.ParseCodec(cfg.Compress)
	if err != nil {
		return err
	}
	w, err := stream.NewWriter(dst, sec,
		stream.HeaderParams{KeyRecord: []byte(`{"bench":true}`), Partition: "bench"},
		stream.WithWriterConcurrency(cfg.Workers), stream.WithChunkSize(cfg.ChunkSize), stream.WithCompression(codec))
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, src); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}

// Decrypt reads one enc-pipe stream from src under the 32-byte data key
// (copied into protected memory and wiped) and writes the plaintext to dst.
func Decrypt(dst io.Writer, src io.Reader, key []byte, workers int) error {
	sec, closeKey, err := secret(key)
	if err != nil {
		return err
	}
	defer closeKey()
	hdr, err := stream.ReadHeader(src)
	if err != nil {
		return err
	}
	r, err := stream.NewReader(src, hdr, sec, stream.WithReaderConcurrency(workers))
	if err != nil {
		return err
	}
	defer r.Close()
	_, err = io.Copy(dst, r)
	return err
}

func secret(key []byte) (securebuf.Secret, func(), error) {
	sf, err := securebuf.NewFactory()
	if err != nil {
		return nil, nil, err
	}
	sec, err := sf.New(key) // wipes key
	if err != nil {
		sf.Close()
		return nil, nil, err
	}
	return sec, func() { sec.Close(); sf.Close() }, nil
}

// Secure-memory modes of the envelope sessions' key caches.
const (
	ModeMprotect = "mprotect"
	ModePKey     = "pkey"
)

// PKeyAvailable returns nil if ModePKey works in this process, else why not.
func PKeyAvailable() error { return securebuf.PKeyAvailable() }

// Records is a warm envelope session: static KMS, in-memory metastore,
// default crypto policy, system and intermediate keys cached in securebuf
// secrets of the given mode. Not safe for concurrent use by the harness
// (the session is, but Close is not synchronised with calls).
type Records struct {
	sf   *securebuf.Factory
	kms  *statickms.KMS
	fact *envelope.SessionFactory
	sess *envelope.Session
}

// Record is an encrypted record, opaque to the harness.
type Record struct{ drr *envelope.DataRowRecord }

// NewRecords opens a session in mode (ModeMprotect or ModePKey) and warms
// its caches with one Encrypt.
func NewRecords(ctx context.Context, mode string) (_ *Records, err error) {
	var am securebuf.AccessMode
	switch mode {
	case ModeMprotect:
		am = securebuf.AccessMprotect
	case ModePKey:
		am = securebuf.AccessPKey
	default:
		return nil, fmt.Errorf("eplib: unknown secure-memory mode %q", mode)
	}
	r := &Records{}
	defer func() {
		if err != nil {
			r.Close()
		}
	}()
	if r.sf, err = securebuf.NewFactory(securebuf.WithAccessMode(am)); err != nil {
		return nil, err
	}
	master := make([]byte, 32) // a fixed master key: benchmark only
	for i := range master {
		master[i] = byte(i)
	}
	if r.kms, err = statickms.New(master, statickms.WithSecretFactory(r.sf)); err != nil {
		return nil, err
	}
	r.fact, err = envelope.NewSessionFactory(&envelope.Config{Service: "bench", Product: "bench"},
		memstore.New(), r.kms, nil, envelope.WithSecretFactory(r.sf))
	if err != nil {
		return nil, err
	}
	if r.sess, err = r.fact.GetSession("partition-1"); err != nil {
		return nil, err
	}
	if _, err = r.sess.Encrypt(ctx, []byte("warm up")); err != nil {
		return nil, err
	}
	return r, nil
}

// Encrypt encrypts one record.
func (r *Records) Encrypt(ctx context.Context, data []byte) (Record, error) {
	drr, err := r.sess.Encrypt(ctx, data)
	return Record{drr}, err
}

// Decrypt decrypts one record.
func (r *Records) Decrypt(ctx context.Context, rec Record) ([]byte, error) {
	if rec.drr == nil {
		return nil, errors.New("eplib: empty record")
	}
	return r.sess.Decrypt(ctx, *rec.drr)
}

// Close closes the session and everything it opened.
func (r *Records) Close() error {
	var errs []error
	if r.sess != nil {
		errs = append(errs, r.sess.Close())
	}
	if r.fact != nil {
		errs = append(errs, r.fact.Close())
	}
	if r.kms != nil {
		errs = append(errs, r.kms.Close())
	}
	if r.sf != nil {
		errs = append(errs, r.sf.Close())
	}
	return errors.Join(errs...)
}
