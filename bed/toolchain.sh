#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Make the build and test toolchain: a Debian trixie chroot with QEMU >= 10,
# the aarch64 cross compiler, the arm64 UEFI firmware, arm64 busybox and the
# kernel source package. Idempotent: a finished chroot is reused while its
# key (suite, mirror, package list, this script) is unchanged.
. "$(dirname "$0")/common.sh"

need_host() {
	command -v debootstrap >/dev/null && return 0
	log "installing debootstrap on the host"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
}

if [ -f "$CHROOT/.ready" ]; then
	log "toolchain: reusing $CHROOT"
else
	need_host
	mkdir -p "$CACHE"
	# Unfinished or stale chroots are never trusted.
	for old in "$CACHE"/chroot-*; do
		[ -e "$old" ] || continue
		( CHROOT=$old; umount_chroot ) || true
		log "removing old chroot $old"
		rm -rf --one-file-system "$old"
	done
	tmp="$CHROOT.tmp"
	rm -rf --one-file-system "$tmp"
	log "debootstrap $SUITE into $tmp"
	debootstrap --variant=minbase "$SUITE" "$tmp" "$MIRROR" > "$CACHE/debootstrap.log" 2>&1 ||
		{ tail -20 "$CACHE/debootstrap.log"; die "debootstrap failed"; }
	cat > "$tmp/etc/apt/sources.list" <<EOS
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb $MIRROR $SUITE-backports main
EOS
	mkdir -p "$tmp/proc" "$tmp/sys" "$tmp/dev"
	mount --bind /proc "$tmp/proc"; mount --bind /sys "$tmp/sys"; mount --bind /dev "$tmp/dev"
	trap 'umount -l "$tmp/proc" "$tmp/sys" "$tmp/dev" 2>/dev/null || true' EXIT
	cr() { chroot "$tmp" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
		DEBIAN_FRONTEND=noninteractive "$@"; }
	cr dpkg --add-architecture arm64
	cr apt-get update -qq
	log "installing packages in the chroot"
	# shellcheck disable=SC2086
	cr apt-get install -y -qq --no-install-recommends $CHROOT_PKGS \
		"qemu-system-arm=$QEMU_VERSION" > "$CACHE/apt.log" 2>&1 ||
		{ tail -30 "$CACHE/apt.log"; die "apt-get install failed"; }
	cr apt-get install -y -qq --no-install-recommends -t "$SUITE-backports" \
		"$KSRC_PKG=$KSRC_VERSION" >> "$CACHE/apt.log" 2>&1 ||
		{ tail -30 "$CACHE/apt.log"; die "installing $KSRC_PKG failed"; }
	log "arm64 busybox"
	cr sh -c 'cd /tmp && apt-get download -qq busybox-static:arm64 && mkdir -p /opt/busybox-arm64 && dpkg -x busybox-static_*_arm64.deb /opt/busybox-arm64 && rm -f busybox-static_*.deb'
	cr apt-get clean
	umount -l "$tmp/proc" "$tmp/sys" "$tmp/dev"
	trap - EXIT
	touch "$tmp/.ready"
	mv "$tmp" "$CHROOT"
fi

in_chroot sh -c 'echo "qemu:     $(qemu-system-aarch64 --version | head -1)";
	echo "gcc:      $(aarch64-linux-gnu-gcc --version | head -1)";
	echo "busybox:  $(dpkg-deb -f /dev/null 2>/dev/null; ls /opt/busybox-arm64/usr/bin/busybox)";
	echo "kernel:   $(dpkg-query -W -f="\${Package} \${Version}" '"$KSRC_PKG"')";
	echo "firmware: $(dpkg-query -W -f="\${Package} \${Version}" qemu-efi-aarch64)"' >&2
umount_chroot
