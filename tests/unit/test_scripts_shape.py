"""scripts/ keeps the runtime's discipline: no module over 400 lines, no function over 50 lines
(the runtime's longest are about 70; issue 24 found the benchmark's at 120-140). A long function
here is split by job, as in the runtime."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
MAX_FUNCTION_LINES = 50


def long_functions(root: Path, limit: int) -> list[str]:
    """`path:line name (N lines)` for every function or method under `root` longer than `limit` lines."""
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > limit:
                    found.append(f"{path.relative_to(root)}:{node.lineno} {node.name} ({lines} lines)")
    return found


def test_the_check_sees_a_long_method(tmp_path: Path) -> None:
    body = "\n".join(f"        x{i} = {i}" for i in range(60))
    (tmp_path / "long.py").write_text(f"class A:\n    def m(self):\n{body}\n\n\ndef short():\n    return 1\n")
    assert long_functions(tmp_path, MAX_FUNCTION_LINES) == ["long.py:2 m (61 lines)"]


@pytest.mark.parametrize("folder", ["", "bench", "data", "galaxy", "pulsar"])
def test_no_script_function_is_over_50_lines(folder: str) -> None:
    root = SCRIPTS / folder
    found = [f for f in long_functions(root, MAX_FUNCTION_LINES) if folder or "/" not in f.split(":")[0]]
    assert found == [], "split these by job: " + "; ".join(found)


MAX_MODULE_LINES = 400  # the runtime's cap (tests/unit/test_package_shape.py)


def test_no_script_module_is_over_400_lines() -> None:
    found = [
        f"{path.relative_to(SCRIPTS)} ({lines} lines)"
        for path in sorted(SCRIPTS.rglob("*.py"))
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    ]
    assert found == [], "split these by job: " + "; ".join(found)
