#!/usr/bin/env bash
# The chain demo: every step built so far, one primitive at a time, on the embedded busybox
# rootfs. No network needed. Run as root from anywhere: ./scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

cargo build --workspace --quiet
bin=target/debug
rootfs=${KEEL_ROOTFS:-/var/lib/keel/rootfs}

show() {
  printf '\n$'
  printf ' %q' "$@"
  printf '\n'
  "$@"
}

echo "== step 01: new UTS, IPC and network namespaces"
show $bin/step01-unshare run --hostname box -- sh -c 'echo "hostname inside: $(hostname)"; busybox ip link'
echo "hostname outside: $(hostname)"

echo
echo "== step 02: a PID namespace (ps still reads the host's /proc: step 03 fixes that)"
show $bin/step02-pid-ns run -- sh -c 'echo "my pid is $$"; echo "processes in /proc: $(ls /proc | grep -c "^[0-9]")"'
show $bin/step02-pid-ns run --init -- sh -c 'echo "under --init my pid is $$, my parent is $PPID"'

echo
echo "== step 03: a mount namespace and the busybox rootfs, entered with pivot_root"
show $bin/step03-mount-ns rootfs "$rootfs" --force
show $bin/step03-mount-ns run --rootfs "$rootfs" --hostname box --init -v /etc/hostname:/host-hostname:ro -- \
  sh -c 'ls /; ps -o pid,comm; cut -d" " -f5,9 /proc/self/mountinfo; cat /host-hostname'
echo
echo "Demo done. Read the book (mdbook serve book) for what each step does and why."
