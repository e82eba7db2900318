#!/usr/bin/env bash
# The test command: installs what the tests need (python's duckdb, to read the output the way
# analysts do), checks formatting and lints, then runs every test. Needs only the Rust
# toolchain, python3 and pip; the tests start their own servers on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! python3 -c "import duckdb" 2>/dev/null; then
  echo "== installing duckdb for python (reads the Parquet output in the tests)"
  python3 -m pip install --quiet --disable-pip-version-check duckdb \
    || python3 -m pip install --quiet --disable-pip-version-check --user duckdb \
    || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages duckdb
fi

echo "== cargo fmt --check"
cargo fmt --check
echo "== cargo clippy"
cargo clippy --all-targets --quiet -- -D warnings
echo "== cargo test"
cargo test --quiet --all-targets "$@"
cargo test --quiet --doc
