#!/usr/bin/env bash
# benches/report.sh — `voxlake report` against DuckDB computing the same aggregates over the
# same lake, in one run.
#
#   benches/report.sh            # the 1 M-metric-row lake of benches/compare.sh (14 000 calls)
#   benches/report.sh --quick    # 400 calls, a smoke run
#   benches/report.sh --calls N --repeat K
#
# Steps: release build; `voxlake simulate --calls N`; one window run of calls, call_summaries,
# insights_metrics and insights_events into a local lake; then, interleaved and repeated,
# `voxlake report` (whole process under /usr/bin/time -v: wall, CPU, peak RSS) and DuckDB
# (python duckdb, benches/support/report_duckdb.py: the same calls per day and hour, MOS
# histogram and daily quantiles, per edge quantiles, tag shares, worst 20, groups and error
# counts) with its default threads and with 1. DuckDB's figure is its queries' own time
# (import and connect left out), which favours it. Medians by wall time are reported.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

QUICK=0
CALLS=""
REPEAT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --calls) CALLS=${2:?--calls needs a number}; shift ;;
    --repeat) REPEAT=${2:?--repeat needs a number}; shift ;;
    -h|--help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "report.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
if [ -z "$CALLS" ]; then if [ "$QUICK" = 1 ]; then CALLS=400; else CALLS=14000; fi; fi
if [ -z "$REPEAT" ]; then if [ "$QUICK" = 1 ]; then REPEAT=1; else REPEAT=3; fi; fi
FROM=2024-05-01T00:00:00Z
TO=2024-05-02T00:00:00Z

python3 -c "import duckdb" 2>/dev/null || python3 -m pip install --quiet duckdb || python3 -m pip install --quiet --break-system-packages duckdb
if [ -x /usr/bin/time ]; then HAVE_TIME=1; else HAVE_TIME=0; fi
echo "== cargo build --release"
cargo build --release --quiet
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/voxlake"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/voxlake-report.XXXXXX")
SIM_PID=""
cleanup() {
  stop_sim
  if [ "${KEEP_WORK:-0}" = 1 ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
# start_sim, stop_sim, measure, field, median_run
. benches/support/lib.sh

echo "== simulator: $CALLS calls; one window run into $WORK/lake"
start_sim "$CALLS"
cat >"$WORK/job.toml" <<TOML
name = "bench"
output = "$WORK/lake"
tables = ["calls", "call_summaries", "insights_metrics", "insights_events"]

[twilio]
insights_url = "$SIM_URL"
api_url = "$SIM_URL"
requests_per_second = 10000
concurrency = 8
page_size = 1000
TOML
TWILIO_ACCOUNT_SID=AC00000000000000000000000000000000 TWILIO_AUTH_TOKEN=simulator-token \
  "$BIN" --no-progress --log-level warn run "$WORK/job.toml" --from "$FROM" --to "$TO"
stop_sim
ROWS=$(python3 -c "import duckdb,sys; print(duckdb.connect().execute(\"SELECT count(*) FROM read_parquet('$WORK/lake/insights_metrics/*/*.parquet')\").fetchone()[0])")
echo "   $ROWS metric rows"

for i in $(seq 1 "$REPEAT"); do
  echo "== voxlake report, $i of $REPEAT"
  measure "vox-$i" "$BIN" report "$WORK/job.toml" --from "$FROM" --to "$TO" \
    --output-file "$WORK/report.html" --json "$WORK/figures.json"
  echo "   $(field "$WORK/vox-$i.measure" 1)s wall, peak RSS $(field "$WORK/vox-$i.measure" 3) kB"
  for threads in 0 1; do
    name=duckdb$threads-$i
    measure "$name" python3 benches/support/report_duckdb.py "$WORK/lake" "$FROM" "$TO" "$threads"
    read -r secs used calls p50 <"$WORK/$name.out"
    echo "$secs $(field "$WORK/$name.measure" 2) $(field "$WORK/$name.measure" 3)" >"$WORK/$name.measure"
    echo "   DuckDB ($used threads): ${secs}s, peak RSS $(field "$WORK/$name.measure" 3) kB; $calls calls, first day's MOS p50 $p50"
  done
done
read -r V VW < <(median_run vox "$REPEAT")
read -r D0 D0W < <(median_run duckdb0 "$REPEAT")
read -r D1 D1W < <(median_run duckdb1 "$REPEAT")
python3 - "$WORK" "$V" "$D0" "$D1" "$ROWS" <<'PY'
import json, sys
work, v, d0, d1, rows = sys.argv[1:6]
def m(name):
    wall, cpu, rss = open(f"{work}/{name}.measure").read().split()
    return float(wall), float(cpu), int(rss)
def out(name):
    return open(f"{work}/{name}.out").read().split()
fig = json.load(open(f"{work}/figures.json"))
first = next(d for d in fig["mos"]["daily"] if d["samples"])
secs, used, calls, p50 = out(d0)
same = int(calls) == fig["calls"]["total"] and abs(float(p50) - first["p50"]) < 1e-9
vw, vc, vr = m(v)
print()
print(f"voxlake report over {int(rows):,} metric rows ({fig['rows_read']:,} rows read): {vw:.2f}s wall, {vc:.2f}s CPU, peak RSS {vr / 1024:.0f} MB")
for name, label in ((d0, f"DuckDB, {used} threads (default)"), (d1, f"DuckDB, {out(d1)[1]} thread")):
    w, _, r = m(name)
    print(f"{label:<32}: {w:.2f}s (queries only), peak RSS {r / 1024:.0f} MB; voxlake/DuckDB time {vw / w:.2f}x")
print(f"figures agree (calls {calls}, first day's MOS p50 {p50}): {same}")
print("goal: <= 1x DuckDB's time, <= 200 MB peak RSS")
PY
