#!/usr/bin/env bash
# benches/compare.sh — voxlake end to end against DuckDB on the same pages, in one run.
#
#   benches/compare.sh            # ≥ 1 M Insights metric rows (14 000 calls), ~7 min after the build
#   benches/compare.sh --quick    # 400 calls: a smoke run of every step, ~1 min after the build
#   benches/compare.sh --calls N  # any size;  --repeat K: runs of each timed step (default 3, quick 1)
#   benches/compare.sh --baseline BIN   # also time another voxlake binary (an earlier build),
#                                       # interleaved with this one on the same simulator
#
# Steps: release build; `voxlake simulate --calls N --cache-mb …` on 127.0.0.1 (no rate limit;
# each per-call page is rendered once and served again from memory, so on a shared 2-core
# machine the simulator takes ~1 CPU-s of a round instead of ~2: a real API's work is not on
# the client's cores; every timed run follows an untimed pass that fills it); the Metrics
# pages saved as files (benches/support/fetch_pages.py: the same discovery, the same requests,
# the same bytes); then --repeat rounds, each timing back to back: `voxlake run` of a window job
# (insights_metrics, limiter wide open: 10 000 req/s, concurrency 8, page_size 1000) under
# /usr/bin/time -v (wall, CPU, peak RSS) and DuckDB (python duckdb) read_json + unnest +
# voxlake's columns + COPY … (FORMAT parquet, COMPRESSION zstd, PARTITION_BY (date)) with its
# default threads (benches/support/duckdb_copy.py); the same voxlake job at --threads 1 and
# DuckDB with 1 thread; the job with format = "delta" (for the delta/parquet ratio). Then a
# voxlake pass with every per-call table; the metrics run again on a 10× smaller dataset, for
# peak RSS at 1× and 10×; the scaling curve (rows/s at 2× and 4× the data); and peak RSS by
# --threads (1, 2, 4) and row_group_rows (32 768, 8 192). Each timed step's median run by wall
# time is reported (peak RSS: the highest of the repeats), and so is the median of the rounds'
# own ratios (a pair timed back to back shares a noisy spell of a shared 2-core machine).
# Environment: CARGO_TARGET_DIR is honoured; KEEP_WORK=1 keeps the temp folder.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

usage() {
  sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'
}

QUICK=0
BASELINE=""
CALLS=""
REPEAT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --calls) CALLS=${2:?--calls needs a number}; shift ;;
    --repeat) REPEAT=${2:?--repeat needs a number}; shift ;;
    --baseline) BASELINE=${2:?--baseline needs a binary}; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "compare.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
if [ -z "$CALLS" ]; then
  if [ "$QUICK" = 1 ]; then CALLS=400; else CALLS=14000; fi
fi
if [ -z "$REPEAT" ]; then
  if [ "$QUICK" = 1 ]; then REPEAT=1; else REPEAT=3; fi
fi
SMALL_CALLS=$(( CALLS / 10 > 0 ? CALLS / 10 : 1 ))
if [ "$QUICK" = 1 ]; then MIN_ROWS=1; else MIN_ROWS=1000000; fi
FROM=2024-05-01
TO=2024-05-02
# the simulator's page cache: ~47 kB of JSON a call, room for the 4x scaling run
SIM_CACHE_MB=$(( CALLS * 4 * 60 / 1000 + 64 ))
ACCOUNT=AC00000000000000000000000000000000
TOKEN=simulator-token

# ---------------------------------------------------------------- what it needs
if ! python3 -c "import duckdb" 2>/dev/null; then
  echo "== installing duckdb for python"
  python3 -m pip install --quiet --disable-pip-version-check duckdb \
    || python3 -m pip install --quiet --disable-pip-version-check --user duckdb \
    || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages duckdb
fi
if [ ! -x /usr/bin/time ] && command -v apt-get >/dev/null 2>&1; then
  echo "== installing GNU time (peak RSS)"
  { apt-get install -y -qq time || { apt-get update -qq && apt-get install -y -qq time; }; } >/dev/null 2>&1 || true
fi
if [ -x /usr/bin/time ]; then HAVE_TIME=1; else HAVE_TIME=0; echo "== no /usr/bin/time: peak RSS from /proc/PID/status (VmHWM)"; fi

echo "== cargo build --release"
cargo build --release --quiet
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/voxlake"
[ -x "$BIN" ] || { echo "compare.sh: no binary at $BIN" >&2; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/voxlake-compare.XXXXXX")
SIM_PID=""
cleanup() {
  stop_sim
  if [ "${KEEP_WORK:-0}" = 1 ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# ---------------------------------------------------------------- helpers
# start_sim, stop_sim, cpu_ticks, measure, field, median_run
. benches/support/lib.sh

write_job() { # name tables-toml-list output url
  cat >"$WORK/$1.toml" <<EOF
name = "$1"
output = "$3"
tables = [$2]
format = "${FORMAT:-parquet}"

[twilio]
insights_url = "$4"
api_url = "$4"
requests_per_second = 10000
concurrency = 8
page_size = 1000
EOF
  if [ -n "${PARQUET_ROW_GROUP:-}" ]; then
    printf '\n[parquet]\nrow_group_rows = %s\n' "$PARQUET_ROW_GROUP" >>"$WORK/$1.toml"
  fi
}

# voxlake_run NAME TABLES URL: a window run; leaves NAME.measure and the manifest summary NAME.rows
voxlake_run() {
  local name=$1 tables=$2 url=$3 out="$WORK/$1-lake"
  write_job "$name" "$tables" "$out" "$url"
  local before after
  before=$(cpu_ticks "$SIM_PID")
  measure "$name" env TWILIO_ACCOUNT_SID="$ACCOUNT" TWILIO_AUTH_TOKEN="$TOKEN" \
    "${RUN_BIN:-$BIN}" --no-progress --log-level warn ${THREADS:+--threads "$THREADS"} \
    run "$WORK/$name.toml" --from "$FROM" --to "$TO"
  after=$(cpu_ticks "$SIM_PID")
  echo "$(( after - before ))" >"$WORK/$name.simticks"
  python3 - "$out" >"$WORK/$name.rows" <<'PY'
import glob, json, sys
manifests = glob.glob(sys.argv[1] + "/_voxlake/runs/*.json")
assert len(manifests) == 1, manifests
m = json.load(open(manifests[0]))
assert m["outcome"] == "ok", m["outcome"]
rows = sum(t["rows"] for t in m["tables"].values())
per_table = " ".join(f"{k}={v['rows']}" for k, v in sorted(m["tables"].items()))
requests = sum(h["requests"] for h in m["http"].values())
throttled = sum(h["throttled"] for h in m["http"].values())
print(rows, requests, throttled, per_table)
PY
}

CLK_TCK=$(getconf CLK_TCK)

# ---------------------------------------------------------------- 1. voxlake, metrics, N calls
echo "== simulator: $CALLS calls, $FROM .. $TO, no rate limit"
start_sim "$CALLS"

# the same Metrics pages as files, for DuckDB (saved first: each round below times voxlake and
# DuckDB back to back, so a noisy spell on a shared machine falls on both of a pair)
echo "== saving the same Metrics pages as files"
read -r P_CALLS P_PAGES P_ROWS P_BYTES P_SECS < <(python3 benches/support/fetch_pages.py "$SIM_URL" "$WORK/pages" "$FROM" "$TO" 4)
echo "   $P_CALLS calls, $P_PAGES pages, $P_ROWS rows, $(( P_BYTES / 1000000 )) MB of JSON in ${P_SECS}s"

# duckdb_run THREADS I: DuckDB's COPY of the saved pages (THREADS 0: its default)
duckdb_run() {
  local threads=$1 i=$2 name=duckdb$1-$2
  echo "== DuckDB read_json + unnest + COPY … PARTITION_BY (date), threads=$([ "$threads" = 0 ] && echo default || echo "$threads"), $i of $REPEAT"
  rm -rf "$WORK/duckdb$threads-out"
  measure "$name" python3 benches/support/duckdb_copy.py schemas/insights_metrics.toml \
    "$WORK/pages/*.json" "$WORK/duckdb$threads-out" "$threads"
  read -r rows secs used <"$WORK/$name.out"
  # the COPY's own time, not the process's: DuckDB's import and connect are left out
  echo "$secs $(field "$WORK/$name.measure" 2) $(field "$WORK/$name.measure" 3)" >"$WORK/$name.measure"
  echo "   $rows rows in ${secs}s ($used threads), peak RSS $(field "$WORK/$name.measure" 3) kB"
}

echo "== an untimed voxlake pass (fills the simulator's page cache with voxlake's own requests)"
voxlake_run warm '"insights_metrics"' "$SIM_URL"
for i in $(seq 1 "$REPEAT"); do
  echo "== voxlake run (insights_metrics) against $SIM_URL, $i of $REPEAT"
  voxlake_run "metrics-$i" '"insights_metrics"' "$SIM_URL"
  echo "   $(field "$WORK/metrics-$i.measure" 1)s wall"
  echo "== voxlake --threads 1 run (insights_metrics), $i of $REPEAT"
  duckdb_run 0 "$i"
  THREADS=1 voxlake_run "one-$i" '"insights_metrics"' "$SIM_URL"
  echo "   $(field "$WORK/one-$i.measure" 1)s wall"
  duckdb_run 1 "$i"
  echo "== voxlake run (insights_metrics) with format = \"delta\", $i of $REPEAT"
  FORMAT=delta voxlake_run "delta-$i" '"insights_metrics"' "$SIM_URL"
  echo "   $(field "$WORK/delta-$i.measure" 1)s wall"
  if [ -n "$BASELINE" ]; then
    echo "== baseline $BASELINE, $i of $REPEAT"
    RUN_BIN="$BASELINE" voxlake_run "baseline-$i" '"insights_metrics"' "$SIM_URL"
    echo "   $(field "$WORK/baseline-$i.measure" 1)s wall"
  fi
done
if [ -n "$BASELINE" ]; then
  read -r B B_WALLS < <(median_run baseline "$REPEAT")
  B_WALL=$(field "$WORK/$B.measure" 1)
  B_CPU=$(field "$WORK/$B.measure" 2)
  B_RSS=$(field "$WORK/$B.measure" 3)
  echo "   baseline median of [$B_WALLS]s: ${B_WALL}s wall, ${B_CPU}s CPU, peak RSS $B_RSS kB"
fi
read -r M WALLS < <(median_run metrics "$REPEAT")
V_ROWS=$(field "$WORK/$M.rows" 1)
V_REQ=$(field "$WORK/$M.rows" 2)
V_WALL=$(field "$WORK/$M.measure" 1)
V_CPU=$(field "$WORK/$M.measure" 2)
V_RSS=$(field "$WORK/$M.measure" 3)
V_SIMCPU=$(echo "scale=2; $(cat "$WORK/$M.simticks") / $CLK_TCK" | bc)
V_LAKE="$WORK/$M-lake"
echo "   median of [$WALLS]s: $V_ROWS rows, $V_REQ requests, ${V_WALL}s wall, ${V_CPU}s CPU (simulator ${V_SIMCPU}s CPU), peak RSS $V_RSS kB"
read -r ONE ONE_WALLS < <(median_run one "$REPEAT")
ONE_WALL=$(field "$WORK/$ONE.measure" 1)
ONE_RSS=$(field "$WORK/$ONE.measure" 3)
echo "   --threads 1 median of [$ONE_WALLS]s: ${ONE_WALL}s wall, peak RSS $ONE_RSS kB"
read -r DL DL_WALLS < <(median_run delta "$REPEAT")
DL_ROWS=$(field "$WORK/$DL.rows" 1)
DL_WALL=$(field "$WORK/$DL.measure" 1)
DL_CPU=$(field "$WORK/$DL.measure" 2)
DL_RSS=$(field "$WORK/$DL.measure" 3)
echo "   delta median of [$DL_WALLS]s: $DL_ROWS rows, ${DL_WALL}s wall, ${DL_CPU}s CPU, peak RSS $DL_RSS kB"
[ "$DL_ROWS" = "$V_ROWS" ] || echo "   WARNING: delta wrote $DL_ROWS rows, parquet $V_ROWS"
if [ "$V_ROWS" -lt "$MIN_ROWS" ]; then
  echo "compare.sh: only $V_ROWS metric rows (< $MIN_ROWS): raise --calls" >&2
  exit 1
fi

[ "$P_ROWS" = "$V_ROWS" ] || echo "   WARNING: the pages hold $P_ROWS rows, voxlake wrote $V_ROWS"

# ---------------------------------------------------------------- 2. DuckDB, 1 thread and all (timed above)
for threads in 1 0; do
  read -r name WALLS < <(median_run "duckdb$threads" "$REPEAT")
  read -r rows secs used <"$WORK/$name.out"
  [ "$rows" = "$V_ROWS" ] || echo "   WARNING: DuckDB wrote $rows rows, voxlake $V_ROWS"
  eval "D${threads}_ROWS=$rows D${threads}_SECS=$secs D${threads}_THREADS=$used"
  eval "D${threads}_RSS=$(field "$WORK/$name.measure" 3) D${threads}_WALL=$(field "$WORK/$name.measure" 1)"
done
# each round's own ratio (DuckDB's time / voxlake's, timed back to back), and their median
PAIRED=$(python3 - "$WORK" "$REPEAT" <<'PY'
import statistics, sys
work, count = sys.argv[1], int(sys.argv[2])
wall = lambda name: float(open(f"{work}/{name}.measure").read().split()[0])
for duck, vox in (("duckdb1", "one"), ("duckdb0", "metrics")):
    ratios = [wall(f"{duck}-{i}") / wall(f"{vox}-{i}") for i in range(1, count + 1)]
    print(f"{statistics.median(ratios):.2f}", "/".join(f"{r:.2f}" for r in ratios), end=" ")
PY
)

# the two outputs hold the same rows and values
python3 - "$V_LAKE" "$WORK/duckdb1-out" <<'PY'
import duckdb, sys
def stats(root):
    return duckdb.connect().execute(f"""SELECT count(*), count(DISTINCT call_sid), round(sum(sdk_edge__interval__mos), 3),
        sum(carrier_edge__cumulative__packets_received), count(DISTINCT date)
        FROM read_parquet('{root}/**/*.parquet', hive_partitioning = true)""").fetchone()
v, d = stats(sys.argv[1] + "/insights_metrics"), stats(sys.argv[2])
print("   same data:" if v == d else "   WARNING, outputs differ:", "voxlake", v, "duckdb", d)
PY

# ---------------------------------------------------------------- 4. every per-call table
echo "== voxlake run (insights_events, insights_metrics, call_events, call_summaries)"
voxlake_run all '"insights_events", "insights_metrics", "call_events", "call_summaries"' "$SIM_URL"
A_ROWS=$(field "$WORK/all.rows" 1)
A_REQ=$(field "$WORK/all.rows" 2)
A_WALL=$(field "$WORK/all.measure" 1)
A_CPU=$(field "$WORK/all.measure" 2)
A_RSS=$(field "$WORK/all.measure" 3)
A_TABLES=$(cut -d' ' -f4- "$WORK/all.rows")
echo "   $A_ROWS rows ($A_TABLES), $A_REQ requests, ${A_WALL}s wall, ${A_CPU}s CPU, peak RSS $A_RSS kB"
stop_sim

# ---------------------------------------------------------------- 5. 10× smaller dataset
echo "== simulator: $SMALL_CALLS calls (10× smaller); voxlake run (insights_metrics)"
start_sim "$SMALL_CALLS"
voxlake_run warm-small '"insights_metrics"' "$SIM_URL"
voxlake_run small '"insights_metrics"' "$SIM_URL"
stop_sim
S_ROWS=$(field "$WORK/small.rows" 1)
S_WALL=$(field "$WORK/small.measure" 1)
S_RSS=$(field "$WORK/small.measure" 3)
echo "   $S_ROWS rows, ${S_WALL}s wall, peak RSS $S_RSS kB"

# ---------------------------------------------------------------- 6. the scaling curve
# rows/s at 2× and 4× the data (one run each, all threads), against the 1× median above
for factor in 2 4; do
  calls=$(( CALLS * factor ))
  echo "== simulator: $calls calls (${factor}× the data); voxlake run (insights_metrics)"
  start_sim "$calls"
  voxlake_run "warm-scale$factor" '"insights_metrics"' "$SIM_URL"
  voxlake_run "scale$factor" '"insights_metrics"' "$SIM_URL"
  stop_sim
  echo "   $(field "$WORK/scale$factor.rows" 1) rows, $(field "$WORK/scale$factor.measure" 1)s wall, peak RSS $(field "$WORK/scale$factor.measure" 3) kB"
done
SCALE="$(field "$WORK/scale2.rows" 1) $(field "$WORK/scale2.measure" 1) $(field "$WORK/scale2.measure" 3) $(field "$WORK/scale4.rows" 1) $(field "$WORK/scale4.measure" 1) $(field "$WORK/scale4.measure" 3)"

# ---------------------------------------------------------------- 7. peak RSS by threads and row group
# on the 1× data: --threads 1, 2, 4 with the default row groups (32 768 rows) and with 8 192
echo "== simulator: $CALLS calls; peak RSS by --threads and [parquet] row_group_rows"
start_sim "$CALLS"
voxlake_run warm-rss '"insights_metrics"' "$SIM_URL"
RSS_MATRIX=""
for rg in 32768 8192; do
  for threads in 1 2 4; do
    PARQUET_ROW_GROUP=$rg THREADS=$threads voxlake_run "rss-$threads-$rg" '"insights_metrics"' "$SIM_URL"
    RSS_MATRIX="$RSS_MATRIX $threads:$rg:$(field "$WORK/rss-$threads-$rg.measure" 3)"
  done
done
stop_sim
echo "   $RSS_MATRIX"

# ---------------------------------------------------------------- the table
python3 - <<PY
v_rows, v_wall, v_cpu = $V_ROWS, $V_WALL, $V_CPU
d1 = ($D1_ROWS, $D1_SECS, $D1_RSS, "$D1_THREADS")
dn = ($D0_ROWS, $D0_SECS, $D0_RSS, "$D0_THREADS")
a = ($A_ROWS, $A_WALL, $A_CPU, $A_RSS)
s = ($S_ROWS, $S_WALL, $S_RSS)
v_rss = $V_RSS
mb = $P_BYTES / 1e6
def rate(rows, secs): return rows / secs if secs > 0 else float("nan")
v = rate(v_rows, v_wall)
print()
print(f"{'route (insights_metrics, ' + format(v_rows, ',') + ' rows, ' + format(mb, '.0f') + ' MB JSON)':<58} {'seconds':>8} {'rows/s':>10} {'MB/s':>7} {'peak RSS':>9}")
print(f"{'voxlake run, end to end over loopback':<58} {v_wall:>8.2f} {v:>10,.0f} {mb / v_wall:>7.1f} {v_rss / 1024:>6.0f} MB")
print(f"{'  per voxlake CPU-second (' + format(v_cpu, '.1f') + ' s CPU; simulator $V_SIMCPU s)':<58} {v_cpu:>8.2f} {rate(v_rows, v_cpu):>10,.0f} {mb / v_cpu:>7.1f}")
for label, d in ((f"DuckDB COPY, threads={d1[3]}", d1), (f"DuckDB COPY, threads={dn[3]} (default)", dn)):
    print(f"{label:<58} {d[1]:>8.2f} {rate(d[0], d[1]):>10,.0f} {mb / d[1]:>7.1f} {d[2] / 1024:>6.0f} MB")
print()
one = rate(v_rows, $ONE_WALL)
print(f"{'voxlake --threads 1, end to end':<58} {$ONE_WALL:>8.2f} {one:>10,.0f} {mb / $ONE_WALL:>7.1f} {$ONE_RSS / 1024:>6.0f} MB")
print()
print(f"ratio voxlake / DuckDB, both 1 thread      : {one / rate(d1[0], d1[1]):.2f}x   (target >= 2x)")
print(f"ratio voxlake / DuckDB, both all threads   : {v / rate(dn[0], dn[1]):.2f}x   (target >= 2x; DuckDB {dn[3]} threads)")
print(f"ratio voxlake all threads / DuckDB 1 thread: {v / rate(d1[0], d1[1]):.2f}x   (the figure before --threads)")
paired = "$PAIRED".split()
print(f"paired rounds (DuckDB / voxlake, each round back to back; median [rounds]):"
      f" 1 thread {paired[0]}x [{paired[1]}], all threads {paired[2]}x [{paired[3]}]")
print(f"requests per call (insights_metrics)       : {$V_REQ / max(1, $P_CALLS):.2f} ({$V_REQ} requests, {$P_CALLS} calls, listing included)")
print(f"format = delta / parquet          : wall {$DL_WALL / v_wall:.2f}x, CPU {$DL_CPU / v_cpu:.2f}x, peak RSS {$DL_RSS / v_rss:.2f}x ({$DL_RSS / 1024:.0f} MB)   (goal <= 1.1x time, <= 1.2x RSS)")
print(f"voxlake all per-call tables       : {a[0]:,} rows in {a[1]:.2f}s = {rate(a[0], a[1]):,.0f} rows/s, {a[2]:.1f}s CPU, peak RSS {a[3] / 1024:.0f} MB")
if "$BASELINE":
    bw, bc = float("${B_WALL:-0}"), float("${B_CPU:-0}")
    print(f"this build / baseline ($BASELINE): wall {v_wall / bw:.3f}x, CPU {v_cpu / bc:.3f}x, peak RSS {v_rss / float('${B_RSS:-1}'):.2f}x")
sc = [float(x) for x in "$SCALE".split()]
print(f"scaling, rows/s at 1x / 2x / 4x the data : {v:,.0f} / {rate(sc[0], sc[1]):,.0f} / {rate(sc[3], sc[4]):,.0f}"
      f" = 1.00 / {rate(sc[0], sc[1]) / v:.2f} / {rate(sc[3], sc[4]) / v:.2f}   (goal: flat or better);"
      f" peak RSS {v_rss / 1024:.0f} / {sc[2] / 1024:.0f} / {sc[5] / 1024:.0f} MB")
matrix = {tuple(m.split(":")[:2]): int(m.split(":")[2]) for m in "$RSS_MATRIX".split()}
for rg in ("32768", "8192"):
    cells = ", ".join(f"--threads {t}: {matrix[(t, rg)] / 1024:.0f} MB" for t in ("1", "2", "4"))
    print(f"peak RSS, row_group_rows = {rg:>5}      : {cells}")
print(f"peak RSS, metrics: {s[0]:,} rows (1x) {s[2] / 1024:.0f} MB; {v_rows:,} rows (10x) {v_rss / 1024:.0f} MB; growth {100 * (v_rss / s[2] - 1):+.0f}%   (target <= 150 MB, within 20%)")
PY
