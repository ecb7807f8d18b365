#!/usr/bin/env bash
# The windowed benchmark side by side (docs/benchmarks.md, "Event-time windows"): in one
# invocation, on the same input and parallelism, Floe's and Flink's windowed word count
# (floe-bench window, bench/flink/window-bench.sh) and then both engines' plain word count
# (floe-bench wordcount, window-bench.sh --wordcount), so the Floe/Flink ratio of the windowed
# job can be read next to the word count's ratio measured under the same machine load.
# Prints every run's key=value line, the load before each, and the ratios.
# Usage: bench/window-compare.sh N [parallelism]
# FLOE_BENCH: the floe-bench binary (default: target/release/floe-bench under
# $CARGO_TARGET_DIR or ./target; build it with `cargo build --release -p floe-bench`).
# VENV: the peer Flink's virtualenv (see bench/flink/window-bench.sh).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
N="${1:?usage: window-compare.sh N [parallelism]}"
P="${2:-2}"
FLOE_BENCH="${FLOE_BENCH:-${CARGO_TARGET_DIR:-$HERE/../target}/release/floe-bench}"
[ -x "$FLOE_BENCH" ] || { echo "no floe-bench at $FLOE_BENCH (cargo build --release -p floe-bench)" >&2; exit 1; }
OUT="$(mktemp /tmp/window-compare.XXXXXX)"
run() {
  echo "# $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg): $*" >&2
  "$@" | tail -n 1 | tee -a "$OUT"
}
run "$FLOE_BENCH" window --words "$N" --parallelism "$P"
run "$HERE/flink/window-bench.sh" "$N" "$P"
run "$FLOE_BENCH" wordcount --words "$N" --parallelism "$P"
run "$HERE/flink/window-bench.sh" --wordcount "$N" "$P"
echo "# $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg): done" >&2
python3 - "$OUT" <<'PY'
import sys
runs = [dict(kv.split("=", 1) for kv in l.split() if "=" in kv) for l in open(sys.argv[1])]
fw, kw, fc, kc = runs
for name, f, k in (("window", fw, kw), ("wordcount", fc, kc)):
    print("ratio job=%s floe/flink words_per_s=%.2f cpu_s=%.2f peak_rss_mb=%.2f" % (
        name, float(f["words_per_s"]) / float(k["words_per_s"]), float(f["cpu_s"]) / float(k["cpu_s"]),
        float(f["peak_rss_mb"]) / float(k["peak_rss_mb"])))
for key in ("window_results", "windows", "count_sum", "digest"):
    if fw[key] != kw[key]:
        sys.exit("the engines disagree on %s: floe %s, flink %s" % (key, fw[key], kw[key]))
print("results agree: window_results=%s windows=%s count_sum=%s digest=%s" % (
    fw["window_results"], fw["windows"], fw["count_sum"], fw["digest"]))
PY
rm -f "$OUT"
