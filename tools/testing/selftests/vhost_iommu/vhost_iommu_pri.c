// SPDX-License-Identifier: GPL-2.0
/*
 * vhost-iommu page requests: the iommufd selftest mock device, attached to a
 * nested HWPT with a fault queue, raises page requests
 * (IOMMU_TEST_OP_TRIGGER_IOPF); the device delivers them on the guest's
 * event queue and completes the guest's PAGE_RESP through iommufd, which
 * the mock records (IOMMU_TEST_OP_IOPF_RESPONSE).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>

#include "../kselftest_harness.h"
#include "vhost_iommu_lib.h"
#include "vi_hostile_lib.h"
#include "../../../../drivers/iommu/iommufd/iommufd_test.h"

#define TIMEOUT_MS	2000
#define QUIET_MS	100
#define RING_NUM	256

#define BIT64(n)	(1ULL << (n))
#define FEATURES	(BIT64(VIRTIO_F_VERSION_1) |			\
			 BIT64(VIRTIO_IOMMU_F_ATTACH_TABLE) |		\
			 BIT64(VIRTIO_IOMMU_F_PAGE_REQUEST))

#define TAIL		sizeof(struct virtio_iommu_req_tail)
#define REC		sizeof(struct virtio_iommu_page_request)
#define RESP_LEN	offsetof(struct virtio_iommu_req_page_resp, tail)
#define MOCK_VSID	0x10
#define EP_ID		5
#define DOM_ID		1
#define GRPID		0x2
#define ADDR		0xdeadb000ULL
#define NO_PASID	0

FIXTURE(vhost_iommu_pri) {
	struct vi_dev d;
	int iommufd;
	uint32_t idev_id;
	uint32_t stdev_id;
	uint32_t viommu_id;
	uint32_t fault_id;
	int fault_fd;
	uint32_t hwpt_id;
};

static int set_fault_queue(int fd, uint32_t flags, int fault_fd)
{
	struct vhost_iommu_fault_queue cmd = {
		.size = sizeof(cmd),
		.flags = flags,
		.fault_fd = fault_fd,
	};

	return ioctl(fd, VHOST_IOMMU_SET_FAULT_QUEUE, &cmd) ? -errno : 0;
}

static int bind_all(struct vi_dev *d, int iommufd, uint32_t viommu_id,
		    uint32_t idev_id, int fault_fd)
{
	struct vhost_iommu_iommufd ifd = {
		.size = sizeof(ifd),
		.iommufd = iommufd,
	};
	struct vhost_iommu_domain dom = {
		.size = sizeof(dom),
		.domain = DOM_ID,
		.viommu_id = viommu_id,
	};
	struct vhost_iommu_endpoint ep = {
		.size = sizeof(ep),
		.endpoint = EP_ID,
		.domain = DOM_ID,
		.dev_id = idev_id,
		.vdev_id = MOCK_VSID,
	};

	if (ioctl(d->fd, VHOST_IOMMU_SET_IOMMUFD, &ifd) ||
	    ioctl(d->fd, VHOST_IOMMU_SET_DOMAIN, &dom) ||
	    ioctl(d->fd, VHOST_IOMMU_SET_ENDPOINT, &ep))
		return -errno;
	return set_fault_queue(d->fd, 0, fault_fd);
}

static int trigger(int fd, uint32_t dev_id, uint32_t pasid, uint32_t grpid,
		   uint64_t addr)
{
	struct iommu_test_cmd cmd = {
		.size = sizeof(cmd),
		.op = IOMMU_TEST_OP_TRIGGER_IOPF,
		.trigger_iopf = {
			.dev_id = dev_id,
			.pasid = pasid,
			.grpid = grpid,
			.perm = IOMMU_PGFAULT_PERM_READ |
				IOMMU_PGFAULT_PERM_WRITE,
			.addr = addr,
		},
	};

	return ioctl(fd, IOMMU_TEST_CMD, &cmd) ? -errno : 0;
}

/* Number of page responses the mock device got, and the last one */
static int responses(int fd, uint32_t dev_id, uint32_t *grpid,
		     uint32_t *code)
{
	struct iommu_test_cmd cmd = {
		.size = sizeof(cmd),
		.op = IOMMU_TEST_OP_IOPF_RESPONSE,
		.iopf_response = { .dev_id = dev_id },
	};

	if (ioctl(fd, IOMMU_TEST_CMD, &cmd))
		return -errno;
	if (grpid)
		*grpid = cmd.iopf_response.out_grpid;
	if (code)
		*code = cmd.iopf_response.out_code;
	return cmd.iopf_response.out_count;
}

/* Post one event buffer of @len bytes, filled with 0xff */
static struct virtio_iommu_page_request *post_event(struct vi_dev *d,
						    uint32_t len)
{
	struct virtio_iommu_page_request *rec = vi_alloc(d, len);
	struct vi_seg seg = { .addr = rec, .len = len, .writable = true };

	memset(rec, 0xff, len);
	if (vi_post(d, VI_EVENT_VQ, &seg, 1) < 0)
		return NULL;
	return rec;
}

/* Post a PAGE_RESP and return its status, or -errno */
static int page_resp(struct vi_dev *d, uint32_t endpoint, uint32_t flags,
		     uint32_t pasid, uint32_t grpid, uint16_t code,
		     uint8_t reserved)
{
	struct virtio_iommu_req_page_resp *req = vi_alloc(d, sizeof(*req));
	uint8_t *resp = vi_alloc(d, TAIL);
	uint32_t id, len;
	int head;

	memset(req, 0, sizeof(*req));
	req->head.type = VIRTIO_IOMMU_T_PAGE_RESP;
	req->endpoint = endpoint;
	req->flags = flags;
	req->pasid = pasid;
	req->group = grpid;
	req->code = code;
	req->reserved[9] = reserved;
	memset(resp, 0xff, TAIL);
	head = vi_post_req(d, req, RESP_LEN, resp, TAIL);
	if (head < 0)
		return head;
	vi_kick(d, VI_REQ_VQ);
	if (vi_get_used(d, VI_REQ_VQ, &id, &len, TIMEOUT_MS))
		return -ETIMEDOUT;
	if (id != (uint32_t)head || len != TAIL)
		return -EIO;
	return resp[0];
}

FIXTURE_SETUP(vhost_iommu_pri)
{
	struct vi_mock m;
	int ret;

	self->iommufd = -1;
	self->fault_fd = -1;
	ret = vi_open(&self->d);
	if (ret == -ENOENT)
		SKIP(return, "no /dev/vhost-iommu");
	ASSERT_EQ(0, ret);
	ASSERT_EQ(0, vi_setup(&self->d, FEATURES, RING_NUM));
	ret = vi_mock_setup(&m, MOCK_VSID);
	if (ret == -ENOTTY)
		SKIP(return, "no iommufd selftest mock");
	ASSERT_EQ(0, ret);
	self->iommufd = m.iommufd;
	self->fault_fd = m.fault_fd;
	self->idev_id = m.idev_id;
	self->stdev_id = m.stdev_id;
	self->viommu_id = m.viommu_id;
	self->fault_id = m.fault_id;
	self->hwpt_id = m.nested_id;
	ASSERT_EQ(0, bind_all(&self->d, self->iommufd, self->viommu_id,
			      self->idev_id, self->fault_fd));
}

FIXTURE_TEARDOWN(vhost_iommu_pri)
{
	vi_close(&self->d);
	if (self->fault_fd >= 0)
		close(self->fault_fd);
	if (self->iommufd >= 0)
		close(self->iommufd);
}

/* The round trip: page request to the guest, its answer to the IOMMU */
TEST_F(vhost_iommu_pri, round_trip)
{
	struct virtio_iommu_page_request *rec;
	uint32_t id, len, grpid = 0, code = 0;

	ASSERT_EQ(0, responses(self->iommufd, self->idev_id, NULL, NULL));
	rec = post_event(&self->d, REC);
	ASSERT_NE(NULL, rec);
	vi_kick(&self->d, VI_EVENT_VQ);
	ASSERT_EQ(0, trigger(self->iommufd, self->idev_id, NO_PASID, GRPID,
			     ADDR));
	ASSERT_EQ(0, vi_get_used(&self->d, VI_EVENT_VQ, &id, &len,
				 TIMEOUT_MS));
	EXPECT_EQ(REC, len);
	EXPECT_EQ(VIRTIO_IOMMU_FAULT_R_PAGE_REQUEST, rec->reason);
	EXPECT_EQ(0, rec->reserved[0] | rec->reserved[1] | rec->reserved[2]);
	EXPECT_EQ(VIRTIO_IOMMU_FAULT_F_READ | VIRTIO_IOMMU_FAULT_F_WRITE |
		  VIRTIO_IOMMU_FAULT_F_ADDRESS |
		  VIRTIO_IOMMU_FAULT_F_LAST_PAGE, rec->flags);
	EXPECT_EQ(EP_ID, rec->endpoint);
	EXPECT_EQ(0, rec->pasid);
	EXPECT_EQ(ADDR, rec->address);
	EXPECT_EQ(GRPID, rec->group);
	/* Not answered yet */
	EXPECT_EQ(0, responses(self->iommufd, self->idev_id, NULL, NULL));

	EXPECT_EQ(VIRTIO_IOMMU_S_OK,
		  page_resp(&self->d, EP_ID, 0, 0, GRPID,
			    VIRTIO_IOMMU_PAGE_RESP_SUCCESS, 0));
	EXPECT_EQ(1, responses(self->iommufd, self->idev_id, &grpid, &code));
	EXPECT_EQ(GRPID, grpid);
	EXPECT_EQ(VIRTIO_IOMMU_PAGE_RESP_SUCCESS, code);

	/* Answered already: S_INVAL, nothing reaches the IOMMU */
	EXPECT_EQ(VIRTIO_IOMMU_S_INVAL,
		  page_resp(&self->d, EP_ID, 0, 0, GRPID,
			    VIRTIO_IOMMU_PAGE_RESP_SUCCESS, 0));
	EXPECT_EQ(1, responses(self->iommufd, self->idev_id, NULL, NULL));
}

/* With a PASID, and the FAILURE code the iommufd uAPI has no name for */
TEST_F(vhost_iommu_pri, pasid_failure)
{
	struct virtio_iommu_page_request *rec;
	uint32_t id, len, grpid = 0, code = 0;

	rec = post_event(&self->d, REC);
	ASSERT_NE(NULL, rec);
	ASSERT_EQ(0, trigger(self->iommufd, self->idev_id, 0x77, 9, ADDR));
	ASSERT_EQ(0, vi_get_used(&self->d, VI_EVENT_VQ, &id, &len,
				 TIMEOUT_MS));
	EXPECT_EQ(REC, len);
	EXPECT_TRUE(rec->flags & VIRTIO_IOMMU_FAULT_F_PASID);
	EXPECT_EQ(0x77, rec->pasid);
	EXPECT_EQ(9, rec->group);
	/* The PASID must match */
	EXPECT_EQ(VIRTIO_IOMMU_S_INVAL,
		  page_resp(&self->d, EP_ID, 0, 0, 9,
			    VIRTIO_IOMMU_PAGE_RESP_SUCCESS, 0));
	EXPECT_EQ(VIRTIO_IOMMU_S_INVAL,
		  page_resp(&self->d, EP_ID, VIRTIO_IOMMU_PAGE_RESP_F_PASID,
			    0x78, 9, VIRTIO_IOMMU_PAGE_RESP_SUCCESS, 0));
	EXPECT_EQ(0, responses(self->iommufd, self->idev_id, NULL, NULL));
	EXPECT_EQ(VIRTIO_IOMMU_S_OK,
		  page_resp(&self->d, EP_ID, VIRTIO_IOMMU_PAGE_RESP_F_PASID,
			    0x77, 9, VIRTIO_IOMMU_PAGE_RESP_FAILURE, 0));
	EXPECT_EQ(1, responses(self->iommufd, self->idev_id, &grpid, &code));
	EXPECT_EQ(9, grpid);
	EXPECT_EQ(VIRTIO_IOMMU_PAGE_RESP_FAILURE, code);
}

/* Requests wait for event buffers, in order, and are not lost */
TEST_F(vhost_iommu_pri, no_buffer_then_buffers)
{
	struct virtio_iommu_page_request *recs[3];
	uint32_t id, len;
	int i;

	for (i = 0; i < 3; i++)
		ASSERT_EQ(0, trigger(self->iommufd, self->idev_id, NO_PASID,
				     10 + i, ADDR + i * 0x1000));
	EXPECT_EQ(-ETIMEDOUT, vi_get_used(&self->d, VI_EVENT_VQ, &id, &len,
					  QUIET_MS));
	/* A PAGE_RESP for a group the guest has not seen is forged */
	EXPECT_EQ(VIRTIO_IOMMU_S_INVAL,
		  page_resp(&self->d, EP_ID, 0, 0, 10,
			    VIRTIO_IOMMU_PAGE_RESP_SUCCESS, 0));

	for (i = 0; i < 3; i++) {
		recs[i] = post_event(&self->d, REC);
		ASSERT_NE(NULL, recs[i]);
		vi_kick(&self->d, VI_EVENT_VQ);
		ASSERT_EQ(0, vi_get_used(&self->d, VI_EVENT_VQ, &id, &len,
					 TIMEOUT_MS));
		EXPECT_EQ(REC, len);
		EXPECT_EQ(10 + i, recs[i]->group);
		EXPECT_EQ(ADDR + i * 0x1000, recs[i]->address);
	}
	/* Answered out of order */
	for (i = 2; i >= 0; i--)
		EXPECT_EQ(VIRTIO_IOMMU_S_OK,
			  page_resp(&self->d, EP_ID, 0, 0, 10 + i,
				    VIRTIO_IOMMU_PAGE_RESP_SUCCESS, 0));
	EXPECT_EQ(3, responses(self->iommufd, self->idev_id, NULL, NULL));
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
		ASSERT_EQ(0, trigger(self->iommufd, self->idev_id, NO_PASID,
				     i, ADDR));
	for (i = 0; i < 70; i++) {
		recs[i] = post_event(&self->d, REC);
		ASSERT_NE(NULL, recs[i]);
	}
	vi_kick(&self->d, VI_EVENT_VQ);
	for (i = 0; i < 64; i++) {
		ASSERT_EQ(0, vi_get_used(&self->d, VI_EVENT_VQ, &id, &len,
					 TIMEOUT_MS));
		EXPECT_EQ(i, recs[i]->group);
	}
	EXPECT_EQ(-ETIMEDOUT, vi_get_used(&self->d, VI_EVENT_VQ, &id, &len,
					  QUIET_MS));
	EXPECT_EQ(0, responses(self->iommufd, self->idev_id, NULL, NULL));
	/* One answer makes room for one more */
	EXPECT_EQ(VIRTIO_IOMMU_S_OK,
		  page_resp(&self->d, EP_ID, 0, 0, 0,
			    VIRTIO_IOMMU_PAGE_RESP_SUCCESS, 0));
	ASSERT_EQ(0, vi_get_used(&self->d, VI_EVENT_VQ, &id, &len,
				 TIMEOUT_MS));
	EXPECT_EQ(64, recs[64]->group);
	EXPECT_EQ(-ETIMEDOUT, vi_get_used(&self->d, VI_EVENT_VQ, &id, &len,
					  QUIET_MS));
	for (i = 1; i < 65; i++)
		EXPECT_EQ(VIRTIO_IOMMU_S_OK,
			  page_resp(&self->d, EP_ID, 0, 0, i,
				    VIRTIO_IOMMU_PAGE_RESP_SUCCESS, 0));
	for (i = 65; i < 70; i++) {
		ASSERT_EQ(0, vi_get_used(&self->d, VI_EVENT_VQ, &id, &len,
					 TIMEOUT_MS));
		EXPECT_EQ(i, recs[i]->group);
		EXPECT_EQ(VIRTIO_IOMMU_S_OK,
			  page_resp(&self->d, EP_ID, 0, 0, i,
				    VIRTIO_IOMMU_PAGE_RESP_SUCCESS, 0));
	}
	EXPECT_EQ(70, responses(self->iommufd, self->idev_id, NULL, NULL));
}

/* A buffer too small for a record is returned empty; the record waits */
TEST_F(vhost_iommu_pri, small_buffer)
{
	struct virtio_iommu_page_request *rec;
	uint32_t id, len;

	ASSERT_NE(NULL, post_event(&self->d, REC - 1));
	ASSERT_EQ(0, trigger(self->iommufd, self->idev_id, NO_PASID, GRPID,
			     ADDR));
	ASSERT_EQ(0, vi_get_used(&self->d, VI_EVENT_VQ, &id, &len,
				 TIMEOUT_MS));
	EXPECT_EQ(0, len);
	rec = post_event(&self->d, REC);
	ASSERT_NE(NULL, rec);
	vi_kick(&self->d, VI_EVENT_VQ);
	ASSERT_EQ(0, vi_get_used(&self->d, VI_EVENT_VQ, &id, &len,
				 TIMEOUT_MS));
	EXPECT_EQ(REC, len);
	EXPECT_EQ(GRPID, rec->group);
}

/* Malformed and forged responses: S_INVAL, nothing reaches the IOMMU */
TEST_F(vhost_iommu_pri, bad_responses)
{
	uint32_t id, len;

	ASSERT_NE(NULL, post_event(&self->d, REC));
	ASSERT_EQ(0, trigger(self->iommufd, self->idev_id, NO_PASID, GRPID,
			     ADDR));
	ASSERT_EQ(0, vi_get_used(&self->d, VI_EVENT_VQ, &id, &len,
				 TIMEOUT_MS));
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
	EXPECT_EQ(0, responses(self->iommufd, self->idev_id, NULL, NULL));
	EXPECT_EQ(VIRTIO_IOMMU_S_OK,
		  page_resp(&self->d, EP_ID, 0, 0, GRPID,
			    VIRTIO_IOMMU_PAGE_RESP_INVALID, 0));
	EXPECT_EQ(1, responses(self->iommufd, self->idev_id, NULL, NULL));
}

/* A PAGE_RESP waits behind a request at the VMM */
TEST_F(vhost_iommu_pri, resp_after_forwarded)
{
	struct virtio_iommu_req_page_resp *req;
	struct vhost_iommu_req_msg msg;
	uint8_t *attach, *resp, *resp2;
	uint32_t id, len;

	ASSERT_NE(NULL, post_event(&self->d, REC));
	ASSERT_EQ(0, trigger(self->iommufd, self->idev_id, NO_PASID, GRPID,
			     ADDR));
	ASSERT_EQ(0, vi_get_used(&self->d, VI_EVENT_VQ, &id, &len,
				 TIMEOUT_MS));

	/* An ATTACH goes to the VMM; the PAGE_RESP behind it must wait */
	attach = vi_alloc(&self->d,
			  offsetof(struct virtio_iommu_req_attach, tail));
	memset(attach, 0, offsetof(struct virtio_iommu_req_attach, tail));
	attach[0] = VIRTIO_IOMMU_T_ATTACH;
	resp = vi_alloc(&self->d, TAIL);
	ASSERT_LE(0, vi_post_req(&self->d, attach,
				 offsetof(struct virtio_iommu_req_attach, tail),
				 resp, TAIL));
	req = vi_alloc(&self->d, sizeof(*req));
	memset(req, 0, sizeof(*req));
	req->head.type = VIRTIO_IOMMU_T_PAGE_RESP;
	req->endpoint = EP_ID;
	req->group = GRPID;
	resp2 = vi_alloc(&self->d, TAIL);
	memset(resp2, 0xff, TAIL);
	ASSERT_LE(0, vi_post_req(&self->d, req, RESP_LEN, resp2, TAIL));
	vi_kick(&self->d, VI_REQ_VQ);
	ASSERT_EQ(sizeof(msg), vi_read_msg(&self->d, &msg, TIMEOUT_MS));
	EXPECT_EQ(-ETIMEDOUT, vi_get_used(&self->d, VI_REQ_VQ, &id, &len,
					  QUIET_MS));
	EXPECT_EQ(0, responses(self->iommufd, self->idev_id, NULL, NULL));
	ASSERT_EQ(0, vi_answer(&self->d, msg.cookie, 0, NULL, 0));
	ASSERT_EQ(0, vi_get_used(&self->d, VI_REQ_VQ, &id, &len, TIMEOUT_MS));
	ASSERT_EQ(0, vi_get_used(&self->d, VI_REQ_VQ, &id, &len, TIMEOUT_MS));
	EXPECT_EQ(VIRTIO_IOMMU_S_OK, resp2[0]);
	EXPECT_EQ(1, responses(self->iommufd, self->idev_id, NULL, NULL));
}

/* A fault of a device no endpoint names is refused at once */
TEST_F(vhost_iommu_pri, unknown_device)
{
	struct vhost_iommu_endpoint ep = {
		.size = sizeof(ep),
		.flags = VHOST_IOMMU_BIND_UNBIND,
		.endpoint = EP_ID,
	};
	uint32_t id, len, code = 0;

	ASSERT_EQ(0, ioctl(self->d.fd, VHOST_IOMMU_SET_ENDPOINT, &ep));
	ASSERT_NE(NULL, post_event(&self->d, REC));
	ASSERT_EQ(0, trigger(self->iommufd, self->idev_id, NO_PASID, GRPID,
			     ADDR));
	EXPECT_EQ(-ETIMEDOUT, vi_get_used(&self->d, VI_EVENT_VQ, &id, &len,
					  QUIET_MS));
	EXPECT_EQ(1, responses(self->iommufd, self->idev_id, NULL, &code));
	EXPECT_EQ(VIRTIO_IOMMU_PAGE_RESP_INVALID, code);
}

/* Detach, unbind, reset, close: pending requests are answered INVALID */
TEST_F(vhost_iommu_pri, pending_answered)
{
	struct vhost_iommu_endpoint ep = {
		.size = sizeof(ep),
		.flags = VHOST_IOMMU_BIND_UNBIND,
		.endpoint = EP_ID,
	};
	uint32_t id, len, code = 0;

	/* Undelivered, then endpoint unbound (the guest detached it) */
	ASSERT_EQ(0, trigger(self->iommufd, self->idev_id, NO_PASID, 1, ADDR));
	usleep(QUIET_MS * 1000);
	EXPECT_EQ(0, responses(self->iommufd, self->idev_id, NULL, NULL));
	ASSERT_EQ(0, ioctl(self->d.fd, VHOST_IOMMU_SET_ENDPOINT, &ep));
	EXPECT_EQ(1, responses(self->iommufd, self->idev_id, NULL, &code));
	EXPECT_EQ(VIRTIO_IOMMU_PAGE_RESP_INVALID, code);
	ep.flags = 0;
	ep.domain = DOM_ID;
	ep.dev_id = self->idev_id;
	ep.vdev_id = MOCK_VSID;
	ASSERT_EQ(0, ioctl(self->d.fd, VHOST_IOMMU_SET_ENDPOINT, &ep));

	/* Delivered, then the fault queue unbound */
	ASSERT_NE(NULL, post_event(&self->d, REC));
	ASSERT_EQ(0, trigger(self->iommufd, self->idev_id, NO_PASID, 2, ADDR));
	ASSERT_EQ(0, vi_get_used(&self->d, VI_EVENT_VQ, &id, &len,
				 TIMEOUT_MS));
	EXPECT_EQ(EBUSY, -set_fault_queue(self->d.fd, 0, self->fault_fd));
	EXPECT_EQ(EINVAL, -set_fault_queue(self->d.fd,
					   VHOST_IOMMU_BIND_UNBIND, 0));
	ASSERT_EQ(0, set_fault_queue(self->d.fd, VHOST_IOMMU_BIND_UNBIND, -1));
	EXPECT_EQ(2, responses(self->iommufd, self->idev_id, NULL, NULL));
	EXPECT_EQ(ENOENT, -set_fault_queue(self->d.fd,
					   VHOST_IOMMU_BIND_UNBIND, -1));
	/* The late answer touches nothing */
	EXPECT_EQ(VIRTIO_IOMMU_S_INVAL,
		  page_resp(&self->d, EP_ID, 0, 0, 2,
			    VIRTIO_IOMMU_PAGE_RESP_SUCCESS, 0));
	EXPECT_EQ(2, responses(self->iommufd, self->idev_id, NULL, NULL));

	/* Bound again: pending at RESET_OWNER */
	ASSERT_EQ(0, set_fault_queue(self->d.fd, 0, self->fault_fd));
	ASSERT_EQ(0, trigger(self->iommufd, self->idev_id, NO_PASID, 3, ADDR));
	usleep(QUIET_MS * 1000);
	ASSERT_EQ(0, ioctl(self->d.fd, VHOST_RESET_OWNER, NULL));
	EXPECT_EQ(3, responses(self->iommufd, self->idev_id, NULL, NULL));
}

/* The device detached from the HWPT: iommufd answers, the guest's is late */
TEST_F(vhost_iommu_pri, detach_then_late_response)
{
	struct iommu_test_cmd replace = {
		.size = sizeof(replace),
		.op = IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE,
		.id = self->stdev_id,
	};
	struct iommu_ioas_alloc ioas = { .size = sizeof(ioas) };
	struct virtio_iommu_page_request *rec;
	uint32_t id, len;

	ASSERT_NE(NULL, post_event(&self->d, REC));
	ASSERT_EQ(0, trigger(self->iommufd, self->idev_id, NO_PASID, GRPID,
			     ADDR));
	ASSERT_EQ(0, vi_get_used(&self->d, VI_EVENT_VQ, &id, &len,
				 TIMEOUT_MS));
	/* Away and back: iommufd answers the group in flight */
	ASSERT_EQ(0, ioctl(self->iommufd, IOMMU_IOAS_ALLOC, &ioas));
	replace.mock_domain_replace.pt_id = ioas.out_ioas_id;
	ASSERT_EQ(0, ioctl(self->iommufd, IOMMU_TEST_CMD, &replace));
	EXPECT_EQ(1, responses(self->iommufd, self->idev_id, NULL, NULL));
	replace.mock_domain_replace.pt_id = self->hwpt_id;
	ASSERT_EQ(0, ioctl(self->iommufd, IOMMU_TEST_CMD, &replace));

	/* A new group may take the freed cookie; the old answer is late */
	rec = post_event(&self->d, REC);
	ASSERT_NE(NULL, rec);
	ASSERT_EQ(0, trigger(self->iommufd, self->idev_id, NO_PASID, GRPID + 1,
			     ADDR));
	ASSERT_EQ(0, vi_get_used(&self->d, VI_EVENT_VQ, &id, &len,
				 TIMEOUT_MS));
	EXPECT_EQ(GRPID + 1, rec->group);
	EXPECT_EQ(VIRTIO_IOMMU_S_INVAL,
		  page_resp(&self->d, EP_ID, 0, 0, GRPID,
			    VIRTIO_IOMMU_PAGE_RESP_SUCCESS, 0));
	EXPECT_EQ(1, responses(self->iommufd, self->idev_id, NULL, NULL));
	EXPECT_EQ(VIRTIO_IOMMU_S_OK,
		  page_resp(&self->d, EP_ID, 0, 0, GRPID + 1,
			    VIRTIO_IOMMU_PAGE_RESP_SUCCESS, 0));
	EXPECT_EQ(2, responses(self->iommufd, self->idev_id, NULL, NULL));
}

/* Close with groups held: the device answers each of them, nothing leaks */
TEST_F(vhost_iommu_pri, close_with_faults)
{
	struct pollfd pfd = { .fd = self->fault_fd, .events = POLLIN };
	int i;

	ASSERT_NE(NULL, post_event(&self->d, REC));
	for (i = 0; i < 8; i++)
		ASSERT_EQ(0, trigger(self->iommufd, self->idev_id, NO_PASID,
				     i, ADDR));
	/*
	 * Close once the device has taken every group (one delivered, seven
	 * held): what it has not taken yet is the VMM's to answer.
	 */
	for (i = 0; i < TIMEOUT_MS; i++) {
		ASSERT_LE(0, poll(&pfd, 1, 0));
		if (!(pfd.revents & POLLIN))
			break;
		usleep(1000);
	}
	ASSERT_FALSE(pfd.revents & POLLIN);
	vi_close(&self->d);
	EXPECT_EQ(8, responses(self->iommufd, self->idev_id, NULL, NULL));
}

struct trigger_arg {
	int fd;
	uint32_t dev_id;
	int nr;
	int ret;
};

static void *trigger_thread(void *p)
{
	struct trigger_arg *a = p;

	for (int i = 0; i < a->nr && !a->ret; i++)
		a->ret = trigger(a->fd, a->dev_id, NO_PASID, i, ADDR);
	return NULL;
}

/*
 * Faults keep coming while the device closes: each group is answered
 * exactly once, by the device or, for what it did not take, by the VMM
 * reading the fault queue afterwards.
 */
TEST_F(vhost_iommu_pri, faults_racing_close)
{
	struct trigger_arg a = {
		.fd = self->iommufd,
		.dev_id = self->idev_id,
		.nr = 200,
	};
	struct iommu_hwpt_page_response r = {
		.code = IOMMUFD_PAGE_RESP_SUCCESS,
	};
	struct iommu_hwpt_pgfault f[16];
	pthread_t t;
	ssize_t n;

	ASSERT_NE(NULL, post_event(&self->d, REC));
	ASSERT_EQ(0, pthread_create(&t, NULL, trigger_thread, &a));
	usleep(2000);
	vi_close(&self->d);
	ASSERT_EQ(0, pthread_join(t, NULL));
	ASSERT_EQ(0, a.ret);
	while ((n = read(self->fault_fd, f, sizeof(f))) > 0) {
		for (size_t i = 0; i < n / sizeof(f[0]); i++) {
			r.cookie = f[i].cookie;
			ASSERT_EQ(sizeof(r), write(self->fault_fd, &r,
						   sizeof(r)));
		}
	}
	EXPECT_EQ(a.nr, responses(self->iommufd, self->idev_id, NULL, NULL));
}

/* The ioctl's argument rules */
TEST_F(vhost_iommu_pri, fault_queue_ioctl)
{
	struct vhost_iommu_fault_queue cmd = {
		.size = sizeof(cmd),
		.fault_fd = self->fault_fd,
	};

	ASSERT_EQ(0, set_fault_queue(self->d.fd, VHOST_IOMMU_BIND_UNBIND, -1));
	cmd.size = sizeof(cmd) - 1;
	EXPECT_EQ(-1, ioctl(self->d.fd, VHOST_IOMMU_SET_FAULT_QUEUE, &cmd));
	EXPECT_EQ(EINVAL, errno);
	cmd.size = sizeof(cmd);
	cmd.__reserved = 1;
	EXPECT_EQ(-1, ioctl(self->d.fd, VHOST_IOMMU_SET_FAULT_QUEUE, &cmd));
	EXPECT_EQ(EOPNOTSUPP, errno);
	cmd.__reserved = 0;
	cmd.flags = 2;
	EXPECT_EQ(-1, ioctl(self->d.fd, VHOST_IOMMU_SET_FAULT_QUEUE, &cmd));
	EXPECT_EQ(EOPNOTSUPP, errno);
	cmd.flags = 0;
	/* Not a fault queue */
	cmd.fault_fd = self->iommufd;
	EXPECT_EQ(-1, ioctl(self->d.fd, VHOST_IOMMU_SET_FAULT_QUEUE, &cmd));
	EXPECT_EQ(EBADF, errno);
	cmd.fault_fd = -5;
	EXPECT_EQ(-1, ioctl(self->d.fd, VHOST_IOMMU_SET_FAULT_QUEUE, &cmd));
	EXPECT_EQ(EBADF, errno);
	cmd.fault_fd = self->fault_fd;
	EXPECT_EQ(0, ioctl(self->d.fd, VHOST_IOMMU_SET_FAULT_QUEUE, &cmd));
}

/*
 * While a device serves the fault queue, the VMM can neither take nor answer
 * its groups, and no second device can serve it; a queue with a group the
 * VMM holds cannot be claimed until the VMM answers it.
 */
TEST_F(vhost_iommu_pri, fault_file_owned)
{
	struct vhost_iommu_iommufd ifd = {
		.size = sizeof(ifd),
		.iommufd = self->iommufd,
	};
	struct iommu_hwpt_page_response r = {};
	struct iommu_hwpt_pgfault pf;
	uint32_t grpid = 0;
	struct vi_dev d2;

	EXPECT_EQ(-1, read(self->fault_fd, &pf, sizeof(pf)));
	EXPECT_EQ(EBUSY, errno);
	EXPECT_EQ(-1, write(self->fault_fd, &r, sizeof(r)));
	EXPECT_EQ(EBUSY, errno);

	ASSERT_EQ(0, vi_open(&d2));
	ASSERT_EQ(0, vi_setup(&d2, FEATURES, RING_NUM));
	ASSERT_EQ(0, ioctl(d2.fd, VHOST_IOMMU_SET_IOMMUFD, &ifd));
	EXPECT_EQ(-EBUSY, set_fault_queue(d2.fd, 0, self->fault_fd));

	/* Unbound: the VMM reads the queue again */
	ASSERT_EQ(0, set_fault_queue(self->d.fd, VHOST_IOMMU_BIND_UNBIND, -1));
	ASSERT_EQ(0, trigger(self->iommufd, self->idev_id, NO_PASID, GRPID,
			     ADDR));
	ASSERT_EQ(sizeof(pf), read(self->fault_fd, &pf, sizeof(pf)));
	EXPECT_EQ(GRPID, pf.grpid);
	EXPECT_EQ(ADDR, pf.addr);

	/* The VMM holds a group: nobody may take the queue over */
	EXPECT_EQ(-EBUSY, set_fault_queue(d2.fd, 0, self->fault_fd));
	EXPECT_EQ(-EBUSY, set_fault_queue(self->d.fd, 0, self->fault_fd));
	r.cookie = pf.cookie;
	r.code = IOMMUFD_PAGE_RESP_SUCCESS;
	ASSERT_EQ(sizeof(r), write(self->fault_fd, &r, sizeof(r)));
	EXPECT_EQ(1, responses(self->iommufd, self->idev_id, &grpid, NULL));
	EXPECT_EQ(GRPID, grpid);

	/* Answered: the second device may serve it, until it is closed */
	EXPECT_EQ(0, set_fault_queue(d2.fd, 0, self->fault_fd));
	EXPECT_EQ(-1, read(self->fault_fd, &pf, sizeof(pf)));
	EXPECT_EQ(EBUSY, errno);
	vi_close(&d2);
	EXPECT_EQ(0, set_fault_queue(self->d.fd, 0, self->fault_fd));
}

TEST_HARNESS_MAIN
