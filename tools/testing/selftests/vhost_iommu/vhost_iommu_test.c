// SPDX-License-Identifier: GPL-2.0
/*
 * vhost-iommu selftests on the iommufd selftest mock: the test process plays
 * the VMM (device setup, bindings) and the guest (requests on the
 * invalidation queues), with a small guest RAM of its own. The mock vIOMMU
 * logs every virtio entry the device hands it, so each test checks what
 * reached the driver, not only what the guest was told.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <endian.h>
#include <sys/ioctl.h>
#include <sys/wait.h>

#include "../kselftest_harness.h"
#include "vhost_iommu_utils.h"
#include "../../../../drivers/iommu/iommufd/iommufd_test.h"

#define TIMEOUT_MS	2000
/* How long to wait for something that must not happen */
#define QUIET_MS	100
#define RING_NUM	256
#define NR_INVALQ	2
#define IQ0		VI_INVALQ(0)
#define IQ1		VI_INVALQ(1)

#define MOCK_VSID	0x10
#define MOCK_VSID2	0x11
#define EP_ID		5
#define DOM_ID		1

#ifndef container_of
#define container_of(ptr, type, member) \
	((type *)((char *)(ptr) - offsetof(type, member)))
#endif

#define S_DOMAIN	VIRTIO_IOMMU_INVAL_S_DOMAIN
#define S_PASID		VIRTIO_IOMMU_INVAL_S_PASID
#define S_ADDRESS	VIRTIO_IOMMU_INVAL_S_ADDRESS
#define C_PASID		VIRTIO_IOMMU_INVAL_C_PASID
#define C_TLB		VIRTIO_IOMMU_INVAL_C_TLB
#define F_LEAF		VIRTIO_IOMMU_INVAL_F_LEAF
#define F_PASID		VIRTIO_IOMMU_INVAL_F_PASID
#define F_ID		VIRTIO_IOMMU_INVAL_F_ID

static bool all_bytes(const void *p, uint8_t val, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (((const uint8_t *)p)[i] != val)
			return false;
	return true;
}

/* A buffer in guest RAM filled with 0xff, to see what the device writes */
static uint8_t *make_resp(struct vi_dev *d, uint32_t len)
{
	uint8_t *resp = vi_alloc(d, len ? len : 1);

	memset(resp, 0xff, len ? len : 1);
	return resp;
}

/* A request of @type, @len readable bytes of a pattern, head reserved 0 */
static uint8_t *make_req(struct vi_dev *d, uint8_t type, uint32_t len)
{
	uint8_t *req = vi_alloc(d, len ? len : 1);

	for (uint32_t i = 0; i < len; i++)
		req[i] = i;
	if (len)
		req[0] = type;
	if (len >= 4)
		memset(req + 1, 0, 3);
	return req;
}

static struct virtio_iommu_req_invalidate *inval(struct vi_dev *d,
						 uint32_t domain,
						 uint8_t scope,
						 uint8_t caches,
						 uint16_t flags)
{
	return vi_make_inval(d, domain, scope, caches, flags, 0, 0x42,
			     0x100000, 4, 12);
}

/* Post an INVALIDATE on invalidation queue @vq and wait: its status */
static int inval_status(struct vi_dev *d, unsigned int vq,
			struct virtio_iommu_req_invalidate *inv)
{
	uint32_t len = 0;
	int ret = vi_request(d, vq, inv, VI_INVAL_LEN, &len, TIMEOUT_MS);

	if (ret >= 0 && len != VI_TAIL)
		return -EPROTO;
	return ret;
}

/* The device as a VMM sets it up: the PRQ and two invalidation queues */
FIXTURE(vhost_iommu) {
	struct vi_dev d;
};

FIXTURE_SETUP(vhost_iommu)
{
	int ret = vi_open(&self->d);

	if (ret == -ENOENT)
		SKIP(return, "no /dev/vhost-iommu");
	ASSERT_EQ(0, ret);
	ASSERT_EQ(0, vi_setup(&self->d, VI_FEATURES, RING_NUM, NR_INVALQ));
}

FIXTURE_TEARDOWN(vhost_iommu)
{
	vi_close(&self->d);
}

/* The features the documentation lists, and nothing else */
TEST_F(vhost_iommu, features)
{
	const uint64_t want = VI_BIT64(VIRTIO_F_VERSION_1) |
			      VI_BIT64(VIRTIO_RING_F_INDIRECT_DESC) |
			      VI_BIT64(VIRTIO_RING_F_EVENT_IDX) |
			      VI_BIT64(VHOST_F_LOG_ALL) |
			      VI_BIT64(VIRTIO_IOMMU_F_ATTACH_TABLE) |
			      VI_BIT64(VIRTIO_IOMMU_F_PAGE_REQUEST) |
			      VI_BIT64(VIRTIO_IOMMU_F_INVALQ);
	uint64_t features, bad;

	ASSERT_EQ(0, ioctl(self->d.fd, VHOST_GET_FEATURES, &features));
	EXPECT_EQ(want, features);

	/* A feature not offered */
	for (unsigned int bit = 0; bit < 64; bit++) {
		if (want & VI_BIT64(bit))
			continue;
		bad = VI_FEATURES | VI_BIT64(bit);
		EXPECT_EQ(-1, ioctl(self->d.fd, VHOST_SET_FEATURES, &bad))
			TH_LOG("feature bit %u accepted", bit);
		EXPECT_EQ(EOPNOTSUPP, errno);
	}
	ASSERT_EQ(0, ioctl(self->d.fd, VHOST_SET_FEATURES, &want));
}

/*
 * Requests that do not belong on an invalidation queue: used length 0,
 * buffer untouched (the spec's SHOULD for an unknown type).
 */
TEST_F(vhost_iommu, other_types_on_invalq)
{
	static const uint8_t types[] = {
		VIRTIO_IOMMU_T_ATTACH, VIRTIO_IOMMU_T_DETACH,
		VIRTIO_IOMMU_T_MAP, VIRTIO_IOMMU_T_UNMAP,
		VIRTIO_IOMMU_T_PROBE, VIRTIO_IOMMU_T_ATTACH_TABLE,
		0, 0x09, 0x42, 0xff,
	};

	for (size_t i = 0; i < sizeof(types); i++) {
		uint8_t *req = make_req(&self->d, types[i], 128);
		uint8_t *resp = make_resp(&self->d, 64);
		uint32_t id, len = ~0U;
		int head = vi_post_req(&self->d, IQ0, req, 128, resp, 64);

		ASSERT_LE(0, head);
		vi_kick(&self->d, IQ0);
		ASSERT_EQ(0, vi_get_used(&self->d, IQ0, &id, &len,
					 TIMEOUT_MS));
		EXPECT_EQ(head, id);
		EXPECT_EQ(0, len) TH_LOG("type %#x", types[i]);
		EXPECT_TRUE(all_bytes(resp, 0xff, 64)) TH_LOG("type %#x",
							      types[i]);
	}
}

/* No iommufd bound: every domain is unknown, S_NOENT */
TEST_F(vhost_iommu, unknown_domain)
{
	EXPECT_EQ(VIRTIO_IOMMU_S_NOENT,
		  inval_status(&self->d, IQ0,
			       inval(&self->d, DOM_ID, S_DOMAIN, C_TLB, 0)));
	EXPECT_EQ(VIRTIO_IOMMU_S_NOENT,
		  inval_status(&self->d, IQ1,
			       inval(&self->d, 0xffffffff, S_ADDRESS, C_TLB,
				     F_ID)));
}

/* Short and missing parts: used length 0, or S_INVAL for a short body */
TEST_F(vhost_iommu, short_parts)
{
	uint8_t *req, *resp;
	struct vi_seg seg;
	uint32_t id, len;
	int head;

	req = (uint8_t *)inval(&self->d, DOM_ID, S_DOMAIN, C_TLB, 0);

	/* Short head */
	resp = make_resp(&self->d, VI_TAIL);
	head = vi_post_req(&self->d, IQ0, req, 3, resp, VI_TAIL);
	vi_kick(&self->d, IQ0);
	ASSERT_EQ(0, vi_get_used(&self->d, IQ0, &id, &len, TIMEOUT_MS));
	EXPECT_EQ(head, id);
	EXPECT_EQ(0, len);
	EXPECT_TRUE(all_bytes(resp, 0xff, VI_TAIL));

	/* Short body: S_INVAL */
	head = vi_post_req(&self->d, IQ0, req, VI_INVAL_LEN - 1, resp, VI_TAIL);
	vi_kick(&self->d, IQ0);
	ASSERT_EQ(0, vi_get_used(&self->d, IQ0, &id, &len, TIMEOUT_MS));
	EXPECT_EQ(head, id);
	EXPECT_EQ(VI_TAIL, len);
	EXPECT_EQ(VIRTIO_IOMMU_S_INVAL, resp[0]);
	EXPECT_TRUE(all_bytes(resp + 1, 0, 3));

	/* Short tail */
	resp = make_resp(&self->d, VI_TAIL);
	head = vi_post_req(&self->d, IQ0, req, VI_INVAL_LEN, resp, VI_TAIL - 1);
	vi_kick(&self->d, IQ0);
	ASSERT_EQ(0, vi_get_used(&self->d, IQ0, &id, &len, TIMEOUT_MS));
	EXPECT_EQ(head, id);
	EXPECT_EQ(0, len);
	EXPECT_TRUE(all_bytes(resp, 0xff, VI_TAIL));

	/* Only a readable part */
	seg = (struct vi_seg){ .addr = req, .len = VI_INVAL_LEN };
	head = vi_post(&self->d, IQ0, &seg, 1);
	vi_kick(&self->d, IQ0);
	ASSERT_EQ(0, vi_get_used(&self->d, IQ0, &id, &len, TIMEOUT_MS));
	EXPECT_EQ(head, id);
	EXPECT_EQ(0, len);

	/* The queue still works */
	EXPECT_EQ(VIRTIO_IOMMU_S_NOENT,
		  inval_status(&self->d, IQ0,
			       inval(&self->d, DOM_ID, S_DOMAIN, C_TLB, 0)));
}

/* A request split byte by byte over descriptors, with empty ones between */
TEST_F(vhost_iommu, split_descriptors)
{
	struct vi_seg segs[2 * (VI_INVAL_LEN + VI_TAIL)];
	unsigned int n = 0;
	uint8_t *req, *resp;
	uint32_t id, len;
	int head;

	req = (uint8_t *)inval(&self->d, DOM_ID, S_DOMAIN, C_TLB, 0);
	resp = make_resp(&self->d, VI_TAIL);
	for (uint32_t i = 0; i < VI_INVAL_LEN; i++) {
		segs[n++] = (struct vi_seg){ .addr = req + i, .len = 1 };
		segs[n++] = (struct vi_seg){ .addr = req, .len = 0 };
	}
	for (uint32_t i = 0; i < VI_TAIL; i++) {
		segs[n++] = (struct vi_seg){ .addr = resp + i, .len = 1,
					     .writable = true };
		segs[n++] = (struct vi_seg){ .addr = resp, .len = 0,
					     .writable = true };
	}
	head = vi_post(&self->d, IQ0, segs, n);
	ASSERT_LE(0, head);
	vi_kick(&self->d, IQ0);
	ASSERT_EQ(0, vi_get_used(&self->d, IQ0, &id, &len, TIMEOUT_MS));
	EXPECT_EQ(head, id);
	EXPECT_EQ(VI_TAIL, len);
	EXPECT_EQ(VIRTIO_IOMMU_S_NOENT, resp[0]);
	EXPECT_TRUE(all_bytes(resp + 1, 0, 3));
}

/* A writable descriptor before a readable one: the error eventfd fires */
TEST_F(vhost_iommu, wrong_direction)
{
	uint8_t *req, *resp;
	struct vi_seg segs[2];

	req = (uint8_t *)inval(&self->d, DOM_ID, S_DOMAIN, C_TLB, 0);
	resp = make_resp(&self->d, VI_TAIL);
	segs[0] = (struct vi_seg){ .addr = resp, .len = VI_TAIL,
				   .writable = true };
	segs[1] = (struct vi_seg){ .addr = req, .len = VI_INVAL_LEN };
	ASSERT_LE(0, vi_post(&self->d, IQ0, segs, 2));
	vi_kick(&self->d, IQ0);
	EXPECT_TRUE(vi_vq_error(&self->d, IQ0, TIMEOUT_MS));
	EXPECT_EQ(0, vi_nr_used(&self->d, IQ0));
	EXPECT_TRUE(all_bytes(resp, 0xff, VI_TAIL));
}

/* A malformed request that is answered does not raise the error eventfd */
TEST_F(vhost_iommu, answered_is_no_error)
{
	uint8_t *req = make_req(&self->d, 0x42, 64);
	uint8_t *resp = make_resp(&self->d, VI_TAIL);
	uint32_t id, len;

	ASSERT_LE(0, vi_post_req(&self->d, IQ0, req, 64, resp, VI_TAIL));
	vi_kick(&self->d, IQ0);
	ASSERT_EQ(0, vi_get_used(&self->d, IQ0, &id, &len, TIMEOUT_MS));
	/* Unknown domain, and a short body */
	EXPECT_EQ(VIRTIO_IOMMU_S_NOENT,
		  inval_status(&self->d, IQ0,
			       vi_make_inval(&self->d, DOM_ID, 9, C_TLB, 0, 0,
					     0, 0, 0, 0)));
	EXPECT_EQ(VIRTIO_IOMMU_S_INVAL,
		  vi_request(&self->d, IQ0,
			     inval(&self->d, DOM_ID, S_DOMAIN, C_TLB, 0), 8,
			     &len, TIMEOUT_MS));
	EXPECT_FALSE(vi_vq_error(&self->d, IQ0, QUIET_MS));
}

/*
 * SET_RUNNING(0): every request the device popped is completed, none is
 * held (used index == GET_VRING_BASE), requests posted while stopped stay
 * in the ring, and GET_VRING_BASE is exact.
 */
TEST_F(vhost_iommu, stop_exact)
{
	struct vi_vq *vq = &self->d.vqs[IQ0];
	const unsigned int nr = RING_NUM / 2 - 1;
	int base;

	for (unsigned int i = 0; i < nr; i++)
		ASSERT_LE(0, vi_post_req(&self->d, IQ0,
					 inval(&self->d, DOM_ID + i, S_DOMAIN,
					       C_TLB, 0), VI_INVAL_LEN,
					 make_resp(&self->d, VI_TAIL), VI_TAIL));
	vi_kick(&self->d, IQ0);
	/* Stop in the middle of the worker's passes */
	usleep(1000);
	ASSERT_EQ(0, vi_set_running(&self->d, 0));
	base = vi_vring_base(&self->d, IQ0);
	ASSERT_LE(0, base);
	EXPECT_EQ(base, __atomic_load_n(&vq->used->idx, __ATOMIC_ACQUIRE));
	TH_LOG("%d of %u requests done when stopped", base, nr);

	/* Stopped: a kick consumes nothing */
	ASSERT_LE(0, vi_post_req(&self->d, IQ0,
				 inval(&self->d, DOM_ID, S_DOMAIN, C_TLB, 0),
				 VI_INVAL_LEN, make_resp(&self->d, VI_TAIL),
				 VI_TAIL));
	vi_kick(&self->d, IQ0);
	usleep(QUIET_MS * 1000);
	EXPECT_EQ(base, vi_vring_base(&self->d, IQ0));
	EXPECT_EQ(base, __atomic_load_n(&vq->used->idx, __ATOMIC_ACQUIRE));

	/* Started again: the rest, in order */
	ASSERT_EQ(0, vi_set_running(&self->d, 1));
	for (unsigned int i = 0; i < nr + 1; i++) {
		uint32_t id, len;

		ASSERT_EQ(0, vi_get_used(&self->d, IQ0, &id, &len,
					 TIMEOUT_MS));
		EXPECT_EQ(VI_TAIL, len);
	}
	EXPECT_EQ(nr + 1, vi_vring_base(&self->d, IQ0));
}

/*
 * B2: nothing survives a stop and a ring change. The VMM stops the device,
 * reads the ring base, gives the queue a new ring (base 0) and starts it:
 * what was posted on the old ring is never written anywhere, the new ring
 * starts clean.
 */
TEST_F(vhost_iommu, stop_ring_change)
{
	struct vring_used *old_used;
	uint8_t *old_resp[4], *resp;
	uint16_t old_idx;
	uint32_t id, len;
	int head;

	/* Some completed, some still in the old ring */
	for (int i = 0; i < 2; i++)
		EXPECT_EQ(VIRTIO_IOMMU_S_NOENT,
			  inval_status(&self->d, IQ0,
				       inval(&self->d, DOM_ID, S_DOMAIN,
					     C_TLB, 0)));
	ASSERT_EQ(0, vi_set_running(&self->d, 0));
	for (int i = 0; i < 4; i++) {
		old_resp[i] = make_resp(&self->d, VI_TAIL);
		ASSERT_LE(0, vi_post_req(&self->d, IQ0,
					 inval(&self->d, DOM_ID, S_DOMAIN,
					       C_TLB, 0), VI_INVAL_LEN,
					 old_resp[i], VI_TAIL));
	}
	vi_kick(&self->d, IQ0);
	EXPECT_EQ(2, vi_vring_base(&self->d, IQ0));
	old_used = self->d.vqs[IQ0].used;
	old_idx = old_used->idx;

	/* A smaller ring, as after a guest's reset of the queue */
	ASSERT_EQ(0, vi_setup_vq(&self->d, IQ0, 16));
	ASSERT_EQ(0, vi_set_running(&self->d, 1));
	resp = make_resp(&self->d, VI_TAIL);
	head = vi_post_req(&self->d, IQ0,
			   inval(&self->d, DOM_ID, S_DOMAIN, C_TLB, 0),
			   VI_INVAL_LEN, resp, VI_TAIL);
	ASSERT_EQ(0, head);
	vi_kick(&self->d, IQ0);
	ASSERT_EQ(0, vi_get_used(&self->d, IQ0, &id, &len, TIMEOUT_MS));
	EXPECT_EQ(head, id);
	EXPECT_EQ(VI_TAIL, len);
	EXPECT_EQ(VIRTIO_IOMMU_S_NOENT, resp[0]);
	/* Exactly one used entry in the new ring, none more in the old */
	EXPECT_EQ(-ETIMEDOUT, vi_get_used(&self->d, IQ0, &id, &len, QUIET_MS));
	EXPECT_EQ(old_idx, old_used->idx);
	for (int i = 0; i < 4; i++)
		EXPECT_TRUE(all_bytes(old_resp[i], 0xff, VI_TAIL));
	EXPECT_EQ(1, vi_vring_base(&self->d, IQ0));
}

/* Within a queue, completions follow the ring order */
TEST_F(vhost_iommu, ring_order)
{
	const unsigned int nr = 64;
	int heads[64];

	for (unsigned int i = 0; i < nr; i++) {
		struct virtio_iommu_req_invalidate *inv =
			inval(&self->d, DOM_ID, S_DOMAIN, C_TLB, 0);

		/* Refused ones (S_INVAL) between unknown domains (S_NOENT) */
		if (i % 3 == 1)
			inv->reserved[0] = 1;
		heads[i] = vi_post_req(&self->d, IQ0, inv, VI_INVAL_LEN,
				       make_resp(&self->d, VI_TAIL), VI_TAIL);
		ASSERT_LE(0, heads[i]);
	}
	vi_kick(&self->d, IQ0);
	for (unsigned int i = 0; i < nr; i++) {
		uint32_t id, len;

		ASSERT_EQ(0, vi_get_used(&self->d, IQ0, &id, &len,
					 TIMEOUT_MS));
		EXPECT_EQ(heads[i], id);
	}
}

/*
 * VHOST_F_LOG_ALL: after a completion, the pages of the used ring and of
 * the tail are dirty in the bitmap; the request's page (read only) and the
 * descriptor table are not (negative control).
 */
TEST_F(vhost_iommu, dirty_log)
{
	uint64_t features = VI_FEATURES | VI_BIT64(VHOST_F_LOG_ALL);
	struct virtio_iommu_req_invalidate *inv;
	struct vi_vq *vq = &self->d.vqs[IQ0];
	uint8_t *tail;
	uint32_t id, len;

	ASSERT_EQ(0, vi_set_running(&self->d, 0));
	ASSERT_EQ(0, ioctl(self->d.fd, VHOST_SET_FEATURES, &features));
	ASSERT_EQ(0, vi_enable_log(&self->d));
	ASSERT_EQ(0, vi_set_running(&self->d, 1));

	inv = vi_alloc_page(&self->d);
	memcpy(inv, inval(&self->d, DOM_ID, S_DOMAIN, C_TLB, 0), sizeof(*inv));
	tail = vi_alloc_page(&self->d);
	memset(tail, 0xff, VI_TAIL);
	vi_log_clear(&self->d);
	ASSERT_LE(0, vi_post_req(&self->d, IQ0, inv, VI_INVAL_LEN, tail,
				 VI_TAIL));
	vi_kick(&self->d, IQ0);
	ASSERT_EQ(0, vi_get_used(&self->d, IQ0, &id, &len, TIMEOUT_MS));
	EXPECT_EQ(VIRTIO_IOMMU_S_NOENT, tail[0]);

	EXPECT_TRUE(vi_log_dirty(&self->d, vq->used)) TH_LOG("used ring");
	EXPECT_TRUE(vi_log_dirty(&self->d, tail)) TH_LOG("tail");
	EXPECT_FALSE(vi_log_dirty(&self->d, inv)) TH_LOG("request");
	EXPECT_FALSE(vi_log_dirty(&self->d, vq->desc)) TH_LOG("descriptors");
	EXPECT_FALSE(vi_log_dirty(&self->d, vq->avail)) TH_LOG("avail ring");

	/*
	 * Without LOG_ALL the tails are not logged (the used ring is logged
	 * as long as the VMM leaves VHOST_VRING_F_LOG on its address)
	 */
	ASSERT_EQ(0, vi_set_running(&self->d, 0));
	ASSERT_EQ(0, ioctl(self->d.fd, VHOST_SET_FEATURES, &(uint64_t){
				   VI_FEATURES }));
	ASSERT_EQ(0, vi_set_running(&self->d, 1));
	memset(tail, 0xff, VI_TAIL);
	vi_log_clear(&self->d);
	ASSERT_LE(0, vi_post_req(&self->d, IQ0, inv, VI_INVAL_LEN, tail,
				 VI_TAIL));
	vi_kick(&self->d, IQ0);
	ASSERT_EQ(0, vi_get_used(&self->d, IQ0, &id, &len, TIMEOUT_MS));
	EXPECT_EQ(VIRTIO_IOMMU_S_NOENT, tail[0]);
	EXPECT_FALSE(vi_log_dirty(&self->d, tail)) TH_LOG("tail without LOG_ALL");
}

/* Two invalidation queues, a worker each, served side by side */
TEST_F(vhost_iommu, two_queues_two_workers)
{
	struct vhost_worker_state state[2] = {};
	struct vhost_vring_worker back;
	int tids[4];

	for (int q = 0; q < 2; q++) {
		struct vhost_vring_worker vw = { .index = VI_INVALQ(q) };

		ASSERT_EQ(0, ioctl(self->d.fd, VHOST_NEW_WORKER, &state[q]));
		vw.worker_id = state[q].worker_id;
		ASSERT_EQ(0, ioctl(self->d.fd, VHOST_ATTACH_VRING_WORKER, &vw));
		vw.worker_id = ~0U;
		ASSERT_EQ(0, ioctl(self->d.fd, VHOST_GET_VRING_WORKER, &vw));
		EXPECT_EQ(state[q].worker_id, vw.worker_id);
	}
	EXPECT_NE(state[0].worker_id, state[1].worker_id);
	EXPECT_LE(2, vi_worker_tids(tids, 4));

	for (int i = 0; i < 32; i++) {
		ASSERT_LE(0, vi_post_req(&self->d, IQ0,
					 inval(&self->d, DOM_ID, S_DOMAIN,
					       C_TLB, 0), VI_INVAL_LEN,
					 make_resp(&self->d, VI_TAIL), VI_TAIL));
		ASSERT_LE(0, vi_post_req(&self->d, IQ1,
					 inval(&self->d, DOM_ID, S_DOMAIN,
					       C_TLB, 0), VI_INVAL_LEN,
					 make_resp(&self->d, VI_TAIL), VI_TAIL));
	}
	vi_kick(&self->d, IQ0);
	vi_kick(&self->d, IQ1);
	for (int i = 0; i < 32; i++) {
		uint32_t id, len;

		ASSERT_EQ(0, vi_get_used(&self->d, IQ0, &id, &len,
					 TIMEOUT_MS));
		ASSERT_EQ(0, vi_get_used(&self->d, IQ1, &id, &len,
					 TIMEOUT_MS));
	}
	/* A queue can be moved back to the first worker while stopped */
	ASSERT_EQ(0, vi_set_running(&self->d, 0));
	back.index = IQ1;
	back.worker_id = state[0].worker_id;
	ASSERT_EQ(0, ioctl(self->d.fd, VHOST_ATTACH_VRING_WORKER, &back));
	ASSERT_EQ(0, ioctl(self->d.fd, VHOST_FREE_WORKER, &state[1]));
	ASSERT_EQ(0, vi_set_running(&self->d, 1));
	EXPECT_EQ(VIRTIO_IOMMU_S_NOENT,
		  inval_status(&self->d, IQ1,
			       inval(&self->d, DOM_ID, S_DOMAIN, C_TLB, 0)));
}

/* Run the calling thread on @cpu and the device's workers on @worker_cpu */
static bool pin_apart(int cpu, int worker_cpu)
{
	int tids[4], n = vi_worker_tids(tids, 4);

	for (int i = 0; i < n; i++)
		if (vi_pin(tids[i], worker_cpu))
			return false;
	return n && !vi_pin(0, cpu);
}

/* Post an INVALIDATE without a kick: the head */
static int post_quiet(struct vi_dev *d)
{
	return vi_post_req(d, IQ0, inval(d, DOM_ID, S_DOMAIN, C_TLB, 0),
			   VI_INVAL_LEN, make_resp(d, VI_TAIL), VI_TAIL);
}

/* A request posted without a kick is not served until it is kicked */
static bool waits_for_kick(struct vi_dev *d)
{
	int head = post_quiet(d);
	uint32_t id, len;

	if (head < 0 || vi_get_used(d, IQ0, &id, &len, QUIET_MS) != -ETIMEDOUT)
		return false;
	vi_kick(d, IQ0);
	return !vi_get_used(d, IQ0, &id, &len, TIMEOUT_MS) && id == head;
}

/*
 * VHOST_SET_VRING_BUSYLOOP_TIMEOUT: once a pass has emptied the queue, the
 * worker watches it for that long, so a request the guest posts without a
 * kick is served. Without it (the negative control), the same request
 * waits for its kick. A call of the VMM ends the watch at once. The worker
 * gets a CPU of its own, as an operator who turns polling on gives it: a
 * reschedule ends the watch.
 */
TEST_F(vhost_iommu, busy_poll)
{
	struct vhost_vring_state s = { .index = IQ0 };
	struct timespec t0;
	uint32_t id, len;
	int head;

	if (sysconf(_SC_NPROCESSORS_ONLN) < 2)
		SKIP(return, "one CPU");
	ASSERT_EQ(0, ioctl(self->d.fd, VHOST_GET_VRING_BUSYLOOP_TIMEOUT, &s));
	EXPECT_EQ(0, s.num);
	ASSERT_TRUE(pin_apart(0, 1));

	/* No watch: a request served, then one that waits for its kick */
	EXPECT_EQ(VIRTIO_IOMMU_S_NOENT,
		  inval_status(&self->d, IQ0,
			       inval(&self->d, DOM_ID, S_DOMAIN, C_TLB, 0)));
	EXPECT_TRUE(waits_for_kick(&self->d));

	/* A watch of five seconds */
	s.num = 5000000;
	ASSERT_EQ(0, ioctl(self->d.fd, VHOST_SET_VRING_BUSYLOOP_TIMEOUT, &s));
	EXPECT_EQ(VIRTIO_IOMMU_S_NOENT,
		  inval_status(&self->d, IQ0,
			       inval(&self->d, DOM_ID, S_DOMAIN, C_TLB, 0)));
	/* The worker is watching: three requests, no kick, all served */
	for (int i = 0; i < 3; i++) {
		head = post_quiet(&self->d);
		ASSERT_LE(0, head);
		ASSERT_EQ(0, vi_get_used(&self->d, IQ0, &id, &len,
					 TIMEOUT_MS));
		EXPECT_EQ(head, id);
		EXPECT_EQ(VI_TAIL, len);
	}
	/*
	 * The VMM's call (it takes the queue's mutex) ends the watch: it
	 * does not wait for the watch to time out...
	 */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	s.num = 0;
	ASSERT_EQ(0, ioctl(self->d.fd, VHOST_GET_VRING_BUSYLOOP_TIMEOUT, &s));
	EXPECT_GT(1000, vi_ms_since(&t0));
	EXPECT_EQ(5000000, s.num);
	/* ... and after it, a request waits for its kick again */
	EXPECT_TRUE(waits_for_kick(&self->d));
}

/* Queues the VMM did not configure are not served; the others are */
TEST(unconfigured_queues)
{
	struct vi_dev d;
	uint32_t id, len;
	int ret;

	ret = vi_open(&d);
	if (ret == -ENOENT)
		SKIP(return, "no /dev/vhost-iommu");
	ASSERT_EQ(0, ret);
	/* One invalidation queue of eight, and the PRQ */
	ASSERT_EQ(0, vi_setup(&d, VI_FEATURES, RING_NUM, 1));
	EXPECT_EQ(VIRTIO_IOMMU_S_NOENT,
		  inval_status(&d, IQ0, inval(&d, DOM_ID, S_DOMAIN, C_TLB, 0)));
	/* Stop and start with the queues 2..8 never configured */
	ASSERT_EQ(0, vi_set_running(&d, 0));
	ASSERT_EQ(0, vi_set_running(&d, 1));
	EXPECT_EQ(VIRTIO_IOMMU_S_NOENT,
		  inval_status(&d, IQ0, inval(&d, DOM_ID, S_DOMAIN, C_TLB, 0)));
	/* Any value but 0 and 1 */
	EXPECT_EQ(-EINVAL, vi_set_running(&d, 2));
	EXPECT_EQ(-EINVAL, vi_set_running(&d, -1));
	(void)id;
	(void)len;
	vi_close(&d);
}

/* Another process holding the fd can change nothing */
TEST_F(vhost_iommu, other_process)
{
	int status;
	pid_t pid;

	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		uint64_t features = 0;
		int bad = 0, one = 1;

		if (ioctl(self->d.fd, VHOST_IOMMU_SET_RUNNING, &one) != -1 ||
		    errno != EPERM)
			bad |= 1 << 0;
		if (ioctl(self->d.fd, VHOST_IOMMU_RESET) != -1 ||
		    errno != EPERM)
			bad |= 1 << 1;
		if (vi_set_iommufd(self->d.fd, -1, 0) != -EPERM)
			bad |= 1 << 2;
		if (vi_set_domain(self->d.fd, VHOST_IOMMU_F_UNBIND, 1, 0) !=
		    -EPERM)
			bad |= 1 << 3;
		if (vi_set_endpoint(self->d.fd, VHOST_IOMMU_F_UNBIND, 1, 0, 0,
				    0) != -EPERM)
			bad |= 1 << 4;
		if (vi_set_fault_queue(self->d.fd, 0, -1) != -EPERM)
			bad |= 1 << 5;
		if (ioctl(self->d.fd, VHOST_NEW_WORKER, &features) != -1 ||
		    errno != EPERM)
			bad |= 1 << 6;
		if (ioctl(self->d.fd, VHOST_RESET_OWNER) != -1 ||
		    errno != EPERM)
			bad |= 1 << 7;
		_exit(bad);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status));
	EXPECT_EQ(0, WEXITSTATUS(status));
	EXPECT_EQ(VIRTIO_IOMMU_S_NOENT,
		  inval_status(&self->d, IQ0,
			       inval(&self->d, DOM_ID, S_DOMAIN, C_TLB, 0)));
}

/* No read()/write() channel any more; unknown ioctls of the range */
TEST_F(vhost_iommu, no_channel)
{
	uint8_t buf[256] = {};

	/* vhost's own IOTLB channel: without ACCESS_PLATFORM, nothing to read */
	EXPECT_EQ(-1, read(self->d.fd, buf, sizeof(buf)));
	EXPECT_EQ(-1, ioctl(self->d.fd, _IO(VHOST_VIRTIO, 0x5f), buf));
	EXPECT_EQ(ENOTTY, errno);
	EXPECT_EQ(-1, ioctl(self->d.fd, _IO(VHOST_VIRTIO, 0x56), buf));
	EXPECT_EQ(ENOTTY, errno);
}

/* RESET_OWNER, then a new owner sets the device up afresh */
TEST_F(vhost_iommu, reset_owner)
{
	ASSERT_EQ(0, ioctl(self->d.fd, VHOST_RESET_OWNER));
	EXPECT_EQ(-EPERM, vi_set_running(&self->d, 1));
	ASSERT_EQ(0, ioctl(self->d.fd, VHOST_SET_OWNER));
	self->d.mem_used = 0;
	ASSERT_EQ(0, vi_setup(&self->d, VI_FEATURES, RING_NUM, NR_INVALQ));
	EXPECT_EQ(VIRTIO_IOMMU_S_NOENT,
		  inval_status(&self->d, IQ0,
			       inval(&self->d, DOM_ID, S_DOMAIN, C_TLB, 0)));
}

/*
 * The same device with a mock VM: iommufd context, mock device, vIOMMU and
 * vDEVICE (virtual ID MOCK_VSID), none of it bound yet.
 */
FIXTURE(vhost_iommu_bind) {
	struct vi_dev d;
	struct vi_mock m;
};

FIXTURE_SETUP(vhost_iommu_bind)
{
	int ret;

	self->m.iommufd = -1;
	self->m.fault_fd = -1;
	ret = vi_open(&self->d);
	if (ret == -ENOENT)
		SKIP(return, "no /dev/vhost-iommu");
	ASSERT_EQ(0, ret);
	ASSERT_EQ(0, vi_setup(&self->d, VI_FEATURES, RING_NUM, NR_INVALQ));
	ret = vi_mock_viommu(&self->m, MOCK_VSID);
	if (ret == -ENOENT || ret == -ENOTTY)
		SKIP(return, "no iommufd selftest mock");
	ASSERT_EQ(0, ret);
}

FIXTURE_TEARDOWN(vhost_iommu_bind)
{
	vi_close(&self->d);
	vi_mock_close(&self->m);
}

static void log_clear(struct vi_mock *m)
{
	vi_mock_log(m->iommufd, m->viommu_id, NULL, 0, NULL, NULL, NULL);
}

/* Read the log: the records, their number; -1 if it failed */
static int log_read(struct vi_mock *m, struct iommu_test_virtio_inv_record *recs, uint32_t *calls)
{
	uint32_t num, lost;

	struct iommu_test_virtio_inv_record buf[MOCK_VIRTIO_LOG_MAX];

	if (vi_mock_log(m->iommufd, m->viommu_id, recs ? recs : buf,
			MOCK_VIRTIO_LOG_MAX, &num, calls, &lost) || lost)
		return -1;
	return num;
}

/* The guest bytes 4..59 of @inv are those of entry @e */
static bool same_request(const struct iommu_viommu_invalidate_virtio *e,
			 const struct virtio_iommu_req_invalidate *inv)
{
	return !memcmp(&e->scope, (const uint8_t *)inv + 4,
		       IOMMU_VIRTIO_INVAL_REQ_LEN);
}

/* The entry of @recs with host flags @flags and vdev_id @vdev_id, or NULL */
static const struct iommu_viommu_invalidate_virtio *
find_entry(const struct iommu_test_virtio_inv_record *recs, int num,
	   uint32_t flags, uint32_t vdev_id)
{
	for (int i = 0; i < num; i++)
		if (recs[i].entry.flags == flags &&
		    recs[i].entry.vdev_id == vdev_id)
			return &recs[i].entry;
	return NULL;
}

/*
 * The binding ioctls, each documented errno: reserved fields (EINVAL),
 * unknown flags (EOPNOTSUPP), order, unknown objects, duplicates.
 */
TEST_F(vhost_iommu_bind, bind_ioctls)
{
	struct vhost_iommu_iommufd ifd = { .fd = self->m.iommufd };
	struct vhost_iommu_domain dom = {
		.domain = DOM_ID,
		.viommu_id = self->m.viommu_id,
	};
	struct vhost_iommu_endpoint ep = {
		.endpoint = EP_ID,
		.domain = DOM_ID,
		.dev_id = self->m.idev_id,
		.vdev_id = MOCK_VSID,
	};
	int fd = self->d.fd;

	/* Nothing bound yet */
	EXPECT_EQ(-EINVAL, vi_set_domain(fd, 0, DOM_ID, self->m.viommu_id));
	EXPECT_EQ(-ENOENT, vi_set_endpoint(fd, 0, EP_ID, DOM_ID,
					   self->m.idev_id, MOCK_VSID));
	/* Unbinding what is not bound is no error */
	EXPECT_EQ(0, vi_set_iommufd(fd, -1, 0));
	EXPECT_EQ(0, vi_set_fault_queue(fd, 0, -1));
	/* Not an iommufd (iommufd's own errno), not a file */
	EXPECT_EQ(-EBADFD, vi_set_iommufd(fd, self->d.vqs[IQ0].kick_fd, 0));
	EXPECT_EQ(-EBADF, vi_set_iommufd(fd, 1000, 0));
	EXPECT_EQ(-EBADF, vi_set_iommufd(fd, -2, 0));
	/* Unknown flags of SET_IOMMUFD */
	for (int bit = 0; bit < 32; bit++) {
		ifd.flags = 1U << bit;
		EXPECT_EQ(-1, ioctl(fd, VHOST_IOMMU_SET_IOMMUFD, &ifd));
		EXPECT_EQ(EOPNOTSUPP, errno);
	}
	EXPECT_EQ(-1, ioctl(fd, VHOST_IOMMU_SET_IOMMUFD, NULL));
	EXPECT_EQ(EFAULT, errno);

	ASSERT_EQ(0, vi_set_iommufd(fd, self->m.iommufd, 0));
	EXPECT_EQ(-EBUSY, vi_set_iommufd(fd, self->m.iommufd, 0));

	/* SET_DOMAIN: reserved, unknown flags, wrong objects */
	dom.reserved = 1;
	EXPECT_EQ(-1, ioctl(fd, VHOST_IOMMU_SET_DOMAIN, &dom));
	EXPECT_EQ(EINVAL, errno);
	dom.reserved = 0;
	for (int bit = 1; bit < 32; bit++) {
		dom.flags = 1U << bit;
		EXPECT_EQ(-1, ioctl(fd, VHOST_IOMMU_SET_DOMAIN, &dom));
		EXPECT_EQ(EOPNOTSUPP, errno);
	}
	dom.flags = 0;
	EXPECT_EQ(-ENOENT, vi_set_domain(fd, 0, DOM_ID, 0xbad));
	EXPECT_EQ(-ENOENT, vi_set_domain(fd, 0, DOM_ID, self->m.idev_id));
	EXPECT_EQ(-ENOENT, vi_set_domain(fd, VHOST_IOMMU_F_UNBIND, DOM_ID, 0));
	ASSERT_EQ(0, ioctl(fd, VHOST_IOMMU_SET_DOMAIN, &dom));
	EXPECT_EQ(-EEXIST, vi_set_domain(fd, 0, DOM_ID, self->m.viommu_id));

	/* The vIOMMU is held */
	EXPECT_EQ(-EBUSY, vi_destroy(self->m.iommufd, self->m.viommu_id));

	/* SET_ENDPOINT: reserved, unknown flags, wrong objects */
	ep.reserved = 1;
	EXPECT_EQ(-1, ioctl(fd, VHOST_IOMMU_SET_ENDPOINT, &ep));
	EXPECT_EQ(EINVAL, errno);
	ep.reserved = 0;
	for (int bit = 1; bit < 32; bit++) {
		ep.flags = 1U << bit;
		EXPECT_EQ(-1, ioctl(fd, VHOST_IOMMU_SET_ENDPOINT, &ep));
		EXPECT_EQ(EOPNOTSUPP, errno);
	}
	ep.flags = 0;
	EXPECT_EQ(-ENOENT, vi_set_endpoint(fd, 0, EP_ID, DOM_ID + 1,
					   self->m.idev_id, MOCK_VSID));
	EXPECT_EQ(-ENOENT, vi_set_endpoint(fd, VHOST_IOMMU_F_UNBIND, EP_ID, 0,
					   0, 0));
	/* No vDEVICE of that ID on the domain's vIOMMU */
	EXPECT_EQ(-EXDEV, vi_set_endpoint(fd, 0, EP_ID, DOM_ID,
					  self->m.idev_id, MOCK_VSID + 5));
	ASSERT_EQ(0, ioctl(fd, VHOST_IOMMU_SET_ENDPOINT, &ep));
	EXPECT_EQ(-EEXIST, vi_set_endpoint(fd, 0, EP_ID, DOM_ID,
					   self->m.idev_id, MOCK_VSID));
	/* 64 endpoints per domain */
	for (int i = 1; i < 64; i++)
		ASSERT_EQ(0, vi_set_endpoint(fd, 0, EP_ID + i, DOM_ID,
					     self->m.idev_id, MOCK_VSID));
	EXPECT_EQ(-ENOSPC, vi_set_endpoint(fd, 0, EP_ID + 64, DOM_ID,
					   self->m.idev_id, MOCK_VSID));
	for (int i = 1; i < 64; i++)
		ASSERT_EQ(0, vi_set_endpoint(fd, VHOST_IOMMU_F_UNBIND,
					     EP_ID + i, 0, 0, 0));

	/* SET_FAULT_QUEUE: unknown flags; not a fault queue */
	for (int bit = 0; bit < 32; bit++)
		EXPECT_EQ(-EOPNOTSUPP,
			  vi_set_fault_queue(fd, 1U << bit, self->m.iommufd));
	EXPECT_EQ(-EBADF, vi_set_fault_queue(fd, 0, self->m.iommufd));
	EXPECT_EQ(-EBADF, vi_set_fault_queue(fd, 0, -5));

	/* Unbinding in the wrong order */
	EXPECT_EQ(-EBUSY, vi_set_domain(fd, VHOST_IOMMU_F_UNBIND, DOM_ID, 0));
	EXPECT_EQ(-EBUSY, vi_set_iommufd(fd, -1, 0));
	/* Unbinding takes no other field */
	EXPECT_EQ(-EINVAL, vi_set_endpoint(fd, VHOST_IOMMU_F_UNBIND, EP_ID,
					   DOM_ID, 0, 0));
	ASSERT_EQ(0, vi_set_endpoint(fd, VHOST_IOMMU_F_UNBIND, EP_ID, 0, 0, 0));
	EXPECT_EQ(-ENOENT, vi_set_endpoint(fd, VHOST_IOMMU_F_UNBIND, EP_ID, 0,
					   0, 0));
	EXPECT_EQ(-EINVAL, vi_set_domain(fd, VHOST_IOMMU_F_UNBIND, DOM_ID,
					 self->m.viommu_id));
	ASSERT_EQ(0, vi_set_domain(fd, VHOST_IOMMU_F_UNBIND, DOM_ID, 0));
	EXPECT_EQ(-ENOENT, vi_set_domain(fd, VHOST_IOMMU_F_UNBIND, DOM_ID, 0));
	/* Released: the vIOMMU is no longer held */
	ASSERT_EQ(0, vi_set_iommufd(fd, -1, 0));
	EXPECT_EQ(-EINVAL, vi_set_domain(fd, 0, DOM_ID, self->m.viommu_id));

	/* Closing the iommufd while bound: the device keeps it alive */
	ifd.fd = dup(self->m.iommufd);
	ifd.flags = 0;
	ASSERT_LE(0, ifd.fd);
	ASSERT_EQ(0, ioctl(fd, VHOST_IOMMU_SET_IOMMUFD, &ifd));
	close(ifd.fd);
	ASSERT_EQ(0, vi_set_domain(fd, 0, DOM_ID, self->m.viommu_id));
	ASSERT_EQ(0, vi_set_endpoint(fd, 0, EP_ID, DOM_ID, self->m.idev_id,
				     MOCK_VSID));
	/* Teardown closes the device with everything bound */
}

/*
 * B1's shape: a guest INVALIDATE on a domain becomes one domain entry (the
 * IOTLB, no vDEVICE, C_PASID cleared) and one entry per endpoint (its
 * vDEVICE, the request's caches), in one driver call, with the guest's
 * bytes 4..59 verbatim.
 */
TEST_F(vhost_iommu_bind, inval_entries)
{
	const struct iommu_viommu_invalidate_virtio *e;
	struct virtio_iommu_req_invalidate *inv;
	struct vi_mock_dev md2;
	struct iommu_test_virtio_inv_record recs[MOCK_VIRTIO_LOG_MAX];
	uint32_t calls;
	int num;

	ASSERT_EQ(0, vi_mock_add_dev(&self->m, MOCK_VSID2, &md2));
	ASSERT_EQ(0, vi_set_iommufd(self->d.fd, self->m.iommufd, 0));
	ASSERT_EQ(0, vi_set_domain(self->d.fd, 0, DOM_ID, self->m.viommu_id));
	log_clear(&self->m);

	/* No endpoint: one domain entry */
	inv = vi_make_inval(&self->d, DOM_ID, S_ADDRESS, C_TLB, F_ID | F_LEAF,
			    0, 0x42, 0x100000, 4, 12);
	inv->head.reserved[0] = 0x5a;	/* ignored, not passed on */
	EXPECT_EQ(VIRTIO_IOMMU_S_OK, inval_status(&self->d, IQ0, inv));
	num = log_read(&self->m, recs, &calls);
	ASSERT_EQ(1, num);
	EXPECT_EQ(1, calls);
	e = &recs[0].entry;
	EXPECT_EQ(0, e->flags);
	EXPECT_EQ(0, e->vdev_id);
	EXPECT_EQ(0, e->__reserved);
	EXPECT_EQ(0, e->__reserved2);
	EXPECT_TRUE(same_request(e, inv));
	EXPECT_EQ(S_ADDRESS, e->scope);
	EXPECT_EQ(C_TLB, e->caches);
	EXPECT_EQ(F_ID | F_LEAF, le16toh(e->inv_flags));
	EXPECT_EQ(DOM_ID, le32toh(e->domain));
	EXPECT_EQ(0x42, le64toh(e->id));
	EXPECT_EQ(0x100000, le64toh(e->address));
	EXPECT_EQ(4, le64toh(e->nr_pages));
	EXPECT_EQ(12, e->page_size);

	/* No endpoint and only the PASID table: nothing to hand over */
	EXPECT_EQ(VIRTIO_IOMMU_S_OK,
		  inval_status(&self->d, IQ0,
			       inval(&self->d, DOM_ID, S_DOMAIN, C_PASID, 0)));
	EXPECT_EQ(0, log_read(&self->m, recs, &calls));

	/* Two endpoints: the domain entry and one entry each, one call */
	ASSERT_EQ(0, vi_set_endpoint(self->d.fd, 0, EP_ID, DOM_ID,
				     self->m.idev_id, MOCK_VSID));
	ASSERT_EQ(0, vi_set_endpoint(self->d.fd, 0, EP_ID + 1, DOM_ID,
				     md2.idev_id, MOCK_VSID2));
	inv = vi_make_inval(&self->d, DOM_ID, S_PASID, C_TLB | C_PASID,
			    F_PASID | F_ID, 0x77, 0x42, 0, 0, 0);
	EXPECT_EQ(VIRTIO_IOMMU_S_OK, inval_status(&self->d, IQ0, inv));
	num = log_read(&self->m, recs, &calls);
	ASSERT_EQ(3, num);
	EXPECT_EQ(1, calls);
	e = find_entry(recs, num, 0, 0);
	ASSERT_NE(NULL, e) TH_LOG("no domain entry");
	EXPECT_EQ(C_TLB, e->caches);
	EXPECT_EQ(S_PASID, e->scope);
	EXPECT_EQ(0x77, le32toh(e->pasid));
	for (int i = 0; i < 2; i++) {
		e = find_entry(recs, num, IOMMU_VIRTIO_INVAL_HOST_F_VDEV,
			       i ? MOCK_VSID2 : MOCK_VSID);
		ASSERT_NE(NULL, e) TH_LOG("no entry for endpoint %d", i);
		EXPECT_TRUE(same_request(e, inv));
		EXPECT_EQ(0, e->__reserved);
		EXPECT_EQ(0, e->__reserved2);
	}

	/* C_PASID alone: the endpoint entries only */
	EXPECT_EQ(VIRTIO_IOMMU_S_OK,
		  inval_status(&self->d, IQ1,
			       inval(&self->d, DOM_ID, S_DOMAIN, C_PASID, 0)));
	num = log_read(&self->m, recs, &calls);
	ASSERT_EQ(2, num);
	EXPECT_EQ(NULL, find_entry(recs, num, 0, 0));
	for (int i = 0; i < num; i++)
		EXPECT_EQ(C_PASID, recs[i].entry.caches);

	/* The endpoint entries reached the devices' caches */
	EXPECT_TRUE(vi_mock_cache_is(self->m.iommufd, md2.idev_id, 0, 0));
}

/*
 * B1: endpoints whose vDEVICE is gone (the VMM closed the device before
 * unbinding the endpoint) cost no other endpoint its invalidation, nor the
 * domain its TLB entry, wherever they are among the domain's endpoints. The
 * guest gets S_OK. Variants: which of three endpoints are stale.
 */
FIXTURE(vhost_iommu_stale) {
	struct vi_dev d;
	struct vi_mock m;
	struct vi_mock_dev md[3];
};

FIXTURE_VARIANT(vhost_iommu_stale) {
	bool stale[3];		/* endpoints EP_ID + i, bound in that order */
};

FIXTURE_VARIANT_ADD(vhost_iommu_stale, first) {
	.stale = { true, false, false },
};

FIXTURE_VARIANT_ADD(vhost_iommu_stale, last) {
	.stale = { false, false, true },
};

FIXTURE_VARIANT_ADD(vhost_iommu_stale, first_and_last) {
	.stale = { true, false, true },
};

FIXTURE_VARIANT_ADD(vhost_iommu_stale, all) {
	.stale = { true, true, true },
};

FIXTURE_SETUP(vhost_iommu_stale)
{
	int ret;

	self->m.iommufd = -1;
	self->m.fault_fd = -1;
	ret = vi_open(&self->d);
	if (ret == -ENOENT)
		SKIP(return, "no /dev/vhost-iommu");
	ASSERT_EQ(0, ret);
	ASSERT_EQ(0, vi_setup(&self->d, VI_FEATURES, RING_NUM, NR_INVALQ));
	ret = vi_mock_viommu(&self->m, MOCK_VSID);
	if (ret == -ENOENT || ret == -ENOTTY)
		SKIP(return, "no iommufd selftest mock");
	ASSERT_EQ(0, ret);
	ASSERT_EQ(0, vi_set_iommufd(self->d.fd, self->m.iommufd, 0));
	ASSERT_EQ(0, vi_set_domain(self->d.fd, 0, DOM_ID, self->m.viommu_id));
	for (int i = 0; i < 3; i++) {
		ASSERT_EQ(0, vi_mock_add_dev(&self->m, 0x20 + i, &self->md[i]));
		ASSERT_EQ(0, vi_set_endpoint(self->d.fd, 0, EP_ID + i, DOM_ID,
					     self->md[i].idev_id, 0x20 + i));
	}
	for (int i = 0; i < 3; i++)
		if (variant->stale[i])
			ASSERT_EQ(0, vi_destroy(self->m.iommufd,
						self->md[i].vdevice_id));
}

FIXTURE_TEARDOWN(vhost_iommu_stale)
{
	vi_close(&self->d);
	vi_mock_close(&self->m);
}

TEST_F(vhost_iommu_stale, inval)
{
	struct iommu_test_virtio_inv_record recs[MOCK_VIRTIO_LOG_MAX];
	uint32_t calls;
	int num;

	log_clear(&self->m);
	/* Negative control: the live endpoints' caches hold the default */
	for (int i = 0; i < 3; i++)
		for (unsigned int c = 0; !variant->stale[i] &&
		     c < MOCK_DEV_CACHE_NUM; c++)
			ASSERT_TRUE(vi_mock_cache_is(self->m.iommufd,
						     self->md[i].idev_id, c,
						     IOMMU_TEST_DEV_CACHE_DEFAULT));

	EXPECT_EQ(VIRTIO_IOMMU_S_OK,
		  inval_status(&self->d, IQ0,
			       inval(&self->d, DOM_ID, S_DOMAIN,
				     C_TLB | C_PASID, 0)));
	num = log_read(&self->m, recs, &calls);
	ASSERT_EQ(4, num);
	EXPECT_NE(NULL, find_entry(recs, num, 0, 0)) TH_LOG("TLB entry lost");
	for (int i = 0; i < 3; i++) {
		const struct iommu_viommu_invalidate_virtio *e;

		e = find_entry(recs, num, IOMMU_VIRTIO_INVAL_HOST_F_VDEV,
			       0x20 + i);
		ASSERT_NE(NULL, e) TH_LOG("endpoint %d's entry lost", i);
		/* The record of this entry: skipped if and only if stale */
		EXPECT_EQ(variant->stale[i],
			  !!(container_of(e, struct iommu_test_virtio_inv_record,
					  entry)->flags & MOCK_VIRTIO_REC_SKIPPED));
		for (unsigned int c = 0; !variant->stale[i] &&
		     c < MOCK_DEV_CACHE_NUM; c++)
			EXPECT_TRUE(vi_mock_cache_is(self->m.iommufd,
						     self->md[i].idev_id, c, 0));
	}

	/* The next request is served as well */
	EXPECT_EQ(VIRTIO_IOMMU_S_OK,
		  inval_status(&self->d, IQ1,
			       inval(&self->d, DOM_ID, S_DOMAIN, C_TLB, 0)));
	EXPECT_EQ(4, log_read(&self->m, recs, &calls));
}

/* Unknown domain and a domain of no table: S_NOENT, nothing reaches the driver */
TEST_F(vhost_iommu_bind, unknown_domain)
{
	uint32_t calls;

	ASSERT_EQ(0, vi_set_iommufd(self->d.fd, self->m.iommufd, 0));
	ASSERT_EQ(0, vi_set_domain(self->d.fd, 0, DOM_ID, self->m.viommu_id));
	log_clear(&self->m);
	EXPECT_EQ(VIRTIO_IOMMU_S_NOENT,
		  inval_status(&self->d, IQ0,
			       inval(&self->d, DOM_ID + 1, S_DOMAIN, C_TLB, 0)));
	EXPECT_EQ(0, log_read(&self->m, NULL, &calls));
	EXPECT_EQ(0, calls);
	/* Unbound again: the same domain is unknown */
	ASSERT_EQ(0, vi_set_domain(self->d.fd, VHOST_IOMMU_F_UNBIND, DOM_ID, 0));
	EXPECT_EQ(VIRTIO_IOMMU_S_NOENT,
		  inval_status(&self->d, IQ0,
			       inval(&self->d, DOM_ID, S_DOMAIN, C_TLB, 0)));
	EXPECT_EQ(0, log_read(&self->m, NULL, &calls));
}

/* Every malformed INVALIDATE: S_INVAL, nothing reaches the driver */
TEST_F(vhost_iommu_bind, inval_validation)
{
	static const struct {
		size_t off;
		size_t len;
		uint64_t val;
	} bad[] = {
		{ offsetof(struct virtio_iommu_req_invalidate, scope), 1, 0 },
		{ offsetof(struct virtio_iommu_req_invalidate, scope), 1, 4 },
		{ offsetof(struct virtio_iommu_req_invalidate, caches), 1, 0 },
		{ offsetof(struct virtio_iommu_req_invalidate, caches), 1, 4 },
		{ offsetof(struct virtio_iommu_req_invalidate, flags), 2, 1 << 4 },
		{ offsetof(struct virtio_iommu_req_invalidate, flags), 2, 1 << 15 },
		{ offsetof(struct virtio_iommu_req_invalidate, reserved[0]), 1, 1 },
		{ offsetof(struct virtio_iommu_req_invalidate, reserved[18]), 1, 1 },
		{ offsetof(struct virtio_iommu_req_invalidate, page_size), 1, 11 },
		{ offsetof(struct virtio_iommu_req_invalidate, page_size), 1, 53 },
		{ offsetof(struct virtio_iommu_req_invalidate, nr_pages), 8, 0 },
		{ offsetof(struct virtio_iommu_req_invalidate, address), 8, ~0ULL },
	};
	struct virtio_iommu_req_invalidate *inv;
	uint32_t calls;

	ASSERT_EQ(0, vi_set_iommufd(self->d.fd, self->m.iommufd, 0));
	ASSERT_EQ(0, vi_set_domain(self->d.fd, 0, DOM_ID, self->m.viommu_id));
	ASSERT_EQ(0, vi_set_endpoint(self->d.fd, 0, EP_ID, DOM_ID,
				     self->m.idev_id, MOCK_VSID));
	log_clear(&self->m);
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		inv = inval(&self->d, DOM_ID, S_ADDRESS, C_TLB, 0);
		/* Little-endian fields: the low bytes of the value */
		memcpy((uint8_t *)inv + bad[i].off, &bad[i].val, bad[i].len);
		EXPECT_EQ(VIRTIO_IOMMU_S_INVAL,
			  inval_status(&self->d, IQ0, inv)) TH_LOG("case %zu", i);
	}
	/* S_PASID without F_PASID */
	EXPECT_EQ(VIRTIO_IOMMU_S_INVAL,
		  inval_status(&self->d, IQ0,
			       inval(&self->d, DOM_ID, S_PASID, C_TLB, 0)));
	EXPECT_EQ(0, log_read(&self->m, NULL, &calls));

	/* Ranges ending at 2^64 - 1, aligned or not, are fine */
	inv = vi_make_inval(&self->d, DOM_ID, S_ADDRESS, C_TLB, 0, 0, 0,
			    0xffffffffffffe000ULL, 2, 12);
	EXPECT_EQ(VIRTIO_IOMMU_S_OK, inval_status(&self->d, IQ0, inv));
	inv = vi_make_inval(&self->d, DOM_ID, S_ADDRESS, C_TLB, 0, 0, 0,
			    0xffffffffffffd800ULL, 2, 12);
	EXPECT_EQ(VIRTIO_IOMMU_S_OK, inval_status(&self->d, IQ0, inv));
	/* One byte beyond */
	inv = vi_make_inval(&self->d, DOM_ID, S_ADDRESS, C_TLB, 0, 0, 0,
			    0xffffffffffffe001ULL, 2, 12);
	EXPECT_EQ(VIRTIO_IOMMU_S_INVAL, inval_status(&self->d, IQ0, inv));
	EXPECT_EQ(4, log_read(&self->m, NULL, &calls));
}

/*
 * Within an invalidation queue, no completion is published before every
 * earlier INVALIDATE of the queue has been handed to the driver and done:
 * refused requests never overtake an earlier valid one still in the batch.
 */
TEST_F(vhost_iommu_bind, completion_order)
{
	const unsigned int nr = 60;
	struct virtio_iommu_req_invalidate *inv;
	uint8_t *resps[60];
	int heads[60];
	uint32_t calls;

	ASSERT_EQ(0, vi_set_iommufd(self->d.fd, self->m.iommufd, 0));
	ASSERT_EQ(0, vi_set_domain(self->d.fd, 0, DOM_ID, self->m.viommu_id));
	log_clear(&self->m);
	for (unsigned int i = 0; i < nr; i++) {
		switch (i % 3) {
		case 0:	/* valid, goes into the batch */
			inv = inval(&self->d, DOM_ID, S_DOMAIN, C_TLB, 0);
			break;
		case 1:	/* refused by the device */
			inv = inval(&self->d, DOM_ID, S_DOMAIN, C_TLB, 0);
			inv->reserved[5] = 1;
			break;
		default: /* unknown domain */
			inv = inval(&self->d, DOM_ID + 7, S_DOMAIN, C_TLB, 0);
			break;
		}
		resps[i] = make_resp(&self->d, VI_TAIL);
		heads[i] = vi_post_req(&self->d, IQ0, inv, VI_INVAL_LEN,
				       resps[i], VI_TAIL);
		ASSERT_LE(0, heads[i]);
	}
	vi_kick(&self->d, IQ0);
	for (unsigned int i = 0; i < nr; i++) {
		static const uint8_t want[] = {
			VIRTIO_IOMMU_S_OK, VIRTIO_IOMMU_S_INVAL,
			VIRTIO_IOMMU_S_NOENT,
		};
		uint32_t id, len;

		ASSERT_EQ(0, vi_get_used(&self->d, IQ0, &id, &len,
					 TIMEOUT_MS));
		EXPECT_EQ(heads[i], id) TH_LOG("used entry %u", i);
		EXPECT_EQ(want[i % 3], resps[i][0]) TH_LOG("request %u", i);
	}
	EXPECT_EQ(nr / 3, log_read(&self->m, NULL, &calls));
	TH_LOG("%u valid INVALIDATEs in %u driver calls", nr / 3, calls);
}

/* Many INVALIDATEs per kick reach the driver batched */
TEST_F(vhost_iommu_bind, inval_batch)
{
	uint32_t calls, num, lost;

	ASSERT_EQ(0, vi_set_iommufd(self->d.fd, self->m.iommufd, 0));
	ASSERT_EQ(0, vi_set_domain(self->d.fd, 0, DOM_ID, self->m.viommu_id));
	ASSERT_EQ(0, vi_set_endpoint(self->d.fd, 0, EP_ID, DOM_ID,
				     self->m.idev_id, MOCK_VSID));
	log_clear(&self->m);
	for (int i = 0; i < 100; i++)
		ASSERT_LE(0, vi_post_req(&self->d, IQ0,
					 inval(&self->d, DOM_ID, S_DOMAIN,
					       C_TLB, 0), VI_INVAL_LEN,
					 make_resp(&self->d, VI_TAIL), VI_TAIL));
	vi_kick(&self->d, IQ0);
	for (int i = 0; i < 100; i++) {
		uint32_t id, len;

		ASSERT_EQ(0, vi_get_used(&self->d, IQ0, &id, &len,
					 TIMEOUT_MS));
		EXPECT_EQ(VI_TAIL, len);
	}
	ASSERT_EQ(0, vi_mock_log(self->m.iommufd, self->m.viommu_id, NULL, 0,
				 &num, &calls, &lost));
	/* A domain entry and an endpoint entry each */
	EXPECT_EQ(200, num + lost);
	TH_LOG("100 INVALIDATEs in %u driver calls", calls);
	EXPECT_GT(100, calls);
}

/* Both invalidation queues reach the same vIOMMU */
TEST_F(vhost_iommu_bind, two_queues)
{
	uint32_t calls;

	ASSERT_EQ(0, vi_set_iommufd(self->d.fd, self->m.iommufd, 0));
	ASSERT_EQ(0, vi_set_domain(self->d.fd, 0, DOM_ID, self->m.viommu_id));
	log_clear(&self->m);
	EXPECT_EQ(VIRTIO_IOMMU_S_OK,
		  inval_status(&self->d, IQ0,
			       inval(&self->d, DOM_ID, S_DOMAIN, C_TLB, 0)));
	EXPECT_EQ(VIRTIO_IOMMU_S_OK,
		  inval_status(&self->d, IQ1,
			       inval(&self->d, DOM_ID, S_DOMAIN, C_TLB, 0)));
	EXPECT_EQ(2, log_read(&self->m, NULL, &calls));
	EXPECT_EQ(2, calls);
}

/* Stopping keeps the bindings */
TEST_F(vhost_iommu_bind, stop_keeps_bindings)
{
	uint32_t calls;

	ASSERT_EQ(0, vi_bind_mock(&self->d, &self->m, DOM_ID, EP_ID, false));
	ASSERT_EQ(0, vi_set_running(&self->d, 0));
	ASSERT_EQ(0, vi_set_running(&self->d, 1));
	log_clear(&self->m);
	EXPECT_EQ(VIRTIO_IOMMU_S_OK,
		  inval_status(&self->d, IQ0,
			       inval(&self->d, DOM_ID, S_DOMAIN, C_TLB, 0)));
	EXPECT_EQ(2, log_read(&self->m, NULL, &calls));
	EXPECT_EQ(-EBUSY, vi_destroy(self->m.iommufd, self->m.viommu_id));
}

/*
 * B2: VHOST_IOMMU_RESET drops every binding and stops the device; the
 * device starts again clean: domains unknown, vIOMMU released, iommufd
 * unbound.
 */
TEST_F(vhost_iommu_bind, reset_drops_all)
{
	uint32_t id, len;

	ASSERT_EQ(0, vi_bind_mock(&self->d, &self->m, DOM_ID, EP_ID, false));
	ASSERT_EQ(0, vi_reset(&self->d));
	/* Stopped: nothing is served */
	ASSERT_LE(0, vi_post_req(&self->d, IQ0,
				 inval(&self->d, DOM_ID, S_DOMAIN, C_TLB, 0),
				 VI_INVAL_LEN, make_resp(&self->d, VI_TAIL),
				 VI_TAIL));
	vi_kick(&self->d, IQ0);
	EXPECT_EQ(-ETIMEDOUT, vi_get_used(&self->d, IQ0, &id, &len, QUIET_MS));
	/* The references are gone */
	EXPECT_EQ(-ENOENT, vi_set_endpoint(self->d.fd, VHOST_IOMMU_F_UNBIND,
					   EP_ID, 0, 0, 0));
	EXPECT_EQ(-ENOENT, vi_set_domain(self->d.fd, VHOST_IOMMU_F_UNBIND,
					 DOM_ID, 0));
	EXPECT_EQ(-EINVAL, vi_set_domain(self->d.fd, 0, DOM_ID,
					 self->m.viommu_id));
	ASSERT_EQ(0, vi_destroy(self->m.iommufd, self->m.vdevice_id));
	ASSERT_EQ(0, vi_destroy(self->m.iommufd, self->m.viommu_id));

	/* Started again, on new rings, the domain is unknown */
	self->m.viommu_id = 0;
	ASSERT_EQ(0, vi_setup_vq(&self->d, IQ0, RING_NUM));
	ASSERT_EQ(0, vi_set_running(&self->d, 1));
	EXPECT_EQ(VIRTIO_IOMMU_S_NOENT,
		  inval_status(&self->d, IQ0,
			       inval(&self->d, DOM_ID, S_DOMAIN, C_TLB, 0)));
	EXPECT_EQ(0, vi_set_iommufd(self->d.fd, self->m.iommufd, 0));
}

/* RESET_OWNER drops the bindings and the vIOMMU reference too */
TEST_F(vhost_iommu_bind, reset_owner_unbinds)
{
	ASSERT_EQ(0, vi_bind_mock(&self->d, &self->m, DOM_ID, EP_ID, false));
	ASSERT_EQ(0, vi_destroy(self->m.iommufd, self->m.vdevice_id));
	EXPECT_EQ(-EBUSY, vi_destroy(self->m.iommufd, self->m.viommu_id));
	ASSERT_EQ(0, ioctl(self->d.fd, VHOST_RESET_OWNER));
	EXPECT_EQ(0, vi_destroy(self->m.iommufd, self->m.viommu_id));
}

/*
 * B6: SET_IOMMUFD(-1) with a fault queue of that iommufd still bound
 * releases the fault queue too (its VMM reads it again), and a fault queue
 * of another iommufd context cannot be bound: object IDs are only unique
 * within one context (the second mock VM has the very same IDs), so nothing
 * of one context may meet the other's.
 */
TEST_F(vhost_iommu_bind, iommufd_contexts)
{
	struct iommu_fault_alloc fault = { .size = sizeof(fault) };
	struct iommu_hwpt_pgfault pf;
	struct vi_mock m2;
	int fd = self->d.fd;

	ASSERT_EQ(0, vi_mock_fault_attach(self->m.iommufd, self->m.viommu_id,
					  self->m.idev_id, self->m.stdev_id,
					  &self->m.fault_id, &self->m.fault_fd,
					  &self->m.nested_id));
	/* The second VM: a vIOMMU with only its vDEVICE, a fault queue */
	ASSERT_EQ(0, vi_mock_viommu(&m2, MOCK_VSID));
	ASSERT_EQ(0, ioctl(m2.iommufd, IOMMU_FAULT_QUEUE_ALLOC, &fault));
	m2.fault_fd = fault.out_fault_fd;
	/* The same object IDs in both contexts */
	ASSERT_EQ(self->m.viommu_id, m2.viommu_id);
	ASSERT_EQ(self->m.idev_id, m2.idev_id);

	ASSERT_EQ(0, vi_bind_mock(&self->d, &self->m, DOM_ID, EP_ID, true));
	/* Claimed: its VMM cannot read it */
	EXPECT_EQ(-1, read(self->m.fault_fd, &pf, sizeof(pf)));
	EXPECT_EQ(EBUSY, errno);
	EXPECT_EQ(-EBUSY, vi_set_iommufd(fd, -1, 0));
	/* Another context's fault queue */
	ASSERT_EQ(0, vi_set_fault_queue(fd, 0, -1));
	EXPECT_EQ(-EINVAL, vi_set_fault_queue(fd, 0, m2.fault_fd))
		TH_LOG("fault queue of another iommufd context accepted");
	ASSERT_EQ(0, vi_set_fault_queue(fd, 0, self->m.fault_fd));

	/* Domains unbound, the fault queue still bound: unbinding drops it */
	ASSERT_EQ(0, vi_set_endpoint(fd, VHOST_IOMMU_F_UNBIND, EP_ID, 0, 0, 0));
	ASSERT_EQ(0, vi_set_domain(fd, VHOST_IOMMU_F_UNBIND, DOM_ID, 0));
	ASSERT_EQ(0, vi_set_iommufd(fd, -1, 0));
	ASSERT_EQ(0, vi_mock_trigger(&self->m, self->m.idev_id, 0, 2, 0x2000));
	EXPECT_EQ(sizeof(pf), read(self->m.fault_fd, &pf, sizeof(pf)))
		TH_LOG("fault queue still claimed after SET_IOMMUFD(-1)");
	EXPECT_EQ(2, pf.grpid);

	/* Bound to the other context: the same ID names its vIOMMU */
	ASSERT_EQ(0, vi_set_iommufd(fd, m2.iommufd, 0));
	EXPECT_EQ(-EINVAL, vi_set_fault_queue(fd, 0, self->m.fault_fd));
	ASSERT_EQ(0, vi_set_domain(fd, 0, DOM_ID, m2.viommu_id));
	ASSERT_EQ(0, vi_destroy(m2.iommufd, m2.vdevice_id));
	EXPECT_EQ(-EBUSY, vi_destroy(m2.iommufd, m2.viommu_id));
	ASSERT_EQ(0, vi_set_domain(fd, VHOST_IOMMU_F_UNBIND, DOM_ID, 0));
	EXPECT_EQ(0, vi_destroy(m2.iommufd, m2.viommu_id));
	vi_set_iommufd(fd, -1, 0);
	vi_mock_close(&m2);
}

/*
 * B5: a valid INVALIDATE that the driver answers -EOPNOTSUPP completes with
 * S_UNSUPP (not S_INVAL), and costs the requests around it nothing. The
 * mock answers -EOPNOTSUPP for an entry with id MOCK_VIRTIO_ID_EOPNOTSUPP.
 */
TEST_F(vhost_iommu_bind, driver_eopnotsupp)
{
	uint8_t *resps[3];
	struct iommu_test_virtio_inv_record recs[MOCK_VIRTIO_LOG_MAX];
	uint32_t calls;
	int num;

	ASSERT_EQ(0, vi_set_iommufd(self->d.fd, self->m.iommufd, 0));
	ASSERT_EQ(0, vi_set_domain(self->d.fd, 0, DOM_ID, self->m.viommu_id));
	log_clear(&self->m);
	for (int i = 0; i < 3; i++) {
		uint64_t id = i == 1 ? MOCK_VIRTIO_ID_EOPNOTSUPP : 0x42;

		resps[i] = make_resp(&self->d, VI_TAIL);
		ASSERT_LE(0, vi_post_req(&self->d, IQ0,
					 vi_make_inval(&self->d, DOM_ID,
						       S_ADDRESS, C_TLB, F_ID,
						       0, id, 0x1000 * i, 1,
						       12), VI_INVAL_LEN,
					 resps[i], VI_TAIL));
	}
	vi_kick(&self->d, IQ0);
	for (int i = 0; i < 3; i++) {
		uint32_t id, len;

		ASSERT_EQ(0, vi_get_used(&self->d, IQ0, &id, &len,
					 TIMEOUT_MS));
		EXPECT_EQ(VI_TAIL, len);
	}
	EXPECT_EQ(VIRTIO_IOMMU_S_OK, resps[0][0]);
	EXPECT_EQ(VIRTIO_IOMMU_S_UNSUPP, resps[1][0]);
	EXPECT_EQ(VIRTIO_IOMMU_S_OK, resps[2][0]);
	/* Negative control: the other two reached the driver */
	num = log_read(&self->m, recs, &calls);
	ASSERT_EQ(2, num);
	EXPECT_EQ(0, le64toh(recs[0].entry.address));
	EXPECT_EQ(0x2000, le64toh(recs[1].entry.address));
}

/*
 * SET_DOMAIN refuses a vIOMMU whose driver does not take the virtio type
 * (EOPNOTSUPP) instead of every INVALIDATE failing later (B6). The mock
 * allocates such a vIOMMU with MOCK_VIOMMU_NO_VIRTIO.
 */
TEST_F(vhost_iommu_bind, set_domain_no_virtio)
{
	struct iommu_viommu_selftest data = { .in_data = MOCK_VIOMMU_NO_VIRTIO };
	struct iommu_viommu_alloc viommu = {
		.size = sizeof(viommu),
		.type = IOMMU_VIOMMU_TYPE_SELFTEST,
		.dev_id = self->m.idev_id,
		.hwpt_id = self->m.parent_id,
		.data_len = sizeof(data),
		.data_uptr = (uintptr_t)&data,
	};

	ASSERT_EQ(0, ioctl(self->m.iommufd, IOMMU_VIOMMU_ALLOC, &viommu));
	ASSERT_EQ(0, vi_set_iommufd(self->d.fd, self->m.iommufd, 0));
	EXPECT_EQ(-EOPNOTSUPP, vi_set_domain(self->d.fd, 0, DOM_ID,
					     viommu.out_viommu_id));
	/* Not held, not bound */
	EXPECT_EQ(0, vi_destroy(self->m.iommufd, viommu.out_viommu_id));
	EXPECT_EQ(VIRTIO_IOMMU_S_NOENT,
		  inval_status(&self->d, IQ0,
			       inval(&self->d, DOM_ID, S_DOMAIN, C_TLB, 0)));
	/* Negative control: the mock's usual vIOMMU is taken */
	EXPECT_EQ(0, vi_set_domain(self->d.fd, 0, DOM_ID, self->m.viommu_id));
	EXPECT_EQ(VIRTIO_IOMMU_S_OK,
		  inval_status(&self->d, IQ0,
			       inval(&self->d, DOM_ID, S_DOMAIN, C_TLB, 0)));
}

TEST_HARNESS_MAIN
