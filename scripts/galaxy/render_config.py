"""What scripts/galaxy.sh's Galaxy runs with: galaxy.yml, tool_conf.xml and nginx.conf rendered from
the templates beside this file, the tools' dependencies (an env.sh per requirement, resolved to the
runtime venv), and the interactive tools' session map.

Paths and ports come from the environment scripts/galaxy.sh exports (GX_*), so the shell
script stays the one place where they are decided.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sqlite3
import sys
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path

# galaxy.sh puts testkit/src on PYTHONPATH: Galaxy's venv has requests, which is all this needs.

HERE = Path(__file__).resolve().parent

# Requirements an env.sh is made for even before (or beside) the tool XML: the runtime's own
# imports. Versions come from requirements/runtime.txt; "default" links serve versionless ones.
BASELINE_PACKAGES = ("cellxgene", "anndata", "waitress", "h5py", "pandas", "numpy", "scipy")


def env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise SystemExit(f"{name} is not set: run this through scripts/galaxy.sh")
    return value


def repo() -> Path:
    return Path(env("GX_REPO"))


def tool_files() -> list[Path]:
    tools = repo() / "tools" / "cellxgene"
    return sorted(p for p in tools.glob("*.xml") if p.name != "macros.xml")


DESTINATIONS = ("local", "container", "pulsar", "by-user")
# by-user: the user whose cellxgene jobs go to each destination other than `local`
# (scripts/galaxy/job_rules/cellxgene_job_rules/by_user.py); the tests act as these users.
DESTINATION_USERS = {"container": "container@example.org", "pulsar": "pulsar@example.org"}
BY_USER_ENVIRONMENT = "cellxgene_by_user"


def destination() -> str:
    """Where the cellxgene tools run: `local` (no container), `container` (Galaxy's Docker path),
    `pulsar` (a Pulsar REST server, scripts/pulsar.sh, running the same image) or `by-user`
    (each by its user, DESTINATION_USERS: one Galaxy for every destination the tests cover)."""
    value = os.environ.get("GX_DESTINATION") or "local"
    if value not in DESTINATIONS:
        raise SystemExit(f"GALAXY_CELLXGENE_DESTINATION={value!r}: use one of {', '.join(DESTINATIONS)}")
    return value


def tool_ids() -> list[str]:
    return [ET.parse(path).getroot().get("id", "") for path in tool_files()]


def tool_destinations() -> str:
    """The job_config `tools:` list (YAML flow style) sending every cellxgene tool to the destination."""
    if destination() == "local":
        return "[]"
    target = BY_USER_ENVIRONMENT if destination() == "by-user" else destination()
    return "[" + ", ".join(f"{{id: {tool_id}, environment: {target}}}" for tool_id in tool_ids()) + "]"


def uses_pulsar() -> bool:
    return destination() in ("pulsar", "by-user")


def pulsar_job_conf() -> tuple[str, str]:
    """The `pulsar_rest` runner and the `pulsar` environment (galaxy.yml's job_config), only when
    some cellxgene job can go to Pulsar: other Galaxies do not load the runner at all."""
    if not uses_pulsar():
        return "", ""
    state = Path(env("GX_PULSAR_STATE"))
    token = (state / "private_token").read_text().strip()
    runner = "      pulsar_rest:\n        load: galaxy.jobs.runners.pulsar:PulsarRESTJobRunner\n"
    environment = PULSAR_ENVIRONMENT.format(
        url=env("GX_PULSAR_URL"),
        token=token,
        docker_cmd=os.environ.get("GX_DOCKER_CMD") or "podman",
        staging=state / "staging",
        galaxy_port=env("GALAXY_PORT"),
        monitor=Path(sys.executable).parent / "galaxy-container-monitor",
    )
    if destination() == "by-user":
        environment += BY_USER.format(
            name=BY_USER_ENVIRONMENT,
            container_user=DESTINATION_USERS["container"],
            pulsar_user=DESTINATION_USERS["pulsar"],
        )
    return runner, environment


# Rendered after PULSAR_ENVIRONMENT for GALAXY_CELLXGENE_DESTINATION=by-user.
BY_USER = """\
        # Each cellxgene job goes where its user asks (job_rules/cellxgene_job_rules/by_user.py):
        # one Galaxy serves the tests of every destination.
        {name}:
          runner: dynamic
          type: python
          rules_module: cellxgene_job_rules
          function: cellxgene_by_user
          container_user: {container_user}
          pulsar_user: {pulsar_user}
"""


# Rendered into galaxy.yml under job_config.execution.environments (docs/scaling.md, "Pulsar").
PULSAR_ENVIRONMENT = """\
        # The cellxgene tools on a Pulsar REST server (scripts/pulsar.sh) that shares no file
        # system with Galaxy: inputs and tool files are uploaded into its staging directory,
        # outputs downloaded when the job ends. The tool runs in the project's image there.
        pulsar:
          runner: pulsar_rest
          url: {url}
          private_token: {token}
          default_file_action: transfer
          docker_enabled: true
          require_container: true
          docker_cmd: {docker_cmd}
          # The node is this machine, so loopback is reachable from gx-it-proxy. On a real node
          # leave this out (the monitor replaces 0.0.0.0 with the node's IP).
          docker_host_port_cmd: 'echo 127.0.0.1:'
          # scripts/pulsar.sh stop ends containers a Stop left running (Pulsar SIGKILLs the job
          # shell, whose own `docker kill` then never runs).
          docker_run_extra_arguments: --label org.galaxy-cellxgene.pulsar-staging={staging}
          # The runtime's signal that its outputs are Pulsar's staged copies, not Galaxy's files:
          # it then also pushes saves into the history (remote_save.py).
          docker_env_GALAXY_CELLXGENE_OUTPUTS: staged
          # The runtime pushes through Galaxy's API, so the container must reach Galaxy. Here Galaxy
          # listens on loopback only: slirp4netns lets the container reach the host's loopback
          # as 10.0.2.2 (published ports work as with the default bridge), and the tool's
          # GALAXY_URL is rewritten to that address. A real node reaches galaxy_infrastructure_url
          # directly and needs neither line.
          docker_net: slirp4netns:allow_host_loopback=true
          docker_env_GALAXY_URL: http://10.0.2.2:{galaxy_port}/
          # The node cannot write Galaxy's job directory: the monitor POSTs the published port
          # to Galaxy's API (/api/jobs/{{id}}/ports), which configures the entry point.
          container_monitor_result: callback
          # pulsar-app does not ship the monitor; on this machine Galaxy's own copy serves.
          container_monitor_command: {monitor}
"""


def core_cellxgene(galaxy_dir: Path) -> list[Path]:
    """Galaxy core's own cellxgene interactive tool (1.1.1, same id), when GALAXY_CELLXGENE_CORE_TOOL=1."""
    if os.environ.get("GX_CORE_TOOL") != "1":
        return []
    found = sorted((galaxy_dir / "tools" / "bundled" / "interactive").glob("interactivetool_cellxgene_1.*.xml"))
    if not found:
        raise SystemExit(f"GALAXY_CELLXGENE_CORE_TOOL=1 but this Galaxy ships no cellxgene tool in {galaxy_dir}")
    return found


def write_tool_sheds(target: Path) -> None:
    sheds = [("Galaxy Main Tool Shed", "https://toolshed.g2.bx.psu.edu/")]
    local = os.environ.get("GX_TOOLSHED_URL")
    if local:
        sheds.insert(0, ("Local Tool Shed", local.rstrip("/") + "/"))
    lines = ['<?xml version="1.0"?>', "<tool_sheds>"]
    lines += [f'    <tool_shed name="{name}" url="{url}"/>' for name, url in sheds]
    target.write_text("\n".join([*lines, "</tool_sheds>", ""]))


def render() -> None:
    # find_spec, not an import: importing galaxy.tools costs seconds at every start.
    galaxy_spec = importlib.util.find_spec("galaxy")
    assert galaxy_spec is not None and galaxy_spec.submodule_search_locations
    galaxy_dir = Path(next(iter(galaxy_spec.submodule_search_locations)))
    run = Path(env("GX_RUN"))
    values = {
        "REPO": str(repo()),
        "DATA": env("GX_DATA"),
        "RUN": str(run),
        "DEPS": env("GX_DEPS"),
        "ADMIN_KEY": env("GX_ADMIN_KEY"),
        "GALAXY_PORT": env("GALAXY_PORT"),
        "GALAXY_WEB_PORT": env("GALAXY_WEB_PORT"),
        "GXIT_PROXY_PORT": env("GXIT_PROXY_PORT"),
        "GALAXY_BUNDLED_TOOLS": str(galaxy_dir / "tools" / "bundled"),
        "VIZ_PLUGINS": str(galaxy_dir / "webapps" / "base" / "static" / "plugins" / "visualizations"),
        "STATE": env("GX_STATE"),
        "VENV_BIN": str(Path(sys.executable).parent),
        "DOCKER_CMD": os.environ.get("GX_DOCKER_CMD") or "podman",
        "TOOL_DESTINATIONS": tool_destinations(),
        "PULSAR_RUNNER": pulsar_job_conf()[0],
        "PULSAR_ENVIRONMENT": pulsar_job_conf()[1],
        "TOOLS_SECTION": "\n".join(f'    <tool file="{p}" />' for p in tool_files() + core_cellxgene(galaxy_dir)),
    }
    write_tool_sheds(run / "tool_sheds_conf.xml")
    for template in ("galaxy.yml", "tool_conf.xml", "nginx.conf"):
        text = (HERE / f"{template}.in").read_text()
        for key, value in values.items():
            text = text.replace(f"@{key}@", value)
        target = run / template
        tmp = target.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, target)
    if not tool_files():
        print("warning: no tool XML in tools/cellxgene yet; Galaxy starts with the upload tool only")


def runtime_pins() -> dict[str, str]:
    pins: dict[str, str] = {}
    path = repo() / "requirements" / "runtime.txt"
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[name.strip().lower()] = version.strip()
    return pins


def declared_requirements() -> set[tuple[str, str | None]]:
    """Package requirements of every tool, parsed by Galaxy itself (macros and tokens expanded)."""
    # Some of Galaxy's dependencies log at DEBUG and warn on import: keep the install quiet.
    logging.disable(logging.INFO)
    warnings.simplefilter("ignore")
    from galaxy.tool_util.parser import get_tool_source

    found: set[tuple[str, str | None]] = set()
    for path in tool_files():
        source = get_tool_source(str(path))
        # Galaxy 25 and later: parse_requirements(); 24.2: parse_requirements_and_containers().
        parse = getattr(source, "parse_requirements", None) or source.parse_requirements_and_containers
        requirements = parse()[0]
        for requirement in requirements:
            if requirement.type == "package":
                found.add((requirement.name, requirement.version))
    return found


def deps() -> None:
    deps_dir = Path(env("GX_DEPS"))
    venv_bin = repo() / ".venv" / "bin"
    pins = runtime_pins()
    wanted = declared_requirements()
    declared_names = {name for name, _ in wanted}
    for name in BASELINE_PACKAGES:
        if name not in declared_names:
            wanted.add((name, pins.get(name)))
    # The job's shell sources env.sh; everything the tool imports lives in the runtime venv.
    script = (
        "# Made by scripts/galaxy.sh: the requirement resolves to the repository's runtime venv.\n"
        f'PATH="{venv_bin}:$PATH"\n'
        "export PATH\n"
        "# Galaxy's own interpreter must not leak its site-packages into the tool's python.\n"
        "unset PYTHONPATH PYTHONHOME\n"
    )
    mismatches = []
    for name, version in sorted(wanted, key=lambda item: (item[0], item[1] or "")):
        folder = deps_dir / name / (version or "default")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "env.sh").write_text(script)
        default = deps_dir / name / "default"
        if version and not default.exists():
            default.symlink_to(version)
        pinned = pins.get(name.lower())
        if version and pinned and pinned != version:
            mismatches.append(f"{name}: tool asks {version}, requirements/runtime.txt pins {pinned}")
        print(f"  {name} {version or '(versionless)'} -> {venv_bin}")
    for line in mismatches:
        print(f"warning: {line}")


def sessions() -> None:
    # Galaxy creates this table lazily on the first entry point; until then a Stop
    # (DELETE /api/entry_points/{id}) fails with a 500, so create it up front. Same columns
    # as Galaxy's own gxitproxy table and gx-it-proxy's createdb.
    path = Path(env("GX_DATA")) / "interactivetools_map.sqlite"
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as connection:
        connection.execute(
            "CREATE TABLE IF NOT EXISTS gxitproxy (key VARCHAR(16) NOT NULL, key_type TEXT NOT NULL,"
            " token VARCHAR(32), host TEXT, port INTEGER, info TEXT, PRIMARY KEY (key, key_type))"
        )
