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

# An unprivileged user (busybox su as root asks no password; setpriv here has no
# --reuid). `exec` all the way: nsx keeps the PID the shell wrote into cgroup.procs.
echo 'student:x:1000:1000:student:/tmp:/bin/sh' >>/etc/passwd
as_student() { su -s /bin/sh student -c "exec $*"; }
CG=/sys/fs/cgroup

# 1. The tour as that user in the root cgroup: it runs to the end and lists every
# lesson, the cgroup ones skipped with the reason.
start=$(cut -d' ' -f1 /proc/uptime)
sh -c 'echo $$ >/sys/fs/cgroup/cgroup.procs && exec su -s /bin/sh student -c "exec nsx tour --format json"' \
  >/out/user-tour.json 2>/out/user-tour.err
echo $? >/out/user-tour.rc
echo "user tour: exit $(cat /out/user-tour.rc), from ${start}s to $(cut -d' ' -f1 /proc/uptime)s"

# 2. A cgroup root made for uid 1000 and delegated to it (the directory and the files
# cgroup v2 delegation hands over: cgroup.procs, cgroup.subtree_control,
# cgroup.threads), nsx started in it alone: it moves itself into a leaf and the limits
# run without root. One such cgroup per run: once nsx has switched controllers on in
# it, no process may join it again (cgroup v2's "no internal processes").
delegate() {
  mkdir "$CG/$1" && chown 1000:1000 "$CG/$1" "$CG/$1/cgroup.procs" "$CG/$1/cgroup.subtree_control" "$CG/$1/cgroup.threads"
}
for id in memory cpu pids; do
  delegate "delegated-$id"
  sh -c 'echo $$ >"$1/cgroup.procs" && exec su -s /bin/sh student -c "exec nsx lesson $2 --format json"' \
    sh "$CG/delegated-$id" "$id" >"/out/delegated-$id.json" 2>"/out/delegated-$id.err"
  echo $? >"/out/delegated-$id.rc"
  echo "delegated $id: exit $(cat "/out/delegated-$id.rc")"
done
delegate delegated-run
sh -c 'echo $$ >"$1/cgroup.procs" && exec su -s /bin/sh student -c "exec nsx run --user --pid --mount --memory 32M -- cat /proc/self/cgroup"' \
  sh "$CG/delegated-run" >/out/delegated-run.out 2>/out/delegated-run.err
echo $? >/out/delegated-run.rc
echo "delegated nsx run --memory: exit $(cat /out/delegated-run.rc)"

# 3. A read-only cgroup file system (a bind remount in a mount namespace of its own,
# as a container has it): every cgroup lesson exits 77 with the reason, in JSON too.
for id in memory cpu pids cgroupns; do
  unshare -m sh -c 'mount -o remount,bind,ro /sys/fs/cgroup && exec nsx lesson "$1" --format json' \
    sh "$id" >"/out/ro-$id.json" 2>"/out/ro-$id.err"
  echo $? >"/out/ro-$id.rc"
  echo "read-only cgroupfs, $id: exit $(cat "/out/ro-$id.rc")"
done
VM

rm -rf "$out" && mkdir -p "$out"
scripts/vm/run.sh --bin "$bin" --script "$script" --out "$out" --timeout 240
echo "kernel matrix: $(ls "$out"/*.rc | wc -l) runs on kernel $(cat "$out/kernel.txt"), VM results in $out, $(($(date +%s) - started)) s in all"
