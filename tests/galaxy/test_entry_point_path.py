"""Only the owner's entry point URL reaches the viewer, in a real Galaxy with gx-it-proxy.

Galaxy injects the entry point path into the job (`inject="entry_point_path_for_label"`), records
`requires_path_in_url` in the proxy map, and gx-it-proxy forwards the full path. A direct
connection to the runtime's host and port (what Galaxy's Docker runner publishes on every host
interface, and what any local process can open on the no-container path) has no path and gets
404; the same request through the proxy, with the path, gets the page.
"""

from __future__ import annotations

import json
import re
import sqlite3
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from galaxy_cellxgene_testkit import signed_in
from support.galaxy_fixture import CREDENTIALS, VIEWER_TOOL, LocalGalaxy, poll

pytestmark = [pytest.mark.galaxy, pytest.mark.slow, pytest.mark.timeout(900)]

ENTRY_POINT_TIMEOUT = 300
JOB_TIMEOUT = 600
# What galaxy.yml's interactivetools_map names (scripts/galaxy/galaxy.yml.in): gx-it-proxy's routes.
PROXY_MAP = CREDENTIALS.parent / "data" / "interactivetools_map.sqlite"


def proxy_route(entry_point_path: str) -> dict[str, Any]:
    """The route gx-it-proxy follows for this entry point: host, port and its flags."""
    # /interactivetool/ep/<key>/<token>/: the key is the map's key, the token must match.
    key, token = entry_point_path.strip("/").split("/")[-2:]
    with sqlite3.connect(PROXY_MAP) as connection:
        row = connection.execute("SELECT host, port, token, info FROM gxitproxy WHERE key = ?", (key,)).fetchone()
    assert row is not None, f"no proxy route for key {key} in {PROXY_MAP}"
    host, port, stored_token, info = row
    assert stored_token == token
    return {"host": host, "port": int(port), **json.loads(info or "{}")}


def test_a_direct_connection_without_the_path_gets_404_the_proxy_with_the_path_gets_the_page(
    galaxy: LocalGalaxy, galaxy_history: str, galaxy_demo: dict[str, Any]
) -> None:
    run = galaxy.run_tool(
        VIEWER_TOOL,
        galaxy_history,
        {"input": {"src": "hda", "id": galaxy_demo["id"]}, "mode|mode_select": "view", "mode|idle_timeout": 0},
    )
    job = run["jobs"][0]
    entry_point = galaxy.wait_for_entry_point(job["id"], timeout=ENTRY_POINT_TIMEOUT)
    url = galaxy.entry_point_url(entry_point)
    path = urlsplit(url).path
    assert path.startswith("/interactivetool/ep/") and path.endswith("/"), url
    try:
        poll("cellxgene through the proxy", lambda: signed_in.get(url + "health", timeout=10).ok or None, 120)
        route = proxy_route(path)
        assert route["requires_path_in_url"] is True  # the proxy forwards the full path
        direct = f"http://{route['host']}:{route['port']}"

        # Directly on the port, without the secret path: nothing.
        for suffix in ("/", "/api/v0.2/config", "/api/v0.2/schema", "/galaxy/status"):
            answer = requests.get(direct + suffix, timeout=10)
            assert answer.status_code == 404, (suffix, answer.status_code)
        assert (
            requests.post(direct + "/galaxy/finish", headers={"X-Galaxy-Cellxgene": "finish"}, timeout=10).status_code
            == 404
        )

        # Through Galaxy's front URL and the proxy, with the path: the page and its API.
        page = signed_in.get(url, timeout=30)
        assert page.status_code == 200 and "galaxy/static/finish.js" in page.text
        config = signed_in.get(url + "api/v0.2/config", timeout=30)
        assert config.status_code == 200 and config.json()["config"]["displayNames"]["dataset"]
        # The logo, where the corrected bundle asks for it, and the script the template names.
        bundle = re.search(r'src="(static/main-[0-9a-f]+\.js)"', page.text)
        assert bundle is not None, page.text
        logo = re.search(
            r'"(static/assets/icon-[0-9a-f]+\.png)"', signed_in.get(url + bundle.group(1), timeout=60).text
        )
        assert logo is not None, "the bundle still asks for the logo outside the entry point"
        assert signed_in.get(url + logo.group(1), timeout=30).headers["Content-Type"] == "image/png"
        assert signed_in.get(url + "obsolete.js", timeout=30).status_code == 200
        # A cross-site form post cannot end the session: no custom header.
        forged = signed_in.post(
            url + "galaxy/finish", data={"x": "1"}, headers={"Origin": "https://evil.example"}, timeout=30
        )
        assert forged.status_code == 403
        assert galaxy.job(job["id"], full=False)["state"] == "running"
    finally:
        galaxy.stop_entry_point(entry_point["id"])
        galaxy.wait_for_job(job["id"], timeout=JOB_TIMEOUT)
