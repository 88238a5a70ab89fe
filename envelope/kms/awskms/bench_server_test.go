package awskms_test

import (
	"context"
	"testing"
)

// BenchmarkServerKMS wraps and unwraps a system key with the two local-kms
// regions: EncryptKey is one GenerateDataKey plus one concurrent Encrypt,
// DecryptKey one Decrypt in the preferred region.
func BenchmarkServerKMS(b *testing.B) {
	k, _ := twoRegionKMS(b, kmsEndpoints(b))
	ctx := context.Background()
	sk := newSystemKey()
	blob, err := k.EncryptKey(ctx, sk)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("EncryptKey", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := k.EncryptKey(ctx, sk); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("DecryptKey", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			key, err := k.DecryptKey(ctx, blob)
			if err != nil {
				b.Fatal(err)
			}
			clear(key)
		}
	})
}
