# SPDX-License-Identifier: GPL-2.0
#
# vhost-iommu: build the patched Linux 7.3 arm64 kernel, boot it under QEMU
# with an emulated nested SMMUv3, and run the tests. Run as root on Debian
# (the toolchain lives in a Debian trixie chroot under $(CACHE)).
#
#   make demo      the main job: boot the test VM and show the nested SMMUv3
#                  at work, step by step
#   make test      build everything and run the whole suite in the VM
#   make bench     the inner guest's DMA map+unmap cycles/s on the non-debug
#                  kernel: table mode served by vhost-iommu against every
#                  userspace way and the stock MAP/UNMAP (BENCH_ROUNDS=5)
#
# Other targets: toolchain, tree, kernel, bench-kernel, bench-ring (the ring
# against stand-ins, BENCH_ARGS=-n,2048,-r,9), regen, checkpatch, lint,
# series, series-build, docs, ci, shell, clean-cache.
# T=name runs one test: make test T=nested_smmu

CACHE ?= $(or $(VHOST_IOMMU_CACHE),$(HOME)/.cache/vhost-iommu)
export VHOST_IOMMU_CACHE := $(CACHE)
ST := tools/testing/selftests/vhost_iommu

.PHONY: all demo test bench bench-ring toolchain tree kernel bench-kernel regen checkpatch lint series series-build docs ci shell clean-cache help

all: help

help:
	@sed -n '3,17p' Makefile | sed 's/^# \{0,1\}//'

toolchain:
	bash bed/toolchain.sh

tree: toolchain
	bash bed/tree.sh

kernel: toolchain
	bash bed/kernel.sh debug

bench-kernel: toolchain
	bash bed/kernel.sh bench

demo: toolchain
	bash bed/demo.sh

test: toolchain
	bash $(ST)/vmtest.sh $(T)

BENCH_SECS ?= 2
BENCH_ROUNDS ?= 5
bench: toolchain
	VMTEST_VERBOSE=1 VMTEST_TEST_TIMEOUT=3000 bash $(ST)/vmtest.sh -f bench -T 3300 \
		vhost_iommu_guest:-B,$(BENCH_SECS),-r,$(BENCH_ROUNDS)

bench-ring: toolchain
	VMTEST_VERBOSE=1 bash $(ST)/vmtest.sh -f bench vhost_iommu_bench$(if $(BENCH_ARGS),:$(BENCH_ARGS))

shell: toolchain
	bash $(ST)/vmtest.sh -s

regen:
	bash bed/regen.sh

checkpatch: tree
	bash bed/checkpatch.sh

# W=1 and sparse on every C file the series changes; lines it adds must be clean.
lint: toolchain
	bash bed/lint.sh

clean-cache:
	-bash -c '. bed/common.sh; for c in "$$CACHE"/chroot-*; do CHROOT=$$c umount_chroot; done'
	rm -rf --one-file-system "$(CACHE)"

# The work as a posted series (patches + new files folded, cover letter),
# checked: git am on a pristine base, checkpatch --strict on every patch.
series: toolchain
	bash bed/series.sh

# The same, and the kernel built after every patch (bisectability).
series-build: toolchain
	bash bed/series.sh --build

# make htmldocs of the userspace-api book; no warning about our files.
docs: toolchain
	bash bed/docs.sh

# What CI runs: the suite, then the series and documentation checks.
ci: toolchain
	bash .ci/run
