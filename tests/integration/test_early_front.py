"""The first page is served while cellxgene loads (early_front.py), and every early answer is what
cellxgene's own app answers once it has loaded. cellxgene's load is held back deterministically
(support/held_load.py: its `import flask` waits for a file), so "before" is certain, not a race."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

import numpy as np
import pytest
import requests
from galaxy_cellxgene import entry_path
from galaxy_cellxgene_testkit.jobs import registered_url
from server.common.fbs.matrix import decode_matrix_fbs
from support.fixtures import DEMO, TEST_DATA, wait_until
from support.held_load import held_env

pytestmark = pytest.mark.slow
API = "api/v0.2/"
FBS = {"Accept": "application/octet-stream"}


def first_page(base: str) -> dict[str, bytes]:
    """Every request the page makes before it draws the cells, as the browser makes them."""
    got: dict[str, bytes] = {}

    def get(path: str, headers: dict | None = None) -> bytes:
        response = requests.get(base + path, headers=headers or {}, timeout=30)
        assert response.status_code == 200, (path, response.status_code, response.text[:300])
        got[path] = response.content
        return response.content

    page = get("").decode()
    for src in re.findall(r'(?:src|href)="([^"]+)"', page):
        get(src)
    for route in ("config", "colors", "genesets"):
        get(API + route, {"Accept": "application/json"})
    schema = json.loads(get(API + "schema", {"Accept": "application/json"}))["schema"]
    for column in schema["annotations"]["obs"]["columns"]:
        get(f"{API}annotations/obs?annotation-name={requests.utils.quote(column['name'])}", FBS)
    for layout in schema["layout"]["obs"]:
        get(f"{API}layout/obs?layout-name={requests.utils.quote(layout['name'])}", FBS)
    get(f"{API}annotations/var?annotation-name={schema['annotations']['var']['index']}", FBS)
    return got


def assert_same_answer(path: str, early: bytes, late: bytes) -> None:
    if "/annotations/" in path or "/layout/" in path:
        a, b = decode_matrix_fbs(early), decode_matrix_fbs(late)
        assert list(a.columns) == list(b.columns), path
        for column in a.columns:
            x, y = a[column].to_numpy(), b[column].to_numpy()
            if x.dtype.kind == "f":
                np.testing.assert_array_equal(x, y, err_msg=path)  # NaN-aware
            else:
                assert x.tolist() == y.tolist(), path
    elif path.startswith(API):
        mine, theirs = json.loads(early), json.loads(late)
        if path.endswith("config"):  # a hash of the user id cellxgene draws per browser (early_config.py)
            for config in (mine, theirs):
                config["config"]["parameters"].pop("annotations-user-data-idhash")
        assert mine == theirs, path
    else:
        assert early == late, path  # the page and its files, byte for byte


def held_view(runtime, tmp_path: Path, dataset: Path, *extra: str, **env: str):
    release = tmp_path / "release"
    job = runtime(dataset, *extra, env=held_env(release, **env), wait_ready=False)
    url = wait_until(lambda: registered_url(job.job_dir), 120, "the registration", job.proc)
    return job, url, release


@pytest.mark.parametrize(
    ("dataset", "extra"),
    [
        (DEMO, ()),
        (DEMO, ("--previous-annotations", str(TEST_DATA / "pbmc_demo_annotations.csv"),
                "--previous-gene-sets", str(TEST_DATA / "pbmc_demo_gene_sets.csv"))),
    ],
    ids=["demo", "demo-resumed"],
)  # fmt: skip
def test_the_first_page_is_served_while_cellxgene_loads(runtime, tmp_path, dataset, extra) -> None:
    job, url, release = held_view(runtime, tmp_path, dataset, *extra)
    early = first_page(url)
    gene: list[requests.Response] = []
    asking = threading.Thread(target=lambda: gene.append(requests.get(url + "health", timeout=60)))
    asking.start()
    asking.join(0.5)
    assert asking.is_alive(), "answered before cellxgene was loaded: the hold did not hold"
    assert "cellxgene loaded" not in job.log

    release.touch()
    asking.join(60)
    assert gene and gene[0].status_code == 200  # held, then answered by cellxgene's app
    wait_until(lambda: "cellxgene loaded" in job.log, 60, "cellxgene's app", job.proc)
    assert f"({len(early)} requests answered before)" in job.log
    late = first_page(url)
    assert early.keys() == late.keys()
    for path in early:
        assert_same_answer(path, early[path], late[path])


def test_what_only_the_session_knows_waits_for_cellxgene(runtime, tmp_path) -> None:
    _, url, release = held_view(runtime, tmp_path, DEMO)
    status: list[int] = []
    asking = threading.Thread(target=lambda: status.append(requests.get(url + "galaxy/status", timeout=60).status_code))
    asking.start()
    asking.join(0.5)
    assert asking.is_alive()  # what only the session can answer waits for it, never a guess
    release.touch()
    asking.join(60)
    assert status == [200]


def test_the_gates_stand_before_the_early_front(runtime, tmp_path) -> None:
    prefix = "/interactivetool/ep/abc123/0123456789abcdef"
    _, url, release = held_view(runtime, tmp_path, DEMO, **{entry_path.ENV_NAME: prefix})
    direct = url.rstrip("/")
    for path in ("/", "/api/v0.2/schema", "/api/v0.2/config", "/static/assets/x.png", "/galaxy/static/finish.js"):
        assert requests.get(direct + path, timeout=10).status_code == 404, path
    assert "galaxy/static/finish.js" in requests.get(direct + prefix + "/", timeout=10).text
    release.touch()


def test_cellxgene_failing_to_load_ends_the_job_with_its_reason(runtime, tmp_path) -> None:
    job, url, release = held_view(runtime, tmp_path, DEMO, "--annotations-out", "/proc/no/such/dir/a.csv")
    assert requests.get(url, timeout=10).status_code == 200  # the page came first
    release.touch()
    assert job.wait(60) != 0
    assert "cannot be written" in job.log
