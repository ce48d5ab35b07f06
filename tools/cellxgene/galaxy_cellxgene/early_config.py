"""cellxgene's `config` answer for one view, from the settings the view gives cellxgene (settings.py)
and what the file says, without cellxgene: the first request its page makes (early_front.py).

Built as cellxgene 1.3.0's `get_client_config` builds it, with the runtime's own changes to it:
the differential expression cell limit (set after loading, from the dataset's genes) and the
"may be slow" flag it drops once its column store serves genes (app.build_session).

One value cannot be cellxgene's own: `annotations-user-data-idhash`, a hash of a user id
cellxgene draws at random for each browser without its session cookie. This answer draws one
too, as cellxgene would for that browser; the page only shows it in a file-name prompt that a
view with fixed Galaxy outputs never shows (`annotations-data-collection-is-read-only`).
"""

from __future__ import annotations

import base64
import importlib.metadata
import os
import uuid
from hashlib import blake2b
from pathlib import Path

from galaxy_cellxgene.settings import ViewerOptions, diffexp_cell_limit, embedding_names

# cellxgene's defaults for what the view leaves to them (its default_config.py).
COLUMN_REQUEST_MAX = 32
CELLXGENE = "cellxgene v1.3.0"
ENGINE = "cellxgene anndata adaptor version"


def user_data_idhash(location: str, user_id: str | None = None) -> str:
    """cellxgene's short hash of a browser's user id and the dataset's location."""
    uid = user_id if user_id is not None else uuid.uuid4().hex
    return base64.b32encode(blake2b((uid + location).encode(), digest_size=5).digest()).decode("utf-8")


def may_be_slow(n_obs: int, n_vars: int, backed: bool, store_serves_genes: bool) -> bool:
    """cellxgene's "diffexp may be slow" rule, less what build_session drops: a column store serves
    genes and the matrix has at most 5e8 values."""
    values = n_obs * n_vars
    slow = (values > 1e8 and backed) or values > 5e8
    return slow and not (store_serves_genes and values <= 5e8)


def client_config(
    options: ViewerOptions,
    prepared: Path,
    labels_copy: Path,
    *,
    obs_names: str,
    var_names: str,
    n_obs: int,
    n_vars: int,
    store_serves_genes: bool,
) -> dict:
    """The body of GET config: `obs_names`/`var_names` are the columns cellxgene names cells and
    genes by (its `name_<n>` for an index), `store_serves_genes` whether a column store of the
    runtime's serves X (cellxgene then opens X backed)."""
    location = str(prepared)
    backed = True if store_serves_genes else bool(options.backed)
    annotations = bool(options.annotations)
    parameters = {
        "layout": embedding_names(options.embeddings),
        "max-category-items": int(options.max_category_items),
        "obs_names": obs_names,
        "var_names": var_names,
        "diffexp_lfc_cutoff": float(options.diffexp_lfc_cutoff),
        "backed": backed,
        "disable-diffexp": not options.diffexp,
        "annotations": annotations,
        "annotations_file": None,
        "annotations_dir": None,
        "annotations_genesets": True,
        "annotations_genesets_readonly": not options.gene_sets_save,
        "annotations_genesets_summary_methods": ["mean"],
        "custom_colors": bool(options.custom_colors),
        "diffexp-may-be-slow": may_be_slow(n_obs, n_vars, backed, store_serves_genes),
        # The annotations store's own (cellxgene's local CSV store, with the view's fixed files).
        "annotations_genesets_name_is_read_only": True,
        "user_annotation_collection_name_enabled": True,
        "annotations-data-collection-is-read-only": True,
        "annotations-data-collection-name": os.path.splitext(labels_copy.name)[0],
        "annotations-user-data-idhash": user_data_idhash(location),
    }
    return {
        "config": {
            "displayNames": {"engine": ENGINE, "dataset": options.title or os.path.splitext(prepared.name)[0]},
            "library_versions": {"anndata": importlib.metadata.version("anndata"), "cellxgene": CELLXGENE},
            "links": {"about-dataset": None},
            "parameters": parameters,
            "corpora_props": None,
            "limits": {
                "column_request_max": COLUMN_REQUEST_MAX,
                "diffexp_cellcount_max": diffexp_cell_limit(options, n_vars),
            },
        }
    }
