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

# A real S3-compatible server for the S3 tests: s3s-fs checks request signatures for real and
# keeps objects on disk (so a server stopped mid-run comes back with its data). Pinned: newer
# releases need a newer rustc than this toolchain.
TOOLS="${VOXLAKE_TOOLS:-$HOME/.cache/voxlake-tools}"
S3S_ROOT="$TOOLS"
if [ -z "${VOXLAKE_S3S_FS:-}" ]; then
  if command -v s3s-fs >/dev/null 2>&1; then
    VOXLAKE_S3S_FS=$(command -v s3s-fs)
  else
    if [ ! -x "$S3S_ROOT/bin/s3s-fs" ]; then
      echo "== installing s3s-fs (S3 server for the tests; ~2 min once)"
      cargo install --quiet s3s-fs@0.14.1 --features binary --locked --root "$S3S_ROOT"
    fi
    VOXLAKE_S3S_FS="$S3S_ROOT/bin/s3s-fs"
  fi
fi
export VOXLAKE_S3S_FS

# Prism (Stoplight's OpenAPI mock server, from npm) for the test against Twilio's own specs;
# without npm's registry that test says it is skipped.
if [ -z "${VOXLAKE_PRISM:-}" ]; then
  PRISM="$S3S_ROOT/prism/node_modules/.bin/prism"
  if [ ! -x "$PRISM" ] && command -v npm >/dev/null 2>&1; then
    echo "== installing Prism from npm (serves Twilio's OpenAPI specs to a test; ~20 s once)"
    npm install --silent --no-audit --no-fund --prefix "$S3S_ROOT/prism" @stoplight/prism-cli@5.16.0 \
      || echo "   npm could not install Prism: the Prism test will say it is skipped"
  fi
  if [ -x "$PRISM" ]; then export VOXLAKE_PRISM="$PRISM"; fi
fi

echo "== cargo fmt --check"
cargo fmt --check
echo "== cargo clippy"
cargo clippy --all-targets --quiet -- -D warnings
# Licences, banned crates and sources (cargo-deny; advisories need a database these machines
# cannot fetch).
DENY="${VOXLAKE_CARGO_DENY:-}"
if [ -z "$DENY" ]; then
  if command -v cargo-deny >/dev/null 2>&1; then
    DENY=$(command -v cargo-deny)
  else
    if [ ! -x "$S3S_ROOT/bin/cargo-deny" ]; then
      echo "== installing cargo-deny (~3 min once)"
      cargo install --quiet cargo-deny@0.20.2 --locked --root "$S3S_ROOT"
    fi
    DENY="$S3S_ROOT/bin/cargo-deny"
  fi
fi
echo "== cargo deny (licenses, bans, sources)"
# cargo-deny reads `cargo metadata` for every platform: fetch the crates a build for this one
# did not need (it runs offline after that).
cargo fetch --quiet
"$DENY" --config .ci/deny.toml --offline check licenses bans sources

echo "== cargo test"
cargo test --quiet --all-targets "$@"
cargo test --quiet --doc
