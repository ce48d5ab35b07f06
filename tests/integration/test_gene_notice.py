"""While the column store is built the cells are served, /galaxy/status says the store is building
(what the page's notice shows, static/finish.js), and a gene asked for meanwhile waits for the
store instead of failing. The build is held back by another job's lock (support/held_store.py)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import scipy.sparse as sp
from support.fixtures import wait_until
from support.held_store import another_job_building, held_back_view

pytestmark = pytest.mark.slow


def test_status_says_building_while_cells_are_served_and_a_gene_waits(runtime, tmp_path) -> None:
    X = sp.random(500, 40, density=0.2, format="csr", dtype=np.float32, random_state=np.random.default_rng(5))
    with another_job_building(tmp_path / "cache"):
        job = held_back_view(runtime, tmp_path, X)
        status = job.client.status()
        assert status["column_copy"] == "building"
        assert status["column_copy_progress"] is None  # the other job's build: no fraction known here
        assert job.client.schema()["dataframe"]["nObs"] == 500  # everything but genes works now
        answers: list[np.ndarray] = []
        asking = threading.Thread(target=lambda: answers.append(job.client.expression("g7")))
        asking.start()
        asking.join(1.0)
        assert asking.is_alive() and not answers  # waiting for the store, not failing
    asking.join(60)
    np.testing.assert_array_equal(answers[0], X[:, 7].toarray().ravel())
    wait_until(lambda: job.client.status()["column_copy"] == "ready", 60, "the column store", job.proc)
    assert job.client.status()["column_copy_progress"] == 1.0
