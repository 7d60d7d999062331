// SPDX-License-Identifier: GPL-2.0-only
/*
 * vhost-iommu: the request queue of a virtio-iommu device in the host kernel.
 *
 * The device takes the guest's request queue (0) and event queue (1). The
 * worker parses every request of the request queue. It serves INVALIDATE on
 * the domains the VMM bound to an iommufd vIOMMU itself, through the IOMMU
 * driver (IOMMU_VIOMMU_INVALIDATE_DATA_VIRTIO). The other requests are
 * forwarded to the VMM, which reads them from the device file and writes its
 * answers back to it; the kernel then writes the answer into the guest's
 * buffers and returns the request to the guest.
 *
 * Ordering: the ring is processed in order. Forwarded requests reach the VMM
 * in ring order and hold their descriptors until they are answered; while any
 * of them waits, the kernel serves nothing behind it itself, and the ring is
 * not read past VHOST_IOMMU_MAX_PENDING forwarded requests.
 *
 * See Documentation/userspace-api/vhost-iommu.rst.
 */

#include <linux/eventfd.h>
#include <linux/file.h>
#include <linux/iommufd.h>
#include <linux/list.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/poll.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/string.h>
#include <linux/uaccess.h>
#include <linux/uio.h>
#include <linux/vhost.h>
#include <linux/virtio_iommu.h>
#include <linux/wait.h>
#include <linux/xarray.h>

#include "vhost.h"

/*
 * Max number of bytes processed before requeueing the job. Using this limit
 * prevents one virtqueue from starving others.
 */
#define VHOST_IOMMU_WEIGHT 0x80000
/*
 * Max number of requests processed before requeueing the job. Using this
 * limit prevents one virtqueue from starving others with small requests.
 */
#define VHOST_IOMMU_PKT_WEIGHT 256

/*
 * Max number of requests forwarded to the VMM and not yet returned to the
 * guest. It bounds the memory a guest can make the kernel hold while the VMM
 * does not answer.
 */
#define VHOST_IOMMU_MAX_PENDING 64

/* Max size of the payload of an answer (PROBE properties) */
#define VHOST_IOMMU_PAYLOAD_MAX 4096

/*
 * Max number of invalidation entries in one call to the IOMMU driver, which
 * is also the max number of endpoints bound to one domain: a request on a
 * domain becomes one entry per endpoint.
 */
#define VHOST_IOMMU_BATCH_MAX 64

/*
 * Max number of used entries collected before they are published to the
 * guest with one vhost_add_used_n() (one used index update)
 */
#define VHOST_IOMMU_USED_MAX 64

/* A tail is 4 bytes: at most 4 non-empty iovecs to write it */
#define VHOST_IOMMU_TAIL_IOV 4

/* Checked INVALIDATE, to be served in the kernel */
#define VHOST_IOMMU_BATCHED (-EALREADY)
/* INVALIDATE of a domain the kernel does not serve: forward it */
#define VHOST_IOMMU_TO_VMM (-EREMOTE)

/* The request was forwarded to the VMM: nothing to return to the guest yet */
#define VHOST_IOMMU_FORWARDED (-EINPROGRESS)
/* PAGE_RESP behind a request waiting at the VMM: retry when it is answered */
#define VHOST_IOMMU_STALL (-EAGAIN)

/*
 * Max number of page request groups taken from the fault queue and not
 * answered by the guest yet. At the bound the device stops reading the fault
 * queue: further page requests wait there, in iommufd, until the guest
 * answers a group.
 */
#define VHOST_IOMMU_MAX_PRQ 64
/* Max number of page requests in one group; larger groups are refused */
#define VHOST_IOMMU_PRQ_GROUP_MAX 32
/*
 * Max number of faults reported by the VMM (VHOST_IOMMU_REPORT_FAULT) and
 * not delivered to the guest yet; a further report fails with -ENOSPC.
 */
#define VHOST_IOMMU_MAX_FAULTS 64

enum {
	VHOST_IOMMU_VQ_REQ = 0,
	VHOST_IOMMU_VQ_EVENT = 1,
	VHOST_IOMMU_VQ_MAX = 2,
};

/*
 * Dirty logging (VHOST_F_LOG_ALL) is not offered: the answers the VMM writes
 * later would have to be logged too.
 */
static const int vhost_iommu_bits[] = {
	VIRTIO_F_NOTIFY_ON_EMPTY,
	VIRTIO_RING_F_INDIRECT_DESC,
	VIRTIO_RING_F_EVENT_IDX,
	VIRTIO_F_ANY_LAYOUT,
	VIRTIO_F_VERSION_1,
	VIRTIO_IOMMU_F_INPUT_RANGE,
	VIRTIO_IOMMU_F_DOMAIN_RANGE,
	VIRTIO_IOMMU_F_MAP_UNMAP,
	VIRTIO_IOMMU_F_BYPASS,
	VIRTIO_IOMMU_F_PROBE,
	VIRTIO_IOMMU_F_MMIO,
	VIRTIO_IOMMU_F_BYPASS_CONFIG,
	VIRTIO_IOMMU_F_ATTACH_TABLE,
	VIRTIO_IOMMU_F_PAGE_REQUEST,
};

#define VHOST_IOMMU_FEATURES VHOST_FEATURES_U64(vhost_iommu_bits, 0)
#define VHOST_IOMMU_BACKEND_FEATURES 0ULL

/**
 * struct vhost_iommu_req - A request forwarded to the VMM
 * @node: In one of the lists of struct vhost_iommu
 * @cookie: Identifies the request on the channel
 * @head: The guest's descriptor head, returned when the request completes
 * @type: The virtio-iommu request type
 * @req_len: Valid bytes in @req
 * @resp_len: Size of the guest's device-writable part
 * @status: The VMM's status, once answered
 * @payload_len: Size of @payload
 * @payload: The VMM's payload, once answered
 * @req: The device-readable part of the request
 * @in_num: Number of entries in @in_iov
 * @in_iov: The guest's device-writable buffers (VMM addresses)
 */
struct vhost_iommu_req {
	struct list_head node;
	u64 cookie;
	unsigned int head;
	u8 type;
	u32 req_len;
	u32 resp_len;
	u8 status;
	u32 payload_len;
	void *payload;
	u8 req[VHOST_IOMMU_REQ_MAX];
	unsigned int in_num;
	struct iovec in_iov[] __counted_by(in_num);
};

/**
 * struct vhost_iommu_ep - An endpoint bound with VHOST_IOMMU_SET_ENDPOINT
 * @node: In the list of its domain
 * @id: The virtio endpoint ID
 * @dev_id: The iommufd device ID
 * @vdev_id: The virtual ID of its vDEVICE (the vSID on Arm SMMUv3)
 * @dom: Its domain
 */
struct vhost_iommu_ep {
	struct list_head node;
	u32 id;
	u32 dev_id;
	u32 vdev_id;
	struct vhost_iommu_dom *dom;
};

/**
 * struct vhost_iommu_dom - A domain bound with VHOST_IOMMU_SET_DOMAIN
 * @id: The virtio domain ID
 * @viommu: The iommufd vIOMMU that serves its invalidations
 * @nr_eps: Number of entries in @eps
 * @eps: Its endpoints
 */
struct vhost_iommu_dom {
	u32 id;
	struct iommufd_viommu *viommu;
	unsigned int nr_eps;
	struct list_head eps;
};

/**
 * struct vhost_iommu_batch_req - An INVALIDATE waiting in the batch
 * @head: The guest's descriptor head
 * @first: Index of its first entry in the batch
 * @nr: Number of its entries, 0 if there is nothing to invalidate
 * @in_num: Number of entries in @in_iov
 * @in_iov: The guest's buffers for the tail
 */
struct vhost_iommu_batch_req {
	unsigned int head;
	unsigned int first;
	unsigned int nr;
	unsigned int in_num;
	struct iovec in_iov[VHOST_IOMMU_TAIL_IOV];
};

/**
 * struct vhost_iommu_batch - Consecutive INVALIDATEs for one vIOMMU
 * @viommu: The vIOMMU of every entry
 * @nr_reqs: Number of requests in @reqs
 * @nr_entries: Number of entries in @entries
 * @reqs: The requests, in ring order
 * @entries: Their entries, in request order
 */
struct vhost_iommu_batch {
	struct iommufd_viommu *viommu;
	unsigned int nr_reqs;
	unsigned int nr_entries;
	struct vhost_iommu_batch_req reqs[VHOST_IOMMU_BATCH_MAX];
	/* A request with the most endpoints: a domain entry and 64 others */
	struct iommu_viommu_invalidate_virtio entries[VHOST_IOMMU_BATCH_MAX + 1];
};

/**
 * struct vhost_iommu_prq - A page request group taken from the fault queue,
 *                          or a fault the VMM reported
 * @node: In the list of struct vhost_iommu
 * @cookie: The iommufd cookie that answers it
 * @endpoint: The virtio endpoint ID
 * @pasid: Its PASID, if @pasid_valid
 * @grpid: Its group ID
 * @pasid_valid: Whether the requests carry a PASID
 * @vmm_fault: A fault from VHOST_IOMMU_REPORT_FAULT: one record whose first
 *             24 bytes are a struct virtio_iommu_fault, no group, freed
 *             once delivered
 * @sent: Number of records delivered to the guest
 * @nr: Number of records in @recs
 * @recs: The event records, in order
 */
struct vhost_iommu_prq {
	struct list_head node;
	u32 cookie;
	u32 endpoint;
	u32 pasid;
	u32 grpid;
	bool pasid_valid;
	bool vmm_fault;
	unsigned int sent;
	unsigned int nr;
	struct virtio_iommu_page_request recs[] __counted_by(nr);
};

/**
 * struct vhost_iommu - A vhost-iommu device
 * @dev: The vhost device
 * @vqs: The request and event queues
 * @lock: Protects the three lists, @nr_pending and @next_cookie
 * @queued: Forwarded requests the VMM has not read yet
 * @sent: Forwarded requests the VMM has read and not answered yet
 * @answered: Answered requests waiting for the device to run again
 * @nr_pending: Number of requests in the three lists; written under @lock
 *              and the request queue's mutex, or with the device stopped
 * @next_cookie: The cookie of the next forwarded request
 * @wq: Readers and pollers of the channel
 * @ictx: The iommufd bound with VHOST_IOMMU_SET_IOMMUFD
 * @doms: Bound domains (struct vhost_iommu_dom) by virtio domain ID
 * @eps: Bound endpoints (struct vhost_iommu_ep) by virtio endpoint ID
 * @batch: INVALIDATEs collected by the worker for one driver call
 * @nr_used: Used entries of the request queue collected in its heads array
 *           and not published yet
 * @prq_mutex: Protects @fault, @prqs, @nr_prqs and @pgfaults, and the
 *             endpoints against the page request path
 * @fault_file: The fault queue file bound with VHOST_IOMMU_SET_FAULT_QUEUE
 * @fault: Its fault queue
 * @fault_poll: Runs the event queue's work when the fault queue has faults
 * @prqs: Page request groups taken and not answered (struct vhost_iommu_prq),
 *        in the order of the fault queue
 * @nr_prqs: Number of page request groups in @prqs
 * @nr_faults: Number of VMM faults in @prqs
 * @pgfaults: Room for one group from the fault queue
 *
 * @ictx, @doms and @eps change under @dev.mutex and the request queue's
 * mutex; the worker reads them under the latter. @batch belongs to the
 * worker; @batch and @nr_used are under the request queue's mutex.
 *
 * A request in a list holds its descriptor head. Only the worker adds to
 * @queued. Entries leave the lists under @dev.mutex (read, write, reset,
 * start) or in release, so a holder of @dev.mutex may use an entry after
 * dropping @lock.
 */
struct vhost_iommu {
	struct vhost_dev dev;
	struct vhost_virtqueue vqs[VHOST_IOMMU_VQ_MAX];
	spinlock_t lock;	/* Protects the lists and counters below */
	struct list_head queued;
	struct list_head sent;
	struct list_head answered;
	unsigned int nr_pending;
	u64 next_cookie;
	wait_queue_head_t wq;
	struct iommufd_ctx *ictx;
	struct xarray doms;
	struct xarray eps;
	struct vhost_iommu_batch batch;
	unsigned int nr_used;
	struct mutex prq_mutex;	/* Protects the page request state */
	struct file *fault_file;
	struct iommufd_fault *fault;
	struct vhost_poll fault_poll;
	struct list_head prqs;
	unsigned int nr_prqs;
	unsigned int nr_faults;
	struct iommu_hwpt_pgfault pgfaults[VHOST_IOMMU_PRQ_GROUP_MAX];
};

static bool vhost_iommu_has_queued(struct vhost_iommu *v)
{
	bool ret;

	spin_lock(&v->lock);
	ret = !list_empty(&v->queued);
	spin_unlock(&v->lock);
	return ret;
}

/*
 * @nr_pending only changes under the request queue's mutex (or with the
 * device stopped): its holder, the worker, reads it without @lock.
 */
static bool vhost_iommu_full(struct vhost_iommu *v)
{
	lockdep_assert_held(&v->vqs[VHOST_IOMMU_VQ_REQ].mutex);
	return v->nr_pending >= VHOST_IOMMU_MAX_PENDING;
}

/*
 * Size of the device-readable part of a request of this type, or 0 if the
 * type is unknown or belongs to a feature the driver did not negotiate.
 */
static size_t vhost_iommu_req_len(struct vhost_virtqueue *vq, u8 type)
{
	switch (type) {
	case VIRTIO_IOMMU_T_ATTACH:
		return offsetof(struct virtio_iommu_req_attach, tail);
	case VIRTIO_IOMMU_T_DETACH:
		return offsetof(struct virtio_iommu_req_detach, tail);
	case VIRTIO_IOMMU_T_MAP:
		if (!vhost_has_feature(vq, VIRTIO_IOMMU_F_MAP_UNMAP))
			return 0;
		return offsetof(struct virtio_iommu_req_map, tail);
	case VIRTIO_IOMMU_T_UNMAP:
		if (!vhost_has_feature(vq, VIRTIO_IOMMU_F_MAP_UNMAP))
			return 0;
		return offsetof(struct virtio_iommu_req_unmap, tail);
	case VIRTIO_IOMMU_T_PROBE:
		if (!vhost_has_feature(vq, VIRTIO_IOMMU_F_PROBE))
			return 0;
		return sizeof(struct virtio_iommu_req_probe);
	case VIRTIO_IOMMU_T_ATTACH_TABLE:
		if (!vhost_has_feature(vq, VIRTIO_IOMMU_F_ATTACH_TABLE))
			return 0;
		return offsetof(struct virtio_iommu_req_attach_table, tail);
	case VIRTIO_IOMMU_T_INVALIDATE:
		if (!vhost_has_feature(vq, VIRTIO_IOMMU_F_ATTACH_TABLE))
			return 0;
		return offsetof(struct virtio_iommu_req_invalidate, tail);
	case VIRTIO_IOMMU_T_PAGE_RESP:
		if (!vhost_has_feature(vq, VIRTIO_IOMMU_F_PAGE_REQUEST))
			return 0;
		return offsetof(struct virtio_iommu_req_page_resp, tail);
	default:
		return 0;
	}
}

/*
 * Write the payload and the tail at the start of the device-writable part.
 * Return the number of bytes written (the used length) or -EFAULT. The
 * caller checked that the writable part is large enough.
 */
static int vhost_iommu_write_resp(const struct iovec *iov, unsigned int nr,
				  const void *payload, u32 payload_len,
				  u8 status)
{
	struct virtio_iommu_req_tail tail = { .status = status };
	size_t len = payload_len + sizeof(tail);
	struct iov_iter to;

	/* Most responses are a tail in the first writable buffer */
	if (!payload_len && nr && iov[0].iov_len >= sizeof(tail)) {
		if (copy_to_user(iov[0].iov_base, &tail, sizeof(tail)))
			return -EFAULT;
		return len;
	}

	iov_iter_init(&to, ITER_DEST, iov, nr, len);
	if (payload_len && copy_to_iter(payload, payload_len, &to) != payload_len)
		return -EFAULT;
	if (copy_to_iter(&tail, sizeof(tail), &to) != sizeof(tail))
		return -EFAULT;
	return len;
}

/*
 * Publish the used entries collected in the heads array of @vq: one copy of
 * the entries and one used index update for all of them. Called with the
 * queue's mutex held; the caller signals the guest.
 */
static void vhost_iommu_used_flush(struct vhost_virtqueue *vq,
				   unsigned int *nr)
{
	if (!*nr)
		return;
	if (vhost_add_used_n(vq, vq->heads, NULL, *nr))
		vq_err(vq, "vhost-iommu: cannot update the used ring\n");
	*nr = 0;
}

/*
 * Return a buffer to the guest: collect its used entry, published by
 * vhost_iommu_used_flush() before the queue's mutex is dropped.
 */
static void vhost_iommu_used_add(struct vhost_virtqueue *vq, unsigned int *nr,
				 unsigned int head, int len)
{
	vq->heads[*nr].id = cpu_to_vhost32(vq, head);
	vq->heads[*nr].len = cpu_to_vhost32(vq, len);
	if (++*nr == VHOST_IOMMU_USED_MAX)
		vhost_iommu_used_flush(vq, nr);
}

static void vhost_iommu_free_req(struct vhost_iommu_req *req)
{
	kfree(req->payload);
	kfree(req);
}

/* Queue a parsed request for the VMM. Called by the worker. */
static int vhost_iommu_forward(struct vhost_iommu *v, unsigned int head,
			       const struct iovec *in_iov, unsigned int in,
			       size_t in_len, const u8 *buf, size_t req_len)
{
	struct vhost_iommu_req *req;

	req = kzalloc_flex(*req, in_iov, in, GFP_KERNEL_ACCOUNT);
	if (!req)
		return vhost_iommu_write_resp(in_iov, in, NULL, 0,
					      VIRTIO_IOMMU_S_DEVERR);

	req->in_num = in;
	req->head = head;
	req->type = buf[0];
	req->req_len = req_len;
	req->resp_len = min_t(size_t, in_len, U32_MAX);
	memcpy(req->req, buf, req_len);
	memcpy(req->in_iov, in_iov, in * sizeof(*in_iov));

	spin_lock(&v->lock);
	req->cookie = ++v->next_cookie;
	list_add_tail(&req->node, &v->queued);
	v->nr_pending++;
	spin_unlock(&v->lock);

	wake_up_interruptible_poll(&v->wq, EPOLLIN | EPOLLRDNORM);
	return VHOST_IOMMU_FORWARDED;
}

static bool vhost_iommu_has_pending(struct vhost_iommu *v)
{
	lockdep_assert_held(&v->vqs[VHOST_IOMMU_VQ_REQ].mutex);
	return v->nr_pending;
}

static u8 vhost_iommu_errno_to_status(int err)
{
	switch (err) {
	case 0:
		return VIRTIO_IOMMU_S_OK;
	case -EINVAL:
	case -EIO:
	case -EOPNOTSUPP:
		return VIRTIO_IOMMU_S_INVAL;
	case -ENOENT:
		return VIRTIO_IOMMU_S_NOENT;
	case -ENOMEM:
		return VIRTIO_IOMMU_S_NOMEM;
	default:
		return VIRTIO_IOMMU_S_DEVERR;
	}
}

/* Check every field of an INVALIDATE before it can reach the IOMMU driver */
static bool vhost_iommu_inval_valid(const struct virtio_iommu_req_invalidate *inv)
{
	u16 flags = le16_to_cpu(inv->flags);
	u64 nr_pages, last;

	if (inv->scope < VIRTIO_IOMMU_INVAL_S_DOMAIN ||
	    inv->scope > VIRTIO_IOMMU_INVAL_S_ADDRESS)
		return false;
	if (!inv->caches || inv->caches & ~VIRTIO_IOMMU_INVAL_C_MASK)
		return false;
	if (flags & ~VIRTIO_IOMMU_INVAL_F_MASK)
		return false;
	if (memchr_inv(inv->reserved, 0, sizeof(inv->reserved)))
		return false;
	if (inv->scope == VIRTIO_IOMMU_INVAL_S_PASID &&
	    !(flags & VIRTIO_IOMMU_INVAL_F_PASID))
		return false;
	if (inv->scope != VIRTIO_IOMMU_INVAL_S_ADDRESS)
		return true;

	/* 4 KiB to 4 PiB pages, and a range that fits in 64 bits */
	nr_pages = le64_to_cpu(inv->nr_pages);
	if (inv->page_size < 12 || inv->page_size > 52 || !nr_pages ||
	    nr_pages > U64_MAX >> inv->page_size)
		return false;
	return !check_add_overflow(le64_to_cpu(inv->address),
				   (nr_pages << inv->page_size) - 1, &last);
}

static void vhost_iommu_batch_done(struct vhost_iommu *v,
				   struct vhost_virtqueue *vq,
				   const struct vhost_iommu_batch_req *br,
				   u8 status)
{
	int len;

	len = vhost_iommu_write_resp(br->in_iov, br->in_num, NULL, 0, status);
	if (len < 0) {
		vq_err(vq, "vhost-iommu: faulted on the response\n");
		len = 0;
	}
	vhost_iommu_used_add(vq, &v->nr_used, br->head, len);
}

/*
 * Submit the batch to the IOMMU driver in one call and return its requests
 * to the guest. When an entry fails, its request gets the error and the
 * requests behind it are submitted again. Return whether anything was
 * returned to the guest.
 */
static bool vhost_iommu_flush_batch(struct vhost_iommu *v,
				    struct vhost_virtqueue *vq)
{
	struct vhost_iommu_batch *b = &v->batch;
	unsigned int r = 0;

	if (!b->nr_reqs)
		return false;

	while (r < b->nr_reqs) {
		unsigned int first = b->reqs[r].first;
		u32 left = b->nr_entries - first;
		u32 num = left;
		int ret = 0;

		if (num)
			ret = iommufd_viommu_invalidate_virtio(b->viommu,
							       &b->entries[first],
							       &num);
		if (!ret || num > left)
			num = left;

		/* Every request whose entries were all handled succeeded */
		while (r < b->nr_reqs &&
		       b->reqs[r].first + b->reqs[r].nr <= first + num)
			vhost_iommu_batch_done(v, vq, &b->reqs[r++],
					       VIRTIO_IOMMU_S_OK);
		if (ret && r < b->nr_reqs)
			vhost_iommu_batch_done(v, vq, &b->reqs[r++],
					       vhost_iommu_errno_to_status(ret));
	}

	b->nr_reqs = 0;
	b->nr_entries = 0;
	b->viommu = NULL;
	return true;
}

/*
 * Serve an INVALIDATE in the kernel if its domain is bound and no request
 * waits at the VMM: check it, turn it into one entry per endpoint of the
 * domain and add it to the batch. Return VHOST_IOMMU_BATCHED,
 * VHOST_IOMMU_TO_VMM, or the used length of a refused request.
 */
static int vhost_iommu_batch_inval(struct vhost_iommu *v,
				   struct vhost_virtqueue *vq,
				   unsigned int head,
				   const struct iovec *in_iov, unsigned int in,
				   const u8 *buf, bool *added)
{
	const struct virtio_iommu_req_invalidate *inv = (const void *)buf;
	struct vhost_iommu_batch *b = &v->batch;
	struct iommu_viommu_invalidate_virtio entry = {};
	struct vhost_iommu_batch_req *br;
	unsigned int nr, i, nr_iov = 0;
	struct vhost_iommu_dom *dom;
	struct vhost_iommu_ep *ep;
	size_t len = 0;

	static_assert(offsetof(struct virtio_iommu_req_invalidate, tail) -
		      offsetof(struct virtio_iommu_req_invalidate, scope) ==
		      IOMMU_VIRTIO_INVAL_REQ_LEN);

	/* A request waiting at the VMM is a barrier: nothing overtakes it */
	if (!v->ictx || vhost_iommu_has_pending(v))
		return VHOST_IOMMU_TO_VMM;
	dom = xa_load(&v->doms, le32_to_cpu(inv->domain));
	if (!dom)
		return VHOST_IOMMU_TO_VMM;
	if (!vhost_iommu_inval_valid(inv))
		return vhost_iommu_write_resp(in_iov, in, NULL, 0,
					      VIRTIO_IOMMU_S_INVAL);

	nr = dom->nr_eps + 1;
	if (b->nr_reqs && (b->viommu != dom->viommu ||
			   b->nr_reqs == VHOST_IOMMU_BATCH_MAX ||
			   b->nr_entries + nr > ARRAY_SIZE(b->entries)))
		*added |= vhost_iommu_flush_batch(v, vq);

	br = &b->reqs[b->nr_reqs];
	/* Keep the buffers of the tail: vq->iov is reused for the next one */
	for (i = 0; i < in && nr_iov < VHOST_IOMMU_TAIL_IOV; i++) {
		if (len >= sizeof(struct virtio_iommu_req_tail))
			break;
		if (!in_iov[i].iov_len)
			continue;
		br->in_iov[nr_iov++] = in_iov[i];
		len += in_iov[i].iov_len;
	}
	br->in_num = nr_iov;
	br->head = head;
	br->first = b->nr_entries;
	br->nr = 0;

	/*
	 * The request's bytes 4 to 59: one domain entry for the IOTLB, one
	 * endpoint entry per endpoint for its PASID table cache and ATC
	 */
	memcpy((u8 *)&entry + IOMMU_VIRTIO_INVAL_REQ_OFFSET, &inv->scope,
	       IOMMU_VIRTIO_INVAL_REQ_LEN);
	if (entry.caches & VIRTIO_IOMMU_INVAL_C_TLB) {
		b->entries[br->first + br->nr] = entry;
		b->entries[br->first + br->nr++].caches = VIRTIO_IOMMU_INVAL_C_TLB;
	}
	entry.flags = IOMMU_VIRTIO_INVAL_HOST_F_VDEV;
	list_for_each_entry(ep, &dom->eps, node) {
		entry.vdev_id = ep->vdev_id;
		b->entries[br->first + br->nr++] = entry;
	}
	b->nr_entries += br->nr;
	b->viommu = dom->viommu;
	b->nr_reqs++;
	return VHOST_IOMMU_BATCHED;
}

/* Answer a group the guest will not answer and free it. Under prq_mutex. */
static void vhost_iommu_prq_abort(struct vhost_iommu *v,
				  struct vhost_iommu_prq *prq)
{
	/* -EINVAL: iommufd answered it already (detach) */
	iommufd_fault_respond(v->fault, prq->cookie, IOMMU_PAGE_RESP_INVALID);
	list_del(&prq->node);
	v->nr_prqs--;
	kfree(prq);
}

/* Answer every group taken, or those of one endpoint. Under prq_mutex. */
static void vhost_iommu_prq_abort_all(struct vhost_iommu *v, bool all,
				      u32 endpoint)
{
	struct vhost_iommu_prq *prq, *next;

	list_for_each_entry_safe(prq, next, &v->prqs, node)
		if (!prq->vmm_fault && (all || prq->endpoint == endpoint))
			vhost_iommu_prq_abort(v, prq);
}

/* The endpoint bound to an iommufd device, or NULL. Under prq_mutex. */
static struct vhost_iommu_ep *vhost_iommu_ep_by_dev(struct vhost_iommu *v,
						    u32 dev_id)
{
	struct vhost_iommu_ep *ep;
	unsigned long id;

	xa_for_each(&v->eps, id, ep)
		if (ep->dev_id == dev_id)
			return ep;
	return NULL;
}

static u32 vhost_iommu_prq_flags(const struct iommu_hwpt_pgfault *f)
{
	u32 flags = VIRTIO_IOMMU_FAULT_F_ADDRESS;

	if (f->perm & IOMMU_PGFAULT_PERM_READ)
		flags |= VIRTIO_IOMMU_FAULT_F_READ;
	if (f->perm & IOMMU_PGFAULT_PERM_WRITE)
		flags |= VIRTIO_IOMMU_FAULT_F_WRITE;
	if (f->perm & IOMMU_PGFAULT_PERM_EXEC)
		flags |= VIRTIO_IOMMU_FAULT_F_EXEC;
	if (f->perm & IOMMU_PGFAULT_PERM_PRIV)
		flags |= VIRTIO_IOMMU_FAULT_F_PRIV;
	if (f->flags & IOMMU_PGFAULT_FLAGS_PASID_VALID)
		flags |= VIRTIO_IOMMU_FAULT_F_PASID;
	if (f->flags & IOMMU_PGFAULT_FLAGS_LAST_PAGE)
		flags |= VIRTIO_IOMMU_FAULT_F_LAST_PAGE;
	return flags;
}

/* Turn the group in @pgfaults into event records. Under prq_mutex. */
static void vhost_iommu_prq_add(struct vhost_iommu *v,
				struct vhost_virtqueue *vq, unsigned int nr)
{
	const struct iommu_hwpt_pgfault *f = v->pgfaults;
	struct vhost_iommu_prq *prq, *next;
	struct vhost_iommu_ep *ep;
	unsigned int i;

	/*
	 * The device is the only reader of the fault queue: a cookie it still
	 * holds was answered by iommufd (detach) and is now reused.
	 */
	list_for_each_entry_safe(prq, next, &v->prqs, node) {
		if (prq->vmm_fault || prq->cookie != f->cookie)
			continue;
		list_del(&prq->node);
		v->nr_prqs--;
		kfree(prq);
	}

	ep = vhost_iommu_ep_by_dev(v, f->dev_id);
	if (!ep || !vhost_has_feature(vq, VIRTIO_IOMMU_F_PAGE_REQUEST))
		goto refuse;
	prq = kzalloc_flex(*prq, recs, nr, GFP_KERNEL_ACCOUNT);
	if (!prq)
		goto refuse;
	prq->nr = nr;
	prq->cookie = f->cookie;
	prq->endpoint = ep->id;
	prq->pasid_valid = f->flags & IOMMU_PGFAULT_FLAGS_PASID_VALID;
	prq->pasid = prq->pasid_valid ? f->pasid : 0;
	prq->grpid = f->grpid;
	for (i = 0; i < nr; i++) {
		struct virtio_iommu_page_request *rec = &prq->recs[i];

		rec->reason = VIRTIO_IOMMU_FAULT_R_PAGE_REQUEST;
		rec->flags = cpu_to_le32(vhost_iommu_prq_flags(&f[i]));
		rec->endpoint = cpu_to_le32(ep->id);
		rec->pasid = cpu_to_le32(prq->pasid);
		rec->address = cpu_to_le64(f[i].addr);
		rec->group = cpu_to_le32(f[i].grpid);
	}
	list_add_tail(&prq->node, &v->prqs);
	v->nr_prqs++;
	return;

refuse:
	iommufd_fault_respond(v->fault, f->cookie, IOMMU_PAGE_RESP_INVALID);
}

/*
 * Take groups from the fault queue up to the bound. Under the event queue's
 * mutex and prq_mutex. Return false if it must run again.
 */
static bool vhost_iommu_prq_fetch(struct vhost_iommu *v,
				  struct vhost_virtqueue *vq)
{
	unsigned int budget = VHOST_IOMMU_MAX_PRQ;
	unsigned int nr;
	int ret;

	if (!v->fault)
		return true;
	while (v->nr_prqs < VHOST_IOMMU_MAX_PRQ) {
		if (!budget--)
			return false;
		ret = iommufd_fault_fetch(v->fault, v->pgfaults,
					  ARRAY_SIZE(v->pgfaults), &nr);
		if (ret == -E2BIG)
			continue;
		/*
		 * No memory for the cookie: the group went back to the queue,
		 * and no new fault may come to wake us. Run again.
		 */
		if (ret == -ENOMEM)
			return false;
		if (ret)
			break;
		vhost_iommu_prq_add(v, vq, nr);
	}
	return true;
}

/*
 * Write the records not delivered yet into the guest's event buffers.
 * Under the event queue's mutex and prq_mutex. Return whether buffers were
 * used.
 */
static bool vhost_iommu_prq_push(struct vhost_iommu *v,
				 struct vhost_virtqueue *vq)
{
	struct vhost_iommu_prq *prq, *next;
	unsigned int out, in, nr_used = 0;
	bool added = false;
	struct iov_iter to;
	int head, pkts = 0;
	size_t rec_len;

	list_for_each_entry_safe(prq, next, &v->prqs, node) {
		rec_len = prq->vmm_fault ? sizeof(struct virtio_iommu_fault) :
			  sizeof(struct virtio_iommu_page_request);
		while (prq->sent < prq->nr) {
			if (vhost_exceeds_weight(vq, pkts, 0))
				goto out;
			head = vhost_get_vq_desc(vq, vq->iov,
						 ARRAY_SIZE(vq->iov), &out,
						 &in, NULL, NULL);
			if (unlikely(head < 0))
				goto out;
			if (head == vq->num) {
				if (unlikely(vhost_enable_notify(&v->dev, vq))) {
					vhost_disable_notify(&v->dev, vq);
					continue;
				}
				goto out;
			}
			pkts++;
			added = true;
			if (out || iov_length(vq->iov, in) < rec_len) {
				vq_err(vq, "vhost-iommu: bad event buffer\n");
				vhost_iommu_used_add(vq, &nr_used, head, 0);
				continue;
			}
			iov_iter_init(&to, ITER_DEST, vq->iov, in, rec_len);
			if (copy_to_iter(&prq->recs[prq->sent], rec_len,
					 &to) != rec_len) {
				vq_err(vq, "vhost-iommu: faulted on an event\n");
				vhost_iommu_used_add(vq, &nr_used, head, 0);
				goto out;
			}
			vhost_iommu_used_add(vq, &nr_used, head, rec_len);
			prq->sent++;
		}
		/* Nobody answers a fault */
		if (prq->vmm_fault) {
			list_del(&prq->node);
			v->nr_faults--;
			kfree(prq);
		}
	}
out:
	vhost_iommu_used_flush(vq, &nr_used);
	return added;
}

static void vhost_iommu_handle_event_vq(struct vhost_iommu *v)
{
	struct vhost_virtqueue *vq = &v->vqs[VHOST_IOMMU_VQ_EVENT];
	bool added, done;

	mutex_lock(&vq->mutex);
	if (!vhost_vq_get_backend(vq))
		goto out_unlock;
	vhost_disable_notify(&v->dev, vq);
	mutex_lock(&v->prq_mutex);
	done = vhost_iommu_prq_fetch(v, vq);
	added = vhost_iommu_prq_push(v, vq);
	mutex_unlock(&v->prq_mutex);
	if (added)
		vhost_signal(&v->dev, vq);
	if (!done)
		vhost_poll_queue(&v->fault_poll);
out_unlock:
	mutex_unlock(&vq->mutex);
}

static void vhost_iommu_handle_event_kick(struct vhost_work *work)
{
	struct vhost_virtqueue *vq = container_of(work, struct vhost_virtqueue,
						  poll.work);
	struct vhost_iommu *v = container_of(vq->dev, struct vhost_iommu, dev);

	vhost_iommu_handle_event_vq(v);
}

static void vhost_iommu_handle_fault(struct vhost_work *work)
{
	struct vhost_iommu *v = container_of(work, struct vhost_iommu,
					     fault_poll.work);

	vhost_iommu_handle_event_vq(v);
}

/*
 * Complete a PAGE_RESP: answer the delivered group it names through
 * iommufd. Return the status for the guest.
 */
static u8 vhost_iommu_page_resp(struct vhost_iommu *v, const u8 *buf)
{
	const struct virtio_iommu_req_page_resp *resp = (const void *)buf;
	u32 flags = le32_to_cpu(resp->flags);
	u16 code = le16_to_cpu(resp->code);
	struct vhost_iommu_prq *prq;
	bool pasid_valid;
	u8 status = VIRTIO_IOMMU_S_INVAL;

	static_assert(VIRTIO_IOMMU_PAGE_RESP_SUCCESS == IOMMU_PAGE_RESP_SUCCESS);
	static_assert(VIRTIO_IOMMU_PAGE_RESP_INVALID == IOMMU_PAGE_RESP_INVALID);

	if (flags & ~VIRTIO_IOMMU_PAGE_RESP_F_PASID ||
	    code > VIRTIO_IOMMU_PAGE_RESP_FAILURE ||
	    memchr_inv(resp->reserved, 0, sizeof(resp->reserved)))
		return VIRTIO_IOMMU_S_INVAL;
	pasid_valid = flags & VIRTIO_IOMMU_PAGE_RESP_F_PASID;
	if (!pasid_valid && resp->pasid)
		return VIRTIO_IOMMU_S_INVAL;

	mutex_lock(&v->prq_mutex);
	list_for_each_entry(prq, &v->prqs, node) {
		/* The guest answers groups it has seen in full */
		if (prq->vmm_fault || prq->sent != prq->nr ||
		    prq->endpoint != le32_to_cpu(resp->endpoint) ||
		    prq->grpid != le32_to_cpu(resp->group) ||
		    prq->pasid_valid != pasid_valid ||
		    prq->pasid != le32_to_cpu(resp->pasid))
			continue;
		/*
		 * iommufd takes SUCCESS and INVALID only: FAILURE is answered
		 * INVALID. -EINVAL: iommufd answered it already (detach).
		 */
		if (!iommufd_fault_respond(v->fault, prq->cookie,
					   code == VIRTIO_IOMMU_PAGE_RESP_FAILURE ?
					   IOMMU_PAGE_RESP_INVALID : code))
			status = VIRTIO_IOMMU_S_OK;
		list_del(&prq->node);
		/*
		 * At the bound the fault queue was left unread: room for more
		 * groups. Below it, everything queued was taken already.
		 */
		if (v->nr_prqs-- == VHOST_IOMMU_MAX_PRQ)
			vhost_poll_queue(&v->fault_poll);
		kfree(prq);
		break;
	}
	mutex_unlock(&v->prq_mutex);
	return status;
}

/*
 * Parse one request. Return the used length to return it with now,
 * VHOST_IOMMU_FORWARDED or VHOST_IOMMU_BATCHED.
 */
static int vhost_iommu_handle_req(struct vhost_iommu *v,
				  struct vhost_virtqueue *vq, unsigned int head,
				  unsigned int out, unsigned int in,
				  size_t *out_len, bool *added)
{
	const struct iovec *in_iov = &vq->iov[out];
	u8 buf[VHOST_IOMMU_REQ_MAX] __aligned(8);
	size_t in_len, req_len, copy_len;
	struct iov_iter from;
	int ret;

	*out_len = iov_length(vq->iov, out);
	in_len = iov_length(in_iov, in);

	/*
	 * Without a head or room for the tail the request cannot be parsed:
	 * return it unwritten.
	 */
	if (*out_len < sizeof(struct virtio_iommu_req_head) ||
	    in_len < sizeof(struct virtio_iommu_req_tail)) {
		vq_err(vq, "vhost-iommu: bad request sizes %zu/%zu\n",
		       *out_len, in_len);
		return 0;
	}

	/*
	 * One copy for the head and the body: the largest request fits in
	 * buf, and the guest allows reading its whole device-readable part.
	 */
	copy_len = min(*out_len, sizeof(buf));
	if (vq->iov[0].iov_len >= copy_len) {
		/* The usual case: the request is in one buffer */
		if (copy_from_user(buf, vq->iov[0].iov_base, copy_len))
			goto fault;
	} else {
		iov_iter_init(&from, ITER_SOURCE, vq->iov, out, copy_len);
		if (!copy_from_iter_full(buf, copy_len, &from))
			goto fault;
	}

	req_len = vhost_iommu_req_len(vq, buf[0]);
	if (!req_len)
		return 0;
	if (*out_len < req_len)
		return vhost_iommu_write_resp(in_iov, in, NULL, 0,
					      VIRTIO_IOMMU_S_INVAL);

	if (buf[0] == VIRTIO_IOMMU_T_PAGE_RESP) {
		/* What the guest queued before it comes first */
		*added |= vhost_iommu_flush_batch(v, vq);
		if (vhost_iommu_has_pending(v))
			return VHOST_IOMMU_STALL;
		return vhost_iommu_write_resp(in_iov, in, NULL, 0,
					      vhost_iommu_page_resp(v, buf));
	}

	if (buf[0] == VIRTIO_IOMMU_T_INVALIDATE) {
		ret = vhost_iommu_batch_inval(v, vq, head, in_iov, in, buf,
					      added);
		if (ret != VHOST_IOMMU_TO_VMM)
			return ret;
	}

	/* What the kernel collected comes first */
	*added |= vhost_iommu_flush_batch(v, vq);
	return vhost_iommu_forward(v, head, in_iov, in, in_len, buf, req_len);

fault:
	vq_err(vq, "vhost-iommu: faulted on the request\n");
	return 0;
}

static void vhost_iommu_handle_req_vq(struct vhost_iommu *v)
{
	struct vhost_virtqueue *vq = &v->vqs[VHOST_IOMMU_VQ_REQ];
	size_t out_len, total_len = 0;
	unsigned int out, in, ndesc;
	bool added = false;
	int head, pkts = 0;
	int len;

	mutex_lock(&vq->mutex);
	if (!vhost_vq_get_backend(vq))
		goto out_unlock;

	vhost_disable_notify(&v->dev, vq);

	do {
		/* Resumed by the answer that frees a slot */
		if (vhost_iommu_full(v))
			break;

		head = vhost_get_vq_desc_n(vq, vq->iov, ARRAY_SIZE(vq->iov),
					   &out, &in, NULL, NULL, &ndesc);
		/* On error, stop handling until the next kick. */
		if (unlikely(head < 0))
			break;
		/* Nothing new? Wait for eventfd to tell us they refilled. */
		if (head == vq->num) {
			if (unlikely(vhost_enable_notify(&v->dev, vq))) {
				vhost_disable_notify(&v->dev, vq);
				continue;
			}
			break;
		}

		len = vhost_iommu_handle_req(v, vq, head, out, in, &out_len,
					     &added);
		total_len += out_len;
		if (len == VHOST_IOMMU_FORWARDED || len == VHOST_IOMMU_BATCHED)
			continue;
		/* Resumed when the requests at the VMM are answered */
		if (len == VHOST_IOMMU_STALL) {
			vhost_discard_vq_desc(vq, 1, ndesc);
			break;
		}
		if (len < 0) {
			vq_err(vq, "vhost-iommu: faulted on the response\n");
			len = 0;
		}
		vhost_iommu_used_add(vq, &v->nr_used, head, len);
		added = true;
	} while (likely(!vhost_exceeds_weight(vq, ++pkts, total_len)));

	added |= vhost_iommu_flush_batch(v, vq);
	vhost_iommu_used_flush(vq, &v->nr_used);
	if (added)
		vhost_signal(&v->dev, vq);
out_unlock:
	mutex_unlock(&vq->mutex);
}

static void vhost_iommu_handle_req_kick(struct vhost_work *work)
{
	struct vhost_virtqueue *vq = container_of(work, struct vhost_virtqueue,
						  poll.work);
	struct vhost_iommu *v = container_of(vq->dev, struct vhost_iommu, dev);

	vhost_iommu_handle_req_vq(v);
}

/*
 * Return an answered request to the guest. Called with the request queue's
 * mutex held and the device running, in the owner's address space.
 */
static void vhost_iommu_retire(struct vhost_iommu *v,
			       struct vhost_virtqueue *vq,
			       struct vhost_iommu_req *req)
{
	int len;

	len = vhost_iommu_write_resp(req->in_iov, req->in_num, req->payload,
				     req->payload_len, req->status);
	if (len < 0) {
		vq_err(vq, "vhost-iommu: faulted on the response\n");
		len = 0;
	}
	vhost_iommu_used_add(vq, &v->nr_used, req->head, len);

	spin_lock(&v->lock);
	v->nr_pending--;
	spin_unlock(&v->lock);
	vhost_iommu_free_req(req);
}

/*
 * Return the answered requests to the guest if the device runs. Called with
 * dev.mutex held, in the owner's address space.
 */
static void vhost_iommu_retire_answered(struct vhost_iommu *v)
{
	struct vhost_virtqueue *vq = &v->vqs[VHOST_IOMMU_VQ_REQ];
	struct vhost_iommu_req *req, *next;
	LIST_HEAD(done);

	mutex_lock(&vq->mutex);
	if (!vhost_vq_get_backend(vq)) {
		mutex_unlock(&vq->mutex);
		return;
	}

	spin_lock(&v->lock);
	list_splice_init(&v->answered, &done);
	spin_unlock(&v->lock);

	if (list_empty(&done)) {
		mutex_unlock(&vq->mutex);
		return;
	}

	list_for_each_entry_safe(req, next, &done, node) {
		list_del(&req->node);
		vhost_iommu_retire(v, vq, req);
	}
	vhost_iommu_used_flush(vq, &v->nr_used);
	vhost_signal(&v->dev, vq);
	mutex_unlock(&vq->mutex);

	/* Slots were freed: read the rest of the ring */
	vhost_poll_queue(&vq->poll);
}

/* Free every forwarded request. The device is stopped and flushed. */
static void vhost_iommu_drop_pending(struct vhost_iommu *v)
{
	struct vhost_iommu_req *req, *next;
	LIST_HEAD(drop);

	spin_lock(&v->lock);
	list_splice_init(&v->queued, &drop);
	list_splice_init(&v->sent, &drop);
	list_splice_init(&v->answered, &drop);
	v->nr_pending = 0;
	spin_unlock(&v->lock);

	list_for_each_entry_safe(req, next, &drop, node) {
		list_del(&req->node);
		vhost_iommu_free_req(req);
	}
}

static ssize_t vhost_iommu_read(struct file *f, char __user *buf,
				size_t count, loff_t *ppos)
{
	struct vhost_iommu *v = f->private_data;
	struct vhost_iommu_req_msg msg = {};
	struct vhost_iommu_req *req;
	ssize_t ret;

	if (count < sizeof(msg))
		return -EINVAL;

	for (;;) {
		mutex_lock(&v->dev.mutex);
		ret = vhost_dev_check_owner(&v->dev);
		if (ret)
			goto out_unlock;

		spin_lock(&v->lock);
		req = list_first_entry_or_null(&v->queued,
					       struct vhost_iommu_req, node);
		spin_unlock(&v->lock);
		if (req)
			break;
		mutex_unlock(&v->dev.mutex);

		if (f->f_flags & O_NONBLOCK)
			return -EAGAIN;
		ret = wait_event_interruptible(v->wq, vhost_iommu_has_queued(v));
		if (ret)
			return ret;
	}

	/* dev.mutex is held: nothing else takes req off the list. */
	msg.size = sizeof(msg);
	msg.version = VHOST_IOMMU_MSG_VERSION;
	msg.type = VHOST_IOMMU_MSG_REQUEST;
	msg.cookie = req->cookie;
	msg.req_len = req->req_len;
	msg.resp_len = req->resp_len;
	memcpy(msg.req, req->req, req->req_len);

	if (copy_to_user(buf, &msg, sizeof(msg))) {
		ret = -EFAULT;
		goto out_unlock;
	}

	spin_lock(&v->lock);
	list_move_tail(&req->node, &v->sent);
	spin_unlock(&v->lock);
	ret = sizeof(msg);

out_unlock:
	mutex_unlock(&v->dev.mutex);
	return ret;
}

static struct vhost_iommu_req *vhost_iommu_find_sent(struct vhost_iommu *v,
						     u64 cookie)
{
	struct vhost_iommu_req *req;

	lockdep_assert_held(&v->lock);
	list_for_each_entry(req, &v->sent, node)
		if (req->cookie == cookie)
			return req;
	return NULL;
}

/* Take the answered request off the sent list. Called with dev.mutex held. */
static int vhost_iommu_take_answered(struct vhost_iommu *v,
				     const struct vhost_iommu_resp_msg *resp,
				     struct vhost_iommu_req **reqp)
{
	struct vhost_iommu_req *req;
	int ret = 0;

	spin_lock(&v->lock);
	req = vhost_iommu_find_sent(v, resp->cookie);
	if (!req)
		ret = -ENOENT;
	else if (resp->payload_len && req->type != VIRTIO_IOMMU_T_PROBE)
		ret = -EINVAL;
	else if (resp->payload_len >
		 req->resp_len - sizeof(struct virtio_iommu_req_tail))
		ret = -EINVAL;
	else
		list_del(&req->node);
	spin_unlock(&v->lock);

	*reqp = ret ? NULL : req;
	return ret;
}

static ssize_t vhost_iommu_write(struct file *f, const char __user *buf,
				 size_t count, loff_t *ppos)
{
	struct vhost_iommu *v = f->private_data;
	struct vhost_iommu_resp_msg resp;
	struct vhost_iommu_req *req;
	void *payload = NULL;
	ssize_t ret;
	u32 size;

	if (count < sizeof(size))
		return -EINVAL;
	if (get_user(size, (const u32 __user *)buf))
		return -EFAULT;
	if (size < sizeof(resp) || size > count)
		return -EINVAL;

	mutex_lock(&v->dev.mutex);
	ret = vhost_dev_check_owner(&v->dev);
	if (ret)
		goto out_unlock;

	ret = copy_struct_from_user(&resp, sizeof(resp), buf, size);
	if (ret)
		goto out_unlock;

	ret = -EINVAL;
	if (resp.version != VHOST_IOMMU_MSG_VERSION ||
	    resp.type != VHOST_IOMMU_MSG_RESPONSE ||
	    resp.status > VIRTIO_IOMMU_S_NOMEM ||
	    resp.payload_len > VHOST_IOMMU_PAYLOAD_MAX ||
	    count != (size_t)size + resp.payload_len)
		goto out_unlock;
	if (memchr_inv(resp.__reserved, 0, sizeof(resp.__reserved))) {
		ret = -EOPNOTSUPP;
		goto out_unlock;
	}

	if (resp.payload_len) {
		payload = memdup_user(buf + size, resp.payload_len);
		if (IS_ERR(payload)) {
			ret = PTR_ERR(payload);
			payload = NULL;
			goto out_unlock;
		}
	}

	ret = vhost_iommu_take_answered(v, &resp, &req);
	if (ret)
		goto out_unlock;

	req->status = resp.status;
	req->payload_len = resp.payload_len;
	req->payload = payload;
	payload = NULL;

	spin_lock(&v->lock);
	list_add_tail(&req->node, &v->answered);
	spin_unlock(&v->lock);

	/*
	 * Return it to the guest now if the device runs: the owner's address
	 * space is current, as in the worker.
	 */
	vhost_iommu_retire_answered(v);
	ret = count;

out_unlock:
	mutex_unlock(&v->dev.mutex);
	kfree(payload);
	return ret;
}

static __poll_t vhost_iommu_poll(struct file *f, poll_table *wait)
{
	struct vhost_iommu *v = f->private_data;
	__poll_t mask = EPOLLOUT | EPOLLWRNORM;

	poll_wait(f, &v->wq, wait);
	if (vhost_iommu_has_queued(v))
		mask |= EPOLLIN | EPOLLRDNORM;
	return mask;
}

static int vhost_iommu_open(struct inode *inode, struct file *f)
{
	struct vhost_virtqueue **vqs;
	struct vhost_iommu *v;

	/* The vqs hold large iovec arrays: fall back to vmalloc if needed */
	v = kvzalloc_obj(*v, GFP_KERNEL_ACCOUNT | __GFP_RETRY_MAYFAIL);
	if (!v)
		return -ENOMEM;
	vqs = kmalloc_objs(*vqs, VHOST_IOMMU_VQ_MAX, GFP_KERNEL_ACCOUNT);
	if (!vqs) {
		kvfree(v);
		return -ENOMEM;
	}

	spin_lock_init(&v->lock);
	INIT_LIST_HEAD(&v->queued);
	INIT_LIST_HEAD(&v->sent);
	INIT_LIST_HEAD(&v->answered);
	init_waitqueue_head(&v->wq);
	xa_init(&v->doms);
	xa_init(&v->eps);
	mutex_init(&v->prq_mutex);
	INIT_LIST_HEAD(&v->prqs);

	vqs[VHOST_IOMMU_VQ_REQ] = &v->vqs[VHOST_IOMMU_VQ_REQ];
	vqs[VHOST_IOMMU_VQ_EVENT] = &v->vqs[VHOST_IOMMU_VQ_EVENT];
	v->vqs[VHOST_IOMMU_VQ_REQ].handle_kick = vhost_iommu_handle_req_kick;
	/* The event queue's buffers stay available until there are events */
	v->vqs[VHOST_IOMMU_VQ_EVENT].handle_kick = vhost_iommu_handle_event_kick;
	vhost_dev_init(&v->dev, vqs, VHOST_IOMMU_VQ_MAX, UIO_MAXIOV,
		       VHOST_IOMMU_PKT_WEIGHT, VHOST_IOMMU_WEIGHT, true, NULL);
	vhost_poll_init(&v->fault_poll, vhost_iommu_handle_fault, EPOLLIN,
			&v->dev, &v->vqs[VHOST_IOMMU_VQ_EVENT]);

	f->private_data = v;
	return 0;
}

static void vhost_iommu_stop(struct vhost_iommu *v)
{
	struct vhost_virtqueue *vq;
	int i;

	for (i = 0; i < VHOST_IOMMU_VQ_MAX; i++) {
		vq = &v->vqs[i];
		mutex_lock(&vq->mutex);
		vhost_vq_set_backend(vq, NULL);
		mutex_unlock(&vq->mutex);
	}
}

static int vhost_iommu_start(struct vhost_iommu *v)
{
	struct vhost_virtqueue *vq;
	int ret = 0;
	int i;

	for (i = 0; i < VHOST_IOMMU_VQ_MAX; i++) {
		vq = &v->vqs[i];
		mutex_lock(&vq->mutex);
		if (!vhost_vq_access_ok(vq)) {
			ret = -EFAULT;
			goto err_vq;
		}
		if (!vhost_vq_get_backend(vq)) {
			vhost_vq_set_backend(vq, v);
			ret = vhost_vq_init_access(vq);
			if (ret)
				goto err_vq;
		}
		mutex_unlock(&vq->mutex);
	}

	/* Answers that arrived while stopped, then what the guest queued */
	vhost_iommu_retire_answered(v);
	vhost_poll_queue(&v->vqs[VHOST_IOMMU_VQ_REQ].poll);
	/* Page requests that arrived while stopped */
	vhost_poll_queue(&v->fault_poll);
	return 0;

err_vq:
	vhost_vq_set_backend(vq, NULL);
	mutex_unlock(&vq->mutex);
	vhost_iommu_stop(v);
	return ret;
}

/*
 * Stop serving the fault queue and answer the page requests in flight. Under
 * dev.mutex, or in release.
 */
static void vhost_iommu_unbind_fault(struct vhost_iommu *v)
{
	struct file *file;

	if (!v->fault_file)
		return;
	vhost_poll_stop(&v->fault_poll);
	vhost_dev_flush(&v->dev);
	mutex_lock(&v->prq_mutex);
	vhost_iommu_prq_abort_all(v, true, 0);
	iommufd_fault_unclaim(v->fault);
	file = v->fault_file;
	v->fault_file = NULL;
	v->fault = NULL;
	mutex_unlock(&v->prq_mutex);
	fput(file);
}

/* Forget the faults the VMM reported and the guest did not get yet */
static void vhost_iommu_drop_faults(struct vhost_iommu *v)
{
	struct vhost_iommu_prq *prq, *next;

	mutex_lock(&v->prq_mutex);
	list_for_each_entry_safe(prq, next, &v->prqs, node) {
		if (!prq->vmm_fault)
			continue;
		list_del(&prq->node);
		v->nr_faults--;
		kfree(prq);
	}
	mutex_unlock(&v->prq_mutex);
}

/* Drop every binding. The device is stopped and flushed. */
static void vhost_iommu_unbind_all(struct vhost_iommu *v)
{
	struct vhost_iommu_dom *dom;
	struct vhost_iommu_ep *ep;
	unsigned long id;

	vhost_iommu_unbind_fault(v);
	vhost_iommu_drop_faults(v);

	xa_for_each(&v->eps, id, ep) {
		xa_erase(&v->eps, id);
		kfree(ep);
	}
	xa_for_each(&v->doms, id, dom) {
		xa_erase(&v->doms, id);
		iommufd_viommu_put_ref(dom->viommu);
		kfree(dom);
	}
	if (v->ictx) {
		iommufd_ctx_put(v->ictx);
		v->ictx = NULL;
	}
}

static int vhost_iommu_release(struct inode *inode, struct file *f)
{
	struct vhost_iommu *v = f->private_data;

	/* No owner check: the device stops in any case */
	vhost_iommu_stop(v);
	vhost_dev_flush(&v->dev);
	vhost_iommu_drop_pending(v);
	vhost_iommu_unbind_all(v);
	xa_destroy(&v->doms);
	xa_destroy(&v->eps);
	mutex_destroy(&v->prq_mutex);
	vhost_dev_stop(&v->dev);
	vhost_dev_cleanup(&v->dev);
	kfree(v->dev.vqs);
	kvfree(v);
	return 0;
}

static long vhost_iommu_reset_owner(struct vhost_iommu *v)
{
	struct vhost_iotlb *umem;
	long ret;

	mutex_lock(&v->dev.mutex);
	ret = vhost_dev_check_owner(&v->dev);
	if (ret)
		goto out_unlock;
	umem = vhost_dev_reset_owner_prepare();
	if (!umem) {
		ret = -ENOMEM;
		goto out_unlock;
	}
	vhost_iommu_stop(v);
	vhost_dev_flush(&v->dev);
	vhost_iommu_drop_pending(v);
	vhost_iommu_unbind_all(v);
	vhost_dev_stop(&v->dev);
	vhost_dev_reset_owner(&v->dev, umem);
out_unlock:
	mutex_unlock(&v->dev.mutex);
	return ret;
}

/* Set the acked features or backend features of every queue, as the owner */
static int vhost_iommu_ack_features(struct vhost_iommu *v, u64 features,
				    bool backend)
{
	struct vhost_virtqueue *vq;
	int ret;
	int i;

	mutex_lock(&v->dev.mutex);
	ret = vhost_dev_check_owner(&v->dev);
	if (ret)
		goto out_unlock;
	for (i = 0; i < VHOST_IOMMU_VQ_MAX; i++) {
		vq = &v->vqs[i];
		mutex_lock(&vq->mutex);
		if (backend)
			vq->acked_backend_features = features;
		else
			vq->acked_features = features;
		mutex_unlock(&vq->mutex);
	}
out_unlock:
	mutex_unlock(&v->dev.mutex);
	return ret;
}

static int vhost_iommu_set_features(struct vhost_iommu *v, u64 features)
{
	if (features & ~VHOST_IOMMU_FEATURES)
		return -EOPNOTSUPP;
	return vhost_iommu_ack_features(v, features, false);
}

static int vhost_iommu_set_backend_features(struct vhost_iommu *v,
					    u64 features)
{
	if (features & ~VHOST_IOMMU_BACKEND_FEATURES)
		return -EOPNOTSUPP;
	return vhost_iommu_ack_features(v, features, true);
}

static long vhost_iommu_get_features_array(void __user *argp)
{
	u64 features[VIRTIO_FEATURES_U64S] = { VHOST_IOMMU_FEATURES };
	u64 __user *featurep = argp;
	u64 count, copied;

	if (get_user(count, featurep))
		return -EFAULT;
	copied = min_t(u64, count, VIRTIO_FEATURES_U64S);
	if (copy_to_user(featurep + 1, features, copied * sizeof(u64)))
		return -EFAULT;
	/* Zero the rest of the array userspace provided */
	if (clear_user(featurep + 1 + copied,
		       size_mul(count - copied, sizeof(u64))))
		return -EFAULT;
	return 0;
}

static long vhost_iommu_set_features_array(struct vhost_iommu *v,
					   void __user *argp)
{
	u64 features[VIRTIO_FEATURES_U64S] = {};
	u64 __user *featurep = argp;
	u64 count, copied, i, word;

	if (get_user(count, featurep))
		return -EFAULT;
	copied = min_t(u64, count, VIRTIO_FEATURES_U64S);
	if (copy_from_user(features, featurep + 1, copied * sizeof(u64)))
		return -EFAULT;
	/* Only the first word has features this device knows */
	for (i = 1; i < count; i++) {
		if (i < copied)
			word = features[i];
		else if (get_user(word, featurep + 1 + i))
			return -EFAULT;
		if (word)
			return -EOPNOTSUPP;
	}
	return vhost_iommu_set_features(v, features[0]);
}

/*
 * Copy an ioctl argument that starts with its size, with the iommufd rules:
 * a size below @min_size is -EINVAL, non-zero bytes beyond @ksize are -E2BIG.
 */
static int vhost_iommu_get_arg(void *karg, size_t ksize, size_t min_size,
			       void __user *argp, u32 *usize)
{
	u32 size;
	int ret;

	if (get_user(size, (u32 __user *)argp))
		return -EFAULT;
	if (size < min_size)
		return -EINVAL;
	ret = copy_struct_from_user(karg, ksize, argp, size);
	if (ret)
		return ret;
	*usize = size;
	return 0;
}

static long vhost_iommu_get_info(struct vhost_iommu *v, void __user *argp)
{
	struct vhost_iommu_info info;
	u32 usize;
	int ret;

	ret = vhost_iommu_get_arg(&info, sizeof(info),
				  offsetofend(struct vhost_iommu_info,
					      out_resp_payload_max),
				  argp, &usize);
	if (ret)
		return ret;
	if (info.flags)
		return -EOPNOTSUPP;

	info.out_channel_version = VHOST_IOMMU_MSG_VERSION;
	info.out_max_pending = VHOST_IOMMU_MAX_PENDING;
	info.out_req_msg_size = sizeof(struct vhost_iommu_req_msg);
	info.out_resp_payload_max = VHOST_IOMMU_PAYLOAD_MAX;
	if (copy_to_user(argp, &info, min_t(size_t, usize, sizeof(info))))
		return -EFAULT;
	return 0;
}

static long vhost_iommu_set_running(struct vhost_iommu *v, void __user *argp)
{
	struct vhost_iommu_running cmd;
	u32 usize;
	long ret;

	ret = vhost_iommu_get_arg(&cmd, sizeof(cmd),
				  offsetofend(struct vhost_iommu_running,
					      running),
				  argp, &usize);
	if (ret)
		return ret;
	if (cmd.running > 1)
		return -EINVAL;

	mutex_lock(&v->dev.mutex);
	ret = vhost_dev_check_owner(&v->dev);
	if (ret)
		goto out_unlock;
	if (cmd.running) {
		ret = vhost_iommu_start(v);
	} else {
		vhost_iommu_stop(v);
		vhost_dev_flush(&v->dev);
	}
out_unlock:
	mutex_unlock(&v->dev.mutex);
	return ret;
}

static long vhost_iommu_set_iommufd(struct vhost_iommu *v, void __user *argp)
{
	struct vhost_virtqueue *vq = &v->vqs[VHOST_IOMMU_VQ_REQ];
	struct vhost_iommu_iommufd cmd;
	struct iommufd_ctx *ictx;
	u32 usize;
	long ret;

	ret = vhost_iommu_get_arg(&cmd, sizeof(cmd),
				  offsetofend(struct vhost_iommu_iommufd,
					      iommufd),
				  argp, &usize);
	if (ret)
		return ret;
	if (cmd.iommufd < VHOST_FILE_UNBIND)
		return -EBADF;

	mutex_lock(&v->dev.mutex);
	ret = vhost_dev_check_owner(&v->dev);
	if (ret)
		goto out_unlock;

	if (cmd.iommufd == VHOST_FILE_UNBIND) {
		if (!xa_empty(&v->doms)) {
			ret = -EBUSY;
			goto out_unlock;
		}
		mutex_lock(&vq->mutex);
		ictx = v->ictx;
		v->ictx = NULL;
		mutex_unlock(&vq->mutex);
		if (ictx)
			iommufd_ctx_put(ictx);
		goto out_unlock;
	}

	if (v->ictx) {
		ret = -EBUSY;
		goto out_unlock;
	}
	ictx = iommufd_ctx_from_fd(cmd.iommufd);
	if (IS_ERR(ictx)) {
		ret = PTR_ERR(ictx);
		goto out_unlock;
	}
	mutex_lock(&vq->mutex);
	v->ictx = ictx;
	mutex_unlock(&vq->mutex);
out_unlock:
	mutex_unlock(&v->dev.mutex);
	return ret;
}

static long vhost_iommu_unbind_domain(struct vhost_iommu *v,
				      const struct vhost_iommu_domain *cmd)
{
	struct vhost_virtqueue *vq = &v->vqs[VHOST_IOMMU_VQ_REQ];
	struct vhost_iommu_dom *dom;

	if (cmd->viommu_id)
		return -EINVAL;
	dom = xa_load(&v->doms, cmd->domain);
	if (!dom)
		return -ENOENT;
	if (dom->nr_eps)
		return -EBUSY;

	mutex_lock(&vq->mutex);
	xa_erase(&v->doms, cmd->domain);
	mutex_unlock(&vq->mutex);
	iommufd_viommu_put_ref(dom->viommu);
	kfree(dom);
	return 0;
}

static long vhost_iommu_bind_domain(struct vhost_iommu *v,
				    const struct vhost_iommu_domain *cmd)
{
	struct vhost_virtqueue *vq = &v->vqs[VHOST_IOMMU_VQ_REQ];
	struct iommufd_viommu *viommu;
	struct vhost_iommu_dom *dom;
	long ret;

	if (!v->ictx)
		return -EINVAL;
	if (xa_load(&v->doms, cmd->domain))
		return -EEXIST;

	dom = kzalloc_obj(*dom, GFP_KERNEL_ACCOUNT);
	if (!dom)
		return -ENOMEM;
	viommu = iommufd_viommu_get_by_id(v->ictx, cmd->viommu_id);
	if (IS_ERR(viommu)) {
		ret = PTR_ERR(viommu);
		goto err_free;
	}
	dom->id = cmd->domain;
	dom->viommu = viommu;
	INIT_LIST_HEAD(&dom->eps);

	mutex_lock(&vq->mutex);
	ret = xa_insert(&v->doms, cmd->domain, dom, GFP_KERNEL_ACCOUNT);
	mutex_unlock(&vq->mutex);
	if (ret)
		goto err_put;
	return 0;

err_put:
	iommufd_viommu_put_ref(viommu);
err_free:
	kfree(dom);
	return ret;
}

static long vhost_iommu_set_domain(struct vhost_iommu *v, void __user *argp)
{
	struct vhost_iommu_domain cmd;
	u32 usize;
	long ret;

	ret = vhost_iommu_get_arg(&cmd, sizeof(cmd),
				  offsetofend(struct vhost_iommu_domain,
					      viommu_id),
				  argp, &usize);
	if (ret)
		return ret;
	if (cmd.flags & ~VHOST_IOMMU_BIND_UNBIND)
		return -EOPNOTSUPP;

	mutex_lock(&v->dev.mutex);
	ret = vhost_dev_check_owner(&v->dev);
	if (!ret) {
		if (cmd.flags & VHOST_IOMMU_BIND_UNBIND)
			ret = vhost_iommu_unbind_domain(v, &cmd);
		else
			ret = vhost_iommu_bind_domain(v, &cmd);
	}
	mutex_unlock(&v->dev.mutex);
	return ret;
}

static long vhost_iommu_unbind_endpoint(struct vhost_iommu *v,
					const struct vhost_iommu_endpoint *cmd)
{
	struct vhost_virtqueue *vq = &v->vqs[VHOST_IOMMU_VQ_REQ];
	struct vhost_iommu_ep *ep;

	if (cmd->domain || cmd->dev_id || cmd->vdev_id)
		return -EINVAL;
	ep = xa_load(&v->eps, cmd->endpoint);
	if (!ep)
		return -ENOENT;

	mutex_lock(&vq->mutex);
	mutex_lock(&v->prq_mutex);
	xa_erase(&v->eps, cmd->endpoint);
	list_del(&ep->node);
	ep->dom->nr_eps--;
	/* The guest detached it: its page requests will not be answered */
	vhost_iommu_prq_abort_all(v, false, cmd->endpoint);
	mutex_unlock(&v->prq_mutex);
	mutex_unlock(&vq->mutex);
	kfree(ep);
	/* Room for more groups */
	vhost_poll_queue(&v->fault_poll);
	return 0;
}

static long vhost_iommu_bind_endpoint(struct vhost_iommu *v,
				      const struct vhost_iommu_endpoint *cmd)
{
	struct vhost_virtqueue *vq = &v->vqs[VHOST_IOMMU_VQ_REQ];
	struct vhost_iommu_dom *dom;
	struct vhost_iommu_ep *ep;
	long ret;

	if (cmd->vdev_id > U32_MAX)
		return -EINVAL;
	dom = xa_load(&v->doms, cmd->domain);
	if (!dom)
		return -ENOENT;
	if (xa_load(&v->eps, cmd->endpoint))
		return -EEXIST;
	if (dom->nr_eps >= VHOST_IOMMU_BATCH_MAX)
		return -ENOSPC;

	ep = kzalloc_obj(*ep, GFP_KERNEL_ACCOUNT);
	if (!ep)
		return -ENOMEM;
	ep->id = cmd->endpoint;
	ep->dev_id = cmd->dev_id;
	ep->vdev_id = cmd->vdev_id;
	ep->dom = dom;

	mutex_lock(&vq->mutex);
	mutex_lock(&v->prq_mutex);
	ret = xa_insert(&v->eps, cmd->endpoint, ep, GFP_KERNEL_ACCOUNT);
	if (!ret) {
		list_add_tail(&ep->node, &dom->eps);
		dom->nr_eps++;
	}
	mutex_unlock(&v->prq_mutex);
	mutex_unlock(&vq->mutex);
	if (ret)
		kfree(ep);
	return ret;
}

static long vhost_iommu_set_endpoint(struct vhost_iommu *v, void __user *argp)
{
	struct vhost_iommu_endpoint cmd;
	u32 usize;
	long ret;

	ret = vhost_iommu_get_arg(&cmd, sizeof(cmd),
				  offsetofend(struct vhost_iommu_endpoint,
					      vdev_id),
				  argp, &usize);
	if (ret)
		return ret;
	if (cmd.flags & ~VHOST_IOMMU_BIND_UNBIND || cmd.__reserved)
		return -EOPNOTSUPP;

	mutex_lock(&v->dev.mutex);
	ret = vhost_dev_check_owner(&v->dev);
	if (!ret) {
		if (cmd.flags & VHOST_IOMMU_BIND_UNBIND)
			ret = vhost_iommu_unbind_endpoint(v, &cmd);
		else
			ret = vhost_iommu_bind_endpoint(v, &cmd);
	}
	mutex_unlock(&v->dev.mutex);
	return ret;
}

static long vhost_iommu_bind_fault(struct vhost_iommu *v, int fd)
{
	struct iommufd_fault *fault;
	struct file *file;
	long ret;

	if (!v->ictx)
		return -ENOENT;
	if (v->fault_file)
		return -EBUSY;
	file = fget(fd);
	if (!file)
		return -EBADF;
	fault = iommufd_fault_from_file(v->ictx, file);
	if (IS_ERR(fault)) {
		ret = PTR_ERR(fault);
		goto err_put;
	}
	/* The VMM no longer reads or answers this queue: the device does */
	ret = iommufd_fault_claim(fault);
	if (ret)
		goto err_put;

	mutex_lock(&v->prq_mutex);
	v->fault_file = file;
	v->fault = fault;
	mutex_unlock(&v->prq_mutex);
	ret = vhost_poll_start(&v->fault_poll, file);
	if (ret) {
		mutex_lock(&v->prq_mutex);
		v->fault_file = NULL;
		v->fault = NULL;
		mutex_unlock(&v->prq_mutex);
		goto err_unclaim;
	}
	/* Faults queued before the bind */
	vhost_poll_queue(&v->fault_poll);
	return 0;

err_unclaim:
	iommufd_fault_unclaim(fault);
err_put:
	fput(file);
	return ret;
}

static long vhost_iommu_set_fault_queue(struct vhost_iommu *v,
					void __user *argp)
{
	struct vhost_iommu_fault_queue cmd;
	u32 usize;
	long ret;

	ret = vhost_iommu_get_arg(&cmd, sizeof(cmd),
				  offsetofend(struct vhost_iommu_fault_queue,
					      __reserved),
				  argp, &usize);
	if (ret)
		return ret;
	if (cmd.flags & ~VHOST_IOMMU_BIND_UNBIND || cmd.__reserved)
		return -EOPNOTSUPP;

	mutex_lock(&v->dev.mutex);
	ret = vhost_dev_check_owner(&v->dev);
	if (ret)
		goto out_unlock;
	if (cmd.flags & VHOST_IOMMU_BIND_UNBIND) {
		if (cmd.fault_fd != VHOST_FILE_UNBIND)
			ret = -EINVAL;
		else if (!v->fault_file)
			ret = -ENOENT;
		else
			vhost_iommu_unbind_fault(v);
		goto out_unlock;
	}
	ret = vhost_iommu_bind_fault(v, cmd.fault_fd);
out_unlock:
	mutex_unlock(&v->dev.mutex);
	return ret;
}

/*
 * Queue a fault of an endpoint the VMM emulates for the guest's event queue,
 * behind the records already waiting there.
 */
static long vhost_iommu_report_fault(struct vhost_iommu *v, void __user *argp)
{
	const u32 valid_flags = VIRTIO_IOMMU_FAULT_F_READ |
				VIRTIO_IOMMU_FAULT_F_WRITE |
				VIRTIO_IOMMU_FAULT_F_EXEC |
				VIRTIO_IOMMU_FAULT_F_ADDRESS;
	struct virtio_iommu_fault *rec;
	struct vhost_iommu_fault cmd;
	struct vhost_iommu_prq *prq;
	u32 usize;
	long ret;

	ret = vhost_iommu_get_arg(&cmd, sizeof(cmd),
				  offsetofend(struct vhost_iommu_fault, address),
				  argp, &usize);
	if (ret)
		return ret;
	if (cmd.flags || memchr_inv(cmd.__reserved, 0, sizeof(cmd.__reserved)) ||
	    cmd.__reserved2)
		return -EOPNOTSUPP;
	if (cmd.reason > VIRTIO_IOMMU_FAULT_R_MAPPING ||
	    cmd.fault_flags & ~valid_flags ||
	    (!(cmd.fault_flags & VIRTIO_IOMMU_FAULT_F_ADDRESS) && cmd.address))
		return -EINVAL;

	mutex_lock(&v->dev.mutex);
	ret = vhost_dev_check_owner(&v->dev);
	if (ret)
		goto out_unlock;
	prq = kzalloc_flex(*prq, recs, 1, GFP_KERNEL_ACCOUNT);
	if (!prq) {
		ret = -ENOMEM;
		goto out_unlock;
	}
	prq->nr = 1;
	prq->vmm_fault = true;
	prq->endpoint = cmd.endpoint;
	static_assert(sizeof(*rec) <= sizeof(prq->recs[0]));
	rec = (struct virtio_iommu_fault *)&prq->recs[0];
	rec->reason = cmd.reason;
	rec->flags = cpu_to_le32(cmd.fault_flags);
	rec->endpoint = cpu_to_le32(cmd.endpoint);
	rec->address = cpu_to_le64(cmd.address);

	mutex_lock(&v->prq_mutex);
	if (v->nr_faults >= VHOST_IOMMU_MAX_FAULTS) {
		mutex_unlock(&v->prq_mutex);
		kfree(prq);
		ret = -ENOSPC;
		goto out_unlock;
	}
	list_add_tail(&prq->node, &v->prqs);
	v->nr_faults++;
	mutex_unlock(&v->prq_mutex);
	/* Delivered by the event queue's work, when the device runs */
	vhost_poll_queue(&v->vqs[VHOST_IOMMU_VQ_EVENT].poll);
out_unlock:
	mutex_unlock(&v->dev.mutex);
	return ret;
}

static long vhost_iommu_ioctl(struct file *f, unsigned int ioctl,
			      unsigned long arg)
{
	struct vhost_iommu *v = f->private_data;
	void __user *argp = (void __user *)arg;
	u64 __user *featurep = argp;
	u64 features;
	long ret;

	switch (ioctl) {
	case VHOST_IOMMU_GET_INFO:
		return vhost_iommu_get_info(v, argp);
	case VHOST_IOMMU_SET_RUNNING:
		return vhost_iommu_set_running(v, argp);
	case VHOST_IOMMU_SET_IOMMUFD:
		return vhost_iommu_set_iommufd(v, argp);
	case VHOST_IOMMU_SET_DOMAIN:
		return vhost_iommu_set_domain(v, argp);
	case VHOST_IOMMU_SET_ENDPOINT:
		return vhost_iommu_set_endpoint(v, argp);
	case VHOST_IOMMU_SET_FAULT_QUEUE:
		return vhost_iommu_set_fault_queue(v, argp);
	case VHOST_IOMMU_REPORT_FAULT:
		return vhost_iommu_report_fault(v, argp);
	case VHOST_GET_FEATURES:
		features = VHOST_IOMMU_FEATURES;
		if (copy_to_user(featurep, &features, sizeof(features)))
			return -EFAULT;
		return 0;
	case VHOST_SET_FEATURES:
		if (copy_from_user(&features, featurep, sizeof(features)))
			return -EFAULT;
		return vhost_iommu_set_features(v, features);
	case VHOST_GET_FEATURES_ARRAY:
		return vhost_iommu_get_features_array(argp);
	case VHOST_SET_FEATURES_ARRAY:
		return vhost_iommu_set_features_array(v, argp);
	case VHOST_GET_BACKEND_FEATURES:
		features = VHOST_IOMMU_BACKEND_FEATURES;
		if (copy_to_user(featurep, &features, sizeof(features)))
			return -EFAULT;
		return 0;
	case VHOST_SET_BACKEND_FEATURES:
		if (copy_from_user(&features, featurep, sizeof(features)))
			return -EFAULT;
		return vhost_iommu_set_backend_features(v, features);
	case VHOST_RESET_OWNER:
		return vhost_iommu_reset_owner(v);
	case VHOST_NEW_WORKER:
	case VHOST_FREE_WORKER:
	case VHOST_ATTACH_VRING_WORKER:
	case VHOST_GET_VRING_WORKER:
		mutex_lock(&v->dev.mutex);
		ret = vhost_worker_ioctl(&v->dev, ioctl, argp);
		mutex_unlock(&v->dev.mutex);
		return ret;
	default:
		mutex_lock(&v->dev.mutex);
		ret = vhost_dev_ioctl(&v->dev, ioctl, argp);
		if (ret == -ENOIOCTLCMD)
			ret = vhost_vring_ioctl(&v->dev, ioctl, argp);
		else
			vhost_dev_flush(&v->dev);
		mutex_unlock(&v->dev.mutex);
		return ret;
	}
}

static const struct file_operations vhost_iommu_fops = {
	.owner		= THIS_MODULE,
	.open		= vhost_iommu_open,
	.release	= vhost_iommu_release,
	.read		= vhost_iommu_read,
	.write		= vhost_iommu_write,
	.poll		= vhost_iommu_poll,
	.unlocked_ioctl	= vhost_iommu_ioctl,
	.compat_ioctl	= compat_ptr_ioctl,
	.llseek		= noop_llseek,
};

static struct miscdevice vhost_iommu_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "vhost-iommu",
	.fops = &vhost_iommu_fops,
};
module_misc_device(vhost_iommu_misc);

MODULE_IMPORT_NS("IOMMUFD");
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("vhost virtio-iommu device");
MODULE_ALIAS("devname:vhost-iommu");
