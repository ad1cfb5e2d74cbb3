#!/usr/bin/env bash
# The one set-up entry point: ./dev.sh up | test [pytest args...] | help
# Needs only Python 3.11+ (python3 on PATH, or PYTHON=/path/to/python).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"
ROOT="$PWD"
VENV="$ROOT/.venv"
STAMP="$VENV/.btlake-install-stamp"

say() { printf '[dev.sh] %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

usage() {
    cat <<EOF
usage: ./dev.sh COMMAND

  up                 install into .venv if needed, start Dagster (dagster dev) and the btlake
                     API/browser, write demo bundles for the sensor to ingest; Ctrl-C stops all
  test [ARGS...]     install into .venv if needed, then python -m pytest ARGS (default: all)
  help               this text

environment (all optional):
  PYTHON               interpreter that creates .venv (default: python3, must be 3.11+)
  BTLAKE_LAKE          lake root, local path or s3://bucket/prefix (default: ./btlake-data/lake)
  BTLAKE_LANDING       landing zone (default: ./btlake-data/landing)
  BTLAKE_DAGSTER_PORT  Dagster UI port (default: 3000)
  BTLAKE_API_PORT      btlake API/browser port (default: 8000)
  BTLAKE_DEMO          set to 0 to skip writing demo bundles on 'up'
  BTLAKE_UP_TIMEOUT    seconds to wait for each server to answer (default: 180)
EOF
}

# Create .venv and install the project. pip runs only when pyproject.toml changed since the
# last successful install (its hash is kept in $STAMP) or the editable install is missing.
ensure_venv() {
    local py="${PYTHON:-python3}"
    if [ ! -x "$VENV/bin/python" ]; then
        command -v "$py" >/dev/null || die "$py not found; install Python 3.11+ or set PYTHON"
        "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
            || die "$py is $("$py" -V 2>&1); btlake needs Python 3.11+ (set PYTHON)"
        say "creating .venv with $("$py" -V 2>&1)"
        "$py" -m venv "$VENV" \
            || die "python -m venv failed (on Debian/Ubuntu: apt-get install python3-venv)"
        rm -f "$STAMP"
    fi
    local want have=""
    want="$("$VENV/bin/python" -c 'import hashlib; print(hashlib.sha256(open("pyproject.toml", "rb").read()).hexdigest())')"
    [ -f "$STAMP" ] && have="$(cat "$STAMP")"
    # Checked from / so the checkout itself is not on sys.path: only the editable install counts.
    if [ "$want" = "$have" ] && (cd / && "$VENV/bin/python" -c \
            'import importlib.util as u, sys; sys.exit(u.find_spec("btlake_pipelines") is None)') 2>/dev/null; then
        return 0
    fi
    say "installing btlake and its dev dependencies into .venv (pip, quiet)"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e ".[dev]" \
        || die "pip install -e '.[dev]' failed"
    echo "$want" > "$STAMP"
}

# Wait until URL answers HTTP (any status), while process PID is alive.
wait_http() {
    "$VENV/bin/python" - "$@" <<'PY'
import os, signal, sys, time, urllib.error, urllib.request
signal.signal(signal.SIGINT, lambda *_: sys.exit(130))  # Ctrl-C: no traceback
name, url, pid, timeout = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
deadline = time.monotonic() + timeout
while time.monotonic() < deadline:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        sys.exit(f"[dev.sh] error: {name} exited before answering on {url}")
    try:
        urllib.request.urlopen(url, timeout=2).close()
        sys.exit(0)
    except urllib.error.HTTPError:
        sys.exit(0)  # an error status is still an answer
    except OSError:
        time.sleep(0.5)
sys.exit(f"[dev.sh] error: {name} did not answer on {url} within {timeout:.0f}s")
PY
}

port_busy() {
    "$VENV/bin/python" -c 'import socket, sys
s = socket.socket(); s.settimeout(1)
sys.exit(0 if s.connect_ex(("127.0.0.1", int(sys.argv[1]))) == 0 else 1)' "$1"
}

PIDS=()
stop_all() {
    trap - EXIT INT TERM
    [ "${#PIDS[@]}" -eq 0 ] && return 0
    say "stopping servers"
    local pid i
    # TERM the leaders first: dagster dev then shuts its webserver and daemon down cleanly.
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for i in $(seq 1 30); do
        local alive=0
        for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [ "$alive" -eq 0 ] && break
        sleep 1
    done
    # Each server is its own process group (set -m): sweep what is left, run workers included.
    # Without a terminal job control may be off; then walk each server's process tree instead.
    for pid in "${PIDS[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || kill_tree "$pid"; done
    wait 2>/dev/null || true
}

kill_tree() {
    local child
    for child in $(ps -o pid= --ppid "$1" 2>/dev/null); do kill_tree "$child"; done
    kill -KILL "$1" 2>/dev/null || true
}

cmd_up() {
    ensure_venv
    export DAGSTER_HOME="$ROOT/dagster_home"
    export BTLAKE_LAKE="${BTLAKE_LAKE:-$ROOT/btlake-data/lake}"
    export BTLAKE_LANDING="${BTLAKE_LANDING:-$ROOT/btlake-data/landing}"
    local dport="${BTLAKE_DAGSTER_PORT:-3000}" aport="${BTLAKE_API_PORT:-8000}"
    local timeout="${BTLAKE_UP_TIMEOUT:-180}" logs="$ROOT/btlake-data/logs"
    case "$BTLAKE_LANDING" in *://*) ;; *) mkdir -p "$BTLAKE_LANDING" ;; esac
    mkdir -p "$logs"
    port_busy "$dport" && die "port $dport is in use (set BTLAKE_DAGSTER_PORT)"
    port_busy "$aport" && die "port $aport is in use (set BTLAKE_API_PORT)"

    trap stop_all EXIT
    trap 'exit 130' INT TERM

    # Job control while launching: each server gets its own process group, so it can be
    # stopped whole, and starts with normal signal handling (non-interactive bash would start
    # it with SIGINT ignored, and dagster dev maps SIGTERM onto SIGINT's handler).
    set -m
    say "starting dagster dev on 127.0.0.1:$dport (log: $logs/dagster.log)"
    "$VENV/bin/dagster" dev -w workspace.yaml -h 127.0.0.1 -p "$dport" >"$logs/dagster.log" 2>&1 &
    local dpid=$!
    PIDS+=("$dpid")
    say "starting btlake serve on 127.0.0.1:$aport (log: $logs/api.log)"
    "$VENV/bin/btlake" serve --host 127.0.0.1 --port "$aport" >"$logs/api.log" 2>&1 &
    local apid=$!
    PIDS+=("$apid")
    set +m  # foreground commands stay in our process group, so Ctrl-C reaches this script

    wait_http "btlake serve" "http://127.0.0.1:$aport/api/v1/health" "$apid" "$timeout" \
        || { tail -n 30 "$logs/api.log" >&2; exit 1; }
    wait_http "dagster dev" "http://127.0.0.1:$dport/server_info" "$dpid" "$timeout" \
        || { tail -n 30 "$logs/dagster.log" >&2; exit 1; }

    if [ "${BTLAKE_DEMO:-1}" != "0" ]; then
        say "writing demo bundles into $BTLAKE_LANDING (the landing sensor ingests them)"
        "$VENV/bin/btlake" demo || say "warning: 'btlake demo' failed; servers keep running"
    fi

    cat <<EOF

  Dagster UI:            http://127.0.0.1:$dport
  btlake API / browser:  http://127.0.0.1:$aport   (API docs: http://127.0.0.1:$aport/docs)
  lake:     $BTLAKE_LAKE
  landing:  $BTLAKE_LANDING
  logs:     $logs/
  Ctrl-C stops both.

EOF
    # bash 3.2 (macOS) has no 'wait -n': poll, and stop everything if either server dies.
    while kill -0 "$dpid" 2>/dev/null && kill -0 "$apid" 2>/dev/null; do sleep 1; done
    kill -0 "$dpid" 2>/dev/null || { say "dagster dev exited; see $logs/dagster.log"; tail -n 20 "$logs/dagster.log" >&2; }
    kill -0 "$apid" 2>/dev/null || { say "btlake serve exited; see $logs/api.log"; tail -n 20 "$logs/api.log" >&2; }
    exit 1
}

cmd_test() {
    ensure_venv
    # exec: pytest's exit code is ours (5 = no tests collected, which .ci/run treats as failure).
    exec "$VENV/bin/python" -m pytest "$@"
}

case "${1:-help}" in
    up) shift; [ "$#" -eq 0 ] || die "'up' takes no arguments"; cmd_up ;;
    test) shift; cmd_test "$@" ;;
    help | -h | --help) usage ;;
    *) usage >&2; die "unknown command: $1" ;;
esac
