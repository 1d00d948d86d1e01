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
  local status=0
  "$@" || status=$?
  [ "$status" -eq 0 ] || echo "(exit status $status)"
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
show $bin/step03-mount-ns run --rootfs "$rootfs" --hostname box --init -v /etc/hostname:/etc/hostname:ro -- \
  sh -c 'ls /; ps -o pid,comm; cut -d" " -f5,9 /proc/self/mountinfo; echo "/etc/hostname, bound read-only from the host: $(cat /etc/hostname)"'

echo
echo "== step 04: cgroups: limits the kernel enforces (an OOM kill is reported as such)"
show $bin/step04-cgroups run --rootfs "$rootfs" --memory 32m --pids-limit 20 --cpus 0.5 --stats -- \
  sh -c 'cat /proc/self/cgroup | head -3; ls /sys/fs/cgroup; echo "now allocating 64 MiB..."; dd if=/dev/zero of=/dev/null bs=64M count=1'

echo
echo "== step 05: overlay: the rootfs as a read-only layer, the container's writes in its own snapshot"
store=$(mktemp -d)
show $bin/step05-overlay run --root "$store" --layer "$rootfs" --name demo --keep -- \
  sh -c 'echo hello > /greeting; rm /etc/os-release; ls /'
show $bin/step05-overlay snapshot --root "$store" diff demo
show $bin/step05-overlay snapshot --root "$store" commit demo "$store/layer2"
show $bin/step05-overlay run --root "$store" --layer "$rootfs" --layer "$store/layer2" -- cat /greeting
show $bin/step05-overlay snapshot --root "$store" rm demo
rm -rf "$store"
echo "the read-only layer still has /etc/os-release: $(ls "$rootfs/etc/os-release")"

echo
echo "== step 06: images: the embedded busybox image, save/load, and a pull from a local registry"
images=$(mktemp -d)
registry_dir=$(mktemp -d)
show $bin/step06-images busybox --root "$images"
show $bin/step06-images images --root "$images"
show $bin/step06-images run --root "$images" busybox -- sh -c 'cat /etc/os-release; echo "running as $(id -u) in $(pwd)"'
show $bin/step06-images save --root "$images" busybox -o "$images/busybox.tar"
# A real registry on loopback (Debian's docker-registry), filled with skopeo from the saved
# OCI layout, then pulled back: the conversation `docker pull` has with Docker Hub.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$registry_dir/config.yml" <<YML
version: 0.1
log: {level: error}
storage: {filesystem: {rootdirectory: $registry_dir/data}}
http: {addr: 127.0.0.1:$port}
YML
docker-registry serve "$registry_dir/config.yml" >/dev/null 2>&1 &
registry_pid=$!
mkdir -p "$registry_dir/layout" && tar -C "$registry_dir/layout" -xf "$images/busybox.tar"
for _ in $(seq 50); do (echo > /dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
skopeo copy --quiet --insecure-policy --dest-tls-verify=false "oci:$registry_dir/layout:latest" "docker://127.0.0.1:$port/demo/busybox:1"
show $bin/step06-images pull --root "$images/pulled" --insecure-registry "127.0.0.1:$port" "127.0.0.1:$port/demo/busybox:1"
show $bin/step06-images run --root "$images/pulled" "127.0.0.1:$port/demo/busybox:1" -- echo "hello from a pulled image"
kill "$registry_pid"; wait "$registry_pid" 2>/dev/null || true
rm -rf "$images" "$registry_dir"

echo
echo "== step 07: the engine: the real docker CLI drives keel over the Docker Engine API"
engine_dir=$(mktemp -d)
# Its own bridge and subnet, removed at the end (an engine keeps its bridge, as docker0 stays).
$bin/step07-engine-api serve --socket "$engine_dir/keel.sock" --root "$engine_dir/root" \
  --runtime-root "$engine_dir/run" --bridge keeldemo0 --bridge-subnet 172.26.0.0/24 2>"$engine_dir/engine.log" &
engine_pid=$!
for _ in $(seq 100); do [ -S "$engine_dir/keel.sock" ] && break; sleep 0.1; done
export DOCKER_HOST="unix://$engine_dir/keel.sock"
show docker run --rm busybox sh -c 'echo "hello from keel, pid $$ in $(hostname)"'
show docker run -d --name demo busybox sh -c 'for i in 1 2 3; do echo tick $i; sleep 0.2; done; sleep 100'
sleep 1
show docker ps
show docker logs demo
show docker exec demo ps
show docker rm -f demo
unset DOCKER_HOST
kill "$engine_pid"; wait "$engine_pid" 2>/dev/null || true
ip link del keeldemo0 2>/dev/null || true
for chain in "filter KEEL-FORWARD" "filter KEEL-INPUT" "nat KEEL-POSTROUTING"; do
  set -- $chain
  iptables -w 5 -t "$1" -S "$2" 2>/dev/null | grep -w keeldemo0 | sed 's/^-A/-D/' |
    while read -r rule; do iptables -w 5 -t "$1" $rule; done
done
rm -rf "$engine_dir"

echo
echo "Demo done. Read the book (mdbook serve book) for what each step does and why."
