# SPDX-License-Identifier: GPL-2.0
# Shared settings for the vhost-iommu test bed scripts. Sourced, not run.

set -euo pipefail
shopt -s inherit_errexit

BED_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BED_DIR/.." && pwd)
# Everything expensive lives here, outside the repository.
CACHE=${VHOST_IOMMU_CACHE:-$HOME/.cache/vhost-iommu}
MIRROR=${VHOST_IOMMU_MIRROR:-http://deb.debian.org/debian}
SUITE=trixie

# Pinned versions (Debian trixie / trixie-backports).
KSRC_PKG=linux-source-7.3
KSRC_VERSION=${VHOST_IOMMU_KSRC_VERSION:-7.3.4-1~bpo13+1}
QEMU_VERSION=1:10.0.13+ds-0+deb13u1

# Packages installed in the chroot; part of the chroot's cache key.
CHROOT_PKGS="qemu-system-arm qemu-efi-aarch64 gcc-aarch64-linux-gnu \
libc6-dev-arm64-cross make bc bison flex libssl-dev libelf-dev cpio \
python3 gcc libc6-dev libcap-dev:arm64 ccache rsync git xz-utils \
perl kmod dwarves sparse ca-certificates patch file"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# A short content hash of its arguments (strings and files).
key_of() {
	local a
	for a in "$@"; do
		if [ -f "$a" ]; then sha256sum < "$a"; else printf '%s\n' "$a"; fi
	done | sha256sum | cut -c1-16
}

chroot_key() {
	key_of "$SUITE" "$MIRROR" "$CHROOT_PKGS" "$QEMU_VERSION" "$KSRC_VERSION" "$BED_DIR/toolchain.sh"
}

CHROOT="$CACHE/chroot-$(chroot_key)"

# Run a command inside the chroot with the repository at /src (read-only)
# and the cache at /cache.
in_chroot() {
	[ -f "$CHROOT/.ready" ] || die "toolchain missing: run bed/toolchain.sh"
	mkdir -p "$CHROOT/src" "$CHROOT/cache"
	unshare --mount --propagation private -- "$BED_DIR/chroot-exec.sh" "$CHROOT" "$REPO" "$CACHE" "$@"
}

# Mounts are private to each in_chroot call; this only cleans up mounts
# left by older versions of these scripts.
umount_chroot() {
	local m
	for m in cache src dev/pts dev sys proc; do
		mountpoint -q "$CHROOT/$m" 2>/dev/null && umount -l "$CHROOT/$m"
	done
	return 0
}
