"""A dataset shaped like a CZ CELLxGENE Discover download (dataset schema 5.x), made here.

The fields follow the published schema: genes indexed by Ensembl ID with the symbols in
var['feature_name'] (plus feature_is_filtered, feature_reference, feature_biotype, feature_length,
feature_type); the ontology-term-id obs columns with the labels Discover adds beside them;
X normalised, raw.X raw counts; uns['schema_version'], uns['title'] and uns['default_embedding'].
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

SYMBOLS = ["CD3E", "CD19", "MS4A1", "NKG7", "LYZ", "CD14", "GNLY", "PPBP", "FCGR3A", "IL7R", "CCR7", "CD8A"]
IDS = [
    f"ENSG{n:011d}"
    for n in (198851, 177455, 156738, 105374, 90382, 170458, 115523, 163736, 203747, 168685, 126353, 153563)
]
CELL_TYPES = {"CL:0000084": "T cell", "CL:0000236": "B cell", "CL:0000576": "monocyte"}


def make(path: Path, n_obs: int = 240, default_embedding: str = "X_tsne", symbols: list[str] | None = None) -> Path:
    import anndata
    import scipy.sparse

    rng = np.random.default_rng(5)
    counts = rng.poisson(2.0, size=(n_obs, len(IDS))).astype(np.float32)
    normalised = np.log1p(counts / counts.sum(axis=1, keepdims=True).clip(1) * 1e4).astype(np.float32)
    terms = list(CELL_TYPES)
    cell_type_ids = [terms[i % 3] for i in range(n_obs)]
    obs = pd.DataFrame(
        {
            "assay_ontology_term_id": pd.Categorical(["EFO:0009922"] * n_obs),
            "cell_type_ontology_term_id": pd.Categorical(cell_type_ids),
            "development_stage_ontology_term_id": pd.Categorical(["HsapDv:0000087"] * n_obs),
            "disease_ontology_term_id": pd.Categorical(["PATO:0000461"] * n_obs),
            "donor_id": pd.Categorical([f"donor_{i % 4}" for i in range(n_obs)]),
            "is_primary_data": np.ones(n_obs, dtype=bool),
            "organism_ontology_term_id": pd.Categorical(["NCBITaxon:9606"] * n_obs),
            "self_reported_ethnicity_ontology_term_id": pd.Categorical(["unknown"] * n_obs),
            "sex_ontology_term_id": pd.Categorical(["PATO:0000383"] * n_obs),
            "suspension_type": pd.Categorical(["cell"] * n_obs),
            "tissue_ontology_term_id": pd.Categorical(["UBERON:0000178"] * n_obs),
            "tissue_type": pd.Categorical(["tissue"] * n_obs),
            # Added by Discover beside the term ids.
            "assay": pd.Categorical(["10x 3' v3"] * n_obs),
            "cell_type": pd.Categorical([CELL_TYPES[t] for t in cell_type_ids]),
            "disease": pd.Categorical(["normal"] * n_obs),
            "organism": pd.Categorical(["Homo sapiens"] * n_obs),
            "sex": pd.Categorical(["female"] * n_obs),
            "tissue": pd.Categorical(["blood"] * n_obs),
            "observation_joinid": [f"j{i:05d}" for i in range(n_obs)],
        },
        index=pd.Index([f"AAACCTGAGA{i:06d}-1" for i in range(n_obs)]),
    )
    var = pd.DataFrame(
        {
            "feature_is_filtered": np.zeros(len(IDS), dtype=bool),
            "feature_name": pd.Categorical(symbols or SYMBOLS),
            "feature_reference": pd.Categorical(["NCBITaxon:9606"] * len(IDS)),
            "feature_biotype": pd.Categorical(["gene"] * len(IDS)),
            "feature_length": np.arange(1000, 1000 + len(IDS), dtype=np.int64),
            "feature_type": pd.Categorical(["protein_coding"] * len(IDS)),
        },
        index=pd.Index(IDS),
    )
    adata = anndata.AnnData(X=scipy.sparse.csr_matrix(normalised), obs=obs, var=var)
    adata.raw = anndata.AnnData(X=scipy.sparse.csr_matrix(counts), obs=obs, var=var)
    angle = np.linspace(0, 6.28, n_obs)
    adata.obsm["X_umap"] = np.c_[np.cos(angle), np.sin(angle)].astype(np.float32)
    adata.obsm["X_tsne"] = np.c_[angle, np.cos(angle) * 3].astype(np.float32)
    adata.uns["schema_version"] = "5.0.0"
    adata.uns["title"] = "A Discover-shaped test dataset"
    adata.uns["default_embedding"] = default_embedding
    adata.uns["X_approximate_distribution"] = "normal"
    adata.write_h5ad(path)
    return path
