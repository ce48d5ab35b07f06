"""The layout cache serves each embedding once and holds no more than the UI's use needs."""

from __future__ import annotations

import pytest
from galaxy_cellxgene.app import _cache_layouts


class Adaptor:
    """Stands in for cellxgene's data adaptor: only the two methods the cache wraps."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.encoded: list[tuple] = []

    def get_embedding_names(self) -> list[str]:
        return self.names

    def layout_to_fbs_matrix(self, fields):
        unknown = [f for f in fields or () if f not in self.names]
        if unknown:
            raise KeyError(unknown[0])
        self.encoded.append(tuple(fields or ()))
        return bytearray(b"|".join(f.encode() for f in fields or ()))


def test_each_embedding_is_encoded_once_and_served_as_bytes() -> None:
    adaptor = Adaptor(["umap", "pca", "tsne"])
    _cache_layouts(adaptor)
    for _ in range(5):
        for name in adaptor.names:
            assert adaptor.layout_to_fbs_matrix([name]) == name.encode()
    assert sorted(adaptor.encoded) == [("pca",), ("tsne",), ("umap",)]


def test_any_number_of_combinations_keeps_the_cache_at_one_entry_per_embedding() -> None:
    adaptor = Adaptor(["umap", "pca"])
    _cache_layouts(adaptor)
    for repeat in range(1, 200):  # a client naming ever longer lists: each a new key
        adaptor.layout_to_fbs_matrix(["umap"] * repeat)
    assert len(adaptor.layout_cache) <= 2
    assert adaptor.layout_to_fbs_matrix(["umap"] * 199) == b"|".join([b"umap"] * 199)


def test_unknown_names_are_refused_and_not_cached() -> None:
    adaptor = Adaptor(["umap"])
    _cache_layouts(adaptor)
    with pytest.raises(KeyError):
        adaptor.layout_to_fbs_matrix(["nope"])
    assert len(adaptor.layout_cache) == 0
