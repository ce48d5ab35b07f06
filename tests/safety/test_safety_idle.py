"""The idle timeout frees a forgotten session, but never one that is busy answering a request."""

from __future__ import annotations

import time

import pytest
import requests

pytestmark = pytest.mark.slow


def test_idle_timeout_does_not_cut_off_a_request_that_outlasts_it(runtime, bench_dataset):
    # 1.2 s of idleness ends the session; one differential expression over 100,000 cells takes longer.
    job = runtime(bench_dataset, "--idle-timeout", "0.02", "--diffexp-max-cells", "200000")
    half = 50_000
    body = {
        "mode": "topN",
        "count": 10,
        "set1": {"filter": {"obs": {"index": list(range(half))}}},
        "set2": {"filter": {"obs": {"index": list(range(half, 2 * half))}}},
    }
    started = time.monotonic()
    try:
        response = requests.post(job.url + "api/v0.2/diffexp/obs", json=body, timeout=120)
    except requests.ConnectionError as err:
        pytest.fail(f"the session ended under a running request after {time.monotonic() - started:.1f} s: {err}")
    took = time.monotonic() - started
    assert response.status_code == 200, response.text[:300]
    assert took > 1.2, f"the request ({took:.1f} s) must outlast the idle timeout for this test to mean anything"
    # ...and once idle, the session still ends by itself, cleanly.
    assert job.wait(30) == 0
    assert "no activity" in job.log
