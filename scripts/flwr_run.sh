#!/usr/bin/env bash
# `flwr run .` on a Peel config, tidied up: Flower's own CLI runs the federated architectures,
# then everything it started is stopped and the run gets the usual summary.json and report.
#
#   scripts/flwr_run.sh CONFIG [--set KEY=VALUE ...]
#
# 1. `peel prepare` writes a run folder (data, federation spec).
# 2. `flwr run .` starts Flower's local SuperLink (simulation) with FLWR_HOME inside that run folder
#    (nothing is written to ~/.flwr), Ray's scratch in a private /tmp/peel-ray.* folder (its
#    socket paths must stay under 107 bytes; removed at the end), on two free ports (never a
#    SuperLink someone else already runs on Flower's default 39091/39093).
# 3. The SuperLink that run started (found by its own log file in that FLWR_HOME) is stopped, and
#    with it its SuperExec and simulation; any process still naming the run folder (Ray) too.
#    Also on Ctrl-C or an error.
# 4. `peel run --resume RUN_DIR` scores the models Flower trained (it does not train them again),
#    trains the non-federated baselines of the config, and writes summary.json and the report.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${PEEL_VENV:-.venv}
if [ ! -x "$VENV/bin/peel" ] || [ ! -x "$VENV/bin/flwr" ]; then
    echo "flwr_run: $VENV/bin/peel or $VENV/bin/flwr is missing: run scripts/setup.sh (make setup) first" >&2
    exit 2
fi
if [ $# -lt 1 ]; then
    echo "usage: scripts/flwr_run.sh CONFIG [--set KEY=VALUE ...]" >&2
    exit 2
fi
export PATH="$PWD/$VENV/bin:$PATH"  # Flower starts flower-superlink, flower-superexec by name

prepared=$(peel prepare "$@")
echo "$prepared"
spec=$(printf '%s\n' "$prepared" | sed -n "s/.*peel-spec='\([^']*\)'.*/\1/p")
nodes=$(printf '%s\n' "$prepared" | sed -n 's/.*num-supernodes=\([0-9]*\).*/\1/p')
if [ -z "$spec" ] || [ -z "$nodes" ] || [ ! -f "$spec" ]; then
    echo "flwr_run: could not read the federation spec from peel prepare's output" >&2
    exit 1
fi
run_dir=$(dirname "$spec")

export FLWR_HOME="$run_dir/flwr-home"
RAY_TMPDIR=$(mktemp -d "${TMPDIR:-/tmp}/peel-ray.XXXXXX")
export RAY_TMPDIR
export FLWR_TELEMETRY_ENABLED=0 FLWR_DISABLE_UPDATE_CHECK=1 FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION=1
export RAY_USAGE_STATS_ENABLED=0 RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO=0
mkdir -p "$FLWR_HOME"
read -r http_port control_port < <("$VENV/bin/python" -c '
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))')
export FLWR_LOCAL_SUPERLINK_HTTP_API_PORT=$http_port FLWR_LOCAL_CONTROL_API_PORT=$control_port
superlink_log="$FLWR_HOME/local-superlink/superlink.log"

# PIDs whose command line contains $1 (fixed string): only processes this run started name it.
pids_naming() {
    local proc
    for proc in /proc/[0-9]*; do
        if tr '\0' ' ' 2>/dev/null < "$proc/cmdline" | grep -qF -- "$1"; then
            echo "${proc#/proc/}"
        fi
    done
}

stop_flower() {
    local pids pid i
    pids=$(pids_naming "--log-file $superlink_log")
    for pid in $pids; do
        pids="$pids $(pids_naming "--parent-pid $pid ")"  # its SuperExec (the space: not PID 1234 for 123)
    done
    pids="$pids $(pids_naming "$RAY_TMPDIR")"
    pids=$(echo $pids)
    if [ -z "$pids" ]; then
        rm -rf "$RAY_TMPDIR"
        return 0
    fi
    kill -TERM $pids 2>/dev/null || true
    for i in $(seq 1 20); do
        kill -0 $pids 2>/dev/null || break
        sleep 0.5
    done
    kill -KILL $pids 2>/dev/null || true
    rm -rf "$RAY_TMPDIR"
    echo "flwr_run: stopped Flower's local SuperLink and what it started (PIDs $pids)"
}
trap stop_flower EXIT

echo "flwr_run: flwr run . with $nodes SuperNodes (Flower's files in $FLWR_HOME)"
flwr run . --run-config "peel-spec='$spec'" --federation-config "num-supernodes=$nodes" --stream
# `flwr run --stream` exits 0 even when the run failed: read the run's status.
status=$(flwr ls --format json | "$VENV/bin/python" -c 'import json, sys; runs = json.load(sys.stdin).get("runs") or []; print(runs[-1]["status"] if runs else "unknown")')
stop_flower
trap - EXIT
if [ "$status" != "finished:completed" ]; then
    echo "flwr_run: Flower's run ended as '$status' (log: $superlink_log); the run folder $run_dir is unfinished" >&2
    exit 1
fi
echo "flwr_run: scoring the models Flower trained, then summary.json and the report"
peel run --resume "$run_dir"
