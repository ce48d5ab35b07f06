#!/usr/bin/env bash
# Create (or refresh) .venv: the exact runtime set from requirements/runtime.txt plus test tools,
# then the runtime's folder on its path (.pth) and testkit/ (galaxy_cellxgene_testkit) installed editable.
# Idempotent: a stamp of the requirement files skips the install when nothing changed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${VENV:-$root/.venv}"
python="${PYTHON:-python3.11}"
command -v "$python" >/dev/null || python=python3
stamp="$venv/.requirements.sha256"
# The stamp covers what decides the install: the pins, the testkit's metadata and this script.
want="$(cat "$root/requirements/runtime.txt" "$root/requirements/dev.txt" "$root/testkit/pyproject.toml" \
  "$root/scripts/setup-venv.sh" | sha256sum | cut -d' ' -f1)"
if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  exit 0
fi
[[ -x "$venv/bin/python" ]] || "$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
"$venv/bin/python" -m pip install --quiet -r "$root/requirements/runtime.txt" -r "$root/requirements/dev.txt" \
  2>&1 | grep -v '^WARNING: Location' || true
# The runtime stays in the tool folder (Galaxy and the Tool Shed need it there): a .pth puts that
# folder on the venv's path, so scripts import galaxy_cellxgene without any sys.path edit (an
# editable pip install would leave an egg-info inside the tool folder).
site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
printf '%s\n' "$root/tools/cellxgene" >"$site/galaxy-cellxgene-runtime.pth"
# The support package of tests, benchmarks and the load test (testkit/), editable, without
# dependencies (the pins above are the set). Build backends print deprecation notes at length:
# show the output only when the install fails.
if ! out="$("$venv/bin/python" -m pip install --quiet --no-deps -e "$root/testkit" 2>&1)"; then
  printf '%s\n' "$out" >&2
  exit 1
fi
"$venv/bin/python" -c "import server, waitress, anndata, playwright, galaxy_cellxgene, galaxy_cellxgene_testkit.jobs" # fail here, not in a test
echo "$want" > "$stamp"
echo "runtime venv ready: $venv"
