"""Issue 8 in a real Galaxy: a list of three h5ad datasets in one cellxgene session.

Launched through Galaxy's API on a list collection, reached through the front URL (nginx ->
gx-it-proxy -> the runtime), two of the three datasets labelled the way cellxgene's web
client saves, finished from inside the session; the output collections must then hold
exactly those labels, one element per opened dataset, named after its element identifier.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anndata as ad
import pytest
from galaxy_cellxgene_testkit import signed_in
from galaxy_cellxgene_testkit.ui_client import UiClient
from support.galaxy_fixture import LocalGalaxy, poll
from support.multi_data import make_dataset

pytestmark = [pytest.mark.galaxy, pytest.mark.slow, pytest.mark.timeout(1800)]

MANY_TOOL = "interactive_tool_cellxgene_many"
ENTRY_POINT_TIMEOUT = 300
JOB_TIMEOUT = 600
# Element identifiers as a user might type them; the second one is not file-name safe, so its
# viewer lives under d/day_7_Muller/, and its outputs still carry "day 7 – Müller".
ELEMENTS = {"day0": 220, "day 7 – Müller": 260, "day14": 240}
SLUG = {"day0": "day0", "day 7 – Müller": "day_7_Muller", "day14": "day14"}


def labels(n: int, names: list[str], shift: int = 0) -> list[str]:
    return [names[(i * 5 + shift) % len(names)] for i in range(n)]


def build_list(galaxy: LocalGalaxy, history_id: str, folder: Path) -> str:
    elements = []
    for i, (name, cells) in enumerate(ELEMENTS.items()):
        path = make_dataset(folder / f"element{i}.h5ad", cells, seed=i)
        hda = galaxy.upload_and_wait(history_id, path, name=f"{name}.h5ad", ext="h5ad")
        elements.append({"name": name, "src": "hda", "id": hda["id"]})
    hdca = galaxy.post(
        "dataset_collections",
        {
            "collection_type": "list",
            "instance_type": "history",
            "history_id": history_id,
            "name": "time course",
            "element_identifiers": elements,
        },
    )
    return hdca["id"]


def open_list_viewer(galaxy: LocalGalaxy, history_id: str, folder: Path) -> tuple[dict, dict[str, str], dict, str]:
    """Run the list tool on a list of three (build_list) with no idle timeout, and wait until its
    landing page answers through the proxy: (job, output ids, entry point, its URL)."""
    if galaxy.request("GET", f"tools/{MANY_TOOL}").status_code != 200:
        pytest.fail(f"the running Galaxy has no tool {MANY_TOOL}: restart it (scripts/galaxy.sh stop) to load it")
    hdca_id = build_list(galaxy, history_id, folder)
    run = galaxy.run_tool(MANY_TOOL, history_id, {"inputs": {"src": "hdca", "id": hdca_id}, "idle_timeout": 0})
    job = run["jobs"][0]
    entry_point = galaxy.wait_for_entry_point(job["id"], timeout=ENTRY_POINT_TIMEOUT)
    url = galaxy.entry_point_url(entry_point)
    assert url.startswith(galaxy.url + "/interactivetool/ep/"), url
    poll("the landing page through the proxy", lambda: signed_in.get(url, timeout=30).ok or None, 60)
    return job, galaxy.output_ids(run), entry_point, url


def elements_by_name(galaxy: LocalGalaxy, hdca_id: str) -> dict[str, str]:
    collection = galaxy.collection(hdca_id)
    assert collection["populated_state"] == "ok", collection
    return {e["element_identifier"]: e["object"]["id"] for e in collection["elements"]}


def test_a_list_of_three_two_labelled_finish_gives_exactly_those_labels(
    galaxy: LocalGalaxy, galaxy_history: str, tmp_path: Path
) -> None:
    job, outputs, _, url = open_list_viewer(galaxy, galaxy_history, tmp_path)
    assert {"annotations", "gene_sets", "annotated"} <= set(outputs), outputs
    landing = signed_in.get(url, timeout=30).text
    for name, cells in ELEMENTS.items():
        assert name in landing and str(cells) in landing

    first, second = UiClient(f"{url}d/{SLUG['day0']}/"), UiClient(f"{url}d/{SLUG['day 7 – Müller']}/")
    n1, n2 = first.schema()["dataframe"]["nObs"], second.schema()["dataframe"]["nObs"]
    assert (n1, n2) == (ELEMENTS["day0"], ELEMENTS["day 7 – Müller"])
    labels1 = labels(n1, ["T cell", "B cell", "unassigned"])
    labels2 = labels(n2, ["early", "late"], shift=1)
    assert first.put_labels({"cell_type": labels1}).status_code == 200
    assert second.put_labels({"stage": labels2}).status_code == 200
    gene_set = {
        "geneset_name": "day0 markers",
        "geneset_description": "",
        "genes": [{"gene_symbol": "GENE1", "gene_description": ""}],
    }
    assert first.put_gene_sets([gene_set]).status_code == 200
    # Switching back: each dataset still answers with its own labels.
    assert list(first.get_labels()["cell_type"]) == labels1
    assert list(second.get_labels()["stage"]) == labels2

    response = signed_in.post(url + "galaxy/finish", headers={"X-Galaxy-Cellxgene": "finish"}, timeout=120)
    assert response.status_code == 200, response.text
    finished = galaxy.wait_for_job(job["id"], timeout=JOB_TIMEOUT)
    assert finished["state"] == "ok", galaxy.job_stderr(job["id"])

    annotations = elements_by_name(galaxy, outputs["annotations"])
    # Exactly the two labelled datasets, under the input list's own element identifiers.
    assert sorted(annotations) == sorted(["day0", "day 7 – Müller"]), annotations
    saved1 = galaxy.labels(annotations["day0"])
    saved2 = galaxy.labels(annotations["day 7 – Müller"])
    assert list(saved1.columns) == ["cell_type"] and [str(v) for v in saved1["cell_type"]] == labels1
    assert list(saved2.columns) == ["stage"] and [str(v) for v in saved2["stage"]] == labels2

    gene_sets = elements_by_name(galaxy, outputs["gene_sets"])
    assert sorted(gene_sets) == sorted(annotations)
    assert "day0 markers" in galaxy.dataset_text(gene_sets["day0"])
    assert "day0 markers" not in galaxy.dataset_text(gene_sets["day 7 – Müller"])

    merged = elements_by_name(galaxy, outputs["annotated"])
    assert sorted(merged) == sorted(annotations)
    expected: dict[str, tuple[str, list[str]]] = {
        "day0": ("cell_type", labels1),
        "day 7 – Müller": ("stage", labels2),
    }
    for name, (column, values) in expected.items():
        meta: dict[str, Any] = galaxy.wait_for_dataset(merged[name])
        assert meta["extension"] == "h5ad"
        adata = ad.read_h5ad(galaxy.download(merged[name], tmp_path / f"merged-{SLUG[name]}.h5ad"))
        assert [str(v) for v in adata.obs[column]] == values
        other = "stage" if column == "cell_type" else "cell_type"
        assert other not in adata.obs


def test_stop_keeps_every_saved_label_and_makes_no_merged_files(
    galaxy: LocalGalaxy, galaxy_history: str, tmp_path: Path
) -> None:
    job, outputs, entry_point, url = open_list_viewer(galaxy, galaxy_history, tmp_path)

    client = UiClient(f"{url}d/{SLUG['day14']}/")
    n = client.schema()["dataframe"]["nObs"]
    saved = labels(n, ["kept", "also kept"], shift=2)
    assert client.put_labels({"before_stop": saved}).status_code == 200

    # Galaxy's Stop button: SIGTERM, the job ends within a second or two.
    galaxy.stop_entry_point(entry_point["id"])

    def settled() -> dict[str, Any] | None:
        state = galaxy.job(job["id"], full=False)["state"]
        return galaxy.job(job["id"]) if state in {"ok", "error", "failed", "deleted"} else None

    stopped = poll(f"job {job['id']} to end after Stop", settled, JOB_TIMEOUT)
    assert stopped["state"] == "ok", (stopped["state"], galaxy.job_stderr(job["id"]))
    annotations = elements_by_name(galaxy, outputs["annotations"])
    assert sorted(annotations) == ["day14"]
    frame = galaxy.labels(annotations["day14"])
    assert [str(v) for v in frame["before_stop"]] == saved
    assert elements_by_name(galaxy, outputs["annotated"]) == {}, "a Stop must not produce merged h5ad files"


def test_each_viewer_sends_to_the_history_and_the_subsets_list_names_its_dataset(
    galaxy: LocalGalaxy, galaxy_history: str, tmp_path: Path
) -> None:
    """Issue 26: the single viewer's Galaxy controls in each viewer of the list, as its page calls
    them (relative to d/<slug>/, the owner's session): Export and "Add to history now" land in the
    history under the dataset's name; "Save at Finish" in two datasets with the same label gives one
    "cell subsets" list whose elements name their dataset; Finish sends the comparison not exported."""
    job, outputs, _, url = open_list_viewer(galaxy, galaxy_history, tmp_path)
    assert "subsets" in outputs, outputs
    first, second = UiClient(f"{url}d/{SLUG['day0']}/"), UiClient(f"{url}d/{SLUG['day 7 – Müller']}/")
    n1, n2 = first.schema()["dataframe"]["nObs"], second.schema()["dataframe"]["nObs"]
    labels1, labels2 = labels(n1, ["T cell", "B cell"]), labels(n2, ["T cell", "NK"])
    assert first.put_labels({"cell_type": labels1}).status_code == 200
    assert second.put_labels({"cell_type": labels2}).status_code == 200

    exported = first.session.post(first.url("galaxy/export"), headers={"X-Galaxy-Cellxgene": "export"}, timeout=120)
    assert exported.status_code == 200, exported.text
    sent = {d["kind"]: d for d in exported.json()["datasets"]}
    assert sent["annotations"]["name"].startswith("day0: cellxgene annotations (exported ")
    assert [str(v) for v in galaxy.labels(sent["annotations"]["id"])["cell_type"]] == labels1

    subset = {"X-Galaxy-Cellxgene": "subset"}
    asked = second.session.post(
        second.url("galaxy/subset"), json={"category": "cell_type", "labels": ["NK"], "when": "now"}, headers=subset
    )
    assert asked.status_code == 202, asked.text
    title = asked.json()["title"]
    assert title == f"cellxgene on day 7 – Müller: NK ({labels2.count('NK')} cells)"
    state = lambda: second.get(f"galaxy/subset/{asked.json()['id']}").json()  # noqa: E731
    poll("the subset sent", lambda: state()["state"] in ("sent", "error") or None, 300)
    assert state()["state"] == "sent", state()
    [now] = [d for d in galaxy.history_contents(galaxy_history) if d["name"] == title]
    galaxy.wait_for_dataset(now["id"])
    assert ad.read_h5ad(galaxy.download(now["id"], tmp_path / "now.h5ad")).n_obs == labels2.count("NK")

    assert second.diffexp(range(0, n2, 2), range(1, n2, 2), count=5).status_code == 200
    for client in (first, second):
        answer = client.session.post(
            client.url("galaxy/subset"),
            json={"category": "cell_type", "labels": ["T cell"], "when": "finish"},
            headers=subset,
        )
        assert answer.status_code == 202, answer.text
    response = signed_in.post(url + "galaxy/finish", headers={"X-Galaxy-Cellxgene": "finish"}, timeout=300)
    assert response.status_code == 200 and response.json()["finish_error"] is None, response.text
    finished = galaxy.wait_for_job(job["id"], timeout=JOB_TIMEOUT)
    assert finished["state"] == "ok", galaxy.job_stderr(job["id"])

    subsets = elements_by_name(galaxy, outputs["subsets"])
    assert sorted(subsets) == ["day 7 – Müller: T cell", "day0: T cell"], subsets
    for name, values, seed in (("day0: T cell", labels1, 0), ("day 7 – Müller: T cell", labels2, 1)):
        assert galaxy.wait_for_dataset(subsets[name])["extension"] == "h5ad"
        adata = ad.read_h5ad(galaxy.download(subsets[name], tmp_path / f"subset-{seed}.h5ad"))
        assert adata.n_obs == values.count("T cell") and adata.obs_names[0].startswith(f"s{seed}_")
        assert {str(v) for v in adata.obs["cell_type"]} == {"T cell"}
    tables = [
        d
        for d in galaxy.history_contents(galaxy_history)
        if d["name"].startswith("day 7 – Müller: cellxgene differential expression 1, ")
    ]
    assert len(tables) == 1 and tables[0]["extension"] == "tabular", tables
    assert galaxy.dataset_text(galaxy.wait_for_dataset(tables[0]["id"])["id"]).startswith("#gene\tlog_fold_change")
