#!/usr/bin/env bash
# A Pulsar REST server (pulsar-app 0.16.0 from PyPI) on this machine: the "remote node" of the
# local Galaxy's `pulsar` destination (GALAXY_CELLXGENE_DESTINATION=pulsar, scripts/galaxy.sh).
#
#   scripts/pulsar.sh install   pinned install into its own venv (idempotent)
#   scripts/pulsar.sh start     install if needed, write app.yml, start in the background
#   scripts/pulsar.sh stop      stop it (and the job containers it left, see below)
#   scripts/pulsar.sh status    whether it runs and answers
#
# Pulsar shares no file system with Galaxy: it has its own staging directory
# ($PULSAR_STATE/staging); Galaxy's `pulsar_rest` runner uploads inputs and tool files into it
# over HTTP and downloads the outputs when the job ends (default_file_action: transfer).
# PULSAR_PORT (8913), PULSAR_ROOT (.cache/pulsar: the venv), PULSAR_STATE ($PULSAR_ROOT/state:
# config, staging, token, log, pid). Pulsar stays on 127.0.0.1 and requires a private token.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROOT="${PULSAR_ROOT:-$REPO/.cache/pulsar}"
STATE="${PULSAR_STATE:-$ROOT/state}"
VENV="$ROOT/venv"
PORT="${PULSAR_PORT:-8913}"
PINS="$REPO/scripts/pulsar/requirements.txt"
PIDFILE="$STATE/pulsar.pid"
LOG="$STATE/pulsar.log"

log() { printf '[pulsar.sh] %s\n' "$*" >&2 || true; }
die() { log "error: $*"; exit 1; }

cmd_install() {
    local stamp="$VENV/.pulsar-install" want
    want="$(sha256sum "$PINS" | cut -c1-16)"
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
        return 0
    fi
    local t0=$SECONDS
    log "installing pulsar-app into $VENV (pinned by scripts/pulsar/requirements.txt)"
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -r "$PINS" 2>&1 \
        | grep -v -e 'is ignored: it is neither a file nor a directory' || true
    "$VENV/bin/python" -c "import pulsar.web.wsgi, psutil" || die "pulsar-app installed but does not import"
    echo "$want" >"$stamp"
    log "installed in $((SECONDS - t0)) s"
}

running_pid() {
    [[ -s "$PIDFILE" ]] || return 1
    local pid
    pid="$(cat "$PIDFILE")"
    [[ -r "/proc/$pid/cmdline" ]] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "scripts/pulsar/serve.py" || return 1
    echo "$pid"
}

write_config() {
    mkdir -p "$STATE/staging"
    # Jobs' files (tool_env_* values, inputs, outputs) are for Pulsar's user and its containers
    # only: no other local user may enter the staging directory (issue 22 item 7).
    chmod 700 "$STATE/staging"
    if [[ ! -s "$STATE/private_token" ]]; then
        (umask 077 && python3 -c 'import secrets; print(secrets.token_hex(20))' >"$STATE/private_token")
    fi
    # queued_python: each job is a child process of the server (ps, kill and exit codes are
    # Pulsar's own); two jobs at once on a 2-core machine.
    cat >"$STATE/app.yml" <<EOF
# Written by scripts/pulsar.sh; Galaxy reaches this server with the same token.
staging_directory: $STATE/staging
private_token: $(cat "$STATE/private_token")
conda_auto_init: false
conda_auto_install: false
managers:
  _default_:
    type: queued_python
    num_concurrent_jobs: 2
EOF
    chmod 600 "$STATE/app.yml"
}

answers() {
    # Any HTTP answer (Pulsar has no route at /) means the server is up.
    [[ "$(curl -s --max-time 3 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/" || true)" != 000 ]]
}

cmd_start() {
    cmd_install
    if pid="$(running_pid)"; then
        die "Pulsar already runs (pid $pid): scripts/pulsar.sh stop first"
    fi
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && die "port $PORT is taken (set PULSAR_PORT)"
    write_config
    setsid "$VENV/bin/python" "$REPO/scripts/pulsar/serve.py" --config-dir "$STATE" --port "$PORT" \
        >>"$LOG" 2>&1 </dev/null &
    echo $! >"$PIDFILE"
    local t0=$SECONDS
    until answers; do
        running_pid >/dev/null || { tail -n 30 "$LOG" >&2; die "Pulsar exited during start (log: $LOG)"; }
        ((SECONDS - t0 < 60)) || die "Pulsar did not answer on port $PORT within 60 s (log: $LOG)"
        sleep 0.2
    done
    log "Pulsar answers on http://127.0.0.1:$PORT/ after $((SECONDS - t0)) s (staging: $STATE/staging)"
}

stop_containers() {
    # A Stop SIGKILLs the job's process tree at once: the job shell's own `docker kill` never runs
    # and its container keeps serving. Galaxy labels every container it starts for a Pulsar
    # job with the staging directory (docker_run_extra_arguments): end those.
    command -v podman >/dev/null || return 0
    local ids
    ids="$(podman ps -q --filter "label=org.galaxy-cellxgene.pulsar-staging=$STATE/staging" 2>/dev/null)" || return 0
    for id in $ids; do
        log "stopping leftover job container $id"
        podman kill "$id" >/dev/null 2>&1 || true
    done
}

cmd_stop() {
    local pid
    if pid="$(running_pid)"; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            [[ -d "/proc/$pid" ]] || break
            sleep 0.2
        done
        [[ -d "/proc/$pid" ]] && kill -KILL "$pid" 2>/dev/null
        log "stopped Pulsar (pid $pid)"
    fi
    rm -f "$PIDFILE"
    stop_containers
}

cmd_status() {
    if pid="$(running_pid)" && answers; then
        echo "pulsar: running (pid $pid), answers on http://127.0.0.1:$PORT/"
    else
        echo "pulsar: not running"
        return 1
    fi
}

case "${1:-}" in
    install) cmd_install ;;
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    *)
        sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
        exit 2
        ;;
esac
