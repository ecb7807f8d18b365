#!/usr/bin/env bash
# Drives a Floe session cluster with Flink 2.3's own CLI, as a Flink user would.
#
# Starts a Floe session cluster, submits a job that fails before anyone lists it, a job that
# is cancelled, and running jobs, then runs Flink's `flink` CLI (from the pip package that
# ../shared/peer/flink/setup.sh installs) against the cluster's REST endpoint:
#   list -a, savepoint <id>, savepoint -d <path>, checkpoint <id>, stop -p <dir> <id>,
#   cancel <id>, cancel -s <dir> <id>, and list -a again.
# Prints each command and its output; exits non-zero if any command fails.
#
#   bench/flink/flink-cli-check.sh
#   VENV=/path/to/venv FLOE_BIN=target/release bench/flink/flink-cli-check.sh
#
# FLOE_BIN: directory with `floe` and `count_window_average` (default: built into
# ${CARGO_TARGET_DIR:-target}/debug by this script). VENV: the venv holding apache-flink
# (default ../shared/peer/flink/.venv). Needs java and python3.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PEER="${PEER:-$ROOT/../shared/peer/flink}"
VENV="${VENV:-$PEER/.venv}"
FLINK_HOME="$(ls -d "$VENV"/lib/python3*/site-packages/pyflink 2>/dev/null | head -n1)"
if [ -z "$FLINK_HOME" ] || [ ! -x "$FLINK_HOME/bin/flink" ]; then
  echo "Flink's CLI not found under $VENV; run VENV=$VENV $PEER/setup.sh first" >&2
  exit 2
fi
if [ -z "${FLOE_BIN:-}" ]; then
  (cd "$ROOT" && cargo build -q -p floe-cli -p floe-examples --bin floe --bin count_window_average) || exit 2
  FLOE_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug"
fi
FLOE="$FLOE_BIN/floe"
JOB="$FLOE_BIN/count_window_average"
WORK="$(mktemp -d /tmp/flink-cli-check.XXXXXX)"
PORT="${PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}"
M="127.0.0.1:$PORT"
export FLINK_CONF_DIR="$WORK/flink-conf"
mkdir -p "$FLINK_CONF_DIR" "$WORK/sp" "$WORK/ck"
cp "$FLINK_HOME/conf/"* "$FLINK_CONF_DIR/"
# `-m` names the cluster; retries are cut short so that a refused request fails in
# seconds, not minutes (the shipped config.yaml has a nested `rest:` block already).
sed -i 's/^rest:$/rest:\n  retry:\n    max-attempts: 2/' "$FLINK_CONF_DIR/config.yaml"
FAILED=0
SOURCES_PID=""
cleanup() {
  "$FLOE" cluster stop -m "$M" >/dev/null 2>&1
  [ -n "$SOURCES_PID" ] && kill "$SOURCES_PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

# Socket sources for the jobs: every connection on a port gets the port's lines and stays
# open (a job reading it keeps running until it is stopped, cancelled or fails).
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
P_FAIL=$(free_port); P_CANCEL=$(free_port); P_A=$(free_port); P_B=$(free_port); P_C=$(free_port); P_D=$(free_port)
python3 - "$P_FAIL" "$P_CANCEL" "$P_A" "$P_B" "$P_C" "$P_D" <<'PY' &
import socket, sys, threading, time
bad, *good = [int(p) for p in sys.argv[1:]]
def serve(port, payload):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port)); s.listen()
    conns = []
    while True:
        c, _ = s.accept(); c.sendall(payload); conns.append(c)
threading.Thread(target=serve, args=(bad, b"1 2\nnot a number\n"), daemon=True).start()
for p in good:
    threading.Thread(target=serve, args=(p, b"1 2\n1 4\n"), daemon=True).start()
while True: time.sleep(3600)
PY
SOURCES_PID=$!

floe() { "$FLOE" "$@"; }
# Runs a command, prints it and its output; counts it as failed unless it exits 0.
check() {
  echo "\$ $*"
  out="$("$@" 2>&1)"; rc=$?
  # The JVM's own warnings (module access) and stack frames are noise here.
  echo "$out" | grep -v -e '^WARNING: ' -e 'SLF4J' -e $'^\tat ' -e $'^\t\.\.\. [0-9]* more' | sed 's/^/  /'
  echo "  [exit $rc]"
  [ $rc -eq 0 ] || FAILED=$((FAILED + 1))
  echo
}
submit() { # port, extra -D...
  local port=$1; shift
  floe run -m "$M" -d "$@" "$JOB" --port "$port" --checkpoint-dir "$WORK/ck" \
    | sed -n 's/^Job has been submitted with JobID //p'
}
state_of() { curl -s "http://$M/jobs/$1" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("state"))'; }
wait_state() { # id state
  for _ in $(seq 1 300); do [ "$(state_of "$1")" = "$2" ] && return 0; sleep 0.1; done
  echo "job $1 did not reach $2 (it is $(state_of "$1"))" >&2; return 1
}

echo "== Floe session cluster at $M ($WORK)"
floe cluster start --dir "$WORK/cluster" -D "rest.port=$PORT" || exit 2
FAIL_ID=$(submit "$P_FAIL" -D restart-strategy.type=none)
CANCEL_ID=$(submit "$P_CANCEL")
A=$(submit "$P_A"); B=$(submit "$P_B"); C=$(submit "$P_C"); D=$(submit "$P_D")
echo "failing job $FAIL_ID, cancelled job $CANCEL_ID, running jobs $A $B $C $D"
# The failing job ends before anyone lists it.
wait_state "$FAIL_ID" FAILED || FAILED=$((FAILED + 1))
for j in "$CANCEL_ID" "$A" "$B" "$C" "$D"; do wait_state "$j" RUNNING || FAILED=$((FAILED + 1)); done
floe cancel -m "$M" "$CANCEL_ID" >/dev/null
wait_state "$CANCEL_ID" CANCELED || FAILED=$((FAILED + 1))
sleep 2 # a checkpoint or two of the running jobs
echo

FLINK="$FLINK_HOME/bin/flink"
flink() { "$FLINK" "$1" -m "$M" "${@:2}"; }
check flink list -a
check flink savepoint "$A" "$WORK/sp"
SP=$(ls -d "$WORK"/sp/savepoint-* 2>/dev/null | head -n1)
check flink savepoint -d "file:$SP"
[ -e "$SP" ] && { echo "savepoint $SP is still there after its disposal"; FAILED=$((FAILED + 1)); }
check flink checkpoint "$A"
check flink checkpoint -full "$A"
check flink stop -p "$WORK/sp" "$B"
check flink cancel "$C"
check flink cancel -s "$WORK/sp" "$D"
check flink list -a
# What the Floe CLI says about the same cluster.
check floe list -a -m "$M"
check floe checkpoints -m "$M" "$FAIL_ID"
check floe checkpoints -m "$M" "$CANCEL_ID"
echo "== $FAILED command(s) failed"
[ "$FAILED" -eq 0 ]
