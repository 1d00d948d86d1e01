#!/usr/bin/env bash
# Every test of keel: formatting, lints, unit and integration tests (as root), and the book
# with every include and link checked. CI runs exactly this (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

if ! mdbook --version 2>/dev/null | grep -q "v$MDBOOK_VERSION"; then
  cargo install --locked --quiet mdbook --version "$MDBOOK_VERSION"
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
# The integration tests run the step binaries: build them first.
cargo build --workspace --quiet
# Under CI insta never writes snapshots: a missing or different one fails the run.
cargo test --workspace
mdbook build book
python3 book/check.py
