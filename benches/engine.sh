#!/usr/bin/env bash
# Benchmark: keel's engine beside a real dockerd (Debian's docker.io, with its own data root,
# exec root, socket and containerd namespace, started here), both driven by the same docker
# CLI, interleaved:
#   - `docker run --rm busybox true`, RUNS rounds;
#   - MANY containers started concurrently through the API (`docker run -d`, all at once):
#     total time, failures, and then the engine's and each monitor's memory (dockerd's, its
#     containerd's and each containerd-shim's beside them);
#   - `docker ps -a` with PS_COUNT created (not started) containers in each engine.
# Both daemons run in a private network namespace (benches/lib.sh): nothing of the host's
# network changes. Run as root:
#   ./benches/engine.sh [RUNS] [MANY] [PS_COUNT]      # defaults 30, 100, 500
#   MANY_ROUNDS=3 ./benches/engine.sh                 # the concurrent start, 3 times each
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
source benches/lib.sh
runs=${1:-${RUNS:-30}}
many=${2:-${MANY:-100}}
ps_count=${3:-${PS_COUNT:-500}}
many_rounds=${MANY_ROUNDS:-1}

cargo build --release --quiet --workspace
work=$(mktemp -d /var/tmp/keel-bench-engine-XXXX)
cleanups+=("rm -rf $work")
RESULTS=${RESULTS:-$work/results.tsv}
start_netns
start_keel "$work"
start_dockerd "$work"
keel="docker -H unix://$work/keel.sock"
dockerd="docker -H unix://$work/docker.sock"
dockerd_containerd() { pgrep -P "$dockerd_pid" -x containerd | head -1; }
# Only our own engine's monitors (a test may be running another engine meanwhile).
our_monitors() { pgrep -f "keel-monitor .*--runtime-root $work/keel-run " || true; }
# dockerd's per-container process, the counterpart of keel's monitor.
our_shims() { pgrep -f "containerd-shim-runc-v2 -namespace keel-bench " || true; }

# The same busybox image in both: keel's embedded one, saved and loaded into dockerd.
$keel save busybox:latest -o "$work/busybox.tar"
$dockerd load -q -i "$work/busybox.tar" >/dev/null

echo "== memory at start (idle, busybox loaded)"
echo "keel engine:         $(mem_text "$keel_pid")"
echo "dockerd:             $(mem_text "$dockerd_pid")"
echo "dockerd's containerd: $(mem_text "$(dockerd_containerd)")"
read -r keel_rss _ <<<"$(mem_kb "$keel_pid")"
read -r dockerd_rss _ <<<"$(mem_kb "$dockerd_pid")"
read -r containerd_rss _ <<<"$(mem_kb "$(dockerd_containerd)")"
record engine "engine idle RSS" \
  "$(echo "scale=1; $keel_rss / 1024" | bc)" "dockerd + containerd" "$(echo "scale=1; ($dockerd_rss + $containerd_rss) / 1024" | bc)" MB "keel<10"

echo
echo "== docker run --rm busybox true ($runs interleaved rounds)"
python3 benches/interleave.py --rounds "$runs" --warmup 3 \
  --record "$RESULTS:engine:docker run --rm busybox true:ratio<=0.2" \
  keel "$keel run --rm --network none busybox true" \
  dockerd "$dockerd run --rm --network none busybox true"
echo "keel engine after them: $(mem_text "$keel_pid")"

# $many `docker run -d` at once, each a docker CLI of its own, as many clients would; the time
# is from the first start to the last answer. Then (first round) memory with them all running.
echo
echo "== $many containers started concurrently (docker run -d, $many_rounds round(s) each)"
concurrent() {
  local name=$1 cli=$2 start end pids=() failures=0 running
  : >"$work/$name-many.err"
  start=$(date +%s.%N)
  for _ in $(seq "$many"); do
    $cli run -d --network none busybox sleep 600 >/dev/null 2>>"$work/$name-many.err" &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || failures=$((failures + 1)); done
  end=$(date +%s.%N)
  running=$($cli ps -q | wc -l)
  printf '%s: %s concurrent docker run -d: %.2f s, %s running, %s failed\n' \
    "$name" "$many" "$(echo "$end - $start" | bc)" "$running" "$failures"
  [ "$failures" -eq 0 ] || { echo "  first errors:"; sort "$work/$name-many.err" | uniq -c | sort -rn | head -3; }
  echo "$end - $start" | bc >>"$work/$name-many.times"
  echo "$failures" >>"$work/$name-many.failures"
}
removed() {
  local start label=${1/docker/dockerd}; start=$(date +%s.%N)
  remove_all "unix://$work/$1.sock"
  printf '%s: removing them (prune, docker rm -f): %.2f s\n' "$label" "$(echo "$(date +%s.%N) - $start" | bc)"
}
for round in $(seq "$many_rounds"); do
  # Alternate who goes first, as interleave.py does.
  if [ $((round % 2)) -eq 1 ]; then order="keel docker"; else order="docker keel"; fi
  for name in $order; do
    if [ "$name" = keel ]; then concurrent keel "$keel"; else concurrent dockerd "$dockerd"; fi
    if [ "$round" -eq 1 ]; then
      if [ "$name" = keel ]; then
        echo "  keel engine with $many running: $(mem_text "$keel_pid")"
        mem_kb "$keel_pid" | cut -d' ' -f1 >"$work/keel-busy"
        our_monitors | mem_median_kb >"$work/monitors"
        echo "  keel-monitor: $(mem_median_text <"$work/monitors")"
      else
        echo "  dockerd with $many running: $(mem_text "$dockerd_pid")"
        echo "  its containerd: $(mem_text "$(dockerd_containerd)")"
        echo $(($(mem_kb "$dockerd_pid" | cut -d' ' -f1) + $(mem_kb "$(dockerd_containerd)" | cut -d' ' -f1))) >"$work/dockerd-busy"
        our_shims | mem_median_kb >"$work/shims"
        echo "  containerd-shim-runc-v2: $(mem_median_text <"$work/shims")"
      fi
    fi
    removed "$name"
  done
done
median() { sort -n "$1" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
sum() { awk '{s+=$1} END {print s+0}' "$1"; }
record engine "$many concurrent docker run -d" \
  "$(median "$work/keel-many.times")" dockerd "$(median "$work/dockerd-many.times")" s
record engine "$many concurrent docker run -d: failed" \
  "$(sum "$work/keel-many.failures")" dockerd "$(sum "$work/dockerd-many.failures")" count "keel<1"
record engine "engine RSS with $many running" "$(echo "scale=1; $(cat "$work/keel-busy") / 1024" | bc)" \
  "dockerd + containerd" "$(echo "scale=1; $(cat "$work/dockerd-busy") / 1024" | bc)" MB
read -r _ monitor_rss monitor_pss monitor_private _ <"$work/monitors"
read -r _ shim_rss shim_pss shim_private _ <"$work/shims"
record engine "per-container RSS (keel-monitor)" \
  "$(echo "scale=2; $monitor_rss / 1024" | bc)" containerd-shim "$(echo "scale=2; $shim_rss / 1024" | bc)" MB "keel<1"
record engine "per-container PSS (keel-monitor)" \
  "$(echo "scale=2; $monitor_pss / 1024" | bc)" containerd-shim "$(echo "scale=2; $shim_pss / 1024" | bc)" MB "keel<1"

# `docker ps -a` over many containers: created, not started, so that the machine stays quiet
# (and dockerd runs no shim for them). Created 8 at a time; that time is printed too.
echo
echo "== docker ps -a with $ps_count created containers"
for name in keel docker; do
  start=$(date +%s.%N)
  seq "$ps_count" | xargs -P 8 -I{} docker -H "unix://$work/$name.sock" create --network none busybox true >/dev/null
  echo "$(date +%s.%N) - $start" | bc >"$work/$name-create.time"
  printf '%s: %s docker create, 8 at a time: %.2f s; %s containers listed\n' "${name/docker/dockerd}" "$ps_count" \
    "$(cat "$work/$name-create.time")" "$(docker -H "unix://$work/$name.sock" ps -aq | wc -l)"
done
record engine "$ps_count docker create, 8 at a time" "$(cat "$work/keel-create.time")" dockerd "$(cat "$work/docker-create.time")" s
python3 benches/interleave.py --rounds 15 --warmup 2 \
  --record "$RESULTS:engine:docker ps -a with $ps_count containers" \
  keel "$keel ps -a" dockerd "$dockerd ps -a"
echo "keel engine with $ps_count created: $(mem_text "$keel_pid")"
echo "dockerd with $ps_count created: $(mem_text "$dockerd_pid")"
for name in keel docker; do removed "$name"; done
