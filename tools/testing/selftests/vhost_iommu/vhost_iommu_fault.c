// SPDX-License-Identifier: GPL-2.0
/*
 * vhost-iommu and the iommufd fault queue it serves
 * (VHOST_IOMMU_SET_FAULT_QUEUE): who owns the queue, and that every page
 * request group the device took is answered exactly once, whatever ends it
 * (endpoint unbound, queue unbound, reset, close, faults racing a close).
 * The data path of page requests is vhost_iommu_pri.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>

#include "../kselftest_harness.h"
#include "vhost_iommu_utils.h"
#include "../../../../drivers/iommu/iommufd/iommufd_test.h"

#define TIMEOUT_MS	2000
#define QUIET_MS	100
#define RING_NUM	256
#define PRQ		VI_PRQ_VQ
#define IQ0		VI_INVALQ(0)
#define MOCK_VSID	0x10
#define EP_ID		5
#define DOM_ID		1
#define ADDR		0xdeadb000ULL

FIXTURE(vhost_iommu_fault) {
	struct vi_dev d;
	struct vi_mock m;
};

FIXTURE_SETUP(vhost_iommu_fault)
{
	int ret;

	self->m.iommufd = -1;
	self->m.fault_fd = -1;
	ret = vi_open(&self->d);
	if (ret == -ENOENT)
		SKIP(return, "no /dev/vhost-iommu");
	ASSERT_EQ(0, ret);
	ret = vi_setup(&self->d, VI_FEATURES_PRI, RING_NUM, 1);
	if (ret == -EOPNOTSUPP)
		SKIP(return, "no VIRTIO_IOMMU_F_PAGE_REQUEST");
	ASSERT_EQ(0, ret);
	ret = vi_mock_setup(&self->m, MOCK_VSID);
	if (ret == -ENOTTY)
		SKIP(return, "no iommufd selftest mock");
	ASSERT_EQ(0, ret);
	ASSERT_EQ(0, vi_bind_mock(&self->d, &self->m, DOM_ID, EP_ID, true));
}

FIXTURE_TEARDOWN(vhost_iommu_fault)
{
	vi_close(&self->d);
	vi_mock_close(&self->m);
}

static int trigger(struct vi_mock *m, uint32_t grpid)
{
	return vi_mock_trigger(m, m->idev_id, 0, grpid, ADDR);
}

static int responses(struct vi_mock *m, uint32_t *code)
{
	return vi_mock_responses(m, m->idev_id, NULL, code);
}

static bool post_prq(struct vi_dev *d)
{
	struct vi_seg seg = {
		.addr = vi_alloc(d, VI_PRQ_REC),
		.len = VI_PRQ_REC,
		.writable = true,
	};

	if (!seg.addr || vi_post(d, PRQ, &seg, 1) < 0)
		return false;
	vi_kick(d, PRQ);
	return true;
}

/* Whether the device took every group of the fault queue within a second */
static bool fault_queue_drained(int fault_fd)
{
	struct pollfd pfd = { .fd = fault_fd, .events = POLLIN };

	for (int i = 0; i < 1000; i++) {
		if (poll(&pfd, 1, 0) == 0)
			return true;
		usleep(1000);
	}
	return false;
}

/* The ioctl's argument rules */
TEST_F(vhost_iommu_fault, fault_queue_ioctl)
{
	struct vhost_iommu_fault_queue cmd = { .fd = self->m.fault_fd };
	int fd = self->d.fd;

	/* Bound already, by the fixture */
	EXPECT_EQ(-EBUSY, vi_set_fault_queue(fd, 0, self->m.fault_fd));
	ASSERT_EQ(0, vi_set_fault_queue(fd, 0, -1));
	/* Unbinding what is not bound is no error */
	EXPECT_EQ(0, vi_set_fault_queue(fd, 0, -1));
	for (int bit = 0; bit < 32; bit++) {
		cmd.flags = 1U << bit;
		EXPECT_EQ(-1, ioctl(fd, VHOST_IOMMU_SET_FAULT_QUEUE, &cmd));
		EXPECT_EQ(EOPNOTSUPP, errno);
	}
	cmd.flags = 0;
	/* Not a fault queue, not a file */
	EXPECT_EQ(-EBADF, vi_set_fault_queue(fd, 0, self->m.iommufd));
	EXPECT_EQ(-EBADF, vi_set_fault_queue(fd, 0, self->d.vqs[PRQ].call_fd));
	EXPECT_EQ(-EBADF, vi_set_fault_queue(fd, 0, -5));
	EXPECT_EQ(-1, ioctl(fd, VHOST_IOMMU_SET_FAULT_QUEUE, NULL));
	EXPECT_EQ(EFAULT, errno);
	EXPECT_EQ(0, ioctl(fd, VHOST_IOMMU_SET_FAULT_QUEUE, &cmd));
}

/* No iommufd bound: no fault queue either */
TEST(fault_queue_needs_iommufd)
{
	struct vi_mock m;
	struct vi_dev d;
	int ret;

	ret = vi_open(&d);
	if (ret == -ENOENT)
		SKIP(return, "no /dev/vhost-iommu");
	ASSERT_EQ(0, ret);
	ret = vi_setup(&d, VI_FEATURES_PRI, RING_NUM, 1);
	if (ret == -EOPNOTSUPP)
		SKIP(return, "no VIRTIO_IOMMU_F_PAGE_REQUEST");
	ASSERT_EQ(0, ret);
	ret = vi_mock_setup(&m, MOCK_VSID);
	if (ret == -ENOTTY)
		SKIP(return, "no iommufd selftest mock");
	ASSERT_EQ(0, ret);
	EXPECT_EQ(-EINVAL, vi_set_fault_queue(d.fd, 0, m.fault_fd));
	vi_close(&d);
	vi_mock_close(&m);
}

/*
 * The fault fd alone (no vhost): a cookie answered is not handed out again
 * at once. iommufd allocates them cyclically (xa_alloc_cyclic); with
 * xa_alloc the next fault got the lowest free ID back, the one just
 * answered, and a late answer to the old group would hit the new one.
 */
TEST(fault_cookie_not_reused)
{
	struct iommu_hwpt_page_response r = { .code = IOMMUFD_PAGE_RESP_SUCCESS };
	struct iommu_hwpt_pgfault pf;
	uint32_t cookies[4];
	struct vi_mock m;
	int ret;

	ret = vi_mock_setup(&m, MOCK_VSID);
	if (ret == -ENOTTY)
		SKIP(return, "no iommufd selftest mock");
	ASSERT_EQ(0, ret);
	for (unsigned int i = 0; i < ARRAY_SIZE(cookies); i++) {
		ASSERT_EQ(0, vi_mock_trigger(&m, m.idev_id, 0, i + 1, ADDR));
		ASSERT_EQ(sizeof(pf), read(m.fault_fd, &pf, sizeof(pf)));
		EXPECT_EQ(i + 1, pf.grpid);
		cookies[i] = pf.cookie;
		for (unsigned int j = 0; j < i; j++) {
			EXPECT_NE(cookies[j], cookies[i])
				TH_LOG("fault %u got cookie %u again (fault %u's, answered)",
				       i, cookies[i], j);
		}
		r.cookie = pf.cookie;
		ASSERT_EQ(sizeof(r), write(m.fault_fd, &r, sizeof(r)));
		EXPECT_EQ(i + 1, vi_mock_responses(&m, m.idev_id, NULL, NULL));
	}
	/* Nothing left in the queue */
	EXPECT_EQ(0, poll(&(struct pollfd){ .fd = m.fault_fd, .events = POLLIN }, 1, 0));
	vi_mock_close(&m);
}

/*
 * While a device serves the fault queue, the VMM can neither take nor answer
 * its groups, and no second device can serve it; a queue with a group the
 * VMM holds cannot be claimed until the VMM answers it.
 */
TEST_F(vhost_iommu_fault, fault_file_owned)
{
	struct iommu_hwpt_page_response r = {};
	struct iommu_hwpt_pgfault pf;
	struct vi_dev d2;

	EXPECT_EQ(-1, read(self->m.fault_fd, &pf, sizeof(pf)));
	EXPECT_EQ(EBUSY, errno);
	EXPECT_EQ(-1, write(self->m.fault_fd, &r, sizeof(r)));
	EXPECT_EQ(EBUSY, errno);

	ASSERT_EQ(0, vi_open(&d2));
	ASSERT_EQ(0, vi_setup(&d2, VI_FEATURES_PRI, RING_NUM, 1));
	ASSERT_EQ(0, vi_set_iommufd(d2.fd, self->m.iommufd, 0));
	EXPECT_EQ(-EBUSY, vi_set_fault_queue(d2.fd, 0, self->m.fault_fd));

	/* Unbound: the VMM reads the queue again */
	ASSERT_EQ(0, vi_set_fault_queue(self->d.fd, 0, -1));
	ASSERT_EQ(0, trigger(&self->m, 2));
	ASSERT_EQ(sizeof(pf), read(self->m.fault_fd, &pf, sizeof(pf)));
	EXPECT_EQ(2, pf.grpid);
	EXPECT_EQ(ADDR, pf.addr);

	/* The VMM holds a group: nobody may take the queue over */
	EXPECT_EQ(-EBUSY, vi_set_fault_queue(d2.fd, 0, self->m.fault_fd));
	EXPECT_EQ(-EBUSY, vi_set_fault_queue(self->d.fd, 0, self->m.fault_fd));
	r.cookie = pf.cookie;
	r.code = IOMMUFD_PAGE_RESP_SUCCESS;
	ASSERT_EQ(sizeof(r), write(self->m.fault_fd, &r, sizeof(r)));
	EXPECT_EQ(1, responses(&self->m, NULL));

	/* Answered: the second device may serve it, until it is closed */
	EXPECT_EQ(0, vi_set_fault_queue(d2.fd, 0, self->m.fault_fd));
	EXPECT_EQ(-1, read(self->m.fault_fd, &pf, sizeof(pf)));
	EXPECT_EQ(EBUSY, errno);
	vi_close(&d2);
	EXPECT_EQ(0, vi_set_fault_queue(self->d.fd, 0, self->m.fault_fd));
}

/* Endpoint unbound (the guest detached it), queue unbound: answered INVALID */
TEST_F(vhost_iommu_fault, unbind_answers)
{
	uint32_t id, len, code = ~0U;

	/* Undelivered (no PRQ buffer), then the endpoint unbound */
	ASSERT_EQ(0, trigger(&self->m, 1));
	if (!fault_queue_drained(self->m.fault_fd))
		SKIP(return, "the device takes no group without a PRQ buffer");
	EXPECT_EQ(0, responses(&self->m, NULL));
	ASSERT_EQ(0, vi_set_endpoint(self->d.fd, VHOST_IOMMU_F_UNBIND, EP_ID,
				     0, 0, 0));
	EXPECT_EQ(1, responses(&self->m, &code));
	EXPECT_EQ(IOMMUFD_PAGE_RESP_INVALID, code);
	ASSERT_EQ(0, vi_set_endpoint(self->d.fd, 0, EP_ID, DOM_ID,
				     self->m.idev_id, MOCK_VSID));

	/* Delivered, then the fault queue unbound */
	ASSERT_TRUE(post_prq(&self->d));
	ASSERT_EQ(0, trigger(&self->m, 2));
	ASSERT_EQ(0, vi_get_used(&self->d, PRQ, &id, &len, TIMEOUT_MS));
	ASSERT_EQ(0, vi_set_fault_queue(self->d.fd, 0, -1));
	EXPECT_EQ(2, responses(&self->m, &code));
	EXPECT_EQ(IOMMUFD_PAGE_RESP_INVALID, code);
	/* The late answer touches nothing */
	EXPECT_EQ(VIRTIO_IOMMU_S_INVAL,
		  vi_request(&self->d, IQ0,
			     vi_make_page_resp(&self->d, EP_ID, 0, 0, 2,
					       VIRTIO_IOMMU_PAGE_RESP_SUCCESS),
			     VI_PAGE_RESP_LEN, &len, TIMEOUT_MS));
	EXPECT_EQ(2, responses(&self->m, NULL));

	/* Bound again: groups held at RESET_OWNER are answered too */
	ASSERT_EQ(0, vi_set_fault_queue(self->d.fd, 0, self->m.fault_fd));
	ASSERT_TRUE(post_prq(&self->d));
	ASSERT_EQ(0, trigger(&self->m, 3));
	ASSERT_EQ(0, vi_get_used(&self->d, PRQ, &id, &len, TIMEOUT_MS));
	ASSERT_EQ(0, ioctl(self->d.fd, VHOST_RESET_OWNER, NULL));
	EXPECT_EQ(3, responses(&self->m, &code));
	EXPECT_EQ(IOMMUFD_PAGE_RESP_INVALID, code);
}

/* Close with groups held: the device answers each of them, nothing leaks */
TEST_F(vhost_iommu_fault, close_with_groups)
{
	uint32_t id, len;
	bool drained;

	ASSERT_TRUE(post_prq(&self->d));
	for (int i = 0; i < 8; i++)
		ASSERT_EQ(0, trigger(&self->m, i));
	ASSERT_EQ(0, vi_get_used(&self->d, PRQ, &id, &len, TIMEOUT_MS));
	/* What the device has not taken yet stays the VMM's to answer */
	drained = fault_queue_drained(self->m.fault_fd);
	vi_close(&self->d);
	/* What the device has not taken is left for the VMM */
	EXPECT_EQ(8, drained ? responses(&self->m, NULL) : 8);
}

struct trigger_arg {
	struct vi_mock *m;
	int nr;
	int ret;
};

static void *trigger_thread(void *p)
{
	struct trigger_arg *a = p;

	for (int i = 0; i < a->nr && !a->ret; i++)
		a->ret = trigger(a->m, i);
	return NULL;
}

/*
 * Faults keep coming while the device closes: each group is answered
 * exactly once, by the device or, for what it did not take, by the VMM
 * reading the fault queue afterwards.
 */
TEST_F(vhost_iommu_fault, faults_racing_close)
{
	struct trigger_arg a = { .m = &self->m, .nr = 200 };
	struct iommu_hwpt_page_response r = {
		.code = IOMMUFD_PAGE_RESP_SUCCESS,
	};
	struct iommu_hwpt_pgfault f[16];
	pthread_t t;
	ssize_t n;

	ASSERT_TRUE(post_prq(&self->d));
	ASSERT_EQ(0, pthread_create(&t, NULL, trigger_thread, &a));
	usleep(2000);
	vi_close(&self->d);
	ASSERT_EQ(0, pthread_join(t, NULL));
	ASSERT_EQ(0, a.ret);
	while ((n = read(self->m.fault_fd, f, sizeof(f))) > 0) {
		for (size_t i = 0; i < n / sizeof(f[0]); i++) {
			r.cookie = f[i].cookie;
			ASSERT_EQ(sizeof(r), write(self->m.fault_fd, &r,
						   sizeof(r)));
		}
	}
	EXPECT_EQ(a.nr, responses(&self->m, NULL));
}

/*
 * B6: SET_IOMMUFD(-1) while the fault queue of that iommufd is bound (its
 * domains unbound) unbinds the fault queue as well: its held groups are
 * answered INVALID and its VMM reads it again. Device IDs of the old
 * context never meet the endpoints bound with the next one.
 */
TEST_F(vhost_iommu_fault, iommufd_unbind_releases_queue)
{
	struct iommu_hwpt_pgfault pf;
	struct vi_mock m2;
	uint32_t id, len, code = ~0U;

	ASSERT_TRUE(post_prq(&self->d));
	ASSERT_EQ(0, trigger(&self->m, 1));
	ASSERT_EQ(0, vi_get_used(&self->d, PRQ, &id, &len, TIMEOUT_MS));
	ASSERT_EQ(0, trigger(&self->m, 2));
	ASSERT_TRUE(fault_queue_drained(self->m.fault_fd));
	EXPECT_EQ(0, responses(&self->m, NULL));

	EXPECT_EQ(-EBUSY, vi_set_iommufd(self->d.fd, -1, 0));
	ASSERT_EQ(0, vi_set_endpoint(self->d.fd, VHOST_IOMMU_F_UNBIND, EP_ID,
				     0, 0, 0));
	/* The endpoint's groups went with it */
	EXPECT_EQ(2, responses(&self->m, &code));
	EXPECT_EQ(IOMMUFD_PAGE_RESP_INVALID, code);
	ASSERT_EQ(0, vi_set_domain(self->d.fd, VHOST_IOMMU_F_UNBIND, DOM_ID, 0));
	/* The fault queue is still bound: unbinding the iommufd drops it */
	ASSERT_EQ(0, vi_set_iommufd(self->d.fd, -1, 0));
	ASSERT_EQ(0, trigger(&self->m, 3));
	EXPECT_EQ(sizeof(pf), read(self->m.fault_fd, &pf, sizeof(pf)))
		TH_LOG("fault queue still claimed after SET_IOMMUFD(-1)");
	EXPECT_EQ(3, pf.grpid);
	EXPECT_EQ(2, responses(&self->m, NULL));

	/* A new context: the old device ID is nothing there */
	ASSERT_EQ(0, vi_mock_setup(&m2, MOCK_VSID));
	ASSERT_EQ(self->m.idev_id, m2.idev_id);
	ASSERT_EQ(0, vi_bind_mock(&self->d, &m2, DOM_ID, EP_ID, true));
	EXPECT_EQ(-EBUSY, vi_set_fault_queue(self->d.fd, 0,
					     self->m.fault_fd));
	ASSERT_TRUE(post_prq(&self->d));
	ASSERT_EQ(0, vi_mock_trigger(&m2, m2.idev_id, 0, 4, ADDR));
	ASSERT_EQ(0, vi_get_used(&self->d, PRQ, &id, &len, TIMEOUT_MS));
	EXPECT_EQ(VIRTIO_IOMMU_S_OK,
		  vi_request(&self->d, IQ0,
			     vi_make_page_resp(&self->d, EP_ID, 0, 0, 4,
					       VIRTIO_IOMMU_PAGE_RESP_SUCCESS),
			     VI_PAGE_RESP_LEN, &len, TIMEOUT_MS));
	EXPECT_EQ(1, vi_mock_responses(&m2, m2.idev_id, NULL, NULL));
	/* The first context's device got nothing more */
	EXPECT_EQ(2, responses(&self->m, NULL));
	vi_close(&self->d);
	vi_mock_close(&m2);
}

/*
 * The VMM closes its fault fd while the device serves the queue: the device
 * holds the file, and answers its groups when it is closed.
 */
TEST_F(vhost_iommu_fault, vmm_closes_fault_fd)
{
	uint32_t id, len, code = ~0U;

	ASSERT_TRUE(post_prq(&self->d));
	ASSERT_EQ(0, trigger(&self->m, 1));
	ASSERT_EQ(0, vi_get_used(&self->d, PRQ, &id, &len, TIMEOUT_MS));
	close(self->m.fault_fd);
	self->m.fault_fd = -1;
	EXPECT_EQ(0, responses(&self->m, NULL));
	vi_close(&self->d);
	EXPECT_EQ(1, responses(&self->m, &code));
	EXPECT_EQ(IOMMUFD_PAGE_RESP_INVALID, code);
}

TEST_HARNESS_MAIN
