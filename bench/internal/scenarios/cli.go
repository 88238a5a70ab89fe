package scenarios

import (
	"context"

	"github.com/enc-pipe/enc-pipe/bench/internal/results"
)

// cliArgs is the enc-pipe CLI (built from the repository's ./cmd/enc-pipe)
// on its benchmark home: static master key and SQLite metastore on tmpfs.
func (e *Env) cliArgs(args ...string) []string {
	return append([]string{e.Tool("enc-pipe"), "--home", e.CLIHome}, args...)
}

// CLI measures the enc-pipe command itself, file → file against
// file → /dev/null and a `cat` copy: the overlap goal of issue 12
// (file → file within 1.3× the time of → /dev/null).
func CLI() Def {
	return Def{
		ID:    "cli",
		Group: "CLI",
		Title: "enc-pipe CLI: file → file vs file → /dev/null vs `cat`",
		About: "`enc-pipe encrypt -i IN -o OUT` as users run it: process start, SQLite metastore and static master key on tmpfs, a new data key per run, " +
			"output through the CLI's atomic file sink (temporary file, fsync, rename). Workers default to one per CPU.",
		Setup: func(ctx context.Context, e *Env, x Exec) error {
			if _, err := x.Run(ctx, e.cliArgs("encrypt", "-i", e.Input, "-o", e.Path("in.cli.ep"))...); err != nil {
				return err
			}
			if err := sameSum(ctx, e, x, e.cliArgs("decrypt", "-i", e.Path("in.cli.ep"))); err != nil {
				return err
			}
			return tamperCheck(ctx, e, x, e.Path("in.cli.ep"), 3, func(bad string) []string {
				return e.cliArgs("decrypt", "-i", bad, "-o", "/dev/null")
			})
		},
		Commands: func(e *Env) []Command {
			b := float64(e.Size)
			out := e.Path("out")
			rm := "rm -f " + out
			cmds := []Command{
				{Name: "cli-enc-null", Label: "enc-pipe encrypt → /dev/null", Argv: e.cliArgs("encrypt", "-i", e.Input, "-o", "/dev/null"), Bytes: b},
				{Name: "cli-enc-file", Label: "enc-pipe encrypt → file", Argv: e.cliArgs("encrypt", "-i", e.Input, "-o", out), Prepare: rm, Bytes: b},
			}
			if e.NProc > 1 {
				cmds = append(cmds,
					Command{Name: "cli-enc-null-w1", Label: "enc-pipe encrypt -w 1 → /dev/null", Argv: e.cliArgs("encrypt", "-w", "1", "-i", e.Input, "-o", "/dev/null"), Bytes: b},
					Command{Name: "cli-enc-file-w1", Label: "enc-pipe encrypt -w 1 → file", Argv: e.cliArgs("encrypt", "-w", "1", "-i", e.Input, "-o", out), Prepare: rm, Bytes: b},
				)
			}
			return append(cmds,
				Command{Name: "cli-dec-null", Label: "enc-pipe decrypt → /dev/null", Argv: e.cliArgs("decrypt", "-i", e.Path("in.cli.ep"), "-o", "/dev/null"), Bytes: b},
				Command{Name: "cli-dec-file", Label: "enc-pipe decrypt → file", Argv: e.cliArgs("decrypt", "-i", e.Path("in.cli.ep"), "-o", out), Prepare: rm, Bytes: b},
			)
		},
		Ratios: func(e *Env) []results.Ratio {
			overlap := "issue 12: file → file within 1.3× the time of → /dev/null"
			q := []results.Ratio{
				{Num: "cli-enc-file", Den: []string{"cli-enc-null"}, Time: true, Goal: le(1.3), Label: overlap},
			}
			if e.NProc > 1 {
				q = append(q, results.Ratio{Num: "cli-enc-file-w1", Den: []string{"cli-enc-null-w1"}, Time: true, Goal: le(1.3), Label: overlap})
			}
			return append(q,
				results.Ratio{Num: "cli-dec-file", Den: []string{"cli-dec-null"}, Time: true},
				results.Ratio{Num: "cli-enc-file", Den: []string{nameCopy}, Goal: ge(0.75), Label: "G5"},
				results.Ratio{Num: "cli-enc-null", Den: []string{nameCat}},
				results.Ratio{Num: "cli-enc-null", Den: []string{"age-enc"}},
				results.Ratio{Num: "cli-dec-null", Den: []string{"age-dec"}},
				results.Ratio{Num: "cli-enc-file", Den: []string{wName("ep-enc-file", e.NProc)}, Label: "CLI sink vs a plain os.File"},
				results.Ratio{Num: "cli-enc-null", Den: []string{wName("ep-enc", e.NProc)}, Label: "CLI vs library"},
			)
		},
	}
}
