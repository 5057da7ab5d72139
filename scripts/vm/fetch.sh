#!/usr/bin/env bash
# Fetch everything the cgroup v2 VM harness needs from the Debian archive into a
# cache, without installing anything on this machine:
#
#   - the Debian kernel (linux-image-amd64 resolved to its versioned package),
#   - qemu-system-x86 with its TCG accelerator module (qemu-system-common), its
#     firmware (seabios, qemu-system-data) and the shared libraries it needs that
#     this machine does not already have,
#   - busybox-static (the VM's userland).
#
# Each package is fetched with `apt-get download` and unpacked with `dpkg -x` into
# one tree, $CACHE/root. Nothing is installed or removed: `apt-get install` would
# pull qemu-system-common, which would remove the preinstalled qemu-utils.
#
# Idempotent: a package already unpacked is not fetched again, and once everything is
# in place a stamp file makes later runs return at once (no apt calls at all).
#
# Usage: scripts/vm/fetch.sh [--refresh]
#   --refresh   forget the stamp: resolve the kernel again (a newer linux-image-amd64
#               is fetched beside the old one) and re-check every package
# Environment: NSX_VM_CACHE (default: <repo>/.cache/vm); NSX_VM_KERNEL, the kernel's
#   meta-package (default linux-image-amd64, Debian 12's 6.1; linux-image-6.12-amd64 is
#   the 6.12 kernel of bookworm-security). Each kernel has its own stamp: ready.env for
#   the default, ready-<meta-package>.env for another; kernels share the tree.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${NSX_VM_CACHE:-$repo/.cache/vm}
kmeta=${NSX_VM_KERNEL:-linux-image-amd64}
[[ $kmeta =~ ^linux-image-[a-z0-9.+-]+$ ]] || { printf 'fetch: error: NSX_VM_KERNEL=%s is not a linux-image package name\n' "$kmeta" >&2; exit 2; }
if [[ $kmeta == linux-image-amd64 ]]; then stamp=$cache/ready.env; else stamp=$cache/ready-$kmeta.env; fi

# Shared libraries qemu-system-x86_64 needs that a stock Debian 12 development
# machine lacks, found by unpacking qemu and reading `ldd` until nothing was "not
# found". If a machine lacks more, the ldd check below derives the missing packages
# from the sonames (Debian policy 8.1) and fetches those too.
qemu_libs=(
  libcapstone4 libfdt1 libslirp0 libvdeplug2
  libpmem1 libndctl6 libdaxctl1
  librdmacm1 libibverbs1 libnl-route-3-200
)

log() { printf 'fetch: %s\n' "$*" >&2; }
die() { printf 'fetch: error: %s\n' "$*" >&2; exit 1; }

# Paths into the unpacked tree, shared with run.sh (which sources this file's stamp).
qemu_bin=$cache/root/usr/bin/qemu-system-x86_64
busybox_bin=$cache/root/bin/busybox
# QEMU loads TCG as a module; run.sh points QEMU_MODULE_DIR at its directory.
tcg_module=$cache/root/usr/lib/x86_64-linux-gnu/qemu/accel-tcg-x86_64.so

lib_path() {
  local d out=""
  for d in "$cache/root/usr/lib/x86_64-linux-gnu" "$cache/root/lib/x86_64-linux-gnu"; do
    [[ -d $d ]] && out=${out:+$out:}$d
  done
  printf '%s' "$out"
}

# Fast path: everything was fetched before and is still there.
if [[ ${1:-} != --refresh && -f $stamp ]]; then
  # shellcheck source=/dev/null
  source "$stamp"
  if [[ -x $qemu_bin && -f $tcg_module && -x $busybox_bin && -f $cache/${NSX_VM_KIMAGE:-none} ]]; then
    log "cached in $cache: kernel $NSX_VM_KVER, $(<"$cache/packages.txt" wc -l) packages (nothing fetched)"
    exit 0
  fi
  log "stamp present but the tree is incomplete; fetching again"
fi
[[ $# -eq 0 || $1 == --refresh ]] || die "usage: $0 [--refresh]"

command -v apt-get >/dev/null || die "apt-get not found: this harness needs a Debian-based host"
command -v dpkg >/dev/null || die "dpkg not found: this harness needs a Debian-based host"
mkdir -p "$cache/debs" "$cache/root" "$cache/unpacked" "$cache/empty"
rm -f "$stamp"

# Resolve the kernel meta-package to the real versioned package. `apt-cache depends`
# answers for the candidate version. Empty package lists (no `apt-get update` yet on
# a fresh machine) make it fail: update once and retry.
resolve_kernel() {
  apt-cache depends "$kmeta" 2>/dev/null |
    awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9].*-amd64$/ { print $2; exit }'
}
kpkg=$(resolve_kernel || true)
if [[ -z $kpkg ]]; then
  log "$kmeta unknown to apt; running apt-get update"
  apt-get update -qq >/dev/null || die "apt-get update failed"
  kpkg=$(resolve_kernel || true)
  [[ -n $kpkg ]] || die "cannot resolve $kmeta to a versioned kernel package"
fi
kver=${kpkg#linux-image-}

# Download and unpack packages unless that exact .deb was unpacked before (a new
# candidate version, e.g. after --refresh, is fetched and unpacked over the tree).
# Every apt-get call costs about a second here (it loads the package lists), so
# each step is one call for all packages.
fetched=0
fetch_pkgs() {
  local -A deb_of=() size_of=()
  local line url deb size pkg
  local -a need=()
  # --print-uris names each candidate's file and size without downloading; run it in
  # an empty directory (it prints nothing for a file already in the current one).
  while read -r url deb size _; do
    [[ -n $url ]] || continue
    deb_of[${deb%%_*}]=$deb
    size_of[${deb%%_*}]=$size
  done < <(cd "$cache/empty" && apt-get download --print-uris "$@")
  for pkg in "$@"; do
    [[ -n ${deb_of[$pkg]:-} ]] || die "apt cannot download package $pkg"
    deb=${deb_of[$pkg]}
    # A truncated file from an interrupted run is dropped and fetched again.
    if [[ -f $cache/debs/$deb && $(stat -c %s "$cache/debs/$deb") != "${size_of[$pkg]}" ]]; then
      rm -f "$cache/debs/$deb"
    fi
    [[ -f $cache/debs/$deb ]] || need+=("$pkg")
  done
  if [[ ${#need[@]} -gt 0 ]]; then
    # APT::Sandbox::User=root: the download directory need not be readable by _apt.
    (cd "$cache/debs" && apt-get download -q -o APT::Sandbox::User=root "${need[@]}" >/dev/null) ||
      die "apt-get download ${need[*]} failed"
  fi
  for pkg in "$@"; do
    deb=${deb_of[$pkg]}
    [[ -f $cache/debs/$deb ]] || die "apt-get download $pkg did not leave $deb in $cache/debs"
    if [[ -f $cache/unpacked/$pkg && $(<"$cache/unpacked/$pkg") == "$deb" ]]; then
      log "cached  $deb"
      continue
    fi
    dpkg -x "$cache/debs/$deb" "$cache/root"
    printf '%s\n' "$deb" >"$cache/unpacked/$pkg"
    log "fetched $deb ($(du -h "$cache/debs/$deb" | cut -f1))"
    fetched=$((fetched + 1))
  done
}

fetch_pkgs busybox-static qemu-system-x86 qemu-system-common qemu-system-data seabios "$kpkg" "${qemu_libs[@]}"

# soname -> Debian package name, per policy 8.1: libfoo.so.1 -> libfoo1,
# libfoo-3.so.200 -> libfoo-3-200 (a hyphen when the name ends in a digit).
soname_pkg() {
  local so=$1 base ver
  base=${so%%.so.*}
  ver=${so#*.so.}
  base=$(printf '%s' "$base" | tr '[:upper:]_' '[:lower:]-')
  if [[ $base =~ [0-9]$ ]]; then printf '%s-%s\n' "$base" "$ver"; else printf '%s%s\n' "$base" "$ver"; fi
}

# Check that qemu and its TCG module find every library, fetching what this
# machine lacks.
missing_libs() {
  LD_LIBRARY_PATH=$(lib_path) ldd "$qemu_bin" "$tcg_module" | awk '/=> not found/ { print $1 }' | sort -u
}
for _ in 1 2 3 4; do
  mapfile -t missing < <(missing_libs)
  [[ ${#missing[@]} -eq 0 ]] && break
  guessed=()
  for so in "${missing[@]}"; do
    guessed+=("$(soname_pkg "$so")")
    log "qemu needs $so: trying package ${guessed[-1]} (named after the soname; if that is wrong, add the right package to qemu_libs in $0)"
  done
  fetch_pkgs "${guessed[@]}"
done
mapfile -t missing < <(missing_libs)
[[ ${#missing[@]} -eq 0 ]] || die "qemu still misses: ${missing[*]}"

LD_LIBRARY_PATH=$(lib_path) "$qemu_bin" --version | head -n1 | sed 's/^/fetch: /' >&2 ||
  die "$qemu_bin does not run"
[[ -f $cache/root/boot/vmlinuz-$kver ]] || die "kernel image vmlinuz-$kver missing after unpacking $kpkg"
[[ -d $cache/root/lib/modules/$kver ]] || die "modules for $kver missing after unpacking $kpkg"

# Under TCG the kernel's own decompression of vmlinuz costs seconds at every boot.
# Decompress it once here instead: the result is an ELF vmlinux with a PVH entry note
# (CONFIG_PVH), which QEMU boots directly. Falls back to vmlinuz.
#
# The compressed kernel is found through the x86 boot protocol header
# (Documentation/arch/x86/boot.rst), not by searching for magic bytes (a search found
# zstd-looking bytes where the 6.12 image has none of its own): setup_sects at 0x1f1,
# payload_offset and payload_length at 0x248, the payload starting after the
# (setup_sects + 1) * 512 bytes of real-mode setup. Its last 4 bytes are the
# uncompressed size, which the result must have. Debian 12's 6.1 is xz, 6.12 zstd.
vmlinux_from() {
  local img=$1 dest=$2 setup po pl off size magic
  setup=$(od -An -tu1 -j $((0x1f1)) -N1 "$img" | tr -d ' ')
  read -r po pl < <(od -An -tu4 -j $((0x248)) -N8 "$img")
  [[ -n $setup && -n $po && -n $pl && $pl -gt 4 ]] || return 1
  off=$(((setup + 1) * 512 + po))
  size=$(od -An -tu4 -j $((off + pl - 4)) -N4 "$img" | tr -d ' ')
  magic=$(od -An -tx1 -j "$off" -N4 "$img" | tr -d ' ')
  # The trailing size makes zstd and gzip complain after the last byte: the size check
  # below decides.
  case $magic in
  fd377a58) tail -c +$((off + 1)) "$img" | head -c "$pl" | "$xz" -dcq --single-stream >"$dest.tmp" 2>/dev/null || true ;;
  28b52ffd) tail -c +$((off + 1)) "$img" | head -c "$pl" | "$zstd" -dcq >"$dest.tmp" 2>/dev/null || true ;;
  1f8b08*) tail -c +$((off + 1)) "$img" | head -c "$pl" | gzip -dcq >"$dest.tmp" 2>/dev/null || true ;;
  *) return 1 ;;
  esac
  if [[ $(head -c 4 "$dest.tmp" 2>/dev/null | od -An -tx1 | tr -d ' ') == 7f454c46 &&
    $(stat -c %s "$dest.tmp") == "$size" ]]; then
    mv "$dest.tmp" "$dest"
    return 0
  fi
  rm -f "$dest.tmp"
  return 1
}
# Debian kernels are xz-compressed (with a BCJ filter busybox's xz cannot undo):
# use the host's xz, or xz-utils from the archive where the host has none.
xz=$(command -v xz || true)
if [[ -z $xz ]]; then
  fetch_pkgs xz-utils
  xz=$cache/root/usr/bin/xz
fi
# Debian 12's 6.12 kernel (bookworm-security) is zstd-compressed.
zstd=$(command -v zstd || true)
if [[ -z $zstd ]]; then
  fetch_pkgs zstd
  zstd=$cache/root/usr/bin/zstd
fi
kimage=boot/vmlinuz-$kver
if [[ -f $cache/vmlinux-$kver ]] || vmlinux_from "$cache/root/boot/vmlinuz-$kver" "$cache/vmlinux-$kver"; then
  kimage=vmlinux-$kver
  log "kernel image: $kimage (uncompressed, PVH boot)"
else
  log "warning: could not decompress vmlinuz-$kver; booting it as is (slower under TCG)"
fi

(cd "$cache/unpacked" && ls) >"$cache/packages.txt"
printf 'NSX_VM_KVER=%q\nNSX_VM_KIMAGE=%q\n' "$kver" "$kimage" >"$stamp.tmp"
mv "$stamp.tmp" "$stamp"
log "ready in $cache: kernel $kver, $fetched package(s) fetched now"
