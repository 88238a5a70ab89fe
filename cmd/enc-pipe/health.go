package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/enc-pipe/enc-pipe/envelope"
)

// healthTimeout bounds one health check (a metastore load and a KMS call).
const healthTimeout = 5 * time.Second

// healthReuse is how long a check's result answers further requests, so
// that frequent probes do not turn into a stream of KMS calls.
const healthReuse = time.Second

// health answers /healthz with whether the metastore and the KMS answer
// (envelope.SessionFactory.Check). Before the run has opened its key
// hierarchy it answers 503 "starting".
type health struct {
	mu    sync.Mutex // serialises checks
	check func(context.Context) error
	at    time.Time
	last  healthReport
	code  int
}

// healthReport is the JSON body of /healthz.
type healthReport struct {
	Status     string  `json:"status"`    // ok, fail or starting
	Metastore  string  `json:"metastore"` // ok, fail or unknown
	KMS        string  `json:"kms"`       // ok, fail or unknown
	Error      string  `json:"error,omitempty"`
	DurationMS float64 `json:"duration_ms"`
	CheckedAt  string  `json:"checked_at,omitempty"`
}

// set makes check the health check (the latest opened backend's).
func (h *health) set(check func(context.Context) error) {
	h.mu.Lock()
	h.check, h.at = check, time.Time{}
	h.mu.Unlock()
}

func (h *health) serve(w http.ResponseWriter, r *http.Request, clean func(string) string) {
	code, rep := h.run(r.Context(), clean)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(rep)
}

func (h *health) run(ctx context.Context, clean func(string) string) (int, healthReport) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.check == nil {
		return http.StatusServiceUnavailable, healthReport{Status: "starting", Metastore: "unknown", KMS: "unknown",
			Error: "the key hierarchy is not open yet"}
	}
	if !h.at.IsZero() && time.Since(h.at) < healthReuse {
		return h.code, h.last
	}
	ctx, cancel := context.WithTimeout(ctx, healthTimeout)
	defer cancel()
	start := time.Now()
	err := h.check(ctx)
	rep := healthReport{Status: "ok", Metastore: "ok", KMS: "ok",
		DurationMS: float64(time.Since(start).Microseconds()) / 1000, CheckedAt: start.UTC().Format(time.RFC3339Nano)}
	code := http.StatusOK
	if err != nil {
		code = http.StatusServiceUnavailable
		rep.Status, rep.Error = "fail", clean(err.Error())
		var ke *envelope.KeyError
		switch {
		case errors.As(err, &ke) && strings.Contains(ke.Op, "KMS"):
			rep.KMS = "fail" // the metastore answered
		case errors.As(err, &ke):
			rep.Metastore, rep.KMS = "fail", "unknown"
		default:
			rep.Metastore, rep.KMS = "unknown", "unknown"
		}
	}
	h.at, h.last, h.code = time.Now(), rep, code
	return code, rep
}
