#!/usr/bin/env bash
# Records the runs the unit tests judge (src/lessons/fixture_tests.rs):
#   tests/fixtures/recordings/hybrid-root/<id>.json      as root on this hybrid host
#   tests/fixtures/recordings/hybrid-rootless/<id>.json  as uid 4242 (setpriv), where it runs
#   tests/fixtures/recordings/v2-root/<id>.json          as root on the v2 kernel (QEMU)
# Each is recorded inside a UTS namespace named "lab-host", so no fixture carries the
# recording machine's name. Usage: scripts/record-fixtures.sh [--no-vm] [ID...]
set -euo pipefail
cd "$(dirname "$0")/.."
vm=1
if [ "${1:-}" = "--no-vm" ]; then vm=0; shift; fi
[ "$(id -u)" -eq 0 ] || { echo "record-fixtures: run as root" >&2; exit 1; }
cargo build --quiet --locked
bin=$PWD/target/debug/nsx
ids=("$@")
[ ${#ids[@]} -gt 0 ] || mapfile -t ids < <("$bin" lessons --format json | sed -n 's/^ *"id": "\(.*\)",$/\1/p')
out=tests/fixtures/recordings
mkdir -p "$out/hybrid-root" "$out/hybrid-rootless" "$out/v2-root"
tmp=$(mktemp -d)
chmod 0755 "$tmp"
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/u" && chown 4242:4242 "$tmp/u"
for id in "${ids[@]}"; do
  rm -f "$out/hybrid-root/$id.json" "$out/hybrid-rootless/$id.json"
  unshare --uts sh -c "hostname lab-host && '$bin' lesson '$id' --format json --record '$out/hybrid-root/$id.json' >/dev/null"
  echo "recorded $id as root"
  rc=0
  unshare --uts sh -c "hostname lab-host && setpriv --reuid=4242 --regid=4242 --clear-groups '$bin' lesson '$id' --format json --record '$tmp/u/$id.json' >/dev/null" || rc=$?
  if [ $rc -eq 0 ]; then
    cp "$tmp/u/$id.json" "$out/hybrid-rootless/$id.json"
    echo "recorded $id rootless"
  elif [ $rc -eq 77 ]; then
    echo "$id does not run rootless here (exit 77): no rootless fixture"
  else
    echo "record-fixtures: $id rootless failed (exit $rc)" >&2
    exit 1
  fi
done
if [ $vm -eq 1 ]; then
  scripts/kernel-matrix.sh "$tmp/vm" >/dev/null
  for id in "${ids[@]}"; do
    if [ -s "$tmp/vm/$id.rec.json" ]; then
      cp "$tmp/vm/$id.rec.json" "$out/v2-root/$id.json"
      echo "recorded $id on the v2 kernel"
    else
      echo "record-fixtures: no v2 recording of $id" >&2
      exit 1
    fi
  done
fi
