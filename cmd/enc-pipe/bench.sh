#!/usr/bin/env bash
# CLI benchmark (docs/PERFORMANCE.md, "## cli"): enc-pipe encrypt file -> file
# on tmpfs against a plain `cat` copy of the same file, interleaved by one
# hyperfine run. Usage: cmd/enc-pipe/bench.sh [SIZE_MIB] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/../.."
size=${1:-1024}
runs=${2:-10}
dir=$(mktemp -d /dev/shm/enc-pipe-bench.XXXXXX)
trap 'rm -rf "$dir"' EXIT
go build -o "$dir/enc-pipe" ./cmd/enc-pipe
head -c "${size}M" /dev/urandom > "$dir/in"
export ENC_PIPE_HOME="$dir/home"
"$dir/enc-pipe" init
"$dir/enc-pipe" encrypt -i "$dir/in" -o "$dir/check.ep"
"$dir/enc-pipe" decrypt -i "$dir/check.ep" | cmp - "$dir/in"
echo "loadavg before: $(cat /proc/loadavg)"
hyperfine -N -w 2 -r "$runs" --export-json "$dir/result.json" \
  -n cat "cat $dir/in" --output="$dir/copy" \
  -n encrypt "$dir/enc-pipe encrypt -i $dir/in -o $dir/out.ep" \
  -n decrypt "$dir/enc-pipe decrypt -i $dir/check.ep -o $dir/out.plain"
echo "loadavg after: $(cat /proc/loadavg)"
python3 - "$dir/result.json" "$size" <<'PY'
import json, statistics, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
mib = int(sys.argv[2])
for name, x in r.items():
    print(f"{name:8s} median {x['median']*1000:8.1f} ms  {mib/x['median']:7.0f} MiB/s  (min {x['min']*1000:.1f}, max {x['max']*1000:.1f})")
print(f"encrypt/cat throughput ratio (medians): {r['cat']['median']/r['encrypt']['median']:.2f}")
print(f"decrypt/cat throughput ratio (medians): {r['cat']['median']/r['decrypt']['median']:.2f}")
PY
