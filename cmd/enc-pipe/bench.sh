#!/usr/bin/env bash
# CLI benchmark (docs/PERFORMANCE.md, "## cli"): enc-pipe encrypt and
# decrypt file -> file on tmpfs against a plain `cat` copy of the same file.
# The machine is shared, so commands are interleaved: ROUNDS hyperfine runs,
# each timing cat, encrypt and decrypt RUNS times; ratios are taken per round
# and the median over rounds is reported.
# Usage: cmd/enc-pipe/bench.sh [SIZE_MIB] [ROUNDS] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/../.."
size=${1:-1024}
rounds=${2:-5}
runs=${3:-3}
dir=$(mktemp -d /dev/shm/enc-pipe-bench.XXXXXX)
trap 'rm -rf "$dir"' EXIT
go build -o "$dir/enc-pipe" ./cmd/enc-pipe
head -c "${size}M" /dev/urandom > "$dir/in"
export ENC_PIPE_HOME="$dir/home"
"$dir/enc-pipe" init 2>/dev/null
"$dir/enc-pipe" encrypt -i "$dir/in" -o "$dir/check.ep"
"$dir/enc-pipe" decrypt -i "$dir/check.ep" | cmp - "$dir/in"
echo "go: $(go version | cut -d' ' -f3), cpus: $(nproc), loadavg before: $(cat /proc/loadavg)"
# Every command writes a new file: --prepare removes the previous output
# (unmeasured), so no run pays for freeing the last run's pages. cat's
# stdout goes to the file (--output); GNU cat then copies in the kernel
# (copy_file_range), without the read and write copies enc-pipe must make.
for r in $(seq "$rounds"); do
  hyperfine -N -r "$runs" --style none --export-json "$dir/round$r.json" --output="$dir/copy" \
    -n cat --prepare "rm -f $dir/copy" "cat $dir/in" \
    -n encrypt --prepare "rm -f $dir/out.ep" "$dir/enc-pipe encrypt -i $dir/in -o $dir/out.ep" \
    -n decrypt --prepare "rm -f $dir/out.plain" "$dir/enc-pipe decrypt -i $dir/check.ep -o $dir/out.plain" >/dev/null
done
echo "loadavg after: $(cat /proc/loadavg)"
python3 - "$dir" "$rounds" "$size" <<'PY'
import json, statistics, sys
d, rounds, mib = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
times = {"cat": [], "encrypt": [], "decrypt": []}
ratios = {"encrypt": [], "decrypt": []}
for r in range(1, rounds + 1):
    res = {x["command"]: x for x in json.load(open(f"{d}/round{r}.json"))["results"]}
    for k in times:
        times[k] += res[k]["times"]
    for k in ratios:
        ratios[k].append(res["cat"]["median"] / res[k]["median"])
for k, ts in times.items():
    m = statistics.median(ts)
    print(f"{k:8s} median {m*1000:7.0f} ms  {mib/m:6.0f} MiB/s  ({len(ts)} runs, min {min(ts)*1000:.0f} ms, max {max(ts)*1000:.0f} ms)")
for k, rs in ratios.items():
    print(f"{k}/cat throughput ratio: median {statistics.median(rs):.2f} over {len(rs)} rounds (per round: {', '.join(f'{x:.2f}' for x in rs)})")
PY
