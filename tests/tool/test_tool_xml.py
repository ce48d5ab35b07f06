"""The tool XMLs: planemo lint and shed_lint clean, and consistent with the runtime they call.

planemo runs from its own venv (scripts/planemo.sh installs it on first use, ~1 min).
Two planemo checks need hosts this project's CI cannot reach; they are skipped only when
those hosts do not resolve, and run otherwise:
- BioToolsValid looks the bio.tools xref up at https://bio.tools/api/;
- shed_lint's version_bumped compares versions with the main Tool Shed.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import tarfile
import xml.etree.ElementTree as ET
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOL_DIR = ROOT / "tools" / "cellxgene"
PLANEMO = ROOT / "scripts" / "planemo.sh"
TOOL_XMLS = [TOOL_DIR / "cellxgene.xml", TOOL_DIR / "cellxgene_merge.xml"]
MACROS = TOOL_DIR / "macros.xml"


@cache
def resolves(host: str) -> bool:
    try:
        socket.getaddrinfo(host, 443)
    except OSError:
        return False
    return True


def planemo(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(PLANEMO), *args], cwd=cwd, capture_output=True, text=True, timeout=600)


def lint_skips(*more: str) -> list[str]:
    # planemo keeps only the last --skip given: pass one comma-separated list.
    skips = [*more] if resolves("bio.tools") else ["BioToolsValid", *more]
    return ["--skip", ",".join(skips)] if skips else []


def tokens() -> dict[str, str]:
    root = ET.parse(MACROS).getroot()
    return {t.get("name").strip("@"): (t.text or "").strip() for t in root.iter("token")}


def runtime_pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements" / "runtime.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==", 1)
            pins[name.strip().lower()] = version.strip()
    return pins


@pytest.fixture(scope="module")
def planemo_ready() -> None:
    result = planemo("--version")
    assert result.returncode == 0, result.stderr
    assert "0.75.47" in result.stdout


@pytest.mark.parametrize("xml", TOOL_XMLS, ids=lambda p: p.name)
def test_planemo_lint_is_clean(xml: Path, planemo_ready: None) -> None:
    result = planemo("lint", "--report_level", "all", "--fail_level", "warn", *lint_skips(), str(xml))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert not re.search(r"\.\. (WARNING|ERROR)", output), output


def test_interactive_tool_is_clean_under_every_linter(tmp_path: Path, planemo_ready: None) -> None:
    """Galaxy's linter skips most checks (tests, inputs, outputs, help) for interactive tools.

    Lint a copy that differs only in tool_type, so those checks cover the interactive tool too.
    """
    source = (TOOL_DIR / "cellxgene.xml").read_text()
    assert ' tool_type="interactive"' in source
    (tmp_path / "macros.xml").write_text(MACROS.read_text())
    # The runtime the tools' <required_files> name (the linter checks that the pattern matches).
    shutil.copytree(
        TOOL_DIR / "galaxy_cellxgene", tmp_path / "galaxy_cellxgene", ignore=shutil.ignore_patterns("__pycache__")
    )
    (tmp_path / "cellxgene.xml").write_text(source.replace(' tool_type="interactive"', "", 1))
    result = planemo(
        "lint", "--report_level", "all", "--fail_level", "warn", *lint_skips(), "cellxgene.xml", cwd=tmp_path
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert f"TestsNoValid): {source.count('<test ')} test(s) found" in output, output
    assert not re.search(r"\.\. (WARNING|ERROR)", output), output


def test_planemo_shed_lint_is_clean(planemo_ready: None) -> None:
    shed = [] if resolves("toolshed.g2.bx.psu.edu") else ["version_bumped"]
    result = planemo("shed_lint", "--report_level", "all", "--fail_level", "warn", "--tools", *lint_skips(*shed), ".")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Included files all found" in output, output
    assert not re.search(r"\.\. (WARNING|ERROR)", output), output


def test_shed_repository_holds_tools_runtime_and_test_data(tmp_path: Path, planemo_ready: None) -> None:
    """What the Tool Shed would receive: a flat repository a Galaxy can install and test."""
    # shed_build writes <repository folder>.tar.gz beside the folder: build from a copy in tmp_path.
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copy2(ROOT / ".shed.yml", repo)
    for folder in ("tools", "test-data", "tests", "scripts"):
        shutil.copytree(ROOT / folder, repo / folder, symlinks=True)
    result = planemo("shed_build", ".", cwd=repo)
    assert result.returncode == 0, result.stdout + result.stderr
    with tarfile.open(tmp_path / "repo.tar.gz") as tar:
        names = set(tar.getnames())
    expected = {
        "cellxgene.xml",
        "cellxgene_merge.xml",
        "macros.xml",
        "galaxy_cellxgene/__main__.py",
        "galaxy_cellxgene/cli.py",
        "galaxy_cellxgene/static/finish.js",
        "test-data/pbmc_demo.h5ad",
    }
    assert expected <= names, sorted(expected - names)
    test_data = {f"test-data/{p.name}" for p in (ROOT / "test-data").iterdir() if p.is_file()}
    assert test_data <= names
    assert not [n for n in names if n.startswith("test-data/compat")]  # the corpus stays out of the shed
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc") or n.startswith(("tests/", "scripts/"))]


def test_versions_follow_the_pins() -> None:
    """The XML's requirement versions are the ones the runtime venv and the container are built from."""
    t = tokens()
    pins = runtime_pins()
    assert t["TOOL_VERSION"] == pins["cellxgene"] == "1.3.0"
    root = ET.parse(MACROS).getroot()
    requirements = {r.text: r.get("version") for r in root.iter("requirement")}
    for name, version in requirements.items():
        version = t["TOOL_VERSION"] if version == "@TOOL_VERSION@" else version
        assert pins.get(name.lower()) == version, f"{name}: XML {version}, runtime.txt {pins.get(name.lower())}"
    assert {"cellxgene", "anndata", "h5py", "waitress"} <= set(requirements)
    for xml in TOOL_XMLS:
        tool = ET.parse(xml).getroot()
        assert tool.get("version") == "@TOOL_VERSION@+galaxy@VERSION_SUFFIX@"
        assert tool.get("profile") == "@PROFILE@"
    assert float(t["PROFILE"]) >= 24.2


def test_interactive_entry_point_matches_the_runtime_port() -> None:
    tool = ET.parse(TOOL_DIR / "cellxgene.xml").getroot()
    assert tool.get("id") == "interactive_tool_cellxgene" and tool.get("tool_type") == "interactive"
    entry_points = tool.findall("./entry_points/entry_point")
    assert len(entry_points) == 1
    ep = entry_points[0]
    assert ep.get("requires_domain") == "False" and ep.get("label") == "cellxgene"
    port = ep.findtext("port")
    command = tool.findtext("command") or ""
    assert f"--port {port}" in command
    env = {e.get("name"): e for e in tool.findall("./environment_variables/environment_variable")}
    assert "GALAXY_API_KEY" not in env  # the owner's session serves Export (docs/security.md)
    assert (env["GALAXY_CELLXGENE_OWNER"].text or "").strip() == "$__user_email__"
    assert (env["GALAXY_URL"].text or "").strip() == "$__galaxy_url__"
    assert (env["GALAXY_HISTORY_ID"].text or "").strip() == "$__history_id__"


def test_the_list_tool_has_the_single_viewers_galaxy_environment() -> None:
    """Export to Galaxy, "Add to history now" and the tables sent at Finish need Galaxy's URL and the
    owner's history: each viewer of the list tool gets what the single viewer gets, and its command
    writes the subsets asked for at Finish where its `subsets` collection looks."""

    def environment(xml: str) -> dict[str, tuple[str | None, str]]:
        tool = ET.parse(TOOL_DIR / xml).getroot()
        variables = tool.findall("./environment_variables/environment_variable")
        return {e.get("name"): (e.get("inject"), (e.text or "").strip()) for e in variables}

    assert environment("cellxgene_many.xml") == environment("cellxgene.xml")
    many = ET.parse(TOOL_DIR / "cellxgene_many.xml").getroot()
    command = many.findtext("command") or ""
    assert "--subsets-dir subsets" in command and re.search(r"mkdir -p [^&]*\bsubsets\b", command)
    [subsets] = [c for c in many.iter("collection") if c.get("name") == "subsets"]
    discover = subsets.find("discover_datasets")
    assert discover.get("directory") == "subsets" and discover.get("from_provided_metadata") == "true"
    assert discover.get("format") == "h5ad"


def test_command_passes_only_the_runtime_cli_options() -> None:
    """Every --option the XMLs pass exists in the runtime's argparse parser (no drift)."""
    import argparse

    from galaxy_cellxgene.cli import build_parser

    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    known = {cmd: set(sub._option_string_actions) for cmd, sub in subparsers.choices.items()}
    macros = MACROS.read_text()
    view_options = re.search(r'name="@VIEW_OPTIONS@"><!\[CDATA\[(.*?)\]\]>', macros, re.S).group(1)
    for xml in TOOL_XMLS:
        text = xml.read_text()
        command = re.search(r"<command><!\[CDATA\[(.*?)\]\]></command>", text, re.S).group(1)
        command = command.replace("@VIEW_OPTIONS@", view_options)
        # Options also come from boolean params' truevalue/falsevalue.
        flags = set(re.findall(r"(--[a-z][a-z-]+)", command))
        flags |= set(re.findall(r'(?:truevalue|falsevalue)="(--[a-z-]+)"', text + macros))
        for block in re.split(r"@RUNTIME@ ", command)[1:]:
            sub = block.split()[0]
            block_flags = {f for f in re.findall(r"(--[a-z][a-z-]+)", block)}
            assert block_flags <= known[sub], f"{xml.name} {sub}: unknown {sorted(block_flags - known[sub])}"
        all_known = set().union(*known.values())
        assert flags <= all_known, f"{xml.name}: unknown {sorted(flags - all_known)}"


def test_every_test_data_file_a_tool_test_names_exists() -> None:
    for xml in TOOL_XMLS:
        for param in ET.parse(xml).getroot().iter("param"):
            value = param.get("value", "")
            if re.search(r"\.(h5ad|csv)$", value):
                assert (ROOT / "test-data" / value).is_file(), f"{xml.name}: {value}"


def test_no_value_can_become_an_option() -> None:
    """A dataset named `-x` or a layer `--help` stays a value: every option takes its value as
    `--opt='value'`, and the title (a dataset name by default) comes from a file."""
    for xml in [*TOOL_XMLS, TOOL_DIR / "cellxgene_many.xml", MACROS]:
        text = xml.read_text()
        loose = re.findall(r"--[a-z][a-z-]+\s+['\"]?\$", text)
        assert loose == [], f"{xml.name}: {loose}"
        assert "$(cat" not in text, f"{xml.name}: the title must come through --title-file"
