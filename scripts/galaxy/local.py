"""Helpers behind scripts/galaxy.sh; run with the Galaxy venv's python.

    local.py render     write .galaxy/run/{galaxy.yml,tool_conf.xml,nginx.conf} from the templates
    local.py deps       write <tool_dependency_dir>/<name>/<version>/env.sh for every requirement
    local.py sessions   create the gxitproxy table in the interactive tools map
    local.py bootstrap  wait for Galaxy, make the users, their keys and the demo history

render_config.py does the first three, bootstrap.py the last.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bootstrap import bootstrap
from render_config import deps, render, sessions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("render")
    sub.add_parser("deps")
    sub.add_parser("sessions")
    boot = sub.add_parser("bootstrap")
    boot.add_argument("--demo", type=Path, help="h5ad to upload into the demo history")
    boot.add_argument("--galaxy-pid", type=int, help="give up early if this process dies")
    args = parser.parse_args()
    if args.command == "render":
        render()
    elif args.command == "deps":
        deps()
    elif args.command == "sessions":
        sessions()
    else:
        bootstrap(args.demo, args.galaxy_pid)


if __name__ == "__main__":
    main()
