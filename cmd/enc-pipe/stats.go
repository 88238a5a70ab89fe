package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/enc-pipe/enc-pipe/envelope"
	"github.com/enc-pipe/enc-pipe/metrics"
	"github.com/enc-pipe/enc-pipe/records"
	"github.com/enc-pipe/enc-pipe/sinks/s3sink"
	"github.com/enc-pipe/enc-pipe/sources/s3source"
	"github.com/enc-pipe/enc-pipe/stream"
)

// runStats is the --stats summary of a run. Its JSON form is one line on
// standard error; its field names are part of the CLI's interface.
type runStats struct {
	Command         string  `json:"command"`
	ExitCode        int     `json:"exit_code"`
	ElapsedSeconds  float64 `json:"elapsed_seconds"`
	InputBytes      int64   `json:"input_bytes"`
	OutputBytes     int64   `json:"output_bytes"`
	ThroughputBytes float64 `json:"throughput_bytes_per_second"` // payload bytes per second (see payload)

	EncryptedBytes  int64 `json:"plaintext_bytes_encrypted"`
	DecryptedBytes  int64 `json:"plaintext_bytes_decrypted"`
	Chunks          int64 `json:"chunks"`
	Streams         int64 `json:"streams"`
	RecordsRead     int64 `json:"records_read"`
	RecordsWritten  int64 `json:"records_written"`
	RecordsDead     int64 `json:"records_dead_lettered"`
	RecordsAcked    int64 `json:"records_committed"`
	RecordBytesRead int64 `json:"record_bytes_read"`
	Lag             int64 `json:"lag"`
	CacheHits       int64 `json:"key_cache_hits"`
	CacheMisses     int64 `json:"key_cache_misses"`
	S3Downloaded    int64 `json:"s3_bytes_downloaded"`
	S3Uploaded      int64 `json:"s3_bytes_uploaded"`
	S3Parts         int64 `json:"s3_parts"`
	S3Objects       int64 `json:"s3_objects"`

	SystemKeysLoaded       int64   `json:"system_keys_loaded"`
	IntermediateKeysLoaded int64   `json:"intermediate_keys_loaded"`
	KeysCreated            int64   `json:"keys_created"`
	DataKeysCreated        int64   `json:"data_keys_created"`
	DataKeysOpened         int64   `json:"data_keys_opened"`
	KMSCalls               int64   `json:"kms_calls"`
	KMSSeconds             float64 `json:"kms_seconds"`
	MetastoreCalls         int64   `json:"metastore_calls"`
	MetastoreSeconds       float64 `json:"metastore_seconds"`

	Errors map[string]int64 `json:"errors"` // by "area.kind", nonzero only
}

// collectStats reads the summary from the run's in-memory metrics.
func collectStats(m *metrics.Memory, command string, code int, elapsed time.Duration) runStats {
	v := func(name string) int64 { n, _ := m.Sum(name); return n }
	timed := func(names ...string) (n int64, d time.Duration) {
		for _, name := range names {
			c, t := m.Sum(name)
			n, d = n+c, d+t
		}
		return n, d
	}
	s := runStats{
		Command: command, ExitCode: code, ElapsedSeconds: elapsed.Seconds(),
		InputBytes: v(metricInputBytes), OutputBytes: v(metricOutputBytes),
		EncryptedBytes: v(stream.MetricEncryptBytes), DecryptedBytes: v(stream.MetricDecryptBytes),
		Chunks:      v(stream.MetricEncryptChunks) + v(stream.MetricDecryptChunks),
		Streams:     v(stream.MetricEncryptStreams) + v(stream.MetricDecryptStreams),
		RecordsRead: v(records.MetricRead), RecordsWritten: v(records.MetricWritten),
		RecordsDead: v(records.MetricDeadLettered), RecordsAcked: v(records.MetricAcked),
		RecordBytesRead: v(records.MetricBytesRead), Lag: v(records.MetricLag),
		CacheHits: v(records.MetricCacheHits), CacheMisses: v(records.MetricCacheMisses),
		S3Downloaded: v(s3source.MetricBytes), S3Uploaded: v(s3sink.MetricBytes),
		S3Parts: v(s3sink.MetricParts), S3Objects: v(s3sink.MetricObjects),
		SystemKeysLoaded: v(envelope.MetricSystemKeyLoad), IntermediateKeysLoaded: v(envelope.MetricIntermediateLd),
		KeysCreated:     v(envelope.MetricSystemKeyNew) + v(envelope.MetricIntermediateNew),
		DataKeysCreated: v(envelope.MetricDataKeyNew), DataKeysOpened: v(envelope.MetricDataKeyOpened),
		Errors: map[string]int64{},
	}
	var d time.Duration
	s.KMSCalls, d = timed(envelope.MetricKMSEncrypt, envelope.MetricKMSDecrypt)
	s.KMSSeconds = d.Seconds()
	s.MetastoreCalls, d = timed(envelope.MetricMetastoreLoad, envelope.MetricMetastoreLoadLatest, envelope.MetricMetastoreStore)
	s.MetastoreSeconds = d.Seconds()
	for _, p := range m.Points() {
		if p.Value == 0 || p.Kind != metrics.KindCounter {
			continue
		}
		var area string
		switch p.Name {
		case stream.MetricErrors:
			area = "stream"
		case records.MetricErrors:
			area = "records"
		case envelope.MetricMetastoreErrors:
			area = "metastore"
		case envelope.MetricKMSErrors:
			area = "kms"
		default:
			continue
		}
		var parts []string // op before kind: stream.decrypt.auth
		for _, name := range []string{"op", "kind"} {
			for _, l := range p.Labels {
				if l.Name == name {
					parts = append(parts, l.Value)
				}
			}
		}
		s.Errors[area+"."+strings.Join(parts, ".")] += p.Value
	}
	if secs := elapsed.Seconds(); secs > 0 {
		s.ThroughputBytes = float64(s.payload()) / secs
	}
	return s
}

// payload is the bytes the run processed: stream plaintext, else record
// bytes, else what it read.
func (s *runStats) payload() int64 {
	switch {
	case s.EncryptedBytes+s.DecryptedBytes > 0:
		return s.EncryptedBytes + s.DecryptedBytes
	case s.RecordBytesRead > 0:
		return s.RecordBytesRead
	}
	return s.InputBytes + s.S3Downloaded
}

// printStats writes the --stats summary to standard error: one block of
// text, or one JSON line.
func (a *app) printStats(code int, elapsed time.Duration) {
	o := a.obs
	s := collectStats(o.mem, o.command, code, elapsed)
	if o.stats == "json" {
		b, err := json.Marshal(s)
		if err == nil {
			fmt.Fprintf(a.stderr, "%s\n", b)
		}
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "enc-pipe: stats: %s, exit %d, %s, %s/s\n", s.Command, s.ExitCode, elapsed.Round(time.Millisecond), humanBytes(s.ThroughputBytes))
	line := func(label, format string, args ...any) {
		fmt.Fprintf(&b, "  %-10s %s\n", label, fmt.Sprintf(format, args...))
	}
	if s.InputBytes+s.OutputBytes > 0 {
		line("bytes", "%d in, %d out", s.InputBytes, s.OutputBytes)
	}
	if s.EncryptedBytes > 0 || s.DecryptedBytes > 0 || s.Streams > 0 {
		line("plaintext", "%d bytes encrypted, %d decrypted; %d chunks, %d streams", s.EncryptedBytes, s.DecryptedBytes, s.Chunks, s.Streams)
	}
	if s.RecordsRead > 0 || strings.HasPrefix(s.Command, "kafka") {
		line("records", "%d read, %d written, %d dead-lettered, %d committed, lag %d; key cache %d hits, %d misses",
			s.RecordsRead, s.RecordsWritten, s.RecordsDead, s.RecordsAcked, s.Lag, s.CacheHits, s.CacheMisses)
	}
	if s.S3Downloaded+s.S3Uploaded > 0 {
		line("s3", "%d bytes downloaded, %d uploaded in %d parts, %d objects", s.S3Downloaded, s.S3Uploaded, s.S3Parts, s.S3Objects)
	}
	line("keys", "%d loaded (%d system, %d intermediate), %d created; data keys %d created, %d opened",
		s.SystemKeysLoaded+s.IntermediateKeysLoaded, s.SystemKeysLoaded, s.IntermediateKeysLoaded, s.KeysCreated, s.DataKeysCreated, s.DataKeysOpened)
	line("kms", "%d calls, %s", s.KMSCalls, seconds(s.KMSSeconds))
	line("metastore", "%d calls, %s", s.MetastoreCalls, seconds(s.MetastoreSeconds))
	errs := "none"
	if len(s.Errors) > 0 {
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(s.Errors)) {
			parts = append(parts, fmt.Sprintf("%s %d", k, s.Errors[k]))
		}
		errs = strings.Join(parts, ", ")
	}
	line("errors", "%s", errs)
	fmt.Fprint(a.stderr, b.String())
}

func seconds(s float64) string {
	return time.Duration(s * float64(time.Second)).Round(time.Microsecond).String()
}

func humanBytes(n float64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	i := 0
	for n >= 1024 && i < len(units)-1 {
		n /= 1024
		i++
	}
	return fmt.Sprintf("%.1f %s", n, units[i])
}
