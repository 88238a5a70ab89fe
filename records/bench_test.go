package records_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/enc-pipe/enc-pipe/envelope"
	"github.com/enc-pipe/enc-pipe/envelope/metastore/memstore"
	"github.com/enc-pipe/enc-pipe/records"
)

const benchTenants = 1000

// benchLines makes n JSON Lines records of 1 KiB over benchTenants tenants.
func benchLines(n int) []byte {
	var b bytes.Buffer
	for i := range n {
		head := fmt.Sprintf(`{"tenant":"tenant-%04d","seq":%d,"user":{"name":"user %d","email":"u%d@example.com"},"data":"`, i%benchTenants, i, i, i)
		b.WriteString(head)
		b.WriteString(strings.Repeat("d", 1024-len(head)-2))
		b.WriteString("\"}\n")
	}
	return b.Bytes()
}

// BenchmarkRecordBaseline is the reference of the per-record goal: one
// envelope Encrypt of the 1 KiB line with a warm session of its tenant,
// plus one JSON parse of the line (encoding/json into a struct, to read the
// tenant).
func BenchmarkRecordBaseline(b *testing.B) {
	f := newFactory(b, memstore.New(), "svc", "prod")
	data := benchLines(benchTenants)
	lines := bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n"))
	sessions := map[string]*envelope.Session{}
	for i := range benchTenants {
		p := fmt.Sprintf("tenant-%04d", i)
		s, err := f.GetSession(p)
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		if _, err := s.Encrypt(ctx, []byte("warm")); err != nil {
			b.Fatal(err)
		}
		sessions[p] = s
	}
	b.SetBytes(1024)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		line := lines[i%len(lines)]
		var v struct {
			Tenant string `json:"tenant"`
		}
		if err := json.Unmarshal(line, &v); err != nil {
			b.Fatal(err)
		}
		if _, err := sessions[v.Tenant].Encrypt(ctx, line); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRecordPipeline runs JSON Lines (1 KiB, 1000 tenants, partition
// from the tenant member) through the Pipeline with one worker, caches
// warmed by a first pass: what one record costs end to end, including
// reading and writing lines.
func BenchmarkRecordPipeline(b *testing.B) {
	for _, format := range []records.Format{records.FormatDRR, records.FormatBinary} {
		b.Run(format.String(), func(b *testing.B) { benchPipeline(b, format, 1) })
	}
}

// BenchmarkRecordWorkers compares workers; records/s is the figure.
func BenchmarkRecordWorkers(b *testing.B) {
	for _, w := range []int{1, 2} {
		b.Run(fmt.Sprintf("drr/workers=%d", w), func(b *testing.B) { benchPipeline(b, records.FormatDRR, w) })
	}
}

func benchPipeline(b *testing.B, format records.Format, workers int) {
	f := newFactory(b, memstore.New(), "svc", "prod")
	enc := encrypter(b, records.EncryptConfig{Factory: f, Partition: records.FieldPartition("tenant"), Format: format, MaxValueSize: records.DefaultMaxLineSize})
	warm := benchLines(benchTenants)
	run := func(data []byte) {
		p := &records.Pipeline{
			Source: records.NewLineSource(bytes.NewReader(data), records.LineOptions{}), Transform: enc,
			Sink: records.NewLineSink(io.Discard, records.LineOptions{Base64: format == records.FormatBinary}), Workers: workers,
		}
		if err := p.Run(ctx); err != nil {
			b.Fatal(err)
		}
	}
	run(warm)
	data := benchLines(b.N)
	b.SetBytes(1024)
	b.ReportAllocs()
	b.ResetTimer()
	run(data)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkRecordRatios measures, in alternating blocks of 2000 records
// so that all see the same load, the baseline (envelope Encrypt + one
// encoding/json parse) and the Pipeline with 1 and 2 workers in both
// formats, and reports per-record times and their ratios. One op is one
// round of the five blocks.
func BenchmarkRecordRatios(b *testing.B) {
	const block = 2000
	f := newFactory(b, memstore.New(), "svc", "prod")
	data := benchLines(block)
	lines := bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n"))
	sessions := map[string]*envelope.Session{}
	for i := range benchTenants {
		p := fmt.Sprintf("tenant-%04d", i)
		s, err := f.GetSession(p)
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		sessions[p] = s
	}
	baseline := func() {
		for _, line := range lines {
			var v struct {
				Tenant string `json:"tenant"`
			}
			if err := json.Unmarshal(line, &v); err != nil {
				b.Fatal(err)
			}
			if _, err := sessions[v.Tenant].Encrypt(ctx, line); err != nil {
				b.Fatal(err)
			}
		}
	}
	drr := encrypter(b, records.EncryptConfig{Factory: f, Partition: records.FieldPartition("tenant"), Format: records.FormatDRR, MaxValueSize: records.DefaultMaxLineSize})
	bin := encrypter(b, records.EncryptConfig{Factory: f, Partition: records.FieldPartition("tenant"), Format: records.FormatBinary, MaxValueSize: records.DefaultMaxLineSize})
	pipe := func(enc *records.Encrypter, workers int, b64 bool) func() {
		return func() {
			p := &records.Pipeline{
				Source: records.NewLineSource(bytes.NewReader(data), records.LineOptions{}), Transform: enc,
				Sink: records.NewLineSink(io.Discard, records.LineOptions{Base64: b64}), Workers: workers,
			}
			if err := p.Run(ctx); err != nil {
				b.Fatal(err)
			}
		}
	}
	variants := []struct {
		name string
		run  func()
	}{
		{"baseline", baseline}, {"drr-w1", pipe(drr, 1, false)}, {"binary-w1", pipe(bin, 1, true)},
		{"drr-w2", pipe(drr, 2, false)}, {"binary-w2", pipe(bin, 2, true)},
	}
	for _, v := range variants { // warm every cache
		v.run()
		v.run()
	}
	total := make([]time.Duration, len(variants))
	b.ResetTimer()
	for i := range b.N {
		for k := range variants {
			j := (i + k) % len(variants)
			start := time.Now()
			variants[j].run()
			total[j] += time.Since(start)
		}
	}
	per := func(j int) float64 { return float64(total[j].Nanoseconds()) / float64(b.N*block) }
	for j, v := range variants {
		b.ReportMetric(per(j), "ns/"+v.name)
	}
	b.ReportMetric(per(1)/per(0), "drr-w1/baseline")
	b.ReportMetric(per(2)/per(0), "binary-w1/baseline")
	b.ReportMetric(per(1)/per(3), "speedup-drr-w2")
	b.ReportMetric(per(2)/per(4), "speedup-binary-w2")
}
