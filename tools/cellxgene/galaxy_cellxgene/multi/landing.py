"""The list tool's landing page: every dataset, its state and the user's categories so far.

The markup is landing.html (string.Template); every user-chosen text that goes into it (element
identifiers, title, problems) goes through escape() here. Its Finish button is finish.js's.
"""

from __future__ import annotations

import functools
import html
import threading
from pathlib import Path
from string import Template
from typing import Protocol
from urllib.parse import quote

from galaxy_cellxgene.multi.datasets import Dataset

e = html.escape


class Listed(Protocol):
    """What the page shows of a session (multi/session.py's MultiSession)."""

    title: str
    datasets: list[Dataset]
    memory_budget_bytes: int | None

    @property
    def finished(self) -> threading.Event: ...

    def dataset_status(self, entry: Dataset) -> dict: ...


@functools.cache
def _template() -> Template:
    return Template(Path(__file__).with_name("landing.html").read_text(encoding="utf-8"))


def _embeddings_text(entry: Dataset) -> str:
    if not entry.facts or not entry.facts.embeddings:
        return "—"
    return ", ".join(e(name) for name in entry.facts.embeddings)


def _count(value: int | None) -> str:
    return "—" if value is None else f"{value:,}"


def render_landing(multi: Listed) -> str:
    rows = []
    for entry in multi.datasets:
        status = multi.dataset_status(entry)
        if entry.usable:
            name_cell = f'<a class="open" href="d/{e(quote(entry.slug))}/">{e(entry.name)}</a>'
        else:
            name_cell = f'<span class="unusable">{e(entry.name)}</span>'
        if not entry.usable:
            state = '<span class="bad">cannot be opened</span><br><small>' + e(" ".join(entry.problems)) + "</small>"
        elif entry.load_error:
            state = '<span class="bad">failed to load</span><br><small>' + e(entry.load_error) + "</small>"
        elif status["loaded"]:
            state = '<span class="ok">open</span>'
        elif status["opened"]:
            state = "resting (reloads when opened)"
        else:
            state = "not opened yet"
        categories = ", ".join(e(c) for c in status["categories"]) or "—"
        rows.append(
            "<tr>"
            f'<td class="name" data-slug="{e(entry.slug)}">{name_cell}</td>'
            f'<td class="num">{_count(entry.facts.n_obs if entry.facts else None)}</td>'
            f'<td class="num">{_count(entry.facts.n_vars if entry.facts else None)}</td>'
            f"<td>{_embeddings_text(entry)}</td>"
            f"<td>{categories}</td>"
            f"<td>{state}</td>"
            "</tr>"
        )
    budget = (
        f"Memory budget {multi.memory_budget_bytes / 2**20:,.0f} MiB: datasets not in use are closed to make room "
        "and reopen where you left off."
        if multi.memory_budget_bytes
        else "Datasets load when first opened."
    )
    finished = multi.finished.is_set()
    return _template().substitute(
        title=e(multi.title),
        count=len(multi.datasets),
        rows="\n".join(rows),
        budget=e(budget),
        disabled=" disabled" if finished else "",
        done_hidden="" if finished else " hidden",
    )


def error_page(entry: Dataset, message: str) -> str:
    return (
        "<!doctype html><html lang=en><meta charset=utf-8><title>cellxgene</title>"
        f"<body style='font-family:sans-serif;margin:2em'><h1>{e(entry.name)}</h1><p>{e(message)}</p>"
        "<p><a href='../../'>All datasets</a></p></body></html>"
    )
