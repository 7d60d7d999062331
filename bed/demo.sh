#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# The main job: build (or reuse) the kernel, boot the test VM with its
# emulated nesting SMMUv3 and edu devices, and run the vhost-iommu demo
# (tools/testing/selftests/vhost_iommu/vhost_iommu_demo.c): the VMM sets up
# the nested SMMUv3 for edu, the guest's ATTACH_TABLE goes to the VMM, its
# INVALIDATEs stay in the kernel, DMA follows the page tables, and a table
# says what went where.
. "$(dirname "$0")/common.sh"
ST="$REPO/tools/testing/selftests/vhost_iommu"
VMTEST_VERBOSE=1 exec bash "$ST/vmtest.sh" vhost_iommu_demo "$@"
