"""Two requests of cellxgene 1.3.0's page that fail under any entry point, corrected at serve time.

No fork and no rebuilt frontend: the packaged files stay as they are.

- The logo. The bundle (`static/main-<hash>.js`) draws it with
  `<img src="../static/assets/icon-<hash>.png">`: one level *above* the page, a leftover of
  cellxgene's hosted layout where each dataset's page lived at `/d/<name>/` and the assets at
  `/static/`. Under Galaxy the page is `/interactivetool/ep/<key>/<token>/`, so the browser asks
  for `/interactivetool/ep/<key>/static/...`, which no entry point serves (gx-it-proxy reads
  "static" as the token: 502; outside our path prefix: 404), and the alt text shows instead.
  We serve the bundle with that one reference made relative to the page (`static/assets/...`,
  where cellxgene's own static route serves the file). Only that exact string changes.
- The embedding shown first. The bundle opens on the first of `["umap","tsne","pca"]` the dataset
  has, else on the first name in sorted order: a CELLxGENE Discover dataset's
  `uns['default_embedding']` (say `X_tsne`), or the embedding the user chose first (say the tissue
  coordinates, `spatial`), would not be the one shown. That list is served with the chosen name in
  front (JSON-encoded: a name from the dataset cannot end the string); only that list changes.
- `obsolete.js`. The page template loads it (the browser-support warning of the
  obsolete-webpack-plugin) but the package does not ship it, so it is a 404 with an HTML body
  that the browser refuses to run. We answer it with an empty script: what the page gets from
  the plugin on every supported browser, which is the only kind cellxgene runs on anyway.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

from galaxy_cellxgene import cellxgene_internals as cx

if TYPE_CHECKING:
    from flask import Flask

BUNDLE = re.compile(r"main-[0-9a-f]+\.js")
LOGO_ABOVE = b'"../static/assets/'
LOGO_HERE = b'"static/assets/'
PREFERRED = b'["umap","tsne","pca"]'
OBSOLETE_JS = b"/* galaxy-cellxgene: cellxgene 1.3.0 does not ship obsolete.js; nothing to warn about. */\n"


@functools.lru_cache(maxsize=4)
def corrected_bundle(path: Path, first_embedding: str = "") -> bytes | None:
    """The bundle with the logo's reference made relative (and the embedding shown first in front);
    None when there is nothing to fix."""
    data = path.read_bytes()
    if data.count(LOGO_ABOVE) != 1:
        return None
    data = data.replace(LOGO_ABOVE, LOGO_HERE)
    if first_embedding and data.count(PREFERRED) == 1:
        data = data.replace(PREFERRED, b"[" + json.dumps(first_embedding).encode() + b"," + PREFERRED[1:])
    return data


def install(app: Flask, first_embedding: str = "") -> None:
    """Wrap cellxgene's static route (the bundle) and add `/obsolete.js`."""
    # Imported here: the early front (early_front.py) serves the same bundle before Flask is loaded.
    from flask import Response

    folder = cx.static_dir()

    def wrap(original):
        def static_assets(filename: str):
            if BUNDLE.fullmatch(filename):
                bundle = folder / filename
                fixed = corrected_bundle(bundle, first_embedding) if bundle.is_file() else None
                if fixed is not None:
                    return Response(fixed, mimetype="text/javascript")
            return original(filename=filename)

        return static_assets

    cx.wrap_view(app, cx.STATIC_ENDPOINT, wrap)
    app.add_url_rule(
        "/obsolete.js",
        "galaxy_obsolete_js",
        lambda: Response(OBSOLETE_JS, mimetype="text/javascript"),
        methods=["GET"],
    )
