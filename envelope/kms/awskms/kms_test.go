package awskms_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/enc-pipe/enc-pipe/envelope"
	"github.com/enc-pipe/enc-pipe/envelope/kms/awskms"
)

// fakeKMS is an in-process stand-in for one region's KMS, for unit tests
// of this package's own logic (fallback order, error joining, wiping).
// The real-server tests are in server_test.go.
type fakeKMS struct {
	region string
	master []byte
	aead   envelope.AEAD

	mu                       sync.Mutex
	genErr, encErr, decErr   error
	gens, encs, decs         int
	handedOut                [][]byte // plaintext slices returned to the caller
	lastGenKeyID, lastDecKey string
}

type fakeError struct{ region, op string }

func (e *fakeError) Error() string { return "fake " + e.op + " failure in " + e.region }

func newFake(t *testing.T, region string) *fakeKMS {
	m := make([]byte, 32)
	rand.Read(m)
	return &fakeKMS{region: region, master: m, aead: envelope.NewAES256GCM()}
}

func (f *fakeKMS) wrap(dk []byte) []byte {
	blob, err := f.aead.Encrypt(dk, f.master)
	if err != nil {
		panic(err)
	}
	return append([]byte(f.region+":"), blob...)
}

func (f *fakeKMS) GenerateDataKey(ctx context.Context, in *kms.GenerateDataKeyInput, _ ...func(*kms.Options)) (*kms.GenerateDataKeyOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gens++
	f.lastGenKeyID = *in.KeyId
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if f.genErr != nil {
		return nil, f.genErr
	}
	if in.KeySpec != "AES_256" {
		return nil, fmt.Errorf("unexpected key spec %q", in.KeySpec)
	}
	dk := make([]byte, 32)
	rand.Read(dk)
	f.handedOut = append(f.handedOut, dk)
	return &kms.GenerateDataKeyOutput{Plaintext: dk, CiphertextBlob: f.wrap(dk), KeyId: in.KeyId}, nil
}

func (f *fakeKMS) Encrypt(ctx context.Context, in *kms.EncryptInput, _ ...func(*kms.Options)) (*kms.EncryptOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.encs++
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if f.encErr != nil {
		return nil, f.encErr
	}
	return &kms.EncryptOutput{CiphertextBlob: f.wrap(in.Plaintext), KeyId: in.KeyId}, nil
}

func (f *fakeKMS) Decrypt(ctx context.Context, in *kms.DecryptInput, _ ...func(*kms.Options)) (*kms.DecryptOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.decs++
	f.lastDecKey = *in.KeyId
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if f.decErr != nil {
		return nil, f.decErr
	}
	blob, ok := bytes.CutPrefix(in.CiphertextBlob, []byte(f.region+":"))
	if !ok {
		return nil, errors.New("InvalidCiphertextException: not from this region")
	}
	dk, err := f.aead.Decrypt(blob, f.master)
	if err != nil {
		return nil, errors.New("InvalidCiphertextException")
	}
	f.handedOut = append(f.handedOut, dk)
	return &kms.DecryptOutput{Plaintext: dk, KeyId: in.KeyId}, nil
}

func (f *fakeKMS) counts() (gens, encs, decs int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.gens, f.encs, f.decs
}

func (f *fakeKMS) set(fn func(*fakeKMS)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

// allWiped reports whether every plaintext data key the fake handed out
// has been overwritten with zeros by the caller.
func (f *fakeKMS) allWiped() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, b := range f.handedOut {
		if !bytes.Equal(b, make([]byte, len(b))) {
			return false
		}
	}
	return len(f.handedOut) > 0
}

var threeRegions = []awskms.Region{{"us-west-2", arnW}, {"us-east-1", arnE}, {"eu-central-1", arnC}}

func newTestKMS(t *testing.T, extra ...awskms.Option) (*awskms.KMS, []*fakeKMS) {
	t.Helper()
	fakes := make([]*fakeKMS, len(threeRegions))
	opts := extra
	for i, r := range threeRegions {
		fakes[i] = newFake(t, r.Name)
		opts = append(opts, awskms.WithClient(r.Name, fakes[i]))
	}
	k, err := awskms.New(context.Background(), awskms.Spec{Regions: threeRegions}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return k, fakes
}

func newSystemKey() []byte {
	sk := make([]byte, 32)
	rand.Read(sk)
	return sk
}

func parse(t *testing.T, blob []byte) *awskms.Envelope {
	t.Helper()
	env, err := awskms.ParseEnvelope(blob)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func TestEncryptKeyWrapsInEveryRegion(t *testing.T) {
	k, fakes := newTestKMS(t)
	sk := newSystemKey()
	skCopy := bytes.Clone(sk)
	blob, err := k.EncryptKey(context.Background(), sk)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(sk, skCopy) {
		t.Fatal("EncryptKey modified its input")
	}
	// One data key, generated in the preferred region only.
	for i, f := range fakes {
		gens, encs, _ := f.counts()
		wantGens, wantEncs := 0, 1
		if i == 0 {
			wantGens, wantEncs = 1, 0
		}
		if gens != wantGens || encs != wantEncs {
			t.Errorf("%s: %d GenerateDataKey and %d Encrypt calls, want %d and %d", f.region, gens, encs, wantGens, wantEncs)
		}
	}
	if !fakes[0].allWiped() {
		t.Error("the data key plaintext returned by GenerateDataKey was not wiped")
	}

	// Asherah's JSON field names, KEKs in configured order, each region's
	// KEK unwraps to the same data key, which opens encryptedKey.
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(blob, &raw); err != nil {
		t.Fatal(err)
	}
	if len(raw) != 2 || raw["encryptedKey"] == nil || raw["kmsKeks"] == nil {
		t.Fatalf("envelope fields: %s", blob)
	}
	env := parse(t, blob)
	if len(env.KEKs) != 3 {
		t.Fatalf("%d KEKs, want 3", len(env.KEKs))
	}
	var dks [][]byte
	for i, kek := range env.KEKs {
		if kek.Region != threeRegions[i].Name || kek.ARN != threeRegions[i].KeyID {
			t.Errorf("KEK %d is %s %s, want %+v", i, kek.Region, kek.ARN, threeRegions[i])
		}
		blob, ok := bytes.CutPrefix(kek.EncryptedKEK, []byte(kek.Region+":"))
		if !ok {
			t.Fatalf("KEK %d was not wrapped by region %s", i, kek.Region)
		}
		dk, err := envelope.NewAES256GCM().Decrypt(blob, fakes[i].master)
		if err != nil {
			t.Fatal(err)
		}
		dks = append(dks, dk)
	}
	if !bytes.Equal(dks[0], dks[1]) || !bytes.Equal(dks[0], dks[2]) {
		t.Fatal("regions wrapped different data keys")
	}
	got, err := envelope.NewAES256GCM().Decrypt(env.EncryptedKey, dks[0])
	if err != nil || !bytes.Equal(got, sk) {
		t.Fatalf("encryptedKey does not open to the system key under the data key: %v", err)
	}
	if len(env.EncryptedKey) != 32+envelope.Overhead {
		t.Errorf("encryptedKey is %d bytes, want %d", len(env.EncryptedKey), 32+envelope.Overhead)
	}

	// Decryption uses the preferred region only, passes the KEK's ARN, and
	// wipes the data key KMS returned.
	out, err := k.DecryptKey(context.Background(), blob)
	if err != nil || !bytes.Equal(out, sk) {
		t.Fatalf("DecryptKey = %v", err)
	}
	for i, f := range fakes {
		_, _, decs := f.counts()
		if want := map[bool]int{true: 1, false: 0}[i == 0]; decs != want {
			t.Errorf("%s: %d Decrypt calls, want %d", f.region, decs, want)
		}
	}
	if fakes[0].lastDecKey != arnW {
		t.Errorf("Decrypt KeyId = %q, want %q", fakes[0].lastDecKey, arnW)
	}
	if !fakes[0].allWiped() {
		t.Error("the data key plaintext returned by Decrypt was not wiped")
	}
}

func TestEncryptKeyFallsBackInConfiguredOrder(t *testing.T) {
	k, fakes := newTestKMS(t)
	down := &fakeError{"us-west-2", "any"}
	fakes[0].set(func(f *fakeKMS) { f.genErr, f.encErr, f.decErr = down, down, down })
	sk := newSystemKey()
	blob, err := k.EncryptKey(context.Background(), sk)
	if err != nil {
		t.Fatal(err)
	}
	if g, _, _ := fakes[1].counts(); g != 1 {
		t.Errorf("us-east-1 (next in order) generated %d data keys, want 1", g)
	}
	if g, _, _ := fakes[2].counts(); g != 0 {
		t.Errorf("eu-central-1 generated %d data keys, want 0", g)
	}
	env := parse(t, blob)
	var regions []string
	for _, kek := range env.KEKs {
		regions = append(regions, kek.Region)
	}
	if strings.Join(regions, ",") != "us-east-1,eu-central-1" {
		t.Errorf("KEK regions = %v, want the failed region left out", regions)
	}
	out, err := k.DecryptKey(context.Background(), blob)
	if err != nil || !bytes.Equal(out, sk) {
		t.Fatalf("DecryptKey with the preferred region down = %v", err)
	}
}

func TestRequireAllRegions(t *testing.T) {
	k, fakes := newTestKMS(t, awskms.WithRequireAllRegions())
	fakes[2].set(func(f *fakeKMS) { f.encErr = &fakeError{"eu-central-1", "Encrypt"} })
	_, err := k.EncryptKey(context.Background(), newSystemKey())
	if !errors.Is(err, awskms.ErrRegionsMissing) {
		t.Fatalf("EncryptKey = %v, want ErrRegionsMissing", err)
	}
	var re *awskms.RegionError
	if !errors.As(err, &re) || re.Region != "eu-central-1" || re.Op != "Encrypt" {
		t.Fatalf("error %v does not name eu-central-1's Encrypt", err)
	}
	var fe *fakeError
	if !errors.As(err, &fe) {
		t.Fatalf("the SDK-level cause is not reachable through %v", err)
	}
}

func TestAllRegionsFailNamesEachRegion(t *testing.T) {
	k, fakes := newTestKMS(t)
	for _, f := range fakes {
		f.set(func(f *fakeKMS) {
			f.genErr = &fakeError{f.region, "GenerateDataKey"}
			f.decErr = &fakeError{f.region, "Decrypt"}
		})
	}
	_, err := k.EncryptKey(context.Background(), newSystemKey())
	checkAllFailed(t, err, "GenerateDataKey")

	// A valid envelope that no region can decrypt.
	k2, fakes2 := newTestKMS(t)
	blob, err := k2.EncryptKey(context.Background(), newSystemKey())
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fakes2 {
		f.set(func(f *fakeKMS) { f.decErr = &fakeError{f.region, "Decrypt"} })
	}
	_, err = k2.DecryptKey(context.Background(), blob)
	checkAllFailed(t, err, "Decrypt")
}

func checkAllFailed(t *testing.T, err error, op string) {
	t.Helper()
	if !errors.Is(err, awskms.ErrAllRegionsFailed) {
		t.Fatalf("err = %v, want ErrAllRegionsFailed", err)
	}
	var rs *awskms.RegionsError
	if !errors.As(err, &rs) {
		t.Fatalf("err = %T, want *RegionsError", err)
	}
	if got := strings.Join(rs.Regions(), ","); got != "us-west-2,us-east-1,eu-central-1" {
		t.Errorf("failed regions = %s, want all three in configured order", got)
	}
	msg := err.Error()
	for _, r := range threeRegions {
		if !strings.Contains(msg, "region "+r.Name+": "+op+": fake "+op+" failure in "+r.Name) {
			t.Errorf("message %q does not give %s's cause", msg, r.Name)
		}
	}
	if strings.Contains(msg, "\n") {
		t.Errorf("message spans lines: %q", msg)
	}
	// Every region's cause is reachable, as with errors.Join.
	n := 0
	for _, e := range rs.Unwrap() {
		var fe *fakeError
		if errors.As(e, &fe) && fe.op == op {
			n++
		}
	}
	if n != 3 {
		t.Errorf("%d of 3 causes reachable", n)
	}
}

func TestDecryptKeyErrors(t *testing.T) {
	k, fakes := newTestKMS(t)
	sk := newSystemKey()
	blob, err := k.EncryptKey(context.Background(), sk)
	if err != nil {
		t.Fatal(err)
	}
	env := parse(t, blob)

	// Malformed envelopes.
	for _, bad := range []string{``, `{`, `null`, `[]`, `{"encryptedKey":"AAAA","kmsKeks":[]}`,
		`{"encryptedKey":"` + strings.Repeat("A", 80) + `","kmsKeks":[]}`,
		`{"encryptedKey":"` + strings.Repeat("A", 80) + `","kmsKeks":[{"region":"us-west-2","arn":"x"}]}`,
		`{"encryptedKey":"not base64!","kmsKeks":[{"region":"us-west-2","arn":"x","encryptedKek":"AAAA"}]}`,
	} {
		if _, err := k.DecryptKey(context.Background(), []byte(bad)); !errors.Is(err, awskms.ErrMalformedEnvelope) {
			t.Errorf("DecryptKey(%q) = %v, want ErrMalformedEnvelope", bad, err)
		}
	}

	// Asherah writes KEKs in completion order: any order must decrypt, and
	// field names match case-insensitively as in Go's decoder.
	rev := *env
	rev.KEKs = []awskms.KEK{env.KEKs[2], env.KEKs[0], env.KEKs[1]}
	revBlob, _ := rev.Marshal()
	revBlob = bytes.Replace(revBlob, []byte(`"encryptedKey"`), []byte(`"EncryptedKey"`), 1)
	if out, err := k.DecryptKey(context.Background(), revBlob); err != nil || !bytes.Equal(out, sk) {
		t.Errorf("reordered envelope: %v", err)
	}

	// A tampered encryptedKey fails authentication in every region.
	bad := *env
	bad.EncryptedKey = bytes.Clone(env.EncryptedKey)
	bad.EncryptedKey[0] ^= 1
	badBlob, _ := bad.Marshal()
	_, err = k.DecryptKey(context.Background(), badBlob)
	if !errors.Is(err, awskms.ErrAllRegionsFailed) || !errors.Is(err, envelope.ErrDecrypt) {
		t.Errorf("tampered envelope: %v, want ErrAllRegionsFailed and envelope.ErrDecrypt", err)
	}

	// An envelope with KEKs only for a region that is not configured.
	other := *env
	other.KEKs = []awskms.KEK{{Region: "ap-south-1", ARN: "arn:aws:kms:ap-south-1:1:key/x", EncryptedKEK: []byte("x")}}
	otherBlob, _ := other.Marshal()
	_, _, before := fakes[0].counts()
	_, err = k.DecryptKey(context.Background(), otherBlob)
	if !errors.Is(err, awskms.ErrAllRegionsFailed) || !strings.Contains(err.Error(), "region ap-south-1: Decrypt: the key envelope names this region, which is not configured") {
		t.Errorf("foreign envelope: %v", err)
	}
	if _, _, after := fakes[0].counts(); after != before {
		t.Errorf("KMS Decrypt was called for an envelope without a KEK for the region")
	}
}

func TestCanceledContextStopsFallback(t *testing.T) {
	k, fakes := newTestKMS(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := k.EncryptKey(ctx, newSystemKey())
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("EncryptKey = %v, want context.Canceled", err)
	}
	if g, _, _ := fakes[1].counts(); g != 0 {
		t.Errorf("fell back to us-east-1 after the context was canceled")
	}
}

func TestNewRejectsUnknownRegions(t *testing.T) {
	spec := awskms.Spec{Regions: threeRegions[:1]}
	for _, opt := range []awskms.Option{
		awskms.WithEndpoint("us-east-1", "http://127.0.0.1:1"),
		awskms.WithClient("us-east-1", newFake(t, "us-east-1")),
		awskms.WithEndpoint("us-west-2", ""),
	} {
		if _, err := awskms.New(context.Background(), spec, opt); !errors.Is(err, awskms.ErrInvalidSpec) {
			t.Errorf("New = %v, want ErrInvalidSpec", err)
		}
	}
	if _, err := awskms.New(context.Background(), awskms.Spec{}); !errors.Is(err, awskms.ErrInvalidSpec) {
		t.Errorf("New(empty spec) = %v", err)
	}
}

// cancelOnEncrypt cancels the context when a region's Encrypt is called,
// as a caller giving up in the middle of EncryptKey would.
type cancelOnEncrypt struct {
	*fakeKMS
	cancel context.CancelFunc
}

func (c cancelOnEncrypt) Encrypt(ctx context.Context, in *kms.EncryptInput, o ...func(*kms.Options)) (*kms.EncryptOutput, error) {
	c.cancel()
	return c.fakeKMS.Encrypt(ctx, in, o...)
}

func TestCanceledDuringWrapFailsInsteadOfDroppingRegions(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	west, east := newFake(t, "us-west-2"), newFake(t, "us-east-1")
	k, err := awskms.New(ctx, awskms.Spec{Regions: threeRegions[:2]},
		awskms.WithClient("us-west-2", west), awskms.WithClient("us-east-1", cancelOnEncrypt{east, cancel}))
	if err != nil {
		t.Fatal(err)
	}
	blob, err := k.EncryptKey(ctx, newSystemKey())
	if !errors.Is(err, context.Canceled) || blob != nil {
		t.Fatalf("EncryptKey = %d bytes, %v; want context.Canceled and no envelope", len(blob), err)
	}
}
