#!/usr/bin/env bash
# The test suites by lane, from a fresh machine: each lane installs only what it needs
# (idempotent, cached under .venv, .cache and .galaxy*), then runs pytest on its tests.
#
#   scripts/test.sh                  everything (what .ci/run calls): all lanes below
#   scripts/test.sh fast             no Galaxy, no container, no browser: the venv and planemo only
#   scripts/test.sh container        the image (podman): tests/container
#   scripts/test.sh browser          chromium without Galaxy: the list tool's browser switch
#   scripts/test.sh galaxy           every Galaxy-level test: one Galaxy 26.1.2 for the local,
#                                    container and Pulsar destinations, the Tool Shed, the older
#                                    releases and the browser round trips
#                                    (the older releases' tests in a second pytest beside the rest)
#   scripts/test.sh fast -k labels   extra arguments go to pytest
#   scripts/test.sh -x               (no lane named) everything, extra arguments to pytest
#
# tests/README.md maps each folder to its lane. Needs root (or sudo) once for Debian packages
# (podman, chromium, nginx) in every lane but `fast`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

# One marker expression per lane (markers: pyproject.toml); `all` runs fast, then the rest.
declare -A LANE_MARKERS=(
    [fast]="not galaxy and not container and not browser"
    [container]="container and not galaxy"
    [browser]="browser and not galaxy"
    [galaxy]="galaxy"
    [rest]="galaxy or container or browser"
)
lane=all
if [[ $# -gt 0 && ( -n "${LANE_MARKERS[$1]+set}" || "$1" == all ) && "$1" != rest ]]; then
    lane="$1"
    shift
fi

step() { printf '\n=== %s (%s)\n' "$*" "$(date -u +%H:%M:%S)"; }
mkdir -p test-artifacts

install_galaxies() {
    # The older releases (scripts/galaxy/releases.txt) install (mostly downloads) beside
    # the Pulsar install and the image build; their fixture then finds them installed.
    scripts/galaxy.sh install
    local releases_log=test-artifacts/galaxy-releases-install.log
    (
        for version in $(scripts/galaxy.sh releases); do
            GALAXY_VERSION=$version GXIT_PROXY_DIR="$root/.galaxy/proxy" scripts/galaxy.sh install || exit 1
        done
    ) >"$releases_log" 2>&1 &
    local releases_pid=$!
    scripts/pulsar.sh install
    scripts/build-image.sh >/dev/null
    wait "$releases_pid" || { cat "$releases_log" >&2; return 1; }
}

run_pytest() { # run_pytest NAME MARKERS [pytest args...]: junit in test-artifacts/junit-NAME.xml
    local name="$1" markers="$2"
    shift 2
    step "pytest: $name lane (-m \"$markers\")"
    set +e
    PYTHONDONTWRITEBYTECODE=1 .venv/bin/python -m pytest -p no:cacheprovider -m "$markers" \
        --durations=25 --junitxml="test-artifacts/junit-$name.xml" "$@"
    local status=$?
    set -e
    # pytest's 5 means "no test ran": never a pass.
    return "$status"
}

run_beside_releases() { # run_beside_releases NAME MARKERS [pytest args...]
    # The older releases each start a Galaxy of their own (tests/support/galaxy_releases.py) and
    # share nothing with the suite's Galaxy but the image: their tests run in a second pytest at the
    # same time (most of either is waiting on Galaxy's job queue), output kept apart and shown after.
    local name="$1" markers="$2"
    shift 2
    local releases_log=test-artifacts/pytest-releases.log status=0 releases_status=0
    run_pytest releases "($markers) and galaxy_releases" --basetemp="$(mktemp -d)" "$@" \
        >"$releases_log" 2>&1 &
    local releases_pid=$!
    run_pytest "$name" "($markers) and not galaxy_releases" "$@" || status=$?
    wait "$releases_pid" || releases_status=$?
    step "the older releases' tests, run beside the $name lane ($releases_log)"
    cat "$releases_log"
    # pytest's 5 (nothing selected) is no failure here: extra arguments may leave no release test.
    [[ $releases_status -eq 5 ]] && releases_status=0
    [[ $status -ne 0 ]] && return "$status"
    return "$releases_status"
}

lint() {
    step "lint (ruff)"
    .venv/bin/ruff check .
    .venv/bin/ruff format --check .
}

planemo_pid=""
if [[ "$lane" != container && "$lane" != browser ]]; then
    # planemo's own venv shares nothing with .venv: both install at once (each mostly downloads).
    step "planemo (in the background: test-artifacts/planemo-install.log)"
    scripts/planemo.sh --version >test-artifacts/planemo-install.log 2>&1 &
    planemo_pid=$!
fi
wait_planemo() {
    [[ -n "$planemo_pid" ]] || return 0
    wait "$planemo_pid" || { cat test-artifacts/planemo-install.log >&2; return 1; }
    planemo_pid=""
}

step "runtime venv"
scripts/setup-venv.sh
case "$lane" in
fast)
    wait_planemo
    lint
    run_pytest fast "${LANE_MARKERS[fast]}" "$@"
    ;;
container)
    step "Debian packages"
    scripts/setup-system.sh
    step "container image"
    scripts/build-image.sh >/dev/null
    GALAXY_CELLXGENE_IMAGE_REUSE=1 run_pytest container "${LANE_MARKERS[container]}" "$@"
    ;;
browser)
    step "Debian packages"
    scripts/setup-system.sh
    run_pytest browser "${LANE_MARKERS[browser]}" "$@"
    ;;
galaxy)
    step "Debian packages"
    scripts/setup-system.sh
    wait_planemo
    step "Galaxy, older releases, Pulsar, image (install only; the fixtures start them)"
    install_galaxies
    GALAXY_CELLXGENE_IMAGE_REUSE=1 run_beside_releases galaxy "${LANE_MARKERS[galaxy]}" "$@"
    ;;
all)
    step "Debian packages"
    scripts/setup-system.sh
    wait_planemo
    # The installs are mostly downloads: they run while the fast lane keeps the cores busy.
    install_log=test-artifacts/install.log
    step "Galaxy, older releases, Pulsar, image: installing in the background ($install_log)"
    (
        set -e
        install_galaxies
        echo "installs done ($(date -u +%H:%M:%S))"
    ) >"$install_log" 2>&1 &
    install_pid=$!
    lint_status=0
    lint || lint_status=$?
    fast_status=0
    run_pytest fast "${LANE_MARKERS[fast]}" "$@" || fast_status=$?
    step "waiting for the background installs"
    wait "$install_pid" || { tail -n 80 "$install_log" >&2; exit 1; }
    tail -n 1 "$install_log"
    rest_status=0
    GALAXY_CELLXGENE_IMAGE_REUSE=1 run_beside_releases rest "${LANE_MARKERS[rest]}" "$@" || rest_status=$?
    step "lint exit $lint_status, fast lane exit $fast_status, other lanes exit $rest_status"
    for status in "$lint_status" "$fast_status" "$rest_status"; do
        [[ $status -eq 0 ]] || exit "$status"
    done
    ;;
esac
