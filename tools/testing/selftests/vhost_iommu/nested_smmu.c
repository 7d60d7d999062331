// SPDX-License-Identifier: GPL-2.0
/*
 * The nested SMMUv3 oracle, tested on its own with native SMMUv3
 * invalidation commands: DMA follows the stage-1 tables, a page-table
 * change without invalidation leaves a stale IOTLB entry in use, and the
 * right invalidation (and only that) makes DMA follow the new entry.
 */
#include <errno.h>

#include "../kselftest_harness.h"
#include "nested_smmu_lib.h"

#define VSID0	0x10
#define VSID1	0x20

/* Probe where DMA to @va lands, and say so (the demo shows these lines) */
static int probe(struct nested_smmu *n, uint64_t va, const char *why)
{
	int page = nsmmu_probe(n, va);

	ksft_print_msg("  edu%d DMA to VA 0x%llx -> %s%s%s\n", n->edu.dev_id,
		       (unsigned long long)va, nsmmu_page_name(page),
		       why ? ": " : "", why ? why : "");
	return page;
}

FIXTURE(nested_smmu) {
	struct nested_smmu n;
};

FIXTURE_SETUP(nested_smmu)
{
	int ret;

	if (edu_count() < 1)
		SKIP(return, "no edu device bound to vfio-pci");
	ret = nsmmu_setup(&self->n, 0, VSID0);
	ASSERT_EQ(0, ret) TH_LOG("%s", self->n.err);
}

FIXTURE_TEARDOWN(nested_smmu)
{
	nsmmu_teardown(&self->n);
}

/* DMA goes through S1+S2 to the page the table names */
TEST_F(nested_smmu, dma_follows_tables)
{
	ASSERT_EQ(NSMMU_PG_A, probe(&self->n, NSMMU_VA_X, "as the S1 table says"));
	ASSERT_EQ(NSMMU_PG_A, probe(&self->n, NSMMU_VA_X, "again"));
}

/* An unmapped VA translates to nothing: no data page is written */
TEST_F(nested_smmu, unmapped_va_writes_nothing)
{
	ASSERT_EQ(-1, probe(&self->n, NSMMU_VA_Y, "VA not mapped at stage 1"));
}

/* The stale IOTLB entry is used until TLBI_NH_VA for that address */
TEST_F(nested_smmu, stale_iotlb_then_tlbi_va)
{
	struct nested_smmu *n = &self->n;

	ASSERT_EQ(NSMMU_PG_A, probe(n, NSMMU_VA_X, NULL));
	ksft_print_msg("  guest changes the S1 PTE to page B, no invalidation\n");
	nsmmu_map(n, NSMMU_VA_X, NSMMU_PG_B);
	ASSERT_EQ(NSMMU_PG_A, probe(n, NSMMU_VA_X, "stale IOTLB entry"))
		TH_LOG("no stale entry");
	ksft_print_msg("  IOMMU_HWPT_INVALIDATE: TLBI_NH_VA ASID 0x42 VA 0x%llx\n",
		       (unsigned long long)NSMMU_VA_X);
	ASSERT_EQ(0, nsmmu_tlbi_va(n, NSMMU_VA_X));
	ASSERT_EQ(NSMMU_PG_B, probe(n, NSMMU_VA_X, "after the invalidation"));
}

/* Invalidating another address leaves the stale entry in place */
TEST_F(nested_smmu, tlbi_va_other_address_keeps_stale)
{
	struct nested_smmu *n = &self->n;

	ASSERT_EQ(NSMMU_PG_A, probe(n, NSMMU_VA_X, NULL));
	nsmmu_map(n, NSMMU_VA_X, NSMMU_PG_C);
	ASSERT_EQ(0, nsmmu_tlbi_va(n, NSMMU_VA_Y));
	ASSERT_EQ(NSMMU_PG_A, probe(n, NSMMU_VA_X, NULL));
	ASSERT_EQ(0, nsmmu_tlbi_va(n, NSMMU_VA_X));
	ASSERT_EQ(NSMMU_PG_C, probe(n, NSMMU_VA_X, NULL));
}

/* TLBI_NH_ASID drops every entry of the ASID */
TEST_F(nested_smmu, stale_iotlb_then_tlbi_asid)
{
	struct nested_smmu *n = &self->n;

	ASSERT_EQ(NSMMU_PG_A, probe(n, NSMMU_VA_X, NULL));
	nsmmu_map(n, NSMMU_VA_X, NSMMU_PG_B);
	ASSERT_EQ(NSMMU_PG_A, probe(n, NSMMU_VA_X, NULL));
	ASSERT_EQ(0, nsmmu_tlbi_va(n, NSMMU_VA_X));
	ASSERT_EQ(NSMMU_PG_B, probe(n, NSMMU_VA_X, NULL));
	nsmmu_map(n, NSMMU_VA_X, NSMMU_PG_A);
	ASSERT_EQ(NSMMU_PG_B, probe(n, NSMMU_VA_X, NULL));
	ASSERT_EQ(0, nsmmu_tlbi_asid(n));
	ASSERT_EQ(NSMMU_PG_A, probe(n, NSMMU_VA_X, NULL));
}

/*
 * The SMMU caches the context descriptor: after the guest moves it to a new
 * ASID, DMA keeps using the old one (and its stale TLB entry) until
 * CFGI_CD_ALL for the stream.
 */
TEST_F(nested_smmu, cd_cache_needs_cfgi)
{
	struct nested_smmu *n = &self->n;
	uint64_t cfgi[1][2] = {{ NSMMU_CMD_CFGI_CD_ALL | ((uint64_t)n->vsid << 32), 0 }};
	uint32_t num = 1;

	ASSERT_EQ(NSMMU_PG_A, probe(n, NSMMU_VA_X, NULL));
	nsmmu_map(n, NSMMU_VA_X, NSMMU_PG_B);
	nsmmu_set_cd_asid(n, 0x43);
	ASSERT_EQ(NSMMU_PG_A, probe(n, NSMMU_VA_X, "CD moved to ASID 0x43, no invalidation"));
	ASSERT_EQ(0, nsmmu_tlbi_asid(n));
	ASSERT_EQ(NSMMU_PG_A, probe(n, NSMMU_VA_X, "after TLBI_NH_ASID 0x43 only"));
	ASSERT_EQ(0, nsmmu_invalidate_cmds(n, cfgi, &num));
	ASSERT_EQ(NSMMU_PG_B, probe(n, NSMMU_VA_X, "after CFGI_CD_ALL"));
}

/* A command outside the guest's allowance is refused and nothing issued */
TEST_F(nested_smmu, forbidden_command_refused)
{
	uint64_t cmds[2][2] = {
		{ NSMMU_CMD_TLBI_NH_ASID | (0x42ULL << 48), 0 },
		{ NSMMU_CMD_TLBI_S12_VMALL, 0 },
	};
	uint32_t num = 2;

	EXPECT_EQ(-EIO, nsmmu_invalidate_cmds(&self->n, cmds, &num));
	EXPECT_EQ(1U, num);
}

/*
 * Two vIOMMUs (two VMs) with the same guest ASID: an invalidation on one
 * never reaches the other, whose stale entry stays stale. This is the
 * VMID substitution at work.
 */
TEST(two_viommus_isolated)
{
	struct nested_smmu a, b;
	int ret;

	if (edu_count() < 2)
		SKIP(return, "needs two edu devices");
	ret = nsmmu_setup(&a, 0, VSID0);
	ASSERT_EQ(0, ret) TH_LOG("%s", a.err);
	ret = nsmmu_setup(&b, 1, VSID1);
	ASSERT_EQ(0, ret) TH_LOG("%s", b.err);
	ASSERT_EQ(a.asid, b.asid);

	ASSERT_EQ(NSMMU_PG_A, probe(&a, NSMMU_VA_X, NULL));
	ASSERT_EQ(NSMMU_PG_A, probe(&b, NSMMU_VA_X, NULL));
	nsmmu_map(&a, NSMMU_VA_X, NSMMU_PG_B);
	nsmmu_map(&b, NSMMU_VA_X, NSMMU_PG_B);
	/* Invalidate everything of ASID 0x42 in VM b only */
	ASSERT_EQ(0, nsmmu_tlbi_asid(&b));
	ASSERT_EQ(NSMMU_PG_B, probe(&b, NSMMU_VA_X, NULL));
	ASSERT_EQ(NSMMU_PG_A, probe(&a, NSMMU_VA_X, NULL)) TH_LOG("VM a lost its entry");
	ASSERT_EQ(0, nsmmu_tlbi_asid(&a));
	ASSERT_EQ(NSMMU_PG_B, probe(&a, NSMMU_VA_X, NULL));
	nsmmu_teardown(&b);
	nsmmu_teardown(&a);
}

TEST_HARNESS_MAIN
