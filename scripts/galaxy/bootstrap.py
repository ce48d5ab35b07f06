"""`local.py bootstrap`: wait for the Galaxy that scripts/galaxy.sh started, then make its users
(admin, demo, one per destination of `by-user`), their working API keys and the demo history, and
keep them in credentials.json (0600) for the tests, the benchmarks and `scripts/galaxy.sh up`.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import time
from pathlib import Path

# galaxy.sh puts testkit/src on PYTHONPATH: Galaxy's venv has requests, which is all this needs.
from galaxy_cellxgene_testkit.galaxy_api import GalaxyApi
from render_config import DESTINATION_USERS, destination, env

ADMIN_EMAIL = "admin@example.org"
DEMO_EMAIL = "demo@example.org"
DEMO_HISTORY = "cellxgene demo"
DEMO_NAME = "PBMC demo"


def destination_user(api: GalaxyApi, url: str, email: str, stored: dict | None) -> dict[str, str]:
    """The user whose cellxgene jobs go to one destination (by-user), with a working API key."""
    stored = stored or {}
    password = stored.get("password") or secrets.token_urlsafe(12)
    user = api.ensure_user(email, password, email.split("@", 1)[0])
    key = working_key(api, url, user["id"], stored.get("id"), stored.get("key"))
    return {"email": email, "password": password, "id": user["id"], "key": key}


def process_alive(pid: int | None) -> bool:
    """Whether Galaxy's process still runs (no pid: assume it does)."""
    if pid is None:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_for_galaxy(api: GalaxyApi, url: str, galaxy_pid: int | None) -> dict:
    timeout = float(os.environ.get("GALAXY_START_TIMEOUT", "600"))
    version = api.wait_until_up(timeout=timeout, alive=lambda: process_alive(galaxy_pid))
    if os.environ.get("GX_STARTED_AT"):
        waited = time.time() - float(os.environ["GX_STARTED_AT"])
        print(f"[galaxy.sh] {url}/api/version answered {waited:.1f} s after galaxy-web started", file=sys.stderr)
    return version


def working_key(api: GalaxyApi, url: str, user_id: str, stored_id: str | None, stored_key: str | None) -> str:
    """A key made earlier stays valid; make one only when none is stored for this database's user."""
    key = stored_key if stored_id == user_id else None
    if not key or GalaxyApi(url, key).request("GET", "whoami").status_code != 200:
        key = api.new_api_key(user_id)
    return key


def admin_and_demo(api: GalaxyApi, url: str, stored: dict) -> dict:
    """The admin and the demo user, their passwords and working keys, as credentials.json keeps them."""
    admin_password = stored.get("admin_password") or secrets.token_urlsafe(12)
    demo_password = stored.get("user_password") or secrets.token_urlsafe(12)
    admin = api.ensure_user(ADMIN_EMAIL, admin_password, "admin")
    demo = api.ensure_user(DEMO_EMAIL, demo_password, "demo")
    return {
        "admin_email": ADMIN_EMAIL,
        "admin_password": admin_password,
        "admin_id": admin["id"],
        "admin_key": working_key(api, url, admin["id"], stored.get("admin_id"), stored.get("admin_key")),
        "user_email": DEMO_EMAIL,
        "user_password": demo_password,
        "user_id": demo["id"],
        "user_key": working_key(api, url, demo["id"], stored.get("user_id"), stored.get("user_key")),
    }


def demo_dataset(user: GalaxyApi, demo_file: Path) -> dict[str, str]:
    """The demo history and its h5ad (uploaded once, found again on later starts)."""
    history_id = user.find_history(DEMO_HISTORY)
    if history_id is None:
        history_id = user.new_history(DEMO_HISTORY)
    contents = [
        item
        for item in user.history_contents(history_id)
        if item.get("name") == DEMO_NAME and not item.get("deleted") and item.get("state") == "ok"
    ]
    if contents:
        dataset_id = contents[0]["id"]
    else:
        dataset_id = user.upload_and_wait(history_id, demo_file, name=DEMO_NAME, ext="h5ad")["id"]
    return {"demo_history_id": history_id, "demo_dataset_id": dataset_id}


def bootstrap(demo_file: Path | None, galaxy_pid: int | None) -> None:
    url = f"http://127.0.0.1:{env('GALAXY_PORT')}"
    credentials_path = Path(env("GX_CREDENTIALS"))
    stored = json.loads(credentials_path.read_text()) if credentials_path.exists() else {}
    bootstrap_api = GalaxyApi(url, env("GX_ADMIN_KEY"))
    version = wait_for_galaxy(bootstrap_api, url, galaxy_pid)
    users = admin_and_demo(bootstrap_api, url, stored)

    destination_users = {}
    if destination() == "by-user":
        for name, email in DESTINATION_USERS.items():
            destination_users[name] = destination_user(bootstrap_api, url, email, stored.get("users", {}).get(name))

    credentials = {
        "url": url,
        "galaxy_version": version.get("version_major"),
        "destination": destination(),
        "bootstrap_admin_key": env("GX_ADMIN_KEY"),
        **users,
        "users": destination_users,
    }
    if demo_file is not None:
        credentials |= demo_dataset(GalaxyApi(url, users["user_key"]), demo_file)

    tmp = credentials_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(credentials, indent=2) + "\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, credentials_path)
