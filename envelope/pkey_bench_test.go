package envelope_test

import (
	"context"
	"crypto/rand"
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
func warmPKeySession(b testing.TB) *envelope.Session {
	b.Helper()
	return warmSession(b, envelope.WithSecretFactory(pkeySecrets(b)))
}

// BenchmarkEncryptPKey and BenchmarkDecryptPKey are BenchmarkEncrypt and
// BenchmarkDecrypt with the keys in AccessPKey secrets.
func BenchmarkEncryptPKey(b *testing.B) {
	s := warmPKeySession(b)
	ctx := context.Background()
	for _, n := range benchSizes {
		data := make([]byte, n)
		rand.Read(data)
		b.Run(sizeName(n), func(b *testing.B) {
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.Encrypt(ctx, data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDecryptPKey(b *testing.B) {
	s := warmPKeySession(b)
	ctx := context.Background()
	for _, n := range benchSizes {
		data := make([]byte, n)
		rand.Read(data)
		drr, err := s.Encrypt(ctx, data)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(sizeName(n), func(b *testing.B) {
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.Decrypt(ctx, *drr); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
