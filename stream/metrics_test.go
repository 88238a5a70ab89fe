package stream_test

import (
	"bytes"
	"fmt"
	"io"
	"testing"

	"github.com/enc-pipe/enc-pipe/metrics"
	"github.com/enc-pipe/enc-pipe/stream"
)

// chunksOf derives a stream's chunk count from its ciphertext length.
func chunksOf(t *testing.T, ct []byte) int64 {
	t.Helper()
	hdr, err := stream.ReadHeader(bytes.NewReader(ct))
	if err != nil {
		t.Fatal(err)
	}
	payload := int64(len(ct)) - hdr.Len()
	per := int64(hdr.ChunkSize() + stream.TagSize)
	return (payload + per - 1) / per
}

// Writers and Readers count plaintext bytes, chunks and streams, whatever
// the number of workers.
func TestMetricsCountBytesChunksAndStreams(t *testing.T) {
	for _, size := range []int{0, 1, 4096, 4097, 3*4096 + 5} {
		for _, workers := range []int{1, 3} {
			t.Run(fmt.Sprintf("len=%d,workers=%d", size, workers), func(t *testing.T) {
				m := metrics.NewMemory()
				key := testKey(t, "metrics")
				pt := randBytes(size, uint64(size))
				ct := encrypt(t, key, pt, stream.WithChunkSize(4096), stream.WithWriterConcurrency(workers), stream.WithWriterMetrics(m))
				chunks := chunksOf(t, ct)
				got, err := decrypt(t, key, ct, stream.WithReaderConcurrency(workers), stream.WithReaderMetrics(m))
				if err != nil || !bytes.Equal(got, pt) {
					t.Fatalf("round trip: %v", err)
				}
				for _, c := range []struct {
					name string
					want int64
				}{
					{stream.MetricEncryptBytes, int64(size)}, {stream.MetricEncryptChunks, chunks}, {stream.MetricEncryptStreams, 1},
					{stream.MetricDecryptBytes, int64(size)}, {stream.MetricDecryptChunks, chunks}, {stream.MetricDecryptStreams, 1},
				} {
					if got := m.Value(c.name); got != c.want {
						t.Errorf("%s = %d, want %d", c.name, got, c.want)
					}
				}
				if v, _ := m.Sum(stream.MetricErrors); v != 0 {
					t.Errorf("%d errors counted on a good stream", v)
				}
			})
		}
	}
}

// A failing stream is counted once under its kind.
func TestMetricsCountFailuresByKind(t *testing.T) {
	key := testKey(t, "metrics")
	ct := encrypt(t, key, randBytes(3*4096, 1), stream.WithChunkSize(4096))
	tampered := bytes.Clone(ct)
	tampered[len(tampered)-5] ^= 1
	for _, c := range []struct {
		name string
		ct   []byte
		kind string
	}{
		{"tampered", tampered, "auth"},
		{"cut at a chunk boundary", ct[:len(ct)-int(4096+stream.TagSize)], "truncated"},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := metrics.NewMemory()
			if _, err := decrypt(t, key, c.ct, stream.WithReaderMetrics(m)); err == nil {
				t.Fatal("a broken stream decrypted")
			}
			op := metrics.Label{Name: "op", Value: "decrypt"}
			if got := m.Value(stream.MetricErrors, op, metrics.Label{Name: "kind", Value: c.kind}); got != 1 {
				t.Errorf("errors{kind=%s} = %d, want 1; all: %v", c.kind, got, m.Points())
			}
			if v, _ := m.Sum(stream.MetricErrors); v != 1 {
				t.Errorf("%d errors counted for one failure", v)
			}
		})
	}
	t.Run("destination fails", func(t *testing.T) {
		m := metrics.NewMemory()
		w, err := stream.NewWriter(&failWriter{limit: 5000}, key, testParams, stream.WithChunkSize(4096), stream.WithWriterMetrics(m))
		if err == nil {
			_, err = w.Write(randBytes(5*4096, 2))
			if err == nil {
				err = w.Close()
			}
		}
		if err == nil {
			t.Fatal("writing to a failing destination succeeded")
		}
		if got := m.Value(stream.MetricErrors, metrics.Label{Name: "op", Value: "encrypt"}, metrics.Label{Name: "kind", Value: "io"}); got != 1 {
			t.Errorf("errors{op=encrypt,kind=io} = %d, want 1: %v", got, m.Points())
		}
	})
}

// A ReaderAt counts the chunks it opens (the last one, at NewReaderAt,
// then those each ReadAt touches) and the plaintext it authenticated.
func TestMetricsOfReaderAt(t *testing.T) {
	key := testKey(t, "metrics")
	pt := randBytes(4*4096+100, 3)
	ct := encrypt(t, key, pt, stream.WithChunkSize(4096))
	hdr, err := stream.ReadHeader(bytes.NewReader(ct))
	if err != nil {
		t.Fatal(err)
	}
	m := metrics.NewMemory()
	r, err := stream.NewReaderAt(bytes.NewReader(ct), int64(len(ct)), hdr, key, stream.WithReaderConcurrency(1), stream.WithReaderMetrics(m))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got, err := io.ReadAll(io.NewSectionReader(r, 0, r.Size()))
	if err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("ReadAll: %v", err)
	}
	if got, want := m.Value(stream.MetricDecryptChunks), chunksOf(t, ct); got != want {
		t.Errorf("chunks = %d, want %d (each opened once)", got, want)
	}
	if got := m.Value(stream.MetricDecryptBytes); got != int64(len(pt)) {
		t.Errorf("bytes = %d, want %d", got, len(pt))
	}
}
