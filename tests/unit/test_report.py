"""The `check` report: the verdict, every problem with its fix, and what cellxgene will show."""

from __future__ import annotations

from pathlib import Path

from galaxy_cellxgene.report import render
from galaxy_cellxgene.settings import ViewerOptions
from galaxy_cellxgene.validate import inspect


def test_report_of_a_good_dataset(layers_h5ad: Path) -> None:
    options = ViewerOptions(layer="counts", var_names="gene_symbols", diffexp=False)
    text = render("pbmc.h5ad", inspect(layers_h5ad, options), options)
    assert text.startswith("# cellxgene check: pbmc.h5ad\n")
    assert "**Verdict:** this dataset can be opened" in text
    assert "## Problems" not in text
    for line in [
        "- Title: pbmc.h5ad",
        "- Cells: 200",
        "- Genes: 30",
        "- Expression values: layer 'counts'",
        "- Gene names: gene_symbols",
        "- Other layers (not shown by cellxgene): scaled",
        "- X_umap [200, 2]: shown",
        "- louvain: categorical, 5 values",
        "- differential expression: off",
        "- annotations: on",
        "- max category items: 1000",
    ]:
        assert line in text.splitlines(), line


def test_report_of_a_broken_dataset(unprefixed_embedding_h5ad: Path) -> None:
    options = ViewerOptions(title="My cells", make_var_names_unique=True)
    text = render("x.h5ad", inspect(unprefixed_embedding_h5ad, options), options)
    assert "**Verdict:** this dataset cannot be opened" in text
    assert "## Problems" in text
    problems = [line for line in text.splitlines() if line.startswith("- **ERROR**")]
    assert len(problems) == 1
    assert "No embedding" in problems[0] and "*Fix:*" in problems[0]
    assert "- umap [200, 2]: not shown: name does not start with X_" in text
    assert "- Title: My cells" in text
    assert "(made unique)" in text
