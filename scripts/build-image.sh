#!/usr/bin/env bash
# Build the tool's container image from containers/Dockerfile, unchanged, with podman.
#   scripts/build-image.sh                  # -> $IMAGE (default below)
#   IMAGE=my/name:tag scripts/build-image.sh
#   scripts/build-image.sh --no-cache       # extra arguments go to `podman build`
#
# Works offline from any registry: scripts/podman-setup.sh provides the base image
# (a local stand-in when none can be pulled). PyPI and Debian are reached through the
# host network; pip inside the build trusts the host's CA bundle, mounted read-only
# into the build steps only (it never lands in a layer).
# Prints the image name on stdout; timings and size on stderr.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
IMAGE="${IMAGE:-quay.io/galaxy-cellxgene/cellxgene-galaxy:1.3.0--galaxy0}"

log() { printf '[build-image] %s\n' "$*" >&2; }

if [[ "${SKIP_PODMAN_SETUP:-0}" != 1 ]]; then
    "$ROOT/scripts/podman-setup.sh"
fi

# pip in the build trusts the system bundle (PIP_CERT in the Dockerfile); lay this
# host's bundle over it for the build steps, so an intercepting proxy's CA is trusted.
# A file mounted over an existing file leaves no trace in any layer.
ca="${PIP_CERT:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}"
mounts=()
if [[ -f "$ca" ]]; then
    mounts=(--volume "$(readlink -f "$ca"):/etc/ssl/certs/ca-certificates.crt:ro")
fi

start=$(date +%s.%N)
# --format docker: the OCI format has no HEALTHCHECK, podman would drop it.
# --pull=never: the base comes from podman-setup (a registry may be unreachable).
podman build \
    --format docker \
    --network host \
    --pull=never \
    --layers \
    "${mounts[@]}" \
    --file "$ROOT/containers/Dockerfile" \
    --tag "$IMAGE" \
    "$@" \
    "$ROOT" >&2
end=$(date +%s.%N)

size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
log "built $IMAGE in $(printf '%.1f' "$(echo "$end - $start" | bc)") s, $((size / 1000000)) MB"
echo "$IMAGE"
