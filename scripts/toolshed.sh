#!/usr/bin/env bash
# A local Galaxy Tool Shed (PyPI galaxy-tool-shed, the same release as the local Galaxy) for
# the Tool Shed install test: planemo creates and uploads this repository from .shed.yml,
# and a local Galaxy installs it through its API, the way an admin does.
#
#   scripts/toolshed.sh install   pinned install (idempotent), reusing the Galaxy install's venv
#   scripts/toolshed.sh start     start in the background, create the admin user and its key
#   scripts/toolshed.sh stop      stop what start started
#
# TOOLSHED_STATE (default .toolshed) holds its venv, database, repositories, log and
# credentials.json; TOOLSHED_PORT (default 9009, planemo's "local" shed) its port on 127.0.0.1.
# The Tool Shed's packages sit on top of the Galaxy venv (GALAXY_ROOT, see scripts/galaxy.sh):
# galaxy-tool-shed needs the same galaxy-* 26.1.2 packages, so only it, mercurial and a few
# small libraries are installed, pinned by the same constraints (Galaxy's metapackage pins
# mercurial too), instead of a second 1.3 GB venv.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOG_TAG=toolshed.sh
# shellcheck source=galaxy/common.sh
source "$REPO/scripts/galaxy/common.sh"
GALAXY_VERSION="$(newest_release)"
GX="${GALAXY_ROOT:-$REPO/.galaxy}"
GALAXY_VENV="$GX/venv"
STATE="${TOOLSHED_STATE:-$REPO/.toolshed}"
VENV="$STATE/venv"
DATA="$STATE/data"
PORT="${TOOLSHED_PORT:-9009}"
URL="http://127.0.0.1:$PORT"
PIDFILE="$STATE/toolshed.pid"
LOG="$STATE/toolshed.log"
CREDENTIALS="$STATE/credentials.json"

cmd_install() {
    [[ -x "$GALAXY_VENV/bin/python" ]] || die "no Galaxy venv in $GALAXY_VENV: scripts/galaxy.sh install first"
    # On top of the Galaxy venv's packages (read-only, after this venv's own).
    pinned_venv "$VENV" "$VENV/.toolshed-install" "$(pins_stamp "$GALAXY_VERSION")" "$GALAXY_VENV" \
        tool_shed.webapp.fast_factory,mercurial "galaxy-tool-shed==$GALAXY_VERSION" mercurial
}

secret() { bootstrap_key "$STATE"; }

running() { pid_running "$PIDFILE" fast_factory; }

cmd_start() {
    cmd_install
    if running >/dev/null; then
        die "the Tool Shed already runs (pid $(cat "$PIDFILE")): scripts/toolshed.sh stop first"
    fi
    mkdir -p "$DATA/repos" "$DATA/tmp" "$DATA/hgweb"
    local key
    key="$(secret)"
    cat >"$STATE/tool_shed.yml" <<EOF
# Written by scripts/toolshed.sh.
tool_shed:
  database_connection: sqlite:///$DATA/community.sqlite?isolation_level=IMMEDIATE
  file_path: $DATA/repos
  new_file_path: $DATA/tmp
  hgweb_config_dir: $DATA/hgweb
  whoosh_index_dir: $DATA/whoosh
  model_cache_dir: $DATA/model_cache
  template_cache_path: $DATA/compiled_templates
  citation_cache_data_dir: $DATA/citations/data
  citation_cache_lock_dir: $DATA/citations/locks
  tool_data_path: $DATA/tool-data
  tool_shed_url: $URL
  admin_users: admin@example.org
  bootstrap_admin_api_key: $key
  allow_local_account_creation: true
  require_login: false
  log_level: INFO
EOF
    log "starting the Tool Shed on $URL (log: $LOG)"
    # The shed runs `hg` (repositories are Mercurial): the mercurial Galaxy's venv pins.
    (
        cd "$DATA"
        PATH="$VENV/bin:$GALAXY_VENV/bin:$PATH" TOOL_SHED_CONFIG_FILE="$STATE/tool_shed.yml" \
            setsid "$VENV/bin/python" -m uvicorn --factory tool_shed.webapp.fast_factory:factory \
            --host 127.0.0.1 --port "$PORT" >>"$LOG" 2>&1 </dev/null &
        echo $! >"$PIDFILE"
    )
    TOOLSHED_URL="$URL" TOOLSHED_ADMIN_KEY="$key" TOOLSHED_CREDENTIALS="$CREDENTIALS" \
        with_testkit "$VENV/bin/python" "$REPO/scripts/galaxy/toolshed_bootstrap.py" --pid "$(cat "$PIDFILE")" \
        || { tail -n 40 "$LOG" >&2; cmd_stop; exit 1; }
}

cmd_stop() {
    local pid
    pid="$(running)" || { rm -f "$PIDFILE"; return 0; }
    stop_pid "$pid" "the Tool Shed"
    rm -f "$PIDFILE"
}

case "${1:-}" in
    install) cmd_install ;;
    start) cmd_start ;;
    stop) cmd_stop ;;
    *)
        sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
        exit 2
        ;;
esac
