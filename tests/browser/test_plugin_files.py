"""The visualization plugin agrees with the tool it launches, and installs idempotently.

No browser and no Galaxy: these guard the contract between visualizations/cellxgene and
tools/cellxgene/cellxgene.xml, which the browser test then exercises for real.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "visualizations" / "cellxgene" / "static"
TOOL = ROOT / "tools" / "cellxgene" / "cellxgene.xml"
INSTALL = ROOT / "scripts" / "install-visualization.sh"
SCRIPTS = [PLUGIN / "index.js", ROOT / "tools" / "cellxgene" / "galaxy_cellxgene" / "static" / "export.js"]


def plugin_xml() -> ET.Element:
    return ET.parse(PLUGIN / "cellxgene.xml").getroot()


def test_plugin_targets_h5ad_datasets_and_a_shipped_script() -> None:
    root = plugin_xml()
    assert root.get("name") == "cellxgene"
    sources = root.findall("data_sources/data_source")
    assert [s.findtext("model_class") for s in sources] == ["HistoryDatasetAssociation"]
    assert [(t.get("test_attr"), t.text) for t in sources[0].findall("test")] == [("ext", "h5ad")]
    entry = root.find("entry_point")
    assert entry is not None and entry.get("entry_point_type") == "script"
    for attribute in ("src", "css"):
        assert (PLUGIN / entry.get(attribute, "")).is_file(), attribute


def test_plugin_launches_the_tool_with_inputs_it_has() -> None:
    specs = plugin_xml().find("specs")
    assert specs is not None
    tool = ET.parse(TOOL).getroot()
    assert specs.findtext("tool_id") == tool.get("id")
    assert tool.get("tool_type") == "interactive"
    input_name = specs.findtext("input_name")
    data = tool.find(f"inputs/param[@name='{input_name}']")
    assert data is not None and data.get("type") == "data" and "h5ad" in data.get("format", "")
    for key, value in json.loads(specs.findtext("tool_inputs") or "{}").items():
        conditional, _, param = key.partition("|")
        options = tool.findall(f"inputs/conditional[@name='{conditional}']/param[@name='{param}']/option")
        assert value in [option.get("value") for option in options], key


def test_the_tool_injects_what_export_needs() -> None:
    """Galaxy's URL, the history and the owner; no API key (Export uses the owner's session)."""
    tool = ET.parse(TOOL).getroot()
    names = {env.get("name") for env in tool.findall("environment_variables/environment_variable")}
    assert {"GALAXY_URL", "GALAXY_HISTORY_ID", "GALAXY_CELLXGENE_OWNER"} <= names
    assert "GALAXY_API_KEY" not in names


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_scripts_parse(script: Path) -> None:
    node = shutil.which("node")
    assert node, "node is needed (it also runs gx-it-proxy)"
    # index.js is an ES module (Galaxy loads it with type="module"); export.js a classic script.
    if script.name == "index.js":
        result = subprocess.run(
            [node, "--input-type=module", "--check"],
            input=script.read_text(),
            text=True,
            capture_output=True,
            check=False,
        )
    else:
        result = subprocess.run([node, "--check", str(script)], text=True, capture_output=True, check=False)
    assert result.returncode == 0, result.stderr


def test_install_script_is_idempotent(tmp_path: Path) -> None:
    static = tmp_path / "static"
    static.mkdir()
    runs = [
        subprocess.run(
            ["bash", str(INSTALL), "--static-dir", str(static), "--quiet"], capture_output=True, text=True, check=False
        )
        for _ in range(2)
    ]
    for run in runs:
        assert run.returncode == 0, run.stderr
        assert run.stdout.strip() == str(static / "plugins" / "visualizations")
    installed = static / "plugins" / "visualizations" / "cellxgene"
    assert sorted(p.name for p in (installed / "static").iterdir()) == sorted(p.name for p in PLUGIN.iterdir())
    # Galaxy 24.2 looks for the plugin's XML in config/.
    assert (installed / "config" / "cellxgene.xml").read_bytes() == (PLUGIN / "cellxgene.xml").read_bytes()
    # Nothing staged or left over beside the plugin after a rerun.
    assert [p.name for p in (static / "plugins" / "visualizations").iterdir()] == ["cellxgene"]
