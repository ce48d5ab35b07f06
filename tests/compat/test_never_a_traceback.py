"""A fault in the runtime's own reader ends in one line that names the part being read, never a traceback.

The reader is broken on purpose (its column-value function raises an error no input problem
raises): this is the only way to produce a bug here, and exactly what a future anndata layout
the reader has never seen would look like from outside.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from galaxy_cellxgene import frames
from galaxy_cellxgene.cli import main
from galaxy_cellxgene.exit_codes import EXIT_BUG, EXIT_INPUT
from support.compat import CORPUS

NEWEST = CORPUS / "anndata-0.13_nullable_string.h5ad"


@pytest.fixture
def broken_reader(monkeypatch: pytest.MonkeyPatch) -> None:
    real = frames.read_values

    def broken(node, *args, **kwargs):
        real(node, *args, **kwargs)  # records the part being read, as the real reader does
        raise ZeroDivisionError("deliberately broken reader")

    monkeypatch.setattr(frames, "read_values", broken)


def _labels(tmp_path: Path) -> Path:
    import h5py

    with h5py.File(NEWEST) as f:
        names = f["obs"]["_index"]["values"].asstr()[()]
    path = tmp_path / "labels.csv"
    path.write_text("# a\n# b\nindex,mine\n" + "".join(f"{n},x\n" for n in names))
    return path


def commands(tmp_path: Path) -> dict[str, list[str]]:
    out = tmp_path / "out"
    return {
        "check": ["check", str(NEWEST)],
        "view": [
            "view",
            str(NEWEST),
            "--annotations-out",
            str(out / "a.csv"),
            "--gene-sets-out",
            str(out / "g.csv"),
            "--work-dir",
            str(tmp_path / "work"),
            "--register",
            "never",
        ],
        "merge": ["merge", str(NEWEST), "--annotations", str(_labels(tmp_path)), "--output", str(out / "m.h5ad")],
    }


@pytest.mark.parametrize("command", ["check", "view", "merge"])
def test_a_broken_reader_ends_in_one_line_naming_the_part(
    command: str, broken_reader: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "out").mkdir()
    code = main(commands(tmp_path)[command])
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert code == EXIT_BUG != EXIT_INPUT, captured.err
    assert "Traceback" not in captured.err + captured.out
    assert len(lines) == 1, lines
    line = lines[0]
    # The part: an obs/var element (view's quick check reads var first), inside the h5ad.
    assert line.startswith(f"ERROR: internal error in '{command}' while reading /"), line
    part = line.split(" while reading ", 1)[1].split(" of the input ", 1)[0]
    assert part.split("/")[1] in ("obs", "var"), part
    assert "ZeroDivisionError: deliberately broken reader" in line
    assert "please report it" in line


def test_the_same_commands_succeed_with_the_real_reader(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The failure above comes from the broken reader, not from the commands or the file.
    (tmp_path / "out").mkdir()
    assert main(commands(tmp_path)["check"]) == 0
    assert main(commands(tmp_path)["merge"]) == 0
    assert "Traceback" not in capsys.readouterr().err


def test_view_many_lists_the_internal_error_for_that_dataset(
    broken_reader: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # view-many keeps one dataset's failure from ending the session: it lists the dataset with
    # the same one line (the part named), and with no dataset left to open it stops without a traceback.
    out = tmp_path / "out"
    code = main(
        ["view-many", "--dataset", f"newest={NEWEST}", "--annotations-dir", str(out / "a"), "--gene-sets-dir",
         str(out / "g"), "--work-dir", str(tmp_path / "work"), "--register", "never"]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == EXIT_INPUT and "Traceback" not in err
    assert "'newest': ERROR: internal error in 'view-many' while reading /" in err  # repr: names are user text
    assert "ZeroDivisionError: deliberately broken reader" in err
