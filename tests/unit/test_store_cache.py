"""store_cache.py: a column store built once per Galaxy dataset, shared by jobs, never trusted blindly.

What an admin and a user would check: a second session of the same dataset opens the store the
first one built (no rebuild); two sessions starting together build it once; a dataset whose bytes
changed under the same UUID is rebuilt, never answered from the old store; a damaged or forged
entry is rebuilt or refused, never crashes the viewer; the folder stays under its cap."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.sparse as sp
from galaxy_cellxgene import column_file, columns, store_cache
from galaxy_cellxgene.settings import ViewerOptions
from galaxy_cellxgene.store_choice import StoreChoice
from support.h5ad_builders import write_matrix_h5ad

UUID = "0f6c4a8e-3b1d-4c2a-9e7f-5d8b6a4c2e10"
KEY = store_cache.cache_key(UUID)


def csr(seed: int, shape=(200, 12)) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    return sp.random(*shape, density=0.3, format="csr", dtype=np.float32, random_state=rng)


def cached_store(source: Path, cache: store_cache.StoreCache, key: str | None = KEY) -> columns.ColumnStore:
    store = columns.ColumnStore(str(source), StoreChoice("disk", "test", build=True), cache=cache, key=key)
    store.build()
    assert store.error is None, store.error
    return store


def gene(store: columns.ColumnStore, j: int) -> np.ndarray:
    return store.get_X_array(None, np.array([j])).toarray()


def test_a_second_session_reuses_the_store_the_first_built(tmp_path) -> None:
    X = csr(1)
    source = write_matrix_h5ad(tmp_path / "a.h5ad", X)
    cache = store_cache.StoreCache(tmp_path / "cache", 1 << 30)
    first = cached_store(source, cache)
    second = cached_store(source, cache)
    assert first.describe()["built"] and not second.describe()["built"]
    assert second.store_path == first.store_path == cache.entry(KEY)
    for j in (0, 5, 11):
        np.testing.assert_array_equal(gene(second, j), X[:, [j]].toarray())
    assert os.stat(cache.entry(KEY)).st_mode & 0o077 == 0  # only the jobs' own user reads it


def _build_in_process(source: str, root: str, marker: str, barrier) -> None:
    cache = store_cache.StoreCache(Path(root), 1 << 30)

    def build(target: Path):
        with open(marker, "a") as log:
            log.write(f"{os.getpid()}\n")
        return column_file.build_column_file(source, target).value_range

    barrier.wait()
    cache.obtain(KEY, store_cache.fingerprint(source), build)


def test_two_jobs_opening_the_same_dataset_at_once_build_it_once(tmp_path) -> None:
    X = csr(2, (3000, 40))
    source = write_matrix_h5ad(tmp_path / "a.h5ad", X)
    marker = tmp_path / "builds.log"
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [
        ctx.Process(target=_build_in_process, args=(str(source), str(tmp_path / "cache"), str(marker), barrier))
        for _ in range(2)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    assert len(marker.read_text().split()) == 1
    store = cached_store(source, store_cache.StoreCache(tmp_path / "cache", 1 << 30))
    assert not store.describe()["built"]
    np.testing.assert_array_equal(gene(store, 17), X[:, [17]].toarray())


def test_a_source_that_changed_under_the_same_uuid_is_rebuilt_not_served_from_the_old_store(tmp_path) -> None:
    cache = store_cache.StoreCache(tmp_path / "cache", 1 << 30)
    old = write_matrix_h5ad(tmp_path / "old.h5ad", csr(3))
    cached_store(old, cache)
    new_X = csr(4)
    new = write_matrix_h5ad(tmp_path / "new.h5ad", new_X)
    store = cached_store(new, cache)
    assert store.describe()["built"]
    for j in range(new_X.shape[1]):
        np.testing.assert_array_equal(gene(store, j), new_X[:, [j]].toarray())


def test_a_damaged_entry_is_rebuilt(tmp_path) -> None:
    X = csr(5)
    source = write_matrix_h5ad(tmp_path / "a.h5ad", X)
    cache = store_cache.StoreCache(tmp_path / "cache", 1 << 30)
    cached_store(source, cache)
    with h5py.File(cache.entry(KEY), "r+") as f:
        f["indptr"][3] = 10**9  # a pointer past the stored values
    store = cached_store(source, cache)
    assert store.describe()["built"]
    np.testing.assert_array_equal(gene(store, 2), X[:, [2]].toarray())


def test_a_forged_entry_with_row_numbers_out_of_range_is_refused_per_read(tmp_path) -> None:
    """An entry whose fingerprint was copied but whose row numbers point outside X: scipy would
    write outside the answer's array when densified; the read refuses instead."""
    X = csr(6)
    source = write_matrix_h5ad(tmp_path / "a.h5ad", X)
    cache = store_cache.StoreCache(tmp_path / "cache", 1 << 30)
    cached_store(source, cache)
    with h5py.File(cache.entry(KEY), "r+") as f:
        f["indices"][0] = 10**6
    store = cached_store(source, cache)
    assert not store.describe()["built"]
    with pytest.raises(column_file.ColumnFileError, match="outside X"):
        store.matrix.select(None, np.arange(X.shape[1]))


def test_the_cache_stays_under_its_cap_least_recently_used_first(tmp_path) -> None:
    cache = store_cache.StoreCache(tmp_path / "cache", 1 << 30)
    sources = [write_matrix_h5ad(tmp_path / f"s{i}.h5ad", csr(10 + i, (400, 30))) for i in range(3)]
    keys = [store_cache.cache_key(f"{i:08x}-0000-0000-0000-000000000000") for i in range(3)]
    for source, key in zip(sources, keys, strict=True):
        cached_store(source, cache, key)
    one = cache.entry(keys[0]).stat().st_size
    os.utime(cache.entry(keys[0]), (1, 1))
    os.utime(cache.entry(keys[1]), (2, 2))
    cached_store(sources[0], cache, keys[0])  # opened again: now the most recently used
    small = store_cache.StoreCache(cache.root, int(one * 2.5))
    removed = small.evict()
    assert removed == [cache.entry(keys[1])]
    assert cache.entry(keys[0]).exists() and cache.entry(keys[2]).exists()


@pytest.mark.parametrize("uuid", ["", "not-a-uuid", "../../etc/passwd", "0f6c4a8e3b1d4c2a9e7f5d8b6a4c2e1"])
def test_without_a_galaxy_uuid_nothing_is_cached(uuid, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(store_cache.CACHE_ENV, str(tmp_path / "cache"))
    source = write_matrix_h5ad(tmp_path / "a.h5ad", csr(7))
    store = columns.start_column_copy(source, ViewerOptions(x_store="disk", dataset_uuid=uuid))
    store.ready.wait(60)
    assert store.cache is None and store.error is None
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").glob("*.h5"))


def test_the_admin_setting_turns_the_cache_on(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(store_cache.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv(store_cache.CAP_ENV, "64")
    source = write_matrix_h5ad(tmp_path / "a.h5ad", csr(8))
    store = columns.start_column_copy(source, ViewerOptions(x_store="disk", dataset_uuid=UUID))
    store.ready.wait(60)
    assert store.error is None and store.store_path == tmp_path / "cache" / f"{KEY}{store_cache.ENTRY_SUFFIX}"
    assert store.cache.cap_bytes == 64 * 2**20
