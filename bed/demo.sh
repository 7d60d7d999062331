#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# The main job: build (or reuse) the kernel, boot the test VM with its
# emulated nested SMMUv3 and two edu devices, and show the nested
# translation at work: DMA through guest stage-1 + host stage-2 tables, a
# stale IOTLB entry after a page-table change, the right page after the
# invalidation, and a second VM's entries untouched.
. "$(dirname "$0")/common.sh"
ST="$REPO/tools/testing/selftests/vhost_iommu"
VMTEST_VERBOSE=1 exec bash "$ST/vmtest.sh" nested_smmu "$@"
