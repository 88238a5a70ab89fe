package awskms_test

// Unit tests of the retry policy and of the errors given when it runs out:
// a KMS server in this process (httptest) speaks KMS's JSON protocol,
// answers with scripted failures (throttling, 5xx, client errors) before
// serving a fakeKMS, and counts the attempts. The real SDK client does the
// retrying; these tests check that our configuration reaches it and what
// the caller sees.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"

	"github.com/enc-pipe/enc-pipe/envelope/kms/awskms"
)

// failure is one scripted error answer.
type failure struct {
	status int
	code   string // the __type of the JSON body; "" sends no body
}

func (f failure) String() string { return fmt.Sprintf("%d %s", f.status, f.code) }

var (
	throttling      = failure{400, "ThrottlingException"}
	tooManyRequests = failure{400, "TooManyRequestsException"}
	limitExceeded   = failure{400, "LimitExceededException"}
	internalError   = failure{500, "KMSInternalException"}
	unavailable     = failure{503, ""}
	accessDenied    = failure{400, "AccessDeniedException"}
)

// kmsServer is one region's KMS over HTTP. Before serving an operation it
// answers with the failures queued for it (or with always, when set).
type kmsServer struct {
	*httptest.Server
	fake *fakeKMS

	mu       sync.Mutex
	queued   map[string][]failure // by operation name, such as "Decrypt"
	always   *failure
	attempts map[string]int
}

func newKMSServer(t *testing.T, region string) *kmsServer {
	t.Helper()
	s := &kmsServer{fake: newFake(t, region), queued: map[string][]failure{}, attempts: map[string]int{}}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

func (s *kmsServer) fail(op string, fs ...failure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queued[op] = append(s.queued[op], fs...)
}

func (s *kmsServer) failAlways(f failure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.always = &f
}

func (s *kmsServer) count(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.attempts[op]
}

// request holds the fields of the three operations' JSON requests that
// the fake needs ([]byte fields are base64 in JSON, as in KMS).
type request struct {
	KeyId          string
	KeySpec        string
	Plaintext      []byte
	CiphertextBlob []byte
}

const requestID = "req-0123"

func (s *kmsServer) serve(w http.ResponseWriter, r *http.Request) {
	op, ok := strings.CutPrefix(r.Header.Get("X-Amz-Target"), "TrentService.")
	if !ok {
		http.Error(w, "not a KMS request", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	s.attempts[op]++
	var f *failure
	if s.always != nil {
		f = s.always
	} else if q := s.queued[op]; len(q) > 0 {
		f, s.queued[op] = &q[0], q[1:]
	}
	s.mu.Unlock()

	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-Requestid", requestID)
	if f != nil {
		w.WriteHeader(f.status)
		if f.code != "" {
			fmt.Fprintf(w, `{"__type":%q,"message":"scripted %s"}`, f.code, f.code)
		}
		return
	}
	var in request
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	ctx := r.Context()
	var out any
	var err error
	switch op {
	case "GenerateDataKey":
		var o *kms.GenerateDataKeyOutput
		o, err = s.fake.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: aws.String(in.KeyId), KeySpec: types.DataKeySpec(in.KeySpec)})
		if err == nil {
			out = map[string]any{"KeyId": in.KeyId, "Plaintext": o.Plaintext, "CiphertextBlob": o.CiphertextBlob}
		}
	case "Encrypt":
		var o *kms.EncryptOutput
		o, err = s.fake.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(in.KeyId), Plaintext: in.Plaintext})
		if err == nil {
			out = map[string]any{"KeyId": in.KeyId, "CiphertextBlob": o.CiphertextBlob}
		}
	case "Decrypt":
		var o *kms.DecryptOutput
		o, err = s.fake.Decrypt(ctx, &kms.DecryptInput{KeyId: aws.String(in.KeyId), CiphertextBlob: in.CiphertextBlob})
		if err == nil {
			out = map[string]any{"KeyId": in.KeyId, "Plaintext": o.Plaintext}
		}
	default:
		err = fmt.Errorf("unknown operation %s", op)
	}
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `{"__type":"InvalidCiphertextException","message":%q}`, err.Error())
		return
	}
	json.NewEncoder(w).Encode(out)
}

// retryKMS returns a KMS over the given servers (the first one preferred)
// with clients built by New from cfg and the options.
func retryKMS(t *testing.T, cfg aws.Config, servers []*kmsServer, opts ...awskms.Option) *awskms.KMS {
	t.Helper()
	spec := awskms.Spec{}
	for i, s := range servers {
		r := threeRegions[i]
		spec.Regions = append(spec.Regions, r)
		opts = append(opts, awskms.WithEndpoint(r.Name, s.URL))
	}
	k, err := awskms.New(context.Background(), spec, append([]awskms.Option{awskms.WithAWSConfig(cfg)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func staticConfig() aws.Config {
	return aws.Config{Credentials: credentials.NewStaticCredentialsProvider("id", "secret", "")}
}

// fastRetry retries quickly enough for a test: the delays stay below 1 ms.
func fastRetry(attempts int) awskms.Option {
	return awskms.WithRetry(awskms.RetryPolicy{MaxAttempts: attempts, MaxBackoff: time.Millisecond})
}

// wrapped returns an envelope made while no failure was scripted, and its
// system key.
func wrapped(t *testing.T, k *awskms.KMS) (blob, sk []byte) {
	t.Helper()
	sk = newSystemKey()
	blob, err := k.EncryptKey(context.Background(), sk)
	if err != nil {
		t.Fatal(err)
	}
	return blob, sk
}

// Throttling and 5xx answers are retried, and the call succeeds once KMS
// answers, in every operation.
func TestRetryTransientFailuresThenSuccess(t *testing.T) {
	for _, f := range []failure{throttling, tooManyRequests, limitExceeded, internalError, unavailable} {
		t.Run(f.String(), func(t *testing.T) {
			west, east := newKMSServer(t, "us-west-2"), newKMSServer(t, "us-east-1")
			const attempts = 4
			k := retryKMS(t, staticConfig(), []*kmsServer{west, east}, fastRetry(attempts))
			ctx := context.Background()

			// EncryptKey: GenerateDataKey in us-west-2, Encrypt in us-east-1.
			west.fail("GenerateDataKey", f, f)
			east.fail("Encrypt", f, f, f) // attempts-1 failures: the last attempt succeeds
			sk := newSystemKey()
			blob, err := k.EncryptKey(ctx, sk)
			if err != nil {
				t.Fatalf("EncryptKey after transient %v: %v", f, err)
			}
			if env := parse(t, blob); len(env.KEKs) != 2 {
				t.Fatalf("the envelope has %d KEKs, want both regions': a retried Encrypt was left out", len(env.KEKs))
			}
			if got := west.count("GenerateDataKey"); got != 3 {
				t.Errorf("GenerateDataKey attempts = %d, want 3 (2 failures, 1 success)", got)
			}
			if got := east.count("Encrypt"); got != attempts {
				t.Errorf("Encrypt attempts = %d, want %d", got, attempts)
			}

			west.fail("Decrypt", f)
			got, err := k.DecryptKey(ctx, blob)
			if err != nil || !bytes.Equal(got, sk) {
				t.Fatalf("DecryptKey after a transient %v: %v", f, err)
			}
			if n := west.count("Decrypt"); n != 2 {
				t.Errorf("Decrypt attempts in us-west-2 = %d, want 2", n)
			}
			if n := east.count("Decrypt"); n != 0 {
				t.Errorf("us-east-1 was asked to decrypt %d times though us-west-2 recovered on retry", n)
			}
		})
	}
}

// When every attempt is throttled the caller gets one error, on one line,
// that names the region, the call, the KMS error and the attempts made, and
// matches ErrThrottled and ErrAllRegionsFailed; nothing else is retried.
func TestRetryGivesUpWithOneClearError(t *testing.T) {
	for _, c := range []struct {
		f         failure
		throttled bool
		want      []string
	}{
		{throttling, true, []string{"throttled: ThrottlingException: scripted ThrottlingException", "HTTP 400"}},
		{limitExceeded, true, []string{"throttled: LimitExceededException"}},
		{internalError, false, []string{"server error: KMSInternalException", "HTTP 500"}},
	} {
		t.Run(c.f.String(), func(t *testing.T) {
			west := newKMSServer(t, "us-west-2")
			const attempts = 3
			k := retryKMS(t, staticConfig(), []*kmsServer{west}, fastRetry(attempts))
			blob, _ := wrapped(t, k)
			west.failAlways(c.f)
			_, err := k.DecryptKey(context.Background(), blob)
			if err == nil {
				t.Fatal("DecryptKey succeeded against a KMS that always fails")
			}
			if n := west.count("Decrypt"); n != attempts {
				t.Errorf("Decrypt attempts = %d, want %d", n, attempts)
			}
			msg := err.Error()
			want := append([]string{"region us-west-2: Decrypt:", "request id " + requestID, fmt.Sprintf("gave up after %d attempts", attempts)}, c.want...)
			for _, w := range want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not contain %q", msg, w)
				}
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("error spans lines: %q", msg)
			}
			if !errors.Is(err, awskms.ErrAllRegionsFailed) || errors.Is(err, awskms.ErrThrottled) != c.throttled {
				t.Errorf("errors.Is(ErrAllRegionsFailed) = %v, errors.Is(ErrThrottled) = %v (want true, %v)",
					errors.Is(err, awskms.ErrAllRegionsFailed), errors.Is(err, awskms.ErrThrottled), c.throttled)
			}
			var api smithy.APIError
			var maxed *retry.MaxAttemptsError
			if !errors.As(err, &api) || api.ErrorCode() != c.f.code || !errors.As(err, &maxed) || maxed.Attempt != attempts {
				t.Errorf("the SDK's error types are not reachable with errors.As through %v", err)
			}
		})
	}
}

// Client errors are final: one attempt, then the next region.
func TestRetryNotForClientErrors(t *testing.T) {
	west, east := newKMSServer(t, "us-west-2"), newKMSServer(t, "us-east-1")
	k := retryKMS(t, staticConfig(), []*kmsServer{west, east}, fastRetry(5))
	blob, sk := wrapped(t, k)
	west.failAlways(accessDenied)
	got, err := k.DecryptKey(context.Background(), blob)
	if err != nil || !bytes.Equal(got, sk) {
		t.Fatalf("DecryptKey with us-west-2 denying access: %v", err)
	}
	if n := west.count("Decrypt"); n != 1 {
		t.Errorf("AccessDeniedException was attempted %d times, want 1", n)
	}
	if n := east.count("Decrypt"); n != 1 {
		t.Errorf("us-east-1 Decrypt attempts = %d, want 1", n)
	}
}

// A region that keeps failing is given up after the policy's attempts and
// the next region serves the call, for decryption and for key creation.
func TestRetryThenFailover(t *testing.T) {
	west, east := newKMSServer(t, "us-west-2"), newKMSServer(t, "us-east-1")
	const attempts = 3
	k := retryKMS(t, staticConfig(), []*kmsServer{west, east}, fastRetry(attempts))
	blob, sk := wrapped(t, k)
	west.failAlways(internalError)
	got, err := k.DecryptKey(context.Background(), blob)
	if err != nil || !bytes.Equal(got, sk) {
		t.Fatalf("DecryptKey with us-west-2 failing: %v", err)
	}
	if n := west.count("Decrypt"); n != attempts {
		t.Errorf("us-west-2 Decrypt attempts = %d, want %d", n, attempts)
	}
	sk2 := newSystemKey()
	blob2, err := k.EncryptKey(context.Background(), sk2)
	if err != nil {
		t.Fatalf("EncryptKey with us-west-2 failing: %v", err)
	}
	if env := parse(t, blob2); len(env.KEKs) != 1 || env.KEKs[0].Region != "us-east-1" {
		t.Fatalf("envelope made with us-west-2 failing has KEKs %+v", env.KEKs)
	}
	if got, err := k.DecryptKey(context.Background(), blob2); err != nil || !bytes.Equal(got, sk2) {
		t.Fatalf("DecryptKey of the us-east-1-only envelope: %v", err)
	}
}

// WithRetry's attempts win over the aws.Config's RetryMaxAttempts, which
// applies when WithRetry is not given.
func TestRetryPolicyOverridesAWSConfig(t *testing.T) {
	cfg := staticConfig()
	cfg.RetryMaxAttempts = 2
	for _, c := range []struct {
		name string
		opts []awskms.Option
		want int
	}{
		{"aws.Config alone", nil, cfg.RetryMaxAttempts},
		{"WithRetry", []awskms.Option{fastRetry(5)}, 5},
	} {
		t.Run(c.name, func(t *testing.T) {
			west := newKMSServer(t, "us-west-2")
			k := retryKMS(t, cfg, []*kmsServer{west}, c.opts...)
			blob, _ := wrapped(t, k)
			west.failAlways(unavailable)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if _, err := k.DecryptKey(ctx, blob); err == nil {
				t.Fatal("DecryptKey succeeded against a failing KMS")
			}
			if n := west.count("Decrypt"); n != c.want {
				t.Errorf("Decrypt attempts = %d, want %d", n, c.want)
			}
		})
	}
}

// The caller's context ends the retries.
func TestRetryStopsWithContext(t *testing.T) {
	west := newKMSServer(t, "us-west-2")
	k := retryKMS(t, staticConfig(), []*kmsServer{west},
		awskms.WithRetry(awskms.RetryPolicy{MaxAttempts: 1000, MaxBackoff: 5 * time.Millisecond}))
	blob, _ := wrapped(t, k)
	west.failAlways(throttling)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for west.count("Decrypt") < 3 {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	_, err := k.DecryptKey(ctx, blob)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("DecryptKey with a cancelled context = %v, want context.Canceled", err)
	}
	if n := west.count("Decrypt"); n >= 1000 {
		t.Fatalf("retries went on after the context ended (%d attempts)", n)
	}
}

func TestWithRetryRejectsBadPolicy(t *testing.T) {
	for _, p := range []awskms.RetryPolicy{{0, time.Second}, {-1, time.Second}, {3, 0}, {3, -time.Second}} {
		_, err := awskms.New(context.Background(), awskms.Spec{Regions: threeRegions[:1]},
			awskms.WithAWSConfig(staticConfig()), awskms.WithRetry(p))
		if !errors.Is(err, awskms.ErrInvalidSpec) {
			t.Errorf("WithRetry(%+v): New = %v, want ErrInvalidSpec", p, err)
		}
	}
}
