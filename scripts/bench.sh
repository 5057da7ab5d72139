#!/usr/bin/env bash
# Benchmarks: nsx's whole lesson (both views and rendering) against the bare `unshare`
# that does the same isolation, in one hyperfine run, with the ratio and peak memory.
# Needs root and hyperfine (Debian: apt-get install hyperfine).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v hyperfine >/dev/null || { echo "bench: hyperfine is missing: apt-get install hyperfine" >&2; exit 77; }
[ "$(id -u)" -eq 0 ] || { echo "bench: run as root, so both sides create the same namespaces" >&2; exit 77; }
cargo build --release --quiet
nsx=./target/release/nsx
runs=${RUNS:-300}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# bench NAME NSX_COMMAND BASELINE_COMMAND: prints both medians and the ratio.
bench() {
  local name=$1 ours=$2 theirs=$3
  hyperfine -N --warmup 30 --runs "$runs" --export-json "$out/$name.json" "$ours" "$theirs" >/dev/null
  python3 - "$out/$name.json" "$name" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
ours, theirs = (x["median"] * 1000 for x in r)
print(f"{sys.argv[2]:<10} nsx {ours:7.2f} ms   baseline {theirs:7.2f} ms   ratio {ours / theirs:4.2f}   ({r[1]['command']})")
PY
}

echo "median wall time over $runs runs (hyperfine -N)"
bench pid "$nsx lesson pid --format json" "unshare --fork --pid --mount-proc true"

if [ -x /usr/bin/time ]; then
  peak=$(/usr/bin/time -f %M "$nsx" lesson pid --format json 2>&1 >/dev/null | tail -1)
  echo "peak memory of nsx lesson pid: ${peak} KiB (max RSS, /usr/bin/time)"
fi
