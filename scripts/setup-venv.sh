#!/usr/bin/env bash
# Create (or refresh) .venv: the exact runtime set from requirements/runtime.txt plus test tools.
# Idempotent: a stamp of the requirement files skips the install when nothing changed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${VENV:-$root/.venv}"
python="${PYTHON:-python3.11}"
command -v "$python" >/dev/null || python=python3
stamp="$venv/.requirements.sha256"
want="$(cat "$root/requirements/runtime.txt" "$root/requirements/dev.txt" | sha256sum | cut -d' ' -f1)"
if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  exit 0
fi
[[ -x "$venv/bin/python" ]] || "$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
"$venv/bin/python" -m pip install --quiet -r "$root/requirements/runtime.txt" -r "$root/requirements/dev.txt" \
  2>&1 | grep -v '^WARNING: Location' || true
"$venv/bin/python" -c "import server, waitress, anndata, playwright" # fail here, not in a test
echo "$want" > "$stamp"
echo "runtime venv ready: $venv"
