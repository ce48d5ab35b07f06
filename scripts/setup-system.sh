#!/usr/bin/env bash
# Debian packages the suites need: chromium (browser tests), nginx (local Galaxy front),
# podman and friends (container tests; configured by scripts/podman-setup.sh).
set -euo pipefail
packages=(chromium nginx podman runc uidmap slirp4netns fuse-overlayfs debootstrap tini)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "Debian packages present: ${packages[*]}"
