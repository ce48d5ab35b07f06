"""Pure parts of outputs, serve and app: atomic writes, where to listen, what Galaxy is told."""

from __future__ import annotations

import errno
import json
import os
import stat
import threading
from pathlib import Path

import pytest
from galaxy_cellxgene import exit_codes, outputs, serve
from galaxy_cellxgene.cellxgene_internals import cellxgene_message as _cellxgene_message
from galaxy_cellxgene.durable import atomic_write
from galaxy_cellxgene.serve import Binding, in_container, plan_binding, runtime_json, write_runtime_json

# ---- outputs.atomic_write ----


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def strict_umask():
    # Galaxy jobs often run with umask 077; the output must still be readable by Galaxy's user.
    old = os.umask(0o077)
    yield
    os.umask(old)


def test_atomic_write_content_and_mode(tmp_path: Path, strict_umask) -> None:
    path = tmp_path / "annotations.csv"
    atomic_write(path, "# one\n# two\nindex,ü\r\ncell0,T\n")
    assert path.read_bytes() == "# one\n# two\nindex,ü\r\ncell0,T\n".encode()  # UTF-8, line ends kept
    assert mode(path) == 0o644
    atomic_write(path, "second")
    assert path.read_text() == "second"
    assert mode(path) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["annotations.csv"]


def test_atomic_write_replaces_a_symlink_instead_of_following_it(tmp_path: Path) -> None:
    target = tmp_path / "previous.csv"
    target.write_text("previous work")
    link = tmp_path / "out.csv"
    link.symlink_to(target)
    atomic_write(link, "new")
    assert not link.is_symlink() and link.read_text() == "new"
    assert target.read_text() == "previous work"


class Unwritable:
    """Not text: the write fails after the temporary file exists."""


def test_failing_content_keeps_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "annotations.csv"
    path.write_text("last good save")
    with pytest.raises(TypeError):
        atomic_write(path, Unwritable())  # type: ignore[arg-type]
    assert path.read_text() == "last good save"
    assert [p.name for p in tmp_path.iterdir()] == ["annotations.csv"]


def test_disk_full_mid_write_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "annotations.csv"
    path.write_text("last good save")

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    # The new text is already in the temporary file when fsync fails.
    monkeypatch.setattr(outputs.os, "fsync", full)
    with pytest.raises(OSError, match="No space left"):
        atomic_write(path, "x" * 100_000)
    assert path.read_text() == "last good save"
    assert [p.name for p in tmp_path.iterdir()] == ["annotations.csv"]


def test_failed_rename_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "annotations.csv"
    path.write_text("last good save")

    def refuse(src, dst) -> None:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(outputs.os, "replace", refuse)
    with pytest.raises(PermissionError):
        atomic_write(path, "new save")
    assert path.read_text() == "last good save"
    assert [p.name for p in tmp_path.iterdir()] == ["annotations.csv"]


def test_readers_never_see_a_partial_file(tmp_path: Path) -> None:
    # What Galaxy collects after a Stop is whatever a reader sees at that instant.
    path = tmp_path / "annotations.csv"
    versions = [f"version {i}\n" + "x" * 200_000 for i in range(40)]
    atomic_write(path, versions[0])
    seen: set[str] = set()
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            seen.add(path.read_text())

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for text in versions[1:]:
            atomic_write(path, text)
    finally:
        done.set()
        reader.join()
    assert seen <= set(versions)
    assert len(seen) >= 1


# ---- serve: where to listen and what to register ----


@pytest.mark.parametrize("flag", ["1", "true", "TRUE", "yes", " 1 "])
def test_in_container_when_the_image_says_so(flag: str) -> None:
    assert in_container({"GALAXY_CELLXGENE_IN_CONTAINER": flag})


@pytest.mark.parametrize("env", [{}, {"GALAXY_CELLXGENE_IN_CONTAINER": ""}, {"GALAXY_CELLXGENE_IN_CONTAINER": "0"}])
def test_not_in_container_without_the_flag(env: dict[str, str]) -> None:
    assert not in_container(env)


def test_marker_files_are_not_trusted(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # This sandbox has /.dockerenv without running jobs in containers: pretend every file exists.
    monkeypatch.setattr(os.path, "exists", lambda path: True)
    monkeypatch.setattr(os.path, "isfile", lambda path: True)
    monkeypatch.setattr(Path, "exists", lambda self, **kwargs: True)
    monkeypatch.setattr(Path, "is_file", lambda self, **kwargs: True)
    assert not in_container({"container": "podman", "KUBERNETES_SERVICE_HOST": "10.0.0.1"})
    assert not in_container(os.environ | {"GALAXY_CELLXGENE_IN_CONTAINER": "no"})


def test_outside_a_container_a_free_port_is_registered() -> None:
    binding = plan_binding("auto", 8888, None, {}, container=False)
    assert binding == Binding(host="127.0.0.1", port=0, advertise_host="127.0.0.1", register=True)


def test_outside_a_container_the_admin_chooses_the_host() -> None:
    # A proxy on another machine must reach us on an address the admin configured.
    binding = plan_binding("auto", 8888, None, {"GALAXY_CELLXGENE_HOST": "10.1.2.3"}, container=False)
    assert binding == Binding(host="10.1.2.3", port=0, advertise_host="10.1.2.3", register=True)


def test_inside_a_container_the_declared_port_on_all_interfaces() -> None:
    binding = plan_binding("auto", 8888, None, {}, container=True)
    assert binding.host == "0.0.0.0"
    assert binding.port == 8888
    assert not binding.register


def test_register_never_outside_a_container() -> None:
    binding = plan_binding("never", 9000, None, {}, container=False)
    assert binding == Binding(host="127.0.0.1", port=9000, advertise_host="127.0.0.1", register=False)


def test_register_always_inside_a_container() -> None:
    binding = plan_binding("always", 8888, None, {}, container=True)
    assert binding.register and binding.port == 0


def test_explicit_host_wins() -> None:
    assert plan_binding("never", 8888, "192.168.0.5", {}, container=True).host == "192.168.0.5"
    registered = plan_binding("auto", 8888, "192.168.0.5", {}, container=False)
    assert (registered.host, registered.advertise_host) == ("192.168.0.5", "192.168.0.5")


@pytest.mark.parametrize("register", ["auto", "always", "never"])
@pytest.mark.parametrize("container", [False, True])
@pytest.mark.parametrize("host", [None, "127.0.0.1"])
def test_never_both_a_fixed_port_and_a_registration(register: str, container: bool, host: str | None) -> None:
    binding = plan_binding(register, 8888, host, {}, container)
    assert binding.register == (register == "always" or (register == "auto" and not container))
    # Registered: the OS picks the port and the JSON tells Galaxy; else Galaxy maps the declared one.
    assert binding.port == (0 if binding.register else 8888)


def test_runtime_json_shape() -> None:
    content = runtime_json(8888, "127.0.0.1", 45123)
    assert content == {"8888": {"tool_port": 8888, "host": "127.0.0.1", "port": 45123, "protocol": "tcp"}}
    entry = content["8888"]
    assert type(entry["tool_port"]) is int and type(entry["port"]) is int and type(entry["host"]) is str
    assert json.loads(json.dumps(content)) == content


def test_write_runtime_json_is_complete_and_readable(tmp_path: Path, strict_umask) -> None:
    path = tmp_path / "container_runtime.json"
    write_runtime_json(path, runtime_json(8888, "10.0.0.7", 40001))
    assert json.loads(path.read_text()) == runtime_json(8888, "10.0.0.7", 40001)
    assert mode(path) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["container_runtime.json"]


def test_serve_exit_code_after_sigterm() -> None:
    assert serve.EXIT_TERMINATED == exit_codes.EXIT_TERMINATED == 143  # the contract's exit code after Galaxy's Stop


# ---- app: cellxgene's messages, cleaned for users ----


def test_cellxgene_placeholder_is_filled() -> None:
    # cellxgene 1.3.0's duplicate-names KeyError carries a literal, unformatted `{ax_name}`.
    err = KeyError("Values in {ax_name}_names must be unique. Please prepare data to contain unique values.")
    assert (
        _cellxgene_message(err)
        == "Values in obs/var_names must be unique. Please prepare data to contain unique values."
    )


def test_cellxgene_message_attribute_is_preferred() -> None:
    class CellxgeneError(Exception):
        def __init__(self, message: str) -> None:
            super().__init__("wrapped")
            self.message = message

    assert _cellxgene_message(CellxgeneError("No valid layout data.")) == "No valid layout data."


def test_cellxgene_message_without_args() -> None:
    assert _cellxgene_message(RuntimeError()) == ""
    assert _cellxgene_message(KeyError("X_umap")) == "X_umap"  # not "'X_umap'" as str(KeyError) gives
