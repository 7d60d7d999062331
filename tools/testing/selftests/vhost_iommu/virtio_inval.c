// SPDX-License-Identifier: GPL-2.0-only
/*
 * IOMMU_VIOMMU_INVALIDATE_DATA_VIRTIO on the iommufd selftest mock vIOMMU:
 * what reaches the driver and how it is batched (read back through
 * IOMMU_TEST_OP_VIOMMU_VIRTIO_LOG), every validation error, entry_num on
 * partial failure, the domain entry / endpoint entry shape (an endpoint
 * whose vDEVICE is gone is skipped, never failed), the in-kernel API
 * (iommufd_viommu_get_by_id(), iommufd_viommu_invalidate_virtio(),
 * iommufd_viommu_put_ref()) and its lifetime rules. This is what a VMM
 * without vhost-iommu does: one IOMMU_HWPT_INVALIDATE per kick.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "../kselftest_harness.h"
#include "vhost_iommu_utils.h"
#include "../../../../drivers/iommu/iommufd/iommufd_test.h"

#define VSID		0x99
#define VSID2		0x9a
#define BAD_VSID	0x1234
/* Not a virtio flag: vi_entry() makes an endpoint entry for VSID */
#define VI_EP		0x8000

struct vinv_entry_long {
	struct iommu_viommu_invalidate_virtio e;
	__u8 tail[8];
};

/* IOMMU_HWPT_INVALIDATE; returns 0 or -errno, *num in/out */
static int vi_inval(int fd, __u32 id, __u32 type, const void *data,
		    __u32 entry_len, __u32 *num)
{
	struct iommu_hwpt_invalidate cmd = {
		.size = sizeof(cmd),
		.hwpt_id = id,
		.data_uptr = (uintptr_t)data,
		.data_type = type,
		.entry_len = entry_len,
		.entry_num = *num,
	};
	int ret = ioctl(fd, IOMMU_HWPT_INVALIDATE, &cmd);

	*num = cmd.entry_num;
	return ret ? -errno : 0;
}

/* IOMMU_TEST_OP_VIOMMU_KERNEL_INVALIDATE, same convention */
static int vi_kinval(int fd, __u32 id, __u32 type, const void *data,
		     __u32 entry_len, __u32 *num)
{
	struct iommu_test_cmd cmd = {
		.size = sizeof(cmd),
		.op = IOMMU_TEST_OP_VIOMMU_KERNEL_INVALIDATE,
		.id = id,
		.kernel_invalidate = {
			.data_uptr = (uintptr_t)data,
			.data_type = type,
			.entry_len = entry_len,
			.entry_num = *num,
		},
	};
	int ret = ioctl(fd, IOMMU_TEST_CMD, &cmd);

	*num = cmd.kernel_invalidate.entry_num;
	return ret ? -errno : 0;
}

struct vi_log {
	__u32 num;
	__u32 calls;
	__u32 lost;
	struct iommu_test_virtio_inv_record rec[MOCK_VIRTIO_LOG_MAX];
};

static int vi_read_log(int fd, __u32 viommu_id, struct vi_log *log)
{
	memset(log, 0, sizeof(*log));
	return vi_mock_log(fd, viommu_id, log->rec, MOCK_VIRTIO_LOG_MAX,
			   &log->num, &log->calls, &log->lost);
}

/* IOMMU_TEST_OP_VIOMMU_HOLD: the holding fd, or -errno */
static int vi_hold(int fd, __u32 id)
{
	struct iommu_test_cmd cmd = {
		.size = sizeof(cmd),
		.op = IOMMU_TEST_OP_VIOMMU_HOLD,
		.id = id,
	};

	return ioctl(fd, IOMMU_TEST_CMD, &cmd) ? -errno :
						 (int)cmd.viommu_hold.out_fd;
}

static struct iommu_viommu_invalidate_virtio
vi_entry(__u8 scope, __u8 caches, __u16 flags, __u32 pasid,
	 __u64 id, __u64 address, __u64 nr_pages, __u8 page_size)
{
	struct iommu_viommu_invalidate_virtio e = {
		.flags = (flags & VI_EP) ? IOMMU_VIRTIO_INVAL_HOST_F_VDEV : 0,
		.vdev_id = (flags & VI_EP) ? VSID : 0,
		.scope = scope,
		.caches = caches,
		.inv_flags = htole16(flags & ~VI_EP),
		.domain = htole32(7),
		.pasid = htole32(pasid),
		.id = htole64(id),
		.address = htole64(address),
		.nr_pages = htole64(nr_pages),
		.page_size = page_size,
	};

	return e;
}

/* A valid entry of each shape */
static struct iommu_viommu_invalidate_virtio vi_good(unsigned int i)
{
	switch (i % 4) {
	case 0:
		return vi_entry(IOMMU_VIRTIO_INVAL_S_DOMAIN,
				IOMMU_VIRTIO_INVAL_C_TLB, 0, 0, 0, 0, 0, 0);
	case 1:
		return vi_entry(IOMMU_VIRTIO_INVAL_S_PASID,
				IOMMU_VIRTIO_INVAL_C_TLB |
				IOMMU_VIRTIO_INVAL_C_PASID,
				IOMMU_VIRTIO_INVAL_F_PASID |
				IOMMU_VIRTIO_INVAL_F_ID | VI_EP, 3, 0x42 + i,
				0, 0, 0);
	case 2:
		return vi_entry(IOMMU_VIRTIO_INVAL_S_ADDRESS,
				IOMMU_VIRTIO_INVAL_C_TLB,
				IOMMU_VIRTIO_INVAL_F_ID |
				IOMMU_VIRTIO_INVAL_F_LEAF, 0, 0x42,
				0x200000 + i * 0x1000, 1 + i, 12);
	default:
		return vi_entry(IOMMU_VIRTIO_INVAL_S_ADDRESS,
				IOMMU_VIRTIO_INVAL_C_TLB,
				IOMMU_VIRTIO_INVAL_F_GLOBAL, 0, 0,
				0x40000000, 2, 21);
	}
}

FIXTURE(virtio_inval)
{
	struct vi_mock m;
	int fd;
	__u32 ioas_id;
	__u32 idev_id;
	__u32 viommu_id;
	__u32 vdev_id;
};

FIXTURE_SETUP(virtio_inval)
{
	ASSERT_EQ(0, vi_mock_viommu(&self->m, VSID));
	self->fd = self->m.iommufd;
	self->ioas_id = self->m.ioas_id;
	self->idev_id = self->m.idev_id;
	self->viommu_id = self->m.viommu_id;
	self->vdev_id = self->m.vdevice_id;
}

FIXTURE_TEARDOWN(virtio_inval)
{
	/* close_while_held opens another iommufd in self->fd */
	if (self->fd != self->m.iommufd)
		close(self->fd);
	vi_mock_close(&self->m);
}

/* A zero-length array probes the data type; the driver is not called */
TEST_F(virtio_inval, probe)
{
	struct vi_log log;
	__u32 num = 0;

	ASSERT_EQ(0, vi_inval(self->fd, self->viommu_id,
			      IOMMU_VIOMMU_INVALIDATE_DATA_VIRTIO, NULL, 0,
			      &num));
	ASSERT_EQ(0, num);
	ASSERT_EQ(0, vi_read_log(self->fd, self->viommu_id, &log));
	ASSERT_EQ(0, log.calls);
	ASSERT_EQ(0, log.num);
}

/* Every entry reaches the driver byte for byte, in order, in one call */
TEST_F(virtio_inval, entries_arrive_as_sent)
{
	struct iommu_viommu_invalidate_virtio e[8];
	struct vi_log log;
	__u32 num = 8;
	unsigned int i;

	for (i = 0; i < 8; i++)
		e[i] = vi_good(i);
	ASSERT_EQ(0, vi_inval(self->fd, self->viommu_id,
			      IOMMU_VIOMMU_INVALIDATE_DATA_VIRTIO, e,
			      sizeof(e[0]), &num));
	ASSERT_EQ(8, num);
	ASSERT_EQ(0, vi_read_log(self->fd, self->viommu_id, &log));
	ASSERT_EQ(1, log.calls);
	ASSERT_EQ(8, log.num);
	ASSERT_EQ(0, log.lost);
	for (i = 0; i < 8; i++) {
		ASSERT_EQ(1, log.rec[i].call);
		ASSERT_EQ(i, log.rec[i].index);
		ASSERT_EQ(8, log.rec[i].call_entry_num);
		ASSERT_EQ(0, log.rec[i].flags);
		ASSERT_EQ(0, memcmp(&e[i], &log.rec[i].entry, sizeof(e[i])));
	}
	/* Reading cleared the log */
	ASSERT_EQ(0, vi_read_log(self->fd, self->viommu_id, &log));
	ASSERT_EQ(0, log.calls);
	ASSERT_EQ(0, log.num);
}

/*
 * The batches the caller made are the batches the driver sees (an empty
 * one does not reach it)
 */
TEST_F(virtio_inval, batching)
{
	struct iommu_viommu_invalidate_virtio e[5];
	static const unsigned int split[] = { 2, 1, 0, 2 };
	unsigned int i, c, n = 0;
	struct vi_log log;

	for (i = 0; i < 5; i++)
		e[i] = vi_good(i + 1);
	for (c = 0; c < 4; c++) {
		__u32 num = split[c];

		ASSERT_EQ(0, vi_inval(self->fd, self->viommu_id,
				      IOMMU_VIOMMU_INVALIDATE_DATA_VIRTIO,
				      num ? &e[n] : NULL, sizeof(e[0]), &num));
		ASSERT_EQ(split[c], num);
		n += num;
	}
	ASSERT_EQ(0, vi_read_log(self->fd, self->viommu_id, &log));
	ASSERT_EQ(3, log.calls);
	ASSERT_EQ(5, log.num);
	ASSERT_EQ(1, log.rec[0].call);
	ASSERT_EQ(0, log.rec[0].index);
	ASSERT_EQ(1, log.rec[1].call);
	ASSERT_EQ(1, log.rec[1].index);
	ASSERT_EQ(2, log.rec[2].call);
	ASSERT_EQ(0, log.rec[2].index);
	ASSERT_EQ(1, log.rec[2].call_entry_num);
	ASSERT_EQ(3, log.rec[3].call);
	ASSERT_EQ(3, log.rec[4].call);
	ASSERT_EQ(1, log.rec[4].index);
	for (i = 0; i < 5; i++)
		ASSERT_EQ(0, memcmp(&e[i], &log.rec[i].entry, sizeof(e[i])));
}

/* The log is bounded: entries beyond it are counted, not stored */
TEST_F(virtio_inval, log_bounded)
{
	struct iommu_viommu_invalidate_virtio e[MOCK_VIRTIO_LOG_MAX + 3];
	__u32 num = MOCK_VIRTIO_LOG_MAX + 3;
	struct vi_log log;
	unsigned int i;

	for (i = 0; i < num; i++)
		e[i] = vi_good(i);
	ASSERT_EQ(0, vi_inval(self->fd, self->viommu_id,
			      IOMMU_VIOMMU_INVALIDATE_DATA_VIRTIO, e,
			      sizeof(e[0]), &num));
	ASSERT_EQ(MOCK_VIRTIO_LOG_MAX + 3, num);
	ASSERT_EQ(0, vi_read_log(self->fd, self->viommu_id, &log));
	ASSERT_EQ(MOCK_VIRTIO_LOG_MAX, log.num);
	ASSERT_EQ(3, log.lost);
}

/* An entry change: up to two fields set to new values */
enum vi_field {
	VF_NONE,
	VF_HOST_FLAGS,
	VF_RES,
	VF_RES2,
	VF_SCOPE,
	VF_CACHES,
	VF_FLAGS,
	VF_RES1_FIRST,
	VF_RES1_LAST,
	VF_VDEV_ID,
	VF_PAGE_SIZE,
	VF_NR_PAGES,
	VF_ADDRESS,
};

struct vi_bad {
	const char *what;
	int err;
	enum vi_field field[2];
	__u64 val[2];
};

/* The guest flags of vi_good(1) */
#define VI_PF	(IOMMU_VIRTIO_INVAL_F_PASID | IOMMU_VIRTIO_INVAL_F_ID)

/* Changes of vi_good(1), a PASID-scope endpoint entry with C_PASID */
static const struct vi_bad vi_bad_pasid[] = {
	{ "host flag bit 1", EOPNOTSUPP, { VF_HOST_FLAGS },
	  { IOMMU_VIRTIO_INVAL_HOST_F_VDEV | 2 } },
	{ "host flag bit 31", EOPNOTSUPP, { VF_HOST_FLAGS },
	  { IOMMU_VIRTIO_INVAL_HOST_F_VDEV | 1U << 31 } },
	{ "__reserved", EINVAL, { VF_RES }, { 1 } },
	{ "__reserved2", EINVAL, { VF_RES2 }, { 0x80000000 } },
	{ "C_PASID in a domain entry", EINVAL, { VF_HOST_FLAGS, VF_VDEV_ID },
	  { 0, 0 } },
	{ "vdev_id in a domain entry", EINVAL, { VF_HOST_FLAGS, VF_CACHES },
	  { 0, IOMMU_VIRTIO_INVAL_C_TLB } },
	{ "scope 0", EINVAL, { VF_SCOPE }, { 0 } },
	{ "scope 4", EINVAL, { VF_SCOPE }, { 4 } },
	{ "scope 0xff", EINVAL, { VF_SCOPE }, { 0xff } },
	{ "caches 0", EINVAL, { VF_CACHES }, { 0 } },
	{ "caches bit 2", EINVAL, { VF_CACHES }, { 7 } },
	{ "caches bit 7", EINVAL, { VF_CACHES }, { 0x83 } },
	{ "flags bit 4", EINVAL, { VF_FLAGS }, { VI_PF | 1 << 4 } },
	{ "flags bit 8", EINVAL, { VF_FLAGS }, { VI_PF | 1 << 8 } },
	{ "flags bit 14", EINVAL, { VF_FLAGS }, { VI_PF | 1 << 14 } },
	{ "reserved first byte", EINVAL, { VF_RES1_FIRST }, { 1 } },
	{ "reserved last byte", EINVAL, { VF_RES1_LAST }, { 0x80 } },
	{ "S_PASID without F_PASID", EINVAL, { VF_FLAGS },
	  { VI_PF & ~IOMMU_VIRTIO_INVAL_F_PASID } },
};

/* Changes of vi_good(2), an address-scope entry */
static const struct vi_bad vi_bad_address[] = {
	{ "page_size 11", EINVAL, { VF_PAGE_SIZE }, { 11 } },
	{ "page_size 53", EINVAL, { VF_PAGE_SIZE }, { 53 } },
	{ "page_size 255", EINVAL, { VF_PAGE_SIZE }, { 255 } },
	{ "nr_pages 0", EINVAL, { VF_NR_PAGES }, { 0 } },
	{ "nr_pages U64_MAX", EINVAL, { VF_NR_PAGES }, { UINT64_MAX } },
	{ "all 4K pages", EINVAL, { VF_NR_PAGES }, { UINT64_MAX >> 12 } },
	{ "range past 2^64", EINVAL, { VF_ADDRESS, VF_NR_PAGES },
	  { 0xfffffffffffff000ULL, 2 } },
	{ "unaligned range past 2^64", EINVAL, { VF_ADDRESS, VF_NR_PAGES },
	  { 0xffffffffffffe800ULL, 2 } },
};

static void vi_apply(struct iommu_viommu_invalidate_virtio *e,
		     const struct vi_bad *bad)
{
	unsigned int i;

	for (i = 0; i < 2; i++) {
		__u64 v = bad->val[i];

		switch (bad->field[i]) {
		case VF_NONE:
			break;
		case VF_HOST_FLAGS:
			e->flags = v;
			break;
		case VF_RES:
			e->__reserved = v;
			break;
		case VF_RES2:
			e->__reserved2 = v;
			break;
		case VF_SCOPE:
			e->scope = v;
			break;
		case VF_CACHES:
			e->caches = v;
			break;
		case VF_FLAGS:
			e->inv_flags = htole16(v);
			break;
		case VF_RES1_FIRST:
			e->__reserved_req[0] = v;
			break;
		case VF_RES1_LAST:
			e->__reserved_req[sizeof(e->__reserved_req) - 1] = v;
			break;
		case VF_VDEV_ID:
			e->vdev_id = v;
			break;
		case VF_PAGE_SIZE:
			e->page_size = v;
			break;
		case VF_NR_PAGES:
			e->nr_pages = htole64(v);
			break;
		case VF_ADDRESS:
			e->address = htole64(v);
			break;
		}
	}
}

/*
 * Each bad entry, alone and as the third of four: the call fails with the
 * documented errno, entry_num counts the entries before it, and exactly
 * those reached the driver (alone, the driver is not called at all).
 * Through the ioctl and the kernel API.
 */
static void vi_check_bad(struct __test_metadata *_metadata, int fd,
			 __u32 viommu_id, const struct vi_bad *bad,
			 struct iommu_viommu_invalidate_virtio base,
			 bool kernel)
{
	struct iommu_viommu_invalidate_virtio e[4];
	struct vi_log log;
	__u32 num;
	int ret;

	e[0] = vi_good(0);
	e[1] = vi_good(2);
	e[2] = base;
	vi_apply(&e[2], bad);
	e[3] = vi_good(1);

	num = 1;
	ret = kernel ? vi_kinval(fd, viommu_id,
				 IOMMU_VIOMMU_INVALIDATE_DATA_VIRTIO, &e[2],
				 sizeof(e[0]), &num) :
		       vi_inval(fd, viommu_id,
				IOMMU_VIOMMU_INVALIDATE_DATA_VIRTIO, &e[2],
				sizeof(e[0]), &num);
	EXPECT_EQ(-bad->err, ret) TH_LOG("%s alone", bad->what);
	EXPECT_EQ(0, num) TH_LOG("%s alone", bad->what);

	num = 4;
	ret = kernel ? vi_kinval(fd, viommu_id,
				 IOMMU_VIOMMU_INVALIDATE_DATA_VIRTIO, e,
				 sizeof(e[0]), &num) :
		       vi_inval(fd, viommu_id,
				IOMMU_VIOMMU_INVALIDATE_DATA_VIRTIO, e,
				sizeof(e[0]), &num);
	EXPECT_EQ(-bad->err, ret) TH_LOG("%s third", bad->what);
	EXPECT_EQ(2, num) TH_LOG("%s third", bad->what);

	ASSERT_EQ(0, vi_read_log(fd, viommu_id, &log));
	EXPECT_EQ(1, log.calls);
	ASSERT_EQ(2, log.num) TH_LOG("%s", bad->what);
	EXPECT_EQ(1, log.rec[0].call);
	EXPECT_EQ(0, memcmp(&e[0], &log.rec[0].entry, sizeof(e[0])));
	EXPECT_EQ(1, log.rec[1].call);
	EXPECT_EQ(0, memcmp(&e[1], &log.rec[1].entry, sizeof(e[1])));
}

TEST_F(virtio_inval, bad_entries)
{
	struct iommu_viommu_invalidate_virtio pasid = vi_good(1);
	struct iommu_viommu_invalidate_virtio addr = vi_good(2);
	unsigned int i, k;

	for (k = 0; k < 2; k++) {
		for (i = 0; i < ARRAY_SIZE(vi_bad_pasid); i++)
			vi_check_bad(_metadata, self->fd, self->viommu_id,
				     &vi_bad_pasid[i], pasid, k);
		for (i = 0; i < ARRAY_SIZE(vi_bad_address); i++)
			vi_check_bad(_metadata, self->fd, self->viommu_id,
				     &vi_bad_address[i], addr, k);
	}
}

/*
 * Fields a scope does not use are not checked; an unaligned start is fine,
 * also for a range whose last byte is the last of the 64-bit space
 */
TEST_F(virtio_inval, lenient_fields)
{
	struct iommu_viommu_invalidate_virtio e[5];
	__u32 num = 5;

	e[0] = vi_entry(IOMMU_VIRTIO_INVAL_S_DOMAIN, IOMMU_VIRTIO_INVAL_C_TLB,
			0, 0xffffffff, UINT64_MAX, UINT64_MAX, UINT64_MAX,
			0xff);
	e[1] = vi_entry(IOMMU_VIRTIO_INVAL_S_ADDRESS, IOMMU_VIRTIO_INVAL_C_TLB,
			0, 0, 0, 0x1800, 1, 12);
	/* The last page of the address space */
	e[2] = vi_entry(IOMMU_VIRTIO_INVAL_S_ADDRESS, IOMMU_VIRTIO_INVAL_C_TLB,
			0, 0, 0, 0xfffffffffffff000ULL, 1, 12);
	/* From 2K up to the top: 2^52 - 1 pages, touching all 2^52 */
	e[3] = vi_entry(IOMMU_VIRTIO_INVAL_S_ADDRESS, IOMMU_VIRTIO_INVAL_C_TLB,
			0, 0, 0, 0x800, UINT64_MAX >> 12, 12);
	/* The whole space: 2^52 pages from 0, the last byte 2^64 - 1 */
	e[4] = vi_entry(IOMMU_VIRTIO_INVAL_S_ADDRESS, IOMMU_VIRTIO_INVAL_C_TLB,
			0, 0, 0, 0, 1ULL << 52, 12);
	ASSERT_EQ(0, vi_inval(self->fd, self->viommu_id,
			      IOMMU_VIOMMU_INVALIDATE_DATA_VIRTIO, e,
			      sizeof(e[0]), &num));
	ASSERT_EQ(5, num);
}

/* entry_len, entry_num, data_uptr and data_type checks */
TEST_F(virtio_inval, array_checks)
{
	struct iommu_viommu_invalidate_virtio e = vi_good(0);
	struct vinv_entry_long l[2] = { { .e = vi_good(0) },
					{ .e = vi_good(2) } };
	__u8 *page = calloc(1, getpagesize() + 1);
	struct vi_log log;
	__u32 num;
	int k;

	ASSERT_NE(NULL, page);
	for (k = 0; k < 2; k++) {
		int (*inval)(int, __u32, __u32, const void *, __u32,
			     __u32 *) = k ? vi_kinval : vi_inval;

		/* Shorter than the structure */
		num = 1;
		EXPECT_EQ(-EINVAL, inval(self->fd, self->viommu_id,
					 IOMMU_VIOMMU_INVALIDATE_DATA_VIRTIO,
					 &e, sizeof(e) - 1, &num));
		EXPECT_EQ(0, num);
		num = 1;
		EXPECT_EQ(-EINVAL, inval(self->fd, self->viommu_id,
					 IOMMU_VIOMMU_INVALIDATE_DATA_VIRTIO,
					 &e, 4, &num));
		/* The kernel API takes entries of exactly the structure */
		if (k) {
			num = 2;
			EXPECT_EQ(-EINVAL, inval(self->fd, self->viommu_id,
						 IOMMU_VIOMMU_INVALIDATE_DATA_VIRTIO,
						 l, sizeof(l[0]), &num));
			EXPECT_EQ(0, num);
			continue;
		}
		/* Longer with zero tails: fine */
		num = 2;
		EXPECT_EQ(0, inval(self->fd, self->viommu_id,
				   IOMMU_VIOMMU_INVALIDATE_DATA_VIRTIO, l,
				   sizeof(l[0]), &num));
		EXPECT_EQ(2, num);
		/* A non-zero tail on the second entry: E2BIG there */
		l[1].tail[7] = 1;
		num = 2;
		EXPECT_EQ(-E2BIG, inval(self->fd, self->viommu_id,
					IOMMU_VIOMMU_INVALIDATE_DATA_VIRTIO, l,
					sizeof(l[0]), &num));
		EXPECT_EQ(1, num);
		l[1].tail[7] = 0;
		/* A whole page per entry is the maximum */
		memcpy(page, &e, sizeof(e));
		num = 1;
		EXPECT_EQ(0, inval(self->fd, self->viommu_id,
				   IOMMU_VIOMMU_INVALIDATE_DATA_VIRTIO, page,
				   getpagesize(), &num));
		num = 1;
		EXPECT_EQ(-EINVAL, inval(self->fd, self->viommu_id,
					 IOMMU_VIOMMU_INVALIDATE_DATA_VIRTIO,
					 page, getpagesize() + 1, &num));
		/* Zero length with entries */
		num = 1;
		EXPECT_EQ(-EINVAL, inval(self->fd, self->viommu_id,
					 IOMMU_VIOMMU_INVALIDATE_DATA_VIRTIO,
					 &e, 0, &num));
		/* Another data type */
		num = 1;
		EXPECT_EQ(-EINVAL, inval(self->fd, self->viommu_id,
					 IOMMU_VIOMMU_INVALIDATE_DATA_ARM_SMMUV3,
					 &e, sizeof(e), &num));
		EXPECT_EQ(0, num);
		num = 1;
		EXPECT_EQ(-EINVAL, inval(self->fd, self->viommu_id, 77, &e,
					 sizeof(e), &num));
	}
	/* The kernel API takes only the virtio type */
	num = 1;
	EXPECT_EQ(-EINVAL, vi_kinval(self->fd, self->viommu_id,
				     IOMMU_VIOMMU_INVALIDATE_DATA_ARM_SMMUV3,
				     &e, sizeof(e), &num));

	/* Ioctl only: no pointer, too many entries, a bad pointer */
	num = 1;
	EXPECT_EQ(-EINVAL, vi_inval(self->fd, self->viommu_id,
				    IOMMU_VIOMMU_INVALIDATE_DATA_VIRTIO, NULL,
				    sizeof(e), &num));
	num = (1U << 19) + 1;
	EXPECT_EQ(-EINVAL, vi_inval(self->fd, self->viommu_id,
				    IOMMU_VIOMMU_INVALIDATE_DATA_VIRTIO, &e,
				    sizeof(e), &num));
	EXPECT_EQ(0, num);
	num = 1;
	EXPECT_EQ(-EFAULT, vi_inval(self->fd, self->viommu_id,
				    IOMMU_VIOMMU_INVALIDATE_DATA_VIRTIO,
				    (void *)8, sizeof(e), &num));
	EXPECT_EQ(0, num);
	/* Not a vIOMMU */
	num = 1;
	EXPECT_EQ(-EINVAL, vi_inval(self->fd, self->ioas_id,
				    IOMMU_VIOMMU_INVALIDATE_DATA_VIRTIO, &e,
				    sizeof(e), &num));
	num = 1;
	EXPECT_EQ(-ENOENT, vi_kinval(self->fd, self->ioas_id,
				     IOMMU_VIOMMU_INVALIDATE_DATA_VIRTIO, &e,
				     sizeof(e), &num));
	EXPECT_EQ(0, num);
	ASSERT_EQ(0, vi_read_log(self->fd, self->viommu_id, &log));
	free(page);
}

/* The kernel-buffer path delivers the same entries */
TEST_F(virtio_inval, kernel_api)
{
	struct iommu_viommu_invalidate_virtio e[4];
	struct vi_log log;
	__u32 num = 4;
	unsigned int i;

	for (i = 0; i < 4; i++)
		e[i] = vi_good(i);
	ASSERT_EQ(0, vi_kinval(self->fd, self->viommu_id,
			       IOMMU_VIOMMU_INVALIDATE_DATA_VIRTIO, e,
			       sizeof(e[0]), &num));
	ASSERT_EQ(4, num);
	/* Zero entries: the probe, no driver call */
	num = 0;
	ASSERT_EQ(0, vi_kinval(self->fd, self->viommu_id,
			       IOMMU_VIOMMU_INVALIDATE_DATA_VIRTIO, NULL,
			       sizeof(e[0]), &num));
	ASSERT_EQ(0, vi_read_log(self->fd, self->viommu_id, &log));
	ASSERT_EQ(1, log.calls);
	ASSERT_EQ(4, log.num);
	for (i = 0; i < 4; i++) {
		ASSERT_EQ(1, log.rec[i].call);
		ASSERT_EQ(0, memcmp(&e[i], &log.rec[i].entry, sizeof(e[i])));
	}
}

/* A held vIOMMU cannot be destroyed; released, it can */
TEST_F(virtio_inval, hold_blocks_destroy)
{
	struct iommu_viommu_invalidate_virtio e = vi_good(0);
	__u32 num = 1;
	int h1, h2;

	ASSERT_EQ(-ENOENT, vi_hold(self->fd, self->ioas_id));
	ASSERT_EQ(0, vi_destroy(self->fd, self->vdev_id));
	h1 = vi_hold(self->fd, self->viommu_id);
	ASSERT_LE(0, h1);
	h2 = vi_hold(self->fd, self->viommu_id);
	ASSERT_LE(0, h2);
	ASSERT_EQ(-EBUSY, vi_destroy(self->fd, self->viommu_id));
	/* Still usable */
	ASSERT_EQ(0, vi_inval(self->fd, self->viommu_id,
			      IOMMU_VIOMMU_INVALIDATE_DATA_VIRTIO, &e,
			      sizeof(e), &num));
	ASSERT_EQ(0, close(h1));
	ASSERT_EQ(-EBUSY, vi_destroy(self->fd, self->viommu_id));
	ASSERT_EQ(0, close(h2));
	ASSERT_EQ(0, vi_destroy(self->fd, self->viommu_id));
}

/*
 * Closing the iommufd while a reference is held: the context lives on until
 * the reference is put, then everything is freed (kmemleak watches).
 */
TEST_F(virtio_inval, close_while_held)
{
	struct iommu_viommu_invalidate_virtio e = vi_good(1);
	int h = vi_hold(self->fd, self->viommu_id);
	__u32 num = 1;

	ASSERT_LE(0, h);
	/* The kernel API still reaches the vIOMMU through a held reference */
	ASSERT_EQ(0, vi_kinval(self->fd, self->viommu_id,
			       IOMMU_VIOMMU_INVALIDATE_DATA_VIRTIO, &e,
			       sizeof(e), &num));
	ASSERT_EQ(0, close(self->fd));
	self->m.iommufd = -1;
	self->fd = open("/dev/iommu", O_RDWR);
	ASSERT_LE(0, self->fd);
	ASSERT_EQ(0, close(h));
}

struct vi_race {
	int fd;
	__u32 viommu_id;
	int stop;
	unsigned int ok;
	unsigned int other;
};

static void *vi_race_inval(void *arg)
{
	struct vi_race *r = arg;
	struct iommu_viommu_invalidate_virtio e[3] = {
		vi_good(1), vi_good(0), vi_good(1),
	};

	while (!__atomic_load_n(&r->stop, __ATOMIC_RELAXED)) {
		__u32 num = 3;
		int ret = vi_inval(r->fd, r->viommu_id,
				   IOMMU_VIOMMU_INVALIDATE_DATA_VIRTIO, e,
				   sizeof(e[0]), &num);

		if (!ret && num == 3)
			r->ok++;
		else
			r->other++;
	}
	return NULL;
}

/*
 * Invalidations naming a vDEVICE (entries 0 and 2) while it is destroyed
 * and re-created: each call is all done, the entries of a vDEVICE that is
 * gone skipped, and nothing else happens (lockdep and KASAN watch the
 * kernel side).
 */
TEST_F(virtio_inval, vdevice_churn)
{
	struct vi_race r = { .fd = self->fd, .viommu_id = self->viommu_id };
	struct vi_log log;
	pthread_t thread;
	int i;

	ASSERT_EQ(0, pthread_create(&thread, NULL, vi_race_inval, &r));
	for (i = 0; i < 200; i++) {
		ASSERT_EQ(0, vi_destroy(self->fd, self->vdev_id));
		ASSERT_EQ(0, vi_mock_vdevice(self->fd, self->viommu_id,
					     self->idev_id, VSID,
					     &self->vdev_id));
	}
	__atomic_store_n(&r.stop, 1, __ATOMIC_RELAXED);
	ASSERT_EQ(0, pthread_join(thread, NULL));
	ksft_print_msg("%u calls done, %u refused\n", r.ok, r.other);
	EXPECT_EQ(0, r.other);
	EXPECT_LT(0, r.ok);
	ASSERT_EQ(0, vi_read_log(self->fd, self->viommu_id, &log));
}

/*
 * B1: an endpoint entry whose vDEVICE is gone is skipped and counted as
 * handled; the domain entry and the other endpoint's entry after it are
 * still done (the mock device's caches are invalidated), whatever the order.
 */
TEST_F(virtio_inval, stale_endpoint_skipped)
{
	struct iommu_viommu_invalidate_virtio e[3];
	unsigned int order, i;
	struct vi_log log;

	for (order = 0; order < 2; order++) {
		__u32 num = 3;

		e[0] = vi_entry(IOMMU_VIRTIO_INVAL_S_DOMAIN,
				IOMMU_VIRTIO_INVAL_C_PASID |
				IOMMU_VIRTIO_INVAL_C_TLB, VI_EP, 0, 0, 0, 0, 0);
		e[0].vdev_id = BAD_VSID;
		e[1] = vi_entry(IOMMU_VIRTIO_INVAL_S_DOMAIN,
				IOMMU_VIRTIO_INVAL_C_TLB, 0, 0, 0, 0, 0, 0);
		e[2] = vi_entry(IOMMU_VIRTIO_INVAL_S_DOMAIN,
				IOMMU_VIRTIO_INVAL_C_PASID |
				IOMMU_VIRTIO_INVAL_C_TLB, VI_EP, 0, 0, 0, 0, 0);
		if (order) {
			struct iommu_viommu_invalidate_virtio t = e[0];

			e[0] = e[2];
			e[2] = t;
		}
		for (i = 0; i <= MOCK_DEV_CACHE_ID_MAX; i++)
			ASSERT_TRUE(vi_mock_cache_is(self->fd, self->idev_id, i,
						     order ? 0 :
						     IOMMU_TEST_DEV_CACHE_DEFAULT));
		ASSERT_EQ(0, vi_inval(self->fd, self->viommu_id,
				      IOMMU_VIOMMU_INVALIDATE_DATA_VIRTIO, e,
				      sizeof(e[0]), &num));
		ASSERT_EQ(3, num);
		for (i = 0; i <= MOCK_DEV_CACHE_ID_MAX; i++)
			ASSERT_TRUE(vi_mock_cache_is(self->fd, self->idev_id, i, 0));
		ASSERT_EQ(0, vi_read_log(self->fd, self->viommu_id, &log));
		ASSERT_EQ(1, log.calls);
		ASSERT_EQ(3, log.num);
		EXPECT_EQ(order ? 0 : MOCK_VIRTIO_REC_SKIPPED,
			  log.rec[0].flags);
		EXPECT_EQ(0, log.rec[1].flags);
		EXPECT_EQ(order ? MOCK_VIRTIO_REC_SKIPPED : 0,
			  log.rec[2].flags);
	}
}

/*
 * A VMM serving a one-queue guest: a kick's worth of three INVALIDATEs on a
 * domain with two endpoints becomes, in one IOMMU_HWPT_INVALIDATE, one domain
 * entry and two endpoint entries per request, each built the way a VMM
 * builds it, from the request's bytes 4..59.
 */
TEST_F(virtio_inval, kick_fanout_one_call)
{
	struct iommu_viommu_invalidate_virtio e[9];
	struct vi_mock_dev md;
	__u32 num = 9;
	struct vi_log log;
	unsigned int r, i;
	__u8 req[64];

	ASSERT_EQ(0, vi_mock_add_dev(&self->m, VSID2, &md));
	for (r = 0; r < 3; r++) {
		struct iommu_viommu_invalidate_virtio g = vi_good(r + 1);

		/* The guest's request: head, bytes 4..59, tail */
		memset(req, 0, sizeof(req));
		req[0] = 7;
		memcpy(req + 4, (__u8 *)&g + IOMMU_VIRTIO_INVAL_REQ_OFFSET,
		       IOMMU_VIRTIO_INVAL_REQ_LEN);
		for (i = 0; i < 3; i++) {
			struct iommu_viommu_invalidate_virtio *x = &e[r * 3 + i];

			memset(x, 0, sizeof(*x));
			memcpy((__u8 *)x + IOMMU_VIRTIO_INVAL_REQ_OFFSET,
			       req + 4, IOMMU_VIRTIO_INVAL_REQ_LEN);
			if (!i) {
				x->caches &= ~IOMMU_VIRTIO_INVAL_C_PASID;
				continue;
			}
			x->flags = IOMMU_VIRTIO_INVAL_HOST_F_VDEV;
			x->vdev_id = i == 1 ? VSID : VSID2;
		}
	}
	ASSERT_EQ(0, vi_inval(self->fd, self->viommu_id,
			      IOMMU_VIOMMU_INVALIDATE_DATA_VIRTIO, e,
			      sizeof(e[0]), &num));
	ASSERT_EQ(9, num);
	ASSERT_EQ(0, vi_read_log(self->fd, self->viommu_id, &log));
	ASSERT_EQ(1, log.calls);
	ASSERT_EQ(9, log.num);
	for (i = 0; i < 9; i++) {
		EXPECT_EQ(0, log.rec[i].flags);
		EXPECT_EQ(0, memcmp(&e[i], &log.rec[i].entry, sizeof(e[i])));
	}
	/* Both mock devices had their caches invalidated */
	for (i = 0; i <= MOCK_DEV_CACHE_ID_MAX; i++) {
		EXPECT_TRUE(vi_mock_cache_is(self->fd, self->idev_id, i, 0));
		EXPECT_TRUE(vi_mock_cache_is(self->fd, md.idev_id, i, 0));
	}
}

TEST_HARNESS_MAIN
