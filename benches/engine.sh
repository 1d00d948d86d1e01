#!/usr/bin/env bash
# Benchmark: `docker run --rm busybox true` through the same docker CLI against keel's engine
# and against a real dockerd (Debian's docker.io, with its own data root and socket, started
# here), interleaved by hyperfine in one run; then the engine's idle RSS and one container's
# monitor RSS. Run as root:
#   ./benches/engine.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
command -v hyperfine >/dev/null || apt-get install -y -qq hyperfine >/dev/null
command -v dockerd >/dev/null || apt-get install -y -qq docker.io >/dev/null
runs=${1:-30}
many=${2:-100}   # containers started at once, then listed

cargo build --release --quiet --workspace
work=$(mktemp -d /var/tmp/keel-bench-engine-XXXX)
keel_pid= dockerd_pid=
cleanup() {
  for sock in keel docker; do
    ids=$(DOCKER_HOST=unix://$work/$sock.sock docker ps -aq 2>/dev/null || true)
    [ -n "$ids" ] && DOCKER_HOST=unix://$work/$sock.sock docker rm -f $ids >/dev/null 2>&1 || true
  done
  [ -n "$keel_pid" ] && kill "$keel_pid" 2>/dev/null && wait "$keel_pid" 2>/dev/null
  [ -n "$dockerd_pid" ] && kill "$dockerd_pid" 2>/dev/null && wait "$dockerd_pid" 2>/dev/null
  umount -R "$work/docker" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

target/release/step07-engine-api serve --socket "$work/keel.sock" --root "$work/keel" \
  --runtime-root "$work/keel-run" 2>"$work/keel.log" &
keel_pid=$!
# dockerd with everything of its own and no networking changes to the host.
dockerd --data-root "$work/docker" --exec-root "$work/docker-exec" --pidfile "$work/dockerd.pid" \
  --host "unix://$work/docker.sock" --bridge none --iptables=false --ip-masq=false \
  --containerd-namespace keel-bench --containerd-plugins-namespace keel-bench-plugins \
  >"$work/dockerd.log" 2>&1 &
dockerd_pid=$!
for _ in $(seq 300); do
  [ -S "$work/keel.sock" ] && DOCKER_HOST=unix://$work/docker.sock docker version >/dev/null 2>&1 && break
  sleep 0.1
done
# The same busybox image in both: keel's embedded one, saved and loaded into dockerd.
DOCKER_HOST=unix://$work/keel.sock docker save busybox:latest -o "$work/busybox.tar"
DOCKER_HOST=unix://$work/docker.sock docker load -q -i "$work/busybox.tar" >/dev/null

hyperfine --warmup 3 --runs "$runs" --export-markdown "$work/run.md" \
  -n keel "DOCKER_HOST=unix://$work/keel.sock docker run --rm --network none busybox true" \
  -n dockerd "DOCKER_HOST=unix://$work/docker.sock docker run --rm --network none busybox true"
cat "$work/run.md"

rss() { awk '/VmRSS/ {print $2 " kB"}' "/proc/$1/status"; }
echo
echo "engine idle RSS: $(rss "$keel_pid")"
id=$(DOCKER_HOST=unix://$work/keel.sock docker run -d --name bench-monitor busybox sleep 100)
sleep 0.5
monitor=$(pgrep -f "keel-monitor .*$id" | head -1)
echo "monitor RSS (one container): $(rss "$monitor")"
echo "dockerd idle RSS: $(rss "$dockerd_pid")"

# $many containers started concurrently through the API, then `docker ps -a` with them all.
for engine in keel docker; do
  export DOCKER_HOST=unix://$work/$engine.sock
  DOCKER_HOST=unix://$work/keel.sock docker rm -f bench-monitor >/dev/null 2>&1 || true
  start=$(date +%s.%N)
  failures=0
  pids=()
  for _ in $(seq "$many"); do
    docker run -d --network none busybox sleep 600 >/dev/null 2>>"$work/$engine-many.err" &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || failures=$((failures + 1)); done
  end=$(date +%s.%N)
  running=$(docker ps -q | wc -l)
  printf '%s: %s concurrent docker run -d: %.2f s, %s running, %s failed\n' "$engine" "$many" "$(echo "$end - $start" | bc)" "$running" "$failures"
  hyperfine --warmup 2 --runs 10 -N "docker ps -a" 2>/dev/null | grep -E "Time \(mean" | sed "s/^/$engine docker ps -a with $many: /"
done
unset DOCKER_HOST
echo "engine RSS with $many containers: $(rss "$keel_pid")"
monitors=$(pgrep -f keel-monitor | while read -r pid; do awk '/VmRSS/ {print $2}' "/proc/$pid/status"; done | sort -n)
echo "monitor RSS over $(echo "$monitors" | wc -l) monitors: median $(echo "$monitors" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}') kB, max $(echo "$monitors" | tail -1) kB"
echo "dockerd RSS with $many containers: $(rss "$dockerd_pid")"
