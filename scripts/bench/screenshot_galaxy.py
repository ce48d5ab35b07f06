#!/usr/bin/env python3
"""Screenshot the demo dataset opened in cellxgene inside the local Galaxy, through its proxy.

Needs a running local Galaxy (`scripts/galaxy.sh start` or `up`) and Debian's chromium
(`apt-get install chromium`); Playwright only drives it and never downloads a browser.

    .venv/bin/python scripts/bench/screenshot_galaxy.py [--out docs/img] [--keep]

It launches the viewer on the demo user's "PBMC demo" dataset through Galaxy's API, waits for
the entry point, opens it at the one front URL (nginx -> gx-it-proxy -> cellxgene), and
writes galaxy-cellxgene.png; it also logs into Galaxy and writes galaxy-history.png with the
running job. The viewer is stopped at the end unless --keep is given.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from galaxy_cellxgene_testkit.chromium import CHROMIUM, CHROMIUM_ARGS
from galaxy_cellxgene_testkit.galaxy_api import GalaxyApi

if TYPE_CHECKING:  # imported for real inside main: only a screenshot run needs playwright
    from playwright.sync_api import Browser, Page

ROOT = Path(__file__).resolve().parents[2]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    parser.add_argument("--credentials", type=Path, default=ROOT / ".galaxy" / "credentials.json")
    parser.add_argument("--keep", action="store_true", help="leave the viewer running")
    return parser.parse_args()


def read_credentials(path: Path) -> dict:
    if not path.exists():
        raise SystemExit("no local Galaxy: run scripts/galaxy.sh start first")
    credentials = json.loads(path.read_text())
    if not credentials.get("demo_dataset_id"):
        raise SystemExit("the local Galaxy has no demo dataset: start it without GALAXY_NO_DEMO")
    return credentials


def start_viewer(user: GalaxyApi, credentials: dict) -> tuple[str, dict]:
    """The tool on the demo dataset: its job id and its entry point once Galaxy lists it."""
    run = user.run_tool(
        "interactive_tool_cellxgene",
        credentials["demo_history_id"],
        {
            "input": {"src": "hda", "id": credentials["demo_dataset_id"]},
            "mode|mode_select": "view",
            "mode|idle_timeout": 30,
        },
    )
    job_id = run["jobs"][0]["id"]
    return job_id, user.wait_for_entry_point(job_id, timeout=180)


def capture(page: Page, target: Path, settle_ms: int) -> None:
    page.wait_for_timeout(settle_ms)  # let the last frame land before the capture
    page.screenshot(path=str(target))
    print(f"wrote {target}")


def shoot_viewer(browser: Browser, url: str, out: Path) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(url, wait_until="networkidle", timeout=120_000)
    # The embedding is drawn into a canvas once the data has arrived.
    page.wait_for_selector("canvas", timeout=120_000)
    page.wait_for_load_state("networkidle", timeout=120_000)
    capture(page, out / "galaxy-cellxgene.png", 1500)


def shoot_galaxy(browser: Browser, credentials: dict, out: Path) -> None:
    login = browser.new_page(viewport={"width": 1400, "height": 900})
    login.goto(credentials["url"] + "/login/start", wait_until="networkidle", timeout=120_000)
    login.fill("input[name=login]", credentials["user_email"])
    login.fill("input[name=password]", credentials["user_password"])
    login.click("button[type=submit]")
    login.wait_for_url(lambda u: "/login" not in u, timeout=60_000)
    # Logging in from a fresh browser makes a new empty history current: show the demo one.
    history = credentials["demo_history_id"]
    login.goto(f"{credentials['url']}/history/set_as_current?id={history}", wait_until="networkidle")
    login.goto(credentials["url"] + "/interactivetool_entry_points/list", wait_until="networkidle")
    capture(login, out / "galaxy-entry-points.png", 1500)
    login.goto(credentials["url"] + "/", wait_until="networkidle")
    capture(login, out / "galaxy-history.png", 2000)


def main() -> None:
    args = parse_args()
    credentials = read_credentials(args.credentials)
    user = GalaxyApi(credentials["url"], credentials["user_key"])
    job_id, entry_point = start_viewer(user, credentials)
    url = user.entry_point_url(entry_point)
    print(f"viewer at {url}")

    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            shoot_viewer(browser, url, args.out)
            shoot_galaxy(browser, credentials, args.out)
            browser.close()
    finally:
        if not args.keep:
            user.stop_entry_point(entry_point["id"])
            user.wait_for_job(job_id, timeout=180)


if __name__ == "__main__":
    main()
