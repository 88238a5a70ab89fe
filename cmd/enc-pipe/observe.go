package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/enc-pipe/enc-pipe/metrics"
	"github.com/enc-pipe/enc-pipe/metrics/prommetrics"
	"github.com/enc-pipe/enc-pipe/sinks"
	"github.com/enc-pipe/enc-pipe/sources"
)

// Environment variables of the observability flags.
const (
	envLogLevel    = "ENC_PIPE_LOG_LEVEL"
	envLogFormat   = "ENC_PIPE_LOG_FORMAT"
	envMetricsAddr = "ENC_PIPE_METRICS_ADDR"
	envStats       = "ENC_PIPE_STATS"
)

// Metric names of the CLI's own figures: bytes read from the inputs and
// written to the outputs that are files, pipes or standard streams (S3
// objects are counted by s3.download.bytes and s3.upload.bytes).
const (
	metricInputBytes  = "enc_pipe.input.bytes"
	metricOutputBytes = "enc_pipe.output.bytes"
)

// obsFlags are --log-level, --log-format, --metrics-addr and --stats.
type obsFlags struct {
	logLevel, logFormat, metricsAddr, stats string
}

// observer is the observability of one run: its structured logger, the
// metrics provider every package reports to, the Prometheus server and
// the --stats summary. Until prepare sets it up, it logs nothing and
// discards every metric.
type observer struct {
	log      *slog.Logger
	debug    bool             // the logger takes debug records
	provider metrics.Provider // Tee of mem and prom; Discard when neither
	mem      *metrics.Memory  // --stats: the figures of the summary
	stats    string           // "", "text" or "json"
	reg      *prometheus.Registry
	srv      *http.Server
	addr     net.Addr
	start    time.Time
	command  string
	in, out  metrics.Counter
	health   *health
}

func newObserver() *observer {
	return &observer{log: slog.New(slog.DiscardHandler), provider: metrics.Discard,
		in: metrics.Discard.Counter(""), out: metrics.Discard.Counter(""), start: time.Now(), health: &health{}}
}

func (a *app) registerObsFlags(pf *pflag.FlagSet) {
	pf.StringVar(&a.of.logLevel, "log-level", a.getenv(envLogLevel), "structured logs at this level and above: debug, info, warn or error (default: none)")
	pf.StringVar(&a.of.logFormat, "log-format", a.getenv(envLogFormat), "structured log format: text or json (default text)")
	pf.StringVar(&a.of.metricsAddr, "metrics-addr", a.getenv(envMetricsAddr), "serve Prometheus metrics (/metrics) and a health check (/healthz) on HOST:PORT while the command runs")
	pf.StringVar(&a.of.stats, "stats", a.getenv(envStats), "print a summary on standard error at the end: text, or json for one JSON line")
	pf.Lookup("stats").NoOptDefVal = "text"
}

// setupObservability checks the observability flags and sets up the
// logger, the metrics and, with --metrics-addr, the server (listening
// before any backend is opened, so that a bad address fails first).
func (a *app) setupObservability(cmd *cobra.Command) error {
	o := a.obs
	o.command = strings.TrimPrefix(cmd.CommandPath(), "enc-pipe ")
	level, format := strings.ToLower(a.of.logLevel), strings.ToLower(a.of.logFormat)
	var lv slog.Level
	switch level {
	case "debug":
		lv = slog.LevelDebug
	case "info", "":
		lv = slog.LevelInfo
	case "warn", "warning":
		lv = slog.LevelWarn
	case "error":
		lv = slog.LevelError
	default:
		return usageErrorf("--log-level %q: want debug, info, warn or error", a.of.logLevel)
	}
	switch format {
	case "", "text", "json":
	default:
		return usageErrorf("--log-format %q: want text or json", a.of.logFormat)
	}
	switch s := strings.ToLower(a.of.stats); s {
	case "", "text", "json":
		o.stats = s
	default:
		return usageErrorf("--stats %q: want text or json", a.of.stats)
	}
	if level != "" || format != "" {
		o.log = slog.New(a.logHandler(a.stderr, lv, format == "json"))
		o.debug = lv <= slog.LevelDebug
	}

	var prom metrics.Provider
	if a.of.metricsAddr != "" {
		o.reg = prometheus.NewRegistry()
		o.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		prom = prommetrics.New(o.reg, prommetrics.WithHelp(metricHelp))
	}
	var mem metrics.Provider // not a nil *metrics.Memory: Tee would take it for one
	if o.stats != "" {
		o.mem = metrics.NewMemory()
		mem = o.mem
	}
	o.provider = metrics.Tee(prom, mem)
	o.in = o.provider.Counter(metricInputBytes)
	o.out = o.provider.Counter(metricOutputBytes)
	if a.of.metricsAddr != "" {
		if err := a.serveMetrics(a.of.metricsAddr); err != nil {
			return err
		}
	}
	o.log.Debug("command started", "command", o.command, "version", version(),
		"metrics_addr", a.of.metricsAddr, "stats", o.stats)
	return nil
}

// logHandler writes log records to w, each value scrubbed of the
// command line's secrets (see clean) and kept on one line.
func (a *app) logHandler(w io.Writer, level slog.Level, json bool) slog.Handler {
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: func(_ []string, at slog.Attr) slog.Attr {
		switch at.Value.Kind() {
		case slog.KindString:
			at.Value = slog.StringValue(a.clean(at.Value.String()))
		case slog.KindAny:
			if err, ok := at.Value.Any().(error); ok {
				at.Value = slog.StringValue(a.clean(err.Error()))
			}
		}
		return at
	}}
	if json {
		return slog.NewJSONHandler(w, opts)
	}
	return slog.NewTextHandler(w, opts)
}

// serveMetrics listens on addr and serves /metrics and /healthz until
// the run ends.
func (a *app) serveMetrics(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return usageErrorf("--metrics-addr %s: %v", addr, err)
	}
	o := a.obs
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(o.reg, promhttp.HandlerOpts{Registry: o.reg}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { o.health.serve(w, r, a.clean) })
	o.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	o.addr = ln.Addr()
	go func() {
		if err := o.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			o.log.Error("metrics server stopped", "error", err)
		}
	}()
	o.log.Info("serving metrics", "addr", o.addr.String(), "paths", "/metrics /healthz")
	return nil
}

// finishRun ends the observability of a run that ended with exit code
// code and error err: it logs the end, prints the --stats summary and
// stops the metrics server.
func (a *app) finishRun(code int, err error) {
	o := a.obs
	elapsed := time.Since(o.start)
	if err != nil && code != exitSIGPIPE {
		o.log.Error("command failed", "command", o.command, "exit_code", code, "elapsed_seconds", elapsed.Seconds(), "error", err)
	} else {
		o.log.Info("command finished", "command", o.command, "exit_code", code, "elapsed_seconds", elapsed.Seconds())
	}
	if o.stats != "" && a.hasStarted() {
		a.printStats(code, elapsed)
	}
	if o.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		o.srv.Shutdown(ctx)
		cancel()
	}
}

// metricHelp is the help text of the Prometheus families.
func metricHelp(name string) string {
	if h, ok := helpTexts[name]; ok {
		return h + " (" + name + ")"
	}
	return ""
}

var helpTexts = map[string]string{
	"ael.drr.encrypt":              "Time of envelope Session.Encrypt, per record (Asherah's timer)",
	"ael.drr.decrypt":              "Time of envelope Session.Decrypt, per record (Asherah's timer)",
	"ael.metastore.load":           "Time of metastore Load calls",
	"ael.metastore.loadlatest":     "Time of metastore LoadLatest calls",
	"ael.metastore.store":          "Time of metastore Store calls",
	"ael.kms.encryptkey":           "Time of KMS EncryptKey calls",
	"ael.kms.decryptkey":           "Time of KMS DecryptKey calls",
	"envelope.metastore.errors":    "Metastore calls that failed, by op",
	"envelope.kms.errors":          "KMS calls that failed, by op",
	"envelope.sk.created":          "System keys created and stored",
	"envelope.ik.created":          "Intermediate keys created and stored",
	"envelope.sk.loaded":           "System keys loaded from the metastore and unwrapped",
	"envelope.ik.loaded":           "Intermediate keys loaded from the metastore and unwrapped",
	"envelope.store.lostrace":      "Key creations that lost a race to another writer",
	"envelope.datakey.created":     "Stream data keys created",
	"envelope.datakey.opened":      "Stream data keys unwrapped",
	"envelope.key.opened":          "Openings of a system or intermediate key's protected memory",
	"secret.allocated":             "Secrets (keys in protected memory) created",
	"secret.inuse":                 "Secrets not yet closed",
	"securebuf.locked_bytes":       "Memory locked for secrets, in bytes",
	"securebuf.alloc_failures":     "Secret allocations that failed, by reason",
	"stream.encrypt.bytes":         "Plaintext bytes encrypted into streams",
	"stream.encrypt.chunks":        "Stream chunks sealed",
	"stream.encrypt.streams":       "Streams started",
	"stream.decrypt.bytes":         "Plaintext bytes authenticated and decrypted from streams",
	"stream.decrypt.chunks":        "Stream chunks authenticated and opened",
	"stream.decrypt.streams":       "Streams whose header authenticated",
	"stream.errors":                "Streams that failed, by op and kind",
	"records.read":                 "Records read from the source",
	"records.written":              "Records written to the destination",
	"records.deadlettered":         "Records set aside in the dead-letter destination",
	"records.acked":                "Records acknowledged to the source (Kafka: offsets committed)",
	"records.read.bytes":           "Key, value and header bytes of the records read",
	"records.written.bytes":        "Key, value and header bytes of the records written",
	"records.errors":               "Records that failed, by kind",
	"records.fatal":                "Failures that stopped a records run",
	"records.inflight":             "Records read and not yet acknowledged",
	"records.lag":                  "Records behind the end of the source partitions",
	"records.cache.hits":           "Partition session and data key lookups served from cache",
	"records.cache.misses":         "Partition session and data key lookups that loaded",
	"kafka.lag":                    "Records behind the high-water mark, by partition",
	"s3.download.bytes":            "S3 object bytes received",
	"s3.download.requests":         "S3 HEAD and GET requests",
	"s3.download.resumes":          "S3 GETs resumed after a dropped connection",
	"s3.upload.parts":              "S3 multipart upload parts uploaded",
	"s3.upload.bytes":              "S3 bytes uploaded",
	"s3.upload.objects":            "S3 objects committed",
	"s3.upload.aborts":             "S3 uploads aborted",
	"s3.upload.retries":            "S3 upload requests retried",
	"s3.upload.part":               "Time of S3 UploadPart and PutObject requests",
	metricInputBytes:               "Bytes read from file and standard inputs",
	metricOutputBytes:              "Bytes written to file and standard outputs",
	"securebuf.canary_failures":    "Canary mismatches found when closing secrets",
	"securebuf.finalized_unclosed": "Secrets closed by the garbage collector",
	"securebuf.lock_degraded":      "Secrets created without locked memory",
	"securebuf.scratch_inuse":      "Scratch slots handed out",
}

// countingSource counts the bytes read from an input.
type countingSource struct {
	sources.Source
	c metrics.Counter
}

func (s countingSource) Read(p []byte) (int, error) {
	n, err := s.Source.Read(p)
	s.c.Add(int64(n))
	return n, err
}

// countingRandomAccess counts the bytes read at offsets.
type countingRandomAccess struct {
	sources.RandomAccess
	c metrics.Counter
}

func (r countingRandomAccess) ReadAt(p []byte, off int64) (int, error) {
	n, err := r.RandomAccess.ReadAt(p, off)
	r.c.Add(int64(n))
	return n, err
}

// countingSink counts the bytes written to an output.
type countingSink struct {
	sinks.Sink
	c metrics.Counter
}

func (s countingSink) Write(p []byte) (int, error) {
	n, err := s.Sink.Write(p)
	s.c.Add(int64(n))
	return n, err
}

// logf logs a human message at level too, for the structured log.
func (o *observer) logf(level slog.Level, format string, args ...any) {
	if o.log.Enabled(context.Background(), level) {
		o.log.Log(context.Background(), level, fmt.Sprintf(format, args...))
	}
}
