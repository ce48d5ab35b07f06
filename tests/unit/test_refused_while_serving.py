"""Cells first, X checked all the same (issues 25 and 22): `view` serves the cells while the column
copy is built; when the copy's own pass then finds X malformed, the view ends with the saves made
so far kept (saves frozen, no merged h5ad) and the job ends with exit 2."""

from __future__ import annotations

import threading
from types import SimpleNamespace

from galaxy_cellxgene.cli import end_when_x_is_refused


def session_and_columns():
    store = SimpleNamespace(save_lock=threading.Lock(), frozen=False)
    session = SimpleNamespace(store=store, finished=threading.Event(), finish_reason=None)
    columns = SimpleNamespace(ready=threading.Event(), refusal=None)
    return session, columns


def test_a_refusal_found_while_serving_ends_the_view_and_freezes_saves() -> None:
    session, columns = session_and_columns()
    watcher = end_when_x_is_refused(session, columns)
    assert not session.finished.is_set()  # serving: the copy is still being built
    columns.refusal = "X: column number 40 is outside X's 30 columns"
    columns.ready.set()
    watcher.join(10)
    assert session.finished.is_set() and session.store.frozen
    assert session.finish_reason == "the input was refused"


def test_a_good_copy_leaves_the_view_running() -> None:
    session, columns = session_and_columns()
    watcher = end_when_x_is_refused(session, columns)
    columns.ready.set()
    watcher.join(10)
    assert not watcher.is_alive()
    assert not session.finished.is_set() and not session.store.frozen
