# benches/support/lib.sh — helpers the bench scripts share (sourced; needs WORK, BIN and
# HAVE_TIME set): the simulator in the background, timed commands (wall, CPU, peak RSS), the
# median of repeated runs.
start_sim() { # calls → SIM_PID, SIM_URL   (SIM_CACHE_MB: the simulator's page cache, default off)
  local out="$WORK/sim-$1.out"
  "$BIN" simulate --calls "$1" --port 0 --cache-mb "${SIM_CACHE_MB:-0}" >"$out" 2>"$WORK/sim-$1.err" &
  SIM_PID=$!
  SIM_URL=""
  for _ in $(seq 1 600); do
    SIM_URL=$(sed -n '1s/^listening on //p' "$out")
    [ -n "$SIM_URL" ] && break
    kill -0 "$SIM_PID" 2>/dev/null || { cat "$WORK/sim-$1.err" >&2; exit 1; }
    sleep 0.1
  done
  [ -n "$SIM_URL" ] || { echo "compare.sh: the simulator did not start" >&2; exit 1; }
  case "$SIM_URL" in http://127.0.0.1:*) ;; *) echo "not loopback: $SIM_URL" >&2; exit 1 ;; esac
}

stop_sim() {
  [ -n "$SIM_PID" ] || return 0
  # SIGTERM: a background job of a script ignores SIGINT, and the simulator keeps nothing to flush
  kill -TERM "$SIM_PID" 2>/dev/null || true
  wait "$SIM_PID" 2>/dev/null || true
  SIM_PID=""
}

cpu_ticks() { # pid → utime+stime in clock ticks
  awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0
}

# measure NAME CMD... : runs CMD, writes $WORK/NAME.measure (wall_s cpu_s rss_kb), stderr to $WORK/NAME.err
measure() {
  local name=$1; shift
  local status=0
  if [ "$HAVE_TIME" = 1 ]; then
    /usr/bin/time -v -o "$WORK/$name.time" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" || status=$?
    python3 - "$WORK/$name.time" >"$WORK/$name.measure" <<'PY'
import sys
v = {}
for line in open(sys.argv[1]):
    if ":" in line:
        k, _, val = line.strip().rpartition(": ")
        v[k] = val
parts = [float(p) for p in v["Elapsed (wall clock) time (h:mm:ss or m:ss)"].split(":")]
wall = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
cpu = float(v["User time (seconds)"]) + float(v["System time (seconds)"])
print(f"{wall:.3f} {cpu:.3f} {v['Maximum resident set size (kbytes)']}")
PY
  else
    local start end pid hwm=0 h
    start=$(date +%s.%N)
    "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
    pid=$!
    while kill -0 "$pid" 2>/dev/null; do
      h=$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
      [ "${h:-0}" -gt "$hwm" ] && hwm=$h
      sleep 0.05
    done
    wait "$pid" || status=$?
    end=$(date +%s.%N)
    echo "$(echo "$end - $start" | bc) 0 $hwm" >"$WORK/$name.measure"
  fi
  if [ "$status" != 0 ]; then
    echo "compare.sh: $name failed (exit $status):" >&2
    tail -n 30 "$WORK/$name.err" >&2
    exit 1
  fi
}

field() { # file index(1-based)
  awk -v i="$2" '{print $i; exit}' "$1"
}

median_run() { # prefix count → the name of the median run by wall time; its RSS becomes the max
  python3 - "$WORK" "$1" "$2" <<'PY'
import sys
work, prefix, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
runs = []
for i in range(1, count + 1):
    wall, cpu, rss = open(f"{work}/{prefix}-{i}.measure").read().split()
    runs.append((float(wall), f"{prefix}-{i}", int(rss)))
runs.sort()
wall, name, _ = runs[len(runs) // 2]
peak = max(r[2] for r in runs)
m = open(f"{work}/{name}.measure").read().split()
open(f"{work}/{name}.measure", "w").write(f"{m[0]} {m[1]} {peak}\n")
print(name, " ".join(f"{r[0]:.2f}" for r in runs))
PY
}

