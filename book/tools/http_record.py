#!/usr/bin/env python3
"""A recording TCP proxy for the book: listens on 127.0.0.1:LISTEN, forwards every
connection to 127.0.0.1:UPSTREAM, and keeps both directions of each connection in memory.
On SIGTERM it writes a readable transcript of the HTTP exchanges to OUT: request lines and
the headers that matter, status lines, JSON bodies (shortened), other bodies as <N bytes>.

usage: http_record.py LISTEN UPSTREAM OUT
"""
import json, signal, socket, sys, threading

LISTEN, UPSTREAM, OUT = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
SHOWN = {"host", "accept", "authorization", "www-authenticate", "content-type", "content-length",
         "docker-content-digest", "location", "range", "docker-distribution-api-version"}
connections = []  # (number, requests bytes, responses bytes)
lock = threading.Lock()


def pump(src, dst, sink):
    while True:
        try:
            data = src.recv(65536)
        except OSError:
            data = b""
        if not data:
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            return
        sink.extend(data)
        dst.sendall(data)


def handle(client):
    upstream = socket.create_connection(("127.0.0.1", UPSTREAM))
    sent, received = bytearray(), bytearray()
    with lock:
        connections.append((len(connections) + 1, sent, received))
    a = threading.Thread(target=pump, args=(client, upstream, sent))
    b = threading.Thread(target=pump, args=(upstream, client, received))
    a.start(); b.start(); a.join(); b.join()
    client.close(); upstream.close()


def messages(stream):
    """Splits a byte stream into (start line, headers, body) HTTP messages."""
    pos = 0
    while pos < len(stream):
        end = stream.find(b"\r\n\r\n", pos)
        if end < 0:
            return
        head = stream[pos:end].decode("latin-1").split("\r\n")
        headers = [tuple(h.split(": ", 1)) for h in head[1:] if ": " in h]
        length = int(next((v for k, v in headers if k.lower() == "content-length"), "0"))
        if head[0].startswith("HTTP/") and " 204 " in head[0] or head[0].startswith(("GET ", "HEAD ")):
            length = length if head[0].startswith("HTTP/") else 0
        body = bytes(stream[end + 4:end + 4 + length])
        pos = end + 4 + length
        yield head[0], headers, body


def show_body(body, content_type):
    if not body:
        return []
    if "json" in content_type:
        try:
            text = json.dumps(json.loads(body), indent=2)
        except ValueError:
            text = body.decode("utf-8", "replace")
        lines = text.splitlines()
        return lines if len(lines) <= 30 else lines[:28] + ["  … (%d more lines)" % (len(lines) - 28)]
    return ["<%d bytes>" % len(body)]


def write(*_):
    out = []
    with lock:
        shown = [(s, r) for _, s, r in connections if s]  # skip readiness probes
        for number, (sent, received) in enumerate(shown, 1):
            out.append("### connection %d" % number)
            requests = list(messages(bytes(sent)))
            responses = list(messages(bytes(received)))
            for i, (line, headers, body) in enumerate(requests):
                out.append("")
                out.append("> " + line)
                out += ["> %s: %s" % (k, v) for k, v in headers if k.lower() in SHOWN]
                if i < len(responses):
                    rline, rheaders, rbody = responses[i]
                    if line.startswith("HEAD "):
                        rbody = b""
                    out.append("< " + rline)
                    out += ["< %s: %s" % (k, v) for k, v in rheaders if k.lower() in SHOWN]
                    ctype = next((v for k, v in rheaders if k.lower() == "content-type"), "")
                    out += ["  " + l for l in show_body(rbody, ctype)]
            out.append("")
    with open(OUT, "w") as f:
        f.write("\n".join(out) + "\n")
    sys.exit(0)


signal.signal(signal.SIGTERM, write)
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", LISTEN))
server.listen(16)
while True:
    conn, _ = server.accept()
    threading.Thread(target=handle, args=(conn,), daemon=True).start()
