"""Cells first, X checked all the same (issues 25 and 22): `view` serves the cells while the column
copy is built; when the copy's own pass then finds X malformed, the view ends with the saves made
so far kept (saves frozen, no merged h5ad) and the job ends with exit 2. And a Finish whose step
breaks still ends the session (the server would otherwise wait for ever)."""

from __future__ import annotations

import threading
from types import SimpleNamespace

from galaxy_cellxgene.app import Session


def session_and_columns() -> tuple[Session, SimpleNamespace]:
    store = SimpleNamespace(save_lock=threading.Lock(), frozen=False)
    # The parts of a Session these paths touch; the rest (cellxgene's app and data) is not needed.
    session = Session(app=None, store=store, paths=None, options=None, data_adaptor=None)  # type: ignore[arg-type]
    columns = SimpleNamespace(ready=threading.Event(), refusal=None)
    return session, columns


def test_a_refusal_found_while_serving_ends_the_view_and_freezes_saves() -> None:
    session, columns = session_and_columns()
    watcher = session.end_when_refused(columns)  # type: ignore[arg-type]
    assert not session.finished.is_set()  # serving: the copy is still being built
    columns.refusal = "X: column number 40 is outside X's 30 columns"
    columns.ready.set()
    watcher.join(10)
    assert session.finished.is_set() and session.store.frozen
    assert session.finish_reason == "the input was refused"


def test_a_good_copy_leaves_the_view_running() -> None:
    session, columns = session_and_columns()
    watcher = session.end_when_refused(columns)  # type: ignore[arg-type]
    columns.ready.set()
    watcher.join(10)
    assert not watcher.is_alive()
    assert not session.finished.is_set() and not session.store.frozen


def test_a_refusal_after_finish_changes_nothing() -> None:
    session, _ = session_and_columns()
    session.finish_reason = "finish button"
    session.refuse("the input was refused")
    assert session.finish_reason == "finish button" and not session.store.frozen


def test_a_finish_step_that_breaks_still_ends_the_session_and_says_why() -> None:
    session, _ = session_and_columns()

    def broken() -> None:
        raise OSError("disk full")

    session._finish_steps = broken  # type: ignore[method-assign]
    session.status = lambda: {"finish_error": session.finish_error}  # type: ignore[method-assign]
    result = session.finish("finish button")
    assert session.finished.is_set()
    assert result["finish_error"] == "Finishing failed: disk full"
