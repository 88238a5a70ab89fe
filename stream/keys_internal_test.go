package stream

import (
	"crypto/cipher"
	"errors"
	"runtime"
	"slices"
	"testing"

	"github.com/enc-pipe/enc-pipe/internal/aesgcm"
	"github.com/enc-pipe/enc-pipe/internal/testenv"
	"github.com/enc-pipe/enc-pipe/securebuf"
)

func newTestSchedule(t *testing.T, sequential bool) *keySchedule {
	t.Helper()
	if !aesgcm.Wipeable() {
		testenv.NotApplicable(t, "the standard library's AES-GCM state holds pointers on "+runtime.GOARCH+": ciphers are not wiped (internal/aesgcm fails on amd64 and arm64 if so)")
	}
	f, err := securebuf.NewFactory()
	if err != nil {
		t.Fatal(err)
	}
	key, err := f.CreateRandom(KeySize)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { key.Close() })
	ks, err := newKeySchedule(key, make([]byte, SaltSize), sequential)
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

func mustAEAD(t *testing.T, ks *keySchedule, idx uint64) cipher.AEAD {
	t.Helper()
	a, err := ks.aeadFor(idx)
	if err != nil {
		t.Fatalf("aeadFor(%d): %v", idx, err)
	}
	return a
}

// After close, every cipher is wiped, aeadFor fails with ErrClosed, and a
// job that still carries one of the wiped ciphers fails with ErrClosed
// instead of sealing or opening with it (which would panic, or encrypt
// under a zero key).
func TestClosedScheduleRunsNoChunk(t *testing.T) {
	ks := newTestSchedule(t, true)
	a0 := mustAEAD(t, ks, 0)
	a1 := mustAEAD(t, ks, 1<<epochShift)
	ks.close()
	for i, a := range []cipher.AEAD{a0, a1} {
		if !aesgcm.Wiped(a) {
			t.Errorf("cipher of epoch %d not wiped by close", i)
		}
	}
	for _, idx := range []uint64{0, 1 << epochShift, 5 << epochShift} {
		if _, err := ks.aeadFor(idx); !errors.Is(err, ErrClosed) {
			t.Errorf("aeadFor(%d) after close = %v, want ErrClosed", idx, err)
		}
	}
	o := new(writerOptions)
	o.setDefault()
	hdr, err := buildHeader(o, HeaderParams{KeyRecord: []byte("k"), Partition: "p"}, make([]byte, SaltSize))
	if err != nil {
		t.Fatal(err)
	}
	ch, err := newChunker(hdr, 1, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, op := range []int{opSeal, opOpen} {
		buf := getBuf(ch.bufSize())
		j := job{idx: 3, aead: a0, ks: ks, a: buf, in: (*buf)[:100]}
		ch.run(&j, op)
		if j.err != ErrClosed || j.out != nil {
			t.Errorf("op %d with a closed schedule: err %v, %d bytes out; want ErrClosed and nothing", op, j.err, len(j.out))
		}
		putBuf(j.a)
		putBuf(j.b)
	}
}

// A Writer's or Reader's schedule wipes an epoch's cipher once the stream
// is two epochs past it; a ReaderAt's keeps every epoch until close.
func TestScheduleWipesEpochsLeftBehind(t *testing.T) {
	for _, sequential := range []bool{true, false} {
		ks := newTestSchedule(t, sequential)
		e1 := mustAEAD(t, ks, 1<<epochShift)
		e2 := mustAEAD(t, ks, 2<<epochShift)
		e3 := mustAEAD(t, ks, 3<<epochShift+5)
		held := ks.ciphersForTest()
		if got := aesgcm.Wiped(e1); got != sequential {
			t.Errorf("sequential %v: epoch 1's cipher wiped %v at epoch 3", sequential, got)
		}
		if got := slices.Contains(held, e1); got == sequential {
			t.Errorf("sequential %v: epoch 1's cipher still held %v at epoch 3", sequential, got)
		}
		for _, a := range []cipher.AEAD{e2, e3} {
			if aesgcm.Wiped(a) || !slices.Contains(held, a) {
				t.Errorf("sequential %v: a cipher of the current or previous epoch was dropped", sequential)
			}
		}
		want := 4 // epochs 0 to 3
		if sequential {
			want = 3 // not epoch 1
		}
		if len(held) != want {
			t.Errorf("sequential %v: %d ciphers held, want %d", sequential, len(held), want)
		}
		ks.close()
		for _, a := range held {
			if !aesgcm.Wiped(a) {
				t.Errorf("sequential %v: a cipher held at close was not wiped", sequential)
			}
		}
	}
}
