#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Run a command in the chroot, in a private mount namespace (started by
# in_chroot with unshare), so that concurrent users never see or undo each
# other's mounts: everything mounted here vanishes when the command ends.
#   chroot-exec.sh CHROOT REPO CACHE COMMAND...
set -e
CHROOT=$1 REPO=$2 CACHE=$3
shift 3
for m in proc sys dev dev/pts; do
	mount --bind "/$m" "$CHROOT/$m"
done
mount --bind "$REPO" "$CHROOT/src"
mount -o remount,bind,ro "$CHROOT/src"
mount --bind "$CACHE" "$CHROOT/cache"
exec chroot "$CHROOT" /usr/bin/env -i HOME=/root PATH=/usr/sbin:/usr/bin:/sbin:/bin \
	LANG=C.UTF-8 CCACHE_DIR=/cache/ccache TERM=dumb "$@"
