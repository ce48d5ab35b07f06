"""`view-many` for real: three datasets, cellxgene apps under /d/<name>/, driven like the UI."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import anndata as ad
import numpy as np
import pytest
import requests
from galaxy_cellxgene.labels import read_gene_sets, read_labels
from support.fixtures import DEMO, wait_until
from support.multi import ManyJob, make_dataset

pytestmark = pytest.mark.slow

DAY0, MULLER, DAY14 = "day0", "day_7_Muller", "day14"


def labels_for(n: int, names: list[str], offset: int = 0) -> list[str]:
    return [names[(i + offset) % len(names)] for i in range(n)]


def gene_set(name: str, genes: list[str]) -> dict:
    return {
        "geneset_name": name,
        "geneset_description": "",
        "genes": [{"gene_symbol": g, "gene_description": ""} for g in genes],
    }


def files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) if folder.exists() else []


def test_two_datasets_labelled_switching_keeps_each_ones_labels_and_finish_writes_them(many) -> None:
    job = many()
    page = job.landing()
    for name, cells in (("day0", "220"), ("day 7 – Müller", "260"), ("day14", "240")):
        assert name in page
        assert cells in page
    assert "X_tsne, X_umap" in page
    assert job.status()["loaded"] == []  # nothing loads before it is used
    assert job.galaxy_listing() == {"annotations": [], "gene_sets": [], "annotated": []}

    a, b = job.client(DAY0), job.client(MULLER)
    assert a.config()["displayNames"]["dataset"] == "day0"
    assert b.config()["displayNames"]["dataset"] == "day 7 – Müller"
    n_a, n_b = a.schema()["dataframe"]["nObs"], b.schema()["dataframe"]["nObs"]
    assert (n_a, n_b) == (220, 260)

    labels_a = labels_for(n_a, ["T cell", "B cell", "unassigned"])
    labels_b = labels_for(n_b, ["early", "late"])
    assert a.put_labels({"cell_type": labels_a}).ok
    assert b.put_labels({"stage": labels_b}).ok
    assert a.put_gene_sets([gene_set("markers A", ["GENE1", "GENE2"])]).ok

    # Switch back and forth: each dataset answers with its own labels only.
    for _ in range(3):
        assert list(a.get_labels().columns) == ["cell_type"]
        assert list(a.get_labels()["cell_type"]) == labels_a
        assert list(b.get_labels().columns) == ["stage"]
        assert list(b.get_labels()["stage"]) == labels_b
    # A later edit of the first dataset is its latest save.
    labels_a2 = labels_for(n_a, ["T cell", "NK"], offset=1)
    assert a.put_labels({"cell_type": labels_a2, "quality": ["good"] * n_a}).ok

    # Galaxy's listing names each element as the user did, and lists only files that exist.
    opened = [("day0", f"{DAY0}.csv"), ("day 7 – Müller", f"{MULLER}.csv")]
    assert job.galaxy_listing() == {"annotations": opened, "gene_sets": opened, "annotated": []}
    # Every save is in that dataset's output at once, before any finish.
    assert list(read_labels(job.annotations_dir / f"{DAY0}.csv")["cell_type"]) == labels_a2
    assert list(read_labels(job.annotations_dir / f"{MULLER}.csv")["stage"]) == labels_b

    status = job.finish()
    assert status["finished"] and status["finish_error"] is None
    assert job.wait(60) == 0

    # Exactly the two opened datasets have outputs; the third was never opened.
    assert files(job.annotations_dir) == [f"{DAY0}.csv", f"{MULLER}.csv"]
    assert files(job.gene_sets_dir) == [f"{DAY0}.csv", f"{MULLER}.csv"]
    assert files(job.merged_dir) == [f"{DAY0}.h5ad", f"{MULLER}.h5ad"]
    saved_a = read_labels(job.annotations_dir / f"{DAY0}.csv")
    assert list(saved_a.columns) == ["cell_type", "quality"]
    assert list(saved_a["cell_type"]) == labels_a2
    assert list(read_labels(job.annotations_dir / f"{MULLER}.csv").columns) == ["stage"]
    assert set(read_gene_sets(job.gene_sets_dir / f"{DAY0}.csv")) == {"markers A"}
    assert read_gene_sets(job.gene_sets_dir / f"{MULLER}.csv") == {}

    merged_a = ad.read_h5ad(job.merged_dir / f"{DAY0}.h5ad")
    merged_b = ad.read_h5ad(job.merged_dir / f"{MULLER}.h5ad")
    assert list(merged_a.obs["cell_type"].astype(str)) == labels_a2
    assert list(merged_a.obs["quality"].astype(str)) == ["good"] * n_a
    assert "stage" not in merged_a.obs
    assert list(merged_b.obs["stage"].astype(str)) == labels_b
    assert "cell_type" not in merged_b.obs
    assert merged_a.n_obs == n_a and merged_b.n_obs == n_b
    merged = [("day0", f"{DAY0}.h5ad"), ("day 7 – Müller", f"{MULLER}.h5ad")]
    assert job.galaxy_listing() == {"annotations": opened, "gene_sets": opened, "annotated": merged}


def test_tiny_memory_budget_unloads_least_recently_used_and_reload_keeps_labels(many) -> None:
    job = many(None, "--memory-budget-mb", "1")
    a, b, c = job.client(DAY0), job.client(MULLER), job.client(DAY14)
    n_a = a.schema()["dataframe"]["nObs"]
    labels_a = labels_for(n_a, ["x", "y", "z"])
    assert a.put_labels({"mine": labels_a}).ok
    assert a.put_gene_sets([gene_set("kept", ["GENE3"])]).ok
    assert job.status()["loaded"] == [DAY0]

    n_b = b.schema()["dataframe"]["nObs"]  # over budget: day0 makes room
    assert job.status()["loaded"] == [MULLER]
    labels_b = labels_for(n_b, ["p", "q"])
    assert b.put_labels({"theirs": labels_b}).ok
    assert c.schema()["dataframe"]["nObs"] == 240
    assert job.status()["loaded"] == [DAY14]

    # Back to the first: reloaded from its outputs, with its labels and gene sets.
    assert list(a.get_labels()["mine"]) == labels_a
    assert [g["geneset_name"] for g in a.get_gene_sets()] == ["kept"]
    rows = {r["slug"]: r for r in job.status()["datasets"]}
    assert rows[DAY0]["loads"] == 2 and rows[DAY0]["unloads"] == 1
    assert rows[DAY0]["label_saves"] == 1  # counted across the unload
    # Work continues on the reloaded dataset; the UI resends every category on each save.
    labels_a2 = labels_for(n_a, ["x", "w"])
    assert a.put_labels({"mine": labels_a2, "more": ["m"] * n_a}).ok
    assert list(b.get_labels()["theirs"]) == labels_b

    status = job.finish()
    assert status["finish_error"] is None
    assert job.wait(60) == 0
    assert files(job.merged_dir) == sorted([f"{DAY14}.h5ad", f"{DAY0}.h5ad", f"{MULLER}.h5ad"])
    merged_a = ad.read_h5ad(job.merged_dir / f"{DAY0}.h5ad")
    assert list(merged_a.obs["mine"].astype(str)) == labels_a2
    assert list(merged_a.obs["more"].astype(str)) == ["m"] * n_a
    assert list(merged_a.uns["cellxgene_gene_sets"]["gene_set_name"]) == ["kept"]
    merged_b = ad.read_h5ad(job.merged_dir / f"{MULLER}.h5ad")
    assert list(merged_b.obs["theirs"].astype(str)) == labels_b
    merged_c = ad.read_h5ad(job.merged_dir / f"{DAY14}.h5ad")
    assert not any(column in merged_c.obs for column in ("mine", "theirs", "more"))


def test_idle_dataset_is_unloaded_and_reopens_where_it_was(many) -> None:
    job = many(None, "--unload-after", "0.02")  # 1.2 s
    a = job.client(DAY0)
    n = a.schema()["dataframe"]["nObs"]
    labels = labels_for(n, ["idle", "busy"])
    assert a.put_labels({"state": labels}).ok
    wait_until(lambda: job.status()["loaded"] == [], 30, "the idle dataset to be unloaded")
    assert "unloaded 'day0' (idle" in job.log
    assert list(a.get_labels()["state"]) == labels
    assert job.status()["loaded"] == [DAY0]


def test_sigterm_keeps_every_dataset_last_save(many) -> None:
    job = many()
    a, b = job.client(DAY0), job.client(MULLER)
    n_a, n_b = a.schema()["dataframe"]["nObs"], b.schema()["dataframe"]["nObs"]
    assert a.put_labels({"first": labels_for(n_a, ["1"])}).ok
    assert b.put_labels({"second": labels_for(n_b, ["2", "3"])}).ok
    last_a = labels_for(n_a, ["1", "4"])
    assert a.put_labels({"first": last_a}).ok
    assert b.put_gene_sets([gene_set("b set", ["GENE0"])]).ok

    job.send(signal.SIGTERM)
    assert job.wait(10) == 143
    assert list(read_labels(job.annotations_dir / f"{DAY0}.csv")["first"]) == last_a
    assert list(read_labels(job.annotations_dir / f"{MULLER}.csv")["second"]) == labels_for(n_b, ["2", "3"])
    assert set(read_gene_sets(job.gene_sets_dir / f"{MULLER}.csv")) == {"b set"}
    assert files(job.merged_dir) == []  # a Stop leaves no half-written merged file
    assert job.galaxy_listing()["annotated"] == []
    assert [name for name, _ in job.galaxy_listing()["annotations"]] == ["day0", "day 7 – Müller"]


def earlier_outputs(job: ManyJob, output: str, folder: Path, path: Path, extra: dict[str, str]) -> Path:
    """What the list tool's XML writes for a resumed run: element identifier -> dataset file."""
    items = [{"name": name, "path": str(folder / filename)} for name, filename in job.galaxy_listing()[output]]
    items += [{"name": name, "path": str(folder / filename)} for name, filename in extra.items()]
    path.write_text(json.dumps(items), encoding="utf-8")
    return path


def test_a_later_session_resumes_each_dataset_from_the_earlier_lists(tmp_path: Path, many) -> None:
    first = many()
    a, b = first.client(DAY0), first.client(MULLER)
    labels_a = labels_for(a.schema()["dataframe"]["nObs"], ["early", "late"])
    labels_b = labels_for(b.schema()["dataframe"]["nObs"], ["x"])
    assert a.put_labels({"stage": labels_a}).ok
    assert b.put_labels({"quality": labels_b}).ok
    assert b.put_gene_sets([gene_set("markers", ["GENE1", "GENE2"])]).ok
    first.send(signal.SIGTERM)
    assert first.wait(10) == 143

    stray = {"a dataset not in this list": f"{DAY0}.csv"}
    labels_json = earlier_outputs(first, "annotations", first.annotations_dir, tmp_path / "labels.json", stray)
    sets_json = earlier_outputs(first, "gene_sets", first.gene_sets_dir, tmp_path / "sets.json", {})
    second = many(None, "--previous-annotations-json", str(labels_json), "--previous-gene-sets-json", str(sets_json))
    assert "earlier annotations for 2 of 3 datasets" in second.log
    assert "'a dataset not in this list' match no dataset" in second.log
    assert list(second.client(DAY0).get_labels()["stage"]) == labels_a
    assert list(second.client(MULLER).get_labels()["quality"]) == labels_b
    assert [g["geneset_name"] for g in second.client(MULLER).get_gene_sets()] == ["markers"]
    assert list(second.client(DAY14).get_labels().columns) == []
    # The resumed work is in this session's outputs from the start, before any new save.
    assert list(read_labels(second.annotations_dir / f"{DAY0}.csv")["stage"]) == labels_a


def test_display_options_reach_every_dataset(many) -> None:
    demo = ad.read_h5ad(DEMO)
    job = many({"demo": DEMO}, "--layer", "lognorm", "--var-names", "gene_symbols", "--make-var-names-unique")
    client = job.client("demo")
    symbols = list(demo.var["gene_symbols"].astype(str))
    gene = next(s for s in symbols if symbols.count(s) == 1)
    shown = client.expression(gene)
    layer = demo.layers["lognorm"]
    layer = layer.toarray() if hasattr(layer, "toarray") else np.asarray(layer)
    np.testing.assert_allclose(shown, layer[:, symbols.index(gene)], rtol=1e-6)
    assert not np.allclose(shown, np.asarray(demo.X)[:, symbols.index(gene)])  # the layer, not X


def test_hostile_names_stay_inside_the_output_folders(tmp_path: Path, many) -> None:
    data = tmp_path / "data"
    data.mkdir()
    long_name = "long " + "n" * 400
    names = ["../x", "a/b", "a?b", long_name]
    job = many({name: make_dataset(data / f"h{i}.h5ad", 200, seed=i) for i, name in enumerate(names)})
    rows = job.status()["datasets"]
    slugs = [r["slug"] for r in rows]
    assert slugs[0] == "x" and slugs[1] == "a_b" and slugs[2].startswith("a_b_") and len(slugs[3]) <= 100
    for row in rows:
        client = job.client(row["slug"])
        n = client.schema()["dataframe"]["nObs"]
        assert client.put_labels({"c": ["v"] * n}).ok
    assert job.finish()["finish_error"] is None
    assert job.wait(60) == 0
    # Nothing outside working/ other than what the job dir had; each folder holds its own files.
    assert sorted(p.name for p in job.job_dir.iterdir()) == ["container_runtime.json", "runtime.log", "working"]
    assert [name for name, _ in job.galaxy_listing()["annotated"]] == names
    for folder, ext in ((job.annotations_dir, ".csv"), (job.gene_sets_dir, ".csv"), (job.merged_dir, ".h5ad")):
        assert files(folder) == sorted(f"{s}{ext}" for s in slugs)
    assert not (tmp_path / "x.csv").exists() and not (job.working / "x.csv").exists()


def test_unusable_dataset_is_listed_with_its_problem_and_the_rest_still_opens(tmp_path: Path, many) -> None:
    data = tmp_path / "data"
    data.mkdir()
    good = make_dataset(data / "good.h5ad", 200, seed=0)
    broken = make_dataset(data / "broken.h5ad", 200, seed=1)
    adata = ad.read_h5ad(broken)
    del adata.obsm["X_umap"]
    adata.write_h5ad(broken)
    job = many({"good": good, "<broken>": broken})
    page = job.landing()
    assert "&lt;broken&gt;" in page and "cannot be opened" in page
    response = requests.get(job.url + "d/broken/", timeout=30)
    assert response.status_code == 409
    assert "embedding" in response.text.lower()
    assert job.client("good").schema()["dataframe"]["nObs"] == 200
    assert "'<broken>': ERROR" in job.log  # repr: element names are user text

    only_broken = many({"b": broken}, wait_ready=False)
    assert only_broken.wait(120) == 2
    assert "none of the 1 datasets can be opened" in only_broken.log


def test_viewer_page_links_back_and_its_finish_button_finishes_every_dataset(many) -> None:
    job = many()
    a = job.client(DAY0)
    # Without the trailing slash the page could not resolve its API: a relative redirect fixes it.
    response = requests.get(job.url + "d/day0", allow_redirects=False, timeout=30)
    assert response.status_code == 308 and response.headers["Location"] == "day0/"
    page = a.page()
    assert "galaxy/static/finish.js" in page and "galaxy/static/multi.js" in page
    assert "../../" in a.get("galaxy/static/multi.js").text
    n = a.schema()["dataframe"]["nObs"]
    assert job.client(MULLER).schema()["dataframe"]["nObs"] == 260
    assert a.put_labels({"from_page": ["v"] * n}).ok
    # finish.js posts galaxy/finish relative to the viewer: that ends the whole session.
    finished = a.finish().json()
    assert finished["finished"] and finished["slug"] == DAY0 and finished["categories"] == ["from_page"]
    assert job.wait(60) == 0
    assert files(job.merged_dir) == [f"{DAY0}.h5ad", f"{MULLER}.h5ad"]
    assert "finished (finish button): 1 label saves" in job.log
