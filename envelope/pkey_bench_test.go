package envelope_test

import (
	"testing"

	"github.com/enc-pipe/enc-pipe/envelope"
	"github.com/enc-pipe/enc-pipe/internal/testenv"
	"github.com/enc-pipe/enc-pipe/securebuf"
)

// pkeySecrets returns a securebuf.Factory in AccessPKey mode, or skips (fails
// under CI=true when the CPU has protection keys) when it cannot be made.
func pkeySecrets(t testing.TB) *securebuf.Factory {
	t.Helper()
	sf, err := securebuf.NewFactory(securebuf.WithAccessMode(securebuf.AccessPKey))
	if err != nil {
		if cpuHasPKU(t) && testenv.InCI() {
			t.Fatalf("the CPU has pku but AccessPKey does not work: %v", err)
		}
		t.Skipf("AccessPKey is not available: %v", err)
	}
	t.Cleanup(func() { sf.Close() })
	return sf
}

// warmPKeySession is warmSession with the keys in AccessPKey secrets.
func warmPKeySession(b testing.TB, opts ...envelope.FactoryOption) *envelope.Session {
	b.Helper()
	return warmSession(b, append(opts, envelope.WithSecretFactory(pkeySecrets(b)))...)
}

// BenchmarkEncryptPKey and BenchmarkDecryptPKey are BenchmarkEncrypt and
// BenchmarkDecrypt with the keys in AccessPKey secrets. With the default
// KeyAccessCached a warm record opens no secret, so they differ from the
// mprotect figures only by noise; BenchmarkStrictPKey is where the access
// mode shows. On a CPU without PKU they skip.
func BenchmarkEncryptPKey(b *testing.B) { benchEncrypt(b, warmPKeySession(b)) }

func BenchmarkDecryptPKey(b *testing.B) { benchDecrypt(b, warmPKeySession(b)) }

// BenchmarkStrictPKey is BenchmarkStrict with the keys in AccessPKey
// secrets: two WRPKRU per record instead of two mprotect calls.
func BenchmarkStrictPKey(b *testing.B) {
	strict := envelope.WithKeyAccess(envelope.KeyAccessStrict)
	b.Run("Encrypt", func(b *testing.B) { benchEncrypt(b, warmPKeySession(b, strict)) })
	b.Run("Decrypt", func(b *testing.B) { benchDecrypt(b, warmPKeySession(b, strict)) })
}
