"""Start the viewer in a Galaxy and open its entry point the way a user does: through Galaxy's
proxy, once it answers."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from galaxy_cellxgene_testkit.galaxy_api import GalaxyApi, poll
from galaxy_cellxgene_testkit.health import healthy
from galaxy_cellxgene_testkit.ui_client import UiClient


def open_viewer(
    galaxy: GalaxyApi, job_id: str, timeout: float = 300, health_timeout: float = 60
) -> tuple[dict[str, Any], UiClient]:
    """Wait until the job's entry point is active, then until cellxgene answers /health at the
    URL Galaxy reports (path-based, on Galaxy's own origin). Returns (entry point, client)."""
    entry_point = galaxy.wait_for_entry_point(job_id, timeout=timeout)
    url = galaxy.entry_point_url(entry_point)
    assert url.startswith(galaxy.url + "/"), url
    # The user this GalaxyApi acts as (sign_in): on one Galaxy several users share an origin.
    ui = UiClient(url, cookie=galaxy.session_cookie)
    poll("cellxgene through Galaxy's proxy", lambda: ui if healthy(ui.base_url, timeout=10) else None, health_timeout)
    return entry_point, ui


def start_viewer(
    galaxy: GalaxyApi, history_id: str, dataset_id: str, tool_id: str = "interactive_tool_cellxgene"
) -> tuple[dict[str, Any], dict[str, str]]:
    """Run the viewer on one history dataset with no idle timeout (the test ends it): (job, output ids)."""
    inputs = {"input": {"src": "hda", "id": dataset_id}, "mode|mode_select": "view", "mode|idle_timeout": 0}
    run = galaxy.run_tool(tool_id, history_id, inputs)
    return run["jobs"][0], galaxy.output_ids(run)


def proxy_route(proxy_map: Path, entry_point_url: str) -> dict[str, Any]:
    """The route gx-it-proxy follows for an entry point (host, port, requires_path_in_url...), read
    from Galaxy's interactivetools_map: /interactivetool/ep/<key>/<token>/, the token must match."""
    key, token = urlsplit(entry_point_url).path.strip("/").split("/")[-2:]
    with sqlite3.connect(proxy_map) as connection:
        row = connection.execute("SELECT host, port, token, info FROM gxitproxy WHERE key = ?", (key,)).fetchone()
    assert row is not None and row[2] == token, f"no route for {entry_point_url} in {proxy_map}"
    return {"host": row[0], "port": int(row[1]), **json.loads(row[3] or "{}")}
