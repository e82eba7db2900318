#!/usr/bin/env bash
# benches/rate.sh — does voxlake use the rate it is given, without 429s?
#
#   benches/rate.sh                         # R = 25 and 100, 300 calls, with 1, 2 and 4 tables
#   benches/rate.sh --rates "50" --calls 500
#   benches/rate.sh --quick                 # R = 100, 60 calls
#
# For each R and each set of tables fetched concurrently (1: insights_metrics; 2: + events;
# 4: + call_events and call_summaries): `voxlake simulate --rate-limit R` (a token bucket of
# R/s per API, burst max(2, R/10), 429 beyond) on 127.0.0.1, and a window job at
# `requests_per_second = R`, concurrency 8 (Insights: events, metrics, summary per call; REST:
# Calls.json discovery and call events). Per API it prints the requests sent, the achieved
# rate over the run (requests ÷ wall time) against R, the 429s received and the retries (from
# the run manifest; the simulator answers nothing but its own limit here, so every 429 is one
# voxlake caused), and the run's wall time against the ideal: the busiest API's requests ÷ R.
# Targets (issues 6 and 14): ≥ 98 % of R, 0 429s, time ≤ 1.1 × ideal.
# Environment: CARGO_TARGET_DIR is honoured; KEEP_WORK=1 keeps the temp folder.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

usage() {
  sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'
}

RATES="25 100"
CALLS=300
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) RATES=100; CALLS=60 ;;
    --rates) RATES=${2:?--rates needs a list}; shift ;;
    --calls) CALLS=${2:?--calls needs a number}; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "rate.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
FROM=2024-05-01
TO=2024-05-02
ACCOUNT=AC00000000000000000000000000000000
TOKEN=simulator-token
TABLE_SETS=('"insights_metrics"' '"insights_events", "insights_metrics"'
  '"insights_events", "insights_metrics", "call_events", "call_summaries"')

echo "== cargo build --release"
cargo build --release --quiet
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/voxlake"
[ -x "$BIN" ] || { echo "rate.sh: no binary at $BIN" >&2; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/voxlake-rate.XXXXXX")
SIM_PID=""
stop_sim() {
  [ -n "$SIM_PID" ] || return 0
  # SIGTERM: a background job of a script ignores SIGINT, and the simulator keeps nothing to flush
  kill -TERM "$SIM_PID" 2>/dev/null || true
  wait "$SIM_PID" 2>/dev/null || true
  SIM_PID=""
}
cleanup() {
  stop_sim
  if [ "${KEEP_WORK:-0}" = 1 ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

: >"$WORK/results"
for R in $RATES; do
for TABLES in "${TABLE_SETS[@]}"; do
  N=$(echo "$TABLES" | tr ',' '\n' | wc -l)
  echo "== R = $R/s, $N tables: simulator --rate-limit $R --calls $CALLS; voxlake at $R/s, concurrency 8"
  "$BIN" simulate --calls "$CALLS" --rate-limit "$R" --port 0 >"$WORK/sim-$R-$N.out" 2>"$WORK/sim-$R-$N.err" &
  SIM_PID=$!
  URL=""
  for _ in $(seq 1 300); do
    URL=$(sed -n '1s/^listening on //p' "$WORK/sim-$R-$N.out")
    [ -n "$URL" ] && break
    kill -0 "$SIM_PID" 2>/dev/null || { cat "$WORK/sim-$R-$N.err" >&2; exit 1; }
    sleep 0.1
  done
  case "$URL" in http://127.0.0.1:*) ;; *) echo "rate.sh: the simulator did not start" >&2; exit 1 ;; esac
  cat >"$WORK/rate-$R-$N.toml" <<EOF
name = "rate"
output = "$WORK/lake-$R-$N"
tables = [$TABLES]

[twilio]
insights_url = "$URL"
api_url = "$URL"
requests_per_second = $R
concurrency = 8
page_size = 1000
EOF
  status=0
  start=$(date +%s.%N)
  TWILIO_ACCOUNT_SID=$ACCOUNT TWILIO_AUTH_TOKEN=$TOKEN \
    "$BIN" --no-progress --log-level warn run "$WORK/rate-$R-$N.toml" --from "$FROM" --to "$TO" \
    2>"$WORK/run-$R-$N.err" || status=$?
  end=$(date +%s.%N)
  stop_sim
  if [ "$status" != 0 ]; then
    echo "rate.sh: the run failed (exit $status):" >&2
    tail -n 30 "$WORK/run-$R-$N.err" >&2
    exit 1
  fi
  sed -n '/^voxlake /,$p' "$WORK/run-$R-$N.err" | sed 's/^/   /'
  python3 - "$WORK/lake-$R-$N" "$R" "$start" "$end" "$N" >>"$WORK/results" <<'PY'
import glob, json, sys
root, rate, start, end = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
tables = sys.argv[5]
(path,) = glob.glob(root + "/_voxlake/runs/*.json")
m = json.load(open(path))
wall = end - start
busiest = max(h["requests"] for h in m["http"].values())
ideal = busiest / rate
for api, h in sorted(m["http"].items()):
    achieved = h["requests"] / wall
    print(f"{rate} {tables} {api.replace(' ', '_')} {h['requests']} {achieved:.1f} {h['throttled']} {h['retries']} {wall:.2f} {ideal:.2f}")
PY
done
done

echo
printf '%-5s %-7s %-22s %9s %11s %8s %6s %8s %8s %8s %8s\n' R tables api requests 'achieved/s' '% of R' 429s retries 'time s' 'ideal s' 'time/ideal'
while read -r R N api requests achieved throttled retries wall ideal; do
  printf '%-5s %-7s %-22s %9s %11s %7.1f%% %6s %8s %8s %8s %9.2fx\n' "$R" "$N" "$api" "$requests" "$achieved" \
    "$(echo "100 * $achieved / $R" | bc -l)" "$throttled" "$retries" "$wall" "$ideal" \
    "$(echo "$wall / $ideal" | bc -l)"
done <"$WORK/results"
echo "(achieved/s = the API's requests ÷ the run's wall time; ideal = the busiest API's requests ÷ R;"
echo " targets: ≥ 98 % of R on the busiest API, 0 429s, time ≤ 1.1 × ideal)"
