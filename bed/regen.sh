#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Turn edits made in the assembled tree back into the repository.
#
# Edit files in $CACHE/linux and commit them there (one commit per logical
# change, with a proper subject and message). Then run this script:
#  - changes to the repository's own new files are copied back as plain files;
#  - changes to files of the base tree become patches: each commit is
#    appended to patches/ and patches/series as a new patch. To fix an
#    existing patch instead, squash the fix into its commit in a worktree at
#    that commit, format it, and replace the diff part of the patch file.
# Afterwards the assembled tree is rebuilt from the repository, so both agree.
. "$(dirname "$0")/common.sh"

TREE="$CACHE/linux"
g() { git -C "$TREE" "$@"; }
[ -n "$(g status --porcelain --untracked-files=no)" ] && die "commit your edits in $TREE first"
asm=$(g rev-parse refs/heads/assembled)
commits=$(g rev-list --reverse "$asm..HEAD")
[ -n "$commits" ] || { log "regen: no commits over the assembled tree"; exit 0; }
mkdir -p "$REPO/patches"
touch "$REPO/patches/series"
last=$(grep -v '^#' "$REPO/patches/series" | grep -c . || true)
for c in $commits; do
	base_files=()
	while read -r f; do
		if g cat-file -e "base:$f" 2>/dev/null; then
			base_files+=("$f")
		else
			if g cat-file -e "$c:$f" 2>/dev/null; then
				mkdir -p "$REPO/$(dirname "$f")"
				g show "$c:$f" > "$REPO/$f"
			else
				rm -f "$REPO/$f"
			fi
			log "regen: $f"
		fi
	done < <(g diff-tree --no-commit-id --name-only -r "$c")
	[ ${#base_files[@]} -gt 0 ] || continue
	last=$((last + 1))
	name=$(g format-patch -1 --stdout "$c" -- "${base_files[@]}" | sed -n 's/^Subject: \[PATCH\] //p' | head -1 |
		tr -c 'A-Za-z0-9\n' '-' | tr -s '-' | sed 's/^-//; s/-$//' | cut -c1-52)
	file=$(printf '%04d-%s.patch' "$last" "$name")
	g format-patch -1 --stdout --no-signature --zero-commit -N "$c" -- "${base_files[@]}" > "$REPO/patches/$file"
	echo "$file" >> "$REPO/patches/series"
	log "regen: patches/$file"
done
"$BED_DIR/tree.sh" >/dev/null
