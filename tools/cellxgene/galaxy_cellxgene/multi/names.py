"""Names: Galaxy element identifiers are user text; file names and URL segments must not be."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable

MAX_NAME_LENGTH = 100
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def safe_name(name: str) -> str:
    """A file-name and URL-segment safe form of `name`: ASCII letters, digits, `_ . -`.

    Accents are folded (Zellen_Müller -> Zellen_Muller), every other run of characters becomes
    one `_`, and leading/trailing dots and separators go (no `..`, no hidden files).
    """
    folded = unicodedata.normalize("NFKD", str(name)).encode("ascii", "ignore").decode("ascii")
    text = _UNSAFE.sub("_", folded).strip("._-")[:MAX_NAME_LENGTH].strip("._-")
    return text or "dataset"


def unique_safe_names(names: Iterable[str]) -> list[str]:
    """One safe name per input, all distinct (case-insensitively), stable for the same input.

    A name that is already safe and unused is kept as it is, so Galaxy's output collections
    carry the user's own element identifiers; otherwise a short hash of the original name
    tells apart names that fold to the same text (`a/b` and `a?b`).
    """
    result: list[str] = []
    used: set[str] = set()
    for name in names:
        base = safe_name(name)
        candidate = base
        if candidate.lower() in used:
            digest = hashlib.sha256(str(name).encode("utf-8", "surrogatepass")).hexdigest()[:8]
            candidate = f"{base[: MAX_NAME_LENGTH - 9]}_{digest}"
        counter = 2
        stem = candidate
        while candidate.lower() in used:  # the very same name twice (possible on the command line)
            candidate = f"{stem[: MAX_NAME_LENGTH - 6]}_{counter}"
            counter += 1
        used.add(candidate.lower())
        result.append(candidate)
    return result
