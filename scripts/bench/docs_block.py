"""docs/benchmarks.md's marked result blocks: what a run with --write-docs replaces."""

from __future__ import annotations

from bench.common import REPO

DOCS = REPO / "docs" / "benchmarks.md"
BEGIN, END = "<!-- benchmark:begin -->", "<!-- benchmark:end -->"
ATLAS_BEGIN, ATLAS_END = "<!-- atlas:begin -->", "<!-- atlas:end -->"


def write_docs(report: str, begin: str = BEGIN, end: str = END) -> None:
    """Replace the block between `begin` and `end` in docs/benchmarks.md (appended if missing)."""
    block = f"{begin}\n{report}{end}"
    if DOCS.exists():
        text = DOCS.read_text()
        if begin in text and end in text:
            head, rest = text.split(begin, 1)
            _, tail = rest.split(end, 1)
            DOCS.write_text(head + block + tail)
            return
        DOCS.write_text(text.rstrip() + "\n\n## Results\n\n" + block + "\n")
        return
    DOCS.write_text("# Benchmarks\n\n## Results\n\n" + block + "\n")


def publish(report: str, atlas_report: str) -> None:
    """Sections 1-4 into their block, the atlas section into its own; an empty report leaves its block."""
    if report:
        write_docs(report)
    if atlas_report:
        write_docs(atlas_report, ATLAS_BEGIN, ATLAS_END)
