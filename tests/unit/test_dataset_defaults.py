"""Pure rules for files others write: gene-name defaults, the embedding shown first, tissue orientation."""

from __future__ import annotations

import numpy as np
import pandas as pd
from galaxy_cellxgene.gene_names import mostly_ids, symbol_column
from galaxy_cellxgene.obsm import spatial_name, tissue_view
from galaxy_cellxgene.page_fixes import PREFERRED
from galaxy_cellxgene.settings import INDEX_CHOICE, ViewerOptions, with_dataset_defaults

IDS = pd.Index(["ENSG00000198851", "ENSMUSG00000032093.5", "ENSG00000177455"])


def test_an_empty_choice_takes_the_datasets_symbols() -> None:
    assert with_dataset_defaults(ViewerOptions(), "feature_name").var_names == "feature_name"
    assert with_dataset_defaults(ViewerOptions(), None).var_names is None


def test_the_forms_choice_wins() -> None:
    assert with_dataset_defaults(ViewerOptions(var_names="gene_ids"), "feature_name").var_names == "gene_ids"
    assert with_dataset_defaults(ViewerOptions(var_names=INDEX_CHOICE), "feature_name").var_names is None


def test_first_embedding_is_the_first_chosen_else_the_datasets_default() -> None:
    assert with_dataset_defaults(ViewerOptions(), None, "tsne").first_embedding == "tsne"
    chosen = ViewerOptions(embeddings=("spatial", "X_umap"))
    assert with_dataset_defaults(chosen, None, "tsne").first_embedding == "spatial"
    assert with_dataset_defaults(ViewerOptions(), None).first_embedding == ""


def test_symbol_column_only_when_the_index_is_ids() -> None:
    columns = {"gene_ids": list(IDS), "feature_name": ["CD3E", "Cd3e", "CD19"]}
    assert symbol_column(IDS, list(columns), columns.__getitem__) == "feature_name"
    assert symbol_column(pd.Index(["CD3E", "CD19", "LYZ"]), list(columns), columns.__getitem__) is None
    # A "symbol" column that holds IDs too is no better than the index.
    same = {"gene_name": list(IDS)}
    assert symbol_column(IDS, list(same), same.__getitem__) is None
    assert mostly_ids(IDS) and not mostly_ids(pd.Index(["CD3E", "ENSG00000198851"]))


def test_tissue_coordinates_are_mirrored_in_y_only() -> None:
    image = np.array([[10, 0], [10, 5], [20, 5]], dtype=np.int64)  # y grows downwards
    drawn = tissue_view(image)
    assert drawn.dtype.kind == "f"
    np.testing.assert_array_equal(drawn[:, 0], [10, 10, 20])
    # The spot below (larger image y) is drawn lower (smaller y, as cellxgene draws y upwards).
    assert drawn[1, 1] < drawn[0, 1] and drawn[1, 1] == drawn[2, 1]
    np.testing.assert_array_equal(image[:, 1], [0, 5, 5])  # the input array is not changed


def test_spatial_name_never_hides_an_existing_embedding() -> None:
    assert spatial_name(["spatial", "X_umap"]) == "spatial"
    assert spatial_name(["spatial", "X_spatial"]) == "spatial_tissue"


def test_the_bundle_list_is_the_one_cellxgene_ships() -> None:
    from galaxy_cellxgene import cellxgene_internals as cx

    bundles = list(cx.static_dir().glob("main-*.js"))
    assert len(bundles) == 1 and bundles[0].read_bytes().count(PREFERRED) == 1
