#!/usr/bin/env bash
# Check the VM harness itself with one boot (no nsx binary needed): the machine is
# cgroup v2 only with the controllers enabled, the modules are loaded, the script's
# stdout comes back byte for byte, its exit status passes through, /out comes back.
#
# Usage: scripts/vm/selftest.sh
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/nsx-vm-selftest.XXXXXX")
trap 'rm -rf "$work"' EXIT

cat >"$work/script.sh" <<'EOF'
check() { if eval "$2"; then echo "ok $1"; else echo "FAIL $1"; fi; }
check cgroup2-only '[ "$(grep -c cgroup /proc/mounts)" = 1 ] && grep -q "^cgroup2 /sys/fs/cgroup cgroup2 " /proc/mounts'
check no-v1-hierarchy '[ -z "$(awk "NR > 1 && \$2 != 0" /proc/cgroups)" ]'
check root-controllers '[ "$(cat /sys/fs/cgroup/cgroup.subtree_control)" = "cpu memory pids" ]'
check script-cgroup '[ "$(cat /proc/self/cgroup)" = "0::/system.slice/nsx-vm.service" ]'
check init-scope 'grep -qx 1 /sys/fs/cgroup/init.scope/cgroup.procs'
check hostname '[ "$(hostname)" = nsx-vm ]'
check modules 'grep -q "^overlay " /proc/modules && grep -q "^veth " /proc/modules'
check overlay-fs 'grep -qw overlay /proc/filesystems'
check lo-up 'ip link show lo | grep -q "UP"'
check two-cpus '[ "$(nproc)" = 2 ]'
check nsx-installed '[ -x /bin/nsx ]'
mkdir -p /out/dir && printf 'x\ny\n' >/out/dir/file.txt
dd if=/dev/urandom of=/out/random.bin bs=1k count=64 2>/dev/null
sha256sum /out/random.bin | cut -d' ' -f1 >/out/random.sha256
printf 'raw:\r\n\001\377 no newline at the end'
exit 7
EOF

# Any static binary will do as /bin/nsx: the cache's busybox is one.
"$here/fetch.sh" 2>/dev/null
cache=${NSX_VM_CACHE:-$(cd "$here/../.." && pwd)/.cache/vm}

rc=0
"$here/run.sh" --bin "$cache/root/bin/busybox" --script "$work/script.sh" --out "$work/out" \
  --timeout 120 >"$work/stdout" || rc=$?

pass=0 fail=0
result() {
  if [[ $2 == ok ]]; then pass=$((pass + 1)); echo "ok   $1"; else fail=$((fail + 1)); echo "FAIL $1"; fi
}
while read -r status name; do
  result "$name" "$([[ $status == ok ]] && echo ok || echo fail)"
done < <(grep -aE '^(ok|FAIL) ' "$work/stdout")
result exit-status-passes "$([[ $rc == 7 ]] && echo ok || echo fail)"
result stdout-exact "$([[ $(tail -n 2 "$work/stdout" | od -An -tx1 | tr -d ' \n') == \
  "7261773a0d0a01ff206e6f206e65776c696e652061742074686520656e64" ]] && echo ok || echo fail)"
result out-file "$([[ $(cat "$work/out/dir/file.txt" 2>/dev/null) == $'x\ny' ]] && echo ok || echo fail)"
result out-binary "$([[ -f $work/out/random.bin &&
  $(sha256sum "$work/out/random.bin" | cut -d' ' -f1) == $(cat "$work/out/random.sha256") ]] && echo ok || echo fail)"
echo "$pass passed, $fail failed"
[[ $fail == 0 ]]
