// Package aesgcm builds the AES-256-GCM ciphers of the envelope and stream
// packages and wipes them when they are no longer needed.
//
// The standard library expands an AES key into round keys (for AES-256 the
// first two round keys are the key itself) inside heap objects it gives no
// way to place or clear: aes.NewCipher makes one, and cipher.NewGCM copies
// it into another, together with the GHASH key. Dropped, they stay in
// freed heap memory, readable in a core dump, until the allocator happens
// to reuse them. New wipes the first copy before it returns; Wipe clears
// the second when its owner is done with it. Both clear only objects whose
// type holds no pointers (checked with reflect when the package starts, and
// true of the standard library's AES and GCM on every platform but s390x),
// so clearing them cannot confuse the garbage collector; for any other type
// they leave the object alone and report it.
package aesgcm

import (
	"crypto/aes"
	"crypto/cipher"
	"reflect"
	"slices"
	"sync"
	"unsafe"
)

// KeySize is the AES-256 key size.
const KeySize = 32

// New returns AES-256-GCM (12-byte nonce, 16-byte tag) for key, which must
// be 32 bytes. The intermediate AES block is wiped before New returns, so
// the key schedule lives only in the returned AEAD; call Wipe when done
// with it. New neither keeps nor modifies key.
func New(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	gcm, err := cipher.NewGCM(block)
	wipe(block)
	return gcm, err
}

// Wipe overwrites the state of an AEAD made by New with zeros: its AES
// round keys and GHASH key. a must not be used afterwards, by any
// goroutine. It reports whether the state was cleared; it is not for a nil
// AEAD or one whose type holds pointers.
func Wipe(a cipher.AEAD) bool { return wipe(a) }

// Wiped reports whether the state of a is all zeros, as Wipe leaves it;
// false for nil or a type Wipe does not clear. Tests use it to check that
// a cipher was wiped.
func Wiped(a cipher.AEAD) bool {
	b := state(a)
	return b != nil && !slices.ContainsFunc(b, func(c byte) bool { return c != 0 })
}

// Wipeable reports whether New and Wipe clear the standard library's AES
// and GCM objects on this platform.
func Wipeable() bool { return std.ok }

// std describes the standard library's AES block and GCM types, found once
// by building one of each, so that wiping them needs no map lookup.
var std = func() (d struct {
	ok                 bool
	block, gcm         reflect.Type
	blockSize, gcmSize uintptr
}) {
	block, err := aes.NewCipher(make([]byte, KeySize))
	if err != nil {
		return d
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return d
	}
	d.block, d.gcm = reflect.TypeOf(block), reflect.TypeOf(gcm)
	d.ok = pointerFree(d.block) && pointerFree(d.gcm)
	if d.ok {
		d.blockSize, d.gcmSize = d.block.Elem().Size(), d.gcm.Elem().Size()
	}
	return d
}()

// types caches pointerFree by type, for types other than std's.
var types sync.Map // reflect.Type -> bool

// wipe clears the object x points to when its type holds no pointers.
func wipe(x any) bool {
	b := state(x)
	if b == nil {
		return false
	}
	clear(b)
	return true
}

// state returns the memory of the object x points to, or nil when x is nil
// or its type holds pointers.
func state(x any) []byte {
	if x == nil {
		return nil
	}
	t := reflect.TypeOf(x)
	var size uintptr
	switch {
	case std.ok && t == std.gcm:
		size = std.gcmSize
	case std.ok && t == std.block:
		size = std.blockSize
	default:
		ok, cached := types.Load(t)
		if !cached {
			ok = pointerFree(t)
			types.Store(t, ok)
		}
		if !ok.(bool) {
			return nil
		}
		size = t.Elem().Size()
	}
	v := reflect.ValueOf(x)
	if v.IsNil() || size == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(v.UnsafePointer()), size)
}

// pointerFree reports whether t is a pointer to a value without pointers
// (numbers, booleans, and arrays and structs of them).
func pointerFree(t reflect.Type) bool {
	return t.Kind() == reflect.Pointer && plain(t.Elem())
}

func plain(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128:
		return true
	case reflect.Array:
		return t.Len() == 0 || plain(t.Elem())
	case reflect.Struct:
		for i := range t.NumField() {
			if !plain(t.Field(i).Type) {
				return false
			}
		}
		return true
	}
	return false
}
