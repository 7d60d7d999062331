// SPDX-License-Identifier: GPL-2.0
/*
 * vhost-iommu end to end on the emulated nesting SMMUv3: a guest INVALIDATE
 * request posted on the vhost-iommu request queue, for a domain bound to the
 * real vIOMMU, is served in the kernel and fixes a stale IOTLB entry, as the
 * nested DMA oracle (QEMU's edu device behind vfio) shows. One that does not
 * cover the entry leaves it stale; one for an unbound domain goes to the VMM.
 */
#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>

#include "../kselftest_harness.h"
#include "nested_smmu_lib.h"
#include "vhost_iommu_lib.h"

#define VSID		0x10
#define ASID		0x42	/* the ASID of nsmmu_setup()'s context descriptor */
#define DOM_ID		1
#define EP_ID		8
#define TIMEOUT_MS	2000
#define TAIL		sizeof(struct virtio_iommu_req_tail)
#define INVAL_LEN	offsetof(struct virtio_iommu_req_invalidate, tail)
#define FEATURES	((1ULL << VIRTIO_F_VERSION_1) |			\
			 (1ULL << VIRTIO_IOMMU_F_ATTACH_TABLE))

FIXTURE(vhost_nested) {
	struct nested_smmu n;
	struct vi_dev d;
};

FIXTURE_SETUP(vhost_nested)
{
	struct vhost_iommu_iommufd fd = { .size = sizeof(fd) };
	struct vhost_iommu_domain dom = {
		.size = sizeof(dom),
		.domain = DOM_ID,
	};
	struct vhost_iommu_endpoint ep = {
		.size = sizeof(ep),
		.endpoint = EP_ID,
		.domain = DOM_ID,
		.vdev_id = VSID,
	};
	int ret;

	self->d.fd = -1;
	if (edu_count() < 1)
		SKIP(return, "no edu device bound to vfio-pci");
	ret = nsmmu_setup(&self->n, 0, VSID);
	ASSERT_EQ(0, ret) TH_LOG("%s", self->n.err);
	ASSERT_EQ(ASID, self->n.asid);

	ret = vi_open(&self->d);
	if (ret == -ENOENT)
		SKIP(return, "no /dev/vhost-iommu");
	ASSERT_EQ(0, ret);
	ASSERT_EQ(0, vi_setup(&self->d, FEATURES, 64));

	fd.iommufd = self->n.iommufd;
	ASSERT_EQ(0, ioctl(self->d.fd, VHOST_IOMMU_SET_IOMMUFD, &fd));
	dom.viommu_id = self->n.viommu_id;
	ASSERT_EQ(0, ioctl(self->d.fd, VHOST_IOMMU_SET_DOMAIN, &dom));
	ep.dev_id = self->n.edu.dev_id;
	ASSERT_EQ(0, ioctl(self->d.fd, VHOST_IOMMU_SET_ENDPOINT, &ep));
}

FIXTURE_TEARDOWN(vhost_nested)
{
	if (self->d.fd >= 0)
		vi_close(&self->d);
	nsmmu_teardown(&self->n);
}

/* Post an INVALIDATE on the request queue; its status, or -errno */
static int ring_inval(struct vi_dev *d, uint32_t domain, uint8_t scope,
		      uint16_t flags, uint64_t id, uint64_t address,
		      uint64_t nr_pages)
{
	struct virtio_iommu_req_invalidate *inv = vi_alloc(d, sizeof(*inv));
	uint8_t *resp = vi_alloc(d, TAIL);
	uint32_t used_id, len;
	int head;

	if (!inv || !resp)
		return -ENOMEM;
	memset(inv, 0, sizeof(*inv));
	inv->head.type = VIRTIO_IOMMU_T_INVALIDATE;
	inv->scope = scope;
	inv->caches = VIRTIO_IOMMU_INVAL_C_TLB;
	inv->flags = flags;
	inv->domain = domain;
	inv->id = id;
	inv->address = address;
	inv->nr_pages = nr_pages;
	inv->page_size = 12;
	memset(resp, 0xff, TAIL);

	head = vi_post_req(d, inv, INVAL_LEN, resp, TAIL);
	if (head < 0)
		return head;
	vi_kick(d, VI_REQ_VQ);
	if (vi_get_used(d, VI_REQ_VQ, &used_id, &len, TIMEOUT_MS))
		return -ETIMEDOUT;
	if (used_id != (uint32_t)head || len != TAIL)
		return -EIO;
	return resp[0];
}

/* Make the IOTLB entry of VA X stale: A cached, the table says B */
static void make_stale(struct __test_metadata *_metadata,
		       struct nested_smmu *n)
{
	nsmmu_map(n, NSMMU_VA_X, NSMMU_PG_A);
	EXPECT_EQ(0, nsmmu_tlbi_asid(n));
	EXPECT_EQ(NSMMU_PG_A, nsmmu_probe(n, NSMMU_VA_X));
	nsmmu_map(n, NSMMU_VA_X, NSMMU_PG_B);
	EXPECT_EQ(NSMMU_PG_A, nsmmu_probe(n, NSMMU_VA_X))
		TH_LOG("no stale IOTLB entry to start from");
}

TEST_F(vhost_nested, address)
{
	const uint16_t flags = VIRTIO_IOMMU_INVAL_F_ID |
			       VIRTIO_IOMMU_INVAL_F_LEAF;

	make_stale(_metadata, &self->n);
	/* Another page: still stale */
	EXPECT_EQ(VIRTIO_IOMMU_S_OK,
		  ring_inval(&self->d, DOM_ID, VIRTIO_IOMMU_INVAL_S_ADDRESS,
			     flags, ASID, NSMMU_VA_Y, 1));
	EXPECT_EQ(NSMMU_PG_A, nsmmu_probe(&self->n, NSMMU_VA_X));
	/* Another ASID: still stale */
	EXPECT_EQ(VIRTIO_IOMMU_S_OK,
		  ring_inval(&self->d, DOM_ID, VIRTIO_IOMMU_INVAL_S_ADDRESS,
			     flags, ASID + 1, NSMMU_VA_X, 1));
	EXPECT_EQ(NSMMU_PG_A, nsmmu_probe(&self->n, NSMMU_VA_X));
	/* The page: fixed */
	EXPECT_EQ(VIRTIO_IOMMU_S_OK,
		  ring_inval(&self->d, DOM_ID, VIRTIO_IOMMU_INVAL_S_ADDRESS,
			     flags, ASID, NSMMU_VA_X, 1));
	EXPECT_EQ(NSMMU_PG_B, nsmmu_probe(&self->n, NSMMU_VA_X));
}

TEST_F(vhost_nested, domain)
{
	make_stale(_metadata, &self->n);
	EXPECT_EQ(VIRTIO_IOMMU_S_OK,
		  ring_inval(&self->d, DOM_ID, VIRTIO_IOMMU_INVAL_S_DOMAIN, 0,
			     0, 0, 0));
	EXPECT_EQ(NSMMU_PG_B, nsmmu_probe(&self->n, NSMMU_VA_X));
}

/* An unbound domain: the VMM gets it, the kernel invalidates nothing */
TEST_F(vhost_nested, unbound_domain)
{
	struct vhost_iommu_req_msg msg;
	struct virtio_iommu_req_invalidate *inv;
	uint32_t id, len;

	make_stale(_metadata, &self->n);
	inv = vi_alloc(&self->d, sizeof(*inv));
	memset(inv, 0, sizeof(*inv));
	inv->head.type = VIRTIO_IOMMU_T_INVALIDATE;
	inv->scope = VIRTIO_IOMMU_INVAL_S_DOMAIN;
	inv->caches = VIRTIO_IOMMU_INVAL_C_TLB;
	inv->domain = DOM_ID + 1;
	ASSERT_LE(0, vi_post_req(&self->d, inv, INVAL_LEN,
				 vi_alloc(&self->d, TAIL), TAIL));
	vi_kick(&self->d, VI_REQ_VQ);
	ASSERT_EQ(sizeof(msg), vi_read_msg(&self->d, &msg, TIMEOUT_MS));
	EXPECT_EQ(DOM_ID + 1, msg.req[8]);
	EXPECT_EQ(NSMMU_PG_A, nsmmu_probe(&self->n, NSMMU_VA_X));
	ASSERT_EQ(0, vi_answer(&self->d, msg.cookie, VIRTIO_IOMMU_S_OK,
			       NULL, 0));
	ASSERT_EQ(0, vi_get_used(&self->d, VI_REQ_VQ, &id, &len, TIMEOUT_MS));
}

TEST_HARNESS_MAIN
