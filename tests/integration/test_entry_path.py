"""The viewer answers only under its entry point path, and the page's own requests all succeed.

The real runtime, started as Galaxy starts it with `GALAXY_CELLXGENE_ENTRY_POINT_PATH` injected
(the tool XML's `inject="entry_point_path_for_label"`), reached directly on its port as any
process on the node could, and under the path as gx-it-proxy forwards it
(`requires_path_in_url="True"`: the full path, unchanged).
"""

from __future__ import annotations

import re

import pytest
import requests
from galaxy_cellxgene import entry_path
from galaxy_cellxgene_testkit.ui_client import FINISH_HEADERS, UiClient

pytestmark = pytest.mark.slow

PREFIX = "/interactivetool/ep/k3y/0123456789abcdef0123456789abcdef"


def test_prefix_from_env_reads_what_galaxy_injects() -> None:
    read = entry_path.prefix_from_env
    assert read({}) == ""
    assert read({entry_path.ENV_NAME: ""}) == ""  # domain-based entry point: "/" with its slash stripped
    assert read({entry_path.ENV_NAME: "/"}) == ""
    assert read({entry_path.ENV_NAME: PREFIX}) == PREFIX
    assert read({entry_path.ENV_NAME: PREFIX + "/"}) == PREFIX
    assert read({entry_path.ENV_NAME: "https://galaxy.example.org" + PREFIX + "/"}) == PREFIX


def test_only_the_entry_point_path_is_served(runtime) -> None:
    job = runtime(env={entry_path.ENV_NAME: PREFIX})
    direct = job.url.rstrip("/")
    viewer = UiClient(direct + PREFIX + "/")

    # A direct connection without the secret path learns nothing and changes nothing.
    for path in ("/", "/api/v0.2/config", "/api/v0.2/schema", "/galaxy/status", "/static/assets/x.png"):
        response = requests.get(direct + path, timeout=10)
        assert response.status_code == 404, path
        assert "cellxgene" not in response.text.lower()
    wrong_token = direct + PREFIX[:-1] + "0/api/v0.2/config"
    assert requests.get(wrong_token, timeout=10).status_code == 404
    assert requests.get(direct + PREFIX.rsplit("/", 1)[0] + "/", timeout=10).status_code == 404
    assert requests.put(direct + "/api/v0.2/annotations/obs", data=b"x", timeout=10).status_code == 404
    assert requests.post(direct + "/galaxy/finish", headers=FINISH_HEADERS, timeout=10).status_code == 404
    # The one answer outside: the container HEALTHCHECK's constant, which names nothing.
    assert requests.get(direct + "/health", timeout=10).json() == {"status": "pass"}

    # Under the path: the page, and every URL the page derives from its own location.
    page = viewer.page()
    assert "galaxy/static/finish.js" in page
    assert viewer.config()["displayNames"]["dataset"]
    assert viewer.schema()["dataframe"]["nObs"] == 320
    for src in re.findall(r'(?:src|href)="([^"]+)"', page):
        assert not src.startswith(("/", "..", "http")), src  # relative: stays under the path
        assert viewer.get(src).status_code == 200, src
    # Without the trailing slash the page could not resolve its URLs: a relative redirect.
    response = requests.get(direct + PREFIX, allow_redirects=False, timeout=10)
    assert response.status_code == 308 and response.headers["Location"] == PREFIX.rsplit("/", 1)[1] + "/"
    assert viewer.status()["finished"] is False


def test_the_logo_and_obsolete_js_resolve_under_the_path(runtime) -> None:
    job = runtime(env={entry_path.ENV_NAME: PREFIX})
    viewer = UiClient(job.url.rstrip("/") + PREFIX + "/")
    bundle = re.search(r'src="(static/main-[0-9a-f]+\.js)"', viewer.page()).group(1)
    code = viewer.get(bundle).text
    logos = re.findall(r'"([./]*static/assets/icon-[0-9a-f]+\.png)"', code)
    # cellxgene's bundle asks for "../static/...", one level above the page: corrected at serve time.
    assert logos and all(logo.startswith("static/") for logo in logos), logos
    assert viewer.get(logos[0]).headers["Content-Type"] == "image/png"
    obsolete = viewer.get("obsolete.js")
    assert obsolete.status_code == 200 and "javascript" in obsolete.headers["Content-Type"]


def test_finish_without_the_page_header_is_refused(runtime) -> None:
    job = runtime(env={entry_path.ENV_NAME: PREFIX})
    viewer = UiClient(job.url.rstrip("/") + PREFIX + "/")
    # What a form on another site can make the user's browser send: no custom header.
    forged = requests.post(
        viewer.url("galaxy/finish"),
        data={"x": "1"},
        headers={"Origin": "https://attacker.example", "Content-Type": "application/x-www-form-urlencoded"},
        timeout=10,
    )
    assert forged.status_code == 403
    assert "X-Galaxy-Cellxgene" in forged.json()["message"]
    assert viewer.status()["finished"] is False and job.proc.poll() is None
    # The page's own request (finish.js sends the header) finishes cleanly.
    assert viewer.finish().status_code == 200
    assert job.wait(60) == 0
