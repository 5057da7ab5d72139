#!/usr/bin/env bash
# Boot the Debian kernel in QEMU (software emulation, cgroup v2 only), run one shell
# script inside as root, and bring back its stdout, exit status and /out.
#
# Usage: scripts/vm/run.sh [--bin PATH] --script FILE [options]
#   --bin PATH          static binary, installed as /bin/nsx in the VM
#   --script FILE       run with /bin/sh (busybox) inside the VM
#   --out DIR           files the script writes under /out come back to DIR
#   --timeout SECS      kill QEMU after SECS (default 300)
#   --file SRC:DST      also put host file SRC at DST in the VM (repeatable)
#   --module NAME       also load kernel module NAME and its dependencies (repeatable;
#                       overlay and veth are always loaded)
#   --cgroup PATH       cgroup the script runs in (default /system.slice/nsx-vm.service)
#   --kernel PKG        the kernel's meta-package (default: $NSX_VM_KERNEL, else
#                       linux-image-amd64, Debian 12's 6.1; linux-image-6.12-amd64: 6.12)
#   --console           copy the VM console to stderr live (default: shown on failure)
#   --console-log FILE  keep the whole console output in FILE
#
# stdout: exactly the script's stdout. Exit status: the script's, or 124 when the
# timeout hit, 125 when the VM failed (no result came back), 2 for a usage error.
# Environment: NSX_VM_CACHE, NSX_VM_KERNEL (see fetch.sh); NSX_VM_APPEND: extra kernel
# arguments; NSX_VM_QEMU_ARGS: extra QEMU arguments (split on spaces).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${NSX_VM_CACHE:-$repo/.cache/vm}

usage() { sed -n '/^# Usage:/,/^set -euo/{/^#/s/^# \{0,1\}//p;}' "$0"; }
err() { printf 'run.sh: error: %s\n' "$*" >&2; }
die() { err "$*"; exit 125; }

bin="" script="" out="" timeout=300 cgroup=/system.slice/nsx-vm.service
console=0 console_log=""
modules=(overlay veth)
files=()
while [[ $# -gt 0 ]]; do
  case $1 in
  --bin) bin=${2:?--bin needs a path}; shift 2 ;;
  --script) script=${2:?--script needs a file}; shift 2 ;;
  --out) out=${2:?--out needs a directory}; shift 2 ;;
  --timeout) timeout=${2:?--timeout needs seconds}; shift 2 ;;
  --file) files+=("${2:?--file needs SRC:DST}"); shift 2 ;;
  --module) modules+=("${2:?--module needs a name}"); shift 2 ;;
  --cgroup) cgroup=${2:?--cgroup needs a path}; shift 2 ;;
  --kernel) export NSX_VM_KERNEL=${2:?--kernel needs a package name}; shift 2 ;;
  --console) console=1; shift ;;
  --console-log) console_log=${2:?--console-log needs a file}; shift 2 ;;
  -h | --help) usage; exit 0 ;;
  *) err "unknown argument: $1"; usage >&2; exit 2 ;;
  esac
done
[[ -n $script ]] || { err "--script is required"; usage >&2; exit 2; }
[[ -f $script ]] || { err "no such script: $script"; exit 2; }
[[ $timeout =~ ^[0-9]+$ && $timeout -gt 0 ]] || { err "--timeout wants whole seconds, got '$timeout'"; exit 2; }
[[ $cgroup == /* && $cgroup != */ || $cgroup == / ]] || { err "--cgroup wants an absolute path like /system.slice/x.service"; exit 2; }
if [[ -n $bin ]]; then
  [[ -f $bin && -x $bin ]] || { err "no such executable: $bin"; exit 2; }
  # The VM has no libc: the binary must not need a dynamic loader.
  ldd_out=$(ldd "$bin" 2>&1 || true)
  if [[ $ldd_out == *"=>"* ]]; then
    err "$bin is dynamically linked; build it static, e.g."
    err "  RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --target x86_64-unknown-linux-gnu"
    exit 2
  fi
fi

"$here/fetch.sh"
kmeta=${NSX_VM_KERNEL:-linux-image-amd64}
if [[ $kmeta == linux-image-amd64 ]]; then stamp=$cache/ready.env; else stamp=$cache/ready-$kmeta.env; fi
# shellcheck source=/dev/null
source "$stamp"
kver=$NSX_VM_KVER
root=$cache/root
busybox=$root/bin/busybox
moddir=$root/lib/modules/$kver

work=$(mktemp -d "${TMPDIR:-/tmp}/nsx-vm.XXXXXX")
qpid="" tpid=""
cleanup() {
  # Only the processes this script started, by PID.
  if [[ -n $qpid ]]; then kill "$qpid" 2>/dev/null || true; fi
  if [[ -n $tpid ]]; then kill "$tpid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

t0=$(date +%s%N)
ms_since() { echo $((($(date +%s%N) - $1) / 1000000)); }

# --- initramfs -------------------------------------------------------------
# Two newc archives, concatenated (the kernel unpacks one after the other): busybox
# with its applet links, built once and kept in the cache, and this run's files.
# Uncompressed: building and unpacking it is faster than compressing it.
base=$cache/initramfs/busybox-base.cpio
if [[ ! -f $base || $busybox -nt $base ]]; then
  mkdir -p "$cache/initramfs"
  b=$work/base
  mkdir -p "$b"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,run,root,out,etc,nsx-vm}
  cp "$busybox" "$b/bin/busybox"
  # Absolute links to /bin/busybox: the applets keep working inside a chroot or a
  # new root that bind-mounts or copies /bin/busybox.
  while IFS= read -r applet; do
    [[ -e $b/$applet || -L $b/$applet ]] || ln -s /bin/busybox "$b/$applet"
  done < <("$busybox" --list-full)
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$b/etc/passwd"
  printf 'root:x:0:\ntty:x:5:\nnogroup:x:65534:\n' >"$b/etc/group"
  (cd "$b" && find . -mindepth 1 | LC_ALL=C sort | "$busybox" cpio -o -H newc -R 0:0 >"$base.tmp" 2>/dev/null)
  mv "$base.tmp" "$base"
fi

s=$work/stage
mkdir -p "$s/nsx-vm" "$s/bin" "$s/lib/modules/$kver"
install -m 0755 "$here/init" "$s/init"
install -m 0644 "$script" "$s/nsx-vm/script"
[[ -n $bin ]] && install -m 0755 "$bin" "$s/bin/nsx"
for spec in "${files[@]}"; do
  src=${spec%%:*} dst=${spec#*:}
  [[ -f $src && $spec == *:/* ]] || die "--file wants SRC:/abs/DST with an existing SRC, got '$spec'"
  mkdir -p "$s$(dirname "$dst")"
  cp -p "$src" "$s$dst"
done

# Kernel modules with their dependencies, dependencies first, decompressed so that
# busybox insmod can load them. The .deb ships no modules.dep (depmod makes it at
# install time): each module's own .modinfo names what it depends on.
# Module name -> file, listed once per kernel (names use _ where files may use -).
modidx=$cache/initramfs/modules-$kver.idx
if [[ ! -f $modidx ]]; then
  (cd "$moddir" && find kernel -name '*.ko*') |
    awk '{ n = $0; sub(/.*\//, "", n); sub(/\.ko.*/, "", n); gsub(/-/, "_", n); print n "\t" $0 }' >"$modidx.tmp"
  mv "$modidx.tmp" "$modidx"
fi
declare -A mod_seen=()
mod_order=()
add_module() {
  local name=${1//-/_} f dest deps d
  [[ -z ${mod_seen[$name]:-} ]] || return 0
  mod_seen[$name]=1
  f=$(awk -F'\t' -v n="$name" '$1 == n { print $2; exit }' "$modidx")
  if [[ -z $f ]]; then
    grep -q "/${name}.ko\$" "$moddir/modules.builtin" 2>/dev/null && return 0 # built in
    die "kernel $kver has no module $1"
  fi
  dest=$s/lib/modules/$kver/$name.ko
  f=$moddir/$f
  case $f in
  *.ko) cp "$f" "$dest" ;;
  *.ko.xz) "$busybox" xz -dc "$f" >"$dest" ;;
  *.ko.gz) "$busybox" gzip -dc "$f" >"$dest" ;;
  *.ko.zst) zstd -q -dc "$f" >"$dest" || die "cannot decompress $f (needs zstd)" ;;
  *) die "unknown module format: $f" ;;
  esac
  deps=$(tr '\0' '\n' <"$dest" | sed -n 's/^depends=//p')
  deps=${deps%%$'\n'*}
  for d in ${deps//,/ }; do add_module "$d"; done
  mod_order+=("$name")
}
for m in "${modules[@]}"; do add_module "$m"; done
printf '%s\n' "${mod_order[@]}" >"$s/nsx-vm/modules"
# modules.dep and modules.alias for these modules, so that modprobe and the kernel's
# own on-demand loading (e.g. "fs-overlay", "rtnl-link-veth") find them too.
"$busybox" depmod -b "$s" "$kver" || die "busybox depmod failed"

nonce=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
cat >"$s/nsx-vm/config" <<EOF
NSX_VM_NONCE=$nonce
NSX_VM_HOSTNAME=nsx-vm
NSX_VM_CONTROLLERS="cpu memory pids"
NSX_VM_CGROUP=$cgroup
EOF

initrd=$work/initrd.cpio
(cd "$s" && find . -mindepth 1 | LC_ALL=C sort | "$busybox" cpio -o -H newc -R 0:0 >"$work/run.cpio" 2>/dev/null)
cat "$base" "$work/run.cpio" >"$initrd"
build_ms=$(ms_since "$t0")

# --- boot ------------------------------------------------------------------
# ttyS0: the console (kernel, init, the script's stdout copy and stderr).
# ttyS1: the data port; only init's framed result lines are written to it.
: >"$work/console.log"
: >"$work/data.log"
# loglevel=4: panics, oopses, OOM kills and other errors reach the console (they
# cannot disturb the results, which travel on ttyS1); quiet drops the rest.
# cgroup v2 only: systemd.unified_cgroup_hierarchy=1 cgroup_no_v1=all.
# Faster under TCG, no effect on what nsx tests: tsc=reliable no_timer_check (skip
# clocksource checks that cost about a second when bringing up the second CPU),
# cryptomgr.notests and initcall_blacklist=crypto_kdf108_init (skip about 1.5 s of
# crypto self-tests).
cmdline="console=ttyS0 panic=-1 quiet loglevel=4 systemd.unified_cgroup_hierarchy=1 cgroup_no_v1=all"
cmdline+=" tsc=reliable no_timer_check cryptomgr.notests initcall_blacklist=crypto_kdf108_init"
cmdline+="${NSX_VM_APPEND:+ $NSX_VM_APPEND}"
read -ra extra_qemu <<<"${NSX_VM_QEMU_ARGS:-}"
t1=$(date +%s%N)
# From the unpacked tree: libraries by LD_LIBRARY_PATH, the TCG accelerator module by
# QEMU_MODULE_DIR, firmware (SeaBIOS, linuxboot option ROMs) by -L.
LD_LIBRARY_PATH=$(find "$root/usr/lib/x86_64-linux-gnu" "$root/lib/x86_64-linux-gnu" -maxdepth 0 -type d 2>/dev/null | paste -sd:) \
  QEMU_MODULE_DIR=$root/usr/lib/x86_64-linux-gnu/qemu \
  timeout --kill-after=5 "$timeout" "$root/usr/bin/qemu-system-x86_64" \
  -L "$root/usr/share/seabios" -L "$root/usr/share/qemu" \
  -accel tcg -m 1024 -smp 2 -nographic -no-reboot \
  -monitor none -parallel none -nic none \
  -chardev "file,id=con,path=$work/console.log" -serial chardev:con \
  -chardev "file,id=data,path=$work/data.log" -serial chardev:data \
  -kernel "$cache/$NSX_VM_KIMAGE" -initrd "$initrd" -append "$cmdline" \
  "${extra_qemu[@]}" \
  </dev/null >"$work/qemu.log" 2>&1 &
qpid=$!
if [[ $console == 1 ]]; then
  tail -n +1 -f --pid="$qpid" "$work/console.log" >&2 &
  tpid=$!
fi
qrc=0
wait "$qpid" || qrc=$?
qpid=""
if [[ -n $tpid ]]; then wait "$tpid" || true; tpid=""; fi
boot_ms=$(ms_since "$t1")
[[ -n $console_log ]] && cp "$work/console.log" "$console_log"

show_console() {
  err "last console lines:"
  # Drop carriage returns and the firmware's terminal escapes.
  tail -n 40 "$work/console.log" | tr -d '\r' | sed 's/\x1b\[[0-9;?]*[A-Za-z]//g; s/\x1bc//g; s/^/  | /' >&2
  if [[ -s $work/qemu.log ]]; then
    err "qemu said:"
    sed 's/^/  | /' "$work/qemu.log" >&2
  fi
}

# --- results ---------------------------------------------------------------
tr -d '\r' <"$work/data.log" | awk -v n="$nonce" -v d="$work" '
  $1 == "NSXVM" && $2 == n {
    sec = $3
    if (sec == "rc") print $4 > (d "/rc")
    else if (sec == "end") print "end" > (d "/end")
    else if (sec == "booted") print $4 > (d "/booted")
    else if (sec == "error") { sub(/^NSXVM [^ ]+ error /, ""); print > (d "/error") }
    next
  }
  sec == "stdout" { print > (d "/stdout.b64") }
  sec == "out" { print > (d "/out.b64") }
'
if [[ $qrc == 124 || $qrc == 137 ]]; then
  err "timeout: the VM did not power off within ${timeout}s (killed)"
  show_console
  exit 124
fi
if [[ -f $work/error ]]; then
  err "VM setup failed: $(<"$work/error")"
  show_console
  exit 125
fi
if [[ ! -f $work/booted ]]; then
  err "the VM stopped before init ran (qemu exit $qrc): kernel or initramfs problem"
  show_console
  exit 125
fi
if [[ ! -f $work/end || ! -f $work/rc ]]; then
  err "the VM stopped without sending a complete result (qemu exit $qrc)"
  show_console
  exit 125
fi
if [[ -f $work/stdout.b64 ]]; then
  base64 -d "$work/stdout.b64" | gzip -dc || die "the script's stdout came back corrupted"
fi
if [[ -n $out ]]; then
  mkdir -p "$out"
  if [[ -f $work/out.b64 ]]; then
    base64 -d "$work/out.b64" | tar -xz -C "$out" --no-same-owner || die "/out came back corrupted"
  fi
fi
rc=$(<"$work/rc")
printf 'run.sh: kernel %s, initramfs %s built in %d ms, boot to power-off %d ms, script exit %s\n' \
  "$kver" "$(du -h "$initrd" | cut -f1)" "$build_ms" "$boot_ms" "$rc" >&2
exit "$rc"
