// SPDX-License-Identifier: GPL-2.0
/*
 * The invalidation fast path end to end, on the emulated nesting SMMUv3:
 * the test plays the guest of a VM whose edu device sits behind a nested
 * SMMUv3 translation, and the VMM that binds its virtio domain to the
 * iommufd vIOMMU. The guest changes its stage-1 tables, sees the stale
 * IOTLB entry used by DMA, sends a virtio-iommu INVALIDATE through the
 * vhost-iommu request queue, and DMA follows the new tables. Nothing goes
 * through the VMM's channel on the way: the request is served in the kernel
 * and decoded by arm-smmu-v3.
 */
#include <errno.h>
#include <endian.h>
#include <poll.h>
#include <string.h>
#include <sys/ioctl.h>

#include "../kselftest_harness.h"
#include "nested_smmu_lib.h"
#include "vhost_iommu_lib.h"

#define VSID0		0x10
#define VSID1		0x20
#define EP0		8
#define DOMAIN		1
#define UNBOUND_DOMAIN	2
#define ASID		0x42
#define RING		64
#define TIMEOUT_MS	5000
#define INVAL_LEN	offsetof(struct virtio_iommu_req_invalidate, tail)
#define BIT64(n)	(1ULL << (n))
#define FEATURES	(BIT64(VIRTIO_F_VERSION_1) | BIT64(VIRTIO_IOMMU_F_ATTACH_TABLE))

#define S_DOMAIN	VIRTIO_IOMMU_INVAL_S_DOMAIN
#define S_PASID		VIRTIO_IOMMU_INVAL_S_PASID
#define S_ADDRESS	VIRTIO_IOMMU_INVAL_S_ADDRESS
#define C_PASID		VIRTIO_IOMMU_INVAL_C_PASID
#define C_TLB		VIRTIO_IOMMU_INVAL_C_TLB
#define F_LEAF		VIRTIO_IOMMU_INVAL_F_LEAF
#define F_ID		VIRTIO_IOMMU_INVAL_F_ID

/* One VM: its edu device behind a vIOMMU, and its vhost-iommu device */
struct vm {
	struct nested_smmu n;
	struct vi_dev d;
};

struct inval {
	uint32_t domain;
	uint8_t scope;
	uint8_t caches;
	uint16_t flags;
	uint64_t id;
	uint64_t address;
	uint64_t nr_pages;
	uint8_t page_size;
};

static int vm_bind(struct vm *vm)
{
	struct vhost_iommu_iommufd fd = {
		.size = sizeof(fd),
		.iommufd = vm->n.iommufd,
	};
	struct vhost_iommu_domain dom = {
		.size = sizeof(dom),
		.domain = DOMAIN,
		.viommu_id = vm->n.viommu_id,
	};
	struct vhost_iommu_endpoint ep = {
		.size = sizeof(ep),
		.endpoint = EP0,
		.domain = DOMAIN,
		.dev_id = vm->n.edu.dev_id,
		.vdev_id = vm->n.vsid,
	};

	if (ioctl(vm->d.fd, VHOST_IOMMU_SET_IOMMUFD, &fd) ||
	    ioctl(vm->d.fd, VHOST_IOMMU_SET_DOMAIN, &dom) ||
	    ioctl(vm->d.fd, VHOST_IOMMU_SET_ENDPOINT, &ep))
		return -errno;
	return 0;
}

/* Bring up one VM; 0, or a negative errno with a message in n.err */
static int vm_setup(struct vm *vm, int edu, uint32_t vsid)
{
	int ret;

	memset(vm, 0, sizeof(*vm));
	vm->d.fd = -1;
	ret = nsmmu_setup(&vm->n, edu, vsid);
	if (ret)
		return ret;
	ret = vi_open(&vm->d);
	if (!ret)
		ret = vi_setup(&vm->d, FEATURES, RING);
	if (!ret)
		ret = vm_bind(vm);
	if (ret)
		snprintf(vm->n.err, sizeof(vm->n.err), "vhost-iommu setup: %s",
			 strerror(-ret));
	return ret;
}

static void vm_teardown(struct vm *vm)
{
	if (vm->d.fd >= 0)
		vi_close(&vm->d);
	nsmmu_teardown(&vm->n);
}

/* Whether the VMM's channel has a message (it must not, for a fast path) */
static bool channel_busy(struct vm *vm)
{
	struct pollfd p = { .fd = vm->d.fd, .events = POLLIN };

	return poll(&p, 1, 0) > 0 && (p.revents & POLLIN);
}

/*
 * The guest sends an INVALIDATE through the request queue and waits for it;
 * returns the status of its tail, or -errno.
 */
static int guest_inval(struct vm *vm, const struct inval *i)
{
	struct virtio_iommu_req_invalidate *req = vi_alloc(&vm->d, sizeof(*req));
	struct virtio_iommu_req_tail *tail = vi_alloc(&vm->d, sizeof(*tail));
	uint32_t id, len;
	int head;

	if (!req || !tail)
		return -ENOMEM;
	memset(req, 0, sizeof(*req));
	req->head.type = VIRTIO_IOMMU_T_INVALIDATE;
	req->scope = i->scope;
	req->caches = i->caches;
	req->flags = htole16(i->flags);
	req->domain = htole32(i->domain);
	req->id = htole64(i->id);
	req->address = htole64(i->address);
	req->nr_pages = htole64(i->nr_pages);
	req->page_size = i->page_size;
	memset(tail, 0xff, sizeof(*tail));
	head = vi_post_req(&vm->d, req, INVAL_LEN, tail, sizeof(*tail));
	if (head < 0)
		return head;
	vi_kick(&vm->d, VI_REQ_VQ);
	if (vi_get_used(&vm->d, VI_REQ_VQ, &id, &len, TIMEOUT_MS))
		return -ETIMEDOUT;
	if (id != (uint32_t)head || len != sizeof(*tail))
		return -EIO;
	return tail->status;
}

static int probe(struct vm *vm, const char *why)
{
	int page = nsmmu_probe(&vm->n, NSMMU_VA_X);

	ksft_print_msg("  DMA to VA 0x%llx -> %s%s%s\n",
		       (unsigned long long)NSMMU_VA_X, nsmmu_page_name(page),
		       why ? ": " : "", why ? why : "");
	return page;
}

/* Fixture setup shared by the two fixtures: one VM on the first edu */
static void vm_fixture_setup(struct __test_metadata *_metadata, struct vm *vm)
{
	int ret;

	if (edu_count() < 1)
		SKIP(return, "no edu device bound to vfio-pci");
	ret = vm_setup(vm, 0, VSID0);
	if (ret == -ENOENT && strstr(vm->n.err, "vhost-iommu"))
		SKIP(return, "no /dev/vhost-iommu");
	ASSERT_EQ(0, ret) TH_LOG("%s", vm->n.err);
}

FIXTURE(vhost_smmu) {
	struct vm vm;
};

FIXTURE_VARIANT(vhost_smmu) {
	struct inval inval;	/* covers NSMMU_VA_X for ASID 0x42 */
};

FIXTURE_VARIANT_ADD(vhost_smmu, address_tlb_asid) {
	.inval = { DOMAIN, S_ADDRESS, C_TLB, F_ID, ASID, NSMMU_VA_X, 1, 12 },
};

FIXTURE_VARIANT_ADD(vhost_smmu, address_tlb_asid_leaf) {
	.inval = { DOMAIN, S_ADDRESS, C_TLB, F_ID | F_LEAF, ASID, NSMMU_VA_X, 1, 12 },
};

FIXTURE_VARIANT_ADD(vhost_smmu, address_tlb_all_asids) {
	.inval = { DOMAIN, S_ADDRESS, C_TLB, 0, 0, NSMMU_VA_X, 1, 12 },
};

FIXTURE_VARIANT_ADD(vhost_smmu, address_tlb_range) {
	.inval = { DOMAIN, S_ADDRESS, C_TLB, F_ID, ASID, NSMMU_VA_X - 0x10000, 64, 12 },
};

FIXTURE_VARIANT_ADD(vhost_smmu, address_tlb_huge_range) {
	/* Too many pages for range commands: falls back to a wider TLBI */
	.inval = { DOMAIN, S_ADDRESS, C_TLB, F_ID, ASID, 0, 1ULL << 30, 12 },
};

FIXTURE_VARIANT_ADD(vhost_smmu, address_tlb_pasid_cache) {
	.inval = { DOMAIN, S_ADDRESS, C_TLB | C_PASID, F_ID, ASID, NSMMU_VA_X, 1, 12 },
};

FIXTURE_VARIANT_ADD(vhost_smmu, domain_tlb) {
	.inval = { DOMAIN, S_DOMAIN, C_TLB, 0, 0, 0, 0, 0 },
};

FIXTURE_VARIANT_ADD(vhost_smmu, domain_tlb_asid) {
	.inval = { DOMAIN, S_DOMAIN, C_TLB, F_ID, ASID, 0, 0, 0 },
};

FIXTURE_VARIANT_ADD(vhost_smmu, domain_all_caches) {
	.inval = { DOMAIN, S_DOMAIN, C_TLB | C_PASID, 0, 0, 0, 0, 0 },
};

FIXTURE_SETUP(vhost_smmu)
{
	vm_fixture_setup(_metadata, &self->vm);
}

FIXTURE_TEARDOWN(vhost_smmu)
{
	vm_teardown(&self->vm);
}

/* The same VM, for the tests that need no variant */
FIXTURE(vhost_smmu1) {
	struct vm vm;
};

FIXTURE_SETUP(vhost_smmu1)
{
	vm_fixture_setup(_metadata, &self->vm);
}

FIXTURE_TEARDOWN(vhost_smmu1)
{
	vm_teardown(&self->vm);
}

/* Stale entry, the variant's INVALIDATE through the ring, the right page */
TEST_F(vhost_smmu, stale_then_invalidate)
{
	struct vm *vm = &self->vm;

	ASSERT_EQ(NSMMU_PG_A, probe(vm, "as the S1 table says"));
	nsmmu_map(&vm->n, NSMMU_VA_X, NSMMU_PG_B);
	ASSERT_EQ(NSMMU_PG_A, probe(vm, "PTE changed to page B: stale IOTLB entry"));
	ksft_print_msg("  guest INVALIDATE scope %u caches %#x flags %#x id %#llx va %#llx n %llu\n",
		       variant->inval.scope, variant->inval.caches,
		       variant->inval.flags, (unsigned long long)variant->inval.id,
		       (unsigned long long)variant->inval.address,
		       (unsigned long long)variant->inval.nr_pages);
	ASSERT_EQ(VIRTIO_IOMMU_S_OK, guest_inval(vm, &variant->inval));
	ASSERT_FALSE(channel_busy(vm)) TH_LOG("the INVALIDATE went to the VMM");
	ASSERT_EQ(NSMMU_PG_B, probe(vm, "after the INVALIDATE, served in the kernel"));
}

/* An INVALIDATE that does not cover the address leaves the entry stale */
TEST_F(vhost_smmu1, other_address_keeps_stale)
{
	struct inval i = { DOMAIN, S_ADDRESS, C_TLB, F_ID, ASID, NSMMU_VA_Y, 1, 12 };
	struct inval right = { DOMAIN, S_ADDRESS, C_TLB, F_ID, ASID, NSMMU_VA_X, 1, 12 };
	struct vm *vm = &self->vm;

	ASSERT_EQ(NSMMU_PG_A, probe(vm, NULL));
	nsmmu_map(&vm->n, NSMMU_VA_X, NSMMU_PG_C);
	ASSERT_EQ(VIRTIO_IOMMU_S_OK, guest_inval(vm, &i));
	ASSERT_EQ(NSMMU_PG_A, probe(vm, "INVALIDATE of another page: still stale"));
	ASSERT_EQ(VIRTIO_IOMMU_S_OK, guest_inval(vm, &right));
	ASSERT_EQ(NSMMU_PG_C, probe(vm, NULL));
}

/*
 * The PASID (context descriptor) cache: the guest moves its context
 * descriptor to a new ASID. Without C_PASID the SMMU keeps using the cached
 * descriptor (and with it the old ASID's stale TLB entry); with it, the new
 * descriptor is read and the new ASID has nothing cached.
 */
TEST_F(vhost_smmu1, cd_cache)
{
	struct inval tlb_new = { DOMAIN, S_ADDRESS, C_TLB, F_ID, ASID + 1, NSMMU_VA_X, 1, 12 };
	struct inval cd = { DOMAIN, S_DOMAIN, C_PASID, 0, 0, 0, 0, 0 };
	struct vm *vm = &self->vm;

	ASSERT_EQ(NSMMU_PG_A, probe(vm, NULL));
	nsmmu_map(&vm->n, NSMMU_VA_X, NSMMU_PG_B);
	nsmmu_set_cd_asid(&vm->n, ASID + 1);
	ASSERT_EQ(VIRTIO_IOMMU_S_OK, guest_inval(vm, &tlb_new));
	ASSERT_EQ(NSMMU_PG_A, probe(vm, "CD changed to ASID 0x43, CD cache not invalidated"));
	ASSERT_EQ(VIRTIO_IOMMU_S_OK, guest_inval(vm, &cd));
	ASSERT_EQ(NSMMU_PG_B, probe(vm, "after INVALIDATE C_PASID: new CD, new ASID"));
}

/* Requests the kernel refuses change nothing: the entry stays stale */
TEST_F(vhost_smmu1, refused_requests_change_nothing)
{
	const struct inval bad[] = {
		{ DOMAIN, 4, C_TLB, 0, 0, 0, 0, 0 },			/* scope */
		{ DOMAIN, S_DOMAIN, 1 << 2, 0, 0, 0, 0, 0 },		/* caches */
		{ DOMAIN, S_DOMAIN, C_TLB, 1 << 4, 0, 0, 0, 0 },	/* flags */
		{ DOMAIN, S_ADDRESS, C_TLB, F_ID, ASID, NSMMU_VA_X, 0, 12 },
		{ DOMAIN, S_ADDRESS, C_TLB, F_ID, ASID, NSMMU_VA_X, ~0ULL, 12 },
		{ DOMAIN, S_ADDRESS, C_TLB, F_ID, ASID, ~0ULL << 12, 2, 12 },
		{ DOMAIN, S_ADDRESS, C_TLB, F_ID, ASID, NSMMU_VA_X, 1, 64 },
		/* PASID scope needs F_PASID, and this SMMU has no substreams */
		{ DOMAIN, S_PASID, C_TLB, F_ID, ASID, 0, 0, 0 },
	};
	struct inval good = { DOMAIN, S_DOMAIN, C_TLB, 0, 0, 0, 0, 0 };
	struct vm *vm = &self->vm;
	unsigned int i;

	ASSERT_EQ(NSMMU_PG_A, probe(vm, NULL));
	nsmmu_map(&vm->n, NSMMU_VA_X, NSMMU_PG_B);
	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		int status = guest_inval(vm, &bad[i]);

		EXPECT_TRUE(status == VIRTIO_IOMMU_S_INVAL || status == VIRTIO_IOMMU_S_RANGE)
			TH_LOG("bad request %u completed with %d", i, status);
	}
	ASSERT_FALSE(channel_busy(vm));
	ASSERT_EQ(NSMMU_PG_A, probe(vm, "after refused requests: still stale"));
	ASSERT_EQ(VIRTIO_IOMMU_S_OK, guest_inval(vm, &good));
	ASSERT_EQ(NSMMU_PG_B, probe(vm, NULL));
}

/* An INVALIDATE for a domain the VMM did not bind goes to the VMM */
TEST_F(vhost_smmu1, unbound_domain_goes_to_vmm)
{
	struct inval i = { UNBOUND_DOMAIN, S_DOMAIN, C_TLB, 0, 0, 0, 0, 0 };
	struct virtio_iommu_req_invalidate *req;
	struct vhost_iommu_req_msg msg;
	struct vm *vm = &self->vm;
	uint32_t id, len;
	uint8_t *tail;
	int head;

	ASSERT_EQ(NSMMU_PG_A, probe(vm, NULL));
	nsmmu_map(&vm->n, NSMMU_VA_X, NSMMU_PG_B);

	req = vi_alloc(&vm->d, sizeof(*req));
	tail = vi_alloc(&vm->d, 4);
	memset(req, 0, sizeof(*req));
	req->head.type = VIRTIO_IOMMU_T_INVALIDATE;
	req->scope = i.scope;
	req->caches = i.caches;
	req->domain = htole32(i.domain);
	head = vi_post_req(&vm->d, req, INVAL_LEN, tail, 4);
	ASSERT_LE(0, head);
	vi_kick(&vm->d, VI_REQ_VQ);
	ASSERT_EQ((int)sizeof(msg), vi_read_msg(&vm->d, &msg, TIMEOUT_MS));
	ASSERT_EQ(INVAL_LEN, msg.req_len);
	ASSERT_EQ(VIRTIO_IOMMU_T_INVALIDATE, msg.req[0]);
	/* This VMM does nothing with it: the entry stays stale */
	ASSERT_EQ(0, vi_answer(&vm->d, msg.cookie, VIRTIO_IOMMU_S_OK, NULL, 0));
	ASSERT_EQ(0, vi_get_used(&vm->d, VI_REQ_VQ, &id, &len, TIMEOUT_MS));
	ASSERT_EQ((uint32_t)head, id);
	ASSERT_EQ(VIRTIO_IOMMU_S_OK, tail[0]);
	ASSERT_EQ(NSMMU_PG_A, probe(vm, "unbound domain: the VMM served it, still stale"));
}

/*
 * Two VMs whose guests use the same ASID: the guest of VM b invalidates
 * its whole domain, VM a's stale entry stays stale (its VMID is another).
 */
TEST(two_vms_isolated)
{
	struct inval all = { DOMAIN, S_DOMAIN, C_TLB | C_PASID, 0, 0, 0, 0, 0 };
	struct vm *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));
	int ret;

	ASSERT_NE(NULL, a);
	ASSERT_NE(NULL, b);
	if (edu_count() < 2)
		SKIP(return, "needs two edu devices");
	ret = vm_setup(a, 0, VSID0);
	ASSERT_EQ(0, ret) TH_LOG("%s", a->n.err);
	ret = vm_setup(b, 1, VSID1);
	ASSERT_EQ(0, ret) TH_LOG("%s", b->n.err);

	ASSERT_EQ(NSMMU_PG_A, probe(a, "VM a"));
	ASSERT_EQ(NSMMU_PG_A, probe(b, "VM b"));
	nsmmu_map(&a->n, NSMMU_VA_X, NSMMU_PG_B);
	nsmmu_map(&b->n, NSMMU_VA_X, NSMMU_PG_B);
	ASSERT_EQ(VIRTIO_IOMMU_S_OK, guest_inval(b, &all));
	ASSERT_EQ(NSMMU_PG_B, probe(b, "VM b after its own INVALIDATE"));
	ASSERT_EQ(NSMMU_PG_A, probe(a, "VM a untouched: still stale"));
	ASSERT_EQ(VIRTIO_IOMMU_S_OK, guest_inval(a, &all));
	ASSERT_EQ(NSMMU_PG_B, probe(a, "VM a after its own INVALIDATE"));
	vm_teardown(b);
	vm_teardown(a);
	free(a);
	free(b);
}

TEST_HARNESS_MAIN
