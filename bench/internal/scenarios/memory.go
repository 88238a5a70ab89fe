package scenarios

import (
	"github.com/enc-pipe/enc-pipe/bench/internal/results"
)

// Memory measures peak RSS (/usr/bin/time -v) against input size: each
// command reads a stream of zeros from a pipe (through an encryptor first
// for the decryptors) and writes to /dev/null (G6: flat in input size).
func Memory() Def {
	return Def{
		ID:    "memory",
		Group: "Memory",
		Title: "Peak RSS (MiB) vs input size, standard input → /dev/null",
		About: "One run per command and size under `/usr/bin/time -v` (maximum resident set size); the input is a pipe of zeros, so the tools cannot map or seek it.",
		Memory: func(e *Env) []MemCommand {
			n := e.NProc
			var cmds []MemCommand
			for _, w := range uniq(1, n) {
				cmds = append(cmds,
					MemCommand{Name: wName("mem-ep-enc", w), Label: "enc-pipe stream encrypt, " + workers(w, n), Argv: e.epArgs("enc", "-workers", itoa(w))},
					MemCommand{Name: wName("mem-ep-dec", w), Label: "enc-pipe stream decrypt, " + workers(w, n), Argv: e.epArgs("dec", "-workers", itoa(w)),
						Producer: e.epArgs("enc")},
				)
			}
			return append(cmds,
				MemCommand{Name: "mem-cli-enc", Label: "enc-pipe CLI encrypt", Argv: e.cliArgs("encrypt")},
				MemCommand{Name: "mem-cli-dec", Label: "enc-pipe CLI decrypt", Argv: e.cliArgs("decrypt"), Producer: e.cliArgs("encrypt")},
				MemCommand{Name: "mem-age-enc", Label: "age encrypt", Argv: e.ageArgs("enc")},
				MemCommand{Name: "mem-age-dec", Label: "age decrypt", Argv: e.ageArgs("dec"), Producer: e.ageArgs("enc")},
				MemCommand{Name: "mem-tink-enc", Label: "Tink encrypt", Argv: e.tinkArgs("enc")},
				MemCommand{Name: "mem-tink-dec", Label: "Tink decrypt", Argv: e.tinkArgs("dec"), Producer: e.tinkArgs("enc")},
				MemCommand{Name: "mem-cat", Label: "cat", Argv: []string{"cat"}},
			)
		},
		Figures: []results.Figure{{
			File: "memory-vs-input-size.svg", Title: "Peak RSS vs input size, stdin → /dev/null",
			X: "input", XLabel: "input size (bytes)", Series: "series", Metric: results.MetricRSSMiB, LogX: true,
		}},
		Pivot: &results.Pivot{Row: "series", RowLabel: "command", Col: "input_name", Metric: results.MetricRSSMiB},
	}
}
