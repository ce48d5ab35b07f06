#!/usr/bin/env bash
# Run the tool's image on one h5ad, standalone, the way Galaxy would run the tool:
# the input mounted read-only, an output folder mounted read-write, a non-root user,
# the declared port 8888 published on this host's loopback.
#   scripts/run-image.sh INPUT.h5ad [OUTDIR] [-- extra `view` options]
#   HOST_PORT=9000 scripts/run-image.sh test-data/pbmc_demo.h5ad /tmp/out -- --title Demo
# Open the printed URL; labels and gene sets land in OUTDIR on every save; the viewer's
# "Finish" (or Ctrl-C) writes OUTDIR/merged.h5ad and exits 0; `podman stop NAME` ends it
# at once (143), the outputs holding the last save.
# Environment: IMAGE (default: the tag scripts/build-image.sh builds), HOST_PORT (8888),
# NAME (container name, default cellxgene-<port>), ENGINE (podman; docker works too).
set -euo pipefail

IMAGE="${IMAGE:-quay.io/galaxy-cellxgene/cellxgene-galaxy:1.3.0--galaxy0}"
HOST_PORT="${HOST_PORT:-8888}"
NAME="${NAME:-cellxgene-$HOST_PORT}"
ENGINE="${ENGINE:-podman}"

usage() {
    sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}
[[ $# -ge 1 && "$1" != -h && "$1" != --help ]] || usage
input="$(readlink -f "$1")"
shift
[[ -f "$input" ]] || { echo "run-image: no such file: $input" >&2; exit 2; }
outdir="./cellxgene-out"
if [[ $# -ge 1 && "$1" != -- ]]; then
    outdir="$1"
    shift
fi
[[ $# -ge 1 && "$1" == -- ]] && shift

created=0
[[ -d "$outdir" ]] || { mkdir -p "$outdir"; created=1; }
outdir="$(readlink -f "$outdir")"

# The container writes as the owner of the output folder, as Galaxy's --user does; a
# root-owned folder this script just made is handed to the image's own user instead,
# so the server never runs as root.
owner="$(stat -c %u:%g "$outdir")"
if [[ "${owner%%:*}" == 0 ]]; then
    if [[ "$created" == 1 ]]; then
        chown 1000:1000 "$outdir"
        owner=1000:1000
    else
        echo "run-image: $outdir is owned by root; give it to a user (e.g. chown 1000:1000) or pick another folder" >&2
        exit 2
    fi
fi

# podman runs HEALTHCHECKs from systemd timers; without systemd it only logs errors.
health=()
if [[ "$ENGINE" == podman && ! -d /run/systemd/system ]]; then
    health=(--no-healthcheck)
fi

# The data path must end in .h5ad for cellxgene; mount the file under that name. The
# work folder sits in OUTDIR: the merged h5ad is renamed from there into OUTDIR, and a
# rename cannot cross file systems (/tmp in the container is another one).
echo "run-image: http://127.0.0.1:$HOST_PORT/  (outputs in $outdir, container $NAME)" >&2
exec "$ENGINE" run --rm --name "$NAME" \
    --user "$owner" \
    --publish "127.0.0.1:$HOST_PORT:8888" \
    --volume "$input:/data/input.h5ad:ro" \
    --volume "$outdir:/out:rw" \
    --workdir /out \
    "${health[@]}" \
    "$IMAGE" \
    python -m galaxy_cellxgene view /data/input.h5ad \
    --annotations-out /out/annotations.csv \
    --gene-sets-out /out/gene_sets.csv \
    --merged-out /out/merged.h5ad \
    --work-dir /out/.cellxgene-work \
    --port 8888 \
    "$@"
