#!/usr/bin/env python
"""What Galaxy's bundled cellxgene interactive tool 1.1.1 does before it launches.

That tool (galaxy `tools/interactive/interactivetool_cellxgene_1.1.1.xml`) copies the input to
`/tmp/galaxy_cellxgene_<name>.h5ad`; when a gene-symbol column is to be made unique or a layer
is to be shown, it instead reads the whole AnnData, suffixes repeated symbols, re-indexes var by
them, replaces X by the layer, and writes a new h5ad there. This re-implements that work (same
reads, same writes, same in-memory copies) so the benchmark can time it as a contender.

Usage: recipe_111.py INPUT OUTPUT [--var-name COL --make-unique] [--layer NAME]
"""

from __future__ import annotations

import argparse
import sys

import anndata


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("input")
    parser.add_argument("output")
    parser.add_argument("--var-name", default="")
    parser.add_argument("--make-unique", action="store_true")
    parser.add_argument("--layer", default="")
    args = parser.parse_args(argv)

    adata = anndata.read_h5ad(args.input)
    if args.var_name and args.make_unique:
        if args.var_name not in adata.var:
            print(f"no var column {args.var_name}", file=sys.stderr)
            return 1
        symbols = adata.var[args.var_name].astype(str)
        # Second and later occurrences get `_d<k>`; first occurrences keep their symbol.
        nth = adata.var.groupby(args.var_name, observed=True).cumcount()
        suffix = ("_d" + nth.astype(str)).where(nth > 0, "")
        var = adata.var.copy()
        var[f"{args.var_name}_u"] = symbols + suffix
        var["extra_gene_id"] = var.index
        adata.var = var.set_index(f"{args.var_name}_u")
    if args.layer:
        if args.layer not in adata.layers:
            print(f"no layer {args.layer}", file=sys.stderr)
            return 1
        adata.X = adata.layers[args.layer]
    adata.write_h5ad(args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
