// SPDX-License-Identifier: GPL-2.0
/*
 * VHOST_IOMMU_REPORT_FAULT: a VMM that emulates an endpoint reports the
 * DMA faults it sees; the device writes them on the guest's event queue as
 * standard struct virtio_iommu_fault records, in order, at most 64 waiting.
 */
#include <errno.h>
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/wait.h>

#include "../kselftest_harness.h"
#include "vhost_iommu_lib.h"

#define TIMEOUT_MS	2000
#define QUIET_MS	100
#define RING_NUM	256
#define MAX_FAULTS	64
#define REC		sizeof(struct virtio_iommu_fault)
#define BIT64(n)	(1ULL << (n))
#define FEATURES	BIT64(VIRTIO_F_VERSION_1)

static int report(int fd, const void *arg)
{
	return ioctl(fd, VHOST_IOMMU_REPORT_FAULT, arg) ? -errno : 0;
}

static int report_addr(int fd, uint32_t ep, uint64_t addr)
{
	struct vhost_iommu_fault f = {
		.size = sizeof(f),
		.reason = VIRTIO_IOMMU_FAULT_R_MAPPING,
		.fault_flags = VIRTIO_IOMMU_FAULT_F_WRITE |
			       VIRTIO_IOMMU_FAULT_F_ADDRESS,
		.endpoint = ep,
		.address = addr,
	};

	return report(fd, &f);
}

/* Post @n event buffers of @len bytes, filled with 0xaa */
static uint8_t *post_events(struct vi_dev *d, unsigned int n, uint32_t len)
{
	uint8_t *bufs = vi_alloc(d, (size_t)n * len);

	if (!bufs)
		return NULL;
	memset(bufs, 0xaa, (size_t)n * len);
	for (unsigned int i = 0; i < n; i++) {
		struct vi_seg seg = {
			.addr = bufs + (size_t)i * len,
			.len = len,
			.writable = true,
		};

		if (vi_post(d, VI_EVENT_VQ, &seg, 1) < 0)
			return NULL;
	}
	vi_kick(d, VI_EVENT_VQ);
	return bufs;
}

FIXTURE(vhost_iommu_fault) {
	struct vi_dev d;
};

FIXTURE_SETUP(vhost_iommu_fault)
{
	int ret = vi_open(&self->d);

	if (ret == -ENOENT)
		SKIP(return, "no /dev/vhost-iommu");
	ASSERT_EQ(0, ret);
	ASSERT_EQ(0, vi_setup(&self->d, FEATURES, RING_NUM));
}

FIXTURE_TEARDOWN(vhost_iommu_fault)
{
	vi_close(&self->d);
}

/* The record reaches the event buffer with the right bytes, nothing more */
TEST_F(vhost_iommu_fault, record)
{
	struct virtio_iommu_fault want = {
		.reason = VIRTIO_IOMMU_FAULT_R_MAPPING,
		.flags = htole32(VIRTIO_IOMMU_FAULT_F_READ |
				 VIRTIO_IOMMU_FAULT_F_ADDRESS),
		.endpoint = htole32(7),
		.address = htole64(0x123456789000ULL),
	};
	struct vhost_iommu_fault f = {
		.size = sizeof(f),
		.reason = VIRTIO_IOMMU_FAULT_R_MAPPING,
		.fault_flags = VIRTIO_IOMMU_FAULT_F_READ |
			       VIRTIO_IOMMU_FAULT_F_ADDRESS,
		.endpoint = 7,
		.address = 0x123456789000ULL,
	};
	uint32_t id, len;
	uint8_t *buf;

	/* 40 bytes: the 16 beyond the record stay untouched */
	buf = post_events(&self->d, 1, 40);
	ASSERT_NE(NULL, buf);
	ASSERT_EQ(0, report(self->d.fd, &f));
	ASSERT_EQ(0, vi_get_used(&self->d, VI_EVENT_VQ, &id, &len, TIMEOUT_MS));
	EXPECT_EQ(REC, len);
	EXPECT_EQ(0, memcmp(buf, &want, REC));
	for (unsigned int i = REC; i < 40; i++)
		EXPECT_EQ(0xaa, buf[i]);

	/* The other reasons, and no address */
	f.reason = VIRTIO_IOMMU_FAULT_R_DOMAIN;
	f.fault_flags = 0;
	f.address = 0;
	buf = post_events(&self->d, 1, REC);
	ASSERT_NE(NULL, buf);
	ASSERT_EQ(0, report(self->d.fd, &f));
	ASSERT_EQ(0, vi_get_used(&self->d, VI_EVENT_VQ, &id, &len, TIMEOUT_MS));
	EXPECT_EQ(REC, len);
	EXPECT_EQ(VIRTIO_IOMMU_FAULT_R_DOMAIN, buf[0]);
	EXPECT_EQ(0, le32toh(((struct virtio_iommu_fault *)buf)->flags));
	EXPECT_EQ(0, le64toh(((struct virtio_iommu_fault *)buf)->address));
}

/* iommufd size rules */
TEST_F(vhost_iommu_fault, size)
{
	struct {
		struct vhost_iommu_fault f;
		uint64_t tail;
	} big = {
		.f = {
			.size = sizeof(big),
			.reason = VIRTIO_IOMMU_FAULT_R_UNKNOWN,
		},
	};
	uint32_t id, len;

	big.f.size = sizeof(struct vhost_iommu_fault) - 1;
	EXPECT_EQ(-EINVAL, report(self->d.fd, &big));
	big.f.size = 4;
	EXPECT_EQ(-EINVAL, report(self->d.fd, &big));
	big.f.size = sizeof(big);
	big.tail = 1;
	EXPECT_EQ(-E2BIG, report(self->d.fd, &big));
	/* None of these queued anything */
	ASSERT_NE(NULL, post_events(&self->d, 1, REC));
	EXPECT_EQ(-ETIMEDOUT, vi_get_used(&self->d, VI_EVENT_VQ, &id, &len,
					  QUIET_MS));
	/* A larger structure with a zero tail is fine */
	big.tail = 0;
	EXPECT_EQ(0, report(self->d.fd, &big));
	EXPECT_EQ(0, vi_get_used(&self->d, VI_EVENT_VQ, &id, &len, TIMEOUT_MS));
	EXPECT_EQ(REC, len);
	EXPECT_EQ(-EFAULT, report(self->d.fd, NULL));
}

/* Fields the kernel refuses, and nothing queued for them */
TEST_F(vhost_iommu_fault, bad_fields)
{
	struct vhost_iommu_fault good = {
		.size = sizeof(good),
		.reason = VIRTIO_IOMMU_FAULT_R_MAPPING,
		.fault_flags = VIRTIO_IOMMU_FAULT_F_ADDRESS,
		.address = 0x1000,
	};
	struct vhost_iommu_fault f;
	uint32_t id, len;

	f = good;
	f.flags = 1;
	EXPECT_EQ(-EOPNOTSUPP, report(self->d.fd, &f));
	f = good;
	f.__reserved[2] = 1;
	EXPECT_EQ(-EOPNOTSUPP, report(self->d.fd, &f));
	f = good;
	f.__reserved2 = 1;
	EXPECT_EQ(-EOPNOTSUPP, report(self->d.fd, &f));
	f = good;
	f.reason = VIRTIO_IOMMU_FAULT_R_PAGE_REQUEST;	/* not a fault */
	EXPECT_EQ(-EINVAL, report(self->d.fd, &f));
	f.reason = 0xff;
	EXPECT_EQ(-EINVAL, report(self->d.fd, &f));
	f = good;
	f.fault_flags |= VIRTIO_IOMMU_FAULT_F_PASID;
	EXPECT_EQ(-EINVAL, report(self->d.fd, &f));
	f.fault_flags = VIRTIO_IOMMU_FAULT_F_ADDRESS | (1U << 31);
	EXPECT_EQ(-EINVAL, report(self->d.fd, &f));
	f = good;
	f.fault_flags = VIRTIO_IOMMU_FAULT_F_WRITE;	/* address, no flag */
	EXPECT_EQ(-EINVAL, report(self->d.fd, &f));

	ASSERT_NE(NULL, post_events(&self->d, 1, REC));
	EXPECT_EQ(-ETIMEDOUT, vi_get_used(&self->d, VI_EVENT_VQ, &id, &len,
					  QUIET_MS));
	EXPECT_EQ(0, report(self->d.fd, &good));
	EXPECT_EQ(0, vi_get_used(&self->d, VI_EVENT_VQ, &id, &len, TIMEOUT_MS));
}

/* With no buffer the records wait, in order, up to the bound */
TEST_F(vhost_iommu_fault, order_and_bound)
{
	struct virtio_iommu_fault *rec;
	uint32_t id, len;
	uint8_t *bufs;

	for (unsigned int i = 0; i < MAX_FAULTS; i++)
		ASSERT_EQ(0, report_addr(self->d.fd, 1, 0x1000ULL * (i + 1)));
	EXPECT_EQ(-ENOSPC, report_addr(self->d.fd, 1, 0xdead000));

	bufs = post_events(&self->d, MAX_FAULTS + 1, REC);
	ASSERT_NE(NULL, bufs);
	for (unsigned int i = 0; i < MAX_FAULTS; i++) {
		ASSERT_EQ(0, vi_get_used(&self->d, VI_EVENT_VQ, &id, &len,
					 TIMEOUT_MS));
		ASSERT_EQ(REC, len);
		rec = (void *)(bufs + (size_t)i * REC);
		EXPECT_EQ(0x1000ULL * (i + 1), le64toh(rec->address));
	}
	/* The refused one was not queued; there is room again */
	EXPECT_EQ(-ETIMEDOUT, vi_get_used(&self->d, VI_EVENT_VQ, &id, &len,
					  QUIET_MS));
	EXPECT_EQ(0, report_addr(self->d.fd, 2, 0x77000));
	ASSERT_EQ(0, vi_get_used(&self->d, VI_EVENT_VQ, &id, &len, TIMEOUT_MS));
	rec = (void *)(bufs + (size_t)MAX_FAULTS * REC);
	EXPECT_EQ(2, le32toh(rec->endpoint));
	EXPECT_EQ(0x77000, le64toh(rec->address));
}

/* A buffer too small for a record is returned empty; the record waits */
TEST_F(vhost_iommu_fault, small_buffer)
{
	uint32_t id, len;
	uint8_t *big;

	ASSERT_NE(NULL, post_events(&self->d, 1, REC - 1));
	ASSERT_EQ(0, report_addr(self->d.fd, 3, 0x5000));
	ASSERT_EQ(0, vi_get_used(&self->d, VI_EVENT_VQ, &id, &len, TIMEOUT_MS));
	EXPECT_EQ(0, len);
	big = post_events(&self->d, 1, REC);
	ASSERT_NE(NULL, big);
	ASSERT_EQ(0, vi_get_used(&self->d, VI_EVENT_VQ, &id, &len, TIMEOUT_MS));
	EXPECT_EQ(REC, len);
	EXPECT_EQ(0x5000, le64toh(((struct virtio_iommu_fault *)big)->address));
}

/* A stopped device keeps the records until it runs again */
TEST_F(vhost_iommu_fault, stopped)
{
	uint32_t id, len;

	ASSERT_EQ(0, vi_set_running(&self->d, 0));
	ASSERT_EQ(0, report_addr(self->d.fd, 4, 0x9000));
	ASSERT_NE(NULL, post_events(&self->d, 1, REC));
	EXPECT_EQ(-ETIMEDOUT, vi_get_used(&self->d, VI_EVENT_VQ, &id, &len,
					  QUIET_MS));
	ASSERT_EQ(0, vi_set_running(&self->d, 1));
	EXPECT_EQ(0, vi_get_used(&self->d, VI_EVENT_VQ, &id, &len, TIMEOUT_MS));
	EXPECT_EQ(REC, len);
}

/* Only the owner reports; reset and close drop what waits (kmemleak) */
TEST_F(vhost_iommu_fault, owner_and_reset)
{
	int status;
	pid_t pid;

	pid = fork();
	ASSERT_GE(pid, 0);
	if (!pid)
		_exit(report_addr(self->d.fd, 1, 0x1000) == -EPERM ? 0 : 1);
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);

	for (unsigned int i = 0; i < 10; i++)
		ASSERT_EQ(0, report_addr(self->d.fd, 1, 0x1000));
	ASSERT_EQ(0, ioctl(self->d.fd, VHOST_RESET_OWNER));
	/* No owner any more */
	EXPECT_EQ(-EPERM, report_addr(self->d.fd, 1, 0x1000));
	ASSERT_EQ(0, ioctl(self->d.fd, VHOST_SET_OWNER));
	/* The count restarted: a full bound fits again, then close */
	for (unsigned int i = 0; i < MAX_FAULTS; i++)
		ASSERT_EQ(0, report_addr(self->d.fd, 1, 0x1000));
	EXPECT_EQ(-ENOSPC, report_addr(self->d.fd, 1, 0x1000));
}

TEST_HARNESS_MAIN
