#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# /init of the inner guest that vhost-iommu-vmm boots (busybox). Reads
# "guest.n" 64-byte blocks from /dev/hwrng (virtio-rng behind the
# virtio-iommu), prints their md5 and what the kernel said about the IOMMU,
# then reboots until the last boot ("guest.boots") and powers off.

mount -t proc none /proc
mount -t sysfs none /sys
mount -t devtmpfs none /dev

arg() { tr ' ' '\n' < /proc/cmdline | sed -n "s/^$1=//p" | tail -1; }
boot=$(arg vmm.boot)
n=$(arg guest.n)
boots=$(arg guest.boots)
: "${boot:=1}" "${n:=64}" "${boots:=1}"

echo "GUEST-BOOTED boot=$boot uptime=$(cut -d' ' -f1 /proc/uptime)"
dmesg | grep -e 'input address' -e 'page mask' -e 'iommu group' |
	sed "s/^/GUEST-DMESG boot=$boot /"
echo "GUEST-RNG boot=$boot current=$(cat /sys/class/misc/hw_random/rng_current)"

t0=$(cut -d' ' -f1 /proc/uptime)
sum=$(dd if=/dev/hwrng bs=64 count="$n" 2>/dev/null | md5sum | cut -d' ' -f1)
t1=$(cut -d' ' -f1 /proc/uptime)
echo "GUEST-DATA boot=$boot blocks=$n bytes=$((n * 64)) md5=$sum start=$t0 end=$t1"

# Faults the virtio-iommu driver received on its event queue
sleep 1
dmesg | grep 'fault from EP' | sed "s/^/GUEST-FAULT boot=$boot /"

if [ "$boot" -lt "$boots" ]; then
	echo "GUEST-REBOOT boot=$boot"
	reboot -f
fi
echo "GUEST-POWEROFF boot=$boot"
poweroff -f
