#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# The main job: build (or reuse) the kernel, boot the test VM, and in it
# start vhost-iommu-vmm (tools/vhost_iommu_vmm), a small KVM VMM that boots
# the same kernel as an inner guest. The guest's stock virtio-iommu driver
# talks to a request queue the VMM serves itself (ATTACH, PROBE, MAP, UNMAP);
# the VMM translates the DMA of the guest's virtio-rng through those
# mappings. The guest reads /dev/hwrng; a stray DMA of the device is refused
# and its fault written on the VMM's event queue. /dev/vhost-iommu serves
# only the fast-path queues of VIRTIO_IOMMU_F_INVALQ, which a stock guest
# does not negotiate: the VMM takes the device and leaves it idle. Every
# request is printed, then a table of what went where.
#
# Then, in the same VM boot, the fast-path demo on the nested SMMUv3
# (tools/testing/selftests/vhost_iommu/vhost_iommu_demo.c): the guest's
# INVALIDATE on an invalidation queue of /dev/vhost-iommu, served in the
# kernel; DMA shows the stale IOTLB entry, then the new page. The verdict
# lists both programs, each with its own pass/fail.
#
# bed/demo.sh --smmu: the fast-path demo alone.
. "$(dirname "$0")/common.sh"
ST="$REPO/tools/testing/selftests/vhost_iommu"
if [ "${1:-}" = --smmu ]; then
	shift
	VMTEST_VERBOSE=1 exec bash "$ST/vmtest.sh" "$@" vhost_iommu_demo
fi
VMTEST_VERBOSE=1 exec bash "$ST/vmtest.sh" "$@" vhost_iommu_guest:-d vhost_iommu_demo
