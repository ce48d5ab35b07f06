"""Wait for the local Tool Shed, then make its admin user (owner `iuc`, as .shed.yml names),
that user's API key and .shed.yml's categories; write them to TOOLSHED_CREDENTIALS.

Run by scripts/toolshed.sh start with the Tool Shed venv's python (requests is there).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
from pathlib import Path

# toolshed.sh puts testkit/src on PYTHONPATH: the Tool Shed's venv has requests, all this needs.
from galaxy_cellxgene_testkit.galaxy_api import GalaxyApi, GalaxyError

ADMIN_EMAIL = "admin@example.org"
OWNER = "iuc"
CATEGORIES = ("Single Cell", "Transcriptomics", "Visualization")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pid", type=int, help="give up early if this process dies")
    args = parser.parse_args()
    url = os.environ["TOOLSHED_URL"]
    credentials_path = Path(os.environ["TOOLSHED_CREDENTIALS"])
    stored = json.loads(credentials_path.read_text()) if credentials_path.exists() else {}

    def alive() -> bool:
        if args.pid is None:
            return True
        return Path(f"/proc/{args.pid}").exists()

    bootstrap = GalaxyApi(url, os.environ["TOOLSHED_ADMIN_KEY"])
    bootstrap.wait_until_up(timeout=float(os.environ.get("TOOLSHED_START_TIMEOUT", "300")), alive=alive)

    users = [user for user in bootstrap.get("users") if user.get("username") == OWNER]
    password = stored.get("admin_password") or secrets.token_urlsafe(12)
    if users:
        user = users[0]
    else:
        user = bootstrap.post("users", {"email": ADMIN_EMAIL, "password": password, "username": OWNER})
    key = stored.get("admin_key") if stored.get("admin_id") == user["id"] else None
    if not key or GalaxyApi(url, key).request("GET", "users/current").status_code != 200:
        key = bootstrap.post(f"users/{user['id']}/api_key")
    admin = GalaxyApi(url, key)
    existing = {category["name"] for category in admin.get("categories")}
    for name in CATEGORIES:
        if name not in existing:
            try:
                admin.post("categories", {"name": name, "description": name})
            except GalaxyError as error:
                raise SystemExit(f"could not create category {name!r}: {error}") from error

    credentials = {"url": url, "admin_email": ADMIN_EMAIL, "owner": OWNER, "admin_password": password}
    credentials.update({"admin_id": user["id"], "admin_key": key})
    tmp = credentials_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(credentials, indent=2) + "\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, credentials_path)
    print(f"[toolshed.sh] {url} is up; owner {OWNER}, credentials in {credentials_path}", file=sys.stderr)


if __name__ == "__main__":
    main()
