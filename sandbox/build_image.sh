#!/usr/bin/env bash
# Builds the sandbox image without any container registry: mmdebstrap makes a
# minimal Debian root file system with the packages of packages.txt, and
# `docker import` turns it into an image.
#
#   sandbox/build_image.sh TAG
#
# Needs root (or fakeroot), mmdebstrap, docker, and a Debian mirror
# (EVOLVE_DEBIAN_MIRROR, default http://deb.debian.org/debian).
set -euo pipefail

tag="${1:?usage: build_image.sh TAG}"
here="$(cd "$(dirname "$0")" && pwd)"
suite="bookworm"
mirror="${EVOLVE_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
packages="$(grep -v '^\s*#' "$here/packages.txt" | grep -v '^\s*$' | paste -sd, -)"

mmdebstrap \
    --variant=apt \
    --mode=root \
    --include="$packages" \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-include=/usr/share/locale/locale.alias' \
    "$suite" - "$mirror" \
  | docker import \
        --change 'ENV LANG=C.UTF-8' \
        --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' \
        --change 'WORKDIR /' \
        --message "evolve sandbox ($suite: $packages)" \
        - "$tag"
