#!/usr/bin/env bash
# Every benchmark beside its peer, in one go, and the book's performance page written from
# what they printed (book/src/performance.md), with the machine and the versions named.
# Run as root on a quiet machine:
#   ./benches/all.sh                 # runtime 30 runs, unpack 200 MB, engine 30 runs / 100 containers
#   RUNS=10 UNPACK_MB=50 MANY=20 ./benches/all.sh   # a quick pass
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
runs=${RUNS:-30}
unpack_mb=${UNPACK_MB:-200}
many=${MANY:-100}
out=$(mktemp -d /var/tmp/keel-bench-all-XXXX)
trap 'rm -rf "$out"' EXIT

./benches/runtime.sh "$runs" 2>&1 | tee "$out/runtime.txt"
ROUNDS=${ROUNDS:-5} ./benches/unpack.sh "$unpack_mb" 2>&1 | tee "$out/unpack.txt"
./benches/engine.sh "$runs" "$many" 2>&1 | tee "$out/engine.txt"

version() { "$@" 2>/dev/null | head -1 || echo "not found"; }
page=book/src/performance.md
{
  echo "# Performance, beside the real tools"
  echo
  echo "Written by \`./benches/all.sh\` on $(date -u +%Y-%m-%d): every number below was measured"
  echo "in one run on one machine, keel beside its peer, interleaved by hyperfine. The ratios are"
  echo "the result; absolute times depend on the machine (and on whatever else it was doing)."
  echo
  echo "## The machine"
  echo
  echo '```text'
  echo "kernel:   $(uname -r) ($(uname -m)), $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
  echo "cgroups:  $(target/debug/step04-cgroups doctor 2>/dev/null | grep -i cgroup | head -1 || echo unknown)"
  echo "keel:     $(git rev-parse --short HEAD) (release build)"
  echo "runc:     $(version runc --version)"
  echo "crun:     $(version crun --version)"
  echo "ctr:      $(version ctr --version)"
  echo "dockerd:  $(version dockerd --version)"
  echo "docker:   $(version docker --version)"
  echo "umoci:    $(version umoci --version)"
  echo "skopeo:   $(version skopeo --version)"
  echo '```'
  for part in "runtime:Runtime: run, create+start+delete, ctr run (keel vs runc vs crun)" \
              "unpack:Images: import and unpack of a ${unpack_mb} MB layer (keel vs umoci, skopeo)" \
              "engine:Engine: docker run --rm, concurrent runs, docker ps, memory (keel vs dockerd)"; do
    name=${part%%:*}
    echo
    echo "## ${part#*:}"
    echo
    echo "\`./benches/$name.sh\` printed:"
    echo
    echo '```text'
    # hyperfine's progress lines and the setup chatter are left out.
    grep -vE '^(installing|debconf|readline|Use of uninit|Reading|Building|Selecting|Preparing|Unpacking|Setting up|Processing|Created symlink)' "$out/$name.txt" |
      grep -v $'\r'
    echo '```'
  done
} > "$page"
grep -q 'performance.md' book/src/SUMMARY.md || echo "wrote $page: add it to book/src/SUMMARY.md"
echo "wrote $page"
