#!/usr/bin/env bash
# The kernel matrix: boots a Debian cgroup-v2 kernel in QEMU (scripts/vm) with a static
# nsx and runs every lesson inside with --format json. The reports land in OUT_DIR
# (default target/v2-matrix), with kernel.txt saying which kernel ran them;
# tests/nsx/matrix.rs checks them (ok, and the committed v2 snapshots) when
# NSX_V2_MATRIX names that directory (several, separated by ':'). .ci/run does both,
# for Debian 12's 6.1 and its 6.12 (bookworm-security), which has statmount(2).
#
# Usage: scripts/kernel-matrix.sh [OUT_DIR] [KERNEL_PACKAGE]
#   KERNEL_PACKAGE: the kernel's meta-package (default $NSX_VM_KERNEL, else
#   linux-image-amd64, 6.1); linux-image-6.12-amd64 for 6.12.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/v2-matrix}
if [[ -n ${2:-} ]]; then export NSX_VM_KERNEL=$2; fi
started=$(date +%s)

scripts/vm/fetch.sh >/dev/null
# A static binary: the VM has no libc. --target keeps the flag off build scripts.
RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --locked --quiet --target x86_64-unknown-linux-gnu
bin=target/x86_64-unknown-linux-gnu/release/nsx

script=$(mktemp)
trap 'rm -f "$script"' EXIT
cat >"$script" <<'VM'
set -u
uname -r >/out/kernel.txt
nsx lessons --format json >/out/lessons.json
nsx doctor --format json >/out/doctor.json 2>/dev/null || true
for id in $(sed -n 's/^ *"id": "\(.*\)",$/\1/p' /out/lessons.json); do
  start=$(cut -d' ' -f1 /proc/uptime)
  nsx lesson "$id" --format json --record "/out/$id.rec.json" >"/out/$id.json" 2>"/out/$id.err"
  echo $? >"/out/$id.rc"
  echo "$id: exit $(cat "/out/$id.rc"), from ${start}s to $(cut -d' ' -f1 /proc/uptime)s of uptime"
done
VM

rm -rf "$out" && mkdir -p "$out"
scripts/vm/run.sh --bin "$bin" --script "$script" --out "$out" --timeout 240
echo "kernel matrix: $(ls "$out"/*.rc | wc -l) lessons on kernel $(cat "$out/kernel.txt"), VM results in $out, $(($(date +%s) - started)) s in all"
