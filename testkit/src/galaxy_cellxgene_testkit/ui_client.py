"""Speak to a cellxgene server the way its web client does, without a browser.

Label saves are zlib-deflated FlatBuffers matrices (one JSON-encoded column per user
category), exactly what the UI's autosave sends; we build them with cellxgene's own
encoder so the bytes on the wire are the ones the server decodes in production.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import requests
from server.common.fbs.matrix import decode_matrix_fbs, encode_matrix_fbs

from galaxy_cellxgene_testkit.signed_in import cookie_for, cookie_header

API = "api/v0.2/"
BINARY = {"Accept": "application/octet-stream"}
FINISH_HEADERS = {"X-Galaxy-Cellxgene": "finish"}


class UiClient:
    def __init__(
        self,
        base_url: str,
        session: requests.Session | None = None,
        timeout: float = 30,
        cookie: str | None = None,
        signed_in: bool = True,
    ) -> None:
        """`cookie`: the Galaxy session to send (default: the one signed in on this URL's origin,
        signed_in.py, as a browser would); `signed_in=False`: a browser that sends none."""
        # cellxgene computes its API base from location.pathname, which must end in "/".
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.session = session or requests.Session()
        if signed_in and "Cookie" not in self.session.headers:
            self.session.headers.update(cookie_header(cookie or cookie_for(self.base_url)))
        self.timeout = timeout
        self._tid = 0

    def url(self, path: str) -> str:
        return self.base_url + path

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.session.get(self.url(path), timeout=self.timeout, **kwargs)

    def health(self) -> dict:
        response = self.get("health")
        response.raise_for_status()
        return response.json()

    def page(self) -> str:
        response = self.get("")
        response.raise_for_status()
        return response.text

    def config(self) -> dict:
        response = self.get(API + "config")
        response.raise_for_status()
        return response.json()["config"]

    def schema(self) -> dict:
        response = self.get(API + "schema")
        response.raise_for_status()
        return response.json()["schema"]

    def user_categories(self) -> list[str]:
        columns = self.schema()["annotations"]["obs"]["columns"]
        return [c["name"] for c in columns if c.get("writable")]

    def put_labels(self, labels: Mapping[str, Sequence[str]]) -> requests.Response:
        """Save every user category at once, as the UI does on each autosave."""
        frame = pd.DataFrame({name: pd.Series(list(values), dtype=object) for name, values in labels.items()})
        body = encode_matrix_fbs(frame, col_idx=pd.Index(list(labels.keys())))
        response = self.session.put(
            self.url(API + "annotations/obs"),
            data=zlib.compress(bytes(body)),
            headers={"Content-Type": "application/octet-stream"},
            timeout=self.timeout,
        )
        return response

    def get_labels(self) -> pd.DataFrame:
        """The user categories as the UI reads them back (one column per category)."""
        names = self.user_categories()
        if not names:
            return pd.DataFrame()
        response = self.get(API + "annotations/obs", params={"annotation-name": names}, headers=BINARY)
        response.raise_for_status()
        return decode_matrix_fbs(response.content)

    def get_obs(self, name: str) -> list:
        response = self.get(API + "annotations/obs", params={"annotation-name": name}, headers=BINARY)
        response.raise_for_status()
        return list(decode_matrix_fbs(response.content)[name])

    def put_gene_sets(self, gene_sets: Sequence[Mapping], tid: int | None = None) -> requests.Response:
        """gene_sets: [{"geneset_name", "geneset_description", "genes": [{"gene_symbol", "gene_description"}]}]"""
        if tid is None:
            self._tid += 1
            tid = self._tid
        return self.session.put(
            self.url(API + "genesets"), json={"tid": tid, "genesets": list(gene_sets)}, timeout=self.timeout
        )

    def get_gene_sets(self) -> list[dict]:
        response = self.get(API + "genesets", headers={"Accept": "application/json"})
        response.raise_for_status()
        return response.json()["genesets"]

    def expression(self, gene: str, var_column: str | None = None) -> np.ndarray:
        column = var_column or self.schema()["annotations"]["var"]["index"]
        response = self.get(API + "data/var", params={f"var:{column}": gene}, headers=BINARY)
        response.raise_for_status()
        return decode_matrix_fbs(response.content).to_numpy()[:, 0]

    def diffexp(self, cells_a: Sequence[int], cells_b: Sequence[int], count: int = 10) -> requests.Response:
        """The UI's "compute differential expression" between two cell selections (obs positions)."""

        def selection(cells):
            return {"filter": {"obs": {"index": [int(c) for c in cells]}}}

        body = {"mode": "topN", "count": count, "set1": selection(cells_a), "set2": selection(cells_b)}
        return self.session.post(self.url(API + "diffexp/obs"), json=body, timeout=self.timeout)

    def status(self) -> dict:
        response = self.get("galaxy/status")
        response.raise_for_status()
        return response.json()

    def save_labels(self, labels: Mapping[str, Sequence[str]], timeout: float = 30) -> dict:
        """A label save as the UI sends it, then the runtime's word that it is on disk (its status)."""
        from galaxy_cellxgene_testkit.galaxy_api import poll

        before = self.status()["label_saves"]
        response = self.put_labels(labels)
        assert response.status_code == 200, response.text
        return poll(
            "the runtime to report the save", lambda: (s := self.status())["label_saves"] > before and s, timeout
        )

    def finish(self) -> requests.Response:
        # The header the viewer's own page sends; without it Finish is refused (403).
        return self.session.post(self.url("galaxy/finish"), headers=FINISH_HEADERS, timeout=self.timeout)
