#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Compare two built kernels with vhost_iommu_bench: boot them in turn
# (A B A B ...), then print, per target, path and batch size, the median over
# the boots of each boot's medians, for A and for B, and B/A.
#
#   bed/bench-ab.sh [-n ROUNDS] [-a BENCH_ARGS] KERNEL_DIR_A KERNEL_DIR_B
#   bed/bench-ab.sh -s LOG_DIR       # summarise the logs of an earlier run
#
# A kernel directory is what bed/kernel.sh prints (Image, include/). Copy it
# out of the cache first: the cache keeps only the two newest per flavour.
# Boots of one kernel vary by up to 1.5x on TCG (all paths alike), so a
# change shows in the figures that are ratios within a boot (worker CPU over
# the bare ioctl's, fast over user) more than in requests per second.
. "$(dirname "$0")/common.sh"

rounds=3
args=-n,1024,-r,7
summary=""
while getopts "n:a:s:h" opt; do
	case "$opt" in
	n) rounds=$OPTARG ;;
	a) args=$OPTARG ;;
	s) summary=$OPTARG ;;
	*) sed -n '3,14p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
	esac
done
shift $((OPTIND - 1))

summarise() {
	local dir=$1
	python3 - "$dir" <<'EOF'
import glob, os, re, statistics, sys

d = sys.argv[1]
vals = {}	# (metric key) -> {"A": [...], "B": [...]}
for f in sorted(glob.glob(os.path.join(d, "[AB].*.log"))):
    side = os.path.basename(f)[0]
    for line in open(f, errors="replace"):
        m = re.match(r"BENCH target=(\S+) path=(\S+) batch=(\d+) .*rps_median=(\S+) .*"
                     r"cpu_ns_per_req=(\S+) helper_ns_per_req=(\S+) guest_ns_per_req=(\S+)", line)
        if m:
            t, p, b, rps, cpu, hlp, gst = m.groups()
            for name, v in (("req/s", rps), ("cpu ns/rq", cpu), ("helper ns/rq", hlp)):
                if name == "helper ns/rq" and p in ("floor",):
                    continue
                vals.setdefault((t, p, int(b), name), {}).setdefault(side, []).append(float(v))
            continue
        m = re.match(r"BENCH-RATIO target=(\S+) ratio=(\S+) (batch|path)=(\S+) median=(\S+)", line)
        if m:
            t, r, kind, what, med = m.groups()
            key = (t, r, int(what) if kind == "batch" else what, "ratio")
            vals.setdefault(key, {}).setdefault(side, []).append(float(med))

def med(x):
    return statistics.median(x) if x else float("nan")

print(f"{'target':7} {'path/ratio':22} {'batch':>5} {'metric':13} {'A':>11} {'B':>11} {'B/A':>6}  boots")
for key in sorted(vals, key=lambda k: (k[0], k[3] == "ratio", k[1], str(k[2]), k[3])):
    t, p, b, name = key
    a, bb = vals[key].get("A", []), vals[key].get("B", [])
    ma, mb = med(a), med(bb)
    ratio = mb / ma if a and bb and ma else float("nan")
    print(f"{t:7} {p:22} {b!s:>5} {name:13} {ma:11.2f} {mb:11.2f} {ratio:6.2f}  {len(a)}/{len(bb)}")
EOF
}

if [ -n "$summary" ]; then
	summarise "$summary"
	exit 0
fi
[ $# = 2 ] || die "usage: $0 [-n ROUNDS] [-a BENCH_ARGS] KERNEL_DIR_A KERNEL_DIR_B"
for k in "$1" "$2"; do
	[ -f "$k/Image" ] || die "$k: no Image (a directory printed by bed/kernel.sh)"
done

out="$CACHE/bench-ab/$(date +%Y%m%d-%H%M%S)"
mkdir -p "$out"
echo "A=$1" > "$out/kernels"
echo "B=$2" >> "$out/kernels"
for i in $(seq "$rounds"); do
	for side in A B; do
		dir=$1
		[ "$side" = B ] && dir=$2
		log "bench-ab: round $i/$rounds, kernel $side"
		VMTEST_VERBOSE=1 "$REPO/tools/testing/selftests/vhost_iommu/vmtest.sh" -k "$dir" \
			"vhost_iommu_bench:$args" > "$out/$side.$i.log" 2>&1 ||
			die "bench failed on $dir (log: $out/$side.$i.log)"
	done
done
log "bench-ab: logs in $out"
summarise "$out"
