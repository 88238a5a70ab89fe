#!/usr/bin/env bash
# Reproduces the macro benchmarks of docs/PERFORMANCE.md, section "## stream":
# enc-pipe's stream (library, 1 and N workers), age (X25519) and Tink
# streaming AEAD (AES256_GCM_HKDF_1MB) on the same tmpfs file to /dev/null,
# plus the hardware baselines `cat file` and AES-256-GCM in memory.
#
# Every round runs every command once (hyperfine, one invocation per round),
# so the commands interleave; ratios are medians of per-round ratios.
#
#   bash bench/run.sh                      # ROUNDS=7 SIZE=1G
#   ROUNDS=11 bash bench/run.sh
#   RSS=1 bash bench/run.sh                # also peak RSS at 1 GiB and 4 GiB
#
# Needs: Go, hyperfine (apt-get install -y hyperfine), /usr/bin/time (package
# time). Writes bench/results/tmp/ (ignored by git) and prints the tables.
set -euo pipefail
cd "$(dirname "$0")"

ROUNDS=${ROUNDS:-7}
SIZE=${SIZE:-1G}
DIR=${DIR:-/dev/shm/encpipe-bench}
OUT=results/tmp
N=$(nproc)

command -v hyperfine >/dev/null || { echo "run.sh: hyperfine is not installed (apt-get install -y hyperfine)" >&2; exit 1; }
mkdir -p "$DIR/bin" "$OUT"
trap 'rm -f "$DIR/key" "$DIR/age.id" "$DIR/tink.ks"' EXIT

go build -o "$DIR/bin/" ./cmd/...
B=$DIR/bin

bytes=$(numfmt --from=iec "$SIZE")
if [ ! -f "$DIR/rand" ] || [ "$(stat -c %s "$DIR/rand")" != "$bytes" ]; then
  head -c "$SIZE" /dev/urandom > "$DIR/rand"
fi
head -c 32 /dev/urandom > "$DIR/key"
"$B/agebench" -mode keygen -identity "$DIR/age.id"
"$B/tinkbench" -mode keygen -keyset "$DIR/tink.ks"
cat "$DIR/rand" > /dev/null # warm the page cache

# Ciphertexts for the decrypt runs, and a correctness check of every tool.
"$B/epbench" -mode enc -key "$DIR/key" -in "$DIR/rand" -out "$DIR/rand.ep"
"$B/agebench" -mode enc -identity "$DIR/age.id" -in "$DIR/rand" -out "$DIR/rand.age"
"$B/tinkbench" -mode enc -keyset "$DIR/tink.ks" -in "$DIR/rand" -out "$DIR/rand.tink"
"$B/epbench" -mode dec -key "$DIR/key" -in "$DIR/rand.ep" -workers 1 | cmp - "$DIR/rand"
"$B/epbench" -mode dec -key "$DIR/key" -in "$DIR/rand.ep" -workers "$N" | cmp - "$DIR/rand"
"$B/agebench" -mode dec -identity "$DIR/age.id" -in "$DIR/rand.age" | cmp - "$DIR/rand"
"$B/tinkbench" -mode dec -keyset "$DIR/tink.ks" -in "$DIR/rand.tink" | cmp - "$DIR/rand"
# Tampering must fail: flip one byte in the middle of our ciphertext.
cp "$DIR/rand.ep" "$DIR/bad.ep"
printf '\x00' | dd of="$DIR/bad.ep" bs=1 seek=$((bytes / 2)) conv=notrunc status=none
if "$B/epbench" -mode dec -key "$DIR/key" -in "$DIR/bad.ep" -out /dev/null 2>/dev/null; then
  echo "run.sh: a tampered stream decrypted" >&2; exit 1
fi
rm -f "$DIR/bad.ep"

{
  echo "go: $(go version)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), nproc $N"
  echo "flags: $(grep -o -w -E 'aes|pclmulqdq|vaes|vpclmulqdq|avx2|avx512f' /proc/cpuinfo | sort -u | xargs)"
  echo "loadavg before: $(cat /proc/loadavg)"
} | tee "$OUT/env.txt"

rm -f "$OUT"/round*.json
for r in $(seq 1 "$ROUNDS"); do
  hyperfine -N -w 0 -r 1 --style none --export-json "$OUT/round$r.json" \
    -n cat       "cat $DIR/rand" \
    -n gcm-1     "$B/epbench -mode gcm -size $bytes -workers 1" \
    -n gcm-N     "$B/epbench -mode gcm -size $bytes -workers $N" \
    -n ep-enc-w1 "$B/epbench -mode enc -key $DIR/key -in $DIR/rand -out /dev/null -workers 1" \
    -n ep-enc-wN "$B/epbench -mode enc -key $DIR/key -in $DIR/rand -out /dev/null -workers $N" \
    -n ep-dec-w1 "$B/epbench -mode dec -key $DIR/key -in $DIR/rand.ep -out /dev/null -workers 1" \
    -n ep-dec-wN "$B/epbench -mode dec -key $DIR/key -in $DIR/rand.ep -out /dev/null -workers $N" \
    -n age-enc   "$B/agebench -mode enc -identity $DIR/age.id -in $DIR/rand -out /dev/null" \
    -n age-dec   "$B/agebench -mode dec -identity $DIR/age.id -in $DIR/rand.age -out /dev/null" \
    -n tink-enc  "$B/tinkbench -mode enc -keyset $DIR/tink.ks -in $DIR/rand -out /dev/null" \
    -n tink-dec  "$B/tinkbench -mode dec -keyset $DIR/tink.ks -in $DIR/rand.tink -out /dev/null" \
    >/dev/null
done
echo "loadavg after: $(cat /proc/loadavg)" | tee -a "$OUT/env.txt"
go run ./cmd/summarize -bytes "$bytes" "$OUT"/round*.json | tee "$OUT/summary.md"

if [ -n "${RSS:-}" ]; then
  echo
  echo "| command | input | peak RSS (MiB) |"
  echo "|---|---|---:|"
  for gib in 1 4; do
    for w in 1 "$N"; do
      for mode in enc dec; do
        if [ "$mode" = enc ]; then
          rss=$( { head -c "${gib}G" /dev/zero | /usr/bin/time -f %M "$B/epbench" -mode enc -key "$DIR/key" -workers "$w" -out /dev/null; } 2>&1 >/dev/null | tail -1)
        else
          rss=$( { head -c "${gib}G" /dev/zero | "$B/epbench" -mode enc -key "$DIR/key" -workers "$N" | /usr/bin/time -f %M "$B/epbench" -mode dec -key "$DIR/key" -workers "$w" -out /dev/null; } 2>&1 >/dev/null | tail -1)
        fi
        echo "| epbench $mode -workers $w | ${gib} GiB (pipe) | $(awk -v k="$rss" 'BEGIN { printf "%.1f", k / 1024 }') |"
      done
    done
  done | tee "$OUT/rss.md"
fi
