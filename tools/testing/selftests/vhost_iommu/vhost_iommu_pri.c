// SPDX-License-Identifier: GPL-2.0
/*
 * vhost-iommu page requests: the iommufd selftest mock device, attached to a
 * nested HWPT with a fault queue, raises page requests
 * (IOMMU_TEST_OP_TRIGGER_IOPF); the device writes them as records on the
 * guest's page-request queue (virtio queue 2, vhost index 0) and completes
 * the guest's PAGE_RESP, posted on any invalidation queue, through iommufd,
 * which the mock records (IOMMU_TEST_OP_IOPF_RESPONSE).
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <endian.h>
#include <sys/ioctl.h>

#include "../kselftest_harness.h"
#include "vhost_iommu_utils.h"
#include "../../../../drivers/iommu/iommufd/iommufd_test.h"

#define TIMEOUT_MS	2000
#define QUIET_MS	100
#define RING_NUM	256
#define NR_INVALQ	2
#define PRQ		VI_PRQ_VQ
#define IQ0		VI_INVALQ(0)
#define IQ1		VI_INVALQ(1)

#define MOCK_VSID	0x10
#define EP_ID		5
#define DOM_ID		1
#define GRPID		0x2
#define ADDR		0xdeadb000ULL
#define NO_PASID	0
#define SUCCESS		VIRTIO_IOMMU_PAGE_RESP_SUCCESS
#define INVALID		VIRTIO_IOMMU_PAGE_RESP_INVALID
#define FAILURE		VIRTIO_IOMMU_PAGE_RESP_FAILURE

FIXTURE(vhost_iommu_pri) {
	struct vi_dev d;
	struct vi_mock m;
};

FIXTURE_SETUP(vhost_iommu_pri)
{
	int ret;

	self->m.iommufd = -1;
	self->m.fault_fd = -1;
	ret = vi_open(&self->d);
	if (ret == -ENOENT)
		SKIP(return, "no /dev/vhost-iommu");
	ASSERT_EQ(0, ret);
	ret = vi_setup(&self->d, VI_FEATURES_PRI, RING_NUM, NR_INVALQ);
	if (ret == -EOPNOTSUPP)
		SKIP(return, "no VIRTIO_IOMMU_F_PAGE_REQUEST");
	ASSERT_EQ(0, ret);
	ret = vi_mock_setup(&self->m, MOCK_VSID);
	if (ret == -ENOTTY)
		SKIP(return, "no iommufd selftest mock");
	ASSERT_EQ(0, ret);
	ASSERT_EQ(0, vi_bind_mock(&self->d, &self->m, DOM_ID, EP_ID, true));
}

FIXTURE_TEARDOWN(vhost_iommu_pri)
{
	vi_close(&self->d);
	vi_mock_close(&self->m);
}

static int trigger(struct vi_mock *m, uint32_t pasid, uint32_t grpid,
		   uint64_t addr)
{
	return vi_mock_trigger(m, m->idev_id, pasid, grpid, addr);
}

static int responses(struct vi_mock *m, uint32_t *grpid, uint32_t *code)
{
	return vi_mock_responses(m, m->idev_id, grpid, code);
}

/* Post one PRQ buffer of @len bytes, filled with 0xff */
static struct virtio_iommu_page_request *post_prq(struct vi_dev *d,
						  uint32_t len)
{
	struct virtio_iommu_page_request *rec = vi_alloc(d, len);
	struct vi_seg seg = { .addr = rec, .len = len, .writable = true };

	memset(rec, 0xff, len);
	if (vi_post(d, PRQ, &seg, 1) < 0)
		return NULL;
	return rec;
}

/* Post a PAGE_RESP on invalidation queue @vq and return its status */
static int page_resp_q(struct vi_dev *d, unsigned int vq, uint32_t endpoint,
		       uint32_t flags, uint32_t pasid, uint32_t grpid,
		       uint16_t code, uint8_t reserved)
{
	struct virtio_iommu_req_page_resp *req;
	uint32_t len = 0;
	int ret;

	req = vi_make_page_resp(d, endpoint, flags, pasid, grpid, code);
	if (!req)
		return -ENOMEM;
	req->reserved[9] = reserved;
	ret = vi_request(d, vq, req, VI_PAGE_RESP_LEN, &len, TIMEOUT_MS);
	if (ret >= 0 && len != VI_TAIL)
		return -EPROTO;
	return ret;
}

static int page_resp(struct vi_dev *d, uint32_t endpoint, uint32_t flags,
		     uint32_t pasid, uint32_t grpid, uint16_t code,
		     uint8_t reserved)
{
	return page_resp_q(d, IQ0, endpoint, flags, pasid, grpid, code,
			   reserved);
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

/* The round trip: page request to the guest, its answer to the IOMMU */
TEST_F(vhost_iommu_pri, round_trip)
{
	struct virtio_iommu_page_request *rec;
	uint32_t id, len, grpid = 0, code = ~0U;

	ASSERT_EQ(0, responses(&self->m, NULL, NULL));
	rec = post_prq(&self->d, VI_PRQ_REC);
	ASSERT_NE(NULL, rec);
	vi_kick(&self->d, PRQ);
	ASSERT_EQ(0, trigger(&self->m, NO_PASID, GRPID, ADDR));
	ASSERT_EQ(0, vi_get_used(&self->d, PRQ, &id, &len, TIMEOUT_MS));
	EXPECT_EQ(VI_PRQ_REC, len);
	EXPECT_EQ(VIRTIO_IOMMU_FAULT_R_PAGE_REQUEST, rec->reason);
	EXPECT_EQ(0, rec->reserved[0] | rec->reserved[1] | rec->reserved[2]);
	EXPECT_EQ(VIRTIO_IOMMU_FAULT_F_READ | VIRTIO_IOMMU_FAULT_F_WRITE |
		  VIRTIO_IOMMU_FAULT_F_ADDRESS |
		  VIRTIO_IOMMU_FAULT_F_LAST_PAGE, le32toh(rec->flags));
	EXPECT_EQ(EP_ID, le32toh(rec->endpoint));
	EXPECT_EQ(0, rec->pasid);
	EXPECT_EQ(ADDR, le64toh(rec->address));
	EXPECT_EQ(GRPID, le32toh(rec->group));
	EXPECT_EQ(0, rec->reserved2[0] | rec->reserved2[1] |
		     rec->reserved2[2] | rec->reserved2[3]);
	/* Not answered yet */
	EXPECT_EQ(0, responses(&self->m, NULL, NULL));

	EXPECT_EQ(VIRTIO_IOMMU_S_OK,
		  page_resp(&self->d, EP_ID, 0, 0, GRPID, SUCCESS, 0));
	EXPECT_EQ(1, responses(&self->m, &grpid, &code));
	EXPECT_EQ(GRPID, grpid);
	EXPECT_EQ(IOMMUFD_PAGE_RESP_SUCCESS, code);

	/* Answered already: S_INVAL, nothing reaches the IOMMU */
	EXPECT_EQ(VIRTIO_IOMMU_S_INVAL,
		  page_resp(&self->d, EP_ID, 0, 0, GRPID, SUCCESS, 0));
	EXPECT_EQ(1, responses(&self->m, NULL, NULL));
}

/* PAGE_RESP is accepted on any invalidation queue */
TEST_F(vhost_iommu_pri, any_invalq)
{
	uint32_t id, len;

	for (int i = 0; i < 2; i++)
		ASSERT_NE(NULL, post_prq(&self->d, VI_PRQ_REC));
	vi_kick(&self->d, PRQ);
	ASSERT_EQ(0, trigger(&self->m, NO_PASID, 1, ADDR));
	ASSERT_EQ(0, trigger(&self->m, NO_PASID, 2, ADDR));
	ASSERT_EQ(0, vi_get_used(&self->d, PRQ, &id, &len, TIMEOUT_MS));
	ASSERT_EQ(0, vi_get_used(&self->d, PRQ, &id, &len, TIMEOUT_MS));
	EXPECT_EQ(VIRTIO_IOMMU_S_OK,
		  page_resp_q(&self->d, IQ1, EP_ID, 0, 0, 2, SUCCESS, 0));
	EXPECT_EQ(VIRTIO_IOMMU_S_OK,
		  page_resp_q(&self->d, IQ0, EP_ID, 0, 0, 1, SUCCESS, 0));
	EXPECT_EQ(2, responses(&self->m, NULL, NULL));
}

/*
 * With a PASID, and the guest's FAILURE: iommufd takes only SUCCESS and
 * INVALID (as the fault fd's write()), so the device answers INVALID.
 */
TEST_F(vhost_iommu_pri, failure_as_invalid)
{
	struct virtio_iommu_page_request *rec;
	uint32_t id, len, grpid = 0, code = ~0U;

	rec = post_prq(&self->d, VI_PRQ_REC);
	ASSERT_NE(NULL, rec);
	vi_kick(&self->d, PRQ);
	ASSERT_EQ(0, trigger(&self->m, 0x77, 9, ADDR));
	ASSERT_EQ(0, vi_get_used(&self->d, PRQ, &id, &len, TIMEOUT_MS));
	EXPECT_EQ(VI_PRQ_REC, len);
	EXPECT_TRUE(le32toh(rec->flags) & VIRTIO_IOMMU_FAULT_F_PASID);
	EXPECT_EQ(0x77, le32toh(rec->pasid));
	EXPECT_EQ(9, le32toh(rec->group));
	/* The PASID must match */
	EXPECT_EQ(VIRTIO_IOMMU_S_INVAL,
		  page_resp(&self->d, EP_ID, 0, 0, 9, SUCCESS, 0));
	EXPECT_EQ(VIRTIO_IOMMU_S_INVAL,
		  page_resp(&self->d, EP_ID, VIRTIO_IOMMU_PAGE_RESP_F_PASID,
			    0x78, 9, SUCCESS, 0));
	EXPECT_EQ(0, responses(&self->m, NULL, NULL));
	EXPECT_EQ(VIRTIO_IOMMU_S_OK,
		  page_resp(&self->d, EP_ID, VIRTIO_IOMMU_PAGE_RESP_F_PASID,
			    0x77, 9, FAILURE, 0));
	EXPECT_EQ(1, responses(&self->m, &grpid, &code));
	EXPECT_EQ(9, grpid);
	EXPECT_EQ(IOMMUFD_PAGE_RESP_INVALID, code);
}

/* Requests wait for PRQ buffers, in order, and are never dropped */
TEST_F(vhost_iommu_pri, no_buffer_then_buffers)
{
	struct virtio_iommu_page_request *recs[3];
	uint32_t id, len;
	int i;

	for (i = 0; i < 3; i++)
		ASSERT_EQ(0, trigger(&self->m, NO_PASID, 10 + i,
				     ADDR + i * 0x1000));
	EXPECT_EQ(-ETIMEDOUT, vi_get_used(&self->d, PRQ, &id, &len, QUIET_MS));
	/* A PAGE_RESP for a group the guest has not seen is forged */
	EXPECT_EQ(VIRTIO_IOMMU_S_INVAL,
		  page_resp(&self->d, EP_ID, 0, 0, 10, SUCCESS, 0));

	for (i = 0; i < 3; i++) {
		recs[i] = post_prq(&self->d, VI_PRQ_REC);
		ASSERT_NE(NULL, recs[i]);
		vi_kick(&self->d, PRQ);
		ASSERT_EQ(0, vi_get_used(&self->d, PRQ, &id, &len,
					 TIMEOUT_MS));
		EXPECT_EQ(VI_PRQ_REC, len);
		EXPECT_EQ(10 + i, le32toh(recs[i]->group));
		EXPECT_EQ(ADDR + i * 0x1000, le64toh(recs[i]->address));
	}
	/* Answered out of order, on both queues */
	for (i = 2; i >= 0; i--)
		EXPECT_EQ(VIRTIO_IOMMU_S_OK,
			  page_resp_q(&self->d, i & 1 ? IQ1 : IQ0, EP_ID, 0, 0,
				      10 + i, SUCCESS, 0));
	EXPECT_EQ(3, responses(&self->m, NULL, NULL));
}

/*
 * The device holds at most 64 groups; further page requests wait in the
 * fault queue until the guest answers one.
 */
TEST_F(vhost_iommu_pri, bound)
{
	struct virtio_iommu_page_request *recs[70];
	uint32_t id, len;
	int i;

	for (i = 0; i < 70; i++)
		ASSERT_EQ(0, trigger(&self->m, NO_PASID, i, ADDR));
	for (i = 0; i < 70; i++) {
		recs[i] = post_prq(&self->d, VI_PRQ_REC);
		ASSERT_NE(NULL, recs[i]);
	}
	vi_kick(&self->d, PRQ);
	for (i = 0; i < 64; i++) {
		ASSERT_EQ(0, vi_get_used(&self->d, PRQ, &id, &len,
					 TIMEOUT_MS));
		EXPECT_EQ(i, le32toh(recs[i]->group));
	}
	EXPECT_EQ(-ETIMEDOUT, vi_get_used(&self->d, PRQ, &id, &len, QUIET_MS));
	EXPECT_EQ(0, responses(&self->m, NULL, NULL));
	/* One answer makes room for one more */
	EXPECT_EQ(VIRTIO_IOMMU_S_OK,
		  page_resp(&self->d, EP_ID, 0, 0, 0, SUCCESS, 0));
	ASSERT_EQ(0, vi_get_used(&self->d, PRQ, &id, &len, TIMEOUT_MS));
	EXPECT_EQ(64, le32toh(recs[64]->group));
	EXPECT_EQ(-ETIMEDOUT, vi_get_used(&self->d, PRQ, &id, &len, QUIET_MS));
	for (i = 1; i < 65; i++)
		EXPECT_EQ(VIRTIO_IOMMU_S_OK,
			  page_resp(&self->d, EP_ID, 0, 0, i, SUCCESS, 0));
	for (i = 65; i < 70; i++) {
		ASSERT_EQ(0, vi_get_used(&self->d, PRQ, &id, &len,
					 TIMEOUT_MS));
		EXPECT_EQ(i, le32toh(recs[i]->group));
		EXPECT_EQ(VIRTIO_IOMMU_S_OK,
			  page_resp(&self->d, EP_ID, 0, 0, i, SUCCESS, 0));
	}
	EXPECT_EQ(70, responses(&self->m, NULL, NULL));
}

/* A buffer too small for a record is returned empty; the record waits */
TEST_F(vhost_iommu_pri, small_buffer)
{
	struct virtio_iommu_page_request *rec;
	uint32_t id, len;

	ASSERT_NE(NULL, post_prq(&self->d, VI_PRQ_REC - 1));
	vi_kick(&self->d, PRQ);
	ASSERT_EQ(0, trigger(&self->m, NO_PASID, GRPID, ADDR));
	ASSERT_EQ(0, vi_get_used(&self->d, PRQ, &id, &len, TIMEOUT_MS));
	EXPECT_EQ(0, len);
	rec = post_prq(&self->d, VI_PRQ_REC);
	ASSERT_NE(NULL, rec);
	vi_kick(&self->d, PRQ);
	ASSERT_EQ(0, vi_get_used(&self->d, PRQ, &id, &len, TIMEOUT_MS));
	EXPECT_EQ(VI_PRQ_REC, len);
	EXPECT_EQ(GRPID, le32toh(rec->group));
}

/* Malformed and forged responses: S_INVAL, nothing reaches the IOMMU */
TEST_F(vhost_iommu_pri, bad_responses)
{
	uint32_t id, len;

	ASSERT_NE(NULL, post_prq(&self->d, VI_PRQ_REC));
	vi_kick(&self->d, PRQ);
	ASSERT_EQ(0, trigger(&self->m, NO_PASID, GRPID, ADDR));
	ASSERT_EQ(0, vi_get_used(&self->d, PRQ, &id, &len, TIMEOUT_MS));
	/* Unknown flag, code, non-zero reserved, PASID without the flag */
	EXPECT_EQ(VIRTIO_IOMMU_S_INVAL,
		  page_resp(&self->d, EP_ID, 2, 0, GRPID, 0, 0));
	EXPECT_EQ(VIRTIO_IOMMU_S_INVAL,
		  page_resp(&self->d, EP_ID, 0, 0, GRPID, 3, 0));
	EXPECT_EQ(VIRTIO_IOMMU_S_INVAL,
		  page_resp(&self->d, EP_ID, 0, 0, GRPID, 0, 1));
	EXPECT_EQ(VIRTIO_IOMMU_S_INVAL,
		  page_resp(&self->d, EP_ID, 0, 1, GRPID, 0, 0));
	/* Another endpoint, another group */
	EXPECT_EQ(VIRTIO_IOMMU_S_INVAL,
		  page_resp(&self->d, EP_ID + 1, 0, 0, GRPID, 0, 0));
	EXPECT_EQ(VIRTIO_IOMMU_S_INVAL,
		  page_resp(&self->d, EP_ID, 0, 0, GRPID + 1, 0, 0));
	EXPECT_EQ(0, responses(&self->m, NULL, NULL));
	EXPECT_EQ(VIRTIO_IOMMU_S_OK,
		  page_resp(&self->d, EP_ID, 0, 0, GRPID, INVALID, 0));
	EXPECT_EQ(1, responses(&self->m, NULL, NULL));
}

/* A fault of a device no endpoint names is refused at once */
TEST_F(vhost_iommu_pri, unknown_device)
{
	uint32_t id, len, code = ~0U;

	ASSERT_EQ(0, vi_set_endpoint(self->d.fd, VHOST_IOMMU_F_UNBIND, EP_ID,
				     0, 0, 0));
	ASSERT_NE(NULL, post_prq(&self->d, VI_PRQ_REC));
	vi_kick(&self->d, PRQ);
	ASSERT_EQ(0, trigger(&self->m, NO_PASID, GRPID, ADDR));
	EXPECT_EQ(-ETIMEDOUT, vi_get_used(&self->d, PRQ, &id, &len, QUIET_MS));
	EXPECT_EQ(1, responses(&self->m, NULL, &code));
	EXPECT_EQ(IOMMUFD_PAGE_RESP_INVALID, code);
}

/*
 * iommufd answers a group itself when the device leaves the HWPT; the
 * guest's answer is then late and reaches nothing, even after a new group
 * of the same ID was raised (cookies are not reused at once).
 */
TEST_F(vhost_iommu_pri, detach_then_late_response)
{
	struct iommu_test_cmd replace = {
		.size = sizeof(replace),
		.op = IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE,
		.id = self->m.stdev_id,
	};
	struct iommu_ioas_alloc ioas = { .size = sizeof(ioas) };
	struct virtio_iommu_page_request *rec;
	uint32_t id, len;

	ASSERT_NE(NULL, post_prq(&self->d, VI_PRQ_REC));
	vi_kick(&self->d, PRQ);
	ASSERT_EQ(0, trigger(&self->m, NO_PASID, GRPID, ADDR));
	ASSERT_EQ(0, vi_get_used(&self->d, PRQ, &id, &len, TIMEOUT_MS));
	/* Away and back: iommufd answers the group in flight */
	ASSERT_EQ(0, ioctl(self->m.iommufd, IOMMU_IOAS_ALLOC, &ioas));
	replace.mock_domain_replace.pt_id = ioas.out_ioas_id;
	ASSERT_EQ(0, ioctl(self->m.iommufd, IOMMU_TEST_CMD, &replace));
	EXPECT_EQ(1, responses(&self->m, NULL, NULL));
	replace.mock_domain_replace.pt_id = self->m.nested_id;
	ASSERT_EQ(0, ioctl(self->m.iommufd, IOMMU_TEST_CMD, &replace));

	/* A new group; the old answer is late */
	rec = post_prq(&self->d, VI_PRQ_REC);
	ASSERT_NE(NULL, rec);
	vi_kick(&self->d, PRQ);
	ASSERT_EQ(0, trigger(&self->m, NO_PASID, GRPID + 1, ADDR));
	ASSERT_EQ(0, vi_get_used(&self->d, PRQ, &id, &len, TIMEOUT_MS));
	EXPECT_EQ(GRPID + 1, le32toh(rec->group));
	EXPECT_EQ(VIRTIO_IOMMU_S_INVAL,
		  page_resp(&self->d, EP_ID, 0, 0, GRPID, SUCCESS, 0));
	EXPECT_EQ(1, responses(&self->m, NULL, NULL));
	EXPECT_EQ(VIRTIO_IOMMU_S_OK,
		  page_resp(&self->d, EP_ID, 0, 0, GRPID + 1, SUCCESS, 0));
	EXPECT_EQ(2, responses(&self->m, NULL, NULL));
}

/*
 * SET_RUNNING(0) keeps the page-request state: a group delivered before a
 * stop is answered after the start, a group raised while stopped waits and
 * is delivered after the start.
 */
TEST_F(vhost_iommu_pri, stop_keeps_groups)
{
	struct virtio_iommu_page_request *rec;
	uint32_t id, len, code = ~0U;

	ASSERT_NE(NULL, post_prq(&self->d, VI_PRQ_REC));
	vi_kick(&self->d, PRQ);
	ASSERT_EQ(0, trigger(&self->m, NO_PASID, 1, ADDR));
	ASSERT_EQ(0, vi_get_used(&self->d, PRQ, &id, &len, TIMEOUT_MS));

	ASSERT_EQ(0, vi_set_running(&self->d, 0));
	rec = post_prq(&self->d, VI_PRQ_REC);
	ASSERT_NE(NULL, rec);
	vi_kick(&self->d, PRQ);
	ASSERT_EQ(0, trigger(&self->m, NO_PASID, 2, ADDR));
	EXPECT_EQ(-ETIMEDOUT, vi_get_used(&self->d, PRQ, &id, &len, QUIET_MS));
	/* Nothing answered behind the guest's back */
	EXPECT_EQ(0, responses(&self->m, NULL, NULL));
	/* GET_VRING_BASE is exact: one record written */
	EXPECT_EQ(1, vi_vring_base(&self->d, PRQ));

	ASSERT_EQ(0, vi_set_running(&self->d, 1));
	ASSERT_EQ(0, vi_get_used(&self->d, PRQ, &id, &len, TIMEOUT_MS));
	EXPECT_EQ(2, le32toh(rec->group));
	EXPECT_EQ(VIRTIO_IOMMU_S_OK,
		  page_resp(&self->d, EP_ID, 0, 0, 1, SUCCESS, 0));
	EXPECT_EQ(VIRTIO_IOMMU_S_OK,
		  page_resp(&self->d, EP_ID, 0, 0, 2, SUCCESS, 0));
	EXPECT_EQ(2, responses(&self->m, NULL, &code));
	EXPECT_EQ(IOMMUFD_PAGE_RESP_SUCCESS, code);
}

/*
 * VHOST_IOMMU_RESET answers every held group INVALID, delivered or not:
 * the device forgets them, a later PAGE_RESP of the guest reaches nothing.
 */
TEST_F(vhost_iommu_pri, reset_answers_invalid)
{
	uint32_t id, len, code = ~0U;
	bool held;

	ASSERT_NE(NULL, post_prq(&self->d, VI_PRQ_REC));
	vi_kick(&self->d, PRQ);
	ASSERT_EQ(0, trigger(&self->m, NO_PASID, 1, ADDR));
	ASSERT_EQ(0, vi_get_used(&self->d, PRQ, &id, &len, TIMEOUT_MS));
	/* Not delivered: no PRQ buffer */
	ASSERT_EQ(0, trigger(&self->m, NO_PASID, 2, ADDR));
	held = fault_queue_drained(self->m.fault_fd);
	TH_LOG("the undelivered group is %s", held ? "held by the device" :
	       "left in the fault queue");
	EXPECT_EQ(0, responses(&self->m, NULL, NULL));

	ASSERT_EQ(0, vi_reset(&self->d));
	EXPECT_EQ(held ? 2 : 1, responses(&self->m, NULL, &code));
	EXPECT_EQ(IOMMUFD_PAGE_RESP_INVALID, code);
	if (!held) {
		/* The fault queue is the VMM's again: it answers */
		struct iommu_hwpt_page_response r = {
			.code = IOMMUFD_PAGE_RESP_INVALID,
		};
		struct iommu_hwpt_pgfault pf;

		ASSERT_EQ(sizeof(pf), read(self->m.fault_fd, &pf, sizeof(pf)));
		r.cookie = pf.cookie;
		ASSERT_EQ(sizeof(r), write(self->m.fault_fd, &r, sizeof(r)));
		EXPECT_EQ(2, responses(&self->m, NULL, NULL));
	}

	/* New rings, bound again: the old group is unknown */
	for (unsigned int q = 0; q <= NR_INVALQ; q++)
		ASSERT_EQ(0, vi_setup_vq(&self->d, q, RING_NUM));
	ASSERT_EQ(0, vi_bind_mock(&self->d, &self->m, DOM_ID, EP_ID, true));
	ASSERT_EQ(0, vi_set_running(&self->d, 1));
	EXPECT_EQ(VIRTIO_IOMMU_S_INVAL,
		  page_resp(&self->d, EP_ID, 0, 0, 1, SUCCESS, 0));
	EXPECT_EQ(2, responses(&self->m, NULL, NULL));
	/* And new page requests flow */
	ASSERT_NE(NULL, post_prq(&self->d, VI_PRQ_REC));
	vi_kick(&self->d, PRQ);
	ASSERT_EQ(0, trigger(&self->m, NO_PASID, 3, ADDR));
	ASSERT_EQ(0, vi_get_used(&self->d, PRQ, &id, &len, TIMEOUT_MS));
	EXPECT_EQ(VIRTIO_IOMMU_S_OK,
		  page_resp(&self->d, EP_ID, 0, 0, 3, SUCCESS, 0));
	EXPECT_EQ(3, responses(&self->m, NULL, &code));
	EXPECT_EQ(IOMMUFD_PAGE_RESP_SUCCESS, code);
}

/* VHOST_F_LOG_ALL: the page of a record and the PRQ's used ring are dirty */
TEST_F(vhost_iommu_pri, dirty_log)
{
	uint64_t features = VI_FEATURES_PRI | VI_BIT64(VHOST_F_LOG_ALL);
	struct virtio_iommu_page_request *rec, *unused;
	struct vi_seg seg = { .len = VI_PRQ_REC, .writable = true };
	uint32_t id, len;

	ASSERT_EQ(0, vi_set_running(&self->d, 0));
	ASSERT_EQ(0, ioctl(self->d.fd, VHOST_SET_FEATURES, &features));
	ASSERT_EQ(0, vi_enable_log(&self->d));
	ASSERT_EQ(0, vi_set_running(&self->d, 1));

	rec = vi_alloc_page(&self->d);
	unused = vi_alloc_page(&self->d);
	memset(rec, 0xff, VI_PRQ_REC);
	memset(unused, 0xff, VI_PRQ_REC);
	vi_log_clear(&self->d);
	seg.addr = rec;
	ASSERT_LE(0, vi_post(&self->d, PRQ, &seg, 1));
	seg.addr = unused;
	ASSERT_LE(0, vi_post(&self->d, PRQ, &seg, 1));
	vi_kick(&self->d, PRQ);
	ASSERT_EQ(0, trigger(&self->m, NO_PASID, GRPID, ADDR));
	ASSERT_EQ(0, vi_get_used(&self->d, PRQ, &id, &len, TIMEOUT_MS));
	EXPECT_EQ(GRPID, le32toh(rec->group));
	EXPECT_TRUE(vi_log_dirty(&self->d, rec)) TH_LOG("record");
	EXPECT_TRUE(vi_log_dirty(&self->d, self->d.vqs[PRQ].used))
		TH_LOG("used ring");
	/* Negative control: the buffer not written to */
	EXPECT_FALSE(vi_log_dirty(&self->d, unused)) TH_LOG("unused buffer");
	EXPECT_EQ(VIRTIO_IOMMU_S_OK,
		  page_resp(&self->d, EP_ID, 0, 0, GRPID, SUCCESS, 0));
}

/*
 * Page-request groups live in the device and cannot migrate: VHOST_F_LOG_ALL
 * is refused while one is held, accepted once it is answered.
 */
TEST_F(vhost_iommu_pri, log_all_refused_with_groups)
{
	uint64_t features = VI_FEATURES_PRI | VI_BIT64(VHOST_F_LOG_ALL);
	uint32_t id, len;

	ASSERT_EQ(0, vi_enable_log(&self->d));
	ASSERT_NE(NULL, post_prq(&self->d, VI_PRQ_REC));
	vi_kick(&self->d, PRQ);
	ASSERT_EQ(0, trigger(&self->m, NO_PASID, GRPID, ADDR));
	ASSERT_EQ(0, vi_get_used(&self->d, PRQ, &id, &len, TIMEOUT_MS));
	EXPECT_EQ(-1, ioctl(self->d.fd, VHOST_SET_FEATURES, &features));
	EXPECT_EQ(EBUSY, errno);
	EXPECT_EQ(VIRTIO_IOMMU_S_OK,
		  page_resp(&self->d, EP_ID, 0, 0, GRPID, SUCCESS, 0));
	EXPECT_EQ(0, ioctl(self->d.fd, VHOST_SET_FEATURES, &features));
}

TEST_HARNESS_MAIN
