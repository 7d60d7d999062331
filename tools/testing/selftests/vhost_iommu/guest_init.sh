#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# /init of the inner guest that vhost-iommu-vmm boots (busybox). Reads
# "guest.n" 64-byte blocks from /dev/hwrng (virtio-rng behind the
# virtio-iommu), prints their md5 and what the kernel said about the IOMMU,
# runs vhost_iommu_edu when asked ("guest.edu=ARGS") and the DMA-mapping
# benchmark ("guest.bench=..."), then reboots until the
# last boot ("guest.boots") and powers off.

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
# KVM also offers the SMCCC TRNG: read the virtio-rng (the endpoint)
hw=/sys/class/misc/hw_random
for i in 1 2 3 4 5 6 7 8 9 10; do
	rng=$(tr ' ' '\n' < $hw/rng_available | grep '^virtio_rng' | head -1)
	[ -n "$rng" ] && break
	sleep 1
done
[ -n "$rng" ] && echo "$rng" > $hw/rng_current
echo "GUEST-RNG boot=$boot current=$(cat $hw/rng_current) available=$(cat $hw/rng_available)"

t0=$(cut -d' ' -f1 /proc/uptime)
dd if=/dev/hwrng of=/tmp/data bs=64 count="$n" 2>/dev/null
t1=$(cut -d' ' -f1 /proc/uptime)
sum=$(md5sum /tmp/data | cut -d' ' -f1)
echo "GUEST-DATA boot=$boot blocks=$n bytes=$(wc -c < /tmp/data) md5=$sum start=$t0 end=$t1"

# Faults the virtio-iommu driver received on its event queue
sleep 1
dmesg | grep 'fault from EP' | sed "s/^/GUEST-FAULT boot=$boot /"

# The edu DMA test on an assigned edu: guest.edu=ARGS (commas for spaces;
# empty for all its tests), every line as "GUEST-EDU boot=N ...", the last
# one its exit status.
if tr ' ' '\n' < /proc/cmdline | grep -q '^guest\.edu='; then
	edu_args=$(arg guest.edu | tr ',' ' ')
	# shellcheck disable=SC2086
	{ /bin/vhost_iommu_edu $edu_args 2>&1; echo "rc=$?"; } | sed "s/^/GUEST-EDU boot=$boot /"
fi

# The DMA-mapping benchmark (vhost_iommu_guest -B): "guest.bench=SECS:SIZES"
# or "SECS:SIZES:count", dma_map_benchmark on the first assigned device
if tr ' ' '\n' < /proc/cmdline | grep -q '^guest\.bench='; then
	# No pipe: the host snapshots its counters on each line as it comes
	# shellcheck disable=SC2046
	BENCH_PREFIX="GUEST-BENCH boot=$boot " /bin/vhost_iommu_dmabench 0000:00:01.0 \
		$(arg guest.bench | tr ':' ' ') 2>&1
fi

if [ "$boot" -lt "$boots" ]; then
	echo "GUEST-REBOOT boot=$boot"
	reboot -f
fi
echo "GUEST-POWEROFF boot=$boot"
poweroff -f
