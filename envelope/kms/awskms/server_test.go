package awskms_test

// Tests against real local-kms servers (.ci/services.sh): two processes
// acting as the regions us-west-2 and us-east-1.

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/enc-pipe/enc-pipe/envelope/kms/awskms"
	"github.com/enc-pipe/enc-pipe/internal/testenv"
)

// testAWSConfig has static credentials and fewer retries than the SDK's
// default (3 attempts), so that tests against a stopped server fail over
// quickly. Nothing in it reaches beyond loopback: every client gets an
// endpoint.
func testAWSConfig() aws.Config {
	return aws.Config{
		Credentials:      credentials.NewStaticCredentialsProvider("encpipe", "encpipe-secret", ""),
		RetryMaxAttempts: 2,
	}
}

// kmsEndpoints parses ENCPIPE_TEST_KMS: us-west-2=http://…,us-east-1=http://…
func kmsEndpoints(t testing.TB) map[string]string {
	t.Helper()
	v := testenv.Var(t, testenv.KMS)
	eps := map[string]string{}
	for _, item := range strings.Split(v, ",") {
		region, url, ok := strings.Cut(item, "=")
		if !ok {
			t.Fatalf("%s: bad item %q", testenv.KMS, item)
		}
		eps[region] = url
	}
	if eps["us-west-2"] == "" || eps["us-east-1"] == "" {
		t.Fatalf("%s=%q: want us-west-2 and us-east-1", testenv.KMS, v)
	}
	return eps
}

func rawClient(region, endpoint string) *kms.Client {
	return kms.NewFromConfig(testAWSConfig(), func(o *kms.Options) {
		o.Region = region
		o.BaseEndpoint = aws.String(endpoint)
	})
}

// createKey makes a new symmetric master key in one local-kms region and
// returns its ARN.
func createKey(t testing.TB, region, endpoint string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := rawClient(region, endpoint).CreateKey(ctx, &kms.CreateKeyInput{
		Description: aws.String("enc-pipe test master key"),
		KeySpec:     types.KeySpecSymmetricDefault,
		KeyUsage:    types.KeyUsageTypeEncryptDecrypt,
	})
	if err != nil {
		t.Fatalf("CreateKey in %s (%s): %v", region, endpoint, err)
	}
	if !strings.HasPrefix(*out.KeyMetadata.Arn, "arn:aws:kms:"+region+":") {
		t.Fatalf("CreateKey in %s returned ARN %s", region, *out.KeyMetadata.Arn)
	}
	return *out.KeyMetadata.Arn
}

// twoRegionKMS returns a KMS over us-west-2 (preferred) and us-east-1 at
// the given endpoints, with a fresh master key in each.
func twoRegionKMS(t testing.TB, eps map[string]string, opts ...awskms.Option) (*awskms.KMS, awskms.Spec) {
	t.Helper()
	spec := awskms.Spec{Regions: []awskms.Region{
		{Name: "us-west-2", KeyID: createKey(t, "us-west-2", eps["us-west-2"])},
		{Name: "us-east-1", KeyID: createKey(t, "us-east-1", eps["us-east-1"])},
	}}
	opts = append([]awskms.Option{
		awskms.WithAWSConfig(testAWSConfig()),
		awskms.WithEndpoint("us-west-2", eps["us-west-2"]),
		awskms.WithEndpoint("us-east-1", eps["us-east-1"]),
	}, opts...)
	k, err := awskms.New(context.Background(), spec, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return k, spec
}

func TestServerEnvelopeLayout(t *testing.T) {
	eps := kmsEndpoints(t)
	k, spec := twoRegionKMS(t, eps)
	ctx := context.Background()
	sk := newSystemKey()
	blob, err := k.EncryptKey(ctx, sk)
	if err != nil {
		t.Fatal(err)
	}
	got, err := k.DecryptKey(ctx, blob)
	if err != nil || !bytes.Equal(got, sk) {
		t.Fatalf("DecryptKey: %v", err)
	}

	// Check the envelope with the raw SDK and crypto/aes alone: each
	// region's KEK decrypts, in its own region, to one data key, and the
	// system key is AES-256-GCM ct||tag||nonce under it with no AAD.
	env := parse(t, blob)
	if len(env.KEKs) != 2 {
		t.Fatalf("%d KEKs, want 2", len(env.KEKs))
	}
	var dks [][]byte
	for i, kek := range env.KEKs {
		r := spec.Regions[i]
		if kek.Region != r.Name || kek.ARN != r.KeyID {
			t.Fatalf("KEK %d = %s %s, want %s %s", i, kek.Region, kek.ARN, r.Name, r.KeyID)
		}
		out, err := rawClient(r.Name, eps[r.Name]).Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: kek.EncryptedKEK})
		if err != nil {
			t.Fatalf("raw Decrypt of %s's KEK: %v", r.Name, err)
		}
		if *out.KeyId != r.KeyID {
			t.Errorf("%s's KEK was encrypted under %s, want %s", r.Name, *out.KeyId, r.KeyID)
		}
		dks = append(dks, out.Plaintext)
	}
	if !bytes.Equal(dks[0], dks[1]) || len(dks[0]) != 32 {
		t.Fatal("the regions' KEKs hold different data keys")
	}
	if opened := gcmOpenAsherah(t, dks[0], env.EncryptedKey); !bytes.Equal(opened, sk) {
		t.Fatal("encryptedKey does not open to the system key")
	}
	// A KEK of one region does not decrypt in the other: the envelope
	// really depends on per-region keys.
	if _, err := rawClient("us-east-1", eps["us-east-1"]).Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: env.KEKs[0].EncryptedKEK}); err == nil {
		t.Error("us-west-2's KEK decrypted in us-east-1")
	}
}

// TestServerDecryptsAsherahEnvelope builds an envelope the way Asherah's
// aws-v2 plugin does, with the raw SDK and crypto/aes (data key from the
// non-preferred region, KEKs in completion order), and decrypts it.
func TestServerDecryptsAsherahEnvelope(t *testing.T) {
	eps := kmsEndpoints(t)
	k, spec := twoRegionKMS(t, eps)
	ctx := context.Background()
	east, west := spec.Regions[1], spec.Regions[0]
	gen, err := rawClient(east.Name, eps[east.Name]).GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: aws.String(east.KeyID), KeySpec: types.DataKeySpecAes256})
	if err != nil {
		t.Fatal(err)
	}
	enc, err := rawClient(west.Name, eps[west.Name]).Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(west.KeyID), Plaintext: gen.Plaintext})
	if err != nil {
		t.Fatal(err)
	}
	sk := newSystemKey()
	type kek struct {
		Region       string `json:"region"`
		ARN          string `json:"arn"`
		EncryptedKEK []byte `json:"encryptedKek"`
	}
	blob, err := json.Marshal(struct {
		EncryptedKey []byte `json:"encryptedKey"`
		KEKs         []kek  `json:"kmsKeks"`
	}{gcmSealAsherah(t, gen.Plaintext, sk), []kek{{east.Name, east.KeyID, gen.CiphertextBlob}, {west.Name, west.KeyID, enc.CiphertextBlob}}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := k.DecryptKey(ctx, blob)
	if err != nil || !bytes.Equal(got, sk) {
		t.Fatalf("DecryptKey of an Asherah-made envelope: %v", err)
	}
}

// TestServerRegionFailover stops each region's local-kms in turn (private
// instances, so that other tests are not disturbed).
func TestServerRegionFailover(t *testing.T) {
	p := testenv.StartPrivate(t, testenv.ServiceKMSA, testenv.ServiceKMSB)
	eps := map[string]string{"us-west-2": p.URL(testenv.ServiceKMSA), "us-east-1": p.URL(testenv.ServiceKMSB)}
	k, _ := twoRegionKMS(t, eps)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sk := newSystemKey()
	blob, err := k.EncryptKey(ctx, sk)
	if err != nil {
		t.Fatal(err)
	}
	mustDecrypt := func(what string, blob, want []byte) {
		t.Helper()
		got, err := k.DecryptKey(ctx, blob)
		if err != nil {
			t.Fatalf("%s: DecryptKey: %v", what, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%s: DecryptKey returned another key", what)
		}
	}

	p.Stop(t, testenv.ServiceKMSA) // us-west-2, the preferred region
	mustDecrypt("us-west-2 stopped", blob, sk)
	// A new key can still be made: the data key comes from us-east-1 and
	// us-west-2 is left out of the envelope.
	sk2 := newSystemKey()
	blob2, err := k.EncryptKey(ctx, sk2)
	if err != nil {
		t.Fatalf("EncryptKey with us-west-2 stopped: %v", err)
	}
	if env := parse(t, blob2); len(env.KEKs) != 1 || env.KEKs[0].Region != "us-east-1" {
		t.Fatalf("envelope made with us-west-2 down has KEKs %+v", env.KEKs)
	}
	p.Start(t, testenv.ServiceKMSA)

	p.Stop(t, testenv.ServiceKMSB) // us-east-1
	mustDecrypt("us-east-1 stopped", blob, sk)

	p.Stop(t, testenv.ServiceKMSA)
	_, err = k.DecryptKey(ctx, blob)
	if !errors.Is(err, awskms.ErrAllRegionsFailed) {
		t.Fatalf("both regions stopped: DecryptKey = %v, want ErrAllRegionsFailed", err)
	}
	for _, r := range []string{"region us-west-2: Decrypt:", "region us-east-1: Decrypt:"} {
		if !strings.Contains(err.Error(), r) {
			t.Errorf("both regions stopped: error %q does not name %q", err, r)
		}
	}
	if !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("both regions stopped: error %q does not give the cause", err)
	}
	_, err = k.EncryptKey(ctx, newSystemKey())
	if !errors.Is(err, awskms.ErrAllRegionsFailed) || !strings.Contains(err.Error(), "region us-west-2: GenerateDataKey") || !strings.Contains(err.Error(), "region us-east-1: GenerateDataKey") {
		t.Errorf("both regions stopped: EncryptKey = %v", err)
	}

	// Keys survive the restarts (local-kms keeps them on disk).
	p.Start(t, testenv.ServiceKMSA)
	p.Start(t, testenv.ServiceKMSB)
	mustDecrypt("both restarted", blob, sk)
	mustDecrypt("both restarted, key made while us-west-2 was down", blob2, sk2)
}

// TestServerDefaultCredentialChain builds the clients from the default AWS
// configuration (credentials from the environment, as an operator would
// set them), with only the endpoints overridden.
func TestServerDefaultCredentialChain(t *testing.T) {
	eps := kmsEndpoints(t)
	t.Setenv("AWS_ACCESS_KEY_ID", "encpipe")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "encpipe-secret")
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_CONFIG_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	spec, err := awskms.ParseSpec("aws:us-east-1=" + createKey(t, "us-east-1", eps["us-east-1"]) +
		",us-west-2=" + createKey(t, "us-west-2", eps["us-west-2"]) + ",preferred=us-west-2")
	if err != nil {
		t.Fatal(err)
	}
	k, err := awskms.New(context.Background(), spec,
		awskms.WithEndpoint("us-west-2", eps["us-west-2"]), awskms.WithEndpoint("us-east-1", eps["us-east-1"]))
	if err != nil {
		t.Fatal(err)
	}
	if k.Spec().Preferred() != "us-west-2" {
		t.Fatalf("preferred = %s", k.Spec().Preferred())
	}
	sk := newSystemKey()
	blob, err := k.EncryptKey(context.Background(), sk)
	if err != nil {
		t.Fatal(err)
	}
	if env := parse(t, blob); len(env.KEKs) != 2 || env.KEKs[0].Region != "us-west-2" {
		t.Fatalf("KEKs %+v, want us-west-2 first", env.KEKs)
	}
	if got, err := k.DecryptKey(context.Background(), blob); err != nil || !bytes.Equal(got, sk) {
		t.Fatalf("DecryptKey: %v", err)
	}
}

// gcmSealAsherah and gcmOpenAsherah implement Asherah's AEAD layout
// (ciphertext || tag || nonce, no AAD) directly on crypto/aes, independent
// of envelope's implementation.
func gcmSealAsherah(t testing.TB, key, plaintext []byte) []byte {
	t.Helper()
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	nonce := make([]byte, 12)
	rand.Read(nonce)
	return append(gcm.Seal(nil, nonce, plaintext, nil), nonce...)
}

func gcmOpenAsherah(t testing.TB, key, blob []byte) []byte {
	t.Helper()
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	n := len(blob) - 12
	out, err := gcm.Open(nil, blob[n:], blob[:n], nil)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
