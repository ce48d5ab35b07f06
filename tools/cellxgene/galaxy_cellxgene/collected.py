"""After a stopped job is collected: which pushed copies the staged outputs made redundant.

On REST Pulsar a Stop SIGKILLs the job shell, yet the container goes on running; Galaxy then
downloads the staged outputs (the last completed save), marks them `ok`, and Pulsar deletes the
job's directory (remote_save.RemoteSaver.orphaned). At that point the history may hold each
save twice: the copy remote_save pushed while the job ran, and the staged output. This module
finds, for each pushed kind, a history dataset other than the copy with exactly the bytes the
output last held (same size, same content without the `#` header lines). When one is found the
copy is a duplicate and can go; when none is (message-queue Pulsar skips the staging of a
cancelled job, or a save landed after the last look), the copy stays: a duplicate is better
than a loss.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from galaxy_cellxgene.galaxy_client import GalaxyClient

# Only a small listing: enough to pick candidates by size before reading any content.
LISTING_KEYS = "id,state,deleted,purged,file_size,history_content_type"


@dataclass(frozen=True)
class Content:
    """What an output held after a save: its size and its digest (see `content_digest`)."""

    size: int
    digest: str


def content_digest(data: bytes) -> str | None:
    """A hash of a CSV without its leading `#` header lines (they carry the save's time);
    None for no content."""
    if not data:
        return None
    lines = data.splitlines(keepends=True)
    while lines and lines[0].startswith(b"#"):
        lines.pop(0)
    return hashlib.sha256(b"".join(lines)).hexdigest()


def candidates(listing: Iterable[Mapping], size: int, exclude: set[str]) -> list[str]:
    """Ids of finished, undeleted datasets of the right size that are not our own copies."""
    return [
        str(item["id"])
        for item in listing
        if item.get("history_content_type", "dataset") == "dataset"
        and item.get("state") == "ok"
        and not item.get("deleted")
        and not item.get("purged")
        and item.get("file_size") == size
        and str(item["id"]) not in exclude
    ]


def staged_in_history(client: GalaxyClient, wanted: Mapping[str, Content], exclude: set[str]) -> set[str]:
    """The kinds of `wanted` whose content a history dataset (not in `exclude`) holds."""
    listing = client.history_listing(LISTING_KEYS)
    found: set[str] = set()
    read: dict[str, str | None] = {}
    for kind, content in wanted.items():
        for dataset_id in candidates(listing, content.size, exclude):
            if dataset_id not in read:
                read[dataset_id] = content_digest(client.dataset_content(dataset_id))
            if read[dataset_id] == content.digest:
                found.add(kind)
                break
    return found
