#!/usr/bin/env bash
# Records the HTTP conversation of `step06-images pull` with a real registry (Debian's
# docker-registry on loopback) into book/src/transcripts/pull.txt, for chapter 06.
# Run as root from anywhere: book/tools/record-pull.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --quiet -p step06-images
bin=$PWD/target/debug/step06-images
work=$(mktemp -d /tmp/keel-record-pull-XXXX)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 50); do (echo > /dev/tcp/127.0.0.1/$1) 2>/dev/null && return; sleep 0.1; done; }

registry=$(free_port); proxy=$(free_port)
cat > "$work/config.yml" <<YML
version: 0.1
log: {level: error}
storage: {filesystem: {rootdirectory: $work/data}}
http: {addr: 127.0.0.1:$registry}
YML
docker-registry serve "$work/config.yml" >/dev/null 2>&1 & pids+=($!)
"$bin" busybox --root "$work/store" >/dev/null
"$bin" save --root "$work/store" busybox -o "$work/busybox.tar"
mkdir -p "$work/layout" && tar -C "$work/layout" -xf "$work/busybox.tar"
wait_port "$registry"
skopeo copy --quiet --insecure-policy --dest-tls-verify=false "oci:$work/layout:latest" "docker://127.0.0.1:$registry/demo/busybox:1"

python3 book/tools/http_record.py "$proxy" "$registry" "$work/pull.txt" & recorder=$!
wait_port "$proxy"
"$bin" pull --root "$work/pulled" --insecure-registry "127.0.0.1:$proxy" "127.0.0.1:$proxy/demo/busybox:1" > "$work/pull.out"
kill "$recorder"; wait "$recorder" || true
{
  echo "\$ step06-images pull --insecure-registry 127.0.0.1:PORT 127.0.0.1:PORT/demo/busybox:1"
  sed "s/$proxy/PORT/g" "$work/pull.out"
  echo
  sed "s/$proxy/PORT/g" "$work/pull.txt"
} > book/src/transcripts/pull.txt
echo "wrote book/src/transcripts/pull.txt"
