#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Assemble the kernel tree: Debian's linux-source-7.3 as the base commit,
# every patch of patches/series as one commit on top, and the repository's
# new files (drivers/, include/, tools/, Documentation/) as a last commit.
#
# The tree is a git work tree at $CACHE/linux. Commits are built with a
# temporary index and checked out at the end, so only files whose content
# changed get a new mtime and kbuild rebuilds just what depends on them.
#
# Prints the assembled commit on stdout.
. "$(dirname "$0")/common.sh"

TREE="$CACHE/linux"
OVERLAY_DIRS="drivers include tools Documentation"
export GIT_AUTHOR_NAME="vhost-iommu bed" GIT_AUTHOR_EMAIL="bed@invalid"
export GIT_COMMITTER_NAME="vhost-iommu bed" GIT_COMMITTER_EMAIL="bed@invalid"
export GIT_COMMITTER_DATE="2026-01-01T00:00:00Z" GIT_AUTHOR_DATE="2026-01-01T00:00:00Z"
g() { git -C "$TREE" "$@"; }

make_base() {
	local tarball stamp="$TREE/.git/vhost-iommu-base"
	if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$KSRC_VERSION" ]; then
		return 0
	fi
	log "base: unpacking $KSRC_PKG $KSRC_VERSION into $TREE"
	rm -rf --one-file-system "$TREE" "$TREE.tmp"
	mkdir -p "$TREE.tmp"
	tarball=$(ls "$CHROOT"/usr/src/$KSRC_PKG.tar.* 2>/dev/null | head -1)
	[ -n "$tarball" ] || die "no $KSRC_PKG tarball in the chroot"
	tar -C "$TREE.tmp" --strip-components=1 -xf "$tarball"
	git -C "$TREE.tmp" init -q
	git -C "$TREE.tmp" config core.autocrlf false
	git -C "$TREE.tmp" config gc.auto 0
	git -C "$TREE.tmp" add -A -f
	git -C "$TREE.tmp" commit -q -m "Linux $(make -s -C "$TREE.tmp" kernelversion) from Debian $KSRC_PKG $KSRC_VERSION"
	git -C "$TREE.tmp" tag -f base >/dev/null
	echo "$KSRC_VERSION" > "$TREE.tmp/.git/vhost-iommu-base"
	mv "$TREE.tmp" "$TREE"
}

# Build the commit chain base -> patches -> overlay without a work tree.
build_chain() {
	local idx prev p msg tree f blob n=0 info
	idx=$(mktemp)
	trap 'rm -f "$idx" "$idx.msg" "$idx.patch" "$idx.info"' RETURN
	prev=$(g rev-parse base)
	GIT_INDEX_FILE=$idx g read-tree "$prev"
	if [ -f "$REPO/patches/series" ]; then
		while read -r p; do
			case "$p" in ''|\#*) continue ;; esac
			[ -f "$REPO/patches/$p" ] || die "patches/series names a missing patch: $p"
			n=$((n + 1))
			git mailinfo "$idx.msg" "$idx.patch" < "$REPO/patches/$p" > "$idx.info"
			GIT_INDEX_FILE=$idx g apply --cached "$idx.patch" ||
				die "patch $p does not apply"
			tree=$(GIT_INDEX_FILE=$idx g write-tree)
			info=$(sed -n 's/^Subject: //p' "$idx.info")
			prev=$( { echo "$info"; echo; cat "$idx.msg"; } | g commit-tree "$tree" -p "$prev")
		done < "$REPO/patches/series"
	fi
	# New files: plain files of the repository laid over the tree
	# (Documentation/virtio-spec/ is a patch to the virtio spec, not kernel).
	local dirs="" d
	for d in $OVERLAY_DIRS; do [ -d "$REPO/$d" ] && dirs="$dirs $d"; done
	# shellcheck disable=SC2086
	(cd "$REPO" && [ -n "$dirs" ] && find $dirs -type f ! -name '*.o' ! -name '*~' ! -path '*/build/*' ! -path 'Documentation/virtio-spec/*' | LC_ALL=C sort) |
	while read -r f; do
		if g cat-file -e "base:$f" 2>/dev/null; then
			die "$f exists in the base tree: change it through patches/"
		fi
		blob=$(g hash-object -w "$REPO/$f")
		if [ -x "$REPO/$f" ]; then mode=100755; else mode=100644; fi
		GIT_INDEX_FILE=$idx g update-index --add --cacheinfo "$mode,$blob,$f"
	done
	tree=$(GIT_INDEX_FILE=$idx g write-tree)
	prev=$(echo "vhost-iommu: new files from the repository" | g commit-tree "$tree" -p "$prev")
	echo "$prev"
}

make_base
new=$(build_chain)
if [ -n "$(g status --porcelain --untracked-files=no)" ]; then
	g status --short --untracked-files=no | head -20 >&2
	die "$TREE has uncommitted edits: commit them and run 'make regen', or 'git -C $TREE stash'"
fi
if [ "$(g rev-parse HEAD)" != "$new" ]; then
	g checkout -q --detach "$new"
fi
g update-ref refs/heads/assembled "$new"
log "tree: $(g log -1 --format='%h %s' "$new") ($(g rev-list --count base.."$new") commits over base)"
echo "$new"
