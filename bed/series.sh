#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Emit the work as a git format-patch series against the 7.3 base, the way
# it would be posted: the patches of patches/series, in order, with the
# repository's new files folded into the patches that patches/fold names
# (or into new patches it defines), and a cover letter. Then check it:
# the series applies with `git am` on a pristine base, and checkpatch
# --strict has nothing to say about any patch.
#
#   bed/series.sh [--build] [OUTDIR]     (default OUTDIR: $CACHE/series)
#
# --build also builds the kernel after every patch (bisectability), in a
# build directory of its own: slow (a cold build first).
. "$(dirname "$0")/common.sh"

BUILD=0
if [ "${1:-}" = --build ]; then BUILD=1; shift; fi
OUT=${1:-$CACHE/series}
TREE="$CACHE/linux"
FOLD="$REPO/patches/fold"
g() { git -C "$TREE" "$@"; }
export GIT_AUTHOR_NAME="vhost-iommu developers" GIT_AUTHOR_EMAIL="vhost-iommu@invalid"
export GIT_COMMITTER_NAME="vhost-iommu developers" GIT_COMMITTER_EMAIL="vhost-iommu@invalid"
export GIT_COMMITTER_DATE="2026-01-01T00:00:00Z" GIT_AUTHOR_DATE="2026-01-01T00:00:00Z"

"$BED_DIR/tree.sh" > /dev/null
[ -f "$FOLD" ] || die "no $FOLD"

# The new files of the repository, as tree.sh lays them over the base.
mapfile -t NEW < <(cd "$REPO" && git ls-files drivers include tools Documentation ':!Documentation/virtio-spec' | LC_ALL=C sort)

# Which rule of patches/fold takes a file: "TARGET: GLOB..." lines, where
# TARGET is a patch file name of patches/series or "NEW <subject>".
rule_of() {
	local f=$1 line target globs gl
	while IFS= read -r line; do
		case "$line" in ''|\#*) continue ;; esac
		target=${line%: *}	# the globs follow the last ": "
		globs=${line##*: }
		for gl in $globs; do
			# shellcheck disable=SC2053
			[[ $f == $gl ]] && { echo "$target"; return 0; }
		done
	done < "$FOLD"
	return 1
}

declare -A FILES_OF
for f in "${NEW[@]}"; do
	t=$(rule_of "$f") || die "$f is not folded anywhere: add it to patches/fold"
	FILES_OF[$t]+="$f "
done

idx=$(mktemp)
trap 'rm -f "$idx" "$idx".*' EXIT
prev=$(g rev-parse base)
GIT_INDEX_FILE=$idx g read-tree "$prev"

add_files() {
	local f blob mode
	for f in $1; do
		blob=$(g hash-object -w "$REPO/$f")
		if [ -x "$REPO/$f" ]; then mode=100755; else mode=100644; fi
		GIT_INDEX_FILE=$idx g update-index --add --cacheinfo "$mode,$blob,$f"
	done
}

commit() { # subject-and-message-file
	local tree
	tree=$(GIT_INDEX_FILE=$idx g write-tree)
	prev=$(g commit-tree "$tree" -p "$prev" < "$1")
}

while read -r p; do
	case "$p" in ''|\#*) continue ;; esac
	git mailinfo "$idx.msg" "$idx.patch" < "$REPO/patches/$p" > "$idx.info"
	GIT_INDEX_FILE=$idx g apply --cached "$idx.patch" || die "$p does not apply"
	add_files "${FILES_OF[$p]:-}"
	# One author and one placeholder sign-off for the whole posting.
	{ sed -n 's/^Subject: //p' "$idx.info"; echo; grep -v '^Signed-off-by: ' "$idx.msg" |
	  sed -e :a -e '/^\n*$/{$d;N;ba' -e '}'; echo;
	  echo "Signed-off-by: $GIT_AUTHOR_NAME <$GIT_AUTHOR_EMAIL>"; } > "$idx.m"
	commit "$idx.m"
done < "$REPO/patches/series"

# Patches made of new files only, in the order patches/fold defines them.
while IFS= read -r line; do
	case "$line" in NEW\ *) ;; *) continue ;; esac
	t=${line%: *}
	[ -n "${FILES_OF[$t]:-}" ] || continue
	add_files "${FILES_OF[$t]}"
	{ echo "${t#NEW }"; echo; sed -n "s/^#> \?//p" < <(awk -v t="$t" '
		$0 ~ "^#> " && seen { print; next }
		index($0, t ": ") == 1 { seen = 1; next }
		seen && $0 !~ "^#> " { exit }' "$FOLD")
	  echo; echo "Signed-off-by: $GIT_AUTHOR_NAME <$GIT_AUTHOR_EMAIL>"; } > "$idx.m"
	commit "$idx.m"
done < "$FOLD"

# The series must rebuild exactly the assembled tree.
[ "$(g rev-parse "$prev^{tree}")" = "$(g rev-parse "assembled^{tree}")" ] ||
	die "the folded series does not give the assembled tree"

rm -rf "$OUT"; mkdir -p "$OUT"
g format-patch -q --no-signature --zero-commit --cover-letter \
	--subject-prefix="RFC PATCH" -o "$OUT" base.."$prev"
if [ -f "$REPO/patches/cover-letter.txt" ]; then
	python3 - "$OUT"/0000-cover-letter.patch "$REPO/patches/cover-letter.txt" <<'EOPY'
import sys
p, body = sys.argv[1], open(sys.argv[2]).read()
s = open(p).read()
subject = body.splitlines()[0]
s = s.replace('*** SUBJECT HERE ***', subject)
s = s.replace('*** BLURB HERE ***', body.split('\n', 2)[2] if body.count('\n') > 1 else '')
open(p, 'w').write(s)
EOPY
fi
n=$(ls "$OUT"/*.patch | wc -l)
log "series: $((n - 1)) patches and a cover letter in $OUT"

# Check 1: it applies with git am on a pristine base.
WT=$(mktemp -d)
g worktree add -q --detach "$WT/am" base
mapfile -t PATCHES < <(ls "$OUT"/0*-*.patch | grep -v '/0000-cover-letter.patch$')
if ! git -C "$WT/am" am -q "${PATCHES[@]}" ||
   [ "$(git -C "$WT/am" rev-parse HEAD^{tree})" != "$(g rev-parse "$prev^{tree}")" ]; then
	git -C "$WT/am" am --abort 2>/dev/null || true
	g worktree remove --force "$WT/am"; rm -rf "$WT"
	die "the series does not apply with git am on the base"
fi
log "series: applies with git am on a pristine base"

# Check 2: checkpatch --strict on every patch.
rc=0
for p in "$OUT"/0*-*.patch; do
	case "$p" in */0000-cover-letter.patch) continue ;; esac
	o=$(perl "$TREE/scripts/checkpatch.pl" --strict --no-tree --quiet --show-types \
		--ignore FILE_PATH_CHANGES "$p" 2>&1) || true
	if [ -n "$o" ]; then echo "== $(basename "$p")"; echo "$o"; rc=1; fi
done
[ $rc = 0 ] && log "series: checkpatch --strict clean on every patch"

# Check 3 (--build): the kernel builds after every patch (bisectability).
# A persistent worktree of the kernel repository walks the series commit by
# commit (a checkout only touches the files that change, so kbuild rebuilds
# what each patch changed) with a build directory of its own and a small
# configuration, allnoconfig + config.bisect, that builds every file the
# series touches (iommufd and its selftest, arm-smmu-v3 and its KUnit
# suite, virtio-iommu, vhost-iommu) and not much else. A patch
# that touches nothing the kernel build reads (Documentation/, tools/,
# MAINTAINERS) is not built. A result is remembered under a key of the
# series, the configuration and the toolchain.
if [ $BUILD = 1 ]; then
	g update-ref refs/series/head "$(git -C "$WT/am" rev-parse HEAD)"
	skey=$(key_of "$(g rev-parse refs/series/head^{tree}) $(g log --format=%B base..refs/series/head | sha256sum)" \
		"$(chroot_key)" "$REPO/tools/testing/selftests/vhost_iommu/config.bisect" "$BED_DIR/series.sh")
	STAMP="$CACHE/series-built/$skey"
	if [ -f "$STAMP" ]; then
		log "series: built after every patch (result cached: $STAMP)"
		cat "$STAMP"
	else
		BN="bisect-$(chroot_key)"
		B="$CACHE/kbuild/$BN"
		SRC="$CACHE/bisect-src"
		if ! git -C "$SRC" rev-parse --git-dir > /dev/null 2>&1; then
			rm -rf "$SRC"; g worktree prune
			g worktree add -q --detach "$SRC" refs/series/head
		fi
		MK="make -s -C /cache/bisect-src O=/cache/kbuild/$BN ARCH=arm64 \
CROSS_COMPILE=aarch64-linux-gnu- CC='ccache aarch64-linux-gnu-gcc' \
KBUILD_BUILD_TIMESTAMP='Thu Jan  1 00:00:00 UTC 2026' KBUILD_BUILD_USER=bed \
KBUILD_BUILD_HOST=vhost-iommu"
		mkdir -p "$B" "$CACHE/series-built" "$CACHE/ccache"
		# The configuration is made once, on the whole series, and kept
		# aside: each step starts from it, so an option whose Kconfig entry
		# a later patch adds is not lost on the way.
		git -C "$SRC" checkout -q --detach refs/series/head
		in_chroot bash -c "set -e; cd /cache/bisect-src; $MK allnoconfig >/dev/null
			KCONFIG_CONFIG=/cache/kbuild/$BN/.config scripts/kconfig/merge_config.sh -m \
				-O /cache/kbuild/$BN /cache/kbuild/$BN/.config \
				/src/tools/testing/selftests/vhost_iommu/config.bisect >/dev/null
			$MK olddefconfig >/dev/null; cp /cache/kbuild/$BN/.config /cache/kbuild/$BN.config"
		while IFS= read -r line; do
			grep -qxF "$line" "$B.config" || die "config.bisect: $line did not survive olddefconfig"
		done < "$REPO/tools/testing/selftests/vhost_iommu/config.bisect"
		res=$(mktemp)
		i=0
		for c in $(g rev-list --reverse base..refs/series/head); do
			i=$((i + 1))
			subj=$(g log -1 --format=%s "$c")
			if ! g diff --name-only "$c^" "$c" | grep -qvE '^(Documentation/|tools/|MAINTAINERS$)'; then
				echo "patch $i: not built (touches only Documentation/, tools/ or MAINTAINERS): $subj" | tee -a "$res"
				continue
			fi
			git -C "$SRC" checkout -q --detach "$c"
			t0=$(date +%s)
			if in_chroot bash -c "cp /cache/kbuild/$BN.config /cache/kbuild/$BN/.config &&
				$MK olddefconfig >/dev/null && $MK -j$(nproc) Image" > "$B.log" 2>&1; then
				echo "patch $i: builds ($(( $(date +%s) - t0 )) s): $subj" | tee -a "$res"
				# Compiler warnings in the files the patch touches count too.
				w=$(grep -E 'warning:' "$B.log" | grep -F -f <(g diff --name-only "$c^" "$c" | grep -E '\.[ch]$' || echo NONE) || true)
				if [ -n "$w" ]; then echo "$w"; echo "patch $i: warnings above"; rc=1; fi
			else
				grep -E 'error|Error' "$B.log" | head -20; tail -5 "$B.log"
				echo "patch $i: BUILD FAILS: $subj"; rc=1
			fi
		done
		if [ $rc = 0 ]; then cp "$res" "$STAMP"; log "series: builds after every patch"; fi
		rm -f "$res"
	fi
fi
g worktree remove --force "$WT/am"; rm -rf "$WT"
exit $rc
