"""A CELLxGENE Discover-shaped dataset (discover_shaped.py) opens with gene symbols as gene names
and its uns['default_embedding'] first; the form's explicit choices still win."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from galaxy_cellxgene.cli import main
from support.discover_shaped import SYMBOLS, make


@pytest.fixture(scope="module")
def discover(tmp_path_factory) -> Path:
    return make(tmp_path_factory.mktemp("discover") / "discover.h5ad")


def _check(path: Path, tmp_path: Path, *extra: str) -> tuple[int, str]:
    report = tmp_path / "report.md"
    code = main(["check", str(path), "--report", str(report), *extra])
    return code, report.read_text()


def test_symbols_are_the_default_gene_names(discover: Path, tmp_path: Path) -> None:
    code, text = _check(discover, tmp_path)
    assert code == 0
    assert "- Gene names: feature_name (var column of gene symbols; the var index holds gene IDs;" in text
    assert "- Shown first: tsne (the dataset's uns['default_embedding'])" in text


def test_the_form_can_still_choose_the_index_or_another_column(discover: Path, tmp_path: Path) -> None:
    assert (
        "- Gene names: var index, as chosen (the gene symbols are in var column 'feature_name')"
        in _check(discover, tmp_path, "--var-names", "__index__")[1]
    )
    text = _check(discover, tmp_path, "--var-names", "feature_type", "--make-var-names-unique")[1]
    assert "- Gene names: feature_type (made unique)" in text


def test_repeated_symbols_keep_the_index_and_say_why(tmp_path: Path) -> None:
    path = make(tmp_path / "dup.h5ad", symbols=[*SYMBOLS[:-1], SYMBOLS[0]])
    code, text = _check(path, tmp_path)
    assert code == 0  # the IDs are unique: it opens, with IDs as names
    assert re.search(r"Gene names: var index \(var column 'feature_name' holds gene symbols but some repeat", text)
    text = _check(path, tmp_path, "--make-var-names-unique")[1]
    assert "- Gene names: feature_name (var column of gene symbols" in text and "(made unique)" in text


@pytest.mark.slow
def test_opens_with_symbols_and_the_default_embedding_first(discover: Path, runtime) -> None:
    job = runtime(discover)
    client = job.client
    schema = client.schema()
    assert schema["annotations"]["var"]["index"] == "feature_name"
    assert client.expression("CD3E").shape == (schema["dataframe"]["nObs"],)
    page = client.page()
    bundle = re.search(r"static/(main-[0-9a-f]+\.js)", page)
    assert bundle is not None
    body = client.get(f"static/{bundle.group(1)}").text
    # The page opens on the first of this list the dataset has: tsne, as uns['default_embedding'] says.
    assert '["tsne","umap","tsne","pca"]' in body
