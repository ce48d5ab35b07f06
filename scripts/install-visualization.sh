#!/usr/bin/env bash
# Install the "cellxgene" visualization plugin (visualizations/cellxgene) into a Galaxy.
#
#   scripts/install-visualization.sh [--venv GALAXY_VENV | --static-dir DIR] [--quiet]
#
# Galaxy serves a plugin's files from <static_dir>/plugins/visualizations/<name>/static/ and
# finds plugins in `visualization_plugins_directory` (galaxy.yml, comma-separated, absolute or
# relative to Galaxy's root) plus <root>/static/plugins/visualizations. This copies the plugin
# to <static_dir>/plugins/visualizations/cellxgene and prints that plugins folder on stdout:
# galaxy.yml's `visualization_plugins_directory` must include it. Galaxy reads plugins at start,
# so restart Galaxy after installing.
#
#   --venv DIR        a pip-installed Galaxy (galaxy-web-apps): static_dir is the package's
#                     galaxy/webapps/base/static (the default when galaxy.yml sets none).
#                     Default: ${GALAXY_ROOT:-<repo>/.galaxy}/venv
#   --static-dir DIR  Galaxy's static_dir, when galaxy.yml sets one, or <galaxy>/static in a
#                     source checkout (there Galaxy also scans it: no galaxy.yml change needed)
#
# Idempotent: a rerun replaces the installed copy (staged beside it, then renamed into place).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SOURCE="$REPO/visualizations/cellxgene"
NAME=cellxgene
VENV="${GALAXY_ROOT:-$REPO/.galaxy}/venv"
STATIC_DIR=""
QUIET=0

log() { [[ "$QUIET" == 1 ]] || printf '[install-visualization] %s\n' "$*" >&2; }
die() { printf '[install-visualization] error: %s\n' "$*" >&2; exit 1; }

while [[ $# -gt 0 ]]; do
    case "$1" in
        --venv) VENV="${2:?--venv needs a directory}"; shift 2 ;;
        --static-dir) STATIC_DIR="${2:?--static-dir needs a directory}"; shift 2 ;;
        --quiet) QUIET=1; shift ;;
        -h | --help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
done

[[ -f "$SOURCE/static/$NAME.xml" && -f "$SOURCE/static/index.js" ]] || die "plugin sources missing in $SOURCE"

if [[ -z "$STATIC_DIR" ]]; then
    [[ -x "$VENV/bin/python" ]] || die "no Galaxy venv at $VENV (scripts/galaxy.sh install, or pass --static-dir)"
    STATIC_DIR="$("$VENV/bin/python" -c \
        'import os, galaxy.webapps.base as b; print(os.path.join(os.path.dirname(b.__file__), "static"))')" \
        || die "galaxy.webapps.base does not import from $VENV"
fi
[[ -d "$STATIC_DIR" ]] || die "Galaxy static dir $STATIC_DIR does not exist"

# The plugin XML must parse before it replaces a working copy (Galaxy skips bad plugins silently).
python3 -c 'import sys, xml.etree.ElementTree as ET; ET.parse(sys.argv[1])' "$SOURCE/static/$NAME.xml" \
    || die "$SOURCE/static/$NAME.xml is not well-formed XML"

PLUGINS="$STATIC_DIR/plugins/visualizations"
DEST="$PLUGINS/$NAME"
mkdir -p "$PLUGINS"
STAGE="$(mktemp -d "$PLUGINS/.$NAME.XXXXXX")"
trap 'rm -rf "$STAGE" "${OLD:-}"' EXIT
mkdir -p "$STAGE/static" "$STAGE/config"
cp "$SOURCE"/static/* "$STAGE/static/"
# Galaxy 24.2 finds a plugin by config/<name>.xml, 25 and later by static/<name>.xml.
cp "$SOURCE/static/$NAME.xml" "$STAGE/config/"
chmod -R a+rX "$STAGE"
# Stage beside the destination so the swap is two renames on one file system.
OLD=""
if [[ -e "$DEST" ]]; then
    OLD="$PLUGINS/.$NAME.old.$$"
    mv "$DEST" "$OLD"
fi
mv "$STAGE" "$DEST"
log "installed $NAME into $DEST"
log "galaxy.yml must list $PLUGINS in visualization_plugins_directory; restart Galaxy to load it"
printf '%s\n' "$PLUGINS"
