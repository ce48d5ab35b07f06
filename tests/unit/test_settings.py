"""Tool parameters -> cellxgene 1.3.0 settings: every rule the tool form relies on."""

from __future__ import annotations

import dataclasses

import pytest
from galaxy_cellxgene import settings
from galaxy_cellxgene.cli import build_parser, options_from_args
from galaxy_cellxgene.settings import (
    FINISH_SCRIPT,
    ViewerOptions,
    dataset_config,
    diffexp_cell_limit,
    distribution,
    embedding_name,
    embedding_names,
    idle_timeout_seconds,
    must_rewrite_metadata,
    server_config,
    var_names_for_cellxgene,
)


def configs(options: ViewerOptions, known=None) -> tuple[dict, dict]:
    return (
        server_config(options, "/jobs/1/dataset.h5ad", "secret"),
        dataset_config(options, "/jobs/1/labels.csv", "/jobs/1/gene-sets.csv", known),
    )


# ---- embeddings ----


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("X_umap", "umap"),
        ("umap", "umap"),
        (" X_tsne ", "tsne"),
        ("X_draw_graph_fa", "draw_graph_fa"),
        ("x_umap", "x_umap"),
    ],
)
def test_embedding_name_strips_the_obsm_prefix_only(given: str, expected: str) -> None:
    # Galaxy's metadata lists obsm keys (X_umap); cellxgene's --embedding wants the bare name.
    assert embedding_name(given) == expected


def test_embedding_names_dedupe_keep_order_and_drop_empty() -> None:
    assert embedding_names(("X_umap", "umap", "X_pca", "", "X_", " pca ")) == ["umap", "pca"]


def test_selected_embeddings_reach_cellxgene_without_prefix() -> None:
    _, dataset = configs(ViewerOptions(embeddings=("X_umap", "X_tsne", "umap")))
    assert dataset["embeddings__names"] == ["umap", "tsne"]


def test_no_embedding_selected_means_all() -> None:
    # cellxgene shows every usable embedding when the list is empty.
    _, dataset = configs(ViewerOptions())
    assert dataset["embeddings__names"] == []


# ---- gene and cell names ----


def test_var_names_column_is_passed_through() -> None:
    options = ViewerOptions(var_names="gene_symbols")
    assert var_names_for_cellxgene(options) == "gene_symbols"
    assert configs(options)[0]["single_dataset__var_names"] == "gene_symbols"
    assert not must_rewrite_metadata(options)


def test_make_unique_uses_the_rewritten_index_not_the_column() -> None:
    # The small h5ad holds the unique names as its var index; pointing cellxgene at the
    # original (duplicated) column again would bring the duplicates back.
    options = ViewerOptions(var_names="gene_symbols", make_var_names_unique=True)
    assert var_names_for_cellxgene(options) is None
    assert configs(options)[0]["single_dataset__var_names"] is None
    assert must_rewrite_metadata(options)


@pytest.mark.parametrize("empty", [None, ""])
def test_empty_columns_mean_the_index(empty: str | None) -> None:
    server, _ = configs(ViewerOptions(var_names=empty, obs_names=empty, title=empty))
    assert server["single_dataset__var_names"] is None
    assert server["single_dataset__obs_names"] is None
    assert server["single_dataset__title"] is None


def test_obs_names_and_title_are_passed_through() -> None:
    server, _ = configs(ViewerOptions(obs_names="barcode", title="PBMC 3k"))
    assert server["single_dataset__obs_names"] == "barcode"
    assert server["single_dataset__title"] == "PBMC 3k"
    assert server["single_dataset__datapath"] == "/jobs/1/dataset.h5ad"
    # Another cell-name column is something cellxgene does itself: no rewrite needed.
    assert not must_rewrite_metadata(ViewerOptions(obs_names="barcode"))


def test_layer_forces_a_rewrite() -> None:
    assert must_rewrite_metadata(ViewerOptions(layer="counts"))
    assert not must_rewrite_metadata(ViewerOptions(layer=""))
    assert not must_rewrite_metadata(ViewerOptions())


# ---- switches ----


def test_defaults_enable_everything() -> None:
    server, dataset = configs(ViewerOptions())
    assert dataset["diffexp__enable"] is True
    assert dataset["user_annotations__enable"] is True
    assert dataset["user_annotations__gene_sets__readonly"] is False
    assert dataset["presentation__custom_colors"] is True
    assert server["adaptor__anndata_adaptor__backed"] is False
    assert server["app__open_browser"] is False


def test_switches_off() -> None:
    server, dataset = configs(
        ViewerOptions(diffexp=False, annotations=False, gene_sets_save=False, custom_colors=False, backed=True)
    )
    assert dataset["diffexp__enable"] is False
    assert dataset["user_annotations__enable"] is False
    assert dataset["user_annotations__gene_sets__readonly"] is True
    assert dataset["presentation__custom_colors"] is False
    assert server["adaptor__anndata_adaptor__backed"] is True


def test_annotation_files_are_fixed_paths() -> None:
    # Both fixed: with only the labels file, cellxgene writes gene sets somewhere else.
    _, dataset = configs(ViewerOptions())
    assert dataset["user_annotations__local_file_csv__file"] == "/jobs/1/labels.csv"
    assert dataset["user_annotations__local_file_csv__gene_sets_file"] == "/jobs/1/gene-sets.csv"


def test_finish_script_is_injected_first_and_relative() -> None:
    _, dataset = configs(ViewerOptions(extra_scripts=("galaxy/static/export.js",)))
    assert dataset["app__scripts"] == [FINISH_SCRIPT, "galaxy/static/export.js"]
    # Relative, so the page finds it under Galaxy's proxy prefix.
    assert not FINISH_SCRIPT.startswith("/")


# ---- limits ----


def test_category_limit_and_lfc_cutoff_are_numbers() -> None:
    _, dataset = configs(ViewerOptions(max_category_items=250, diffexp_lfc_cutoff=1))
    assert dataset["presentation__max_categories"] == 250
    assert dataset["diffexp__lfc_cutoff"] == 1.0
    assert isinstance(dataset["diffexp__lfc_cutoff"], float)


def test_diffexp_cell_limit_from_the_memory_budget() -> None:
    # cellxgene densifies each compared group as float64, twice: 16 bytes per cell and gene.
    assert settings.DIFFEXP_BYTES_PER_CELL_GENE == 16
    default = ViewerOptions()
    assert default.diffexp_max_cells == 0 and default.diffexp_memory_mb == 4096
    assert diffexp_cell_limit(default, 2000) == 4096 * 1024 * 1024 // (2000 * 16)  # 134,217 cells
    assert diffexp_cell_limit(ViewerOptions(diffexp_memory_mb=1024), 2000) == 33_554
    # More genes, fewer cells: the same memory.
    assert diffexp_cell_limit(default, 30_000) < diffexp_cell_limit(default, 2000)


def test_diffexp_cell_limit_explicit_and_edges() -> None:
    assert diffexp_cell_limit(ViewerOptions(diffexp_max_cells=5000), 2000) == 5000  # the admin's number wins
    assert diffexp_cell_limit(ViewerOptions(diffexp_memory_mb=0), 2000) == 1  # never 0: cellxgene reads 0 as off
    assert diffexp_cell_limit(ViewerOptions(), 0) == 4096 * 1024 * 1024 // 16  # no genes: no division by zero


def test_diffexp_limit_is_a_cellxgene_setting() -> None:
    # The runtime sets it after loading (it needs the gene count); the name must be cellxgene's.
    from server.common.config.app_config import AppConfig

    config = AppConfig()
    config.update_server_config(limits__diffexp_cellcount_max=diffexp_cell_limit(ViewerOptions(), 2000))
    assert config.server_config.limits__diffexp_cellcount_max == 134_217


# ---- column copy and backed loading ----


def test_load_backed_overrides_the_users_backed_mode_only_when_given() -> None:
    def backed(options: ViewerOptions, load_backed: bool | None) -> bool:
        return server_config(options, "/d.h5ad", "k", load_backed=load_backed)["adaptor__anndata_adaptor__backed"]

    assert backed(ViewerOptions(), None) is False
    assert backed(ViewerOptions(backed=True), None) is True
    assert backed(ViewerOptions(), True) is True


# ---- X distribution ----


@pytest.mark.parametrize(
    ("chosen", "backed", "known", "expected"),
    [
        ("auto", False, None, "auto"),
        ("auto", True, None, "auto"),  # the runtime settles it after loading (distribution.py)
        ("auto", False, "count", "count"),  # a measured answer saves cellxgene's numba compile
        ("auto", True, "normal", "normal"),
        ("count", True, "normal", "count"),  # the user's explicit choice wins
        ("normal", False, "count", "normal"),
    ],
)
def test_distribution_rules(chosen: str, backed: bool, known: str | None, expected: str) -> None:
    options = ViewerOptions(x_distribution=chosen, backed=backed)  # type: ignore[arg-type]
    assert distribution(options, known) == expected  # type: ignore[arg-type]
    assert configs(options, known)[1]["X_approximate_distribution"] == expected


# ---- idle timeout ----


@pytest.mark.parametrize(("minutes", "seconds"), [(0, None), (-5, None), (30, 1800.0), (0.5, 30.0), (None, None)])
def test_idle_timeout(minutes: float | None, seconds: float | None) -> None:
    assert idle_timeout_seconds(ViewerOptions(idle_timeout_minutes=minutes)) == seconds  # type: ignore[arg-type]


# ---- every key is one cellxgene knows ----


@pytest.mark.parametrize(
    "options",
    [ViewerOptions(), ViewerOptions(backed=True, diffexp_max_cells=0, embeddings=("X_umap",), title="t")],
)
def test_cellxgene_accepts_every_setting(options: ViewerOptions) -> None:
    # AppConfig raises ConfigurationError on an unknown key: a renamed setting fails here, not in a job.
    from server.common.config.app_config import AppConfig

    server, dataset = configs(options)
    config = AppConfig()
    config.update_server_config(**server)
    config.update_dataset_config(**dataset)
    assert config.server_config.single_dataset__datapath == "/jobs/1/dataset.h5ad"
    assert config.dataset_config.embeddings__names == dataset["embeddings__names"]
    assert config.dataset_config.X_approximate_distribution == dataset["X_approximate_distribution"]


def test_settings_module_stays_pure() -> None:
    # Importing cellxgene costs ~1 s; the mapping must stay importable without it.
    assert "server" not in vars(settings)


# ---- command line -> options ----


def parse(*argv: str) -> ViewerOptions:
    return options_from_args(build_parser().parse_args(["check", "in.h5ad", *argv]))


def test_cli_defaults_equal_the_dataclass_defaults() -> None:
    # Two sets of defaults drifting apart would make the tool form and the CLI disagree.
    assert parse() == ViewerOptions()


def test_cli_maps_every_option() -> None:
    options = parse(
        *("--title", "My data", "--var-names", "gene_symbols", "--make-var-names-unique"),
        *("--obs-names", "barcode", "--embedding", "X_umap", "--embedding", "", "--embedding", "tsne"),
        *("--layer", "counts", "--previous-annotations", "a.csv", "--previous-gene-sets", "g.csv"),
        *("--disable-diffexp", "--disable-annotations", "--disable-gene-sets-save", "--disable-custom-colors"),
        *("--max-category-items", "50", "--diffexp-lfc-cutoff", "0.5", "--backed", "--idle-timeout", "15"),
        *("--x-distribution", "count", "--diffexp-max-cells", "7", "--diffexp-memory-mb", "512"),
        *("--diffexp-concurrency", "2"),
    )
    expected = ViewerOptions(
        title="My data",
        var_names="gene_symbols",
        make_var_names_unique=True,
        obs_names="barcode",
        embeddings=("X_umap", "tsne"),
        layer="counts",
        previous_annotations="a.csv",
        previous_gene_sets="g.csv",
        diffexp=False,
        annotations=False,
        gene_sets_save=False,
        custom_colors=False,
        max_category_items=50,
        diffexp_lfc_cutoff=0.5,
        backed=True,
        idle_timeout_minutes=15,
        x_distribution="count",
        diffexp_max_cells=7,
        diffexp_memory_mb=512,
        diffexp_concurrency=2,
    )
    assert options == expected
    # Fields compared one by one too, so a failure names the option.
    for f in dataclasses.fields(ViewerOptions):
        assert getattr(options, f.name) == getattr(expected, f.name), f.name


def test_cli_empty_strings_from_galaxy_mean_unset() -> None:
    # Galaxy renders an empty optional text parameter as '' on the command line.
    options = parse("--title", "", "--var-names", "", "--obs-names", "", "--layer", "")
    assert (options.title, options.var_names, options.obs_names, options.layer) == (None, None, None, None)
    assert not must_rewrite_metadata(options)


def test_cli_title_file(tmp_path) -> None:
    # Galaxy passes the dataset name through a file, so no shell quoting can break it.
    title = tmp_path / "title.txt"
    title.write_text("  PBMC; rm -rf / $(x) `y`  \nsecond line\n", encoding="utf-8")
    assert parse("--title-file", str(title)).title == "PBMC; rm -rf / $(x) `y`"
    title.write_text("x" * 500)
    assert parse("--title-file", str(title)).title == "x" * 200
    title.write_text("")
    assert parse("--title-file", str(title)).title is None
