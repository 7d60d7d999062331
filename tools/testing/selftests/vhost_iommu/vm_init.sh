#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# /init of the vhost-iommu test VM (busybox). Runs the tests named in
# /tests/list ("name timeout command args..."), each between VMTEST markers,
# then asks kmemleak for a scan and dumps the kernel log for the host.

mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
mount -t debugfs debugfs /sys/kernel/debug
mkdir -p /dev/hugepages /dev/pts
mount -t hugetlbfs hugetlbfs /dev/hugepages
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

while read -r name tmo cmd args; do
	[ "$cmd" = "-" ] && continue
	echo "VMTEST-BEGIN $name"
	t0=$(cut -d' ' -f1 /proc/uptime)
	cd /tmp
	# shellcheck disable=SC2086
	timeout -s KILL "$tmo" "$cmd" $args 2>&1
	rc=$?
	cd /
	t1=$(cut -d' ' -f1 /proc/uptime)
	echo "VMTEST-END $name rc=$rc start=$t0 end=$t1"
done < /tests/list

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
