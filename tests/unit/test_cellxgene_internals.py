"""Every cellxgene 1.3.0 name the runtime reaches into still exists: the test that fails first
when cellxgene is upgraded (cellxgene_internals.py lists them; nothing else touches cellxgene)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from galaxy_cellxgene import cellxgene_internals as cx

PACKAGE = Path(cx.__file__).parent


@pytest.mark.parametrize("name", cx.SYMBOLS)
def test_each_cellxgene_symbol_resolves(name: str) -> None:
    assert cx.resolve(name) is not None


def test_resolve_fails_for_a_missing_symbol() -> None:
    with pytest.raises(AttributeError):
        cx.resolve("server.common.rest.inflate_renamed")
    with pytest.raises(ModuleNotFoundError):
        cx.resolve("no_such_cellxgene_module.thing")


def test_each_endpoint_is_one_cellxgene_defines() -> None:
    """Flask-RESTful names an endpoint after its resource class: api.<class name, lower case>."""
    import inspect

    resources = {f"api.{name.rpartition('.')[2].lower()}" for name in cx.SYMBOLS if name.startswith("server.app.app.")}
    assert {cx.DIFFEXP_ENDPOINT, cx.LABELS_ENDPOINT, cx.GENE_SETS_ENDPOINT} <= resources
    source = inspect.getsource(cx.resolve("server.app.app"))
    assert f'"{cx.STATIC_ENDPOINT}"' in source
    assert cx.static_dir().is_dir()


def test_the_annotations_base_class_is_cellxgenes() -> None:
    assert cx.AnnotationsLocalFile is cx.resolve("server.common.annotations.local_file_csv.AnnotationsLocalFile")
    with pytest.raises(AttributeError):
        _ = cx.NoSuchName  # type: ignore[attr-defined]


def test_no_other_module_imports_cellxgene() -> None:
    """cellxgene's top-level package is `server`: only cellxgene_internals.py may import it."""
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "cellxgene_internals.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom) and not node.level
                else []
            )
            offenders += [f"{path.name}: {n}" for n in names if n == "server" or n.startswith("server.")]
    assert offenders == []
