package awskms

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/enc-pipe/enc-pipe/envelope"
	"github.com/enc-pipe/enc-pipe/securebuf"
)

// API is the part of the AWS KMS client that KMS uses; *kms.Client
// implements it.
type API interface {
	GenerateDataKey(ctx context.Context, in *kms.GenerateDataKeyInput, optFns ...func(*kms.Options)) (*kms.GenerateDataKeyOutput, error)
	Encrypt(ctx context.Context, in *kms.EncryptInput, optFns ...func(*kms.Options)) (*kms.EncryptOutput, error)
	Decrypt(ctx context.Context, in *kms.DecryptInput, optFns ...func(*kms.Options)) (*kms.DecryptOutput, error)
}

var _ API = (*kms.Client)(nil)

// KMS wraps system keys with AWS KMS in one or more regions. Create it
// with New. It is safe for concurrent use.
type KMS struct {
	regions    []regionClient // preferred first
	aead       envelope.AEAD
	secrets    *securebuf.Factory
	requireAll bool
	logger     *slog.Logger
}

var _ envelope.KMS = (*KMS)(nil)

type regionClient struct {
	Region
	api API
}

// Option configures New.
type Option func(*options) error

type options struct {
	awsConfig  *aws.Config
	endpoints  map[string]string
	clients    map[string]API
	requireAll bool
	logger     *slog.Logger
	secrets    *securebuf.Factory
	retry      *RetryPolicy
}

// RetryPolicy says how often one region's KMS call is attempted before
// the next region is tried. Throttling answers (ThrottlingException,
// TooManyRequestsException, LimitExceededException and the SDK's other
// throttle codes), HTTP 500, 502, 503 and 504, and connection errors are
// retried; other errors (AccessDeniedException, InvalidCiphertextException,
// a bad key ARN...) are not. Delays grow exponentially with full jitter:
// before retry i (from 0) the SDK's standard retryer waits a random time in
// [0, min(base × 2^i, MaxBackoff)), where base is 1 s after a throttling
// answer and 50 ms after any other retryable error.
type RetryPolicy struct {
	// MaxAttempts is the number of attempts per region and call, the first
	// one included (1 means no retry).
	MaxAttempts int
	// MaxBackoff caps the delay before one retry.
	MaxBackoff time.Duration
}

// DefaultRetryPolicy is the AWS SDK's standard policy: 3 attempts, delays
// capped at 20 s. It is what clients built by New use unless WithRetry
// says otherwise (or, without WithRetry, what the aws.Config given to
// WithAWSConfig says).
var DefaultRetryPolicy = RetryPolicy{MaxAttempts: retry.DefaultMaxAttempts, MaxBackoff: retry.DefaultMaxBackoff}

// WithRetry sets the retry policy of the clients New builds (not of those
// given with WithClient), replacing the retryer of the aws.Config. It
// fails with ErrInvalidSpec unless MaxAttempts ≥ 1 and MaxBackoff > 0.
// With several regions, the worst case before failing over is about
// MaxAttempts − 1 delays of at most MaxBackoff each.
func WithRetry(p RetryPolicy) Option {
	return func(o *options) error {
		if p.MaxAttempts < 1 || p.MaxBackoff <= 0 {
			return fmt.Errorf("%w: retry policy needs at least 1 attempt and a positive maximum backoff, got %d attempts and %v", ErrInvalidSpec, p.MaxAttempts, p.MaxBackoff)
		}
		o.retry = &p
		return nil
	}
}

// newRetryer returns the SDK's standard retryer configured by p.
func newRetryer(p RetryPolicy) aws.Retryer {
	return retry.NewStandard(func(so *retry.StandardOptions) {
		so.MaxAttempts = p.MaxAttempts
		so.MaxBackoff = p.MaxBackoff
	})
}

// WithAWSConfig makes New build its clients from cfg instead of loading the
// default AWS configuration. Each client's region is set from the Spec.
func WithAWSConfig(cfg aws.Config) Option {
	return func(o *options) error { o.awsConfig = &cfg; return nil }
}

// WithEndpoint sends region's requests to url (such as a local KMS server)
// instead of the AWS endpoint. It may be given once per region.
func WithEndpoint(region, url string) Option {
	return func(o *options) error {
		if url == "" {
			return fmt.Errorf("%w: empty endpoint for region %s", ErrInvalidSpec, region)
		}
		if o.endpoints == nil {
			o.endpoints = map[string]string{}
		}
		o.endpoints[region] = url
		return nil
	}
}

// WithClient uses api for region instead of building an SDK client.
func WithClient(region string, api API) Option {
	return func(o *options) error {
		if api == nil {
			return fmt.Errorf("%w: nil client for region %s", ErrInvalidSpec, region)
		}
		if o.clients == nil {
			o.clients = map[string]API{}
		}
		o.clients[region] = api
		return nil
	}
}

// WithRequireAllRegions makes EncryptKey fail (with ErrRegionsMissing)
// unless the data key was wrapped in every configured region. By default,
// as in Asherah, a region whose KMS Encrypt fails is left out of the
// envelope, so that one region's outage does not stop key creation.
func WithRequireAllRegions() Option {
	return func(o *options) error { o.requireAll = true; return nil }
}

// WithLogger reports regions left out of an envelope and regions that
// failed before another one succeeded, at level Warn. No key material is
// ever logged. The default is no logging.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error { o.logger = l; return nil }
}

// WithSecretFactory makes KMS hold data keys in secrets of f instead of a
// factory of its own with securebuf's defaults.
func WithSecretFactory(f *securebuf.Factory) Option {
	return func(o *options) error { o.secrets = f; return nil }
}

// New returns a KMS for spec. Clients not given with WithClient are built
// from the default AWS configuration (or WithAWSConfig), one per region,
// with WithEndpoint's overrides; building them makes no network call. New
// fails with ErrInvalidSpec for an invalid spec, or for an endpoint or
// client given for a region the spec does not name.
func New(ctx context.Context, spec Spec, opts ...Option) (*KMS, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	var o options
	for _, opt := range opts {
		if opt == nil {
			continue
		}
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	for r := range o.endpoints {
		if spec.index(r) < 0 {
			return nil, fmt.Errorf("%w: endpoint given for region %s, which is not configured", ErrInvalidSpec, r)
		}
	}
	for r := range o.clients {
		if spec.index(r) < 0 {
			return nil, fmt.Errorf("%w: client given for region %s, which is not configured", ErrInvalidSpec, r)
		}
	}
	k := &KMS{aead: envelope.NewAES256GCM(), requireAll: o.requireAll, logger: o.logger, secrets: o.secrets}
	if k.secrets == nil {
		f, err := securebuf.NewFactory()
		if err != nil {
			return nil, fmt.Errorf("awskms: failed to set up protected memory: %w", err)
		}
		k.secrets = f
	}
	var base *aws.Config
	for _, r := range spec.Regions {
		api := o.clients[r.Name]
		if api == nil {
			if base == nil {
				if o.awsConfig != nil {
					base = o.awsConfig
				} else {
					cfg, err := awsconfig.LoadDefaultConfig(ctx)
					if err != nil {
						return nil, fmt.Errorf("awskms: failed to load AWS configuration: %w", err)
					}
					base = &cfg
				}
			}
			region, endpoint := r.Name, o.endpoints[r.Name]
			api = kms.NewFromConfig(*base, func(ko *kms.Options) {
				ko.Region = region
				if endpoint != "" {
					ko.BaseEndpoint = aws.String(endpoint)
				}
				if o.retry != nil {
					ko.Retryer = newRetryer(*o.retry)
					// Otherwise the aws.Config's RetryMaxAttempts would
					// wrap the retryer and override MaxAttempts.
					ko.RetryMaxAttempts = 0
				}
			})
		}
		k.regions = append(k.regions, regionClient{Region: r, api: api})
	}
	return k, nil
}

// Spec returns the configuration, preferred region first.
func (k *KMS) Spec() Spec {
	s := Spec{Regions: make([]Region, len(k.regions))}
	for i, r := range k.regions {
		s.Regions[i] = r.Region
	}
	return s
}

// EncryptKey wraps key (a system key) in Asherah's multi-region envelope
// and returns the envelope's JSON. See the package documentation for the
// steps. It fails with a *RegionsError (ErrAllRegionsFailed) when no region
// generates a data key, and, with WithRequireAllRegions, with
// ErrRegionsMissing when a region's Encrypt fails. key is not modified.
func (k *KMS) EncryptKey(ctx context.Context, key []byte) ([]byte, error) {
	if len(key) == 0 {
		return nil, errors.New("awskms: failed to encrypt key: empty key")
	}
	var genErrs []*RegionError
	gen, genIdx := (*kms.GenerateDataKeyOutput)(nil), -1
	for i, r := range k.regions {
		out, err := r.api.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{
			KeyId:   aws.String(r.KeyID),
			KeySpec: types.DataKeySpecAes256,
		})
		if err == nil && len(out.Plaintext) != envelope.AES256KeySize {
			clear(out.Plaintext)
			err = fmt.Errorf("KMS returned a data key of %d bytes, want %d", len(out.Plaintext), envelope.AES256KeySize)
		}
		if err == nil && len(out.CiphertextBlob) == 0 {
			clear(out.Plaintext)
			err = errors.New("KMS returned no ciphertext for the data key")
		}
		if err != nil {
			genErrs = append(genErrs, &RegionError{Region: r.Name, Op: "GenerateDataKey", Err: err})
			if ctx.Err() != nil {
				break
			}
			continue
		}
		gen, genIdx = out, i
		break
	}
	if gen == nil {
		return nil, &RegionsError{Op: "encrypt key", Errors: genErrs}
	}
	for _, e := range genErrs {
		k.warn("KMS region failed to generate a data key; used the next region", e)
	}

	dataKey, err := k.secrets.New(gen.Plaintext) // wipes gen.Plaintext
	if err != nil {
		clear(gen.Plaintext)
		return nil, fmt.Errorf("awskms: failed to encrypt key: cannot protect data key: %w", err)
	}
	defer dataKey.Close()

	env := Envelope{KEKs: make([]KEK, len(k.regions))}
	err = dataKey.WithBytes(func(dk []byte) error {
		var err error
		env.EncryptedKey, err = k.aead.Encrypt(key, dk)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("awskms: failed to encrypt key: %w", err)
	}
	env.KEKs[genIdx] = KEK{Region: k.regions[genIdx].Name, ARN: k.regions[genIdx].KeyID, EncryptedKEK: gen.CiphertextBlob}

	wrapErrs := make([]*RegionError, len(k.regions))
	var wg sync.WaitGroup
	for i, r := range k.regions {
		if i == genIdx {
			continue
		}
		wg.Go(func() {
			err := dataKey.WithBytes(func(dk []byte) error {
				out, err := r.api.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(r.KeyID), Plaintext: dk})
				if err != nil {
					return err
				}
				if len(out.CiphertextBlob) == 0 {
					return errors.New("KMS returned no ciphertext")
				}
				env.KEKs[i] = KEK{Region: r.Name, ARN: r.KeyID, EncryptedKEK: out.CiphertextBlob}
				return nil
			})
			if err != nil {
				wrapErrs[i] = &RegionError{Region: r.Name, Op: "Encrypt", Err: err}
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		// Do not hand out an envelope that lacks regions only because the
		// caller gave up.
		return nil, fmt.Errorf("awskms: failed to encrypt key: %w", err)
	}

	var missing []error
	keks := env.KEKs[:0]
	for i, kek := range env.KEKs {
		if wrapErrs[i] != nil {
			missing = append(missing, wrapErrs[i])
			continue
		}
		keks = append(keks, kek)
	}
	env.KEKs = keks
	if len(missing) > 0 {
		if k.requireAll {
			return nil, fmt.Errorf("%w: %w", ErrRegionsMissing, errors.Join(missing...))
		}
		for _, e := range missing {
			k.warn("KMS region left out of the key envelope", e.(*RegionError))
		}
	}
	return env.Marshal()
}

// DecryptKey unwraps a key that EncryptKey (or Asherah) wrapped. It tries
// the configured regions in order, skipping those the envelope has no KEK
// for, and returns the first success. It fails with an error wrapping
// ErrMalformedEnvelope for bad JSON, and with a *RegionsError
// (ErrAllRegionsFailed) naming every region's cause when no region
// succeeds. The returned key belongs to the caller, who should wipe it.
func (k *KMS) DecryptKey(ctx context.Context, blob []byte) ([]byte, error) {
	env, err := ParseEnvelope(blob)
	if err != nil {
		return nil, err
	}
	byRegion := make(map[string]KEK, len(env.KEKs))
	for _, kek := range env.KEKs {
		if _, dup := byRegion[kek.Region]; !dup && len(kek.EncryptedKEK) > 0 {
			byRegion[kek.Region] = kek
		}
	}
	var errs []*RegionError
	for _, r := range k.regions {
		kek, ok := byRegion[r.Name]
		if !ok {
			errs = append(errs, &RegionError{Region: r.Name, Op: "Decrypt", Err: errors.New("the key envelope has no data key for this region")})
			continue
		}
		delete(byRegion, r.Name)
		keyID := kek.ARN
		if keyID == "" {
			keyID = r.KeyID
		}
		out, err := r.api.Decrypt(ctx, &kms.DecryptInput{KeyId: aws.String(keyID), CiphertextBlob: kek.EncryptedKEK})
		if err != nil {
			errs = append(errs, &RegionError{Region: r.Name, Op: "Decrypt", Err: err})
			if ctx.Err() != nil {
				break
			}
			continue
		}
		key, err := k.aead.Decrypt(env.EncryptedKey, out.Plaintext)
		clear(out.Plaintext)
		if err != nil {
			errs = append(errs, &RegionError{Region: r.Name, Op: "unwrap", Err: err})
			continue
		}
		for _, e := range errs {
			k.warn("KMS region failed to decrypt a key; used the next region", e)
		}
		return key, nil
	}
	if ctx.Err() == nil {
		for _, kek := range env.KEKs {
			if _, left := byRegion[kek.Region]; left {
				delete(byRegion, kek.Region)
				errs = append(errs, &RegionError{Region: kek.Region, Op: "Decrypt", Err: errors.New("the key envelope names this region, which is not configured")})
			}
		}
	}
	return nil, &RegionsError{Op: "decrypt key", Errors: errs}
}

func (k *KMS) warn(msg string, e *RegionError) {
	if k.logger == nil {
		return
	}
	k.logger.Warn(msg, slog.String("region", e.Region), slog.String("op", e.Op), slog.String("error", oneLine(e.Err)))
}
