package envelope_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/enc-pipe/enc-pipe/envelope"
	"github.com/enc-pipe/enc-pipe/envelope/kms/statickms"
	"github.com/enc-pipe/enc-pipe/envelope/metastore/sqlstore/sqlitedb"
	"github.com/enc-pipe/enc-pipe/internal/aesgcm"
	"github.com/enc-pipe/enc-pipe/internal/testenv"
)

// The child process of TestIntermediateKeyCopiesInCoreDump is this test
// binary run again with these variables set.
const (
	heapChildMode    = "ENVELOPE_TEST_HEAP_CHILD"   // the key access mode
	heapChildDB      = "ENVELOPE_TEST_HEAP_DB"      // the SQLite metastore holding the planted keys
	heapChildControl = "ENVELOPE_TEST_HEAP_CONTROL" // hex of the control key
	heapPartition    = "heap-partition"
)

var heapControl any // keeps the control cipher alive in the child

// TestIntermediateKeyCopiesInMemory counts verbatim copies of a
// partition's intermediate key in the memory of a process that encrypts
// and decrypts records with it, as a core dump would show it: every
// readable mapping not excluded from dumps (MADV_DONTDUMP), read through
// /proc/PID/mem after N and after 10N records, and after the session and
// the factory are closed. The key is planted in the metastore by this
// test, so only the envelope code ever holds it in the child.
//
// The scan's control is a cipher built by aesgcm.New from a known key and
// kept alive in the child: its key must be found (else the scan cannot be
// trusted), and the number of copies found is what one live cached cipher
// holds. Besides ciphers, a key can be left where a preemption signal
// saved the registers of a key expansion in progress (a signal stack, a
// goroutine stack): at most one per thread, so the allowance for such
// spills is the child's thread count. Building a cipher per record and
// dropping it without wiping (what this package did before) leaves a copy
// per record until the allocator reuses the memory: hundreds here.
//
// With ENVELOPE_TEST_GCORE=1 it also takes a gcore dump at each step and
// logs the copies in it (registers included), for docs/THREAT-MODEL.md.
func TestIntermediateKeyCopiesInMemory(t *testing.T) {
	if mode := os.Getenv(heapChildMode); mode != "" {
		heapChild(t, mode)
		return
	}
	if raceEnabled {
		testenv.NotApplicable(t, "the race detector's shadow memory makes the scans slow; the non-race run covers this")
	}
	var gcore string
	if os.Getenv("ENVELOPE_TEST_GCORE") == "1" {
		gcore = testenv.Tool(t, "gcore")
	}
	for _, mode := range keyAccessModes {
		t.Run(mode.String(), func(t *testing.T) { testKeyCopies(t, gcore, mode) })
	}
}

func testKeyCopies(t *testing.T, gcore string, mode envelope.KeyAccess) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir := t.TempDir()
	ik, control := make([]byte, 32), make([]byte, 32)
	rand.Read(ik)
	rand.Read(control)
	created := plantKeys(t, filepath.Join(dir, "keys.db"), ik)

	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestIntermediateKeyCopiesInMemory$", "-test.count=1")
	cmd.Env = append(os.Environ(), heapChildMode+"="+mode.String(), heapChildDB+"="+filepath.Join(dir, "keys.db"),
		heapChildControl+"="+hex.EncodeToString(control))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	lines := bufio.NewScanner(stdout)
	ask := func(command string) string {
		t.Helper()
		fmt.Fprintln(stdin, command)
		for lines.Scan() {
			if reply, ok := strings.CutPrefix(lines.Text(), "heapchild: "); ok {
				return reply
			}
		}
		t.Fatalf("child ended before answering %q; stderr:\n%s", command, stderr.Bytes())
		return ""
	}

	const n = 200
	type phase struct {
		name              string
		ikCopies, control int
		threads           int
	}
	scan := func(name string) phase {
		t.Helper()
		p := phase{name: name}
		counts, err := scanMemory(cmd.Process.Pid, ik, control)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		p.ikCopies, p.control = counts[0], counts[1]
		if p.threads, err = threadCount(cmd.Process.Pid); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %d copies of the intermediate key, %d of the control key in memory (%d threads)", name, p.ikCopies, p.control, p.threads)
		if p.control == 0 {
			t.Fatalf("%s: the control key is not in the child's memory: the scan cannot be trusted", name)
		}
		if gcore != "" {
			ikc, ctl := gcoreCounts(t, ctx, gcore, cmd.Process.Pid, filepath.Join(dir, "core"), ik, control)
			t.Logf("%s: gcore: %d copies of the intermediate key (registers included), %d of the control key", name, ikc, ctl)
		}
		return p
	}
	if got := ask(fmt.Sprint("run ", n)); got != fmt.Sprint("ok ", created) {
		t.Fatalf("child: %q, want records under the planted key (created %d)", got, created)
	}
	first := scan(fmt.Sprintf("after %d records", n))
	if got := ask(fmt.Sprint("run ", 9*n)); got != fmt.Sprint("ok ", created) {
		t.Fatalf("child: %q", got)
	}
	second := scan(fmt.Sprintf("after %d records", 10*n))
	if got := ask("close"); got != "closed" {
		t.Fatalf("child: %q", got)
	}
	closed := scan("after Close")
	fmt.Fprintln(stdin, "quit")
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v\n%s", err, stderr.Bytes())
	}

	perCipher := first.control // copies of its key in one live cipher
	live := 0                  // live ciphers of the intermediate key
	if mode == envelope.KeyAccessCached {
		live = 1
		if first.ikCopies < perCipher {
			t.Errorf("%s: %d copies of the intermediate key, fewer than its cached cipher holds (%d)", first.name, first.ikCopies, perCipher)
		}
	}
	for _, p := range []phase{first, second} {
		if limit := live*perCipher + p.threads; p.ikCopies > limit {
			t.Errorf("%s: %d copies of the intermediate key, want at most %d (%d live cipher(s) of %d copies, and a register spill per thread)",
				p.name, p.ikCopies, limit, live, perCipher)
		}
	}
	if limit := second.ikCopies - live*perCipher; closed.ikCopies > limit {
		t.Errorf("after Close: %d copies of the intermediate key, want at most %d (the cipher wiped)", closed.ikCopies, limit)
	}
}

// scanMemory counts the occurrences of each needle in the memory of
// process pid that a core dump would contain: every readable mapping
// without the dd (MADV_DONTDUMP) flag. Needles are 32 bytes long.
func scanMemory(pid int, needles ...[]byte) ([]int, error) {
	smaps, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		return nil, err
	}
	mem, err := os.Open(fmt.Sprintf("/proc/%d/mem", pid))
	if err != nil {
		return nil, err
	}
	defer mem.Close()
	type mapping struct {
		lo, hi   uint64
		readable bool
		dontDump bool
	}
	var maps []mapping
	for _, line := range strings.Split(string(smaps), "\n") {
		fields := strings.Fields(line)
		if len(fields) >= 2 && len(fields[1]) == 4 && strings.Contains(fields[0], "-") {
			lo, hi, _ := strings.Cut(fields[0], "-")
			l, err1 := strconv.ParseUint(lo, 16, 64)
			h, err2 := strconv.ParseUint(hi, 16, 64)
			if err1 == nil && err2 == nil {
				maps = append(maps, mapping{lo: l, hi: h, readable: fields[1][0] == 'r'})
			}
			continue
		}
		if flags, ok := strings.CutPrefix(line, "VmFlags:"); ok && len(maps) > 0 {
			maps[len(maps)-1].dontDump = slices.Contains(strings.Fields(flags), "dd")
		}
	}
	counts := make([]int, len(needles))
	buf := make([]byte, 1<<20)
	for _, m := range maps {
		if !m.readable || m.dontDump || m.hi-m.lo > 1<<34 {
			continue
		}
		// Read in chunks that overlap by 31 bytes so that no 32-byte
		// needle is split, and count each occurrence once.
		const overlap = 31
		for off := m.lo; off < m.hi; {
			n := min(uint64(len(buf)), m.hi-off)
			got, err := mem.ReadAt(buf[:n], int64(off))
			if got == 0 && err != nil {
				break // vsyscall and the like cannot be read
			}
			for i, nd := range needles {
				counts[i] += bytes.Count(buf[:got], nd)
			}
			if off+uint64(got) >= m.hi {
				break
			}
			// A 32-byte needle cannot lie within the 31 bytes read again.
			off += uint64(got) - overlap
		}
	}
	return counts, nil
}

func threadCount(pid int) (int, error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "Threads:"); ok {
			return strconv.Atoi(strings.TrimSpace(v))
		}
	}
	return 0, errors.New("no Threads line in /proc/PID/status")
}

// gcoreCounts dumps process pid with gcore and counts the needles in the
// core, registers included.
func gcoreCounts(t *testing.T, ctx context.Context, gcore string, pid int, prefix string, ik, control []byte) (int, int) {
	t.Helper()
	out, err := exec.CommandContext(ctx, gcore, "-o", prefix, strconv.Itoa(pid)).CombinedOutput()
	if err != nil {
		t.Fatalf("gcore: %v\n%s", err, out)
	}
	path := prefix + "." + strconv.Itoa(pid)
	defer os.Remove(path)
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("gcore wrote no core: %v\n%s", err, out)
	}
	defer f.Close()
	var ikc, ctl int
	buf := make([]byte, 4<<20)
	var carry []byte
	for {
		n, err := f.Read(buf)
		chunk := append(carry, buf[:n]...)
		ikc += bytes.Count(chunk, ik)
		ctl += bytes.Count(chunk, control)
		if len(chunk) > 31 { // 31 bytes hold no whole 32-byte needle
			carry = append([]byte(nil), chunk[len(chunk)-31:]...)
		} else {
			carry = chunk
		}
		if err != nil {
			break
		}
	}
	return ikc, ctl
}

// plantKeys stores a system key and the intermediate key ik (under it) of
// heapPartition in a new SQLite metastore at path, as the envelope package
// would have, and returns their created time.
func plantKeys(t *testing.T, path string, ik []byte) int64 {
	t.Helper()
	ctx := context.Background()
	db, store, err := sqlitedb.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	sk := make([]byte, 32)
	rand.Read(sk)
	kms := newStaticKMS(t)
	wrappedSK, err := kms.EncryptKey(ctx, sk)
	if err != nil {
		t.Fatal(err)
	}
	wrappedIK, err := envelope.NewAES256GCM().Encrypt(ik, sk)
	if err != nil {
		t.Fatal(err)
	}
	created := time.Now().Truncate(time.Minute).Unix()
	skID := "_SK_svc_prod"
	if err := store.Store(ctx, skID, created, &envelope.EnvelopeKeyRecord{Created: created, EncryptedKey: wrappedSK}); err != nil {
		t.Fatal(err)
	}
	ikRec := &envelope.EnvelopeKeyRecord{Created: created, EncryptedKey: wrappedIK, ParentKeyMeta: &envelope.KeyMeta{ID: skID, Created: created}}
	if err := store.Store(ctx, "_IK_"+heapPartition+"_svc_prod", created, ikRec); err != nil {
		t.Fatal(err)
	}
	return created
}

// heapChild is the child's side: it answers "run N", "close" and "quit"
// read from stdin with lines starting "heapchild: ".
func heapChild(t *testing.T, modeName string) {
	mode, err := envelope.ParseKeyAccess(modeName)
	if err != nil {
		t.Fatal(err)
	}
	control, err := hex.DecodeString(os.Getenv(heapChildControl))
	if err != nil {
		t.Fatal(err)
	}
	if heapControl, err = aesgcm.New(control); err != nil {
		t.Fatal(err)
	}
	clear(control)
	ctx := context.Background()
	db, store, err := sqlitedb.Open(ctx, os.Getenv(heapChildDB))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	kms, err := statickms.New([]byte(masterKey))
	if err != nil {
		t.Fatal(err)
	}
	defer kms.Close()
	f, err := envelope.NewSessionFactory(&envelope.Config{Service: "svc", Product: "prod"}, store, kms, nil, envelope.WithKeyAccess(mode))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s, err := f.GetSession(heapPartition)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	payload := make([]byte, 64)
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		cmd, arg, _ := strings.Cut(in.Text(), " ")
		switch cmd {
		case "run":
			n, err := strconv.Atoi(arg)
			if err != nil {
				t.Fatal(err)
			}
			var created int64
			for range n {
				rand.Read(payload)
				drr, err := s.Encrypt(ctx, payload)
				if err != nil {
					t.Fatal(err)
				}
				got, err := s.Decrypt(ctx, *drr)
				if err != nil || !bytes.Equal(got, payload) {
					t.Fatalf("Decrypt: %v", err)
				}
				created = drr.Key.ParentKeyMeta.Created
			}
			fmt.Println("heapchild: ok", created)
		case "close":
			s.Close()
			f.Close()
			runtime.GC()
			runtime.GC()
			fmt.Println("heapchild: closed")
		case "quit":
			runtime.KeepAlive(heapControl)
			return
		}
	}
	if err := in.Err(); err != nil && err != io.EOF {
		t.Fatal(err)
	}
}
