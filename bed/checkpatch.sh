#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# checkpatch --strict on every patch of the series and on every new C file,
# and kernel-doc -Wall on the uAPI headers the series touches.
. "$(dirname "$0")/common.sh"
TREE="$CACHE/linux"
"$BED_DIR/tree.sh" >/dev/null
rc=0
cp_opts="--strict --no-tree --quiet --show-types --ignore FILE_PATH_CHANGES,SPDX_LICENSE_TAG"
if [ -f "$REPO/patches/series" ]; then
	while read -r p; do
		case "$p" in ''|\#*) continue ;; esac
		out=$(perl "$TREE/scripts/checkpatch.pl" $cp_opts "$REPO/patches/$p" 2>&1) || true
		if [ -n "$out" ]; then echo "== patches/$p"; echo "$out"; rc=1; fi
	done < "$REPO/patches/series"
fi
for f in $(cd "$REPO" && git ls-files 'drivers/*.c' 'drivers/*.h' 'include/*.h' 2>/dev/null); do
	out=$(perl "$TREE/scripts/checkpatch.pl" $cp_opts -f "$REPO/$f" 2>&1) || true
	if [ -n "$out" ]; then echo "== $f"; echo "$out"; rc=1; fi
done
for h in include/uapi/linux/vhost.h include/uapi/linux/vhost_types.h \
	 include/uapi/linux/virtio_iommu.h include/uapi/linux/iommufd.h include/linux/iommufd.h; do
	[ -f "$TREE/$h" ] || continue
	# Only warnings the base does not have count (7.3.4 has a few of its own).
	tmp=$(mktemp -d)
	mkdir -p "$tmp/$(dirname "$h")"
	git -C "$TREE" show "base:$h" > "$tmp/$h" 2>/dev/null || : > "$tmp/$h"
	(cd "$tmp" && perl "$TREE/scripts/kernel-doc" -Wall -none "$h" 2>&1 | sed -E 's/\.h:[0-9]+/.h/' | sort -u) > "$tmp/base"
	out=$(cd "$TREE" && perl scripts/kernel-doc -Wall -none "$h" 2>&1 | sed -E 's/\.h:[0-9]+/.h/' | sort -u | comm -23 - "$tmp/base") || true
	rm -rf "$tmp"
	if [ -n "$out" ]; then echo "== kernel-doc $h"; echo "$out"; rc=1; fi
done
[ $rc = 0 ] && log "checkpatch and kernel-doc: clean"
exit $rc
