package testenv

import (
	"bufio"
	"bytes"
	"os"
	"strings"
	"sync"
	"testing"
)

// Three kinds of test need something a machine may lack, and each has its
// helper here, so that no test calls t.Skip itself:
//
//   - a server, tool, capability or OS feature that CI must provide:
//     Var, Tool, Missing (skip on a developer's machine, fail under CI);
//   - a CPU feature, which differs between CI machines as well: CPUHas.
//     A test branches on it, checking the feature where the CPU has it and
//     the fallback or refusal where it does not, so that it passes on both
//     kinds of machine. Only a benchmark of the feature itself skips
//     without it: SkipWithoutCPU;
//   - a run configured to leave a test out (-short, the race detector, an
//     optional interface the code under test does not implement):
//     NotApplicable, which skips everywhere and says why.

var cpuFlags = sync.OnceValue(func() map[string]bool {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return nil
	}
	return parseCPUFlags(b)
})

// parseCPUFlags returns the flags of the first processor in a
// /proc/cpuinfo text ("flags" on x86, "Features" on arm64).
func parseCPUFlags(cpuinfo []byte) map[string]bool {
	sc := bufio.NewScanner(bytes.NewReader(cpuinfo))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		if k = strings.TrimSpace(k); k != "flags" && k != "Features" {
			continue
		}
		flags := map[string]bool{}
		for _, f := range strings.Fields(v) {
			flags[f] = true
		}
		return flags
	}
	return nil
}

// CPUHas reports whether /proc/cpuinfo lists flag ("pku", "ospke",
// "vaes", "aes", ...) for this machine's CPU. The kernel lists only what
// it enabled: without "pku", protection keys cannot be used, even if the
// CPU has them. It is false where /proc/cpuinfo does not exist.
func CPUHas(flag string) bool { return cpuFlags()[flag] }

// SkipWithoutCPU skips a benchmark (or a test that measures nothing but
// the feature) when the CPU lacks flag, under CI as well: machines
// differ. Tests check the fallback instead; see CPUHas.
func SkipWithoutCPU(tb testing.TB, flag string) {
	tb.Helper()
	if !CPUHas(flag) {
		tb.Skipf("the CPU has no %s (not in /proc/cpuinfo)", flag)
	}
}

// NotApplicable skips tb, under CI as well, because the run is configured
// to leave it out: reason says how (for example "-short", "the race
// detector"). It is not for anything the machine lacks; see Missing.
func NotApplicable(tb testing.TB, reason string) {
	tb.Helper()
	tb.Skip("not applicable: " + reason)
}
