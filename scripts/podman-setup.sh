#!/usr/bin/env bash
# Make podman usable on this kind of machine (root, no Docker engine, no container
# registry, cgroup v1 without systemd, hard ulimits) and make sure the base image the
# Dockerfile names, python:3.11-slim-bookworm, exists locally.
#
# Idempotent and cached: a second run installs nothing, writes nothing and takes ~1 s.
#   scripts/podman-setup.sh            # install + configure + base image
#   PODMAN_SETUP_PULL=1 scripts/podman-setup.sh   # try the real base from a registry first
#
# Without a registry the base is a stand-in: Debian bookworm minbase (what the real
# python:3.11-slim is built on) with Debian's python3.11 + venv, docs stripped the way
# the slim images strip them, tagged docker.io/library/python:3.11-slim-bookworm (and :3.11-slim) so the real
# Dockerfile builds against it unchanged (`--pull=never`).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${GALAXY_CELLXGENE_CACHE:-$ROOT/.cache}/podman"
BASE_IMAGE="docker.io/library/python:3.11-slim-bookworm"
# The same Debian release under the tag most Dockerfiles name.
ALIAS_IMAGE="docker.io/library/python:3.11-slim"
SUITE="bookworm"
# Bump when the stand-in recipe below changes, so cached tarballs are not reused.
STANDIN_VERSION=2
STANDIN_TAR="$CACHE/python-3.11-slim-standin-v$STANDIN_VERSION.tar"

log() { printf '[podman-setup] %s\n' "$*" >&2; }

if [[ "$(id -u)" != 0 ]]; then
    log "needs root (apt-get, /etc/containers, rootful storage)"
    exit 1
fi

# --- 1. packages -------------------------------------------------------------------
need=()
for pkg in podman runc iptables debootstrap; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || need+=("$pkg")
done
if ((${#need[@]})); then
    log "installing ${need[*]}"
    # Other setup scripts may hold the dpkg lock at the same time (CI runs them in
    # parallel); wait for it instead of failing.
    apt_opts=(-o DPkg::Lock::Timeout=900 -qq)
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y "${apt_opts[@]}" --no-install-recommends "${need[@]}" >&2; then
        apt-get update "${apt_opts[@]}" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y "${apt_opts[@]}" --no-install-recommends "${need[@]}" >&2
    fi
fi

# --- 2. configuration --------------------------------------------------------------
# crun refuses this cgroup setup; there is no systemd to manage cgroups; the machine
# forbids raising limits, so podman's default ulimits (nofile 1048576) fail at start.
# Events go to a file because there is no journald.
write_if_changed() {
    local path="$1" content="$2"
    if [[ ! -f "$path" ]] || [[ "$(cat "$path")" != "$content" ]]; then
        mkdir -p "$(dirname "$path")"
        printf '%s\n' "$content" >"$path.tmp.$$"
        mv -f "$path.tmp.$$" "$path"
        log "wrote $path"
    fi
}

nofile_hard="$(ulimit -Hn)"
[[ "$nofile_hard" == unlimited ]] && nofile_hard=1048576
nofile=$((nofile_hard < 20000 ? nofile_hard : 20000))
nproc_hard="$(ulimit -Hu)"
[[ "$nproc_hard" == unlimited ]] && nproc_hard=4194304
nproc=$((nproc_hard < 32768 ? nproc_hard : 32768))

write_if_changed /etc/containers/containers.conf.d/50-galaxy-cellxgene.conf "# Written by galaxy-cellxgene scripts/podman-setup.sh (see docs/container.md).
[containers]
default_ulimits = [\"nofile=$nofile:$nofile\", \"nproc=$nproc:$nproc\"]

[engine]
runtime = \"runc\"
cgroup_manager = \"cgroupfs\"
events_logger = \"file\""

if [[ ! -f /etc/containers/storage.conf ]]; then
    write_if_changed /etc/containers/storage.conf "# Written by galaxy-cellxgene scripts/podman-setup.sh.
[storage]
driver = \"overlay\"
runroot = \"/run/containers/storage\"
graphroot = \"/var/lib/containers/storage\""
elif ! grep -Eq '^\s*driver\s*=\s*"overlay"' /etc/containers/storage.conf; then
    log "note: /etc/containers/storage.conf exists and does not select overlay; left as is"
fi

podman info --format '{{.Host.OCIRuntime.Name}} {{.Store.GraphDriverName}}' >/dev/null

# --- 3. base image -----------------------------------------------------------------
if podman image exists "$BASE_IMAGE"; then
    podman image exists "$ALIAS_IMAGE" || podman tag "$BASE_IMAGE" "$ALIAS_IMAGE"
    log "base image present: $BASE_IMAGE"
    exit 0
fi

if [[ "${PODMAN_SETUP_PULL:-0}" == 1 ]] && timeout 120 podman pull "$BASE_IMAGE" >&2; then
    podman image exists "$ALIAS_IMAGE" || podman tag "$BASE_IMAGE" "$ALIAS_IMAGE"
    log "pulled $BASE_IMAGE"
    exit 0
fi

mkdir -p "$CACHE"
if [[ ! -s "$STANDIN_TAR" ]]; then
    # The mirror apt already uses here (PyPI/Debian are the only reachable hosts).
    mirror="$(grep -hoE '^(URIs:\s*|deb\s+)https?://[^ ]+/debian/?(\s|$)' \
        /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null |
        grep -oE 'https?://[^ ]+' | head -n1 || true)"
    mirror="${mirror:-http://deb.debian.org/debian}"
    rootfs="$CACHE/standin-rootfs"
    rm -rf "$rootfs"
    log "debootstrap $SUITE from $mirror (stand-in for $BASE_IMAGE, ~1 min)"
    debootstrap --variant=minbase \
        --include=python3,python3-venv,ca-certificates,netbase,tzdata \
        "$SUITE" "$rootfs" "$mirror" >"$CACHE/debootstrap.log" 2>&1 || {
        tail -n 30 "$CACHE/debootstrap.log" >&2
        exit 1
    }

    # What the official slim images do, so apt-get inside a Dockerfile behaves alike:
    # no docs, man pages or locales are unpacked, apt lists and caches are not kept.
    cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
EOF
    # ...and apt keeps no package caches or translations in image layers.
    cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
    printf 'Acquire::Languages "none";\n' >"$rootfs/etc/apt/apt.conf.d/docker-no-languages"
    printf 'Acquire::GzipIndexes "true";\nAcquire::CompressionTypes::Order:: "gz";\n' \
        >"$rootfs/etc/apt/apt.conf.d/docker-gzip-indexes"
    printf 'Apt::AutoRemove::SuggestsImportant "false";\n' \
        >"$rootfs/etc/apt/apt.conf.d/docker-autoremove-suggests"
    find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
    find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
    rm -rf "$rootfs"/usr/share/{man,info,groff,lintian,linda,locale}/* \
        "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb \
        "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/*.log "$rootfs"/var/log/apt/*
    # debootstrap leaves the build host's name and resolver; the runtime provides both.
    : >"$rootfs/etc/hostname"
    rm -f "$rootfs/etc/resolv.conf"
    # The official image's interpreter lives in /usr/local/bin; scripts and
    # Dockerfiles written for it call `python`, `python3` and `pip` from there.
    ln -sf /usr/bin/python3 "$rootfs/usr/local/bin/python3"
    ln -sf /usr/bin/python3 "$rootfs/usr/local/bin/python"

    tar --numeric-owner --xattrs -C "$rootfs" -cf "$STANDIN_TAR.tmp" .
    mv -f "$STANDIN_TAR.tmp" "$STANDIN_TAR"
    rm -rf "$rootfs"
fi

log "importing $STANDIN_TAR as $BASE_IMAGE"
podman import \
    --change 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'LABEL org.galaxy-cellxgene.base-standin=debootstrap-bookworm-minbase' \
    --change 'CMD ["python3"]' \
    "$STANDIN_TAR" "$BASE_IMAGE" >/dev/null 2>&1
podman tag "$BASE_IMAGE" "$ALIAS_IMAGE"
log "stand-in base ready: $BASE_IMAGE"
