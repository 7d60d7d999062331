#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Configure and build the arm64 test kernel from the assembled tree.
#
#   bed/kernel.sh [debug|bench]
#
# debug (default): the selftest config fragment plus config.debug (KASAN,
# UBSAN, lockdep, kmemleak, KUnit). bench: the fragment plus config.bench
# (the function profiler, patched out while off), for figures.
#
# The build directory is kept per flavour and toolchain; kbuild rebuilds
# what changed. The finished Image and uAPI headers are also stored under a
# key of everything that went into them (tree, config, toolchain), so an
# unchanged kernel is not even re-made.
. "$(dirname "$0")/common.sh"

FLAVOR=${1:-debug}
ST=tools/testing/selftests/vhost_iommu
case "$FLAVOR" in
debug) FRAGS="$ST/config $ST/config.debug" ;;
bench) FRAGS="$ST/config $ST/config.bench" ;;
*) die "unknown flavour $FLAVOR" ;;
esac

commit=$("$BED_DIR/tree.sh")
# The kernel depends on the whole tree but tools/ and Documentation/.
tree_hash=$(git -C "$CACHE/linux" ls-tree "$commit" | grep -Pv '\t(tools|Documentation)$' | sha256sum | cut -c1-40)
frag_files=""
for f in $FRAGS; do frag_files="$frag_files $REPO/$f"; done
# shellcheck disable=SC2086
key=$(key_of "$tree_hash" "$(chroot_key)" "$FLAVOR" $frag_files "$BED_DIR/kernel.sh")
OUT="$CACHE/kernel/$FLAVOR-$key"
BUILD="$CACHE/kbuild/$FLAVOR-$(chroot_key)"

if [ -f "$OUT/.done" ]; then
	log "kernel: reusing $OUT"
	echo "$OUT"
	exit 0
fi

mkdir -p "$BUILD" "$CACHE/ccache"
MK="make -s -C /cache/linux O=/cache/kbuild/$(basename "$BUILD") ARCH=arm64 \
CROSS_COMPILE=aarch64-linux-gnu- CC='ccache aarch64-linux-gnu-gcc' \
KBUILD_BUILD_TIMESTAMP='Thu Jan  1 00:00:00 UTC 2026' KBUILD_BUILD_USER=bed \
KBUILD_BUILD_HOST=vhost-iommu"

log "kernel: configuring ($FLAVOR)"
in_chroot bash -c "set -e; cd /cache/linux; $MK allnoconfig >/dev/null
	KCONFIG_CONFIG=/cache/kbuild/$(basename "$BUILD")/.config \
	scripts/kconfig/merge_config.sh -m -O /cache/kbuild/$(basename "$BUILD") \
		/cache/kbuild/$(basename "$BUILD")/.config $(for f in $FRAGS; do printf '/src/%s ' "$f"; done) >/dev/null
	$MK olddefconfig >/dev/null"

# Kconfig silently drops options whose dependencies are not met: check that
# every line of the fragments survived.
missing=0
for f in $FRAGS; do
	while IFS= read -r line; do
		case "$line" in
		CONFIG_*=*)
			grep -qxF "$line" "$BUILD/.config" && continue
			echo "config: $line did not survive (have: $(grep -E "^(# )?${line%%=*}[= ]" "$BUILD/.config" || echo nothing))" >&2
			missing=1 ;;
		"# CONFIG_"*" is not set")
			opt=${line#\# }; opt=${opt%% *}
			grep -q "^$opt=" "$BUILD/.config" || continue
			echo "config: $line, but it is set" >&2
			missing=1 ;;
		esac
	done < "$REPO/$f"
done
[ "$missing" = 0 ] || die "config fragment options were dropped by Kconfig (see above)"

log "kernel: building ($FLAVOR) in $BUILD"
start=$(date +%s)
if ! in_chroot bash -c "$MK -j$(nproc) Image headers > /cache/kbuild/$(basename "$BUILD").log 2>&1"; then
	grep -E 'error|Error' "$BUILD.log" | head -30 >&2
	tail -20 "$BUILD.log" >&2
	die "kernel build failed (log: $BUILD.log)"
fi
grep -E 'warning:' "$BUILD.log" >&2 || true
# Another user of this cache (tree.sh) may have checked out another tree
# meanwhile: never store what was built under the wrong key.
[ "$(git -C "$CACHE/linux" rev-parse HEAD)" = "$commit" ] ||
	die "the tree at $CACHE/linux changed during the build: run it again, alone"
log "kernel: built in $(( $(date +%s) - start )) s"

rm -rf "$OUT.tmp"; mkdir -p "$OUT.tmp"
cp "$BUILD/arch/arm64/boot/Image" "$BUILD/.config" "$BUILD/System.map" "$OUT.tmp/"
cp -a "$BUILD/usr/include" "$OUT.tmp/include"
[ -x "$BUILD/scripts/dtc/dtc" ] && cp "$BUILD/scripts/dtc/dtc" "$OUT.tmp/" || true
echo "$commit" > "$OUT.tmp/commit"
touch "$OUT.tmp/.done"
rm -rf "$OUT"; mv "$OUT.tmp" "$OUT"
# Keep the two newest kernels per flavour.
ls -dt "$CACHE/kernel/$FLAVOR"-* 2>/dev/null | tail -n +3 | xargs -r rm -rf
umount_chroot
echo "$OUT"
