#!/usr/bin/env bash
# Benchmark: unpacking a generated ~200 MB image (many files, gzip), keel beside umoci and
# skopeo+umoci, in the same run on the same machine (hyperfine). Ratios, not absolute times,
# are the result. Run as root: ./benches/unpack.sh [SIZE_MB]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
command -v hyperfine >/dev/null || { apt-get install -y -qq hyperfine >/dev/null; }
command -v bc >/dev/null || { apt-get install -y -qq bc >/dev/null; }

size_mb=${1:-200}
work=$(mktemp -d /var/tmp/keel-bench-XXXX)
trap 'rm -rf "$work"' EXIT
cargo build --release --quiet -p step06-images
keel=target/release/step06-images

echo "generating a ${size_mb} MB rootfs of small files in $work"
python3 - "$work/rootfs" "$size_mb" <<'PY'
import os, random, sys
root, total = sys.argv[1], int(sys.argv[2]) * 1024 * 1024
random.seed(42)
words = [("".join(random.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(random.randint(2, 9)))).encode() for _ in range(5000)]
written, n = 0, 0
while written < total:
    d = os.path.join(root, "usr/share/bench", f"d{n // 20:04d}")
    os.makedirs(d, exist_ok=True)
    size = random.randint(1024, 20480)
    # Text-like content: compresses like real files do (random bytes would not).
    data = b" ".join(random.choice(words) for _ in range(size // 6))[:size]
    with open(os.path.join(d, f"f{n:06d}.txt"), "wb") as f:
        f.write(data)
    written += len(data); n += 1
print(f"{n} files, {written // (1024 * 1024)} MB")
PY
tar -C "$work/rootfs" -czf "$work/rootfs.tar.gz" .
$keel import --root "$work/store" "$work/rootfs.tar.gz" bench:1 >/dev/null
$keel save --root "$work/store" bench:1 -o "$work/bench.tar"
mkdir -p "$work/layout" && tar -C "$work/layout" -xf "$work/bench.tar"

hyperfine --runs 5 --warmup 1 --export-markdown "$work/result.md" \
  --prepare "rm -rf $work/r1 $work/bundle $work/copy $work/bundle2; sync" \
  -n "keel load (store + verify + unpack)" "$keel load --root $work/r1 -i $work/bench.tar" \
  -n "umoci unpack" "umoci unpack --image $work/layout:1 $work/bundle" \
  -n "skopeo copy + umoci unpack" "skopeo copy --quiet oci:$work/layout:1 oci:$work/copy:1 && umoci unpack --image $work/copy:1 $work/bundle2"
cat "$work/result.md"

# The same comparison interleaved (keel, umoci, keel, umoci...), so that a slow spell of the
# machine (file creation time here varies by 3x from minute to minute) hits both alike; the
# ratio of the medians is the result.
rounds=${ROUNDS:-7}
keel_times=(); umoci_times=()
timed() { local start end; start=$(date +%s.%N); "$@" >/dev/null; end=$(date +%s.%N); echo "$end - $start" | bc; }
for _ in $(seq "$rounds"); do
  rm -rf "$work/r1" "$work/bundle"; sync
  keel_times+=("$(timed "$keel" load --root "$work/r1" -i "$work/bench.tar")")
  rm -rf "$work/r1" "$work/bundle"; sync
  umoci_times+=("$(timed umoci unpack --image "$work/layout:1" "$work/bundle")")
done
python3 - "${keel_times[*]}" "${umoci_times[*]}" <<'PY'
import statistics, sys
keel = [float(t) for t in sys.argv[1].split()]
umoci = [float(t) for t in sys.argv[2].split()]
k, u = statistics.median(keel), statistics.median(umoci)
print(f"interleaved, {len(keel)} rounds: keel median {k:.2f} s, umoci median {u:.2f} s: keel {u / k:.2f}x faster")
print("keel: " + " ".join(f"{t:.2f}" for t in keel))
print("umoci: " + " ".join(f"{t:.2f}" for t in umoci))
PY
