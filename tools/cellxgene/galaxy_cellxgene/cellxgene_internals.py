"""Every touch of cellxgene 1.3.0 beyond its documented configuration, in one place.

The runtime builds cellxgene's app the way `cellxgene launch` does and then corrects or bounds a
few of its parts: a method of the data adaptor replaced (gene reads, layout encoding), a view
wrapped (differential expression, the static bundle), the label-save inflater swapped, the
annotations store subclassed. Each cellxgene name that reaches is listed in SYMBOLS (dotted
paths, resolved by `resolve`) and ENDPOINTS (Flask endpoint names); tests/unit/test_cellxgene_internals.py
resolves every one of them, the test that fails first when cellxgene is upgraded.

Importing this module imports no cellxgene code (each function imports what it uses, and the
annotations base class outputs.py subclasses is looked up on first use): cellxgene's own imports
stay where cli.run_view puts them, after the column copy has started, so they overlap it.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Dotted names of cellxgene's modules, classes, functions and methods the runtime uses or replaces.
SYMBOLS: tuple[str, ...] = (
    "server.__version__",
    "server.cli.launch.CliLaunchServer",
    "server.common.config.app_config.AppConfig",
    "server.common.config.app_config.AppConfig.update_server_config",
    "server.common.config.app_config.AppConfig.update_dataset_config",
    "server.common.config.app_config.AppConfig.complete_config",
    "server.common.errors.ConfigurationError",
    "server.common.errors.DatasetAccessError",
    "server.common.errors.DisabledFeatureError",
    "server.common.errors.ObsoleteRequest",
    "server.common.constants.XApproximateDistribution",
    "server.common.constants.Axis",
    "server.common.rest.inflate",  # replaced by limits.py: the label save, inflated within bounds
    "server.app.app.DiffExpObsAPI",  # endpoint api.diffexpobsapi
    "server.app.app.AnnotationsObsAPI",  # endpoint api.annotationsobsapi
    "server.app.app.GenesetsAPI",  # endpoint api.genesetsapi
    "server.common.annotations.local_file_csv.AnnotationsLocalFile",
    "server.common.annotations.local_file_csv.AnnotationsLocalFile.read_labels",
    "server.common.annotations.local_file_csv.AnnotationsLocalFile.write_labels",
    "server.common.annotations.local_file_csv.AnnotationsLocalFile.read_gene_sets",
    "server.common.annotations.local_file_csv.AnnotationsLocalFile.write_gene_sets",
    "server.common.annotations.local_file_csv.AnnotationsLocalFile._get_celllabels_filename",
    "server.common.annotations.local_file_csv.AnnotationsLocalFile._get_genesets_filename",
    "server.common.annotations.local_file_csv.AnnotationsLocalFile._backup",
    "server.common.annotations.annotations.Annotations.user_annotations_enabled",
    "server.common.annotations.annotations.Annotations.check_user_annotations_enabled",
    "server.common.annotations.annotations.Annotations.check_gene_sets_save_enabled",
    "server.data_anndata.anndata_adaptor.AnndataAdaptor.get_X_array",  # replaced by the column store
    "server.data_anndata.anndata_adaptor.AnndataAdaptor.get_shape",
    "server.data_anndata.anndata_adaptor.AnndataAdaptor.get_obs_index",
    "server.data_anndata.anndata_adaptor.AnndataAdaptor.get_embedding_names",
    "server.data_anndata.anndata_adaptor.AnndataAdaptor.query_var_array",
    "server.data_common.data_adaptor.DataAdaptor.layout_to_fbs_matrix",  # replaced by a cache (app.py)
    "server.data_common.data_adaptor.DataAdaptor.check_new_gene_sets",
    "server.data_common.data_adaptor.DataAdaptor._axis_filter_to_mask",
    # gene_clicks.py answers this handler's single-gene request with this encoder's bytes:
    "server.common.rest.data_var_get",
    "server.common.rest._query_parameter_to_filter",
    "server.common.fbs.matrix.encode_matrix_fbs",
)
# Attributes read or set on instances (not resolvable without a loaded dataset; the integration
# tests exercise them): AnnotationsLocalFile's label_lock, gene_sets_lock, last_label_fname,
# last_labels, last_geneset_fname, last_geneset, last_geneset_tid, label_output_file,
# gene_sets_output_file; the adaptor's data (.X, .obs, .isbacked), parameters ("var_names",
# "diffexp-may-be-slow") and X_approximate_distribution; AppConfig's dataset_config.user_annotations
# and server_config.data_adaptor / limits__diffexp_cellcount_max.

DIFFEXP_ENDPOINT = "api.diffexpobsapi"
LABELS_ENDPOINT = "api.annotationsobsapi"
GENE_SETS_ENDPOINT = "api.genesetsapi"
STATIC_ENDPOINT = "static_assets"
ENDPOINTS = (DIFFEXP_ENDPOINT, LABELS_ENDPOINT, GENE_SETS_ENDPOINT, STATIC_ENDPOINT)


def __getattr__(name: str) -> Any:
    """`AnnotationsLocalFile`, cellxgene's file-backed annotations store, imported on first use."""
    if name == "AnnotationsLocalFile":
        from server.common.annotations.local_file_csv import AnnotationsLocalFile

        return AnnotationsLocalFile
    raise AttributeError(name)


class StartupError(RuntimeError):
    """cellxgene refused the dataset or configuration; the message is for the user."""


def resolve(name: str) -> Any:
    """The object a dotted name of SYMBOLS stands for: the longest importable module, then attributes."""
    parts = name.split(".")
    for split in range(len(parts), 0, -1):
        try:
            target: Any = importlib.import_module(".".join(parts[:split]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[split:]:
            target = getattr(target, attribute)
        return target
    raise ModuleNotFoundError(name)


# ---- building the app, as `cellxgene launch` does -------------------------------------------


def cellxgene_message(err: Exception) -> str:
    message = getattr(err, "message", None) or (err.args[0] if err.args else str(err))
    # cellxgene 1.3.0 leaves an unformatted placeholder in one of its messages.
    return str(message).replace("{ax_name}", "obs/var")


def load_app_config(server: dict, dataset: dict, say: Callable[[str], None]):
    """cellxgene's AppConfig, completed (which loads the dataset); StartupError when it refuses."""
    from server.common.config.app_config import AppConfig
    from server.common.errors import ConfigurationError, DatasetAccessError

    app_config = AppConfig()
    try:
        app_config.update_server_config(**server)
        app_config.update_dataset_config(**dataset)
        app_config.complete_config(say)
    except (ConfigurationError, DatasetAccessError, KeyError) as err:
        raise StartupError(cellxgene_message(err)) from err
    return app_config


def data_adaptor(app_config):
    return app_config.server_config.data_adaptor


def annotations_config(app_config) -> dict:
    return app_config.dataset_config.user_annotations.config


def use_annotations(app_config, store) -> None:
    app_config.dataset_config.user_annotations = store


def set_diffexp_cell_limit(app_config, cells: int) -> None:
    # Read by the UI too: it refuses oversized comparisons before sending them.
    app_config.server_config.limits__diffexp_cellcount_max = cells


def diffexp_cell_limit() -> int | None:
    """The limit of the app answering the current request."""
    from flask import current_app

    return current_app.app_config.server_config.limits__diffexp_cellcount_max


def launch_app(app_config):
    """The Flask app `cellxgene launch` would serve."""
    from server.cli.launch import CliLaunchServer

    return CliLaunchServer(app_config).app


# ---- the data adaptor ----------------------------------------------------------------------


def replace_method(adaptor, name: str, replacement: Callable) -> Callable:
    """Put `replacement` in place of the adaptor's `name` (get_X_array, layout_to_fbs_matrix); returns the original."""
    original = getattr(adaptor, name)
    setattr(adaptor, name, replacement)
    return original


def shape(adaptor) -> tuple[int, int]:
    n_obs, n_vars = adaptor.get_shape()
    return int(n_obs), int(n_vars)


def embedding_names(adaptor) -> list[str]:
    return list(adaptor.get_embedding_names())


def x_on_disk(adaptor) -> bool:
    return bool(getattr(adaptor.data, "isbacked", False))


def x_in_memory(adaptor):
    return adaptor.data.X


def obs_frame(adaptor):
    return adaptor.data.obs


def quiet_slow_diffexp_warning(adaptor) -> None:
    adaptor.parameters.pop("diffexp-may-be-slow", None)


def set_distribution(adaptor, value: str) -> None:
    from server.common.constants import XApproximateDistribution

    adaptor.X_approximate_distribution = XApproximateDistribution(value)


def obs_mask(adaptor, obs_filter: dict):
    """The boolean cell mask of one `filter.obs` of a request, as cellxgene computes it."""
    from server.common.constants import Axis

    return adaptor._axis_filter_to_mask(Axis.OBS, obs_filter, shape(adaptor)[0])


def encode_matrix(matrix, col_idx) -> bytes:
    """cellxgene's FlatBuffers `NetEncoding.Matrix` of `matrix`, as its data/var handler encodes it."""
    from server.common.fbs.matrix import encode_matrix_fbs

    return bytes(encode_matrix_fbs(matrix, col_idx=col_idx))


def gene_names(adaptor) -> list[str]:
    """The names the UI shows for genes: the var column cellxgene uses as its index."""
    column = adaptor.parameters.get("var_names")
    return [str(v) for v in adaptor.query_var_array(column)]


# ---- the Flask app --------------------------------------------------------------------------


def wrap_view(app, endpoint: str, wrap: Callable[[Callable], Callable]) -> None:
    """Replace one of cellxgene's views by `wrap(view)`; loud when cellxgene renamed it."""
    view = app.view_functions.get(endpoint)
    if view is None:  # fail loudly in tests, not silently in production
        raise RuntimeError(f"cellxgene endpoint {endpoint} not found")
    app.view_functions[endpoint] = wrap(view)


def replace_label_inflater(inflate: Callable[[bytes], bytes]) -> None:
    """cellxgene's label save calls `server.common.rest.inflate`; process-wide."""
    from server.common import rest

    rest.inflate = inflate


def package_dir() -> Path:
    """cellxgene's package folder, found without running its `__init__` (which imports its
    plugins): the early front serves its page and files before cellxgene is imported."""
    spec = importlib.util.find_spec("server")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("cellxgene (package 'server') is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def static_dir() -> Path:
    return package_dir() / "common" / "web" / "static"


def templates_dir() -> Path:
    return package_dir() / "common" / "web" / "templates"


def version() -> str:
    from server import __version__

    return str(__version__)


def disabled_feature(message: str) -> Exception:
    from server.common.errors import DisabledFeatureError

    return DisabledFeatureError(message)


def obsolete_request(message: str) -> Exception:
    from server.common.errors import ObsoleteRequest

    return ObsoleteRequest(message)
