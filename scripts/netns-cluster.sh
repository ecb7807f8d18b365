#!/usr/bin/env bash
# A Floe cluster on several "hosts" of one machine, each host a network namespace on a bridge
# (the layout of docs/deployment.md, "Trying it on one machine"). Needs root and iproute2.
#
#   scripts/netns-cluster.sh up [--hosts N] [--slots S] [--no-floe] [--dir DIR]
#       host 1 (198.18.0.1): S3 server (s3s-fs, :8014, bucket `floe`) and the job manager
#       (`floe cluster start --taskmanagers 0`, REST :8081, RPC :6123);
#       hosts 2..N (198.18.0.2..N): one task manager each with S slots (default 2).
#       N defaults to 3. --no-floe builds only the network and the S3 server.
#   scripts/netns-cluster.sh exec N COMMAND [ARGS...]   run COMMAND on host N, with that
#       host's floe.yaml (FLOE_CONF_DIR), e.g. `exec 1 floe run -p 4 target/debug/word_count`
#   scripts/netns-cluster.sh link-down N | link-up N     unplug / plug host N (no RST: packets vanish)
#   scripts/netns-cluster.sh status [--dir DIR]          namespaces, addresses, processes, S3, cluster
#   scripts/netns-cluster.sh down [--dir DIR]            stop everything on the hosts, delete them
#
# Names: namespaces floe-cluster-h<n> and floe-cluster-sw (bridge br0, switch ports sw-h<n>),
# host n at 198.18.0.<n>/24 — the same scheme as floe-testkit::netns, whose test namespaces
# (floe-<pid>-<subnet>-h<n>, subnets 198.18.1.0/24 and up) never collide with these.
# FLOE_NETNS_PREFIX and FLOE_NETNS_NET (e.g. 198.18.7) change the prefix and the /24.
# State (pids, per-host floe.yaml, logs, the S3 data) lives in DIR, default
# ${FLOE_NETNS_DIR:-/tmp/floe-netns-cluster}; `down` keeps it (logs and checkpoints are data).
# Binaries: floe from $FLOE_BIN, else `floe` on PATH, else target/{release,debug}/floe of this
# repository; s3s-fs from ${FLOE_TOOLS:-$HOME/.cache/floe-tools}/bin (scripts/test-tools.sh).
set -Eeuo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
# Overridable so that tests can run the script on a subnet they claimed (floe_testkit::netns::Subnet).
prefix="${FLOE_NETNS_PREFIX:-floe-cluster}"
net="${FLOE_NETNS_NET:-198.18.0}"
[[ "$prefix" =~ ^[a-z0-9-]{1,40}$ ]] || { echo "netns-cluster: FLOE_NETNS_PREFIX=$prefix: use a-z, 0-9 and -" >&2; exit 1; }
[[ "$net" =~ ^[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$ ]] || { echo "netns-cluster: FLOE_NETNS_NET=$net: give the first three octets of a /24, e.g. 198.18.0" >&2; exit 1; }
switch="$prefix-sw"
s3_port=8014
rest_port=8081
rpc_port=6123
bucket=floe
tools="${FLOE_TOOLS:-$HOME/.cache/floe-tools}"

die() { echo "netns-cluster: $*" >&2; exit 1; }
say() { echo "netns-cluster: $*"; }

host_ns() { echo "$prefix-h$1"; }
host_ip() { echo "$net.$1"; }

usage() { sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }

preflight() {
    [ "$(id -u)" -eq 0 ] || die "network namespaces need root (running as uid $(id -u))"
    command -v ip >/dev/null || die "iproute2's \`ip\` is not installed (apt-get install iproute2)"
}

floe_bin() {
    if [ -n "${FLOE_BIN:-}" ]; then
        [ -x "$FLOE_BIN" ] || die "FLOE_BIN=$FLOE_BIN is not an executable"
        echo "$FLOE_BIN"
    elif command -v floe >/dev/null; then
        command -v floe
    elif [ -x "$repo/target/release/floe" ]; then
        echo "$repo/target/release/floe"
    elif [ -x "$repo/target/debug/floe" ]; then
        echo "$repo/target/debug/floe"
    else
        die "no floe binary: set FLOE_BIN, put floe on PATH or run \`cargo build -p floe-cli\`"
    fi
}

# Runs "$@" on host $1 (shifted) with that host's floe.yaml.
on_host() {
    local n="$1"; shift
    FLOE_CONF_DIR="$dir/h$n/conf" ip netns exec "$(host_ns "$n")" "$@"
}

ns_exists() { ip netns list | awk '{print $1}' | grep -qx "$1"; }

# Every namespace of the layout that exists now (hosts first, the switch last).
existing_namespaces() {
    ip netns list | awk '{print $1}' | grep -E "^$prefix-h[0-9]+$" | sort -V || true
    if ns_exists "$switch"; then echo "$switch"; fi
}

# Waits up to $1 seconds for "${@:2}" to succeed.
wait_for() {
    local limit="$1"; shift
    local deadline=$((SECONDS + limit))
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.2
    done
}

# An S3 request signed with SigV4 (curl's --aws-sigv4) from host $1 to "$2" (path).
s3_get() {
    on_host "$1" curl -sf --max-time 5 --aws-sigv4 "aws:amz:us-east-1:s3" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" \
        --user "$(cat "$dir/s3.access-key"):$(cat "$dir/s3.secret-key")" \
        "http://$(host_ip 1):$s3_port$2"
}

write_conf() {
    local n="$1" conf="$dir/h$1/conf"
    mkdir -p "$conf"
    {
        echo "# Written by scripts/netns-cluster.sh for host $n ($(host_ip "$n"))."
        echo "jobmanager.rpc.address: $(host_ip 1)"
        echo "jobmanager.rpc.port: $rpc_port"
        echo "rest.address: $(host_ip 1)"
        echo "rest.port: $rest_port"
        echo "rest.auth.token: $(cat "$dir/token")"
        if [ "$n" -eq 1 ]; then
            echo "rest.bind-address: $(host_ip 1)"
        else
            echo "taskmanager.host: $(host_ip "$n")"
            echo "taskmanager.numberOfTaskSlots: $slots"
        fi
        echo "execution.checkpointing.dir: s3://$bucket/checkpoints"
        echo "execution.checkpointing.savepoint-dir: s3://$bucket/savepoints"
        echo "s3.endpoint: http://$(host_ip 1):$s3_port"
        echo "s3.access-key: $(cat "$dir/s3.access-key")"
        echo "s3.secret-key: $(cat "$dir/s3.secret-key")"
        echo "s3.path.style.access: true"
        echo "s3.endpoint.region: us-east-1"
    } >"$conf/floe.yaml"
    chmod 600 "$conf/floe.yaml"
}

build_network() {
    ip netns add "$switch"
    ip -n "$switch" link add br0 type bridge
    ip -n "$switch" link set br0 up
    ip -n "$switch" link set lo up
    local n
    for n in $(seq 1 "$hosts"); do
        local ns; ns="$(host_ns "$n")"
        ip netns add "$ns"
        # Made inside the switch namespace, the peer moved straight into the host: no interface
        # ever appears in the root namespace, which therefore has no path to the hosts.
        ip -n "$switch" link add "sw-h$n" type veth peer name eth0 netns "$ns"
        ip -n "$switch" link set "sw-h$n" master br0
        ip -n "$switch" link set "sw-h$n" up
        ip -n "$ns" addr add "$(host_ip "$n")/24" dev eth0
        ip -n "$ns" link set eth0 up
        ip -n "$ns" link set lo up
    done
}

# Starts "${@:3}" on host $1 in a session of its own, output to $dir/h<n>/$2.log, pid recorded
# as $dir/pids/$2.pid. `setsid` and `ip netns exec` both exec in place, so $! is the program.
start_bg() {
    local n="$1" what="$2"; shift 2
    FLOE_CONF_DIR="$dir/h$n/conf" setsid ip netns exec "$(host_ns "$n")" "$@" \
        </dev/null >>"$dir/h$n/$what.log" 2>&1 &
    echo $! >"$dir/pids/$what.pid"
}

cmd_up() {
    preflight
    [ "$hosts" -ge 1 ] && [ "$hosts" -le 254 ] || die "--hosts must be between 1 and 254, not $hosts"
    [ "$floe" = no ] || [ "$hosts" -ge 2 ] || die "--hosts must be at least 2 (host 1 runs no task manager)"
    [ -z "$(existing_namespaces)" ] || die "already up ($(existing_namespaces | tr '\n' ' ')); run \`$0 down\` first"
    local s3s="$tools/bin/s3s-fs"
    [ -x "$s3s" ] || die "no S3 server at $s3s; run scripts/test-tools.sh (or set FLOE_TOOLS)"
    command -v curl >/dev/null || die "curl is needed to check the S3 server (apt-get install curl)"
    local floe_path=""
    [ "$floe" = no ] || floe_path="$(floe_bin)"

    mkdir -p "$dir/pids" "$dir/s3/$bucket"
    rm -f "$dir"/pids/*.pid
    echo "$hosts" >"$dir/hosts"
    # Credentials of this layout, kept across `down`/`up` so floe.yaml files stay valid.
    [ -s "$dir/token" ] || od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$dir/token"
    [ -s "$dir/s3.access-key" ] || echo floe >"$dir/s3.access-key"
    [ -s "$dir/s3.secret-key" ] || od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$dir/s3.secret-key"
    chmod 600 "$dir/token" "$dir/s3.secret-key"
    local n
    for n in $(seq 1 "$hosts"); do mkdir -p "$dir/h$n"; write_conf "$n"; done

    # From here on a failure tears down what was built, so nothing is left half up.
    trap 'echo "netns-cluster: up failed; removing what was built" >&2; teardown' ERR
    build_network
    say "hosts on bridge br0 (namespace $switch):"
    for n in $(seq 1 "$hosts"); do say "  host $n: $(host_ns "$n")  $(host_ip "$n")"; done

    start_bg 1 s3s-fs "$s3s" --host "$(host_ip 1)" --port "$s3_port" \
        --access-key "$(cat "$dir/s3.access-key")" --secret-key "$(cat "$dir/s3.secret-key")" "$dir/s3"
    # Listing the bucket from the last host proves the S3 server runs and the bridge carries it.
    if ! wait_for 15 s3_get "$hosts" "/$bucket?list-type=2"; then
        echo "netns-cluster: the S3 server did not answer within 15 s; see $dir/h1/s3s-fs.log" >&2
        false
    fi
    say "S3: http://$(host_ip 1):$s3_port bucket $bucket (access key $(cat "$dir/s3.access-key"), secret in $dir/s3.secret-key)"

    if [ "$floe" = yes ]; then
        local token; token="$(cat "$dir/token")"
        on_host 1 "$floe_path" cluster start --dir "$dir/h1/cluster" --taskmanagers 0 \
            -D "jobmanager.rpc.address=$(host_ip 1)" -D "jobmanager.rpc.port=$rpc_port" \
            -D "rest.address=$(host_ip 1)" -D "rest.bind-address=$(host_ip 1)" \
            -D "rest.port=$rest_port" -D "rest.auth.token=$token" \
            >>"$dir/h1/cluster-start.log" 2>&1 \
            || { echo "netns-cluster: floe cluster start failed; see $dir/h1/cluster-start.log and $dir/h1/cluster" >&2; false; }
        [ ! -s "$dir/h1/cluster/jobmanager.pid" ] || cp "$dir/h1/cluster/jobmanager.pid" "$dir/pids/jobmanager.pid"
        say "job manager: REST http://$(host_ip 1):$rest_port, RPC $(host_ip 1):$rpc_port (token in $dir/token)"
        for n in $(seq 2 "$hosts"); do
            on_host "$n" "$floe_path" taskmanager start --dir "$dir/h$n/taskmanager" \
                -D "jobmanager.rpc.address=$(host_ip 1)" -D "jobmanager.rpc.port=$rpc_port" \
                -D "taskmanager.host=$(host_ip "$n")" -D "taskmanager.numberOfTaskSlots=$slots" \
                -D "rest.auth.token=$token" \
                >>"$dir/h$n/taskmanager-start.log" 2>&1 \
                || { echo "netns-cluster: floe taskmanager start on host $n failed; see $dir/h$n/taskmanager-start.log" >&2; false; }
            [ ! -s "$dir/h$n/taskmanager/taskmanager.pid" ] \
                || cp "$dir/h$n/taskmanager/taskmanager.pid" "$dir/pids/taskmanager-h$n.pid"
            say "task manager on host $n: $(host_ip "$n"), $slots slots"
        done
        say "run a job:  $0 exec 1 $floe_path run -p $(((hosts - 1) * slots)) <job-binary>"
    fi
    trap - ERR
    say "state, logs and S3 data in $dir; \`$0 down\` stops it"
}

# Stops every process on the hosts (SIGTERM, then SIGKILL after 5 s) and deletes the namespaces.
teardown() {
    local namespaces; namespaces="$(existing_namespaces)"
    local ns pids deadline
    for ns in $namespaces; do
        pids="$(ip netns pids "$ns" || true)"
        [ -z "$pids" ] || kill -TERM $pids 2>/dev/null || true
    done
    deadline=$((SECONDS + 5))
    for ns in $namespaces; do
        while [ -n "$(ip netns pids "$ns" 2>/dev/null)" ] && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
        pids="$(ip netns pids "$ns" 2>/dev/null || true)"
        if [ -n "$pids" ]; then
            say "SIGKILL to what still runs on $ns: $pids"
            kill -KILL $pids 2>/dev/null || true
        fi
        # `ip netns del` only removes the name: wait until nothing runs in it any more.
        wait_for 10 test -z "$(ip netns pids "$ns" 2>/dev/null)" || say "processes outlived SIGKILL on $ns"
        ip netns del "$ns"
    done
    rm -f "$dir"/pids/*.pid
}

cmd_down() {
    preflight
    if [ -z "$(existing_namespaces)" ]; then say "not up"; return 0; fi
    local hosts_up n floe_path
    hosts_up="$(cat "$dir/hosts" 2>/dev/null || echo 0)"
    # Stop the Floe daemons the polite way first (jobs cancelled, task managers deregistered);
    # the teardown below kills whatever does not stop.
    if floe_path="$(floe_bin 2>/dev/null)"; then
        for n in $(seq 2 "$hosts_up"); do
            if [ -e "$dir/h$n/taskmanager" ] && ns_exists "$(host_ns "$n")"; then
                timeout 15 env FLOE_CONF_DIR="$dir/h$n/conf" ip netns exec "$(host_ns "$n")" \
                    "$floe_path" taskmanager stop --dir "$dir/h$n/taskmanager" || say "taskmanager stop on host $n failed"
            fi
        done
        if [ -e "$dir/h1/cluster" ] && ns_exists "$(host_ns 1)"; then
            timeout 30 env FLOE_CONF_DIR="$dir/h1/conf" ip netns exec "$(host_ns 1)" \
                "$floe_path" cluster stop -m "$(host_ip 1):$rest_port" || say "cluster stop failed"
        fi
    fi
    teardown
    say "down; state, logs and S3 data kept in $dir"
}

cmd_status() {
    preflight
    local namespaces; namespaces="$(existing_namespaces)"
    if [ -z "$namespaces" ]; then say "not up"; return 3; fi
    local ns n
    for ns in $namespaces; do
        if [ "$ns" = "$switch" ]; then
            echo "$ns: bridge br0, ports $(ip -n "$ns" -br link show master br0 | awk '{printf "%s(%s) ", $1, $2}')"
            continue
        fi
        n="${ns##*-h}"
        echo "host $n ($ns) $(host_ip "$n"):"
        local pid
        for pid in $(ip netns pids "$ns"); do
            echo "    $pid $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null \
                | sed -E 's/(--secret-key|rest\.auth\.token=)[ ]?[^ ]+/\1 ******/g' | cut -c1-160)"
        done
    done
    local last; last="$(cat "$dir/hosts" 2>/dev/null || echo 1)"
    if s3_get "$last" "/$bucket?list-type=2" >/dev/null 2>&1; then
        echo "S3 http://$(host_ip 1):$s3_port: answers (bucket $bucket, checked from host $last)"
    else
        echo "S3 http://$(host_ip 1):$s3_port: does not answer from host $last"
    fi
    local floe_path
    if [ -e "$dir/h1/cluster" ] && floe_path="$(floe_bin 2>/dev/null)"; then
        on_host 1 "$floe_path" cluster status -m "$(host_ip 1):$rest_port" || true
    fi
}

cmd_exec() {
    preflight
    [ $# -ge 2 ] || die "usage: $0 exec N COMMAND [ARGS...]"
    local n="$1"; shift
    ns_exists "$(host_ns "$n")" || die "no host $n (is the cluster up?)"
    on_host "$n" "$@"
}

cmd_link() {
    preflight
    [ $# -eq 2 ] || die "usage: $0 link-down|link-up N"
    ns_exists "$(host_ns "$2")" || die "no host $2 (is the cluster up?)"
    ip -n "$switch" link set "sw-h$2" "$1"
    say "host $2 link $1"
}

[ $# -ge 1 ] || usage 2
verb="$1"; shift
hosts=3
slots=2
floe=yes
dir="${FLOE_NETNS_DIR:-/tmp/floe-netns-cluster}"
case "$verb" in
    exec) dir="$(cd "$dir" 2>/dev/null && pwd || echo "$dir")"; cmd_exec "$@"; exit $? ;;
    link-down) cmd_link down "$@"; exit $? ;;
    link-up) cmd_link up "$@"; exit $? ;;
    -h|--help|help) usage 0 ;;
esac
while [ $# -gt 0 ]; do
    case "$1" in
        --hosts) [ $# -ge 2 ] || die "--hosts needs a number"; hosts="$2"; shift 2 ;;
        --hosts=*) hosts="${1#*=}"; shift ;;
        --slots) [ $# -ge 2 ] || die "--slots needs a number"; slots="$2"; shift 2 ;;
        --slots=*) slots="${1#*=}"; shift ;;
        --no-floe) floe=no; shift ;;
        --dir) [ $# -ge 2 ] || die "--dir needs a directory"; dir="$2"; shift 2 ;;
        --dir=*) dir="${1#*=}"; shift ;;
        *) die "unknown option $1 (see $0 --help)" ;;
    esac
done
[[ "$hosts" =~ ^[0-9]+$ ]] || die "--hosts must be a number, not $hosts"
[[ "$slots" =~ ^[1-9][0-9]*$ ]] || die "--slots must be a positive number, not $slots"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
case "$verb" in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    *) die "unknown command $verb (up, down, status, exec, link-down, link-up)" ;;
esac
