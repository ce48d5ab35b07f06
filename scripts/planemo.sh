#!/usr/bin/env bash
# Run planemo from its own pinned venv (kept apart from the runtime .venv: planemo
# drags in galaxy-tool-util and friends whose pins would fight cellxgene's).
# Idempotent: the first call installs, later calls only run.
#   scripts/planemo.sh lint --report_level all tools/cellxgene/*.xml
set -euo pipefail

PLANEMO_VERSION=0.75.47
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${PLANEMO_VENV:-$ROOT/.cache/planemo-venv}"
STAMP="$VENV/.planemo-$PLANEMO_VERSION"

if [[ ! -f "$STAMP" ]]; then
    PY="${PYTHON:-python3}"
    rm -rf "$VENV"
    "$PY" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "planemo==$PLANEMO_VERSION" >&2
    touch "$STAMP"
fi

# planemo writes ~/.planemo; keep it inside the cache so CI's HOME stays clean.
export PLANEMO_GLOBAL_WORKSPACE="${PLANEMO_GLOBAL_WORKSPACE:-$VENV/workspace}"
exec "$VENV/bin/planemo" "$@"
