#!/usr/bin/env bash
# Run edge-asr on this machine: start a local mosquitto if no broker listens, then the daemon
# on the built-in model and the default microphone. Extra arguments go to `edge-asr run`,
# e.g. deploy/run-local.sh --device 2   or   deploy/run-local.sh --source file:speech.wav
#
# Environment: PYTHON (default .venv/bin/python, else python3), EDGE_ASR_MQTT__HOST / __PORT
# (default localhost:1883), and any other EDGE_ASR_* setting.
set -euo pipefail

cd "$(dirname "$0")/.."
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
host="${EDGE_ASR_MQTT__HOST:-localhost}"
port="${EDGE_ASR_MQTT__PORT:-1883}"
broker_pid=""
daemon_pid=""

listening() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
    if [[ -n "$daemon_pid" ]] && kill -0 "$daemon_pid" 2>/dev/null; then
        kill -TERM "$daemon_pid" 2>/dev/null || true
        wait "$daemon_pid" 2>/dev/null || true
    fi
    if [[ -n "$broker_pid" ]]; then
        kill -TERM "$broker_pid" 2>/dev/null || true
        wait "$broker_pid" 2>/dev/null || true
        echo "run-local: stopped the mosquitto started for this run" >&2
    fi
}
trap cleanup EXIT
# Ctrl-C / TERM: the daemon gets TERM from cleanup, finishes its utterance, says offline.
trap 'exit 130' INT
trap 'exit 143' TERM

if listening "$host" "$port"; then
    echo "run-local: using the MQTT broker already listening on $host:$port" >&2
elif [[ "$host" != "localhost" && "$host" != "127.0.0.1" ]]; then
    echo "run-local: no broker on $host:$port yet; edge-asr will keep retrying" >&2
elif ! command -v mosquitto >/dev/null; then
    echo "run-local: no broker on $host:$port and mosquitto is not installed" >&2
    echo "           (sudo apt install mosquitto mosquitto-clients); edge-asr will keep retrying" >&2
else
    log="${TMPDIR:-/tmp}/edge-asr-mosquitto.log"
    mosquitto -p "$port" >"$log" 2>&1 &
    broker_pid=$!
    for _ in $(seq 50); do
        listening "$host" "$port" && break
        if ! kill -0 "$broker_pid" 2>/dev/null; then
            echo "run-local: mosquitto failed to start, see $log" >&2
            broker_pid=""
            break
        fi
        sleep 0.1
    done
    [[ -n "$broker_pid" ]] && echo "run-local: started mosquitto on $host:$port (log: $log)" >&2
fi

cat >&2 <<MSG
run-local: watch transcripts with
    mosquitto_sub -h $host -p $port -t 'edge-asr/#' -v
run-local: stop with Ctrl-C
MSG

EDGE_ASR_MQTT__HOST="$host" EDGE_ASR_MQTT__PORT="$port" \
    "$PYTHON" -m edge_asr run "$@" &
daemon_pid=$!
set +e
wait "$daemon_pid"
status=$?
set -e
daemon_pid=""
if [[ "$status" -ne 0 && "$status" -lt 128 && $# -eq 0 ]]; then
    cat >&2 <<MSG
run-local: the daemon could not start (exit $status; the reason is above). Pass it arguments
    with ARGS, e.g.  make run ARGS="--device 2"  or  make run ARGS="--source file:speech.wav"
MSG
fi
exit "$status"
