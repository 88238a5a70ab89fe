package aesgcm

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"reflect"
	"runtime"
	"testing"
	"unsafe"
)

// objectBytes returns the memory of the object x points to.
func objectBytes(x any) []byte {
	v := reflect.ValueOf(x)
	return unsafe.Slice((*byte)(v.UnsafePointer()), reflect.TypeOf(x).Elem().Size())
}

func randomKey(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, KeySize)
	rand.Read(k)
	return k
}

// On the platforms enc-pipe ships for, the standard library's AES and GCM
// state is plain data that Wipe can clear.
func TestStandardLibraryObjectsAreWipeable(t *testing.T) {
	if !Wipeable() {
		if runtime.GOARCH == "amd64" || runtime.GOARCH == "arm64" {
			t.Fatalf("the standard library's AES or GCM state (%T) holds pointers on %s: key schedules would stay on the heap", mustNew(t, randomKey(t)), runtime.GOARCH)
		}
		// Elsewhere (s390x) the package must leave the objects alone.
		if Wipe(mustNew(t, randomKey(t)).(cipher.AEAD)) {
			t.Fatalf("Wipe cleared a state that holds pointers on %s", runtime.GOARCH)
		}
	}
}

func mustNew(t *testing.T, key []byte) any {
	t.Helper()
	a, err := New(key)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// The AES block and the GCM each hold the AES-256 key verbatim (its first
// two round keys); after wiping neither does, and every byte is zero.
func TestWipeClearsTheKeySchedule(t *testing.T) {
	if !Wipeable() {
		// Covered by TestStandardLibraryObjectsAreWipeable: on this
		// platform Wipe must refuse, which it checks.
		t.Logf("the standard library's state holds pointers on %s: nothing to clear", runtime.GOARCH)
		return
	}
	key := randomKey(t)
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(objectBytes(block), key) {
		t.Fatalf("the %T does not hold the key verbatim: this test's premise is wrong", block)
	}
	if !wipe(block) {
		t.Fatalf("wipe(%T) = false", block)
	}
	if b := objectBytes(block); !bytes.Equal(b, make([]byte, len(b))) {
		t.Fatal("the wiped AES block is not all zero")
	}

	a, err := New(key)
	if err != nil {
		t.Fatal(err)
	}
	nonce := make([]byte, a.NonceSize())
	sealed := a.Seal(nil, nonce, []byte("payload"), nil)
	if !bytes.Contains(objectBytes(a), key) {
		t.Fatalf("the %T does not hold the key verbatim: this test's premise is wrong", a)
	}
	if Wiped(a) {
		t.Fatal("Wiped reports a live GCM as wiped")
	}
	if !Wipe(a) {
		t.Fatalf("Wipe(%T) = false", a)
	}
	if b := objectBytes(a); !bytes.Equal(b, make([]byte, len(b))) || !Wiped(a) {
		t.Fatal("the wiped GCM is not all zero")
	}
	// Using a wiped GCM is a bug; it must not go on decrypting.
	func() {
		defer func() { _ = recover() }()
		if _, err := a.Open(nil, nonce, sealed, nil); err == nil {
			t.Fatal("a wiped GCM still opens what it sealed")
		}
	}()
}

func TestNewSealsLikeTheStandardLibrary(t *testing.T) {
	key := randomKey(t)
	a, err := New(key)
	if err != nil {
		t.Fatal(err)
	}
	defer Wipe(a)
	nonce := make([]byte, 12)
	rand.Read(nonce)
	sealed := a.Seal(nil, nonce, []byte("payload"), nil)
	block, _ := aes.NewCipher(key)
	ref, _ := cipher.NewGCM(block)
	got, err := ref.Open(nil, nonce, sealed, nil)
	if err != nil || string(got) != "payload" {
		t.Fatalf("the standard library cannot open what New sealed: %v", err)
	}
	if _, err := New(key[:31]); err == nil {
		t.Fatal("New accepted a 31-byte key")
	}
}

// Objects with pointers are left alone.
func TestWipeRefusesTypesWithPointers(t *testing.T) {
	n := 7
	x := &struct {
		a int
		p *int
	}{1, &n}
	if wipe(x) {
		t.Fatal("wipe cleared a struct with a pointer")
	}
	if x.a != 1 || x.p != &n {
		t.Fatal("wipe changed a struct with a pointer")
	}
	if Wipe(nil) {
		t.Fatal("Wipe(nil) = true")
	}
	arr := &[4]uint32{1, 2, 3, 4}
	if !wipe(arr) || *arr != [4]uint32{} {
		t.Fatal("wipe did not clear an array of numbers")
	}
}
