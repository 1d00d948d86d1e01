#!/usr/bin/env bash
# Benchmark: step 04 as an OCI runtime beside runc and crun, on the same busybox bundle, in
# the same run, interleaved round after round (benches/interleave.py): `run` of `true`,
# create+start+delete, and `ctr run --rm` through a real containerd with each runtime. The
# ratios of the medians are the result. Run as root:
#   ./benches/runtime.sh [RUNS]
# Run of true is measured twice: on this machine's hybrid cgroups, and on a pure cgroup v2
# view of it (most users' machines), where a container can be born in its cgroup.
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

# Each runtime runs in a mount namespace held open by a sleeping process, entered with
# `nsenter` (the same ~1.5 ms for all three, timed alone in the same rounds and subtracted:
# interleave.py --baseline). crun 1.8 refuses hybrid cgroups, so its
# namespace has the cgroup2 mount removed once, before the clock starts (unmounting it
# takes an RCU grace period: timed, it would add milliseconds to crun alone).
# A second set shows a pure cgroup v2 machine: a cgroup2 mount over /sys/fs/cgroup. Its
# bundle has no `linux.resources`: the `devices` rule of `runc spec` makes crun load an eBPF
# program, which this VM refuses (setrlimit MEMLOCK), and keel does not manage devices by
# cgroup at all (rootfs nodev and seccomp instead).
held=
hold_mount_ns() {
  unshare --mount --propagation private sleep infinity </dev/null >/dev/null 2>&1 &
  held=$!
  cleanups+=("stop_pid $held")
  wait_for_own_ns "$held" mnt
  if [ -n "$1" ]; then nsenter -t "$held" -m sh -c "$1"; fi
}
hold_mount_ns "" && hybrid=$held
hold_mount_ns "umount /sys/fs/cgroup/unified" && hybrid_crun=$held
hold_mount_ns "mount -t cgroup2 none /sys/fs/cgroup" && v2=$held
in_ns() { echo "nsenter -t $1 -m"; }

b=$work/bundle
mkdir -p "$work/bundle-v2"
python3 - "$b" "$work/bundle-v2/config.json" <<'PY'
import json, sys
config = json.load(open(sys.argv[1] + "/config.json"))
config["linux"].pop("resources", None)
config["root"]["path"] = sys.argv[1] + "/rootfs"
json.dump(config, open(sys.argv[2], "w"))
PY

echo "== run of true on one bundle (keel vs runc vs crun), hybrid cgroups"
python3 benches/interleave.py --rounds "$runs" --warmup 3 --baseline "$(in_ns "$hybrid") true" \
  --record "$RESULTS:runtime:run of true:ratio<=0.5 vs crun" \
  keel "$(in_ns "$hybrid") $keel --root $work/k run --bundle $b bench" \
  runc "$(in_ns "$hybrid") runc --root $work/r run --bundle $b bench" \
  crun "$(in_ns "$hybrid_crun") crun --root $work/c run --bundle $b bench"
echo "== run of true, pure cgroup v2 (keel vs runc vs crun)"
python3 benches/interleave.py --rounds "$runs" --warmup 3 --baseline "$(in_ns "$v2") true" \
  --record "$RESULTS:runtime:run of true, cgroup v2:ratio<=0.5 vs crun" \
  keel "$(in_ns "$v2") $keel --root $work/k run --bundle $work/bundle-v2 bench" \
  runc "$(in_ns "$v2") runc --root $work/r run --bundle $work/bundle-v2 bench" \
  crun "$(in_ns "$v2") crun --root $work/c run --bundle $work/bundle-v2 bench"
echo "== create + start + delete, hybrid cgroups"
python3 benches/interleave.py --rounds "$runs" --warmup 3 --baseline "$(in_ns "$hybrid") sh -c true" \
  --record "$RESULTS:runtime:create + start + delete:ratio<=1 vs crun" \
  keel "$(in_ns "$hybrid") sh -c '$keel --root $work/k create --bundle $b l && $keel --root $work/k start l && $keel --root $work/k delete --force l'" \
  runc "$(in_ns "$hybrid") sh -c 'runc --root $work/r create --bundle $b l && runc --root $work/r start l && runc --root $work/r delete --force l'" \
  crun "$(in_ns "$hybrid_crun") sh -c 'crun --root $work/c create --bundle $b l && crun --root $work/c start l && crun --root $work/c delete --force l'"

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
