package securebuf

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"strings"
	"testing"
	"unsafe"
)

// vma is one entry of /proc/self/smaps.
type vma struct {
	start, end uintptr
	perms      string
	lockedKB   int64
	pkey       int // ProtectionKey, -1 when smaps has no such line
	flags      map[string]bool
}

func addrOf(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }

// smapsAt returns the mapping that contains addr.
func smapsAt(t testing.TB, addr uintptr) (vma, bool) {
	t.Helper()
	data, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	var cur *vma
	var found vma
	ok := false
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if r := strings.SplitN(f[0], "-", 2); len(r) == 2 && !strings.HasSuffix(f[0], ":") {
			lo, err1 := strconv.ParseUint(r[0], 16, 64)
			hi, err2 := strconv.ParseUint(r[1], 16, 64)
			if err1 == nil && err2 == nil && len(f) > 1 {
				if cur != nil && cur.start <= addr && addr < cur.end {
					found, ok = *cur, true
				}
				cur = &vma{start: uintptr(lo), end: uintptr(hi), perms: f[1], pkey: -1, flags: map[string]bool{}}
				continue
			}
		}
		if cur == nil {
			continue
		}
		switch f[0] {
		case "Locked:":
			cur.lockedKB, _ = strconv.ParseInt(f[1], 10, 64)
		case "ProtectionKey:":
			cur.pkey, _ = strconv.Atoi(f[1])
		case "VmFlags:":
			for _, fl := range f[1:] {
				cur.flags[fl] = true
			}
		}
	}
	if cur != nil && cur.start <= addr && addr < cur.end {
		found, ok = *cur, true
	}
	return found, ok
}

func mustSmaps(t testing.TB, addr uintptr) vma {
	t.Helper()
	v, ok := smapsAt(t, addr)
	if !ok {
		t.Fatalf("no mapping contains %#x", addr)
	}
	return v
}

// vmLck returns VmLck of this process in bytes.
func vmLck(t testing.TB) int64 {
	t.Helper()
	st, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(st), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmLck:" {
			v, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return v * 1024
		}
	}
	t.Fatal("no VmLck in /proc/self/status")
	return 0
}

// mapped reports whether any mapping of /proc/self/maps overlaps [lo, hi).
func mapped(t testing.TB, lo, hi uintptr) bool {
	t.Helper()
	data, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		r := strings.SplitN(f[0], "-", 2)
		a, _ := strconv.ParseUint(r[0], 16, 64)
		b, _ := strconv.ParseUint(r[1], 16, 64)
		if uintptr(a) < hi && lo < uintptr(b) {
			return true
		}
	}
	return false
}

func mapCount(t testing.TB) int {
	t.Helper()
	data, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Count(data, []byte{'\n'})
}

func mapCountIfLinux(t testing.TB) int { return mapCount(t) }
