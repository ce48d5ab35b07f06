"""The 'check' mode's report: what cellxgene will show, and what stops it."""

from __future__ import annotations

from pathlib import Path

from galaxy_cellxgene.problems import Inspection
from galaxy_cellxgene.settings import ViewerOptions


def render(name: str, inspection: Inspection, options: ViewerOptions) -> str:
    s = inspection.summary
    lines = [f"# cellxgene check: {name}", ""]
    verdict = "cannot be opened" if inspection.errors else "can be opened"
    lines += [f"**Verdict:** this dataset {verdict} in cellxgene with these settings.", ""]
    if inspection.problems:
        lines += ["## Problems", ""]
        lines += [f"- **{p.severity.upper()}**: {p.what} *Fix:* {p.fix}" for p in inspection.problems]
        lines.append("")
    lines += [
        "## What cellxgene will show",
        "",
        f"- Title: {options.display_name(Path(name))}",
        f"- Cells: {s.n_obs}",
        f"- Genes: {s.n_vars}",
        f"- Expression values: {f'layer {options.layer!r}' if options.layer else f'X ({s.x_encoding}, {s.x_dtype})'}",
        f"- Gene names: {_gene_names(options, s)}" + (" (made unique)" if options.make_var_names_unique else ""),
        f"- Cell names: {options.obs_names or 'obs index'}",
        f"- Other layers (not shown by cellxgene): {', '.join(x for x in s.layers if x != options.layer) or 'none'}",
        "",
        "### Embeddings",
        "",
    ]
    for e in s.embeddings:
        state = "shown" if e.shown else f"not shown: {e.reason}"
        if e.shown and e.shown_as:
            state = f"shown as '{e.shown_as}' ({e.note}; your dataset is not changed)"
        lines.append(f"- {e.name} {list(e.shape)}: {state}")
    if s.default_embedding:
        lines.append(f"- Shown first: {s.default_embedding} (the dataset's uns['default_embedding'])")
    if not s.embeddings:
        lines.append("- none")
    lines += ["", "### Cell metadata (obs)", ""]
    lines += [f"- {col}: {kind}" for col, kind in s.obs_columns.items()] or ["- none"]
    if s.presented:
        # cellxgene 1.3.0 cannot load pandas' nullable columns: the viewer's copy of obs/var shows them so.
        lines += ["", "### Columns shown converted (your dataset is not changed)", ""]
        lines += [f"- {text}" for text in s.presented]
    if s.hidden:
        lines += ["", "### Columns cellxgene cannot show", ""]
        lines += [f"- {text}" for text in s.hidden]
    lines += ["", "### Your previous work", ""]
    lines.append(f"- Annotation categories: {', '.join(s.user_categories) or 'none'}")
    lines.append(f"- Gene sets: {', '.join(s.gene_sets) or 'none'}")
    switches = {
        "differential expression": options.diffexp,
        "annotations": options.annotations,
        "gene-set saving": options.gene_sets_save,
        "custom colours": options.custom_colors,
        "backed mode": options.backed,
    }
    lines += ["", "### Switches", ""]
    lines += [f"- {k}: {'on' if v else 'off'}" for k, v in switches.items()]
    lines.append(f"- max category items: {options.max_category_items}")
    return "\n".join(lines) + "\n"


def _gene_names(options: ViewerOptions, s) -> str:
    if options.var_names and s.var_names_defaulted:
        return f"{options.var_names} ({s.var_names_note}; chosen because no gene-symbol column was selected)"
    if options.var_names:
        return options.var_names
    if s.default_var_names and options.var_names is None and not s.var_names_defaulted:  # the index, chosen
        return f"var index, as chosen (the gene symbols are in var column '{s.default_var_names}')"
    return "var index" + (f" ({s.var_names_note})" if s.var_names_note else "")
