"""Hostile input through the real CLI and the real server.

Every free-text parameter and every user-supplied file is either accepted and inert, or
refused with a message written for the user (exit 2, `ERROR: ... Fix: ...`): never a crash,
never a file written outside the job directory, never markup reflected into the page.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import anndata as ad
import pytest
from galaxy_cellxgene.labels import read_gene_sets, read_labels
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from support.fixtures import DEMO, TOOL_DIR
from support.safety import uncaught

pytestmark = pytest.mark.slow

EXAMPLES = int(os.environ.get("SAFETY_FUZZ_EXAMPLES", "12"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# What an attacker (or an unlucky user) types: shell, markup, paths, CSV, format strings.
NASTY = [
    "$(touch PWNED)",
    "`touch PWNED`",
    '"; touch PWNED; echo "',
    "'; touch PWNED; echo '",
    "../../../../../../tmp/PWNED",
    "../PWNED",
    "/etc/passwd",
    "<script>alert('x')</script>",
    '"><img src=x onerror=alert(1)>',
    "</script><script>alert(1)</script>",
    "{{7*7}}",
    "{ax_name}",
    "%s%s%n",
    "\nERROR: forged log line",
    "a\r\nb",
    "index,cat\ncell,x",
    "# comment",
    "=cmd|'/c calc'!A1",
    "--help",
    "-x",
    "\u202eevil",
    "X_umap/../X",
    "null",
    "NaN",
    " ",
]
# argv cannot carry NUL; lone surrogates cannot be encoded at all.
TEXT = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
HOSTILE = st.one_of(
    st.sampled_from(NASTY),
    st.text(TEXT, max_size=64),
    st.lists(st.sampled_from(NASTY), min_size=2, max_size=4).map("".join),
    st.builds(lambda n, s: "A" * n + s, st.integers(1_000, 100_000), st.sampled_from(NASTY)),
)
DEMO_OBS = list(ad.read_h5ad(DEMO, backed="r").obs_names)
DEMO_OBS_COLUMNS = set(ad.read_h5ad(DEMO, backed="r").obs.columns)


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


class Job:
    """A job dir nested a few levels deep, so `../` escapes land somewhere we watch."""

    def __init__(self, base: Path, name: str) -> None:
        self.root = base / name
        self.job = self.root / "a" / "b" / "c" / "job"
        self.working = self.job / "working"
        self.working.mkdir(parents=True, exist_ok=True)

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("GALAXY_")},
            "PYTHONPATH": str(TOOL_DIR),
            "HOME": str(self.job / "home"),
            "TMPDIR": str(self.job),
        }
        return subprocess.run(
            [sys.executable, "-m", "galaxy_cellxgene", *args],
            cwd=self.working,
            env=env,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
        )


def assert_clean_outcome(proc: subprocess.CompletedProcess, must_accept: bool = False) -> None:
    assert proc.returncode in (0, 2), (proc.returncode, proc.stderr[-2000:])
    assert uncaught(proc.stderr) == [], proc.stderr[-3000:]
    if must_accept:
        assert proc.returncode == 0, proc.stderr[-2000:]
    if proc.returncode == 2:
        errors = [line for line in proc.stderr.splitlines() if line.startswith("ERROR: ")]
        assert errors and all(" Fix: " in line for line in errors), proc.stderr[-2000:]


def assert_nothing_escaped(job: Job, before: set[str], allowed_new: set[str]) -> None:
    """Only the job dir may change; and nothing anywhere was created by a payload."""
    after = tree(job.root)
    outside = {p for p in after - before if not p.startswith("a/b/c/job")}
    assert outside == set(), f"written outside the job dir: {sorted(outside)[:5]}"
    inside = {p for p in after - before if p.startswith("a/b/c/job")}
    unexpected = {p for p in inside if Path(p).name not in allowed_new and not p.endswith(("/working", "/home"))}
    assert unexpected == set(), f"unexpected files in the job dir: {sorted(unexpected)[:5]}"
    assert not any("PWNED" in p for p in after), "a payload ran"


# --- free-text parameters -----------------------------------------------------------------

FREE_TEXT = ["--title", "--layer", "--var-names", "--obs-names", "--embedding"]


@FUZZ
@given(option=st.sampled_from(FREE_TEXT), value=HOSTILE)
@example(option="--layer", value="\nERROR: forged log line")  # a refusal must not forge job-log lines
@example(option="--title", value="$(touch PWNED)`touch PWNED`")
@example(option="--embedding", value="../../../../../../tmp/PWNED")
def test_free_text_parameters_are_inert_or_refused_clearly(tmp_path_factory, option, value):
    job = Job(tmp_path_factory.mktemp("free"), "x")
    before = tree(job.root)
    # `--opt=value`: a value that starts with "-" must stay a value (the tool XML quotes it too).
    proc = job.run("check", str(DEMO), f"{option}={value}", "--report", "report.md")
    # A title is a label: any text is accepted. The others name things that must exist.
    assert_clean_outcome(proc, must_accept=option == "--title")
    if option == "--title":
        report = (job.working / "report.md").read_text()
        assert "# cellxgene check:" in report.splitlines()[0]
    assert_nothing_escaped(job, before, {"report.md"})


def test_a_100k_character_title_and_layer_are_handled(tmp_path):
    job = Job(tmp_path, "long")
    long = "<b>" + "A" * 100_000
    assert_clean_outcome(job.run("check", str(DEMO), f"--title={long}"), must_accept=True)
    proc = job.run("check", str(DEMO), f"--layer={long}")
    assert_clean_outcome(proc)
    assert proc.returncode == 2


# --- previous annotations / gene sets files -----------------------------------------------


def labels_file(columns: list[str], values: list[str], index: list[str], quote_all: bool = False) -> str:
    out = io.StringIO()
    out.write("# Annotations generated by a fuzzer\n# Input data file was pbmc_demo.h5ad\n")
    # Minimal quoting is what cellxgene desktop writes; quote-all is what the runtime writes when a
    # name holds '#', which cellxgene's reader (comment="#") would otherwise cut short.
    writer = csv.writer(out, quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL)
    writer.writerow(["index", *columns])
    for i, cell in enumerate(index):
        writer.writerow([cell, *(values[(i + k) % len(values)] for k in range(len(columns)))])
    return out.getvalue()


STRUCTURED_LABELS = st.builds(
    labels_file,
    columns=st.lists(HOSTILE.filter(lambda s: len(s) < 500), min_size=1, max_size=3),
    values=st.lists(HOSTILE.filter(lambda s: len(s) < 500), min_size=1, max_size=4),
    index=st.one_of(st.just(DEMO_OBS), st.just(DEMO_OBS[::-1]), st.just(DEMO_OBS[:-1]), st.just(DEMO_OBS * 2)),
    quote_all=st.booleans(),
)
GARBAGE = st.one_of(st.binary(max_size=2_000), st.text(TEXT, max_size=2_000).map(str.encode))


@FUZZ
@given(content=st.one_of(STRUCTURED_LABELS.map(str.encode), GARBAGE))
def test_previous_annotations_files_are_used_or_refused_clearly(tmp_path_factory, content):
    job = Job(tmp_path_factory.mktemp("labels"), "x")
    previous = job.job / "previous.csv"
    previous.write_bytes(content)
    before = tree(job.root)
    proc = job.run("check", str(DEMO), "--previous-annotations", str(previous), "--report", "report.md")
    assert_clean_outcome(proc)
    if proc.returncode == 2:
        assert "previous annotations" in proc.stderr
    else:  # accepted: no categories (an empty file), or this dataset's cells with usable names
        labels = read_labels(previous)
        assert len(labels.columns) == 0 or [str(i) for i in labels.index] == DEMO_OBS
        assert not set(map(str, labels.columns)) & DEMO_OBS_COLUMNS
    assert_nothing_escaped(job, before, {"report.md"})


def gene_sets_file(rows: list[tuple[str, str, str, str]], header: bool) -> str:
    out = io.StringIO()
    out.write("# Gene sets by a fuzzer\n# Input data file was pbmc_demo.h5ad\n")
    writer = csv.writer(out)
    if header:
        writer.writerow(["gene_set_name", "gene_set_description", "gene_symbol", "gene_description"])
    writer.writerows(rows)
    return out.getvalue()


SHORT = HOSTILE.filter(lambda s: len(s) < 300)
STRUCTURED_GENE_SETS = st.builds(
    gene_sets_file,
    rows=st.lists(st.tuples(SHORT, SHORT, SHORT, SHORT), max_size=6),
    header=st.booleans(),
)


@FUZZ
@given(content=st.one_of(STRUCTURED_GENE_SETS.map(str.encode), GARBAGE))
def test_previous_gene_sets_files_are_used_or_refused_clearly(tmp_path_factory, content):
    job = Job(tmp_path_factory.mktemp("genesets"), "x")
    previous = job.job / "previous_gene_sets.csv"
    previous.write_bytes(content)
    before = tree(job.root)
    proc = job.run("check", str(DEMO), "--previous-gene-sets", str(previous), "--report", "report.md")
    assert_clean_outcome(proc)
    if proc.returncode == 2:
        assert "previous gene sets" in proc.stderr
    assert_nothing_escaped(job, before, {"report.md"})


# --- the served page ------------------------------------------------------------------------

HOSTILE_TITLE = "</title><script>alert('t')</script> $(touch PWNED) `id` \"q\" 'q' ../../x"
HOSTILE_CATEGORIES = ['cat "quoted"', "<img src=x onerror=alert(1)>", "$(touch PWNED)", "type #1"]
HOSTILE_LABELS = ["a,b", 'say "hi"', "x #y", "<b>bold</b>", "`id`", "multi\nline", "#lead", "=1+1"]


def test_hostile_title_and_labels_are_data_not_markup(runtime, tmp_path):
    previous = tmp_path / "previous.csv"
    n = len(DEMO_OBS)
    previous.write_text(labels_file(HOSTILE_CATEGORIES, HOSTILE_LABELS, DEMO_OBS, quote_all=True))
    job = runtime(DEMO, f"--title={HOSTILE_TITLE}", "--previous-annotations", str(previous))
    client = job.client

    page = client.get("")
    assert page.ok and page.headers["Content-Type"].startswith("text/html")
    for marker in ("alert(", "onerror", "PWNED", "`id`"):
        assert marker not in page.text, f"{marker!r} reflected into index.html"
    config = client.get("api/v0.2/config")
    assert config.headers["Content-Type"].startswith("application/json")
    assert config.headers.get("X-Content-Type-Options") == "nosniff"
    assert HOSTILE_TITLE in json.dumps(config.json(), ensure_ascii=False) or HOSTILE_TITLE in json.loads(
        config.text
    ).get("config", {}).get("displayNames", {}).get("dataset", "")
    status = client.get("galaxy/status")
    assert status.headers["Content-Type"].startswith("application/json") and status.json()["title"] == HOSTILE_TITLE

    # The categories resume verbatim, as data.
    assert client.user_categories() == HOSTILE_CATEGORIES
    # A save of hostile labels lands in the Galaxy output and reads back exactly (cellxgene's reader).
    labels = {
        c: [HOSTILE_LABELS[(i + k) % len(HOSTILE_LABELS)] for i in range(n)]
        for k, c in enumerate(reversed(HOSTILE_CATEGORIES))
    }
    assert client.put_labels(labels).ok
    saved = read_labels(job.annotations)
    assert {str(c): [str(v) for v in saved[c]] for c in saved.columns} == labels
    assert [str(i) for i in saved.index] == DEMO_OBS

    # Gene-set names the UI itself allows (it permits ! " # $ % ' ( ) * + , - . / : ; < = > ? @ ] ^ _ ` | ~).
    gene_sets = [
        {
            "geneset_name": name,
            "geneset_description": "d <b>",
            "genes": [{"gene_symbol": "CD3D", "gene_description": ""}],
        }
        for name in ("#1 markers", "<script>x</script>", 'a,b "c"', "$(id)")
    ]
    assert client.put_gene_sets(gene_sets).ok
    names = sorted(g["geneset_name"] for g in gene_sets)
    assert sorted(read_gene_sets(job.gene_sets)) == names
    # Resuming from those outputs gives the user back every category and gene set, verbatim.
    resumed = runtime(DEMO, "--previous-annotations", str(job.annotations), "--previous-gene-sets", str(job.gene_sets))
    assert sorted(g["geneset_name"] for g in resumed.client.get_gene_sets()) == names
    assert sorted(resumed.client.user_categories()) == sorted(labels)
    assert not list(job.job_dir.parent.rglob("PWNED"))


def test_a_multi_line_title_cannot_inject_lines_into_the_saved_csv(runtime):
    # The tool form's text box is one line, but Galaxy's API and the title file accept any text.
    title = "evil\nindex,injected\nAAATTCGATGCACA-1,x\r\n# ok"
    job = runtime(DEMO, f"--title={title}")
    n = len(DEMO_OBS)
    labels = {"cell_type": ["T"] * n}
    assert job.client.put_labels(labels).ok
    saved = read_labels(job.annotations)
    assert list(saved.columns) == ["cell_type"] and [str(i) for i in saved.index] == DEMO_OBS
    assert job.client.put_gene_sets([{"geneset_name": "g", "geneset_description": "", "genes": []}]).ok
    assert list(read_gene_sets(job.gene_sets)) == ["g"]
