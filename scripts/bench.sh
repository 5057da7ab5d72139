#!/usr/bin/env bash
# Benchmarks, as root:
#  1. the memory lesson's cgroup handling (finding where cgroups go, create, limit, join,
#     remove) against bare mkdir/write/rmdir of the same files
#     (examples/nsx-cgroup-cost.rs; no extra tools);
#  2. nsx's whole lesson (both views and rendering) against the bare `unshare` that does
#     the same isolation, in one hyperfine run, with the ratio and peak memory (needs
#     hyperfine; Debian: apt-get install hyperfine).
#
# scripts/bench.sh --against REV (a git revision, or an nsx binary) does only this instead:
# every lesson run by REV's nsx and by this tree's, alternately, in one run, with the
# median wall and CPU time of each (scripts/lesson-ab.py): did a change make a lesson
# slower? REV is built in a temporary worktree, removed afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "bench: run as root, so both sides create the same namespaces and cgroups" >&2; exit 77; }
# Two builds, the binary last: built in one invocation with the example, nsx would be
# compiled with the dev-dependencies' features unified in, a different binary from the
# one `cargo build --release` makes.
cargo build --release --quiet --example nsx-cgroup-cost
cargo build --release --quiet --bins
nsx=./target/release/nsx

if [ "${1:-}" = "--against" ]; then
  rev=${2:?usage: scripts/bench.sh --against REV  (a git revision or an nsx binary)}
  if [ -f "$rev" ] && [ -x "$rev" ]; then
    before=$rev
  else
    src=$(mktemp -d)
    trap 'git worktree remove --force "$src/tree" 2>/dev/null; rm -rf "$src"' EXIT
    git worktree add --quiet --detach "$src/tree" "$rev"
    echo "bench: building $rev ($(git rev-parse --short "$rev")) in a temporary worktree" >&2
    cargo build --release --quiet --bin nsx --manifest-path "$src/tree/Cargo.toml" --target-dir "$src/target"
    before=$src/target/release/nsx
  fi
  echo "every lesson, $rev (before) against this tree (after): $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
  python3 scripts/lesson-ab.py "$before" "$nsx" "${RUNS:-60}"
  exit 0
fi

echo "== cgroup cost of the memory lesson (goal: at most 1.5x the bare system calls)"
./target/release/examples/nsx-cgroup-cost "${CGROUP_RUNS:-300}"
echo

command -v hyperfine >/dev/null || { echo "bench: hyperfine is missing (apt-get install hyperfine): skipping the whole-lesson benchmark" >&2; exit 77; }
runs=${RUNS:-300}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# bench NAME NSX_COMMAND BASELINE_COMMAND: prints both medians and the ratio.
bench() {
  local name=$1 ours=$2 theirs=$3
  hyperfine -N --warmup 30 --runs "$runs" --export-json "$out/$name.json" "$ours" "$theirs" >/dev/null 2>"$out/$name.err"
  python3 - "$out/$name.json" "$name" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
ours, theirs = (x["median"] * 1000 for x in r)
print(f"{sys.argv[2]:<10} nsx {ours:7.2f} ms   baseline {theirs:7.2f} ms   ratio {ours / theirs:4.2f}   ({r[1]['command']})")
PY
  if grep -q "outliers" "$out/$name.err"; then
    echo "           (hyperfine saw statistical outliers: other work was running; compare medians only)"
  fi
}

# delta NAME WITH WITHOUT: the cost of one step, as the difference of two medians.
delta() {
  local name=$1 with=$2 without=$3
  hyperfine -N --warmup 10 --runs "$runs" --export-json "$out/$name.json" "$with" "$without" >/dev/null
  python3 - "$out/$name.json" "$name" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
w, wo = (x["median"] * 1000 for x in r)
print(f"{sys.argv[2]:<10} with {w:7.2f} ms   without {wo:7.2f} ms   the step costs {w - wo:7.2f} ms")
PY
}

echo "median wall time over $runs runs (hyperfine -N)"
bench pid "$nsx lesson pid --format json" "unshare --fork --pid --mount-proc true"
# Each namespace lesson beside unshare(1) with the same namespace flag. The lesson does
# more than unshare (three probes for pid, mount, ipc and user, two for uts, cgroupns
# and time, /proc read from both sides, JSON out), so the ratio is the price of the
# explanation. When only some lessons exist (branches), missing ones are skipped.
for pair in \
  "uts|unshare --uts true" \
  "mount|unshare --mount true" \
  "ipc|unshare --ipc true" \
  "user|unshare --user true" \
  "cgroupns|unshare --cgroup true" \
  "time|unshare --time --fork true"; do
  id=${pair%%|*}
  "$nsx" lesson "$id" --format json >/dev/null 2>&1 || { echo "$id: skipped (nsx lesson $id does not run here)"; continue; }
  bench "$id" "$nsx lesson $id --format json" "${pair#*|}"
done
# The net lesson's namespace steps against `unshare --net`; its veth step (a veth pair,
# addresses, two TCP round trips, deletion) as a figure of its own.
bench net "$nsx lesson net --no-veth --format json" "unshare --net true"
delta veth "$nsx lesson net --format json" "$nsx lesson net --no-veth --format json"
bench pod "$nsx lesson pod --format json" "unshare --net --ipc --uts true"

if [ -x /usr/bin/time ]; then
  peak=$(/usr/bin/time -f %M "$nsx" lesson pid --format json 2>&1 >/dev/null | tail -1)
  echo "peak memory of nsx lesson pid: ${peak} KiB (max RSS, /usr/bin/time)"
fi

# The quick tour: every lesson but the deliberately timed ones (cpu, cost), one process.
skip=$("$nsx" lessons --format json | python3 -c 'import json,sys; print(",".join(l["id"] for l in json.load(sys.stdin) if l["id"] in ("cpu","cost")))')
hyperfine -N --warmup 3 --runs "${TOUR_RUNS:-20}" --export-json "$out/tour.json" "$nsx tour --format json${skip:+ --skip $skip}" >/dev/null
python3 - "$out/tour.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"][0]
print(f"tour       nsx {r['median']*1000:7.1f} ms   (every lesson but cpu and cost; goal < 1000 ms)")
PY

# ---------------------------------------------------------------------------------------
# nsx run against OCI runtimes: the same busybox rootfs, the same namespaces (pid, mount,
# uts, ipc, net) and a 64M memory limit, running /bin/true.
#   runc: Debian's package, on this host as it is.
#   crun: refuses a hybrid cgroup host (v1 controllers plus a cgroup2 mount). It is
#         measured inside a private mount namespace (unshare -m) where the cgroup2 mount is
#         unmounted: only in that throwaway namespace, never on the host. nsx is measured
#         again in the same namespace so that the comparison is like for like.
need_pkg() { command -v "$1" >/dev/null || { echo "bench: installing $1" >&2; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1" >/dev/null; }; }
need_pkg runc
need_pkg jq
need_pkg crun || true
bundle=$out/bundle
mkdir -p "$bundle"
"$nsx" rootfs busybox "$bundle/rootfs" >/dev/null
(cd "$bundle" && runc spec)
jq '.process.args = ["/bin/true"]
  | .process.terminal = false
  | .root.readonly = false
  | .linux.namespaces = [{"type":"pid"},{"type":"mount"},{"type":"uts"},{"type":"ipc"},{"type":"network"}]
  | .linux.resources.memory = {"limit": 67108864}' "$bundle/config.json" >"$bundle/config.new"
mv "$bundle/config.new" "$bundle/config.json"
ours="$nsx run --pid --mount --uts --ipc --net --memory 64M --rootfs $bundle/rootfs -- /bin/true"
# Each command must succeed once before it is timed.
$ours
runc run -b "$bundle" nsx-bench-runc
echo
echo "nsx run vs OCI runtimes: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) (a shared machine: figures move with the load)"
bench run-runc "$ours" "runc run -b $bundle nsx-bench-runc"
if command -v crun >/dev/null; then
  # The whole measurement runs in the private mount namespace; the unified mount is
  # hidden there only.
  unshare --mount --propagation private env nsx="$nsx" bundle="$bundle" out="$out" runs="$runs" ours="$ours" bash -c '
    umount /sys/fs/cgroup/unified 2>/dev/null || true
    crun run -b "$bundle" nsx-bench-crun >/dev/null
    hyperfine -N --warmup 30 --runs "$runs" --export-json "$out/run-crun.json" "$ours" "crun run -b $bundle nsx-bench-crun" >/dev/null
  '
  python3 - "$out/run-crun.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
ours, theirs = (x["median"] * 1000 for x in r)
print(f"{'run-crun':<10} nsx {ours:7.2f} ms   baseline {theirs:7.2f} ms   ratio {ours / theirs:4.2f}   (crun run, in a private mount ns without the cgroup2 mount)")
PY
fi
echo "goal: nsx run <= 0.40 x runc and below crun (ratio < 1.00)"
