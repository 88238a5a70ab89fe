package securebuf

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/enc-pipe/enc-pipe/internal/testenv"
	"github.com/enc-pipe/enc-pipe/securebuf/internal/memcall"
	"golang.org/x/sys/unix"
)

// childCommand re-executes the test binary in child mode. The context
// bounds the child's life: a hung child is a failed test, not a hung run.
func childCommand(t *testing.T, ctx context.Context, mode string, env ...string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, exe)
	cmd.Env = append(append(os.Environ(), childEnv+"="+mode), env...)
	return cmd
}

func seedEnv(seed uint64) string { return "SECUREBUF_TEST_SEED=" + strconv.FormatUint(seed, 10) }

// accessEnv tells a child which access mode its factories use.
func accessEnv(m AccessMode) string { return "SECUREBUF_TEST_ACCESS=" + m.String() }

// childFactory is NewFactory in the access mode the parent chose.
func childFactory(opts ...Option) (*Factory, error) {
	m := AccessMprotect
	if v := os.Getenv("SECUREBUF_TEST_ACCESS"); v != "" {
		var err error
		if m, err = ParseAccessMode(v); err != nil {
			return nil, err
		}
	}
	f, err := NewFactory(append(opts, WithAccessMode(m))...)
	if err == nil && f.AccessMode() != m {
		return nil, fmt.Errorf("child factory uses %v, want %v", f.AccessMode(), m)
	}
	return f, err
}

func childSeed() uint64 {
	v, _ := strconv.ParseUint(os.Getenv("SECUREBUF_TEST_SEED"), 10, 64)
	return v
}

// leaks lists the forms in which a secret could show up in text output.
func leaks(out, secret []byte) string {
	if bytes.Contains(out, secret) {
		return "raw bytes"
	}
	if bytes.Contains(bytes.ToLower(out), []byte(hex.EncodeToString(secret))) {
		return "hex"
	}
	for i := 0; i+8 <= len(secret); i += 8 {
		w := binary.LittleEndian.Uint64(secret[i:])
		if bytes.Contains(out, []byte(fmt.Sprintf("%#x", w))) {
			return fmt.Sprintf("word %d as %#x", i/8, w)
		}
	}
	return ""
}

func init() {
	childModes["fault-at-rest"] = func() error {
		f, err := childFactory()
		if err != nil {
			return err
		}
		s, err := newPattern(f, childSeed(), 32)
		if err != nil {
			return err
		}
		sink = stateOf(s).data[0] // no-access: the runtime must kill us
		return errors.New("reading a secret at rest did not fault")
	}
	// A callback is open on one thread while another thread reads the
	// same bytes: in AccessPKey mode that read kills the process.
	childModes["fault-other-thread"] = func() error {
		f, err := childFactory()
		if err != nil {
			return err
		}
		s, err := newPattern(f, childSeed(), 32)
		if err != nil {
			return err
		}
		entered := make(chan struct{})
		go func() {
			runtime.LockOSThread()
			_ = s.WithBytes(func([]byte) error { close(entered); select {} })
		}()
		<-entered
		runtime.LockOSThread()
		sink = stateOf(s).data[0]
		return errors.New("reading a secret from another thread during a callback did not fault")
	}
}

// Outside a SetPanicOnFault goroutine, touching a secret at rest kills
// the process the way the Go runtime kills on a bad access, and the crash
// report does not contain the secret.
func TestAccessAtRestKillsProcessWithoutLeak(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode AccessMode) { testFatalFault(t, "fault-at-rest", mode) })
}

// In AccessPKey mode a read from another thread while a callback is open
// kills the process like a read at rest.
func TestPKeyOtherThreadFaultKillsProcess(t *testing.T) {
	if !pkeyOrRefusal(t) {
		return
	}
	testFatalFault(t, "fault-other-thread", AccessPKey)
}

func testFatalFault(t *testing.T, child string, mode AccessMode) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := childCommand(t, ctx, child, seedEnv(4), "GOTRACEBACK=all", accessEnv(mode))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Fatalf("child ended with %v, want exit status 2; stderr:\n%s", err, stderr.Bytes())
	}
	if !bytes.Contains(stderr.Bytes(), []byte("unexpected fault address")) {
		t.Errorf("stderr lacks \"unexpected fault address\":\n%s", stderr.Bytes())
	}
	if how := leaks(stderr.Bytes(), patternBytes(4, 32)); how != "" {
		t.Errorf("the crash report contains the secret (%s)", how)
	}
}

func init() {
	childModes["gcore-hold"] = func() error {
		seed := childSeed()
		heapCopy = patternBytes(seed+1, 64) // the control: a plain heap copy
		f, err := childFactory()
		if err != nil {
			return err
		}
		s, err := newPattern(f, seed+2, 64)
		if err != nil {
			return err
		}
		// A second control: no-access but not excluded from dumps.
		raw, err := memcall.Map(PageSize(), memcall.ReadWrite)
		if err != nil {
			return err
		}
		pattern(seed+3, raw[:64])
		if err := memcall.Protect(raw, memcall.NoAccess); err != nil {
			return err
		}
		in := bufio.NewScanner(os.Stdin)
		fmt.Println("at-rest")
		var release chan struct{}
		for in.Scan() {
			switch in.Text() {
			case "open":
				opened := make(chan struct{})
				release = make(chan struct{})
				go func() {
					_ = s.WithBytes(func([]byte) error { close(opened); <-release; return nil })
				}()
				<-opened
				fmt.Println("opened")
			case "quit":
				if release != nil {
					close(release)
				}
				return s.Close()
			}
		}
		return errors.New("stdin closed before quit")
	}
}

var heapCopy []byte

// A core dump taken with gcore holds the plain heap copy and the
// no-access control page, and never the secret, at rest or while read. In
// AccessPKey mode the secret's pages are rw-p in the page tables and gdb
// reads them through ptrace, which ignores protection keys: only
// MADV_DONTDUMP keeps them out.
func TestGcoreDumpHoldsNoSecret(t *testing.T) {
	if raceEnabled {
		testenv.NotApplicable(t, "the race detector's shadow memory makes the dump huge; the non-race run covers this")
	}
	gcore := testenv.Tool(t, "gcore")
	forEachMode(t, func(t *testing.T, mode AccessMode) { testGcore(t, gcore, mode) })
}

func testGcore(t *testing.T, gcore string, mode AccessMode) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const seed = 9000
	cmd := childCommand(t, ctx, "gcore-hold", seedEnv(seed), accessEnv(mode))
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
	expect := func(want string) {
		t.Helper()
		if !lines.Scan() || lines.Text() != want {
			t.Fatalf("child said %q, want %q; stderr:\n%s", lines.Text(), want, stderr.Bytes())
		}
	}
	dir := t.TempDir()
	dump := func(name string) []byte {
		t.Helper()
		prefix := filepath.Join(dir, name)
		out, err := exec.CommandContext(ctx, gcore, "-o", prefix, strconv.Itoa(cmd.Process.Pid)).CombinedOutput()
		if err != nil {
			t.Fatalf("gcore: %v\n%s", err, out)
		}
		core, err := os.ReadFile(prefix + "." + strconv.Itoa(cmd.Process.Pid))
		if err != nil {
			t.Fatalf("gcore wrote no core: %v\n%s", err, out)
		}
		return core
	}
	check := func(phase string, core []byte) {
		t.Helper()
		if !bytes.Contains(core, patternBytes(seed+1, 64)) {
			t.Errorf("%s: the heap control is not in the %d-byte core: the scan cannot be trusted", phase, len(core))
		}
		if !bytes.Contains(core, patternBytes(seed+3, 64)) {
			t.Errorf("%s: the no-access control page is not in the core", phase)
		}
		if bytes.Contains(core, patternBytes(seed+2, 64)) {
			t.Errorf("%s: the securebuf secret is in the core dump", phase)
		}
	}
	expect("at-rest")
	check("at rest", dump("rest"))
	fmt.Fprintln(stdin, "open")
	expect("opened")
	check("inside WithBytes", dump("open"))
	fmt.Fprintln(stdin, "quit")
	_ = stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v\n%s", err, stderr.Bytes())
	}
}

// unprivileged returns credentials for running a child without
// CAP_IPC_LOCK, and a copy of the test binary that such a child can run.
func unprivileged(t *testing.T) (*syscall.Credential, string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() != 0 {
		if memcall.ReadLimits().CanLockAll {
			testenv.Missing(t, "this process holds CAP_IPC_LOCK but is not root: cannot drop it to run a child without it")
		}
		return nil, exe
	}
	dir, err := os.MkdirTemp("", "securebuf-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	bin := filepath.Join(dir, "securebuf.test")
	data, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return &syscall.Credential{Uid: 65534, Gid: 65534}, bin
}

const lockLimitPages = 4

func init() {
	childModes["lock-limit"] = lockLimitChild
}

func childf(format string, args ...any) error { return fmt.Errorf(format, args...) }

func lockLimitChild() error {
	if memcall.ReadLimits().CanLockAll {
		return errors.New("child still holds CAP_IPC_LOCK")
	}
	ps := int64(PageSize())
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_MEMLOCK, &lim); err != nil {
		return err
	}
	lim.Cur = uint64(lockLimitPages * ps)
	if err := unix.Setrlimit(unix.RLIMIT_MEMLOCK, &lim); err != nil {
		return err
	}
	var problems []string
	fail := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	m := &countingMetrics{}
	f, err := childFactory(WithMetrics(MetricsFunc(m.Add)))
	if err != nil {
		return err
	}
	var secrets []Secret
	for i := range lockLimitPages {
		s, err := newPattern(f, uint64(100+i), 32)
		if err != nil {
			return childf("secret %d of %d allowed by the limit failed: %v", i+1, lockLimitPages, err)
		}
		secrets = append(secrets, s)
	}
	// The attempt runs on a worker goroutine (a hang is a deadlock) that
	// exists before the mappings are counted, and the count is retried
	// because the Go runtime may map memory of its own at any moment; a
	// leak would show up on every try.
	req, res := make(chan struct{}), make(chan error)
	go func() {
		for range req {
			_, err := f.CreateRandom(32)
			res <- err
		}
	}()
	defer close(req)
	attempt := func() (error, bool) {
		req <- struct{}{}
		select {
		case err := <-res:
			return err, true
		case <-time.After(30 * time.Second):
			return nil, false
		}
	}
	var leftBehind int
	attempts := 0
	for try := 0; try < 3; try++ {
		before := countMaps()
		var ok bool
		err, ok = attempt()
		attempts++
		if !ok {
			return errors.New("allocation at the lock limit hung: deadlock")
		}
		if leftBehind = countMaps() - before; leftBehind == 0 {
			break
		}
	}
	var le *LimitError
	switch {
	case err == nil:
		fail("secret %d succeeded beyond RLIMIT_MEMLOCK", lockLimitPages+1)
	case !errors.Is(err, ErrLockLimit) || errors.Is(err, ErrMapLimit):
		fail("over the limit: %v, want ErrLockLimit only", err)
	case !errors.Is(err, unix.ENOMEM):
		fail("over the limit: %v does not wrap ENOMEM", err)
	case !errors.As(err, &le):
		fail("over the limit: %T is not *LimitError", err)
	default:
		msg := err.Error()
		for _, want := range []string{
			fmt.Sprintf("soft=%d bytes", lockLimitPages*ps),
			fmt.Sprintf("hard=%s", bytesOrUnknown(le.MemlockHard)),
			fmt.Sprintf("VmLck)=%d bytes", lockLimitPages*ps),
			fmt.Sprintf("mlock of %d bytes", ps),
			"CAP_IPC_LOCK", "ulimit -l", "--ulimit memlock", "LimitMEMLOCK",
		} {
			if !strings.Contains(msg, want) {
				fail("ErrLockLimit message lacks %q: %s", want, msg)
			}
		}
		if strings.Contains(msg, "\n") {
			fail("ErrLockLimit message is not one line: %q", msg)
		}
	}
	if leftBehind != 0 {
		fail("the failed allocation left %d mappings behind (3 tries)", leftBehind)
	}
	if m.get(FailLockLimit) != int64(attempts) {
		fail("FailLockLimit metric = %d, want %d", m.get(FailLockLimit), attempts)
	}
	for i, s := range secrets {
		want := patternBytes(uint64(100+i), 32)
		if err := s.WithBytes(func(b []byte) error {
			if !bytes.Equal(b, want) {
				return errors.New("contents changed")
			}
			return nil
		}); err != nil {
			fail("earlier secret %d after the failure: %v", i, err)
		}
	}

	// TestFailuresUnderLocksDoNotDeadlock at the real limit: every path
	// that maps memory, including the scratch arena growing under its
	// lock, returns the error in time.
	g, err := childFactory()
	if err != nil {
		return err
	}
	paths := map[string]func() error{
		"New":           func() error { _, err := g.New([]byte("0123456789abcdef")); return err },
		"CreateRandom":  func() error { _, err := g.CreateRandom(32); return err },
		"Scratch":       func() error { _, err := g.Scratch(32); return err },
		"WithScratch":   func() error { return g.WithScratch(32, func([]byte) error { return nil }) },
		"Scratch again": func() error { _, err := g.Scratch(32); return err },
	}
	for name, fn := range paths {
		done := make(chan error, 1)
		go func() { done <- fn() }()
		select {
		case err := <-done:
			if !errors.Is(err, ErrLockLimit) {
				fail("%s at the limit: %v, want ErrLockLimit", name, err)
			}
		case <-time.After(30 * time.Second):
			return childf("%s at the limit hung: deadlock", name)
		}
	}
	if err := Preflight(1); !errors.Is(err, ErrLockLimit) {
		fail("Preflight(1) at the limit: %v", err)
	}

	// Degraded mode works at the limit and still excludes from dumps.
	l := &recLogger{}
	dm := &countingMetrics{}
	d, err := childFactory(WithRequireLock(false), WithLogger(l), WithMetrics(MetricsFunc(dm.Add)))
	if err != nil {
		return err
	}
	ds, err := d.CreateRandom(32)
	if err != nil {
		fail("degraded factory at the limit: %v", err)
	} else {
		if dm.get(LockDegraded) != 1 || len(l.all()) == 0 {
			fail("degraded: metric %d, %d log lines", dm.get(LockDegraded), len(l.all()))
		}
		_ = ds.Close()
	}

	// Closing one secret makes room for exactly one more.
	if err := secrets[0].Close(); err != nil {
		return err
	}
	s, err := f.CreateRandom(32)
	if err != nil {
		fail("after closing one secret, a new one failed: %v", err)
	} else {
		secrets[0] = s
	}
	for _, s := range secrets {
		_ = s.Close()
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "\n"))
	}
	fmt.Printf("uid %d: %d secrets fit under RLIMIT_MEMLOCK=%d, the next one failed with ErrLockLimit; scratch, New, CreateRandom and Preflight reported it\n",
		os.Getuid(), lockLimitPages, lockLimitPages*ps)
	return nil
}

func countMaps() int {
	data, _ := os.ReadFile("/proc/self/maps")
	return bytes.Count(data, []byte{'\n'})
}

// Exhaustion of RLIMIT_MEMLOCK in a child without CAP_IPC_LOCK whose soft
// limit is a few pages: every path that maps memory reports ErrLockLimit in
// time (TestFailuresUnderLocksDoNotDeadlock at the real limit), and the
// secrets made before still work.
func TestLockLimitExhaustionIsErrLockLimit(t *testing.T) {
	cred, bin := unprivileged(t)
	forEachMode(t, func(t *testing.T, mode AccessMode) { testLockLimit(t, cred, bin, mode) })
}

func testLockLimit(t *testing.T, cred *syscall.Credential, bin string, mode AccessMode) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin)
	cmd.Env = append(os.Environ(), childEnv+"=lock-limit", accessEnv(mode))
	cmd.Dir = filepath.Dir(bin)
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("child hung (deadlock?):\n%s", out)
	}
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	t.Logf("%s", bytes.TrimSpace(out))
}

func init() {
	childModes["map-limit"] = func() error {
		if !memcall.ReadLimits().CanLockAll {
			return errors.New("needs CAP_IPC_LOCK so that the lock limit cannot come first")
		}
		// At the map limit the Go runtime cannot map memory either, and
		// dies with "out of memory" when its heap must grow. Map the
		// heap this child needs up front: the secrets slice at its final
		// size, and a ballast that leaves freed spans for the handles.
		secrets := make([]Secret, 0, 1<<17)
		ballast := make([]byte, 256<<20)
		ballast[len(ballast)-1] = 1
		runtime.KeepAlive(ballast)
		ballast = nil
		runtime.GC()
		debug.SetGCPercent(-1)
		f, err := NewFactory()
		if err != nil {
			return err
		}
		defer func() {
			for _, s := range secrets {
				_ = s.Close()
			}
		}()
		for i := 0; i < 1<<20; i++ {
			s, err := f.CreateRandom(32)
			if err == nil {
				secrets = append(secrets, s)
				continue
			}
			if !errors.Is(err, ErrMapLimit) || errors.Is(err, ErrLockLimit) {
				return childf("after %d secrets: %v, want ErrMapLimit only", i, err)
			}
			if !strings.Contains(err.Error(), "vm.max_map_count=") {
				return childf("ErrMapLimit message lacks the limit: %v", err)
			}
			fmt.Printf("map limit after %d secrets: %v\n", i, err)
			for _, j := range []int{0, i / 2, i - 1} {
				if err := secrets[j].WithBytes(func([]byte) error { return nil }); err != nil {
					return childf("secret %d after the failure: %v", j, err)
				}
			}
			g, err := NewFactory(WithGuardPages(false))
			if err != nil {
				return err
			}
			_ = secrets[len(secrets)-1].Close()
			secrets = secrets[:len(secrets)-1]
			s, err = g.CreateRandom(32)
			if err != nil {
				return childf("an unguarded secret after freeing one guarded secret: %v", err)
			}
			secrets = append(secrets, s)
			return nil
		}
		return errors.New("no limit reached after 1M secrets")
	}
}

// With CAP_IPC_LOCK the map count is the ceiling; it is reported as
// ErrMapLimit, not ErrLockLimit.
func TestMapLimitExhaustionIsErrMapLimit(t *testing.T) {
	if testing.Short() {
		testenv.NotApplicable(t, "-short: maps ~32k secrets (128 MiB locked)")
	}
	if raceEnabled {
		testenv.NotApplicable(t, "the race detector needs mappings of its own and dies at the map limit; the non-race run covers this")
	}
	if !memcall.ReadLimits().CanLockAll {
		testenv.Missing(t, "needs CAP_IPC_LOCK (run as root), otherwise RLIMIT_MEMLOCK is reached before the map limit")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := childCommand(t, ctx, "map-limit").CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	t.Logf("%s", bytes.TrimSpace(out))
}

func init() {
	childModes["purge-signal"] = func() error {
		f, err := childFactory()
		if err != nil {
			return err
		}
		s, err := newPattern(f, childSeed(), 48)
		if err != nil {
			return err
		}
		f.afterWipe = func(inner []byte) {
			if bytes.ContainsFunc(inner, func(r rune) bool { return r != 0 }) {
				fmt.Println("not-wiped")
			} else {
				fmt.Println("wiped")
			}
		}
		PurgeOnSignal(syscall.SIGTERM)
		_ = syscall.Kill(os.Getpid(), syscall.SIGTERM)
		time.Sleep(30 * time.Second)
		_ = s
		return errors.New("still alive 30s after SIGTERM")
	}
}

// PurgeOnSignal wipes the secrets, then the signal ends the process as
// it would have without the handler.
func TestPurgeOnSignalWipesThenDies(t *testing.T) {
	forEachMode(t, testPurgeOnSignal)
}

func testPurgeOnSignal(t *testing.T, mode AccessMode) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := childCommand(t, ctx, "purge-signal", seedEnv(17), accessEnv(mode))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("child: %v\n%s", err, stderr.Bytes())
	}
	ws := ee.Sys().(syscall.WaitStatus)
	if !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
		t.Errorf("child ended with %v, want death by SIGTERM; stderr:\n%s", err, stderr.Bytes())
	}
	if got := strings.TrimSpace(stdout.String()); got != "wiped" {
		t.Errorf("purge hook said %q, want \"wiped\"", got)
	}
}

func init() {
	childModes["no-side-effects"] = func() error {
		// Package initialisation has run: it must not have touched
		// RLIMIT_CORE (the parent set the soft limit to coreSoftEnv) or
		// dumpability.
		want, err := strconv.ParseUint(os.Getenv(coreSoftEnv), 10, 64)
		if err != nil {
			return err
		}
		var lim unix.Rlimit
		if err := unix.Getrlimit(unix.RLIMIT_CORE, &lim); err != nil {
			return err
		}
		if lim.Cur != want {
			return childf("RLIMIT_CORE soft = %d after import, want the inherited %d", lim.Cur, want)
		}
		if d, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0); err != nil || d != 1 {
			return childf("dumpable = %d (%v) after import, want 1", d, err)
		}
		if err := DisableCoreDumps(); err != nil {
			return err
		}
		if err := unix.Getrlimit(unix.RLIMIT_CORE, &lim); err != nil {
			return err
		}
		if lim.Cur != 0 || lim.Max != 0 {
			return childf("after DisableCoreDumps RLIMIT_CORE = %d:%d, want 0:0", lim.Cur, lim.Max)
		}
		if d, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0); err != nil || d != 0 {
			return childf("after DisableCoreDumps dumpable = %d (%v), want 0", d, err)
		}
		return nil
	}
}

// coreSoftEnv tells the no-side-effects child the RLIMIT_CORE soft limit
// its parent gave it.
const coreSoftEnv = "SECUREBUF_TEST_CORE_SOFT"

// Importing the package changes nothing; DisableCoreDumps does what it
// says. Both run in a child because DisableCoreDumps cannot be undone.
// The child gets a soft limit of its own, 4096 or the hard limit if that is
// lower (where the hard limit is 0, only dumpability shows a change).
func TestNoImportSideEffectsAndDisableCoreDumps(t *testing.T) {
	var old unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_CORE, &old); err != nil {
		t.Fatal(err)
	}
	soft := uint64(4096)
	if old.Max != unix.RLIM_INFINITY && old.Max < soft {
		soft = old.Max
		t.Logf("RLIMIT_CORE hard limit is %d: the child starts with %d:%d", old.Max, soft, old.Max)
	}
	// Lowering the soft limit is reversible; the child inherits it.
	if err := unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{Cur: soft, Max: old.Max}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := childCommand(t, ctx, "no-side-effects", coreSoftEnv+"="+strconv.FormatUint(soft, 10))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Start()
	if rerr := unix.Setrlimit(unix.RLIMIT_CORE, &old); rerr != nil {
		t.Fatal(rerr)
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v\n%s", err, out.Bytes())
	}
}
