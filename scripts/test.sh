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
step "Pulsar (install only; tests/galaxy/test_galaxy_pulsar.py starts it with its Galaxy)"
scripts/pulsar.sh install
step "container image"
scripts/build-image.sh >/dev/null
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
