# shellcheck shell=bash
# Sourced by scripts/galaxy.sh and scripts/toolshed.sh: the steps both take to install and run a
# pinned Galaxy-family server (Galaxy, the Tool Shed). The caller sets REPO and LOG_TAG first.

: "${CONSTRAINTS:=$REPO/scripts/galaxy/constraints.txt}" # the caller may have chosen others

# `|| true`: after Ctrl-C a `| tee` reading our stderr may be gone; stopping must go on.
log() { printf '[%s] %s\n' "$LOG_TAG" "$*" >&2 || true; }
die() { log "error: $*"; exit 1; }

# pip prints a warning per package for find-links folders this machine lists but lacks.
quiet_pip() { grep -v -e 'is ignored: it is neither a file nor a directory' || true; }

# pins_stamp VERSION...: what a venv was built from (the versions and the pins' hash).
pins_stamp() { printf '%s %s\n' "$*" "$(sha256sum "$CONSTRAINTS" | cut -c1-16)"; }

# pinned_venv VENV STAMP_FILE STAMP OVER IMPORTS PACKAGE...
# (Re)build VENV unless STAMP_FILE holds STAMP: a fresh venv (on top of the venv OVER's packages,
# read-only, when OVER is not empty), PACKAGEs pinned by constraints.txt, then a check that the
# modules IMPORTS (comma-separated) import. Returns 0 at once when the stamp matches.
pinned_venv() {
    local venv="$1" stamp_file="$2" stamp="$3" over="$4" imports="$5"
    shift 5
    if [[ -f "$stamp_file" && "$(cat "$stamp_file")" == "$stamp" ]]; then
        return 0
    fi
    log "installing $* into $venv (pinned by ${CONSTRAINTS#"$REPO"/})"
    rm -rf "$venv"
    if [[ -n "$over" ]]; then
        "$over/bin/python" -m venv "$venv"
        local site over_site
        site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
        over_site="$("$over/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
        printf '%s\n' "$over_site" >"$site/galaxy-venv.pth"
    else
        python3 -m venv "$venv"
    fi
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$@" -c "$CONSTRAINTS" 2>&1 | quiet_pip
    "$venv/bin/python" -c "import $imports" || die "installed into $venv, but $imports does not import"
    printf '%s\n' "$stamp" >"$stamp_file"
}

# with_testkit COMMAND...: run a helper of scripts/galaxy/ with the testkit's Galaxy API client
# importable (galaxy_cellxgene_testkit.galaxy_api needs only requests, which Galaxy's venvs have).
with_testkit() { PYTHONPATH="$REPO/testkit/src${PYTHONPATH:+:$PYTHONPATH}" "$@"; }

# bootstrap_key DIR: the bootstrap admin key of the installation in DIR, made once, kept out of
# the repository.
bootstrap_key() {
    local file="$1/bootstrap_admin_key"
    if [[ ! -s "$file" ]]; then
        mkdir -p "$1"
        (umask 077 && python3 -c 'import secrets; print(secrets.token_hex(20))' >"$file")
    fi
    cat "$file"
}

# pid_running PIDFILE PATTERN: print the pid in PIDFILE while it still runs a command line
# matching PATTERN (pids recycle); fail otherwise.
pid_running() {
    local file="$1" pattern="$2" pid
    [[ -s "$file" ]] || return 1
    pid="$(cat "$file")"
    [[ -r "/proc/$pid/cmdline" ]] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$pattern" || return 1
    echo "$pid"
}

# stop_pid PID NAME: SIGTERM, up to 20 s to exit, then SIGKILL.
stop_pid() {
    local pid="$1" name="$2"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
        [[ -d "/proc/$pid" ]] || break
        sleep 0.2 # the poll interval of a wait with a deadline
    done
    if [[ -d "/proc/$pid" ]]; then
        log "$name (pid $pid) ignored SIGTERM for 20 s: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    log "stopped $name (pid $pid)"
}

# The release list (scripts/galaxy/releases.txt): the newest, then the older ones.
release_versions() { grep -v '^#' "$REPO/scripts/galaxy/releases.txt" | awk 'NF { print $1 }'; }
newest_release() { release_versions | head -n 1; }
