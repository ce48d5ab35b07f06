"""The runtime package's shape: every module imports on its own, no import cycle, no module too long.

The import graph is read from each module's AST (every `import galaxy_cellxgene...` and
`from galaxy_cellxgene... import`, at module level or inside a function: a lazy import is
still a dependency), so a cycle fails here even when Python's import order happens to work.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

PACKAGE = "galaxy_cellxgene"
ROOT = Path(__file__).resolve().parents[2] / "tools" / "cellxgene" / PACKAGE
MAX_LINES = 400


def module_files() -> dict[str, Path]:
    modules = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    return modules


def imported_modules(name: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules that `name` imports (a `from package import module` counts as the module)."""
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {m for m in found if m in known and m != name}


def import_graph() -> dict[str, set[str]]:
    files = module_files()
    known = set(files)
    graph = {name: imported_modules(name, path, known) for name, path in files.items()}
    # Importing a.b.c runs a and a.b first: a module depends on its parent packages' __init__.
    for name in graph:
        parent = name.rpartition(".")[0]
        if parent in graph and parent != PACKAGE:
            graph[name].add(parent)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_graph_walk_finds_a_cycle() -> None:
    """The checker itself: a two-module cycle and a longer one are found, a tree is not."""
    assert find_cycle({"a": {"b"}, "b": {"a"}}) == ["a", "b", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_graph_sees_lazy_and_package_imports() -> None:
    graph = import_graph()
    assert "galaxy_cellxgene.options" in graph["galaxy_cellxgene.cli"]
    assert "galaxy_cellxgene.app" in graph["galaxy_cellxgene.cli"]  # imported inside run_view
    assert "galaxy_cellxgene.multi.session" in graph["galaxy_cellxgene.view_many"]


def test_no_import_cycle_in_the_runtime() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, " -> ".join(cycle or [])


# __main__ is the entry script: importing it restricts HDF5's environment for the whole process.
@pytest.mark.parametrize("name", sorted(set(module_files()) - {f"{PACKAGE}.__main__"}))
def test_every_module_imports_on_its_own(name: str) -> None:
    importlib.import_module(name)


@pytest.mark.parametrize("name", sorted(module_files()))
def test_no_module_is_over_400_lines(name: str) -> None:
    lines = len(module_files()[name].read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{name} has {lines} lines: split it by job"


def test_every_runtime_file_ships_to_the_tool_shed() -> None:
    """.shed.yml lists what the Tool Shed repository gets: a new subpackage must be listed too."""
    import fnmatch

    import yaml

    repo = ROOT.parents[2]
    sources = [entry["source"] for entry in yaml.safe_load((repo / ".shed.yml").read_text())["include"]]
    files = [p for p in ROOT.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    missing = [
        str(p.relative_to(repo))
        for p in files
        if not any(fnmatch.fnmatch(str(p.relative_to(repo)), s) for s in sources)
    ]
    assert missing == []


def test_every_subpackage_is_in_the_wheel() -> None:
    """The image installs the runtime from pyproject.toml (containers/Dockerfile): a subpackage
    left out of `packages` is missing there, while the tool folder (Galaxy, the tests) still has it.
    Seen: Finish from scripts/run-image.sh hung on `galaxy_cellxgene.multi` missing."""
    import tomllib

    project = tomllib.loads((ROOT.parents[2] / "pyproject.toml").read_text())
    listed = set(project["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT.parent).parts) for p in ROOT.rglob("__init__.py")}
    assert found <= listed, f"not in pyproject.toml's packages: {sorted(found - listed)}"
    data = project["tool"]["setuptools"]["package-data"]
    for html in ROOT.rglob("*.html"):
        package = ".".join(html.parent.relative_to(ROOT.parent).parts)
        assert package in data, f"{html.name} is not package data of {package}"
