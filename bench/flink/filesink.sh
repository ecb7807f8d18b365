#!/usr/bin/env bash
# Flink's side of the file-sink benchmark (docs/benchmarks.md): ThroughputWordCount with
# Flink's exactly-once FileSink, on the peer's Flink (shared/peer/flink, set up with its
# setup.sh; VENV may point elsewhere). Prints the RESULT line, committed lines and bytes
# (checked against N), and peak RSS / CPU of the JVM.
# Usage: filesink.sh N [parallelism]
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PEER="${PEER:-$HERE/../../../shared/peer/flink}"
source "$PEER/env.sh"
# FileSink lives in flink-connector-files, next to flink-dist in Flink's lib/.
FLINK_CP="$FLINK_CP:$(ls "$FLINK_LIB"/flink-connector-files-*.jar | head -n1)"
N="${1:?usage: filesink.sh N [parallelism]}"
P="${2:-2}"
WORK="$(mktemp -d /tmp/flink-filesink.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/classes" "$WORK/tmp"
"$JAVAC" -nowarn -Xlint:none -source 17 -target 17 -cp "$FLINK_CP" -d "$WORK/classes" \
  "$PEER"/src/peer/ThroughputWordCount.java "$HERE"/src/peer/FileSinkWordCount.java
LOAD1="$(cut -d' ' -f1 /proc/loadavg)"
# shellcheck disable=SC2086
/usr/bin/time -v -o "$WORK/time.txt" \
  "$JAVA" $JAVA_MODULE_OPTS "$JAVA_LOG_OPTS" -Dlog.file="$WORK/flink.log" -Djava.io.tmpdir="$WORK/tmp" \
  -cp "$WORK/classes:$FLINK_CP" peer.FileSinkWordCount "$N" "file://$WORK/ckpt" "$WORK/out" "$P" \
  > "$WORK/stdout.txt" 2> "$WORK/stderr.txt" || { tail -20 "$WORK/stdout.txt" "$WORK/stderr.txt"; exit 1; }
result="$(grep '^RESULT ' "$WORK/stdout.txt" | cut -d' ' -f2-)"
lines="$(find "$WORK/out" -type f -name 'part-*' ! -name '.*' -exec cat {} + | wc -l)"
bytes="$(find "$WORK/out" -type f -name 'part-*' ! -name '.*' -printf '%s\n' | awk '{s+=$1} END {print s+0}')"
rss_kb="$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$WORK/time.txt")"
cpu="$(awk -F': ' '/User time|System time/ {s+=$2} END {printf "%.2f", s}' "$WORK/time.txt")"
echo "engine=flink sink=file $result committed_lines=$lines output_mb=$(awk -v b="$bytes" 'BEGIN{printf "%.1f", b/1048576}') peak_rss_mb=$(awk -v k="$rss_kb" 'BEGIN{printf "%.1f", k/1024}') cpu_s=$cpu load1_before=$LOAD1"
[ "$lines" = "$N" ] || { echo "committed lines $lines != N $N" >&2; exit 2; }
