"""The compatibility corpus (test-data/compat/, made by scripts/data/make_compat_data.py) and its read-back.

Each file is named `<writer>_<layout>.h5ad`; writers.json beside them lists each writer's
versions. The merged outputs are read back by the WRITER's anndata when its environment is
present (COMPAT_VENVS, default /work/wt/venvs/compat: built by the script, not by CI);
otherwise by the newest anndata the runtime has (0.12.19), which the tests say in their ids.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from support.fixtures import ROOT, TEST_DATA

CORPUS = TEST_DATA / "compat"
SCRIPT = ROOT / "scripts" / "data" / "make_compat_data.py"
VENVS = Path(os.environ.get("COMPAT_VENVS", "/work/wt/venvs/compat"))
LABEL = "compat_label"


def corpus() -> list[Path]:
    return sorted(CORPUS.glob("*.h5ad"))


def writer_of(path: Path) -> str:
    return path.name.split("_", 1)[0]


def storage_of(path: Path) -> str:
    return path.stem.split("_", 1)[1]


def writers() -> dict[str, dict]:
    return {m["writer"]: m for m in json.loads((CORPUS / "writers.json").read_text())}


def labels_for(n: int) -> list[str]:
    # A pattern a shifted or truncated column would not reproduce, with the UI's literal 'unassigned'.
    names = ["T cell", "B cell", "unassigned", "NK cell"]
    return [names[(i * 5 + i // 13) % 4] for i in range(n)]


def writer_python(writer: str) -> Path | None:
    python = VENVS / writer / "bin" / "python"
    return python if python.exists() else None


def read_back(merged: Path, original: Path) -> tuple[str, dict]:
    """(who read it, what it saw): the script's own --readback, in the writer's environment if
    present, else in this one (the runtime's anndata)."""
    writer = writer_of(original)
    python = writer_python(writer)
    command = [str(python or sys.executable), str(SCRIPT), "--venvs", str(VENVS), "--inside", writer]
    command += ["--readback", str(merged), "--labels", LABEL, "--original", str(original)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    who = writer if python is not None else "runtime anndata"
    assert done.returncode == 0, f"{who} cannot read the merged file:\n{done.stderr[-3000:]}"
    return who, json.loads(done.stdout.strip().splitlines()[-1])


def encodings(path: Path) -> dict[str, str]:
    """Every element's anndata encoding (or 'dataset'/'group'), by path inside the file."""
    import h5py

    found: dict[str, str] = {}

    def visit(name: str, node) -> None:
        value = node.attrs.get("encoding-type", "")
        found[name] = str(value) or ("dataset" if isinstance(node, h5py.Dataset) else "group")

    with h5py.File(path) as f:
        f.visititems(visit)
        found["obs@version"] = str(f["obs"].attrs.get("encoding-version", ""))
    return found


def assert_layout_kept(original: Path, merged: Path) -> None:
    """The merge kept the writer's layout (so the writer's anndata reads it) and left no element
    anndata 0.10 cannot read: nullable strings become what 0.8-0.10 wrote for the same values."""
    before, after = encodings(original), encodings(merged)
    assert after["obs@version"] == before["obs@version"]  # anndata 0.7's frames stay 0.7's
    for name, encoding in before.items():
        if name.startswith("obs/" + LABEL):
            continue
        if encoding == "nullable-string-array":
            assert after[name] in ("string-array", "categorical"), (name, after[name])
        elif not name.startswith(tuple(n + "/" for n, e in before.items() if e == "nullable-string-array")):
            assert after.get(name) == encoding, (name, encoding, after.get(name))
    assert "nullable-string-array" not in after.values()
    label = after["obs/" + LABEL]
    assert label == ("dataset" if before["obs@version"] == "0.1.0" else "categorical"), label
