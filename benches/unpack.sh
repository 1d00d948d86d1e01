#!/usr/bin/env bash
# Benchmark: unpacking a generated ~200 MB image (many files, gzip), keel beside umoci and
# skopeo+umoci, in the same run on the same machine, interleaved round after round
# (benches/interleave.py: file creation time here varies by 3x from minute to minute, so a
# slow spell must hit all alike). Ratios of the medians, not absolute times, are the result.
# Run as root: ./benches/unpack.sh [SIZE_MB] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
source benches/lib.sh

size_mb=${1:-${UNPACK_MB:-200}}
rounds=${2:-${ROUNDS:-5}}
work=$(mktemp -d /var/tmp/keel-bench-XXXX)
cleanups+=("rm -rf $work")
RESULTS=${RESULTS:-$work/results.tsv}
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

# No warmup round: the inputs were just written, so they are in the page cache already.
python3 benches/interleave.py --shell --rounds "$rounds" --warmup 0 \
  --prepare "rm -rf $work/r1 $work/bundle $work/copy $work/bundle2; sync" \
  --record "$RESULTS:unpack:load and unpack ${size_mb} MB:ratio<=0.5 vs umoci unpack" \
  "keel load (store + verify + unpack)" "$keel load --root $work/r1 -i $work/bench.tar" \
  "umoci unpack" "umoci unpack --image $work/layout:1 $work/bundle" \
  "skopeo copy + umoci unpack" "skopeo copy --quiet oci:$work/layout:1 oci:$work/copy:1 && umoci unpack --image $work/copy:1 $work/bundle2"
