// SPDX-License-Identifier: GPL-2.0
/*
 * The virtio invalidation type (IOMMU_VIOMMU_INVALIDATE_DATA_VIRTIO) on a
 * real, emulated, nesting SMMUv3, proven with the nested DMA oracle: after a
 * stage-1 page-table change DMA keeps using the stale IOTLB entry until a
 * virtio invalidation that covers it, decoded by arm-smmu-v3 into SMMU
 * commands, is issued; one that does not cover it leaves the entry stale.
 * A guest request is one domain entry (the IOTLB) and one endpoint entry per
 * endpoint (CD cache, ATC); an endpoint entry alone leaves the IOTLB stale,
 * and an endpoint whose vDEVICE is gone costs the others nothing. Through
 * IOMMU_HWPT_INVALIDATE and through the in-kernel API
 * (iommufd_viommu_invalidate_virtio() from a kernel buffer).
 */
#include <endian.h>
#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>

#include <linux/virtio_iommu.h>

#include "../kselftest_harness.h"
#include "nested_smmu_lib.h"
#include "../../../../drivers/iommu/iommufd/iommufd_test.h"

#define VSID	0x10
#define ASID	0x42	/* the ASID of nsmmu_setup()'s context descriptor */

#define S_DOMAIN	IOMMU_VIRTIO_INVAL_S_DOMAIN
#define S_PASID		IOMMU_VIRTIO_INVAL_S_PASID
#define S_ADDRESS	IOMMU_VIRTIO_INVAL_S_ADDRESS
#define C_PASID		IOMMU_VIRTIO_INVAL_C_PASID
#define C_TLB		IOMMU_VIRTIO_INVAL_C_TLB
#define F_LEAF		IOMMU_VIRTIO_INVAL_F_LEAF
#define F_PASID		IOMMU_VIRTIO_INVAL_F_PASID
#define F_ID		IOMMU_VIRTIO_INVAL_F_ID
#define F_GLOBAL	IOMMU_VIRTIO_INVAL_F_GLOBAL
/* Not a virtio flag: entry() makes an endpoint entry for VSID */
#define F_VDEV		0x8000

static struct iommu_viommu_invalidate_virtio entry(__u8 scope, __u8 caches,
						   __u16 flags, __u64 id,
						   __u64 address,
						   __u64 nr_pages,
						   __u8 page_size)
{
	struct iommu_viommu_invalidate_virtio e = {
		.flags = (flags & F_VDEV) ? IOMMU_VIRTIO_INVAL_HOST_F_VDEV : 0,
		.vdev_id = (flags & F_VDEV) ? VSID : 0,
		.scope = scope,
		.caches = caches,
		.inv_flags = htole16(flags & ~F_VDEV),
		.domain = htole32(1),
		.pasid = 0,
		.id = htole64(id),
		.address = htole64(address),
		.nr_pages = htole64(nr_pages),
		.page_size = page_size,
	};

	return e;
}

/* IOMMU_HWPT_INVALIDATE with the virtio tag; 0 or -errno */
static int inval(struct nested_smmu *n,
		 const struct iommu_viommu_invalidate_virtio *e, __u32 *num)
{
	struct iommu_hwpt_invalidate cmd = {
		.size = sizeof(cmd),
		.hwpt_id = n->viommu_id,
		.data_uptr = (uintptr_t)e,
		.data_type = IOMMU_VIOMMU_INVALIDATE_DATA_VIRTIO,
		.entry_len = sizeof(*e),
		.entry_num = *num,
	};
	int ret = ioctl(n->iommufd, IOMMU_HWPT_INVALIDATE, &cmd);

	*num = cmd.entry_num;
	return ret ? -errno : 0;
}

/* The same through the in-kernel API, via the iommufd selftest op */
static int kinval(struct nested_smmu *n,
		  const struct iommu_viommu_invalidate_virtio *e, __u32 *num)
{
	struct iommu_test_cmd cmd = {
		.size = sizeof(cmd),
		.op = IOMMU_TEST_OP_VIOMMU_KERNEL_INVALIDATE,
		.id = n->viommu_id,
		.kernel_invalidate = {
			.data_uptr = (uintptr_t)e,
			.data_type = IOMMU_VIOMMU_INVALIDATE_DATA_VIRTIO,
			.entry_len = sizeof(*e),
			.entry_num = *num,
		},
	};
	int ret = ioctl(n->iommufd, IOMMU_TEST_CMD, &cmd);

	*num = cmd.kernel_invalidate.entry_num;
	return ret ? -errno : 0;
}

FIXTURE(nested_virtio) {
	struct nested_smmu n;
};

FIXTURE_VARIANT(nested_virtio) {
	bool kernel;
};

FIXTURE_VARIANT_ADD(nested_virtio, ioctl) {
	.kernel = false,
};

FIXTURE_VARIANT_ADD(nested_virtio, kernel_api) {
	.kernel = true,
};

FIXTURE_SETUP(nested_virtio)
{
	int ret;

	if (edu_count() < 1)
		SKIP(return, "no edu device bound to vfio-pci");
	ret = nsmmu_setup(&self->n, 0, VSID);
	ASSERT_EQ(0, ret) TH_LOG("%s", self->n.err);
	ASSERT_EQ(ASID, self->n.asid);
}

FIXTURE_TEARDOWN(nested_virtio)
{
	nsmmu_teardown(&self->n);
}

static int issue(struct nested_smmu *n, bool kernel,
		 const struct iommu_viommu_invalidate_virtio *e, __u32 num)
{
	__u32 done = num;
	int ret = kernel ? kinval(n, e, &done) : inval(n, e, &done);

	if (!ret && done != num)
		return -EPROTO;
	return ret;
}

/*
 * Make the IOTLB entry of VA X stale (A cached, the table says @to), issue
 * @num entries, return where DMA to X lands then.
 */
static int stale_then(struct __test_metadata *_metadata, struct nested_smmu *n,
		      bool kernel, int to,
		      const struct iommu_viommu_invalidate_virtio *e,
		      __u32 num)
{
	nsmmu_map(n, NSMMU_VA_X, NSMMU_PG_A);
	EXPECT_EQ(0, nsmmu_tlbi_asid(n));
	EXPECT_EQ(NSMMU_PG_A, nsmmu_probe(n, NSMMU_VA_X));
	nsmmu_map(n, NSMMU_VA_X, to);
	EXPECT_EQ(NSMMU_PG_A, nsmmu_probe(n, NSMMU_VA_X))
		TH_LOG("no stale IOTLB entry to start from");
	EXPECT_EQ(0, issue(n, kernel, e, num));
	return nsmmu_probe(n, NSMMU_VA_X);
}

#define EXPECT_FIXED(e, num)                                              \
	EXPECT_EQ(NSMMU_PG_B, stale_then(_metadata, &self->n,             \
					 variant->kernel, NSMMU_PG_B, e,  \
					 num))
#define EXPECT_STALE(e, num)                                              \
	EXPECT_EQ(NSMMU_PG_A, stale_then(_metadata, &self->n,             \
					 variant->kernel, NSMMU_PG_B, e,  \
					 num))

/* Scope DOMAIN, C_TLB: TLBI_NH_ALL of the VMID */
TEST_F(nested_virtio, domain_tlb)
{
	struct iommu_viommu_invalidate_virtio e =
		entry(S_DOMAIN, C_TLB, 0, 0, 0, 0, 0);

	EXPECT_FIXED(&e, 1);
	e = entry(S_DOMAIN, C_TLB, F_ID | F_GLOBAL, ASID, 0, 0, 0);
	EXPECT_FIXED(&e, 1);
}

/* Scope PASID (PASID 0, the only one here): NH_ASID, or NH_ALL */
TEST_F(nested_virtio, pasid_tlb)
{
	struct iommu_viommu_invalidate_virtio e =
		entry(S_PASID, C_TLB, F_PASID | F_ID, ASID, 0, 0, 0);

	EXPECT_FIXED(&e, 1);
	/* Another ASID: not ours */
	e = entry(S_PASID, C_TLB, F_PASID | F_ID, ASID + 1, 0, 0, 0);
	EXPECT_STALE(&e, 1);
	/* No ASID: the whole VMID */
	e = entry(S_PASID, C_TLB, F_PASID, 0, 0, 0, 0);
	EXPECT_FIXED(&e, 1);
	e = entry(S_PASID, C_TLB, F_PASID | F_ID | F_GLOBAL, ASID + 1, 0, 0,
		  0);
	EXPECT_FIXED(&e, 1);
}

/* Scope ADDRESS, 4K pages: TLBI_NH_VA range of the ASID */
TEST_F(nested_virtio, address_tlb)
{
	struct iommu_viommu_invalidate_virtio e =
		entry(S_ADDRESS, C_TLB, F_ID | F_LEAF, ASID, NSMMU_VA_X, 1,
		      12);

	EXPECT_FIXED(&e, 1);
	/* A range that covers X */
	e = entry(S_ADDRESS, C_TLB, F_ID, ASID, NSMMU_VA_X - 0x3000, 40, 12);
	EXPECT_FIXED(&e, 1);
	/* The page next to X, or another ASID: stale */
	e = entry(S_ADDRESS, C_TLB, F_ID | F_LEAF, ASID, NSMMU_VA_Y, 1, 12);
	EXPECT_STALE(&e, 1);
	e = entry(S_ADDRESS, C_TLB, F_ID | F_LEAF, ASID, NSMMU_VA_X - 0x1000,
		  1, 12);
	EXPECT_STALE(&e, 1);
	e = entry(S_ADDRESS, C_TLB, F_ID | F_LEAF, ASID + 1, NSMMU_VA_X, 1,
		  12);
	EXPECT_STALE(&e, 1);
	/* No ASID: TLBI_NH_VAA, every ASID */
	e = entry(S_ADDRESS, C_TLB, F_LEAF, 0, NSMMU_VA_X, 1, 12);
	EXPECT_FIXED(&e, 1);
	/* An unaligned address inside X's page */
	e = entry(S_ADDRESS, C_TLB, F_ID | F_LEAF, ASID, NSMMU_VA_X + 0x800,
		  1, 12);
	EXPECT_FIXED(&e, 1);
}

/* Scope ADDRESS with a page size that is no granule: TG=0 per page */
TEST_F(nested_virtio, address_block_pages)
{
	struct iommu_viommu_invalidate_virtio e =
		entry(S_ADDRESS, C_TLB, F_ID, ASID, NSMMU_VA_X, 1, 21);

	EXPECT_FIXED(&e, 1);
	/* 64K page size (a granule of this SMMU): range command, TG 64K */
	e = entry(S_ADDRESS, C_TLB, F_ID, ASID, NSMMU_VA_X, 1, 16);
	EXPECT_FIXED(&e, 1);
	/* A huge range falls back to the ASID */
	e = entry(S_ADDRESS, C_TLB, F_ID, ASID, 0, 1ULL << 40, 12);
	EXPECT_FIXED(&e, 1);
}

/*
 * A request as a domain entry and an endpoint entry: CFGI_CD, TLBI, both
 * phases. The endpoint entry alone invalidates no IOTLB entry.
 */
TEST_F(nested_virtio, pasid_cache_and_tlb)
{
	struct iommu_viommu_invalidate_virtio e[2];

	e[0] = entry(S_DOMAIN, C_TLB, 0, 0, 0, 0, 0);
	e[1] = entry(S_DOMAIN, C_PASID | C_TLB, F_VDEV, 0, 0, 0, 0);
	EXPECT_FIXED(e, 2);
	EXPECT_STALE(&e[1], 1);
	e[0] = entry(S_PASID, C_TLB, F_PASID | F_ID, ASID, 0, 0, 0);
	e[1] = entry(S_PASID, C_PASID | C_TLB, F_VDEV | F_PASID | F_ID, ASID,
		     0, 0, 0);
	EXPECT_FIXED(e, 2);
	EXPECT_STALE(&e[1], 1);
	e[0] = entry(S_ADDRESS, C_TLB, F_PASID | F_ID | F_LEAF, ASID,
		     NSMMU_VA_X, 1, 12);
	e[1] = entry(S_ADDRESS, C_PASID | C_TLB, F_VDEV | F_PASID | F_ID |
		     F_LEAF, ASID, NSMMU_VA_X, 1, 12);
	EXPECT_FIXED(e, 2);
	EXPECT_STALE(&e[1], 1);
}

/*
 * A request fanned out as a VMM does it: one domain entry, then an endpoint
 * entry per endpoint. Without the domain entry the IOTLB stays stale.
 */
TEST_F(nested_virtio, fanout_batch)
{
	struct iommu_viommu_invalidate_virtio e[4];
	int i;

	e[0] = entry(S_ADDRESS, C_TLB, F_ID | F_LEAF, ASID, NSMMU_VA_X, 1, 12);
	for (i = 1; i < 4; i++)
		e[i] = entry(S_ADDRESS, C_TLB, F_VDEV | F_ID | F_LEAF, ASID,
			     NSMMU_VA_X, 1, 12);
	EXPECT_FIXED(e, 4);
	EXPECT_STALE(&e[1], 3);
	/* A batch with one entry that covers X among others that do not */
	e[0] = entry(S_ADDRESS, C_TLB, F_ID | F_LEAF, ASID, NSMMU_VA_Y, 1, 12);
	e[1] = entry(S_ADDRESS, C_TLB, F_ID | F_LEAF, ASID + 1, NSMMU_VA_X, 1,
		     12);
	e[2] = entry(S_ADDRESS, C_TLB, F_ID | F_LEAF, ASID, NSMMU_VA_X, 1, 12);
	e[3] = entry(S_PASID, C_PASID, F_VDEV | F_PASID, 0, 0, 0, 0);
	EXPECT_FIXED(e, 4);
	e[2] = e[0];
	EXPECT_STALE(e, 4);
}

/*
 * B1: an endpoint entry whose vDEVICE is gone comes first; the domain entry
 * after it is still issued and the IOTLB entry is fixed. (Before the domain
 * and endpoint entries were split, the unknown vSID failed the call with
 * -EIO there and the TLBI was lost.)
 */
TEST_F(nested_virtio, stale_endpoint_first)
{
	struct iommu_viommu_invalidate_virtio e[3];

	e[0] = entry(S_DOMAIN, C_PASID | C_TLB, F_VDEV, 0, 0, 0, 0);
	e[0].vdev_id = VSID + 1;
	e[1] = entry(S_ADDRESS, C_TLB, F_ID | F_LEAF, ASID, NSMMU_VA_X, 1, 12);
	e[2] = entry(S_DOMAIN, C_PASID | C_TLB, F_VDEV, 0, 0, 0, 0);
	EXPECT_FIXED(e, 3);
	/* The stale endpoint alone: done, and nothing invalidated */
	EXPECT_STALE(e, 1);
}

/*
 * What a VMM without vhost-iommu does with a kick's worth of guest
 * INVALIDATE requests: each request's bytes 4..59 become one domain entry
 * (C_TLB) and one endpoint entry per endpoint of the domain, all in one
 * IOMMU_HWPT_INVALIDATE. Here three requests, of which only the second
 * covers X; without it X stays stale.
 */
static unsigned int vmm_fanout(const struct virtio_iommu_req_invalidate *reqs,
			       unsigned int nr,
			       struct iommu_viommu_invalidate_virtio *e)
{
	unsigned int r, n = 0;

	for (r = 0; r < nr; r++) {
		struct iommu_viommu_invalidate_virtio x = {};

		memcpy((__u8 *)&x + IOMMU_VIRTIO_INVAL_REQ_OFFSET,
		       (const __u8 *)&reqs[r] + 4, IOMMU_VIRTIO_INVAL_REQ_LEN);
		if (x.caches & C_TLB) {
			e[n] = x;
			e[n++].caches = C_TLB;
		}
		x.flags = IOMMU_VIRTIO_INVAL_HOST_F_VDEV;
		x.vdev_id = VSID;
		e[n++] = x;
	}
	return n;
}

static struct virtio_iommu_req_invalidate req(__u8 scope, __u8 caches,
					      __u16 flags, __u64 id,
					      __u64 address, __u64 nr_pages,
					      __u8 page_size)
{
	struct virtio_iommu_req_invalidate r = {
		.head.type = VIRTIO_IOMMU_T_INVALIDATE,
		.scope = scope,
		.caches = caches,
		.flags = htole16(flags),
		.domain = htole32(1),
		.id = htole64(id),
		.address = htole64(address),
		.nr_pages = htole64(nr_pages),
		.page_size = page_size,
	};

	return r;
}

TEST_F(nested_virtio, vmm_kick)
{
	struct virtio_iommu_req_invalidate r[3];
	struct iommu_viommu_invalidate_virtio e[6];
	unsigned int n;

	r[0] = req(S_ADDRESS, C_TLB, F_ID | F_LEAF, ASID, NSMMU_VA_Y, 1, 12);
	r[1] = req(S_ADDRESS, C_PASID | C_TLB, F_ID | F_LEAF, ASID,
		   NSMMU_VA_X, 1, 12);
	r[2] = req(S_PASID, C_PASID, F_PASID, 0, 0, 0, 0);
	n = vmm_fanout(r, 3, e);
	ASSERT_EQ(5, n);
	EXPECT_FIXED(e, n);
	/* Negative control: the same kick without the request covering X */
	r[1] = r[0];
	n = vmm_fanout(r, 3, e);
	EXPECT_STALE(e, n);
}

/* Refused entries change nothing; entries before a bad one are done */
TEST_F(nested_virtio, refused)
{
	struct iommu_viommu_invalidate_virtio e[2];
	struct nested_smmu *n = &self->n;
	__u32 num;

	nsmmu_map(n, NSMMU_VA_X, NSMMU_PG_A);
	ASSERT_EQ(0, nsmmu_tlbi_asid(n));
	ASSERT_EQ(NSMMU_PG_A, nsmmu_probe(n, NSMMU_VA_X));
	nsmmu_map(n, NSMMU_VA_X, NSMMU_PG_B);

	/* An ASID above 16 bits, a PASID without SSIDs */
	e[0] = entry(S_DOMAIN, C_TLB, F_ID, 0x10000 + ASID, 0, 0, 0);
	num = 1;
	EXPECT_EQ(-EINVAL, variant->kernel ? kinval(n, e, &num) :
					     inval(n, e, &num));
	if (!(n->hw.idr[1] & (0x1f << 6))) {
		e[0] = entry(S_PASID, C_TLB, F_PASID, 0, 0, 0, 0);
		e[0].pasid = htole32(1);
		num = 1;
		EXPECT_EQ(-EIO, variant->kernel ? kinval(n, e, &num) :
						  inval(n, e, &num));
	}
	EXPECT_EQ(NSMMU_PG_A, nsmmu_probe(n, NSMMU_VA_X));

	/* A good entry then a bad one: the good one is done */
	e[0] = entry(S_ADDRESS, C_TLB, F_ID | F_LEAF, ASID, NSMMU_VA_X, 1, 12);
	e[1] = entry(S_ADDRESS, C_TLB, F_ID, ASID, NSMMU_VA_X, 0, 12);
	num = 2;
	EXPECT_EQ(-EINVAL, variant->kernel ? kinval(n, e, &num) :
					     inval(n, e, &num));
	EXPECT_EQ(1, num);
	EXPECT_EQ(NSMMU_PG_B, nsmmu_probe(n, NSMMU_VA_X));
}

/* The array checks of the SMMUv3 path: probe, entry sizes */
TEST_F(nested_virtio, array_checks)
{
	struct {
		struct iommu_viommu_invalidate_virtio e;
		__u8 tail[8];
	} l[2] = {};
	struct iommu_hwpt_invalidate cmd = {
		.size = sizeof(cmd),
		.hwpt_id = self->n.viommu_id,
		.data_type = IOMMU_VIOMMU_INVALIDATE_DATA_VIRTIO,
	};

	if (variant->kernel)
		SKIP(return, "ioctl only");
	/* A zero-length array probes the type */
	ASSERT_EQ(0, ioctl(self->n.iommufd, IOMMU_HWPT_INVALIDATE, &cmd));
	ASSERT_EQ(0, cmd.entry_num);

	l[0].e = entry(S_DOMAIN, C_TLB, 0, 0, 0, 0, 0);
	l[1].e = l[0].e;
	cmd.data_uptr = (uintptr_t)l;
	cmd.entry_len = sizeof(l[0]);
	cmd.entry_num = 2;
	ASSERT_EQ(0, ioctl(self->n.iommufd, IOMMU_HWPT_INVALIDATE, &cmd));
	ASSERT_EQ(2, cmd.entry_num);
	l[1].tail[0] = 1;
	cmd.entry_num = 2;
	ASSERT_EQ(-1, ioctl(self->n.iommufd, IOMMU_HWPT_INVALIDATE, &cmd));
	ASSERT_EQ(E2BIG, errno);
	ASSERT_EQ(1, cmd.entry_num);
	cmd.entry_len = sizeof(l[0].e) - 1;
	cmd.entry_num = 1;
	ASSERT_EQ(-1, ioctl(self->n.iommufd, IOMMU_HWPT_INVALIDATE, &cmd));
	ASSERT_EQ(EINVAL, errno);
	ASSERT_EQ(0, cmd.entry_num);
}

TEST_HARNESS_MAIN
