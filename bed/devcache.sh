#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Make a private copy of the cache for a second developer on this machine
# (toolchain hard-linked, kernel tree and build directories copied), so
# that two people can build and boot at once without touching each other's
# files. Paths inside the chroot stay the same, so the copied build
# directory stays incremental.
#   bed/devcache.sh NAME      -> ~/.cache/vhost-iommu-NAME
. "$(dirname "$0")/common.sh"
NAME=${1:?usage: devcache.sh NAME}
D="$(dirname "$CACHE")/vhost-iommu-$NAME"
[ -e "$D" ] && die "$D exists"
mkdir -p "$D.tmp"
cp -al "$CHROOT" "$D.tmp/"
cp -a "$CACHE/linux" "$D.tmp/linux"
mkdir -p "$D.tmp/kbuild"
for b in "$CACHE"/kbuild/*/; do cp -a "$b" "$D.tmp/kbuild/"; done
cp -a "$CACHE"/iort-*.cpio "$D.tmp/" 2>/dev/null || true
mv "$D.tmp" "$D"
touch "$D/READY"
log "dev cache: $D (use VHOST_IOMMU_CACHE=$D)"
