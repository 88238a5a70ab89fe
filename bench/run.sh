#!/usr/bin/env bash
# The stream macro benchmarks of docs/PERFORMANCE.md ("## stream"): the
# files-null scenario of the benchmark suite (enc-pipe's stream with 1 and N
# workers, age, Tink, AES-256-GCM in memory and cat, one tmpfs file to
# /dev/null), interleaved rounds, printed as Markdown. RSS=1 adds the memory
# pass (peak RSS at 1 GiB and 4 GiB). The whole suite is `make bench-report`.
#
#   bash bench/run.sh                      # ROUNDS=7 SIZE=1G
#   ROUNDS=11 bash bench/run.sh
#   RSS=1 bash bench/run.sh
#
# Needs Go, hyperfine and /usr/bin/time. Writes bench/results/tmp/run-sh/.
set -euo pipefail
cd "$(dirname "$0")"
scenarios=files-null
mem=()
if [ -n "${RSS:-}" ]; then
  scenarios=$scenarios,memory
  mem=(-mem-sizes 1G,4G)
fi
out=results/tmp/run-sh
ROUNDS=${ROUNDS:-7} SIZE=${SIZE:-1G} go run ./cmd/benchrun -scenarios "$scenarios" "${mem[@]}" -out "$out"
go run ./cmd/benchreport -in "$out/results.json" -doc "$out/report.md" -figs "$out/perf"
cat "$out/report.md"
