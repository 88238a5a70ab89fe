//go:build linux || darwin || freebsd

package securebuf

import (
	"runtime/debug"
	"testing"
	"unsafe"
)

var sink byte

// probe reads (or writes) *p with faults turned into panics, and returns
// the faulting address.
func probe(p *byte, write bool) (addr uintptr, faulted bool) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			e, ok := r.(interface{ Addr() uintptr })
			if !ok {
				panic(r)
			}
			addr, faulted = e.Addr(), true
		}
	}()
	if write {
		*p = 0x55
	} else {
		sink = *p
	}
	return 0, false
}

// Every forbidden access faults at the expected address.
func TestForbiddenAccessFaultsAtItsAddress(t *testing.T) {
	forEachMode(t, testForbiddenAccessFaultsAtItsAddress)
}

func testForbiddenAccessFaultsAtItsAddress(t *testing.T, mode AccessMode) {
	f := newTestFactory(t, WithAccessMode(mode))
	s, err := newPattern(f, 3, 32)
	if err != nil {
		t.Fatal(err)
	}
	st := stateOf(s)
	all, data := st.reg.all, st.data
	ps := PageSize()
	cases := []struct {
		name string
		p    *byte
	}{
		{"data at rest", &data[0]},
		{"leading guard page", &all[0]},
		{"last byte of the leading guard page", &all[ps-1]},
		{"first byte of the trailing guard page", &all[len(all)-ps]},
	}
	for _, c := range cases {
		a, faulted := probe(c.p, false)
		if !faulted {
			t.Errorf("%s: read did not fault", c.name)
			continue
		}
		if a != uintptr(unsafe.Pointer(c.p)) {
			t.Errorf("%s: fault at %#x, want %#x", c.name, a, uintptr(unsafe.Pointer(c.p)))
		}
	}
	// One byte past the data is the trailing guard page: data is right-aligned.
	if got, want := uintptr(unsafe.Pointer(&data[0]))+uintptr(len(data)), uintptr(unsafe.Pointer(&all[len(all)-ps])); got != want {
		t.Errorf("data ends at %#x, the trailing guard starts at %#x", got, want)
	}

	var readOK, writeFaulted bool
	var writeAddr uintptr
	if err := s.WithBytes(func(b []byte) error {
		_, rf := probe(&b[5], false)
		readOK = !rf
		writeAddr, writeFaulted = probe(&b[5], true)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !readOK {
		t.Error("read inside WithBytes faulted")
	}
	if !writeFaulted || writeAddr != uintptr(unsafe.Pointer(&data[5])) {
		t.Errorf("write inside WithBytes: faulted=%v at %#x", writeFaulted, writeAddr)
	}
	mustEqual(t, s, patternBytes(3, 32)) // the failed write changed nothing

	last := &data[len(data)-1]
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if a, faulted := probe(last, false); !faulted || a != uintptr(unsafe.Pointer(last)) {
		t.Errorf("read after Close: faulted=%v at %#x", faulted, a)
	}
}
