package scenarios

import (
	"context"
	"fmt"

	"github.com/enc-pipe/enc-pipe/bench/internal/results"
)

// Measurement names shared by several scenarios' ratios.
const (
	nameCat  = "cat"  // cat input > /dev/null
	nameCopy = "copy" // cat input > tmpfs file
)

func wName(prefix string, w int) string { return prefix + "-w" + itoa(w) }

// epArgs is epbench with the data key.
func (e *Env) epArgs(mode string, extra ...string) []string {
	return append([]string{e.Tool("epbench"), "-mode", mode, "-key", e.Key}, extra...)
}

func (e *Env) ageArgs(mode string, extra ...string) []string {
	return append([]string{e.Tool("agebench"), "-mode", mode, "-identity", e.AgeID}, extra...)
}

func (e *Env) tinkArgs(mode string, extra ...string) []string {
	return append([]string{e.Tool("tinkbench"), "-mode", mode, "-keyset", e.TinkKS}, extra...)
}

// FilesToNull compares enc-pipe's stream (the library, through epbench)
// with age, Tink and the hardware on one tmpfs file written to /dev/null:
// the goals G2-G4 of streaming-design.md §4.
func FilesToNull() Def {
	return Def{
		ID:    "files-null",
		Group: "Files",
		Title: "tmpfs file → /dev/null: enc-pipe stream vs age, Tink, AES-256-GCM and cat",
		About: "`ep-*` is bench/cmd/epbench (package stream, 64 KiB chunks, no KMS); `age-*` filippo.io/age with an X25519 recipient; " +
			"`tink-*` tink-go streaming AEAD AES256_GCM_HKDF_1MB; `gcm-*` seals the same number of bytes in memory (64 KiB chunks) on 1 or N goroutines.",
		Setup: func(ctx context.Context, e *Env, x Exec) error {
			steps := [][]string{
				e.epArgs("enc", "-in", e.Input, "-out", e.Path("in.ep")),
				e.ageArgs("enc", "-in", e.Input, "-out", e.Path("in.age")),
				e.tinkArgs("enc", "-in", e.Input, "-out", e.Path("in.tink")),
			}
			for _, s := range steps {
				if _, err := x.Run(ctx, s...); err != nil {
					return err
				}
			}
			checks := [][]string{
				e.ageArgs("dec", "-in", e.Path("in.age")),
				e.tinkArgs("dec", "-in", e.Path("in.tink")),
			}
			for _, w := range e.Workers {
				checks = append(checks, e.epArgs("dec", "-in", e.Path("in.ep"), "-workers", itoa(w)))
			}
			for _, c := range checks {
				if err := sameSum(ctx, e, x, c); err != nil {
					return err
				}
			}
			return tamperCheck(ctx, e, x, e.Path("in.ep"), 0, func(bad string) []string {
				return e.epArgs("dec", "-in", bad, "-out", "/dev/null")
			})
		},
		Commands: func(e *Env) []Command {
			n := e.NProc
			b := float64(e.Size)
			size := itoa64(e.Size)
			gcmSeries := map[string]string{"series": "AES-256-GCM in memory"}
			cmds := []Command{
				{Name: nameCat, Label: "cat file > /dev/null", Argv: []string{"cat", e.Input}, Bytes: b},
				{Name: "gcm-1", Label: "AES-256-GCM in memory, 1 goroutine", Argv: e.epArgs("gcm", "-size", size, "-workers", "1"),
					Params: with(gcmSeries, "workers", "1"), Bytes: b},
			}
			if n > 1 {
				cmds = append(cmds, Command{Name: "gcm-" + itoa(n), Label: fmt.Sprintf("AES-256-GCM in memory, %d goroutines", n),
					Argv: e.epArgs("gcm", "-size", size, "-workers", itoa(n)), Params: with(gcmSeries, "workers", itoa(n)), Bytes: b})
			}
			for _, op := range []struct{ mode, name, in, series string }{
				{"enc", "ep-enc", e.Input, "enc-pipe encrypt"},
				{"dec", "ep-dec", e.Path("in.ep"), "enc-pipe decrypt"},
			} {
				for _, w := range e.Workers {
					cmds = append(cmds, Command{
						Name:   wName(op.name, w),
						Label:  fmt.Sprintf("%s, %s", op.series, workers(w, n)),
						Argv:   e.epArgs(op.mode, "-in", op.in, "-out", "/dev/null", "-workers", itoa(w)),
						Params: map[string]string{"series": op.series, "workers": itoa(w)},
						Bytes:  b,
					})
				}
			}
			return append(cmds,
				Command{Name: "age-enc", Label: "age encrypt", Argv: e.ageArgs("enc", "-in", e.Input, "-out", "/dev/null"), Bytes: b},
				Command{Name: "age-dec", Label: "age decrypt", Argv: e.ageArgs("dec", "-in", e.Path("in.age"), "-out", "/dev/null"), Bytes: b},
				Command{Name: "tink-enc", Label: "Tink encrypt", Argv: e.tinkArgs("enc", "-in", e.Input, "-out", "/dev/null"), Bytes: b},
				Command{Name: "tink-dec", Label: "Tink decrypt", Argv: e.tinkArgs("dec", "-in", e.Path("in.tink"), "-out", "/dev/null"), Bytes: b},
			)
		},
		Ratios: func(e *Env) []results.Ratio {
			n := e.NProc
			q := []results.Ratio{
				{Num: "ep-enc-w1", Den: []string{"age-enc"}, Goal: ge(1.5), Label: "G2"},
				{Num: "ep-enc-w1", Den: []string{"tink-enc"}, Goal: ge(1.2), Label: "G2"},
				{Num: "ep-enc-w1", Den: []string{"gcm-1"}, Goal: ge(0.55), Label: "G2"},
				{Num: "ep-dec-w1", Den: []string{"age-dec"}, Goal: ge(2), Label: "G3"},
				{Num: "ep-dec-w1", Den: []string{"gcm-1"}, Goal: ge(0.55), Label: "G3"},
				{Num: "ep-dec-w1", Den: []string{"tink-dec"}},
			}
			if n > 1 {
				gn := "gcm-" + itoa(n)
				q = append(q,
					results.Ratio{Num: wName("ep-enc", n), Den: []string{gn, nameCat}, Goal: ge(0.8), Label: "G4, quiet machine with ≥ 2 real cores"},
					results.Ratio{Num: wName("ep-enc", n), Den: []string{"ep-enc-w1"}, Goal: ge(0.95), Label: "G4, contended machine"},
					results.Ratio{Num: wName("ep-dec", n), Den: []string{"ep-dec-w1"}},
					results.Ratio{Num: gn, Den: []string{"gcm-1"}},
				)
			}
			return q
		},
		Figures: []results.Figure{{
			File: "throughput-vs-workers.svg", Title: "Throughput vs workers, 1 tmpfs file → /dev/null",
			X: "workers", XLabel: "workers (goroutines)", Series: "series", Metric: results.MetricMBps,
		}},
	}
}

// FilesToFile is the same file encrypted to a new file on the same tmpfs
// against a plain copy (G5).
func FilesToFile() Def {
	return Def{
		ID:    "files-file",
		Group: "Files",
		Title: "tmpfs file → new tmpfs file: enc-pipe stream vs age, Tink and a `cat` copy",
		About: "Every run writes a new file (the previous output is removed before the run, untimed). epbench writes with a plain os.File (no temporary file, no fsync): " +
			"each sealed chunk is one write(2) by the goroutine that sealed it; `-outbuf bufio` copies chunks into a 1 MiB buffer as the CLI's file sink does, " +
			"`-outbuf writebehind` hands full 1 MiB buffers to a goroutine that only writes. GNU cat copies in the kernel (copy_file_range).",
		Commands: func(e *Env) []Command {
			n := e.NProc
			b := float64(e.Size)
			out := e.Path("out")
			rm := "rm -f " + out
			cmds := []Command{
				{Name: nameCopy, Label: "cat file > file (copy)", Argv: []string{"cat", e.Input}, Stdout: out, Prepare: rm, Bytes: b},
			}
			for _, w := range uniq(1, n) {
				cmds = append(cmds, Command{Name: wName("ep-enc-file", w), Label: "enc-pipe encrypt → file, " + workers(w, n),
					Argv: e.epArgs("enc", "-in", e.Input, "-out", out, "-workers", itoa(w)), Prepare: rm, Bytes: b})
			}
			// The CLI's file sink buffers 1 MiB and writes on the sealing
			// goroutine (bufio); writebehind hands full buffers to a
			// goroutine that only writes.
			for _, ob := range []string{"bufio", "writebehind"} {
				cmds = append(cmds, Command{Name: "ep-enc-file-" + ob + "-w1", Label: "enc-pipe encrypt → file, 1 worker, -outbuf " + ob,
					Argv: e.epArgs("enc", "-in", e.Input, "-out", out, "-workers", "1", "-outbuf", ob), Prepare: rm, Bytes: b})
			}
			return append(cmds,
				Command{Name: "age-enc-file", Label: "age encrypt → file", Argv: e.ageArgs("enc", "-in", e.Input, "-out", out), Prepare: rm, Bytes: b},
				Command{Name: "tink-enc-file", Label: "Tink encrypt → file", Argv: e.tinkArgs("enc", "-in", e.Input, "-out", out), Prepare: rm, Bytes: b},
			)
		},
		Ratios: func(e *Env) []results.Ratio {
			q := []results.Ratio{
				{Num: "ep-enc-file-w1", Den: []string{nameCopy}, Goal: ge(0.75), Label: "G5"},
				{Num: "ep-enc-file-w1", Den: []string{"age-enc-file"}},
				{Num: "ep-enc-file-w1", Den: []string{"tink-enc-file"}},
				{Num: "ep-enc-file-w1", Den: []string{"ep-enc-w1"}, Time: true, Goal: le(1.3), Label: "file → file within 1.3× the time of → /dev/null"},
				{Num: "ep-enc-file-bufio-w1", Den: []string{"ep-enc-w1"}, Time: true, Goal: le(1.3), Label: "the same with the CLI sink's 1 MiB buffer"},
				{Num: "ep-enc-file-writebehind-w1", Den: []string{"ep-enc-w1"}, Time: true, Goal: le(1.3), Label: "the same with write-behind"},
				{Num: "ep-enc-file-writebehind-w1", Den: []string{"ep-enc-file-bufio-w1"}, Time: true, Label: "write-behind vs bufio"},
			}
			if n := e.NProc; n > 1 {
				q = append(q,
					results.Ratio{Num: wName("ep-enc-file", n), Den: []string{nameCopy}, Goal: ge(0.75), Label: "G5"},
					results.Ratio{Num: wName("ep-enc-file", n), Den: []string{wName("ep-enc", n)}, Time: true, Goal: le(1.3), Label: "file → file within 1.3× the time of → /dev/null"},
				)
			}
			return q
		},
	}
}

// ChunkSizes sweeps the chunk size of a 1-worker encryption to /dev/null.
func ChunkSizes() Def {
	return Def{
		ID:    "chunks",
		Group: "Files",
		Title: "Chunk size: enc-pipe stream encrypt, tmpfs file → /dev/null",
		Setup: func(ctx context.Context, e *Env, x Exec) error {
			for _, c := range []int{e.Chunks[0], e.Chunks[len(e.Chunks)-1]} {
				sum, err := x.Sum(ctx, "sh", "-c", shJoin(e.epArgs("enc", "-in", e.Input, "-chunk", itoa(c)))+" | "+shJoin(e.epArgs("dec")))
				if err != nil {
					return err
				}
				if sum != e.InputSum {
					return fmt.Errorf("chunk size %d: decrypted output differs from the input", c)
				}
			}
			return nil
		},
		Commands: func(e *Env) []Command {
			var cmds []Command
			for _, w := range uniq(1, e.NProc) {
				for _, c := range e.Chunks {
					cmds = append(cmds, Command{
						Name:   fmt.Sprintf("ep-enc-c%s-w%d", sizeName(int64(c)), w),
						Label:  fmt.Sprintf("enc-pipe encrypt, %s chunks, %s", sizeName(int64(c)), workers(w, e.NProc)),
						Argv:   e.epArgs("enc", "-in", e.Input, "-out", "/dev/null", "-workers", itoa(w), "-chunk", itoa(c)),
						Params: map[string]string{"chunk": itoa(c), "series": "encrypt, " + workers(w, e.NProc)},
						Bytes:  float64(e.Size),
					})
				}
			}
			return cmds
		},
		Figures: []results.Figure{{
			File: "throughput-vs-chunk.svg", Title: "Throughput vs chunk size, encrypt tmpfs file → /dev/null",
			X: "chunk", XLabel: "chunk size (bytes)", Series: "series", Metric: results.MetricMBps, LogX: true,
		}},
	}
}

// sameSum checks that argv writes exactly the input to standard output.
func sameSum(ctx context.Context, e *Env, x Exec, argv []string) error {
	sum, err := x.Sum(ctx, argv...)
	if err != nil {
		return err
	}
	if sum != e.InputSum {
		return fmt.Errorf("%s: output differs from the input", shJoin(argv))
	}
	return nil
}

// tamperCheck flips one byte in the middle of a copy of ciphertext and
// checks that decrypt refuses it (with exit code code, if non-zero).
func tamperCheck(ctx context.Context, e *Env, x Exec, ciphertext string, code int, decrypt func(bad string) []string) error {
	bad := e.Path("tampered")
	if _, err := x.Run(ctx, "cp", ciphertext, bad); err != nil {
		return err
	}
	defer x.Run(ctx, "rm", "-f", bad)
	if _, err := x.Run(ctx, "sh", "-c", fmt.Sprintf("printf '\\001' | dd of=%s bs=1 seek=%d conv=notrunc status=none", bad, e.Size/2)); err != nil {
		return err
	}
	return x.Fails(ctx, code, decrypt(bad)...)
}

func workers(w, n int) string {
	s := itoa(w) + " worker"
	if w != 1 {
		s += "s"
	}
	if w == n && n > 1 {
		s += " (N)"
	}
	return s
}

func with(m map[string]string, kv ...string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

func uniq(v ...int) []int {
	var out []int
	for _, x := range v {
		dup := false
		for _, y := range out {
			dup = dup || x == y
		}
		if !dup {
			out = append(out, x)
		}
	}
	return out
}

func itoa64(n int64) string { return fmt.Sprint(n) }

// shJoin quotes argv for sh -c. Paths here come from the harness and hold
// no single quotes.
func shJoin(argv []string) string {
	s := ""
	for i, a := range argv {
		if i > 0 {
			s += " "
		}
		s += "'" + a + "'"
	}
	return s
}
