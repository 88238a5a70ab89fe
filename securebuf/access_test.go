package securebuf

import (
	"errors"
	"strings"
	"syscall"
	"testing"

	"github.com/enc-pipe/enc-pipe/securebuf/internal/memcall"
)

func TestAccessModeNames(t *testing.T) {
	for _, m := range []AccessMode{AccessMprotect, AccessPKey, AccessAuto} {
		for _, s := range []string{m.String(), strings.ToUpper(m.String())} {
			got, err := ParseAccessMode(s)
			if err != nil || got != m {
				t.Errorf("ParseAccessMode(%q) = %v, %v; want %v", s, got, err, m)
			}
		}
	}
	if AccessMprotect.String() != "mprotect" || AccessPKey.String() != "pkey" || AccessAuto.String() != "auto" {
		t.Errorf("names: %v %v %v", AccessMprotect, AccessPKey, AccessAuto)
	}
	for _, s := range []string{"", "mpk", "pkeys", "none"} {
		_, err := ParseAccessMode(s)
		if err == nil || !strings.Contains(err.Error(), "want mprotect, pkey or auto") {
			t.Errorf("ParseAccessMode(%q): %v", s, err)
		}
	}
	if got := AccessMode(7).String(); got != "AccessMode(7)" {
		t.Errorf("String of an unknown mode: %q", got)
	}
}

// The default is today's mprotect mode; AccessAuto picks protection keys
// exactly when they are available; AccessPKey either works or fails with
// ErrNoPKey, never silently falls back.
func TestAccessModeSelection(t *testing.T) {
	f := newTestFactory(t)
	if f.AccessMode() != AccessMprotect {
		t.Fatalf("default factory uses %v", f.AccessMode())
	}
	avail := PKeyAvailable()
	if again := PKeyAvailable(); (again == nil) != (avail == nil) {
		t.Fatalf("PKeyAvailable changed its answer: %v then %v", avail, again)
	}
	auto := newTestFactory(t, WithAccessMode(AccessAuto))
	want := AccessMprotect
	if avail == nil {
		want = AccessPKey
	}
	if auto.AccessMode() != want {
		t.Errorf("AccessAuto chose %v with PKeyAvailable() = %v", auto.AccessMode(), avail)
	}
	p, err := NewFactory(WithAccessMode(AccessPKey))
	switch {
	case avail == nil && err != nil:
		t.Fatalf("AccessPKey failed although PKeyAvailable is nil: %v", err)
	case avail == nil:
		defer p.Close()
		if p.AccessMode() != AccessPKey {
			t.Errorf("AccessPKey factory reports %v", p.AccessMode())
		}
	default:
		if !errors.Is(err, ErrNoPKey) || !errors.Is(err, errors.ErrUnsupported) {
			t.Errorf("AccessPKey without protection keys: %v, want ErrNoPKey and errors.ErrUnsupported", err)
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("message is not one line: %q", err)
		}
		t.Logf("protection keys unavailable: %v", err)
	}
	if !memcall.HasPKey && avail == nil {
		t.Error("PKeyAvailable is nil on a platform without protection-key support")
	}
}

func TestNoPKeyError(t *testing.T) {
	e := &noPKeyError{reason: "pkey_alloc", err: syscall.ENOSPC}
	if !errors.Is(e, ErrNoPKey) || !errors.Is(e, errors.ErrUnsupported) || !errors.Is(e, syscall.ENOSPC) {
		t.Errorf("%v does not match ErrNoPKey, errors.ErrUnsupported and ENOSPC", e)
	}
	if errors.Is(e, ErrProtect) {
		t.Error("matches ErrProtect")
	}
	if got := e.Error(); !strings.HasPrefix(got, ErrNoPKey.Error()+": pkey_alloc: ") {
		t.Errorf("message %q", got)
	}
	if got := (&noPKeyError{reason: "no pku"}).Error(); got != ErrNoPKey.Error()+": no pku" {
		t.Errorf("message %q", got)
	}
}

// PKRU holds two bits per key (Intel SDM vol. 3A, 2.7): AD (access
// disable) and, above it, WD (write disable).
const pkruAD, pkruWD = 1, 2

func TestPKRUBits(t *testing.T) {
	// Linux's initial PKRU: every key but 0 access-disabled.
	var initPKRU uint32
	for k := 1; k < 16; k++ {
		initPKRU |= pkruAD << (2 * k)
	}
	for k := 1; k < 16; k++ {
		if !memcall.PKRUDeniesAccess(initPKRU, k) {
			t.Fatalf("key %d: init PKRU does not deny", k)
		}
		r := memcall.PKRURead(initPKRU, k)
		w := memcall.PKRUWrite(initPKRU, k)
		if memcall.PKRUDeniesAccess(r, k) || memcall.PKRUDeniesAccess(w, k) {
			t.Errorf("key %d: opened value still denies", k)
		}
		if r>>(2*k)&3 != pkruWD || w>>(2*k)&3 != 0 {
			t.Errorf("key %d: read bits %02b, write bits %02b; want %02b (WD) and 00", k, r>>(2*k)&3, w>>(2*k)&3, pkruWD)
		}
		other := ^memcall.PKRUMask(k)
		if r&other != initPKRU&other || w&other != initPKRU&other {
			t.Errorf("key %d: opening changed other keys' bits", k)
		}
		if memcall.PKRUDenied(w, k) != initPKRU {
			t.Errorf("key %d: PKRUDenied does not undo PKRUWrite", k)
		}
	}
}
