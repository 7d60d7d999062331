#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# /init of the vhost-iommu test VM (busybox). Runs the tests named in
# /tests/list ("name timeout command args..."), each between VMTEST markers,
# then asks kmemleak for a scan and dumps the kernel log for the host.

mount -t proc none /proc
mount -t sysfs none /sys
mount -t devtmpfs none /dev
mount -t tmpfs none /tmp
mount -t debugfs none /sys/kernel/debug
mkdir -p /dev/hugepages /dev/pts
mount -t hugetlbfs none /dev/hugepages
export PATH=/bin:/sbin:/tests

echo "VMTEST-BOOTED uptime=$(cut -d' ' -f1 /proc/uptime) kernel=$(uname -r)"

# QEMU's edu devices (1234:11e8) go to vfio-pci for the nested SMMU tests.
for d in /sys/bus/pci/devices/*; do
	[ -e "$d/vendor" ] || continue
	if [ "$(cat "$d/vendor")" = 0x1234 ] && [ "$(cat "$d/device")" = 0x11e8 ]; then
		echo vfio-pci > "$d/driver_override"
		echo "${d##*/}" > /sys/bus/pci/drivers_probe
		echo "VMTEST-INFO edu ${d##*/} -> $(basename "$(readlink "$d/driver")")"
	fi
done

if [ "$(cat /etc/shell_mode)" = 1 ]; then
	echo "VMTEST-INFO shell; tests are in /tests"
	setsid sh -c 'exec sh </dev/ttyAMA0 >/dev/ttyAMA0 2>&1'
	poweroff -f
fi

run_one() { # name timeout command args...
	name=$1 tmo=$2 cmd=$3
	shift 3
	echo "VMTEST-BEGIN $name"
	t0=$(cut -d' ' -f1 /proc/uptime)
	# shellcheck disable=SC2086
	(cd /tmp && timeout -s KILL "$tmo" "$cmd" "$@" 2>&1)
	rc=$?
	t1=$(cut -d' ' -f1 /proc/uptime)
	echo "VMTEST-END $name rc=$rc start=$t0 end=$t1"
}

# Background tests first, their output kept aside until they end.
while read -r name tmo mode cmd args; do
	[ "$cmd" = "-" ] || [ "$mode" != par ] && continue
	# shellcheck disable=SC2086
	run_one "$name" "$tmo" "$cmd" $args > "/tmp/par.$name.out" 2>&1 &
	echo "VMTEST-INFO $name started in the background"
done < /tests/list
while read -r name tmo mode cmd args; do
	[ "$cmd" = "-" ] || [ "$mode" = par ] && continue
	# shellcheck disable=SC2086
	run_one "$name" "$tmo" "$cmd" $args
done < /tests/list
wait
for f in /tmp/par.*.out; do
	[ -e "$f" ] && cat "$f"
done

if [ -e /sys/kernel/debug/kmemleak ]; then
	# Objects freed by RCU or still in flight need a moment; scan twice.
	sleep 2
	echo scan > /sys/kernel/debug/kmemleak
	sleep 2
	echo scan > /sys/kernel/debug/kmemleak
	echo "VMTEST-KMEMLEAK-BEGIN"
	cat /sys/kernel/debug/kmemleak
	echo "VMTEST-KMEMLEAK-END"
fi
echo "VMTEST-DMESG-BEGIN"
dmesg
echo "VMTEST-DMESG-END"
echo "VMTEST-DONE uptime=$(cut -d' ' -f1 /proc/uptime)"
poweroff -f
