package envelope_test

import (
	"errors"
	"testing"

	"github.com/enc-pipe/enc-pipe/envelope"
	"github.com/enc-pipe/enc-pipe/internal/testenv"
	"github.com/enc-pipe/enc-pipe/securebuf"
)

// pkeySecrets returns a securebuf.Factory in AccessPKey mode. On a CPU
// without pku (per /proc/cpuinfo) a benchmark skips, and a test checks
// that AccessPKey is refused with securebuf.ErrNoPKey and goes on with
// the fallback, an AccessAuto factory (mprotect). On a CPU with pku where
// AccessPKey does not work, the test fails under CI=true.
func pkeySecrets(t testing.TB) *securebuf.Factory {
	t.Helper()
	if _, bench := t.(*testing.B); bench {
		testenv.SkipWithoutCPU(t, "pku")
	}
	sf, err := securebuf.NewFactory(securebuf.WithAccessMode(securebuf.AccessPKey))
	switch {
	case err == nil:
	case testenv.CPUHas("pku"):
		testenv.Missing(t, "the CPU has pku but AccessPKey does not work: "+err.Error())
	case !errors.Is(err, securebuf.ErrNoPKey):
		t.Fatalf("AccessPKey on a CPU without pku: %v, want securebuf.ErrNoPKey", err)
	default:
		t.Logf("AccessPKey is refused without pku (%v): testing the fallback, AccessAuto", err)
		if sf, err = securebuf.NewFactory(securebuf.WithAccessMode(securebuf.AccessAuto)); err != nil {
			t.Fatal(err)
		}
		if sf.AccessMode() != securebuf.AccessMprotect {
			t.Fatalf("AccessAuto without pku chose %v", sf.AccessMode())
		}
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
