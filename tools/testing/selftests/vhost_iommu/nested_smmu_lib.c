// SPDX-License-Identifier: GPL-2.0
/*
 * Nested SMMUv3 oracle for QEMU's edu device: vfio cdev + iommufd setup,
 * stage-1 context descriptor and page tables in "guest RAM". The edu
 * device itself is edu_lib.c's. See nested_smmu_lib.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <linux/vfio.h>

#include "nested_smmu_lib.h"

#ifndef BIT_ULL
#define BIT_ULL(nr)		(1ULL << (nr))
#endif

/* SMMUv3 STE/CD/PTE bits (Arm IHI 0070, as in arm-smmu-v3.h) */
#define STE0_V			BIT_ULL(0)
#define STE0_CFG_S1_TRANS	(5ULL << 1)
#define STE1_S1CIR_WBRA		BIT_ULL(2)
#define STE1_S1COR_WBRA		BIT_ULL(4)
#define STE1_S1CSH_ISH		(3ULL << 6)
#define CD0_T0SZ(x)		((uint64_t)(x) & 0x3f)
#define CD0_TG0_4K		(0ULL << 6)
#define CD0_IRGN0_WBWA		BIT_ULL(8)
#define CD0_ORGN0_WBWA		BIT_ULL(10)
#define CD0_SH0_ISH		(3ULL << 12)
#define CD0_EPD1		BIT_ULL(30)
#define CD0_V			BIT_ULL(31)
#define CD0_IPS_40BIT		(2ULL << 32)
#define CD0_AA64		BIT_ULL(41)
#define CD0_R			BIT_ULL(45)
#define CD0_A			BIT_ULL(46)
#define CD0_ASET		BIT_ULL(47)
#define CD0_ASID(x)		((uint64_t)(x) << 48)
#define PTE_VALID_TABLE		0x3ULL	/* valid, table (L1/L2) or page (L3) */
#define PTE_AP_EL0_RW		BIT_ULL(6)
#define PTE_SH_ISH		(3ULL << 8)
#define PTE_AF			BIT_ULL(10)
#define CMD_TLBI_ASID(x)	((uint64_t)(x) << 48)

static int fail(struct nested_smmu *n, int err, const char *fmt, ...)
{
	va_list ap;
	int len;

	va_start(ap, fmt);
	len = vsnprintf(n->err, sizeof(n->err), fmt, ap);
	va_end(ap);
	if (len >= 0 && (size_t)len < sizeof(n->err))
		snprintf(n->err + len, sizeof(n->err) - len, ": %s", strerror(err));
	return -err;
}

void *nsmmu_page(struct nested_smmu *n, int page)
{
	return n->ram + page * NSMMU_PAGE_SIZE;
}

uint64_t nsmmu_ipa(int page)
{
	return NSMMU_IPA_BASE + page * NSMMU_PAGE_SIZE;
}

static uint64_t *table(struct nested_smmu *n, int page)
{
	return nsmmu_page(n, page);
}

void nsmmu_map(struct nested_smmu *n, uint64_t va, int page)
{
	uint64_t *l3 = table(n, NSMMU_PG_L3);

	/* All test VAs share L1[0] -> L2[1] -> L3 (2 MiB .. 4 MiB) */
	l3[(va >> 12) & 0x1ff] = nsmmu_ipa(page) | PTE_AF | PTE_SH_ISH |
				  PTE_AP_EL0_RW | PTE_VALID_TABLE;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

static void build_tables(struct nested_smmu *n)
{
	uint64_t *cd = table(n, NSMMU_PG_CD);

	memset(n->ram, 0, NSMMU_NR_PAGES * NSMMU_PAGE_SIZE);
	table(n, NSMMU_PG_L1)[0] = nsmmu_ipa(NSMMU_PG_L2) | PTE_VALID_TABLE;
	table(n, NSMMU_PG_L2)[1] = nsmmu_ipa(NSMMU_PG_L3) | PTE_VALID_TABLE;
	nsmmu_map(n, NSMMU_VA_SRC, NSMMU_PG_SRC);
	nsmmu_map(n, NSMMU_VA_X, NSMMU_PG_A);
	cd[1] = nsmmu_ipa(NSMMU_PG_L1);
	cd[3] = 0;	/* MAIR: attribute 0 = device nGnRnE, unused by the model */
	cd[0] = CD0_T0SZ(25) | CD0_TG0_4K | CD0_IRGN0_WBWA | CD0_ORGN0_WBWA |
		CD0_SH0_ISH | CD0_EPD1 | CD0_V | CD0_IPS_40BIT | CD0_AA64 |
		CD0_R | CD0_A | CD0_ASET | CD0_ASID(n->asid);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

void nsmmu_set_cd_asid(struct nested_smmu *n, uint16_t asid)
{
	uint64_t *cd = table(n, NSMMU_PG_CD);

	n->asid = asid;
	cd[0] = (cd[0] & ~CD0_ASID(0xffff)) | CD0_ASID(asid);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

int nsmmu_setup_host(struct nested_smmu *n, int index, uint32_t vsid)
{
	struct iommu_hw_info info = { .size = sizeof(info) };
	struct iommu_ioas_alloc ioas = { .size = sizeof(ioas) };
	struct iommu_ioas_map map = { .size = sizeof(map) };
	struct iommu_hwpt_alloc s2 = { .size = sizeof(s2) };
	struct iommu_viommu_alloc viommu = { .size = sizeof(viommu) };
	struct iommu_vdevice_alloc vdev = { .size = sizeof(vdev) };
	int ret;

	memset(n, 0, sizeof(*n));
	n->edu.fd = -1;
	n->vsid = vsid;
	n->asid = 0x42;
	n->iommufd = open("/dev/iommu", O_RDWR | O_CLOEXEC);
	if (n->iommufd < 0)
		return fail(n, errno, "open /dev/iommu");
	ret = edu_open(&n->edu, index, n->iommufd);
	if (ret)
		return fail(n, -ret, "edu device %d", index);

	info.dev_id = n->edu.dev_id;
	info.data_len = sizeof(n->hw);
	info.data_uptr = (uintptr_t)&n->hw;
	if (ioctl(n->iommufd, IOMMU_GET_HW_INFO, &info))
		return fail(n, errno, "IOMMU_GET_HW_INFO");
	if (info.out_data_type != IOMMU_HW_INFO_TYPE_ARM_SMMUV3)
		return fail(n, EOPNOTSUPP, "not an SMMUv3 (type %u)", info.out_data_type);

	if (ioctl(n->iommufd, IOMMU_IOAS_ALLOC, &ioas))
		return fail(n, errno, "IOMMU_IOAS_ALLOC");
	n->ioas_id = ioas.out_ioas_id;

	n->ram = mmap(NULL, NSMMU_NR_PAGES * NSMMU_PAGE_SIZE, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (n->ram == MAP_FAILED) {
		n->ram = NULL;
		return fail(n, errno, "mmap guest RAM");
	}
	build_tables(n);
	map.flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE |
		    IOMMU_IOAS_MAP_WRITEABLE;
	map.ioas_id = n->ioas_id;
	map.user_va = (uintptr_t)n->ram;
	map.length = NSMMU_NR_PAGES * NSMMU_PAGE_SIZE;
	map.iova = NSMMU_IPA_BASE;
	if (ioctl(n->iommufd, IOMMU_IOAS_MAP, &map))
		return fail(n, errno, "IOMMU_IOAS_MAP of the guest RAM");

	s2.flags = IOMMU_HWPT_ALLOC_NEST_PARENT;
	s2.dev_id = n->edu.dev_id;
	s2.pt_id = n->ioas_id;
	if (ioctl(n->iommufd, IOMMU_HWPT_ALLOC, &s2))
		return fail(n, errno, "IOMMU_HWPT_ALLOC nest parent");
	n->s2_hwpt_id = s2.out_hwpt_id;

	viommu.type = IOMMU_VIOMMU_TYPE_ARM_SMMUV3;
	viommu.dev_id = n->edu.dev_id;
	viommu.hwpt_id = n->s2_hwpt_id;
	if (ioctl(n->iommufd, IOMMU_VIOMMU_ALLOC, &viommu))
		return fail(n, errno, "IOMMU_VIOMMU_ALLOC (is the IORT CANWBS override in place?)");
	n->viommu_id = viommu.out_viommu_id;

	vdev.viommu_id = n->viommu_id;
	vdev.dev_id = n->edu.dev_id;
	vdev.virt_id = vsid;
	if (ioctl(n->iommufd, IOMMU_VDEVICE_ALLOC, &vdev))
		return fail(n, errno, "IOMMU_VDEVICE_ALLOC");
	n->vdevice_id = vdev.out_vdevice_id;

	return 0;
}

void nsmmu_guest_ste(struct nested_smmu *n, uint64_t ste[2])
{
	ste[0] = nsmmu_ipa(NSMMU_PG_CD) | STE0_CFG_S1_TRANS | STE0_V;
	ste[1] = STE1_S1CIR_WBRA | STE1_S1COR_WBRA | STE1_S1CSH_ISH;
}

int nsmmu_attach_ste(struct nested_smmu *n, const uint64_t ste_words[2])
{
	struct iommu_hwpt_arm_smmuv3 ste = { .ste = { ste_words[0], ste_words[1] } };
	struct iommu_hwpt_alloc s1 = { .size = sizeof(s1) };
	struct vfio_device_attach_iommufd_pt attach = { .argsz = sizeof(attach) };

	s1.dev_id = n->edu.dev_id;
	s1.pt_id = n->viommu_id;
	s1.data_type = IOMMU_HWPT_DATA_ARM_SMMUV3;
	s1.data_len = sizeof(ste);
	s1.data_uptr = (uintptr_t)&ste;
	if (ioctl(n->iommufd, IOMMU_HWPT_ALLOC, &s1))
		return fail(n, errno, "IOMMU_HWPT_ALLOC nested (vSTE)");
	n->nested_hwpt_id = s1.out_hwpt_id;

	attach.pt_id = n->nested_hwpt_id;
	if (ioctl(n->edu.fd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &attach))
		return fail(n, errno, "VFIO_DEVICE_ATTACH_IOMMUFD_PT");
	return 0;
}

int nsmmu_setup(struct nested_smmu *n, int index, uint32_t vsid)
{
	uint64_t ste[2];
	int ret;

	ret = nsmmu_setup_host(n, index, vsid);
	if (ret)
		return ret;
	nsmmu_guest_ste(n, ste);
	return nsmmu_attach_ste(n, ste);
}

void nsmmu_teardown(struct nested_smmu *n)
{
	/* Closing the device detaches it; closing iommufd frees every object. */
	edu_close(&n->edu);
	if (n->iommufd >= 0)
		close(n->iommufd);
	n->iommufd = -1;
	if (n->ram)
		munmap(n->ram, NSMMU_NR_PAGES * NSMMU_PAGE_SIZE);
	n->ram = NULL;
}

int nsmmu_probe(struct nested_smmu *n, uint64_t va)
{
	static const int data_pages[] = { NSMMU_PG_A, NSMMU_PG_B, NSMMU_PG_C };
	uint32_t *src = nsmmu_page(n, NSMMU_PG_SRC);
	int i, found = -1;
	unsigned int w;

	n->pattern = (n->pattern + 0x01010101u) ^ 0x5a000000u;
	for (w = 0; w < 16; w++)
		src[w] = n->pattern + w;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	/* Source page -> device buffer -> @va, both through the nested tables */
	if (edu_dma(&n->edu, NSMMU_VA_SRC, 64, false) ||
	    edu_dma(&n->edu, va, 64, true))
		return -2;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	for (i = 0; i < 3; i++) {
		uint32_t *p = nsmmu_page(n, data_pages[i]);

		if (!memcmp(p, src, 64)) {
			if (found >= 0)
				return -3;
			found = data_pages[i];
		}
	}
	return found;
}

const char *nsmmu_page_name(int page)
{
	switch (page) {
	case NSMMU_PG_A: return "page A";
	case NSMMU_PG_B: return "page B";
	case NSMMU_PG_C: return "page C";
	case -1: return "nowhere";
	default: return "DMA error";
	}
}

int nsmmu_invalidate_cmds(struct nested_smmu *n, const void *cmds, uint32_t *num)
{
	struct iommu_hwpt_invalidate inv = {
		.size = sizeof(inv),
		.hwpt_id = n->viommu_id,
		.data_uptr = (uintptr_t)cmds,
		.data_type = IOMMU_VIOMMU_INVALIDATE_DATA_ARM_SMMUV3,
		.entry_len = 2 * sizeof(uint64_t),
		.entry_num = *num,
	};
	int ret = ioctl(n->iommufd, IOMMU_HWPT_INVALIDATE, &inv) ? -errno : 0;

	*num = inv.entry_num;
	return ret;
}

int nsmmu_tlbi_va(struct nested_smmu *n, uint64_t va)
{
	uint64_t cmd[1][2] = {{
		NSMMU_CMD_TLBI_NH_VA | CMD_TLBI_ASID(n->asid),
		va & ~0xfffULL,
	}};
	uint32_t num = 1;

	return nsmmu_invalidate_cmds(n, cmd, &num);
}

int nsmmu_tlbi_asid(struct nested_smmu *n)
{
	uint64_t cmd[1][2] = {{ NSMMU_CMD_TLBI_NH_ASID | CMD_TLBI_ASID(n->asid), 0 }};
	uint32_t num = 1;

	return nsmmu_invalidate_cmds(n, cmd, &num);
}
