package kafkarec

import (
	"context"
	"errors"
	"fmt"

	"github.com/segmentio/kafka-go"

	"github.com/enc-pipe/enc-pipe/records"
)

// Writer encrypts messages before producing them with W. Its methods are
// safe for concurrent use as far as W's are. It does not close W or the
// Encrypter.
type Writer struct {
	W *kafka.Writer
	E *records.Encrypter
}

// WriteMessages encrypts every message (its value, and its key when the
// Encrypter moves keys into the ciphertext), then produces them all in one
// call. If any message fails to encrypt, nothing is produced and the error
// names the message's index (and wraps a *records.RecordError when the
// message is at fault). The caller's messages are not modified.
func (w *Writer) WriteMessages(ctx context.Context, msgs ...kafka.Message) error {
	out := make([]kafka.Message, len(msgs))
	for i, m := range msgs {
		r := fromMessage(m)
		r.Source = records.Position{}
		if err := w.E.Transform(ctx, r); err != nil {
			return fmt.Errorf("kafkarec: message %d: %w", i, err)
		}
		out[i] = toMessage(r)
		out[i].Topic = m.Topic
		out[i].Partition = 0
		out[i].WriterData = m.WriterData
	}
	return w.W.WriteMessages(ctx, out...)
}

// Close closes W.
func (w *Writer) Close() error { return w.W.Close() }

// Reader decrypts messages consumed by R. It does not close the
// Decrypter.
type Reader struct {
	R *kafka.Reader
	D *records.Decrypter
}

// FetchMessage fetches the next message and decrypts it. When the message
// cannot be decrypted it returns the message as fetched (so that the
// caller can commit past it or dead-letter it) with a *records.RecordError;
// other errors come from the reader or the key backend.
func (r *Reader) FetchMessage(ctx context.Context) (kafka.Message, error) {
	m, err := r.R.FetchMessage(ctx)
	if err != nil {
		return m, err
	}
	rec := fromMessage(m)
	if err := r.D.Transform(ctx, rec); err != nil {
		return m, err
	}
	out := toMessage(rec)
	out.Topic, out.Partition, out.Offset, out.HighWaterMark = m.Topic, m.Partition, m.Offset, m.HighWaterMark
	return out, nil
}

// ReadMessage is FetchMessage followed, with a consumer group, by a commit
// of the message, even one that failed to decrypt (the error is still
// returned). Commit after processing instead (FetchMessage then
// CommitMessages) for at-least-once processing.
func (r *Reader) ReadMessage(ctx context.Context) (kafka.Message, error) {
	m, err := r.FetchMessage(ctx)
	var re *records.RecordError
	if err != nil && !errors.As(err, &re) {
		return m, err
	}
	if r.R.Config().GroupID != "" {
		if cerr := r.R.CommitMessages(ctx, m); cerr != nil {
			return m, errors.Join(err, cerr)
		}
	}
	return m, err
}

// CommitMessages commits msgs (as FetchMessage returned them).
func (r *Reader) CommitMessages(ctx context.Context, msgs ...kafka.Message) error {
	return r.R.CommitMessages(ctx, msgs...)
}

// Close closes R.
func (r *Reader) Close() error { return r.R.Close() }
