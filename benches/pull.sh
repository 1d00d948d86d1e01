#!/usr/bin/env bash
# Benchmark: pulling a generated ~150 MB image (LAYERS layers of random data, so gzip cannot
# shrink it) from a local registry into an empty store, interleaved round after round:
#   - `step06-images pull` (download, verify, unpack) beside `skopeo copy` to an OCI directory
#     (download and verify only) and `skopeo copy` + `umoci unpack` (the same work as keel's);
#   - `docker pull` through keel's engine beside `docker pull` through a real dockerd.
# The registry (Debian's docker-registry, on 127.0.0.1 at a free port, storage in a temp
# dir), keel's engine and dockerd all run in a private network namespace (benches/lib.sh);
# the image gets into the registry with `skopeo copy` from an OCI layout written here.
# Run as root:
#   ./benches/pull.sh [SIZE_MB] [ROUNDS]          # defaults 150 MB, 5 rounds
#   LAYERS=4 ./benches/pull.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
source benches/lib.sh
size_mb=${1:-${PULL_MB:-150}}
rounds=${2:-${PULL_ROUNDS:-5}}
layers=${LAYERS:-4}

cargo build --release --quiet --workspace
keel_images=$PWD/target/release/step06-images
work=$(mktemp -d /var/tmp/keel-bench-pull-XXXX)
cleanups+=("rm -rf $work")
RESULTS=${RESULTS:-$work/results.tsv}
start_netns

# A free port on 127.0.0.1 of the namespace: the kernel picks it (bind to port 0).
port=$(in_netns python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
registry=127.0.0.1:$port
cat >"$work/registry.yml" <<YAML
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $work/registry
  delete:
    enabled: true
http:
  addr: $registry
YAML
# nsenter itself (not the in_netns function) in the background: $! is then the registry.
nsenter -t "$netns_pid" -n docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
registry_pid=$!
cleanups+=("stop_pid $registry_pid")
for _ in $(seq 100); do
  in_netns curl -fs "http://$registry/v2/" >/dev/null 2>&1 && break
  kill -0 "$registry_pid" 2>/dev/null || { echo "docker-registry exited; its log:" >&2; cat "$work/registry.log" >&2; exit 1; }
  sleep 0.1
done

echo "generating a ${size_mb} MB image of $layers layers of random data, pushing it to $registry"
case $(uname -m) in x86_64) arch=amd64 ;; aarch64) arch=arm64 ;; *) arch=$(uname -m) ;; esac
python3 - "$work/layout" "$size_mb" "$layers" "$arch" <<'PY'
import gzip, hashlib, io, json, os, sys, tarfile
out, total, layers, arch = sys.argv[1], int(sys.argv[2]) << 20, int(sys.argv[3]), sys.argv[4]
os.makedirs(f"{out}/blobs/sha256")
def blob(data: bytes) -> dict:
    digest = hashlib.sha256(data).hexdigest()
    with open(f"{out}/blobs/sha256/{digest}", "wb") as f:
        f.write(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}
layer_descs, diff_ids = [], []
for n in range(layers):
    # Eight files a layer; random bytes, so the compressed layer is as big as the data.
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for i in range(8):
            data = os.urandom(total // layers // 8)
            info = tarfile.TarInfo(f"data/layer{n}/file{i}.bin")
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    raw = raw.getvalue()
    diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
    layer_descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                        **blob(gzip.compress(raw, compresslevel=1, mtime=0))})
config = {"architecture": arch, "os": "linux", "config": {"Cmd": ["/bin/sh"]},
          "rootfs": {"type": "layers", "diff_ids": diff_ids},
          "history": [{"created_by": f"benches/pull.sh layer {n}"} for n in range(layers)]}
manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **blob(json.dumps(config).encode())},
            "layers": layer_descs}
index = {"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
         **blob(json.dumps(manifest).encode()), "annotations": {"org.opencontainers.image.ref.name": "1"}}]}
json.dump(index, open(f"{out}/index.json", "w"))
json.dump({"imageLayoutVersion": "1.0.0"}, open(f"{out}/oci-layout", "w"))
print(f"{layers} layers, {sum(d['size'] for d in layer_descs) >> 20} MB compressed")
PY
in_netns skopeo copy --quiet --dest-tls-verify=false "oci:$work/layout:1" "docker://$registry/bench:1"
rm -rf "$work/layout"

# Every command enters the namespace the same way (nsenter), so that costs all alike.
ns=$(in_netns_prefix)
echo
echo "== pull into an empty store ($rounds interleaved rounds)"
python3 benches/interleave.py --shell --rounds "$rounds" --warmup 1 \
  --prepare "rm -rf $work/store $work/oci $work/bundle; sync" \
  --record "$RESULTS:pull:step06-images pull ${size_mb} MB" \
  "keel pull" "$ns $keel_images pull --quiet --root $work/store --insecure-registry $registry $registry/bench:1" \
  "skopeo copy" "$ns skopeo copy --quiet --src-tls-verify=false docker://$registry/bench:1 oci:$work/oci:1" \
  "skopeo copy + umoci unpack" "$ns skopeo copy --quiet --src-tls-verify=false docker://$registry/bench:1 oci:$work/oci:1 && umoci unpack --image $work/oci:1 $work/bundle"

start_keel "$work"
start_dockerd "$work"
keel="docker -H unix://$work/keel.sock"
dockerd="docker -H unix://$work/docker.sock"
echo
echo "== docker pull into an engine without the image ($rounds interleaved rounds)"
# Both engines drop the image (and so its layers) before every run.
python3 benches/interleave.py --shell --rounds "$rounds" --warmup 1 \
  --prepare "$keel rmi -f $registry/bench:1 >/dev/null 2>&1; $dockerd rmi -f $registry/bench:1 >/dev/null 2>&1; sync" \
  --record "$RESULTS:pull:docker pull ${size_mb} MB" \
  keel "$keel pull -q $registry/bench:1" \
  dockerd "$dockerd pull -q $registry/bench:1"
echo "after the pulls: keel engine $(mem_text "$keel_pid"); dockerd $(mem_text "$dockerd_pid")"
# Each run pulled into an empty store only if dropping the image dropped its layers too.
$keel rmi -f "$registry/bench:1" >/dev/null 2>&1 || true
$dockerd rmi -f "$registry/bench:1" >/dev/null 2>&1 || true
echo "after rmi: keel's root $(du -sm "$work/keel" | cut -f1) MB, dockerd's $(du -sm "$work/docker" | cut -f1) MB (the ${size_mb} MB image left both)"
