#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Build the userspace-api book of the assembled tree with `make htmldocs`
# (it holds vhost-iommu.rst, iommufd.rst and the ioctl numbers) and fail
# on any warning about the files the series adds or changes. The base tree
# has warnings of its own elsewhere; they are printed as a count only.
# Sphinx comes from Debian (python3-sphinx), installed on the host.
#
#   bed/docs.sh        -> $CACHE/docs/out/Documentation/output/userspace-api
. "$(dirname "$0")/common.sh"

if ! command -v sphinx-build > /dev/null; then
	log "docs: installing python3-sphinx"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		python3-sphinx python3-yaml > /dev/null
fi
commit=$("$BED_DIR/tree.sh")
key=$(key_of "$(git -C "$CACHE/linux" rev-parse "$commit^{tree}")" "$(sphinx-build --version)" "$BED_DIR/docs.sh")
STAMP="$CACHE/docs/ok-$key"
if [ -f "$STAMP" ]; then
	log "docs: built before without warnings on our files ($STAMP)"
	exit 0
fi
mkdir -p "$CACHE/docs/out"
log "docs: make htmldocs SPHINXDIRS=userspace-api"
start=$(date +%s)
make -s -C "$CACHE/linux" O="$CACHE/docs/out" SPHINXDIRS=userspace-api \
	PYTHON3=/usr/bin/python3 htmldocs > "$CACHE/docs/htmldocs.log" 2>&1 ||
	{ tail -20 "$CACHE/docs/htmldocs.log"; die "make htmldocs failed"; }
ours='vhost-iommu\.rst|vhost_types\.h|uapi/linux/vhost\.h|virtio_iommu\.h|iommufd\.h|iommufd\.rst'
if grep -P "$ours" "$CACHE/docs/htmldocs.log"; then
	die "docs: warnings about the series' files (above)"
fi
n=$(grep -cE 'WARNING|ERROR' "$CACHE/docs/htmldocs.log" || true)
log "docs: built in $(( $(date +%s) - start )) s; no warning about our files ($n in the base tree's own files)"
touch "$STAMP"
