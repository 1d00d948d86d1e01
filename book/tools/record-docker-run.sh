#!/usr/bin/env bash
# Records what the real docker CLI says to keel's engine during `docker run --rm busybox echo hi`
# (and during a `docker run` of an image the engine does not have), byte for byte, into
# book/src/transcripts/docker-run.txt, for chapter 07.
#
# An engine of its own (socket, data root and runtime state in a temp dir) and a recording
# proxy between the CLI and it: the raw proxy of the workshop's shared tools, which logs
# each connection's bytes both ways with their times (KEEL_PROXY names another copy). The
# transcript shows the exchanges in the order they happened, across connections, with the
# container id replaced by <id> and the create body's empty fields left out.
#
# Run as root from anywhere: book/tools/record-docker-run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
proxy_py=${KEEL_PROXY:-/work/shared/tools/proxy.py}
out=book/src/transcripts/docker-run.txt
[ "$(id -u)" -eq 0 ] || { echo "the engine needs root: run this as root" >&2; exit 1; }
[ -f "$proxy_py" ] || { echo "no recording proxy at $proxy_py (set KEEL_PROXY)" >&2; exit 1; }
command -v docker >/dev/null || { echo "the docker CLI is missing (any version from 20.10 on)" >&2; exit 1; }

cargo build --quiet --workspace
bin=$PWD/target/debug
work=$(mktemp -d /tmp/keel-record-run-XXXX)
engine_pid='' proxy_pid=''
export DOCKER_CONFIG=$work/docker-config   # none of the user's contexts, plugins or auths
mkdir -p "$DOCKER_CONFIG" "$work/capture"
direct() { DOCKER_HOST=unix://$work/keel.sock docker "$@"; }
cleanup() {
  if [ -n "$engine_pid" ]; then
    left=$(direct ps -aq 2>/dev/null || true)
    # shellcheck disable=SC2086 # one id per word
    [ -z "$left" ] || direct rm -f $left >/dev/null 2>&1 || true
  fi
  for pid in $proxy_pid $engine_pid; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  if grep -q " $work/" /proc/self/mountinfo; then
    echo "mounts are left under $work: not removing it" >&2
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT
wait_socket() {
  for _ in $(seq 200); do
    python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).connect(sys.argv[1])' "$1" 2>/dev/null && return
    sleep 0.05
  done
  echo "nothing listens on $1" >&2; exit 1
}

"$bin/step07-engine-api" serve --socket "$work/keel.sock" --root "$work/root" \
  --runtime-root "$work/run" 2>"$work/engine.log" & engine_pid=$!
wait_socket "$work/keel.sock"
python3 "$proxy_py" "$work/proxy.sock" "$work/keel.sock" "$work/capture" & proxy_pid=$!
wait_socket "$work/proxy.sock"
rm -rf "$work/capture"/*   # wait_socket's own connection

record() {  # LABEL ARGS...: one docker command through the proxy
  local label=$1; shift
  echo "$label" > "$work/capture/.label"
  set +e
  DOCKER_HOST=unix://$work/proxy.sock docker "$@" > "$work/$label.out" 2>&1
  echo $? > "$work/$label.status"
  set -e
  echo "\$ docker $*" > "$work/$label.cmd"
  sleep 0.3   # the proxy's last bytes
}
record run run --rm busybox echo hi
record missing run --rm 127.0.0.1:1/nosuch:1 true

left=$(direct ps -aq)
[ -z "$left" ] || { echo "containers are left: $left" >&2; exit 1; }
docker --version > "$work/version"

python3 - "$work" > "$work/transcript.txt" <<'PY'
"""Turns the proxy's raw captures into a readable transcript, in the order things happened."""
import base64, json, os, re, sys, urllib.parse

work = sys.argv[1]
SHOWN = {"content-type", "content-length", "transfer-encoding", "connection", "upgrade",
         "api-version", "ostype", "docker-experimental"}
ID = re.compile(r"[0-9a-f]{64}")


class Direction:
    """One direction of a connection: its bytes, the time each arrived, and its end."""

    def __init__(self):
        self.data, self.offsets, self.times, self.eof = b"", [], [], None

    def add(self, t, chunk):
        self.offsets.append(len(self.data)); self.times.append(t); self.data += chunk

    def time_at(self, offset):
        t = self.times[0] if self.times else 0
        for o, when in zip(self.offsets, self.times):
            if o <= offset:
                t = when
        return t


def pruned(value):
    """The create body without the fields the CLI sends empty: null, "", 0, false, [], {}."""
    if isinstance(value, dict):
        kept = {k: pruned(v) for k, v in value.items()}
        return {k: v for k, v in kept.items() if v not in (None, "", 0, False, [], {})}
    return value


def count_empty(value):
    if isinstance(value, dict):
        return sum(1 if v in (None, "", 0, False, [], {}) and not isinstance(v, dict) else count_empty(v)
                   for v in value.values())
    return 0


def show_json(body, prune=False):
    try:
        value = json.loads(body)
    except ValueError:
        return None
    if prune:
        text = json.dumps(pruned(value), indent=2)
        return text + "\n(and %d fields that are null, \"\", 0, false, [] or {})" % count_empty(value)
    text = json.dumps(value)
    return text if len(text) <= 100 else json.dumps(value, indent=2)


def head(stream, pos):
    end = stream.data.find(b"\r\n\r\n", pos)
    if end < 0:
        return None
    lines = stream.data[pos:end].decode("latin1").split("\r\n")
    headers = [tuple(p.strip() for p in l.split(":", 1)) for l in lines[1:] if ":" in l]
    return lines[0], headers, end + 4


def header(headers, name):
    return next((v for k, v in headers if k.lower() == name), None)


def header_lines(mark, start, headers):
    return ["%s %s" % (mark, start)] + ["%s %s: %s" % (mark, k, v) for k, v in headers if k.lower() in SHOWN]


def body_lines(text):
    return ["  " + l for l in text.splitlines()]


def frames(data):
    """stdcopy frames: 8-byte header (stream, 0, 0, 0, big-endian length), then the payload."""
    out, i = [], 0
    while i + 8 <= len(data):
        n = int.from_bytes(data[i + 4:i + 8], "big")
        out.append((i, data[i:i + 8], data[i + 8:i + 8 + n]))
        i += 8 + n
    return out


def conversation(label):
    directory = os.path.join(work, "capture", label)
    events = []  # (time, connection, lines)
    for number, name in enumerate(sorted(os.listdir(directory)), start=1):
        c2s, s2c = Direction(), Direction()
        for line in open(os.path.join(directory, name)):
            e = json.loads(line)
            side = c2s if e.get("d") == "c2s" else s2c
            if "b" in e:
                side.add(e["t"], base64.b64decode(e["b"]))
            elif e.get("ev") == "eof":
                side.eof = e["t"]
        qpos = spos = 0
        while True:
            request = head(c2s, qpos)
            if not request:
                break
            start, headers, qpos = request
            length = int(header(headers, "content-length") or 0)
            body = c2s.data[qpos:qpos + length]
            lines = header_lines(">", start, headers)
            if body:
                lines += body_lines(show_json(body, prune="/containers/create" in start) or "<%d bytes>" % len(body))
            events.append((c2s.time_at(qpos - 1), number, lines))
            qpos += length
            response = head(s2c, spos)
            if not response:
                break
            status, rheaders, body_at = response
            response_at = s2c.time_at(spos)
            code = int(status.split()[1])
            lines = header_lines("<", status, rheaders)
            if code == 101:
                lines.append("  (from here on the connection is a raw stream both ways)")
                events.append((response_at, number, lines))
                for offset, frame_head, payload in frames(s2c.data[body_at:]):
                    stream = {1: "stdout", 2: "stderr"}.get(frame_head[0], "stream %d" % frame_head[0])
                    events.append((s2c.time_at(body_at + offset), number, [
                        "< %s  %s   (stdcopy frame: %s, %d bytes)" % (
                            frame_head.hex(" "), json.dumps(payload.decode("utf-8", "replace")), stream, len(payload))]))
                if c2s.eof:
                    events.append((c2s.eof, number, ["> (the CLI closes its sending side: no stdin)"]))
                if s2c.eof:
                    events.append((s2c.eof, number, ["< (the engine closes the stream: the container's output ended)"]))
                break
            method = start.split()[0]
            if method == "HEAD" or code in (204, 304):
                events.append((response_at, number, lines))
                spos = body_at
                continue
            if (header(rheaders, "transfer-encoding") or "").lower() == "chunked":
                pos, chunks = body_at, []
                while True:
                    size_end = s2c.data.find(b"\r\n", pos)
                    if size_end < 0:
                        break
                    size = int(s2c.data[pos:size_end].split(b";")[0], 16)
                    chunks.append((s2c.time_at(size_end), s2c.data[size_end + 2:size_end + 2 + size]))
                    pos = size_end + 2 + size + 2
                    if size == 0:
                        break
                spos = pos
                if chunks and chunks[0][0] - response_at > 0.005:
                    lines.append("  (the headers go out now; the body follows when there is one)")
                events.append((response_at, number, lines))
                for t, chunk in chunks:
                    if chunk:
                        for piece in chunk.decode("utf-8", "replace").splitlines():
                            events.append((t, number, body_lines(show_json(piece) or piece)))
                continue
            length = int(header(rheaders, "content-length") or 0)
            body = s2c.data[body_at:body_at + length]
            if body:
                lines += body_lines(show_json(body) or "<%d bytes>" % len(body))
            events.append((response_at, number, lines))
            spos = body_at + length
    events.sort(key=lambda e: e[0])
    out, last = [], None
    for _, number, lines in events:
        if number != last:
            out.append("")
            out.append("--- connection %d" % number)
            last = number
        out.extend(ID.sub("<id>", line) for line in lines)
    return out


print("$ docker --version")
print(open(os.path.join(work, "version")).read().rstrip())
for label in ("run", "missing"):
    print()
    print(open(os.path.join(work, label + ".cmd")).read().rstrip())
    output = open(os.path.join(work, label + ".out")).read().rstrip()
    output = output.replace(urllib.parse.quote(work, safe=""), "<dir>").replace(work, "<dir>")
    if output:
        print(output)
    print("$ echo $?")
    print(open(os.path.join(work, label + ".status")).read().strip())
    print("\n".join(conversation(label)))
PY
mv "$work/transcript.txt" "$out"
echo "wrote $out"
