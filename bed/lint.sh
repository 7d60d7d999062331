#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# W=1 and sparse (C=2) on every C file the series changes or adds, with the
# debug kernel's config, in a build directory of its own. Only warnings on
# lines the series adds count: the base has some of its own (arm64 headers,
# arm-smmu-v3.h), which are listed as a count.
#
# 7.3 needs a sparse that knows __typeof_unqual__ (scripts/checker-valid.sh):
# trixie's 0.6.4 does not, so the sparse binary comes from Debian's
# 0.6.5~rc1 package (forky, sid), pinned by version and checksum, unpacked
# into the cache (its binary runs in the trixie chroot).
. "$(dirname "$0")/common.sh"

SPARSE_VERSION=0.6.5~rc1-2
SPARSE_DEB=sparse_${SPARSE_VERSION}_amd64.deb
SPARSE_SHA256=a9fbd9d3091d78d77e1583cfd7596107135da1e84f0ceed88245661f33a8dfd6
SPARSE_URL=$MIRROR/pool/main/s/sparse/$SPARSE_DEB
TOOLS="$CACHE/tools"
SPARSE_DIR="$TOOLS/sparse-${SPARSE_VERSION//\~/_}"

if [ ! -x "$SPARSE_DIR/usr/bin/sparse" ]; then
	mkdir -p "$TOOLS"
	log "lint: fetching $SPARSE_DEB"
	# In the chroot: a fresh host may have neither curl nor python3
	in_chroot python3 -c 'import sys, urllib.request; urllib.request.urlretrieve(sys.argv[1], sys.argv[2])' \
		"$SPARSE_URL" "/cache/tools/$SPARSE_DEB.tmp" || die "cannot download $SPARSE_URL"
	echo "$SPARSE_SHA256  $TOOLS/$SPARSE_DEB.tmp" | sha256sum -c --quiet ||
		die "$SPARSE_DEB: checksum mismatch"
	mv "$TOOLS/$SPARSE_DEB.tmp" "$TOOLS/$SPARSE_DEB"
	rm -rf "$SPARSE_DIR"
	in_chroot dpkg-deb -x "/cache/tools/$SPARSE_DEB" "/cache/tools/$(basename "$SPARSE_DIR")" ||
		die "cannot unpack $SPARSE_DEB"
fi
CHECKER="/cache/tools/$(basename "$SPARSE_DIR")/usr/bin/sparse"

kdir=$("$BED_DIR/kernel.sh" debug) || die "the debug kernel did not build"
# kernel.sh assembled the tree: its kernel files are those of the kernel in
# $kdir (same key), whichever tree commit that kernel was first built from.
TREE="$CACHE/linux"
commit=$(git -C "$TREE" rev-parse HEAD)

BUILD="$CACHE/kbuild/lint-$(chroot_key)"
mkdir -p "$BUILD"
cp "$kdir/.config" "$BUILD/.config"

# The C files the series changes or adds, but tools/ (user space)
mapfile -t files < <(git -C "$TREE" diff --name-only --diff-filter=AM base "$commit" -- '*.c' |
	grep -v '^tools/' | grep -v '^Documentation/')
[ ${#files[@]} -gt 0 ] || die "no C file in the series"
objs=()
for f in "${files[@]}"; do objs+=("${f%.c}.o"); done

log "lint: W=1 C=2 on ${#objs[@]} files"
MK="make -s -C /cache/linux O=/cache/kbuild/$(basename "$BUILD") ARCH=arm64 \
CROSS_COMPILE=aarch64-linux-gnu- CC='ccache aarch64-linux-gnu-gcc'"
# Every object is rebuilt (W=1 changes the command line), so each is checked.
rm -f "${objs[@]/#/$BUILD/}"
if ! in_chroot bash -c "$MK olddefconfig >/dev/null && $MK W=1 C=2 CHECK=$CHECKER ${objs[*]}" \
	> "$BUILD.log" 2>&1; then
	tail -30 "$BUILD.log" >&2
	die "lint: the build failed (log: $BUILD.log)"
fi
if grep -q 'sparse is not available' "$BUILD.log"; then
	die "lint: sparse was not usable (log: $BUILD.log)"
fi

# Keep the diagnostics on lines the series adds (new files: every line)
git -C "$TREE" diff -U0 base "$commit" -- . ':!tools' ':!Documentation' > "$BUILD.diff"
cat > "$BUILD.py" <<'EOF'
import re, sys

added = {}
path = None
for line in open(sys.argv[2], errors="replace"):
    if line.startswith("+++ "):
        path = line[6:].strip() if line.startswith("+++ b/") else None
        continue
    m = re.match(r"@@ -\S+ \+(\d+)(?:,(\d+))? @@", line)
    if m and path:
        start, n = int(m.group(1)), int(m.group(2) or 1)
        added.setdefault(path, set()).update(range(start, start + n))

ours, base = [], 0
for line in open(sys.argv[1], errors="replace"):
    m = re.match(r"(?:/cache/linux/)?(\S+?):(\d+):(?:\d+:)? (warning|error): ", line)
    if not m:
        continue
    f, n = m.group(1), int(m.group(2))
    if n in added.get(f, ()):
        ours.append(line.rstrip().replace("/cache/linux/", ""))
    else:
        base += 1
for l in ours:
    print(l)
print(f"lint: {len(ours)} diagnostics on lines the series adds, {base} elsewhere (the base's)")
sys.exit(1 if ours else 0)
EOF
B=/cache/kbuild/$(basename "$BUILD")
in_chroot python3 "$B.py" "$B.log" "$B.diff"
