#!/usr/bin/env bash
# A local Galaxy (the newest of scripts/galaxy/releases.txt, or GALAXY_VERSION) with this repository's tools, gx-it-proxy and one
# front URL.
#
#   scripts/galaxy.sh up        install if needed, start everything, create the demo user and
#                               history with the PBMC demo dataset, print URL + login, stay in
#                               the foreground; Ctrl-C stops every process it started
#   scripts/galaxy.sh start     the same, in the background (pidfiles in .galaxy/run)
#   scripts/galaxy.sh stop      stop what start/up started
#   scripts/galaxy.sh status    what runs, and whether Galaxy answers
#   scripts/galaxy.sh install   pinned install only (idempotent; a second run does nothing)
#   scripts/galaxy.sh pins      regenerate the version's constraints file (see GALAXY_VERSION)
#   scripts/galaxy.sh releases  print the older releases the suites also run on (releases.txt)
#
# Processes (all on 127.0.0.1):
#   nginx        :GALAXY_PORT      (8080) the one URL users open; /interactivetool/ep/ -> gx-it-proxy
#   galaxy-web   :GALAXY_WEB_PORT  (GALAXY_PORT+1) Galaxy itself (uvicorn), also the job handler
#   gx-it-proxy  :GXIT_PROXY_PORT  (GALAXY_PORT+2) routes entry points from interactivetools_map
# Gravity is not used: it refuses to run as root, and CI runs as root.
#
# GALAXY_CELLXGENE_DESTINATION=container runs the cellxgene tools through Galaxy's own Docker
# code path (podman as the engine, GALAXY_DOCKER_CMD to change it) in the image
# scripts/build-image.sh builds; the default `local` runs them without a container.
# GALAXY_CELLXGENE_DESTINATION=pulsar sends them to a Pulsar REST server on this machine
# (scripts/pulsar.sh, started and stopped with Galaxy, on PULSAR_PORT = GALAXY_PORT+3) that
# shares no file system with Galaxy and runs the same image with podman (docs/scaling.md).
# GALAXY_CELLXGENE_DESTINATION=by-user offers all three on one Galaxy: the cellxgene jobs of
# container@example.org go to the container, those of pulsar@example.org to Pulsar, everyone
# else's run without a container (scripts/galaxy/job_rules; the test suites use this one Galaxy).
# GALAXY_CELLXGENE_CORE_TOOL=1 also loads Galaxy core's own cellxgene 1.1.1 interactive tool
# (the same tool id) into the same panel section. GALAXY_TOOLSHED_URL adds a Tool Shed
# (scripts/toolshed.sh) to the ones admins can install from.
#
# GALAXY_VERSION picks the Galaxy release (default: the first of scripts/galaxy/releases.txt, the
# one every test runs on; tests/galaxy/test_deployments.py runs the others). Each release
# has its own install root (.galaxy for 26.1.2, .galaxy-<version> otherwise) and its own pins
# (scripts/galaxy/constraints.txt for 26.1.2, constraints-<version>.txt otherwise). Releases
# before 25.0.1 have no built web client on PyPI (galaxy-web-client): API only (docs/admin.md,
# "Galaxy releases tested"). GXIT_PROXY_DIR reuses a gx-it-proxy installed elsewhere
# (default <root>/proxy).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOG_TAG=galaxy.sh
# log, die, quiet_pip, pins_stamp, pinned_venv, with_testkit, bootstrap_key, pid_running, stop_pid
# shellcheck source=galaxy/common.sh
source "$REPO/scripts/galaxy/common.sh"
DEFAULT_GALAXY_VERSION="$(newest_release)"
GALAXY_VERSION="${GALAXY_VERSION:-$DEFAULT_GALAXY_VERSION}"
GXIT_PROXY_VERSION=0.2.3
[[ "$GALAXY_VERSION" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "GALAXY_VERSION=$GALAXY_VERSION: use a release number such as 25.1.3"
if [[ "$GALAXY_VERSION" == "$DEFAULT_GALAXY_VERSION" ]]; then
    DEFAULT_ROOT="$REPO/.galaxy"
    CONSTRAINTS="$REPO/scripts/galaxy/constraints.txt"
else
    DEFAULT_ROOT="$REPO/.galaxy-$GALAXY_VERSION"
    CONSTRAINTS="$REPO/scripts/galaxy/constraints-$GALAXY_VERSION.txt"
fi

# GALAXY_ROOT holds what is installed (reused by every start), GALAXY_STATE what a running
# Galaxy owns (database, datasets, logs, keys); a second Galaxy needs only its own
# GALAXY_STATE and GALAXY_PORT.
GX="${GALAXY_ROOT:-$DEFAULT_ROOT}"
STATE="${GALAXY_STATE:-$GX}"
VENV="$GX/venv"
PROXY_DIR="${GXIT_PROXY_DIR:-$GX/proxy}"
DEPS="$GX/deps"
DATA="$STATE/data"
RUN="$STATE/run"
LOGS="$RUN/logs"
CREDENTIALS="$STATE/credentials.json"
GXIT_MAIN="$PROXY_DIR/node_modules/@galaxyproject/gx-it-proxy/lib/main.js"

# Where the cellxgene tools run: `local` (no container, requirements from the runtime venv)
# or `container` (Galaxy's own Docker code path with DOCKER_CMD as the engine, the image
# scripts/build-image.sh builds; see docs/admin.md).
DESTINATION="${GALAXY_CELLXGENE_DESTINATION:-local}"
DOCKER_CMD="${GALAXY_DOCKER_CMD:-podman}"

GALAXY_PORT="${GALAXY_PORT:-8080}"
GALAXY_WEB_PORT="${GALAXY_WEB_PORT:-$((GALAXY_PORT + 1))}"
GXIT_PROXY_PORT="${GXIT_PROXY_PORT:-$((GALAXY_PORT + 2))}"
# The pulsar destination's server: its own state (staging, token) per Galaxy state.
export PULSAR_PORT="${PULSAR_PORT:-$((GALAXY_PORT + 3))}"
export PULSAR_STATE="${PULSAR_STATE:-$STATE/pulsar}"
URL="http://127.0.0.1:$GALAXY_PORT"

# ---------------------------------------------------------------------------------- install

has_web_client() {
    # PyPI has the built client (galaxy-web-client) from 25.0.1 on.
    [[ "$(printf '%s\n' 25.0.1 "$GALAXY_VERSION" | sort -V | head -n1)" == 25.0.1 ]]
}

install_galaxy() {
    [[ -f "$CONSTRAINTS" ]] || die "no pins for Galaxy $GALAXY_VERSION ($CONSTRAINTS): run GALAXY_VERSION=$GALAXY_VERSION scripts/galaxy.sh pins and commit the file"
    local packages=("galaxy-web-apps==$GALAXY_VERSION")
    if has_web_client; then
        packages+=("galaxy-web-client==$GALAXY_VERSION")
    fi
    # The venv is rebuilt when the version or the pins change, and reused otherwise.
    pinned_venv "$VENV" "$VENV/.galaxy-install" "$(pins_stamp "$GALAXY_VERSION" "$GXIT_PROXY_VERSION")" "" \
        galaxy.webapps.galaxy.fast_factory "${packages[@]}"
}

install_proxy() {
    if [[ -f "$GXIT_MAIN" ]] && (cd "$PROXY_DIR" && node -e "require('sqlite3')" 2>/dev/null) \
        && grep -q "\"version\": \"$GXIT_PROXY_VERSION\"" "$PROXY_DIR/node_modules/@galaxyproject/gx-it-proxy/package.json"; then
        return 0
    fi
    command -v npm >/dev/null || die "npm is missing (Debian: apt-get install nodejs npm)"
    log "installing gx-it-proxy $GXIT_PROXY_VERSION into $PROXY_DIR"
    mkdir -p "$PROXY_DIR"
    # A package.json of our own keeps npm from walking up into the repository.
    [[ -f "$PROXY_DIR/package.json" ]] || printf '{"name": "local-gx-it-proxy", "private": true}\n' >"$PROXY_DIR/package.json"
    (cd "$PROXY_DIR" && npm install --no-audit --no-fund --save-exact --loglevel=error \
        "@galaxyproject/gx-it-proxy@$GXIT_PROXY_VERSION" >&2)
    (cd "$PROXY_DIR" && node -e "require('sqlite3')") || die "gx-it-proxy's sqlite3 module did not build"
}

install_nginx() {
    command -v nginx >/dev/null && return 0
    [[ "$(id -u)" == 0 ]] || die "nginx is missing: sudo apt-get install nginx-light"
    log "installing nginx-light (Debian) for the front URL"
    # Keep the package's init script from starting a system nginx on port 80.
    local policy=/usr/sbin/policy-rc.d made_policy=0
    if [[ ! -e "$policy" ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && made_policy=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx-light >&2 \
        || { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx-light >&2; }
    if [[ "$made_policy" == 1 ]]; then rm -f "$policy"; fi
    command -v nginx >/dev/null || die "nginx did not install"
}

install_runtime() {
    # The tool's requirements resolve to the repository's runtime venv (.venv).
    if [[ -x "$REPO/scripts/setup-venv.sh" || -f "$REPO/scripts/setup-venv.sh" ]]; then
        bash "$REPO/scripts/setup-venv.sh" >&2
    elif [[ ! -x "$REPO/.venv/bin/python" ]]; then
        die "no runtime venv: scripts/setup-venv.sh is missing and .venv does not exist"
    fi
}

secret() { bootstrap_key "$STATE"; }

export_env() {
    export GX_STATE="$STATE" GX_DESTINATION="$DESTINATION" GX_DOCKER_CMD="$DOCKER_CMD"
    export GX_CORE_TOOL="${GALAXY_CELLXGENE_CORE_TOOL:-0}" GX_TOOLSHED_URL="${GALAXY_TOOLSHED_URL:-}"
    export GX_REPO="$REPO" GX_DATA="$DATA" GX_RUN="$RUN" GX_DEPS="$DEPS" GX_CREDENTIALS="$CREDENTIALS"
    export GALAXY_PORT GALAXY_WEB_PORT GXIT_PROXY_PORT
    export GX_PULSAR_URL="http://127.0.0.1:$PULSAR_PORT/" GX_PULSAR_STATE="$PULSAR_STATE"
    GX_ADMIN_KEY="$(secret)"
    export GX_ADMIN_KEY
}

local_py() { with_testkit "$VENV/bin/python" "$REPO/scripts/galaxy/local.py" "$@"; }

cmd_install() {
    local t0=$SECONDS proxy_pid
    # npm and pip each spend most of a cold install waiting on downloads and builds: overlap them.
    install_proxy &
    proxy_pid=$!
    install_galaxy
    # A rebuilt Galaxy venv loses the plugin copy: put it back on every install.
    bash "$REPO/scripts/install-visualization.sh" --venv "$VENV" --quiet >/dev/null
    wait "$proxy_pid" || die "gx-it-proxy install failed"
    install_nginx
    install_runtime
    export_env
    mkdir -p "$DEPS"
    log "tool dependencies (galaxy_packages resolver) in $DEPS:"
    local_py deps >&2
    log "installed in $((SECONDS - t0)) s"
}

galaxy_closure() {
    # The galaxy-* packages galaxy-web-apps needs, transitively, at GALAXY_VERSION (names, sorted).
    local dir="$1" name wheel todo=(galaxy-web-apps) seen=" "
    while [[ ${#todo[@]} -gt 0 ]]; do
        name="${todo[0]}"
        todo=("${todo[@]:1}")
        [[ "$seen" == *" $name "* ]] && continue
        seen+="$name "
        python3 -m pip download --quiet --no-deps -d "$dir/closure" "$name==$GALAXY_VERSION" 2>&1 | quiet_pip
        wheel="$(compgen -G "$dir/closure/${name//-/_}-$GALAXY_VERSION-*.whl" | head -n1)" \
            || die "PyPI has no $name==$GALAXY_VERSION"
        # shellcheck disable=SC2207
        todo+=($(unzip -p "$wheel" '*.dist-info/METADATA' | sed -n 's/^Requires-Dist: \(galaxy-[a-z_-]*\).*/\1/p' \
            | tr '_' '-' | grep -v -x -e galaxy-sequence-utils -e galaxy-release-util || true))
    done
    printf '%s\n' $seen | sort
}

cmd_pins() {
    local tmp
    tmp="$(mktemp -d)"
    # Since 25.0 the `galaxy` metapackage pins the whole set; 24.2 has no metapackage on PyPI,
    # but galaxy-app ships the release's own pinned-requirements.txt (uv export of its lock).
    if python3 -m pip download --quiet --no-deps -d "$tmp" "galaxy==$GALAXY_VERSION" >/dev/null 2>&1 \
        && compgen -G "$tmp/galaxy-$GALAXY_VERSION-*.whl" >/dev/null; then
        {
            echo "# Pins for the local Galaxy $GALAXY_VERSION venv (${VENV#"$REPO"/}), used as pip constraints."
            echo "# Made by 'scripts/galaxy.sh pins' from the Requires-Dist of the galaxy==$GALAXY_VERSION metapackage:"
            echo "# extras dropped, certifi moved to the post release PyPI serves (the metapackage pins a"
            echo "# file that is not served)."
            unzip -p "$tmp"/galaxy-"$GALAXY_VERSION"-*.whl "galaxy-$GALAXY_VERSION.dist-info/METADATA" \
                | sed -n 's/^Requires-Dist: //p' | grep -v 'extra ==' \
                | sed 's/^certifi==2026.10.19$/certifi==2026.10.19.post1/'
        } >"$CONSTRAINTS.tmp"
    else
        python3 -m pip download --quiet --no-deps -d "$tmp" "galaxy-app==$GALAXY_VERSION" 2>&1 | quiet_pip
        compgen -G "$tmp/galaxy_app-$GALAXY_VERSION-*.whl" >/dev/null \
            || die "PyPI has neither galaxy==$GALAXY_VERSION nor galaxy-app==$GALAXY_VERSION"
        {
            echo "# Pins for the local Galaxy $GALAXY_VERSION venv (${VENV#"$REPO"/}), used as pip constraints."
            echo "# Made by 'scripts/galaxy.sh pins' from galaxy/dependencies/pinned-requirements.txt of"
            echo "# galaxy-app==$GALAXY_VERSION (PyPI has no galaxy metapackage for this release); git URL"
            echo "# pins dropped (pip clones every URL constraint, and no PyPI package needs them). The"
            echo "# galaxy-* packages galaxy-web-apps needs (their own requirements are unpinned) follow."
            echo "# The lock has fastapi-slim; galaxy-web-apps asks for fastapi: the same version for both."
            unzip -p "$tmp"/galaxy_app-"$GALAXY_VERSION"-*.whl galaxy/dependencies/pinned-requirements.txt \
                | grep -v -e '^ *#' -e ' @ git+' | sed 's/^fastapi-slim==\(.*\)$/fastapi-slim==\1\nfastapi==\1/'
            galaxy_closure "$tmp" | sed "s/\$/==$GALAXY_VERSION/"
        } >"$CONSTRAINTS.tmp"
    fi
    mv "$CONSTRAINTS.tmp" "$CONSTRAINTS"
    rm -rf "$tmp"
    log "wrote $CONSTRAINTS"
}

# ---------------------------------------------------------------------------------- processes

pidfile() { echo "$RUN/$1.pid"; }

# A pid from a pidfile counts only while it still runs the program we started (pids recycle).
running_pid() { pid_running "$(pidfile "$1")" "$2"; }

PATTERN_galaxy="galaxy-web"
PATTERN_proxy="gx-it-proxy"
PATTERN_nginx="nginx"

port_free() {
    ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

launch() {
    # launch NAME COMMAND...: own session (Ctrl-C in the terminal reaches only this script,
    # which then stops everything in order), stdout/stderr to a log, pid to a pidfile.
    local name="$1"
    shift
    setsid "$@" >>"$LOGS/$name.log" 2>&1 </dev/null &
    echo $! >"$(pidfile "$name")"
}

start_all() {
    local pattern
    for name in galaxy proxy nginx; do
        pattern="PATTERN_$name"
        if running_pid "$name" "${!pattern}" >/dev/null; then
            die "$name already runs (pid $(cat "$(pidfile "$name")")): scripts/galaxy.sh stop first"
        fi
    done
    for port in "$GALAXY_PORT" "$GALAXY_WEB_PORT" "$GXIT_PROXY_PORT"; do
        port_free "$port" || die "port $port is taken (set GALAXY_PORT to move all three ports)"
    done

    mkdir -p "$DATA" "$RUN" "$LOGS" "$RUN/nginx" "$DEPS"
    if [[ "$DESTINATION" == pulsar || "$DESTINATION" == by-user ]]; then
        # Before render: galaxy.yml carries the server's URL and private token.
        bash "$REPO/scripts/pulsar.sh" start
    fi
    local_py render
    local_py sessions

    local t0=$SECONDS
    launch proxy node "$GXIT_MAIN" --ip 127.0.0.1 --port "$GXIT_PROXY_PORT" \
        --sessions "$DATA/interactivetools_map.sqlite" --proxyPathPrefix /interactivetool/ep
    launch nginx nginx -p "$RUN/nginx" -e "$LOGS/nginx-error.log" -c "$RUN/nginx.conf"
    # Jobs inherit this environment: Galaxy's own bin first, so a job without a resolved
    # requirement gets Galaxy's python (as on a production Galaxy), never the runtime venv.
    # (env, not a subshell: `up` must be able to `wait` for the pid.)
    GX_STARTED_AT="$(date +%s.%N)"
    export GX_STARTED_AT
    # PYTHONPATH: the dynamic job rule of GALAXY_CELLXGENE_DESTINATION=by-user (cellxgene_job_rules).
    launch galaxy env -C "$RUN" PATH="$VENV/bin:$PATH" GALAXY_VIRTUAL_ENV="$VENV" \
        PYTHONPATH="$REPO/scripts/galaxy/job_rules" \
        "$VENV/bin/galaxy-web" -c "$RUN/galaxy.yml" -b "127.0.0.1:$GALAXY_WEB_PORT"
    log "started gx-it-proxy (pid $(cat "$(pidfile proxy)")), nginx (pid $(cat "$(pidfile nginx)")),"
    log "galaxy-web (pid $(cat "$(pidfile galaxy)")); logs in $LOGS; waiting for $URL/api/version"

    local demo="$REPO/test-data/pbmc_demo.h5ad"
    if [[ ! -f "$demo" && -f "$REPO/scripts/data/make_test_data.py" ]]; then
        "$REPO/.venv/bin/python" "$REPO/scripts/data/make_test_data.py" >&2 || true
    fi
    local demo_args=()
    if [[ -f "$demo" && -z "${GALAXY_NO_DEMO:-}" ]]; then
        demo_args=(--demo "$demo")
    fi
    if ! local_py bootstrap --galaxy-pid "$(cat "$(pidfile galaxy)")" "${demo_args[@]}"; then
        log "Galaxy did not come up; last lines of $LOGS/galaxy.log:"
        tail -n 40 "$LOGS/galaxy.log" >&2 || true
        stop_all
        exit 1
    fi
    log "Galaxy answered and was set up $((SECONDS - t0)) s after start"
}

stop_one() {
    local name="$1" pattern="$2" pid
    pid="$(running_pid "$name" "$pattern")" || { rm -f "$(pidfile "$name")"; return 0; }
    stop_pid "$pid" "$name"
    rm -f "$(pidfile "$name")"
}

stop_jobs() {
    # Local-runner jobs run in their own process groups and outlive galaxy-web; an
    # interactive tool would keep serving. End every process whose working directory is
    # inside this Galaxy's job directories (only processes this Galaxy started live there).
    local jobs_dir="$DATA/jobs_directory" pid cwd
    [[ -d "$jobs_dir" ]] || return 0
    for proc in /proc/[0-9]*; do
        pid="${proc#/proc/}"
        cwd="$(readlink "$proc/cwd" 2>/dev/null)" || continue
        if [[ "$cwd" == "$jobs_dir"/* ]]; then
            log "stopping leftover job process $pid ($cwd)"
            kill -TERM "$pid" 2>/dev/null || true
        fi
    done
}

stop_containers() {
    # Viewers Galaxy started in containers carry this Galaxy's label (docker_run_extra_arguments).
    command -v "$DOCKER_CMD" >/dev/null || return 0
    local ids
    ids="$("$DOCKER_CMD" ps -q --filter "label=org.galaxy-cellxgene.galaxy-state=$STATE" 2>/dev/null)" || return 0
    for id in $ids; do
        log "stopping leftover job container $id"
        "$DOCKER_CMD" kill "$id" >/dev/null 2>&1 || true
    done
}

stop_all() {
    stop_one galaxy "$PATTERN_galaxy"
    stop_jobs
    stop_containers
    stop_one proxy "$PATTERN_proxy"
    stop_one nginx "$PATTERN_nginx"
    if [[ -f "$PULSAR_STATE/pulsar.pid" ]]; then
        bash "$REPO/scripts/pulsar.sh" stop
    fi
}

print_login() {
    "$VENV/bin/python" - "$CREDENTIALS" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1]))
print()
print(f"  Galaxy {c.get('galaxy_version', '')} with cellxgene: {c['url']}")
print(f"  log in as     {c['user_email']}  password {c['user_password']}")
print(f"  admin         {c['admin_email']}  password {c['admin_password']}")
if c.get("demo_dataset_id"):
    print("  history 'cellxgene demo' holds 'PBMC demo' (switch to it under Histories if another")
    print("  one is current); run the 'cellxgene' tool (Single-cell section) on it, then open the")
    print("  viewer from 'Interactive Tools' in the left bar once the job runs.")
print(f"  credentials and API keys: {sys.argv[1]}")
print()
EOF
}

cmd_start() {
    cmd_install
    export_env
    start_all
    print_login
}

cmd_up() {
    cmd_install
    export_env
    # Ctrl-C also ends a `| tee` beside us: ignore SIGPIPE so a write to a closed pipe
    # fails quietly instead of killing this script before it has stopped anything.
    trap 'trap - INT TERM EXIT; trap "" PIPE; log "stopping"; stop_all; exit 0' INT TERM
    trap 'trap "" PIPE; stop_all' EXIT
    start_all
    print_login
    log "Ctrl-C stops Galaxy, gx-it-proxy and nginx"
    local pids=()
    for name in galaxy proxy nginx; do pids+=("$(cat "$(pidfile "$name")")"); done
    # Returns when any of the three exits; then the others are stopped by the EXIT trap.
    wait -n "${pids[@]}" || true
    log "a process exited on its own; see $LOGS"
    exit 1
}

cmd_stop() {
    export_env
    stop_all
}

cmd_status() {
    local status=0 pattern pid
    for name in galaxy proxy nginx; do
        pattern="PATTERN_$name"
        if pid="$(running_pid "$name" "${!pattern}")"; then
            echo "$name: running (pid $pid)"
        else
            echo "$name: not running"
            status=1
        fi
    done
    if curl -fsS --max-time 5 "$URL/api/version" >/dev/null 2>&1; then
        echo "galaxy: answers at $URL"
    else
        echo "galaxy: no answer at $URL"
        status=1
    fi
    return "$status"
}

case "${1:-}" in
    install) cmd_install ;;
    up) cmd_up ;;
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    pins) cmd_pins ;;
    releases) release_versions | tail -n +2 ;;
    *)
        sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
        exit 2
        ;;
esac
