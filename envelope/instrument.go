package envelope

import (
	"context"
	"errors"
	"time"

	"github.com/enc-pipe/enc-pipe/metrics"
)

// instruments are a factory's metrics, asked for once from its Provider.
// A factory without a Provider has none (nil), and then reads no clock.
type instruments struct {
	encrypt, decrypt                 metrics.Timer
	msLoad, msLoadLatest, msStore    metrics.Timer
	kmsEncrypt, kmsDecrypt           metrics.Timer
	msLoadErr, msLatestErr, msStoErr metrics.Counter
	kmsEncErr, kmsDecErr             metrics.Counter
	counts                           map[string]metrics.Counter
}

var countNames = []string{MetricSystemKeyNew, MetricIntermediateNew, MetricStoreLostRace, MetricSystemKeyLoad,
	MetricIntermediateLd, MetricDataKeyNew, MetricDataKeyOpened, MetricKeyOpened}

func newInstruments(p metrics.Provider) *instruments {
	if metrics.IsDiscard(p) {
		return nil
	}
	op := func(v string) metrics.Label { return metrics.Label{Name: "op", Value: v} }
	in := &instruments{
		encrypt:      p.Timer(MetricEncrypt),
		decrypt:      p.Timer(MetricDecrypt),
		msLoad:       p.Timer(MetricMetastoreLoad),
		msLoadLatest: p.Timer(MetricMetastoreLoadLatest),
		msStore:      p.Timer(MetricMetastoreStore),
		kmsEncrypt:   p.Timer(MetricKMSEncrypt),
		kmsDecrypt:   p.Timer(MetricKMSDecrypt),
		msLoadErr:    p.Counter(MetricMetastoreErrors, op("load")),
		msLatestErr:  p.Counter(MetricMetastoreErrors, op("loadlatest")),
		msStoErr:     p.Counter(MetricMetastoreErrors, op("store")),
		kmsEncErr:    p.Counter(MetricKMSErrors, op("encryptkey")),
		kmsDecErr:    p.Counter(MetricKMSErrors, op("decryptkey")),
		counts:       make(map[string]metrics.Counter, len(countNames)),
	}
	for _, n := range countNames {
		in.counts[n] = p.Counter(n)
	}
	return in
}

func (f *SessionFactory) count(name string) {
	if f.m != nil {
		f.m.counts[name].Add(1)
	}
}

// observe records the time since start in t, and counts err in errs
// unless it is nil or one of the metastore's answers.
func observe(t metrics.Timer, errs metrics.Counter, start time.Time, err error) {
	t.Observe(time.Since(start))
	if err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrKeyExists) {
		errs.Add(1)
	}
}

// The factory's metastore and KMS calls, timed when it has metrics.

func (f *SessionFactory) load(ctx context.Context, id string, created int64) (*EnvelopeKeyRecord, error) {
	if f.m == nil {
		return f.store.Load(ctx, id, created)
	}
	start := time.Now()
	rec, err := f.store.Load(ctx, id, created)
	observe(f.m.msLoad, f.m.msLoadErr, start, err)
	return rec, err
}

func (f *SessionFactory) loadLatest(ctx context.Context, id string) (*EnvelopeKeyRecord, error) {
	if f.m == nil {
		return f.store.LoadLatest(ctx, id)
	}
	start := time.Now()
	rec, err := f.store.LoadLatest(ctx, id)
	observe(f.m.msLoadLatest, f.m.msLatestErr, start, err)
	return rec, err
}

func (f *SessionFactory) storeKey(ctx context.Context, id string, created int64, rec *EnvelopeKeyRecord) error {
	if f.m == nil {
		return f.store.Store(ctx, id, created, rec)
	}
	start := time.Now()
	err := f.store.Store(ctx, id, created, rec)
	observe(f.m.msStore, f.m.msStoErr, start, err)
	return err
}

func (f *SessionFactory) kmsEncrypt(ctx context.Context, key []byte) ([]byte, error) {
	if f.m == nil {
		return f.kms.EncryptKey(ctx, key)
	}
	start := time.Now()
	out, err := f.kms.EncryptKey(ctx, key)
	observe(f.m.kmsEncrypt, f.m.kmsEncErr, start, err)
	return out, err
}

func (f *SessionFactory) kmsDecrypt(ctx context.Context, encrypted []byte) ([]byte, error) {
	if f.m == nil {
		return f.kms.DecryptKey(ctx, encrypted)
	}
	start := time.Now()
	out, err := f.kms.DecryptKey(ctx, encrypted)
	observe(f.m.kmsDecrypt, f.m.kmsDecErr, start, err)
	return out, err
}
