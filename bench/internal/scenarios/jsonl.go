package scenarios

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/enc-pipe/enc-pipe/bench/internal/jsonlgen"
	"github.com/enc-pipe/enc-pipe/bench/internal/results"
)

// jsonlSeed fixes the generated JSON Lines input: every run encrypts the
// same records.
const jsonlSeed = 12

// jsonlLines is the number of lines of the JSON Lines input.
func (e *Env) jsonlLines() int {
	if e.Quick {
		return 100_000
	}
	return 1_000_000
}

// JSONLines is records/s of `enc-pipe records encrypt|decrypt` against a
// plain line forwarder on the same generated JSON Lines file.
func JSONLines() Def {
	return Def{
		ID:    "jsonl",
		Group: "Records",
		Title: "JSON Lines: records/s of `enc-pipe records encrypt`/`decrypt` vs plain forwarding",
		About: "A generated JSON Lines file on tmpfs (fixed seed, about 210 bytes a line: 1 M lines, 100 k with -quick) → /dev/null. " +
			"`records encrypt` writes one Asherah DataRowRecord per line (default format, partition `default`, static master key and SQLite metastore on tmpfs, warm after the first record); " +
			"`records decrypt` reads them back. `fwd` is bench/cmd/linefwd, which reads each line and writes it unchanged through 1 MiB buffers: what a record pipeline without encryption costs. " +
			"MB/s counts the plaintext lines for every command.",
		Setup: func(ctx context.Context, e *Env, x Exec) error {
			in := e.Path("in.jsonl")
			f, err := os.Create(in)
			if err != nil {
				return err
			}
			h := sha256.New()
			if _, err := jsonlgen.Write(io.MultiWriter(f, h), e.jsonlLines(), jsonlSeed); err != nil {
				f.Close()
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
			want := hex.EncodeToString(h.Sum(nil))
			if _, err := x.Run(ctx, e.cliArgs("records", "encrypt", "-i", in, "-o", e.Path("in.drr.jsonl"))...); err != nil {
				return err
			}
			for _, argv := range [][]string{
				e.cliArgs("records", "decrypt", "-i", e.Path("in.drr.jsonl")),
				e.cliArgs("records", "decrypt", "--workers", "1", "-i", e.Path("in.drr.jsonl")),
				{e.Tool("linefwd"), "-in", in},
			} {
				sum, err := x.Sum(ctx, argv...)
				if err != nil {
					return err
				}
				if sum != want {
					return fmt.Errorf("%s: output differs from the JSON Lines input", shJoin(argv))
				}
			}
			bad := e.Path("tampered.drr.jsonl")
			if err := tamperRecord(e.Path("in.drr.jsonl"), bad); err != nil {
				return err
			}
			defer os.Remove(bad)
			return x.Fails(ctx, 3, e.cliArgs("records", "decrypt", "-i", bad, "-o", "/dev/null")...)
		},
		Commands: func(e *Env) []Command {
			st, err := os.Stat(e.Path("in.jsonl"))
			b := float64(0)
			if err == nil {
				b = float64(st.Size())
			}
			n := float64(e.jsonlLines())
			in, drr := e.Path("in.jsonl"), e.Path("in.drr.jsonl")
			cmds := []Command{
				{Name: "jsonl-fwd", Label: "plain line forwarder (linefwd)", Argv: []string{e.Tool("linefwd"), "-in", in}, Bytes: b, Records: n},
				{Name: "jsonl-enc", Label: "enc-pipe records encrypt, " + workers(e.NProc, e.NProc), Argv: e.cliArgs("records", "encrypt", "-i", in, "-o", "/dev/null"), Bytes: b, Records: n},
				{Name: "jsonl-dec", Label: "enc-pipe records decrypt, " + workers(e.NProc, e.NProc), Argv: e.cliArgs("records", "decrypt", "-i", drr, "-o", "/dev/null"), Bytes: b, Records: n},
			}
			if e.NProc > 1 {
				cmds = append(cmds,
					Command{Name: "jsonl-enc-w1", Label: "enc-pipe records encrypt, 1 worker", Argv: e.cliArgs("records", "encrypt", "--workers", "1", "-i", in, "-o", "/dev/null"), Bytes: b, Records: n},
					Command{Name: "jsonl-dec-w1", Label: "enc-pipe records decrypt, 1 worker", Argv: e.cliArgs("records", "decrypt", "--workers", "1", "-i", drr, "-o", "/dev/null"), Bytes: b, Records: n},
				)
			}
			return cmds
		},
		Ratios: func(e *Env) []results.Ratio {
			q := []results.Ratio{
				{Num: "jsonl-enc", Den: []string{"jsonl-fwd"}, Label: "records/s, encrypt vs forward"},
				{Num: "jsonl-dec", Den: []string{"jsonl-fwd"}, Label: "records/s, decrypt vs forward"},
			}
			if e.NProc > 1 {
				q = append(q,
					results.Ratio{Num: "jsonl-enc", Den: []string{"jsonl-enc-w1"}, Label: "N workers vs 1"},
					results.Ratio{Num: "jsonl-dec", Den: []string{"jsonl-dec-w1"}, Label: "N workers vs 1"},
				)
			}
			return q
		},
	}
}

// tamperRecord copies the DataRowRecord lines of src to dst with one
// character of the first record's ciphertext (its "Data" member) changed
// to another base64 character: a record that parses but must fail
// authentication.
func tamperRecord(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	i := bytes.Index(b, []byte(`"Data":"`))
	if i < 0 {
		return errors.New(src + ": no DataRowRecord Data member to tamper with")
	}
	i += len(`"Data":"`) + 8
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return os.WriteFile(dst, b, 0o600)
}
