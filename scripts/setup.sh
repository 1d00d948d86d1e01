#!/usr/bin/env bash
# Installs what keel's demo and tests need on a fresh Debian machine, as root. Sourced by
# demo.sh and test.sh; safe to run again (it installs only what is missing).
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
  echo "keel needs root for namespaces, mounts and cgroups: run this as root (sudo $0)" >&2
  exit 1
fi

export PATH="$HOME/.cargo/bin:$PATH"
MDBOOK_VERSION=0.5.4

missing=()
# A static busybox is the embedded default rootfs; setpriv and mount come from util-linux.
if ! { [ -x /bin/busybox ] && ! LC_ALL=C file /bin/busybox 2>/dev/null | grep -q dynamically; }; then
  missing+=(busybox-static)
fi
command -v setpriv >/dev/null || missing+=(util-linux)
command -v python3 >/dev/null || missing+=(python3)
command -v file >/dev/null || missing+=(file)
# Real peers for the image tests: a registry server, skopeo to push to it, htpasswd and
# openssl for its basic auth and TLS; umoci for the unpack benchmark.
command -v docker-registry >/dev/null || missing+=(docker-registry)
# The real docker CLI drives the engine (step 07) in the demo and the tests.
command -v docker >/dev/null || missing+=(docker.io)
command -v skopeo >/dev/null || missing+=(skopeo)
command -v umoci >/dev/null || missing+=(umoci)
command -v htpasswd >/dev/null || missing+=(apache2-utils)
command -v openssl >/dev/null || missing+=(openssl)
command -v tar >/dev/null || missing+=(tar)
# The runtime's peers: containerd drives it in the tests (ctr, containerd-shim-runc-v2);
# runc is the reference its state output is compared with; crun is benchmarked beside it;
# script(1) gives `ctr run -t` a terminal.
command -v containerd >/dev/null || missing+=(containerd)
command -v runc >/dev/null || missing+=(runc)
command -v crun >/dev/null || missing+=(crun)
command -v script >/dev/null || missing+=(bsdutils)
# socat bridges the engine's unix socket to 127.0.0.1 for the API fuzzer (tests/step07_fuzz.rs).
command -v socat >/dev/null || missing+=(socat)
# The book's run-it blocks (tests/book_run_it.rs) trace the engine and call its API by hand.
command -v strace >/dev/null || missing+=(strace)
command -v curl >/dev/null || missing+=(curl)
# bc: the benchmarks' arithmetic (benches/engine.sh).
command -v bc >/dev/null || missing+=(bc)
# Book diagrams are regenerated from their sources with graphviz (book/tools/diagrams.sh);
# the checked-in SVGs need nothing to build.
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# docker-py, the Python SDK, is a second real client of the engine (PyPI `docker`).
if ! python3 -c 'import docker' 2>/dev/null; then
  echo "installing docker-py (pip install docker)"
  python3 -m pip install --quiet --disable-pip-version-check docker
fi

# schemathesis fuzzes the engine's API from its OpenAPI document (tests/step07_fuzz.rs);
# pinned: its command line changes between majors (4.x works with Python 3.11).
if ! command -v schemathesis >/dev/null || ! schemathesis --version | grep -q ' 4\.32\.5$'; then
  echo "installing schemathesis (pip install schemathesis==4.32.5)"
  python3 -m pip install --quiet --disable-pip-version-check 'schemathesis==4.32.5'
fi

if ! command -v cargo >/dev/null; then
  echo "cargo is missing: install Rust (https://rustup.rs) and run this again" >&2
  exit 1
fi
