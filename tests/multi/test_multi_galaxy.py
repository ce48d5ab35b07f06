"""The list tool's Galaxy controls, per dataset: Export to Galaxy, "New dataset from cells" (now and at
Finish) and the differential expression tables sent at Finish, as the single viewer has them.

The real `view-many` runtime (a subprocess, as Galaxy runs it) is driven over HTTP under each
dataset's prefix `d/<slug>/`, the way the page's scripts (export.js, subset.js, finish.js) call
their relative routes. Galaxy is the stand-in of support/galaxy_stand_in.py: it records every upload
and accepts only the owner's session, which the requests carry as the owner's browser does.
"""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import pytest
from galaxy_cellxgene_testkit import signed_in
from galaxy_cellxgene_testkit.ui_client import UiClient
from support.fixtures import wait_until
from support.galaxy_stand_in import HISTORY, SESSION, GalaxyStandIn, galaxy_env
from support.multi import ManyJob

pytestmark = pytest.mark.slow

DAY0, MULLER = "day0", "day_7_Muller"
SUBSET = {"X-Galaxy-Cellxgene": "subset"}
EXPORT = {"X-Galaxy-Cellxgene": "export"}


def labels_for(n: int, names: list[str]) -> list[str]:
    return [names[i % len(names)] for i in range(n)]


def ask_subset(client: UiClient, category: str, labels: list[str], when: str) -> dict:
    answer = client.session.post(
        client.url("galaxy/subset"),
        json={"category": category, "labels": labels, "when": when},
        headers=SUBSET,
        timeout=60,
    )
    assert answer.status_code == 202, answer.text
    return answer.json()


def files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) if folder.exists() else []


def uploaded(stand_in: GalaxyStandIn, start: str) -> list[tuple[str, bytes]]:
    with stand_in.lock:
        return [(n, upload["raw"][n]) for upload in stand_in.uploads for n in upload["names"] if n.startswith(start)]


def test_each_viewer_exports_subsets_and_sends_tables_under_its_dataset_name(
    many, galaxy_stand_in: GalaxyStandIn, tmp_path: Path
) -> None:
    job: ManyJob = many(None, "--subsets-dir", "subsets", env=galaxy_env(galaxy_stand_in, staged=False))
    signed_in.remember(job.url, SESSION)  # the owner's browser, signed in to Galaxy
    a, b = job.client(DAY0), job.client(MULLER)
    page = a.page()
    for script in ("finish.js", "export.js", "subset.js", "multi.js"):
        assert f"galaxy/static/{script}" in page
    assert a.get("galaxy/export").json() == {"enabled": True}
    info = b.get("galaxy/subset").json()
    assert info["now"] is True and info["at_finish"] is True

    # Both datasets have a "T cell" label: their subsets must not meet in the shared folder.
    n_a, n_b = a.schema()["dataframe"]["nObs"], b.schema()["dataframe"]["nObs"]
    assert a.put_labels({"cell_type": labels_for(n_a, ["T cell", "B cell"])}).ok
    assert b.put_labels({"cell_type": labels_for(n_b, ["T cell", "NK"])}).ok

    # Export to Galaxy from one viewer: that dataset's files, under its name, into the owner's history.
    exported = a.session.post(a.url("galaxy/export"), headers=EXPORT, timeout=60)
    assert exported.ok, exported.text
    [upload] = galaxy_stand_in.uploads
    assert upload["history"] == HISTORY
    annotations = next(n for n in upload["names"] if n.startswith("day0: cellxgene annotations (exported "))
    assert upload["files"][annotations] == (job.annotations_dir / f"{DAY0}.csv").read_text()
    assert a.get("galaxy/export/jobs/upload-job").json() == {"ok": True, "state": "ok"}

    # "Add to history now" in the other viewer: an h5ad of exactly those cells, named after its dataset.
    asked = ask_subset(b, "cell_type", ["NK"], "now")
    assert asked["title"] == f"cellxgene on day 7 – Müller: NK ({n_b // 2} cells)"
    state = lambda: b.get(f"galaxy/subset/{asked['id']}").json()  # noqa: E731
    wait_until(lambda: state()["state"] in ("sent", "error"), 60, "the subset sent", job.proc)
    assert state()["state"] == "sent", state()
    [(_, data)] = uploaded(galaxy_stand_in, "cellxgene on day 7")
    (tmp_path / "now.h5ad").write_bytes(data)
    now = ad.read_h5ad(tmp_path / "now.h5ad")
    assert now.n_obs == n_b // 2 and set(now.obs["cell_type"].astype(str)) == {"NK"}

    # A comparison in the second viewer, never exported: Finish sends it.
    assert b.diffexp(range(0, n_b, 2), range(1, n_b, 2), count=5).ok
    assert len(b.status()["diffexp_results"]) == 1

    # Subsets for Finish in both viewers, the same labels in each.
    ask_subset(a, "cell_type", ["T cell"], "finish")
    ask_subset(a, "louvain", ["c1"], "finish")
    ask_subset(b, "cell_type", ["T cell"], "finish")
    assert files(job.subsets_dir) == []  # written at Finish only

    status = job.finish()
    assert status["finish_error"] is None, status
    assert job.wait(60) == 0, job.log
    assert files(job.subsets_dir) == sorted([f"{DAY0}+T_cell.h5ad", f"{DAY0}+c1.h5ad", f"{MULLER}+T_cell.h5ad"])
    assert job.galaxy_listing()["subsets"] == [
        ("day0: T cell", f"{DAY0}+T_cell.h5ad"),
        ("day0: c1", f"{DAY0}+c1.h5ad"),
        ("day 7 – Müller: T cell", f"{MULLER}+T_cell.h5ad"),
    ]
    t_a = ad.read_h5ad(job.subsets_dir / f"{DAY0}+T_cell.h5ad")
    t_b = ad.read_h5ad(job.subsets_dir / f"{MULLER}+T_cell.h5ad")
    assert (t_a.n_obs, t_b.n_obs) == (n_a // 2, n_b // 2)
    assert t_a.obs_names[0].startswith("s0_") and t_b.obs_names[0].startswith("s1_")  # each from its own dataset
    assert set(t_b.obs["cell_type"].astype(str)) == {"T cell"}
    c1 = ad.read_h5ad(job.subsets_dir / f"{DAY0}+c1.h5ad")
    assert set(c1.obs["louvain"].astype(str)) == {"c1"} and "cell_type" in c1.obs

    [(name, table)] = uploaded(galaxy_stand_in, "day 7 – Müller: cellxgene differential expression 1, ")
    assert table.decode().splitlines()[0].startswith("#gene\tlog_fold_change\tp_value")
    assert len(table.decode().splitlines()) == 1 + 10, name  # 5 genes each way


def test_a_subset_waiting_for_finish_outlives_unloading_and_takes_the_labels_saved_last(many) -> None:
    """No Galaxy history here: Finish only. A 1 MB budget unloads a dataset whenever another opens."""
    job: ManyJob = many(None, "--subsets-dir", "subsets", "--memory-budget-mb", "1")
    a, b = job.client(DAY0), job.client(MULLER)
    n = a.schema()["dataframe"]["nObs"]
    assert a.put_labels({"cell_type": labels_for(n, ["T cell", "B cell"])}).ok
    info = a.get("galaxy/subset").json()
    assert info["now"] is False and info["at_finish"] is True
    ask_subset(a, "cell_type", ["B cell"], "finish")

    assert b.schema()["dataframe"]["nObs"] == 260
    assert job.status()["loaded"] == [MULLER]  # day0 unloaded, its request kept
    assert a.get("galaxy/subset").json()["waiting_for_finish"] == [f"cellxgene on day0: B cell ({n // 2} cells)"]
    ask_subset(a, "louvain", ["c0"], "finish")
    labels = labels_for(n, ["T cell", "B cell", "B cell"])  # the user relabels after asking
    assert a.put_labels({"cell_type": labels}).ok
    assert b.schema()["dataframe"]["nObs"] == 260
    assert job.status()["loaded"] == [MULLER]  # day0 is not loaded when the session finishes

    assert job.finish()["finish_error"] is None
    assert job.wait(60) == 0, job.log
    assert files(job.subsets_dir) == [f"{DAY0}+B_cell.h5ad", f"{DAY0}+c0.h5ad"]
    b_cells = ad.read_h5ad(job.subsets_dir / f"{DAY0}+B_cell.h5ad")
    assert b_cells.n_obs == labels.count("B cell") != n // 2
    assert set(b_cells.obs["cell_type"].astype(str)) == {"B cell"}
    assert [name for name, _ in job.galaxy_listing()["subsets"]] == ["day0: B cell", "day0: c0"]
