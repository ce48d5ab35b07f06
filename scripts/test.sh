#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what it needs (idempotent, cached
# under .venv, .cache and .galaxy), then runs pytest over every suite.
#
#   scripts/test.sh                 everything (unit, integration, tool lint, Galaxy, container, browser)
#   scripts/test.sh -m "not galaxy" extra arguments go to pytest
#
# Needs root (or sudo) once for Debian packages: podman, chromium, nginx.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

step() { printf '\n=== %s (%s)\n' "$*" "$(date -u +%H:%M:%S)"; }

step "Debian packages"
scripts/setup-system.sh
step "runtime venv"
scripts/setup-venv.sh
step "planemo"
scripts/planemo.sh --version
step "Galaxy (install only; the test fixture starts it)"
scripts/galaxy.sh install
# The older releases of tests/galaxy/test_galaxy_releases.py install (mostly downloads) beside the
# Pulsar install and the image build; their fixture then finds them installed (the versions are
# RELEASES of tests/support/galaxy_releases.py).
step "older Galaxy releases (install only, in the background: test-artifacts/galaxy-releases-install.log)"
mkdir -p test-artifacts
releases_log=test-artifacts/galaxy-releases-install.log
(
    for version in 25.1.3 24.2.4; do
        GALAXY_VERSION=$version GXIT_PROXY_DIR="$root/.galaxy/proxy" scripts/galaxy.sh install || exit 1
    done
) >"$releases_log" 2>&1 &
releases_pid=$!
step "Pulsar (install only; tests/galaxy/test_galaxy_pulsar.py starts it with its Galaxy)"
scripts/pulsar.sh install
step "container image"
scripts/build-image.sh >/dev/null
step "older Galaxy releases (waiting for the background install)"
wait "$releases_pid" || { cat "$releases_log" >&2; exit 1; }
export GALAXY_CELLXGENE_IMAGE_REUSE=1 # the fixture uses the image just built

step "lint (ruff)"
.venv/bin/ruff check .
.venv/bin/ruff format --check .

step "pytest"
export PYTHONDONTWRITEBYTECODE=1
mkdir -p test-artifacts
set +e
.venv/bin/python -m pytest -p no:cacheprovider --junitxml=test-artifacts/junit.xml "$@"
status=$?
set -e
# pytest's 5 means "no test ran": never a pass.
exit "$status"
