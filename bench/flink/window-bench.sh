#!/usr/bin/env bash
# Flink's side of the windowed benchmark (docs/benchmarks.md): peer.WindowWordCount
# (src/peer/WindowWordCount.java: ThroughputWordCount's words with a synthetic event time,
# 1 s tumbling event-time windows counting per word, exactly-once checkpoints every 1 s), on
# the peer's Flink (shared/peer/flink, set up with its setup.sh; VENV may point elsewhere).
# Compiles the job when its sources are newer than the classes, runs it once and prints one
# line: the job's RESULT pairs (words_per_s, window_results, windows, count_sum = N, digest),
# then peak RSS and CPU of the JVM (/usr/bin/time -v) and the checkpoints Flink logged
# (count, median and max duration, max size). other_cpu_s is the CPU that other processes
# used during the run (busy time in /proc/stat minus the JVM's own): above ~1 s the run was
# disturbed by something else on the machine.
# Usage: window-bench.sh [--wordcount] N [parallelism]
# --wordcount runs the peer's plain peer.ThroughputWordCount (same words, no event time, a
# running sum per word) the same way instead, so both of Flink's jobs can be measured in one
# invocation next to Floe's (bench/window-compare.sh); its line says job=wordcount.
# Extra JVM flags: $JAVA_OPTS. Compiled classes: $CLASSES (default /tmp/floe-flink-window/classes).
# The run's directory (log, checkpoints) is removed afterwards unless KEEP=1 or the run fails.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PEER="${PEER:-$HERE/../../../shared/peer/flink}"
source "$PEER/env.sh"
JOB=window
CLASS=peer.WindowWordCount
if [ "${1:-}" = --wordcount ]; then
  JOB=wordcount
  CLASS=peer.ThroughputWordCount
  shift
fi
N="${1:?usage: window-bench.sh [--wordcount] N [parallelism]}"
P="${2:-2}"
SOURCES=("$PEER"/src/peer/ThroughputWordCount.java "$HERE"/src/peer/WindowWordCount.java)
CLASSES="${CLASSES:-/tmp/floe-flink-window/classes}"
STAMP="$CLASSES/peer/WindowWordCount.class"
stale=0
[ -f "$STAMP" ] || stale=1
for s in "${SOURCES[@]}"; do [ "$s" -nt "$STAMP" ] && stale=1; done
if [ "$stale" = 1 ]; then
  rm -rf "$CLASSES" && mkdir -p "$CLASSES"
  "$JAVAC" -nowarn -Xlint:none -source 17 -target 17 -cp "$FLINK_CP" -d "$CLASSES" "${SOURCES[@]}" >&2
fi
WORK="$(mktemp -d /tmp/flink-window.XXXXXX)"
mkdir -p "$WORK/tmp"
LOAD1="$(cut -d' ' -f1 /proc/loadavg)"
busy_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }
BUSY0="$(busy_ticks)"
set +e
# shellcheck disable=SC2086
/usr/bin/time -v -o "$WORK/time.txt" \
  "$JAVA" $JAVA_MODULE_OPTS ${JAVA_OPTS:-} "$JAVA_LOG_OPTS" -Dlog.file="$WORK/flink.log" \
  -Djava.io.tmpdir="$WORK/tmp" \
  -cp "$CLASSES:$FLINK_CP" "$CLASS" "$N" "file://$WORK/ckpt" "$P" \
  > "$WORK/stdout.txt" 2> "$WORK/stderr.txt"
rc=$?
BUSY1="$(busy_ticks)"
set -e
if [ $rc -ne 0 ] || ! grep -q '^RESULT ' "$WORK/stdout.txt"; then
  echo "flink $JOB bench FAILED rc=$rc (kept $WORK)" >&2
  tail -n 20 "$WORK/stdout.txt" "$WORK/stderr.txt" >&2
  exit 1
fi
python3 - "$WORK" "$LOAD1" "$((BUSY1 - BUSY0))" "$(getconf CLK_TCK)" "$JOB" <<'PY'
import re, statistics, sys
d, load1, busy_ticks, hz, job = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
result = open(d + "/stdout.txt").read().split("RESULT ", 1)[1].split("\n")[0].strip()
t = open(d + "/time.txt").read()
rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", t).group(1))
cpu = float(re.search(r"User time \(seconds\): ([\d.]+)", t).group(1)) + \
      float(re.search(r"System time \(seconds\): ([\d.]+)", t).group(1))
w = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", t).group(1).split(":")
wall = sum(float(x) * 60 ** i for i, x in enumerate(reversed(w)))
words = int(re.search(r"\bwords=(\d+)", result).group(1))
ck = [(int(a), int(b)) for a, b in re.findall(
    r"Completed checkpoint \d+ for job \w+ \((\d+) bytes, checkpointDuration=(\d+) ms", open(d + "/flink.log").read())]
durs = [b for _, b in ck]
print("engine=flink job=%s %s process_wall_s=%.2f peak_rss_mb=%.1f cpu_s=%.1f words_per_cpu_s=%.0f "
      "checkpoints=%d ckpt_ms_median=%s ckpt_ms_max=%s ckpt_bytes_max=%s load1_before=%s other_cpu_s=%.1f" % (
      job, result, wall, rss_kb / 1024, cpu, words / max(cpu, 1e-9), len(ck),
      ("%.0f" % statistics.median(durs)) if durs else "-", max(durs) if durs else "-",
      max(a for a, _ in ck) if ck else "-", load1, max(busy_ticks / hz - cpu, 0.0)))
PY
if [ "${KEEP:-0}" = 1 ]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
