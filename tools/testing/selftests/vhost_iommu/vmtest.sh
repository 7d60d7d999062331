#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Boot the vhost-iommu test kernel in an arm64 QEMU "virt" machine with an
# emulated, nesting-capable SMMUv3 (ACPI boot, IORT patched to mark the root
# complex CANWBS), two "edu" PCI devices bound to vfio-pci, and run the
# selftests inside. The run fails on any failed test and on any Oops, WARN,
# BUG, KASAN, UBSAN, lockdep, RCU or kmemleak report in the guest's kernel log.
#
# In the spirit of tools/testing/selftests/vsock/vmtest.sh and bpf's vmtest.sh.

SELF_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$SELF_DIR/../../../../bed/common.sh"

usage() {
	cat <<EOT
Usage: $0 [options] [TEST[:ARGS]]...

Builds (or reuses) the kernel and the static arm64 test programs, boots the
test VM and runs the tests. With no TEST, runs the whole suite:
$(suite | awk '{printf "  %-18s %4s s  %s\n", $1, $2, $3}')
ARGS are passed to the test program, with commas for spaces, for example
  $0 nested_smmu:-t,stale_iotlb      one test of a kselftest_harness program
  $0 iommufd:-f,iommufd_viommu         one fixture of the iommufd selftest

Options:
  -f FLAVOR   kernel flavour: debug (default; KASAN, UBSAN, lockdep, kmemleak)
              or bench (no debug options, for measurements)
  -k DIR      use an already built kernel directory (Image, include/)
  -T SECS     timeout of the whole VM run (default: sum of the tests + 300)
  -q ARGS     extra QEMU arguments
  -a ARGS     extra kernel command line
  -s          start a shell in the VM instead of the tests (interactive)
  -K          keep going when the kernel log has a splat (report only)
  -h          this help
Environment: VHOST_IOMMU_CACHE (cache directory, default ~/.cache/vhost-iommu),
VMTEST_TEST_TIMEOUT (timeout of each named test, seconds).
EOT
}

# name, timeout in seconds (debug kernel), mode, command line inside the VM.
# "par" tests start first and run in the background, beside the "seq" ones,
# so that both vCPUs work; their output is printed when they are done.
suite() {
	cat <<'EOT'
kunit              0    seq -
iommufd            1500 par /tests/iommufd
nested_smmu        300  seq /tests/nested_smmu
iommufd_fail_nth   900  seq /tests/iommufd_fail_nth
EOT
	# Programs of this directory's Makefile join the suite automatically.
	local p t
	for p in $(sed -n 's/^TEST_GEN_PROGS += //p' "$SELF_DIR/Makefile"); do
		[ "$p" = nested_smmu ] && continue
		# The fuzzer's default million requests: 4-7 minutes
		t=600
		[ "$p" = vhost_iommu_fuzz ] && t=900
		# Seven inner-guest runs, about a minute each
		[ "$p" = vhost_iommu_guest ] && t=1200
		# About 60 edu DMAs of ~100 ms of virtual time each: 7 s on the debug kernel
		[ "$p" = vhost_iommu_edu ] && t=120
		printf '%-18s %-4s seq /tests/%s\n' "$p" "$t" "$p"
	done
	# The benchmark as a smoke test: every path, a few requests, no timing
	printf '%-18s %-4s seq /tests/%s\n' bench_smoke 300 "vhost_iommu_bench -n 64 -r 1"
}

FLAVOR=debug
KDIR=
TIMEOUT=
QEMU_EXTRA=
CMDLINE_EXTRA=
SHELL_MODE=0
KEEP_GOING=0
while getopts "f:k:T:q:a:sKh" opt; do
	case $opt in
	f) FLAVOR=$OPTARG ;;
	k) KDIR=$OPTARG ;;
	T) TIMEOUT=$OPTARG ;;
	q) QEMU_EXTRA=$OPTARG ;;
	a) CMDLINE_EXTRA=$OPTARG ;;
	s) SHELL_MODE=1 ;;
	K) KEEP_GOING=1 ;;
	h) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))

T0=$(date +%s)
stage() { log "stage: $* (+$(( $(date +%s) - T0 )) s)"; }

# Select the tests.
SEL=$(mktemp)
RUNDIR=$(mktemp -d)
cleanup() { rm -rf "$SEL" "$RUNDIR" ${RUN:+"$RUN"}; }
trap cleanup EXIT
if [ $# -eq 0 ]; then
	suite > "$SEL"
else
	for t in "$@"; do
		name=${t%%:*}
		args=
		[ "$name" != "$t" ] && args=${t#*:}
		line=$(suite | awk -v n="$name" '$1 == n')
		# Programs built but not in the suite (the demo) can be named too.
		if [ -z "$line" ] &&
		   grep -qE "^TEST_GEN_PROGS_EXTENDED .*\<$name\>" "$SELF_DIR/Makefile"; then
			line="$name 600 seq /tests/$name"
		fi
		[ -n "$line" ] || die "unknown test '$name' (see -h)"
		# make bench: one long run of a program
		[ -n "${VMTEST_TEST_TIMEOUT:-}" ] &&
			line=$(echo "$line" | awk -v t="$VMTEST_TEST_TIMEOUT" '{ $2 = t; print }')
		# A test run alone needs no company: run it in the foreground.
		echo "$line${args:+ ${args//,/ }}" | sed 's/ par / seq /' >> "$SEL"
	done
fi

# 1. Kernel.
stage "kernel"
if [ -z "$KDIR" ]; then
	KDIR=$("$BED_DIR/kernel.sh" "$FLAVOR" | tail -1)
else
	"$BED_DIR/tree.sh" > /dev/null	# the test programs are built from it
fi
[ -f "$KDIR/Image" ] || die "no Image in $KDIR"
KREL=$(basename "$KDIR")
# Each run has its own directory, so that runs can go on side by side.
RUNREL=run/$$
RUN=$CACHE/$RUNREL
CRUN=/cache/$RUNREL
mkdir -p "$RUN"
rm -rf "$RUN/kernel"
case "$KDIR" in
"$CACHE"/*) ln -sfn "../../${KDIR#"$CACHE"/}" "$RUN/kernel" ;;	# seen from the chroot too
*) mkdir -p "$RUN/kernel"; cp -a "$KDIR/Image" "$KDIR/include" "$RUN/kernel/" ;;
esac

# 2. Test programs, built static in the assembled tree.
stage "test programs"
TESTOUT=$CRUN/tests
mkdir -p "$RUN/tests/vhost_iommu" "$RUN/tests/iommu"
KHDR="-isystem $CRUN/kernel/include"
TOUT="-DTEST_TIMEOUT_DEFAULT=600"
in_chroot bash -c "set -e
	make -k -s -C /cache/linux/tools/testing/selftests/vhost_iommu OUTPUT=$TESTOUT/vhost_iommu \
		CC='aarch64-linux-gnu-gcc -static' KHDR_INCLUDES='$KHDR' \
		USERCFLAGS='$TOUT' 2>&1 || :
	make -s -C /cache/linux/tools/testing/selftests/iommu OUTPUT=$TESTOUT/iommu \
		CC='aarch64-linux-gnu-gcc -static' KHDR_INCLUDES='$KHDR' USERCFLAGS='$TOUT' 2>&1" |
	grep -v 'warning: Using .getpwnam\|getpwnam\|in statically linked' >&2 || true
for p in $(awk '$4 != "-" {print $4}' "$SEL"); do
	b=$(basename "$p")
	[ -x "$RUN/tests/vhost_iommu/$b" ] || [ -x "$RUN/tests/iommu/$b" ] ||
		die "test program $b was not built"
done

# 3. The IORT override: QEMU's own IORT with CANWBS set on the root
#    complex, made once per QEMU build by booting a probe VM.
QEMU_ARGS="-M virt,iommu=smmuv3,gic-version=3,virtualization=on -cpu max,pauth-impdef=on \
-smp 2 -m 2G -nographic -no-reboot -nic none \
-bios /usr/share/qemu-efi-aarch64/QEMU_EFI.fd -device edu -device edu"
IORT="$CACHE/iort-$(key_of "$(chroot_key)" "$QEMU_ARGS" "$SELF_DIR/iort_canwbs.py").cpio"
BUSYBOX=$CHROOT/opt/busybox-arm64/usr/bin/busybox

mkinitramfs() { # dir under $CACHE -> cpio.gz on stdout (cpio runs in the chroot)
	in_chroot sh -c "cd /cache/${1#"$CACHE"/} && find . | LC_ALL=C sort |
		cpio -o -H newc --quiet -R 0:0 | gzip -1"
}

base_root() { # dir
	mkdir -p "$1"/{bin,sbin,proc,sys,dev,tmp,tests,etc,mnt}
	cp "$BUSYBOX" "$1/bin/busybox"
	for a in sh mount mkdir cat echo ls sleep poweroff dmesg base64 cut grep awk timeout \
		uname date sed head tail wc find chmod ln rm cp tr readlink basename seq od; do
		ln -sf busybox "$1/bin/$a"
	done
}

run_qemu() { # initrd timeout log append...
	local initrd=$1 tmo=$2 logf=$3; shift 3
	# shellcheck disable=SC2086
	in_chroot timeout --foreground -k 10 "$tmo" qemu-system-aarch64 $QEMU_ARGS $QEMU_EXTRA \
		-kernel $CRUN/kernel/Image -initrd "$initrd" -append "$*" \
		< /dev/null > "$logf" 2>&1
}

if [ ! -f "$IORT" ]; then
	stage "probe boot for the IORT table"
	P=$RUN/probe; base_root "$P"
	cat > "$P/init" <<'EOT'
#!/bin/sh
mount -t proc none /proc; mount -t sysfs none /sys
echo IORT-BEGIN; base64 /sys/firmware/acpi/tables/IORT; echo IORT-END
poweroff -f
EOT
	chmod +x "$P/init"
	mkinitramfs "$P" > "$RUN/probe.cpio.gz"
	run_qemu $CRUN/probe.cpio.gz 300 "$RUN/probe.log" \
		console=ttyAMA0 acpi=force panic=-1 loglevel=3 || true
	tr -d '\r' < "$RUN/probe.log" | sed -n '/IORT-BEGIN/,/^IORT-END/p' | sed '1d;$d' |
		base64 -d > "$RUN/iort.orig" 2>/dev/null ||
		{ tail -30 "$RUN/probe.log"; die "could not read QEMU's IORT"; }
	mkdir -p "$RUN/iortroot/kernel/firmware/acpi"
	in_chroot python3 /src/tools/testing/selftests/vhost_iommu/iort_canwbs.py $CRUN/iort.orig \
		$CRUN/iortroot/kernel/firmware/acpi/iort.aml >&2 || die "IORT patch failed"
	in_chroot sh -c "cd $CRUN/iortroot && find kernel | LC_ALL=C sort |
		cpio -o -H newc --quiet -R 0:0" > "$IORT.tmp"
	mv "$IORT.tmp" "$IORT"
fi

# 4. The initramfs.
stage "initramfs"
R=$RUN/root; base_root "$R"
cp "$RUN"/tests/vhost_iommu/* "$RUN"/tests/iommu/* "$R/tests/" 2>/dev/null || true
awk '{ printf "%s %s %s", $1, $2, $3
	for (i = 4; i <= NF; i++) printf " %s", $i
	printf "\n" }' "$SEL" > "$R/tests/list"
echo "$SHELL_MODE" > "$R/etc/shell_mode"
cp "$SELF_DIR/vm_init.sh" "$R/init"; chmod +x "$R/init"
# The inner guest that vhost_iommu_guest (and the demo) boot under KVM: the
# same Image and a busybox initramfs with vhost_iommu_edu, under /guest.
if awk '{ print $1 }' "$SEL" | grep -qxE 'vhost_iommu_guest|vhost-iommu-vmm'; then
	G=$RUN/guest; base_root "$G"
	for a in dd md5sum reboot; do ln -sf busybox "$G/bin/$a"; done
	cp "$SELF_DIR/guest_init.sh" "$G/init"; chmod +x "$G/init"
	# The edu DMA test, for a guest with an assigned edu ("guest.edu=ARGS")
	cp "$RUN/tests/vhost_iommu/vhost_iommu_edu" "$G/bin/" ||
		die "vhost_iommu_edu was not built (the inner guest runs it)"
	# The DMA-mapping benchmark's guest side ("guest.bench=...")
	cp "$RUN/tests/vhost_iommu/vhost_iommu_dmabench" "$G/bin/" ||
		die "vhost_iommu_dmabench was not built (the inner guest runs it)"
	mkdir -p "$R/guest"
	mkinitramfs "$G" > "$R/guest/initrd.gz"
	cp "$RUN/kernel/Image" "$R/guest/Image"
fi
mkinitramfs "$R" > "$RUN/root.cpio.gz"
cat "$IORT" "$RUN/root.cpio.gz" > "$RUN/initrd"

# 5. Boot and run.
if [ -z "$TIMEOUT" ]; then
	TIMEOUT=$(awk '{ s += $2 } END { print s + 300 }' "$SEL")
	[ "$FLAVOR" = bench ] && TIMEOUT=$((TIMEOUT / 2 + 300))
fi
CMDLINE="console=ttyAMA0 acpi=force panic=-1 panic_on_warn=1 loglevel=5 hugepages=80 \
kmemleak=on oops=panic log_buf_len=8M $CMDLINE_EXTRA"
LOG=$RUN/console.log
if [ "$SHELL_MODE" = 1 ]; then
	# shellcheck disable=SC2086
	in_chroot qemu-system-aarch64 $QEMU_ARGS $QEMU_EXTRA -kernel $CRUN/kernel/Image \
		-initrd $CRUN/initrd -append "$CMDLINE"
	exit 0
fi
stage "boot ($KREL, timeout ${TIMEOUT} s)"
run_qemu $CRUN/initrd "$TIMEOUT" "$LOG" "$CMDLINE" &
qpid=$!
# Stream the test output (not the kernel log) while the VM runs; tail ends
# with the VM (--pid), so the pipe is not held open after this script.
SHOW='^(VMTEST|ok |not ok |# (PASSED|FAILED|Totals|  RUN|     OK|  FAIL|  SKIP))'
[ "${VMTEST_VERBOSE:-0}" = 1 ] && SHOW='.'
# The kernel log dumped at the end is for the verdict, not for the screen.
( tail --pid="$qpid" -n +1 -F "$LOG" 2>/dev/null | tr -d '\r' |
  awk -v show="$SHOW" '/VMTEST-DMESG-BEGIN/ { skip = 1 } /VMTEST-DMESG-END/ { skip = 0; next }
	!skip && $0 ~ show { print; fflush() }' ) &
tpid=$!
qrc=0; wait $qpid || qrc=$?
sleep 1; kill $tpid 2>/dev/null || true; wait $tpid 2>/dev/null || true
stage "VM exited (qemu status $qrc)"

# 6. Verdict.
tr -d '\r' < "$LOG" > "$RUN/log"
cp "$LOG" "$CACHE/last-console.log"
cp "$SEL" "$RUN/selection"
in_chroot python3 /src/tools/testing/selftests/vhost_iommu/vm_verdict.py $CRUN/log \
	$CRUN/selection "$KEEP_GOING" "$qrc"
