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

# Other readers of our Delta tables, for tests/delta_read.py: delta-rs (deltalake), polars and
# DuckDB's delta extension must all read what we write, and moto's S3 server is a second S3
# for the Delta tests. A venv of its own, so the pins hold whatever python3 has. Pinned
# because each reader's view of the protocol moves with its version; the delta extension is
# the DuckDB build from the duckdb-extension-delta package (it needs its duckdb version exactly),
# loaded from its file, since these machines cannot download extensions. Without PyPI the
# Delta reader tests say they are skipped.
DELTA_VENV="$TOOLS/delta-venv"
DELTA_PINS=(duckdb==1.5.5 duckdb-extension-delta==1.5.5 deltalake==1.6.6 polars==2.1.0
  pyarrow==26.0.1 'moto[server]==5.2.5')
# Imports and versions both: a venv left by an older pin list is brought up to this one.
delta_venv_ok() {
  "$DELTA_VENV/bin/python" - "${DELTA_PINS[@]}" >/dev/null 2>&1 <<'EOF'
import sys, importlib.metadata as m
import deltalake, polars, duckdb, pyarrow, moto, werkzeug, duckdb_extension_delta
for pin in sys.argv[1:]:
    name, version = pin.split("==")
    assert m.version(name.split("[")[0]) == version, pin
EOF
}
if [ -z "${VOXLAKE_DELTA_PYTHON:-}" ]; then
  if ! delta_venv_ok; then
    echo "== installing the Delta readers in $DELTA_VENV (deltalake, polars, duckdb's delta; ~1 min once)"
    mkdir -p "$TOOLS"
    { python3 -m venv "$DELTA_VENV" \
      && "$DELTA_VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${DELTA_PINS[@]}"; } \
      || echo "   could not install the Delta readers: the Delta reader tests will say they are skipped"
  fi
  if delta_venv_ok; then export VOXLAKE_DELTA_PYTHON="$DELTA_VENV/bin/python"; fi
fi

# The report's browser test: Debian's Chromium, driven by playwright-core from npm (it opens the
# report headless and records console errors, requests and dialogs). CI fails rather than
# skips that test when these cannot be installed (VOXLAKE_REQUIRE_BROWSER).
if [ -z "${VOXLAKE_CHROMIUM:-}" ]; then
  if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    echo "== installing chromium (Debian's package, for the report's browser test; ~1 min once)"
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get install -y -q chromium >/dev/null 2>&1 \
      || { $SUDO apt-get update -q >/dev/null 2>&1 && $SUDO apt-get install -y -q chromium >/dev/null; } \
      || echo "   could not install chromium: the report's browser test will fail"
  fi
  if command -v chromium >/dev/null 2>&1; then VOXLAKE_CHROMIUM=$(command -v chromium); export VOXLAKE_CHROMIUM; fi
fi
if [ -z "${VOXLAKE_PLAYWRIGHT:-}" ]; then
  PLAYWRIGHT="$TOOLS/playwright/node_modules"
  if [ ! -d "$PLAYWRIGHT/playwright-core" ] && command -v npm >/dev/null 2>&1; then
    echo "== installing playwright-core from npm (drives Chromium for the report's test; ~10 s once)"
    npm install --silent --no-audit --no-fund --prefix "$TOOLS/playwright" playwright-core@1.64.1 \
      || echo "   npm could not install playwright-core: the report's browser test will fail"
  fi
  if [ -d "$PLAYWRIGHT/playwright-core" ]; then export VOXLAKE_PLAYWRIGHT="$PLAYWRIGHT"; fi
fi
export VOXLAKE_REQUIRE_BROWSER=1

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
