/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A nested SMMUv3 translation for QEMU's "edu" PCI device, driven from
 * userspace through vfio cdev and iommufd: the oracle with which every
 * invalidation path of vhost-iommu is proven.
 *
 * The test plays a guest: it owns a small "guest RAM" (IPA space, mapped at
 * stage 2 by iommufd), writes a stage-1 context descriptor and page tables
 * into it, installs a guest STE through a nested HWPT on a vIOMMU, and makes
 * the edu device DMA through the S1+S2 translation. QEMU's SMMUv3 caches
 * translations, so after a page-table change DMA keeps landing where the
 * stale IOTLB entry says until the right invalidation is issued.
 */
#ifndef NESTED_SMMU_LIB_H
#define NESTED_SMMU_LIB_H

#include <stdbool.h>
#include <stdint.h>
#include <linux/iommufd.h>

#include "edu_lib.h"

/* Guest RAM layout, in pages from NSMMU_IPA_BASE */
#define NSMMU_IPA_BASE		0x01000000ULL
#define NSMMU_PAGE_SIZE		4096ULL
#define NSMMU_PG_CD		0	/* context descriptor */
#define NSMMU_PG_L1		1	/* stage-1 tables, 4K granule, T0SZ 25 */
#define NSMMU_PG_L2		2
#define NSMMU_PG_L3		3
#define NSMMU_PG_A		4	/* data pages */
#define NSMMU_PG_B		5
#define NSMMU_PG_C		6
#define NSMMU_PG_SRC		7	/* the DMA source page */
#define NSMMU_NR_PAGES		16

/* Stage-1 virtual addresses used by the tests (all in one L3 table) */
#define NSMMU_VA_SRC		0x300000ULL
#define NSMMU_VA_X		0x200000ULL
#define NSMMU_VA_Y		0x201000ULL

/* SMMUv3 command opcodes the tests use */
#define NSMMU_CMD_CFGI_CD	0x05
#define NSMMU_CMD_CFGI_CD_ALL	0x06
#define NSMMU_CMD_TLBI_NH_ALL	0x10
#define NSMMU_CMD_TLBI_NH_ASID	0x11
#define NSMMU_CMD_TLBI_NH_VA	0x12
#define NSMMU_CMD_TLBI_S12_VMALL 0x28

struct nested_smmu {
	int iommufd;
	struct edu_dev edu;
	uint32_t ioas_id;
	uint32_t s2_hwpt_id;
	uint32_t viommu_id;
	uint32_t vdevice_id;
	uint32_t nested_hwpt_id;
	uint32_t vsid;
	uint16_t asid;
	uint8_t *ram;		/* guest RAM, NSMMU_NR_PAGES pages at NSMMU_IPA_BASE */
	struct iommu_hw_info_arm_smmuv3 hw;
	uint32_t pattern;	/* last pattern written by nsmmu_probe() */
	char err[256];		/* what failed, for the test's message */
};

/*
 * Set up the whole nested translation on the index-th edu device, on a new
 * iommufd: IOAS with the guest RAM at IPA, S2 nest parent, vIOMMU, vDEVICE
 * with @vsid, S1 tables mapping NSMMU_VA_SRC to the source page and
 * NSMMU_VA_X to page A, nested HWPT with a translating guest STE, attach.
 * Returns 0, or -errno with n->err set.
 */
int nsmmu_setup(struct nested_smmu *n, int index, uint32_t vsid);
void nsmmu_teardown(struct nested_smmu *n);

/*
 * The same in two halves, as a VMM does it: nsmmu_setup_host() prepares
 * everything up to the vDEVICE and writes the guest's tables into its RAM;
 * nsmmu_guest_ste() gives the STE a guest would hand over (ATTACH_TABLE);
 * nsmmu_attach_ste() makes the nested HWPT from it and attaches the device.
 */
int nsmmu_setup_host(struct nested_smmu *n, int index, uint32_t vsid);
void nsmmu_guest_ste(struct nested_smmu *n, uint64_t ste[2]);
int nsmmu_attach_ste(struct nested_smmu *n, const uint64_t ste[2]);

void *nsmmu_page(struct nested_smmu *n, int page);
uint64_t nsmmu_ipa(int page);
/* Point the stage-1 PTE of @va at guest page @page (no invalidation). */
void nsmmu_map(struct nested_smmu *n, uint64_t va, int page);
/* Rewrite the ASID of the context descriptor (no invalidation). */
void nsmmu_set_cd_asid(struct nested_smmu *n, uint16_t asid);

/*
 * The oracle: write a fresh pattern into the source page, DMA it through
 * the device to @va, and return the index of the guest page that received
 * it (-1 if none did, -2 if the DMA failed).
 */
int nsmmu_probe(struct nested_smmu *n, uint64_t va);
/* "page A", "page B", "page C", "nowhere" or "DMA error", for messages */
const char *nsmmu_page_name(int page);

/*
 * Native SMMUv3 invalidation through IOMMU_HWPT_INVALIDATE on the vIOMMU:
 * @cmds is an array of *@num commands of two 64-bit words each.
 */
int nsmmu_invalidate_cmds(struct nested_smmu *n, const void *cmds, uint32_t *num);
int nsmmu_tlbi_va(struct nested_smmu *n, uint64_t va);
int nsmmu_tlbi_asid(struct nested_smmu *n);

#endif
