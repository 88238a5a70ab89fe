package envelope_test

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/enc-pipe/enc-pipe/envelope"
	"github.com/enc-pipe/enc-pipe/envelope/metastore/memstore"
	"github.com/enc-pipe/enc-pipe/securebuf"
)

// With every key in securebuf.AccessPKey secrets, where each key is
// readable only by the goroutine inside its WithBytes callback: the Asherah
// vectors decrypt, and many goroutines encrypt, decrypt and make data keys
// on shared sessions (run with -race as well). A callback that handed key
// bytes to another goroutine would fault here.
func TestPKeySecretFactory(t *testing.T) {
	sf := pkeySecrets(t)
	ctx := context.Background()

	t.Run("vectors", func(t *testing.T) {
		v := loadVectors(t)
		store := memstore.New()
		loadRows(t, store, v.rows)
		factories := map[vectorSession]*envelope.SessionFactory{}
		for _, rec := range v.records {
			key := rec.Session
			key.Partition = ""
			f, ok := factories[key]
			if !ok {
				f = newFactory(t, &envelope.Config{Service: key.Service, Product: key.Product, RegionSuffix: key.RegionSuffix},
					store, envelope.WithSecretFactory(sf))
				factories[key] = f
			}
			got, err := getSession(t, f, rec.Session.Partition).Decrypt(ctx, rec.DRR)
			if err != nil {
				t.Fatalf("%s: %v", rec.Name, err)
			}
			if !bytes.Equal(got, expectedPlaintext(t, rec.Plaintext)) {
				t.Fatalf("%s: wrong plaintext", rec.Name)
			}
		}
	})

	t.Run("concurrent", func(t *testing.T) {
		f := newFactory(t, &envelope.Config{Service: "svc", Product: "prod"}, memstore.New(), envelope.WithSecretFactory(sf))
		sessions := make([]*envelope.Session, 3)
		for i := range sessions {
			sessions[i] = getSession(t, f, fmt.Sprintf("p%d", i))
		}
		const workers, rounds = 8, 60
		errs := make(chan error, workers)
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				for i := range rounds {
					s := sessions[(w+i)%len(sessions)]
					data := fmt.Appendf(nil, "worker %d round %d", w, i)
					drr, err := s.Encrypt(ctx, data)
					if err != nil {
						errs <- err
						return
					}
					got, err := s.Decrypt(ctx, *drr)
					if err != nil || !bytes.Equal(got, data) {
						errs <- fmt.Errorf("worker %d round %d: decrypt %q, %v", w, i, got, err)
						return
					}
					if i%10 == 0 {
						dk, rec, err := s.NewDataKey(ctx)
						if err != nil {
							errs <- err
							return
						}
						back, err := s.OpenDataKey(ctx, rec)
						if err != nil {
							dk.Close()
							errs <- err
							return
						}
						eq, err := securebuf.Equal(dk, back)
						dk.Close()
						back.Close()
						if err != nil || !eq {
							errs <- fmt.Errorf("worker %d: OpenDataKey gave another key (%v)", w, err)
							return
						}
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	})
}
