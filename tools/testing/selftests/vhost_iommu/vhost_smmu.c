// SPDX-License-Identifier: GPL-2.0
/*
 * The invalidation fast path end to end, on the emulated nesting SMMUv3:
 * the test plays the guest of a VM whose edu device sits behind a nested
 * SMMUv3 translation, and the VMM that binds its virtio domain to the
 * iommufd vIOMMU. The guest changes its stage-1 tables, sees the stale
 * IOTLB entry used by DMA, sends a virtio-iommu INVALIDATE on a vhost-iommu
 * invalidation queue, and DMA follows the new tables: the request is served
 * in the kernel and decoded by arm-smmu-v3. Every proof has its negative
 * control: an INVALIDATE that does not cover the entry, a refused one, one
 * for an unbound domain, or another VM's, leaves the entry stale.
 */
#include <errno.h>
#include <endian.h>
#include <poll.h>
#include <string.h>
#include <sys/ioctl.h>

#include "../kselftest_harness.h"
#include "nested_smmu_lib.h"
#include "vhost_iommu_utils.h"

#define VSID0		0x10
#define VSID1		0x20
#define EP0		8
#define DOMAIN		1
#define UNBOUND_DOMAIN	2
#define ASID		0x42
#define RING		64
#define TIMEOUT_MS	5000
#define IQ		VI_INVALQ(0)

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
	int ret;

	ret = vi_set_iommufd(vm->d.fd, vm->n.iommufd, 0);
	if (!ret)
		ret = vi_set_domain(vm->d.fd, 0, DOMAIN, vm->n.viommu_id);
	if (!ret)
		ret = vi_set_endpoint(vm->d.fd, 0, EP0, DOMAIN,
				      vm->n.edu.dev_id, vm->n.vsid);
	return ret;
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
		ret = vi_setup(&vm->d, VI_FEATURES, RING, 1);
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

/*
 * The guest sends an INVALIDATE on its invalidation queue and waits for it;
 * returns the status of its tail, or -errno.
 */
static int guest_inval(struct vm *vm, const struct inval *i)
{
	struct virtio_iommu_req_invalidate *req;
	uint32_t len = 0;
	int ret;

	req = vi_make_inval(&vm->d, i->domain, i->scope, i->caches, i->flags,
			    0, i->id, i->address, i->nr_pages, i->page_size);
	if (!req)
		return -ENOMEM;
	ret = vi_request(&vm->d, IQ, req, VI_INVAL_LEN, &len, TIMEOUT_MS);
	if (ret >= 0 && len != VI_TAIL)
		return -EIO;
	return ret;
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
	ksft_print_msg("  INVALIDATE scope %u caches %#x flags %#x id %#llx va %#llx n %llu\n",
		       variant->inval.scope, variant->inval.caches,
		       variant->inval.flags, (unsigned long long)variant->inval.id,
		       (unsigned long long)variant->inval.address,
		       (unsigned long long)variant->inval.nr_pages);
	ASSERT_EQ(VIRTIO_IOMMU_S_OK, guest_inval(vm, &variant->inval));
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
	ASSERT_EQ(NSMMU_PG_A, probe(vm, "after refused requests: still stale"));
	ASSERT_EQ(VIRTIO_IOMMU_S_OK, guest_inval(vm, &good));
	ASSERT_EQ(NSMMU_PG_B, probe(vm, NULL));
}

/* An INVALIDATE for a domain the VMM did not bind: S_NOENT, still stale */
TEST_F(vhost_smmu1, unbound_domain_noent)
{
	struct inval i = { UNBOUND_DOMAIN, S_DOMAIN, C_TLB, 0, 0, 0, 0, 0 };
	struct inval right = { DOMAIN, S_DOMAIN, C_TLB, 0, 0, 0, 0, 0 };
	struct vm *vm = &self->vm;

	ASSERT_EQ(NSMMU_PG_A, probe(vm, NULL));
	nsmmu_map(&vm->n, NSMMU_VA_X, NSMMU_PG_B);
	ASSERT_EQ(VIRTIO_IOMMU_S_NOENT, guest_inval(vm, &i));
	ASSERT_EQ(NSMMU_PG_A, probe(vm, "unbound domain: S_NOENT, still stale"));
	ASSERT_EQ(VIRTIO_IOMMU_S_OK, guest_inval(vm, &right));
	ASSERT_EQ(NSMMU_PG_B, probe(vm, NULL));
}

/* The right address of another ASID leaves the entry stale */
TEST_F(vhost_smmu1, other_asid_keeps_stale)
{
	struct inval other = { DOMAIN, S_ADDRESS, C_TLB, F_ID | F_LEAF, ASID + 1,
			       NSMMU_VA_X, 1, 12 };
	struct inval right = { DOMAIN, S_ADDRESS, C_TLB, F_ID | F_LEAF, ASID,
			       NSMMU_VA_X, 1, 12 };
	struct vm *vm = &self->vm;

	ASSERT_EQ(NSMMU_PG_A, probe(vm, NULL));
	nsmmu_map(&vm->n, NSMMU_VA_X, NSMMU_PG_B);
	ASSERT_EQ(VIRTIO_IOMMU_S_OK, guest_inval(vm, &other));
	ASSERT_EQ(NSMMU_PG_A, probe(vm, "INVALIDATE of ASID 0x43: still stale"));
	ASSERT_EQ(VIRTIO_IOMMU_S_OK, guest_inval(vm, &right));
	ASSERT_EQ(NSMMU_PG_B, probe(vm, NULL));
}

/*
 * B1 on the SMMUv3: the domain's first endpoint is stale (its vDEVICE is
 * gone: the VMM closed the device before unbinding the endpoint). The
 * guest's INVALIDATE still reaches the domain's TLB: DMA of the live
 * endpoint sees the new page.
 */
TEST_F(vhost_smmu1, stale_endpoint_first)
{
	struct inval all = { DOMAIN, S_DOMAIN, C_TLB | C_PASID, 0, 0, 0, 0, 0 };
	struct iommu_vdevice_alloc vdev = { .size = sizeof(vdev) };
	struct vm *vm = &self->vm;
	struct edu_dev edu1;

	if (edu_count() < 2)
		SKIP(return, "needs two edu devices");
	/* The second edu, a vDEVICE of the same vIOMMU, a lower endpoint ID */
	ASSERT_EQ(0, edu_open(&edu1, 1, vm->n.iommufd));
	vdev.viommu_id = vm->n.viommu_id;
	vdev.dev_id = edu1.dev_id;
	vdev.virt_id = VSID1;
	ASSERT_EQ(0, ioctl(vm->n.iommufd, IOMMU_VDEVICE_ALLOC, &vdev));
	/* Bound before the live one, as the first of the domain */
	ASSERT_EQ(0, vi_set_endpoint(vm->d.fd, VHOST_IOMMU_F_UNBIND, EP0, 0, 0, 0));
	ASSERT_EQ(0, vi_set_endpoint(vm->d.fd, 0, EP0 - 1, DOMAIN, edu1.dev_id,
				     VSID1));
	ASSERT_EQ(0, vi_set_endpoint(vm->d.fd, 0, EP0, DOMAIN,
				     vm->n.edu.dev_id, vm->n.vsid));
	ASSERT_EQ(0, vi_destroy(vm->n.iommufd, vdev.out_vdevice_id));

	ASSERT_EQ(NSMMU_PG_A, probe(vm, NULL));
	nsmmu_map(&vm->n, NSMMU_VA_X, NSMMU_PG_B);
	ASSERT_EQ(NSMMU_PG_A, probe(vm, "PTE changed to page B: stale IOTLB entry"));
	ASSERT_EQ(VIRTIO_IOMMU_S_OK, guest_inval(vm, &all));
	ASSERT_EQ(NSMMU_PG_B, probe(vm, "after the INVALIDATE, stale endpoint first"));
	/* And the CD cache of the live endpoint was reached too */
	nsmmu_map(&vm->n, NSMMU_VA_X, NSMMU_PG_C);
	nsmmu_set_cd_asid(&vm->n, ASID + 1);
	ASSERT_EQ(VIRTIO_IOMMU_S_OK, guest_inval(vm, &all));
	ASSERT_EQ(NSMMU_PG_C, probe(vm, "new CD, new ASID"));
	edu_close(&edu1);
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
