#!/usr/bin/env bash
# Benchmark: step 04 as an OCI runtime beside runc and crun, on the same busybox bundle, in
# the same run, interleaved round after round (benches/interleave.py): `run` of `true`,
# create+start+delete, and `ctr run --rm` through a real containerd with each runtime. The
# ratios of the medians are the result. Run as root:
#   ./benches/runtime.sh [RUNS]
# crun 1.8 refuses hybrid cgroups; it runs in a private mount namespace where the cgroup2
# mount is hidden, so it sees a pure v1 machine (the other runtimes see the real layout).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
source benches/lib.sh
runs=${1:-${RUNS:-30}}

cargo build --release --quiet -p step04-cgroups -p step03-mount-ns
keel=$PWD/target/release/step04-cgroups
work=$(mktemp -d /var/tmp/keel-bench-runtime-XXXX)
cleanups+=("umount -R $work/containerd 2>/dev/null; rm -rf $work")
RESULTS=${RESULTS:-$work/results.tsv}

mkdir -p "$work/bundle"
target/release/step03-mount-ns rootfs "$work/bundle/rootfs" >/dev/null
(cd "$work/bundle" && runc spec)
python3 - "$work/bundle/config.json" <<'PY'
import json, sys
path = sys.argv[1]
config = json.load(open(path))
config["process"]["terminal"] = False
config["process"]["args"] = ["/bin/true"]
json.dump(config, open(path, "w"))
PY

# Every runtime runs under the same `unshare -m sh -c`, so the wrapper crun needs costs all
# three the same; only crun's hides the cgroup2 mount.
wrap() { echo "unshare -m sh -c '$1'"; }
hide_unified() { wrap "umount /sys/fs/cgroup/unified 2>/dev/null; $1"; }
b=$work/bundle
echo "== run of true on one bundle (keel vs runc vs crun)"
python3 benches/interleave.py --rounds "$runs" --warmup 3 \
  --record "$RESULTS:runtime:run of true:ratio<=0.5 vs crun" \
  keel "$(wrap "$keel --root $work/k run --bundle $b bench")" \
  runc "$(wrap "runc --root $work/r run --bundle $b bench")" \
  crun "$(hide_unified "crun --root $work/c run --bundle $b bench")"
echo "== create + start + delete"
python3 benches/interleave.py --rounds "$runs" --warmup 3 \
  --record "$RESULTS:runtime:create + start + delete:ratio<=1 vs crun" \
  keel "$(wrap "$keel --root $work/k create --bundle $b l && $keel --root $work/k start l && $keel --root $work/k delete --force l")" \
  runc "$(wrap "runc --root $work/r create --bundle $b l && runc --root $work/r start l && runc --root $work/r delete --force l")" \
  crun "$(hide_unified "crun --root $work/c create --bundle $b l && crun --root $work/c start l && crun --root $work/c delete --force l")"

echo "== ctr run --rm through containerd (keel vs runc)"
mkdir -p "$work/containerd"
cat > "$work/containerd/config.toml" <<TOML
version = 2
root = "$work/containerd/root"
state = "$work/containerd/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$work/containerd/sock"
[ttrpc]
  address = "$work/containerd/sock.ttrpc"
TOML
containerd --config "$work/containerd/config.toml" >"$work/containerd/log" 2>&1 &
cleanups+=("stop_pid $!")
for _ in $(seq 50); do ctr --address "$work/containerd/sock" version >/dev/null 2>&1 && break; sleep 0.1; done
ctr_run="ctr --address $work/containerd/sock run --rm --rootfs"
python3 benches/interleave.py --rounds "$runs" --warmup 2 \
  --record "$RESULTS:runtime:ctr run --rm" \
  keel "$ctr_run --runc-binary $keel $b/rootfs k /bin/true" \
  runc "$ctr_run --runc-binary $(command -v runc) $b/rootfs r /bin/true"
