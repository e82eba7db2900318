#!/usr/bin/env bash
# benches/one_call.sh — peak memory of one huge call: a call's rows stream to its hour's row
# groups as its pages arrive, so memory stays flat however large a single call is.
#
#   benches/one_call.sh                # one carrier call of 1 M metric rows, and of 100 k
#   benches/one_call.sh --rows N       # any size (the second run is N / 10)
#
# Steps: release build; `voxlake simulate --calls 0 --long-call-secs 10·N` on 127.0.0.1 (one
# call, a metric sample every 10 s); `voxlake run` of insights_metrics over the call's day
# under /usr/bin/time -v; rows landed (read back with DuckDB) and peak RSS; the same at N / 10.
# Environment: CARGO_TARGET_DIR is honoured; KEEP_WORK=1 keeps the temp folder.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

ROWS=1000000
while [ $# -gt 0 ]; do
  case "$1" in
    --rows) ROWS=${2:?--rows needs a number}; shift ;;
    -h|--help) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "one_call.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

if ! python3 -c "import duckdb" 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check duckdb \
    || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages duckdb
fi
[ -x /usr/bin/time ] || { echo "one_call.sh: needs GNU time (apt-get install time)" >&2; exit 1; }

echo "== cargo build --release"
cargo build --release --quiet
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/voxlake"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/voxlake-one-call.XXXXXX")
SIM_PID=""
cleanup() {
  [ -n "$SIM_PID" ] && kill -TERM "$SIM_PID" 2>/dev/null || true
  if [ "${KEEP_WORK:-0}" = 1 ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# one_call ROWS → prints "rows peak_kb wall_s"
one_call() {
  local rows=$1 out="$WORK/sim-$1.out"
  "$BIN" simulate --calls 0 --long-call-secs $(( rows * 10 )) --port 0 >"$out" 2>"$WORK/sim.err" &
  SIM_PID=$!
  local url=""
  for _ in $(seq 1 600); do
    url=$(sed -n '1s/^listening on //p' "$out")
    [ -n "$url" ] && break
    sleep 0.1
  done
  case "$url" in http://127.0.0.1:*) ;; *) echo "one_call.sh: no simulator" >&2; exit 1 ;; esac
  cat >"$WORK/job-$rows.toml" <<EOF
name = "one-call"
output = "$WORK/lake-$rows"
tables = ["insights_metrics"]
[twilio]
insights_url = "$url"
api_url = "$url"
requests_per_second = 10000
page_size = 1000
EOF
  /usr/bin/time -v -o "$WORK/time-$rows" env TWILIO_ACCOUNT_SID=AC00000000000000000000000000000000 \
    TWILIO_AUTH_TOKEN=simulator-token "$BIN" --no-progress --log-level warn \
    run "$WORK/job-$rows.toml" --from 2024-05-01 --to 2024-05-02 >/dev/null 2>"$WORK/run-$rows.err" \
    || { tail "$WORK/run-$rows.err" >&2; exit 1; }
  kill -TERM "$SIM_PID" 2>/dev/null || true
  wait "$SIM_PID" 2>/dev/null || true
  SIM_PID=""
  python3 - "$WORK/time-$rows" "$WORK/lake-$rows" <<'PY'
import duckdb, sys
v = {}
for line in open(sys.argv[1]):
    k, _, val = line.strip().rpartition(": ")
    v[k] = val
parts = [float(p) for p in v["Elapsed (wall clock) time (h:mm:ss or m:ss)"].split(":")]
wall = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
rows = duckdb.sql(f"SELECT count(*) FROM read_parquet('{sys.argv[2]}/insights_metrics/**/*.parquet')").fetchall()[0][0]
print(rows, v["Maximum resident set size (kbytes)"], f"{wall:.2f}")
PY
}

echo "== one call of $ROWS metric rows"
read -r BIG_ROWS BIG_KB BIG_WALL < <(one_call "$ROWS")
SMALL=$(( ROWS / 10 ))
echo "== one call of $SMALL metric rows"
read -r SMALL_ROWS SMALL_KB SMALL_WALL < <(one_call "$SMALL")
echo
printf '%-34s %12s %10s %10s\n' "one call (insights_metrics)" "rows landed" "seconds" "peak RSS"
printf '%-34s %12s %10s %7s MB\n' "$SMALL samples" "$SMALL_ROWS" "$SMALL_WALL" $(( SMALL_KB / 1024 ))
printf '%-34s %12s %10s %7s MB\n' "$ROWS samples" "$BIG_ROWS" "$BIG_WALL" $(( BIG_KB / 1024 ))
echo "growth 10x rows: $(python3 -c "print(f'{100 * ($BIG_KB / $SMALL_KB - 1):+.0f}%')")   (target: 1 M-row call <= 150 MB)"
