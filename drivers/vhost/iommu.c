// SPDX-License-Identifier: GPL-2.0-only
/*
 * vhost-iommu: the fast-path queues of a virtio-iommu device in the kernel.
 *
 * With VIRTIO_IOMMU_F_INVALQ a virtio-iommu device has, after its request
 * queue and event queue, a page-request queue and N invalidation queues. The
 * VMM serves the first two itself, as vhost-net leaves the control queue to
 * it, and hands the others to this device: vhost index 0 is the page-request
 * queue (virtio queue 2), vhost indices 1..N are the invalidation queues
 * (virtio queues 3..3+N-1).
 *
 * An invalidation queue carries INVALIDATE and PAGE_RESP. One worker pass
 * pops the requests of a kick, turns the INVALIDATEs into entries for the
 * domain's vIOMMU (one for its IOTLB, one per endpoint for its PASID table
 * and device TLB), hands them to iommufd in one call and completes every
 * request in ring order. Nothing popped is kept after the pass.
 *
 * See Documentation/userspace-api/vhost-iommu.rst.
 */

#include <linux/file.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/sched/clock.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/uio.h>

#include "iommu.h"

#define CREATE_TRACE_POINTS
#include "iommu_trace.h"

/* Work per worker pass, so that one queue does not starve the others */
#define VHOST_IOMMU_WEIGHT	0x80000
#define VHOST_IOMMU_PKT_WEIGHT	256

static const int vhost_iommu_bits[] = {
	VIRTIO_F_VERSION_1,
	VIRTIO_RING_F_INDIRECT_DESC,
	VIRTIO_RING_F_EVENT_IDX,
	VHOST_F_LOG_ALL,
	VIRTIO_IOMMU_F_ATTACH_TABLE,
	VIRTIO_IOMMU_F_INVALQ,
};

#define VHOST_IOMMU_FEATURES						\
	(VHOST_FEATURES_U64(vhost_iommu_bits, 0) |			\
	 (IS_ENABLED(CONFIG_VHOST_IOMMU_PAGE_REQUEST) ?			\
	  BIT_ULL(VIRTIO_IOMMU_F_PAGE_REQUEST) : 0))
#define VHOST_IOMMU_BACKEND_FEATURES 0ULL

/* The status of an INVALIDATE whose entry the driver refused */
static u8 vhost_iommu_status(int err)
{
	switch (err) {
	case 0:
		return VIRTIO_IOMMU_S_OK;
	case -EOPNOTSUPP:
		return VIRTIO_IOMMU_S_UNSUPP;
	case -EINVAL:
	case -EIO:
		return VIRTIO_IOMMU_S_INVAL;
	case -ENOENT:
		return VIRTIO_IOMMU_S_NOENT;
	case -ENOMEM:
		return VIRTIO_IOMMU_S_NOMEM;
	default:
		return VIRTIO_IOMMU_S_DEVERR;
	}
}

/* Write the tail of a request, log it, and collect its used entry */
static void vhost_iommu_complete(struct vhost_virtqueue *vq,
				 struct vhost_iommu_req *r,
				 unsigned int *nr_used)
{
	struct virtio_iommu_req_tail tail = { .status = r->status };
	unsigned int len = 0;
	struct iov_iter to;

	if (r->act != VHOST_IOMMU_UNUSED) {
		iov_iter_init(&to, ITER_DEST, r->iov, r->nr_iov, sizeof(tail));
		if (copy_to_iter(&tail, sizeof(tail), &to) == sizeof(tail)) {
			len = sizeof(tail);
			if (unlikely(r->nr_log))
				vhost_log_write(vq, r->log, r->nr_log, len,
						NULL, 0);
		} else {
			vq_err(vq, "vhost-iommu: faulted on a tail\n");
		}
	}
	vq->heads[*nr_used].id = cpu_to_vhost32(vq, r->head);
	vq->heads[*nr_used].len = cpu_to_vhost32(vq, len);
	(*nr_used)++;
}

/*
 * Hand the entries from @first on to the driver in one call. @ok: the end of
 * the entries it handled. Return its error.
 */
static int vhost_iommu_invalidate(struct vhost_iommu *v,
				  struct vhost_iommu_invalq *q,
				  unsigned int first, unsigned int *ok)
{
	u32 left = q->nr_entries - first;
	u32 num = left;
	int err;

	if (!num) {
		*ok = first;
		return 0;
	}
	err = iommufd_viommu_invalidate_virtio(q->viommu, &q->entries[first],
					       &num);
	*ok = first + (err ? min(num, left) : left);
	trace_vhost_iommu_invalidate(VHOST_IOMMU_VQ_INVAL + (q - v->invalqs),
				     left, *ok - first, err);
	return err;
}

/*
 * Hand the batch to the driver, one call per run of entries, and complete
 * every request of the batch in ring order: an INVALIDATE succeeds if the
 * driver handled all its entries. When an entry fails, its request takes the
 * error and the entries behind it are handed again.
 */
static void vhost_iommu_flush(struct vhost_iommu *v,
			      struct vhost_iommu_invalq *q)
{
	struct vhost_virtqueue *vq = &q->vq;
	unsigned int i, ok = 0, sent = 0, nr_used = 0;
	int err = 0;

	for (i = 0; i < q->nr_reqs; i++) {
		struct vhost_iommu_req *r = &q->reqs[i];

		if (r->act == VHOST_IOMMU_INVAL) {
			/* Not handed yet: hand it and everything behind it */
			if (r->first >= sent) {
				err = vhost_iommu_invalidate(v, q, r->first, &ok);
				sent = q->nr_entries;
			}
			if (r->first + r->nr <= ok) {
				r->status = VIRTIO_IOMMU_S_OK;
			} else {
				r->status = vhost_iommu_status(err);
				sent = r->first + r->nr;
			}
		}
		vhost_iommu_complete(vq, r, &nr_used);
	}

	if (nr_used) {
		if (vhost_add_used_n(vq, vq->heads, NULL, nr_used))
			vq_err(vq, "vhost-iommu: cannot update the used ring\n");
		vhost_signal(&v->dev, vq);
	}
	q->nr_reqs = 0;
	q->nr_entries = 0;
	q->viommu = NULL;
}

/*
 * Add a popped request to the batch, with the buffers and guest addresses
 * of its tail, which must fit in the first device-writable bytes.
 */
static struct vhost_iommu_req *
vhost_iommu_add_req(struct vhost_iommu_invalq *q, unsigned int head,
		    unsigned int out, unsigned int in,
		    const struct vhost_log *log, unsigned int log_num)
{
	const struct iovec *iov = &q->vq.iov[out];
	struct vhost_iommu_req *r = &q->reqs[q->nr_reqs++];
	size_t len = 0;
	unsigned int i;

	r->head = head;
	r->act = VHOST_IOMMU_UNUSED;
	r->nr_iov = 0;
	r->nr_log = 0;
	for (i = 0; i < in && len < sizeof(struct virtio_iommu_req_tail); i++) {
		if (!iov[i].iov_len)
			continue;
		r->iov[r->nr_iov++] = iov[i];
		len += iov[i].iov_len;
	}
	for (i = 0, len = 0; log && i < log_num &&
	     len < sizeof(struct virtio_iommu_req_tail); i++) {
		if (!log[i].len)
			continue;
		r->log[r->nr_log++] = log[i];
		len += log[i].len;
	}
	return r;
}

/*
 * Turn an INVALIDATE on a bound domain into driver entries: one domain entry
 * for the IOTLB unless the request names only the PASID tables, and one
 * endpoint entry per endpoint of the domain. iommufd checks the fields.
 */
static unsigned int vhost_iommu_fan_out(struct iommu_viommu_invalidate_virtio *p,
					const u8 *buf,
					const struct vhost_iommu_vdevs *vdevs)
{
	struct iommu_viommu_invalidate_virtio e = {};
	unsigned int i, nr = 0;

	static_assert(IOMMU_VIRTIO_INVAL_REQ_OFFSET + IOMMU_VIRTIO_INVAL_REQ_LEN <=
		      sizeof(e));
	static_assert(sizeof(struct virtio_iommu_req_head) +
		      IOMMU_VIRTIO_INVAL_REQ_LEN <=
		      offsetof(struct virtio_iommu_req_invalidate, tail));
	memcpy((u8 *)&e + IOMMU_VIRTIO_INVAL_REQ_OFFSET,
	       buf + sizeof(struct virtio_iommu_req_head),
	       IOMMU_VIRTIO_INVAL_REQ_LEN);

	if (e.caches != IOMMU_VIRTIO_INVAL_C_PASID) {
		p[nr] = e;
		p[nr++].caches &= ~IOMMU_VIRTIO_INVAL_C_PASID;
	}
	for (i = 0; i < vdevs->nr; i++) {
		p[nr] = e;
		p[nr].flags = IOMMU_VIRTIO_INVAL_HOST_F_VDEV;
		p[nr++].vdev_id = vdevs->id[i];
	}
	return nr;
}

/*
 * Parse one request into the batch. A request that cannot be parsed (no
 * head, no room for a tail, an unknown type, or a type that belongs on the
 * request queue) is returned unwritten. Return the size of the request.
 */
static size_t vhost_iommu_handle_req(struct vhost_iommu *v,
				     struct vhost_iommu_invalq *q,
				     unsigned int head, unsigned int out,
				     unsigned int in,
				     const struct vhost_log *log,
				     unsigned int log_num)
{
	struct vhost_virtqueue *vq = &q->vq;
	u8 buf[sizeof(struct virtio_iommu_req_invalidate)] __aligned(8);
	const struct virtio_iommu_req_invalidate *inv = (const void *)buf;
	const struct vhost_iommu_vdevs *vdevs = NULL;
	size_t out_len, in_len, req_len = 0;
	struct vhost_iommu_dom *dom = NULL;
	struct vhost_iommu_req *r;
	struct iov_iter from;
	unsigned int nr = 0;

	out_len = iov_length(vq->iov, out);
	in_len = iov_length(&vq->iov[out], in);
	if (out_len >= sizeof(struct virtio_iommu_req_head) &&
	    in_len >= sizeof(struct virtio_iommu_req_tail)) {
		iov_iter_init(&from, ITER_SOURCE, vq->iov, out, out_len);
		if (!copy_from_iter_full(buf, min(out_len, sizeof(buf)), &from)) {
			vq_err(vq, "vhost-iommu: faulted on a request\n");
		} else if (buf[0] == VIRTIO_IOMMU_T_INVALIDATE) {
			req_len = offsetof(struct virtio_iommu_req_invalidate,
					   tail);
			if (out_len >= req_len)
				dom = xa_load(&v->doms, le32_to_cpu(inv->domain));
			if (dom) {
				vdevs = srcu_dereference(dom->vdevs, &v->srcu);
				nr = 1 + vdevs->nr;
			}
		} else if (buf[0] == VIRTIO_IOMMU_T_PAGE_RESP &&
			   vhost_has_feature(vq, VIRTIO_IOMMU_F_PAGE_REQUEST)) {
			req_len = offsetof(struct virtio_iommu_req_page_resp,
					   tail);
		}
	} else {
		vq_err(vq, "vhost-iommu: bad request sizes %zu/%zu\n",
		       out_len, in_len);
	}

	/*
	 * Earlier requests complete first: a PAGE_RESP after the INVALIDATEs
	 * before it, an INVALIDATE with another vIOMMU's after the batch.
	 */
	if (q->nr_reqs == VHOST_IOMMU_BATCH_REQS ||
	    q->nr_entries + nr > VHOST_IOMMU_BATCH_ENTRIES ||
	    (dom && q->viommu && q->viommu != dom->viommu) ||
	    (req_len && buf[0] == VIRTIO_IOMMU_T_PAGE_RESP))
		vhost_iommu_flush(v, q);

	r = vhost_iommu_add_req(q, head, out, in, log, log_num);
	if (!req_len)
		return out_len;
	r->act = VHOST_IOMMU_STATUS;
	if (out_len < req_len) {
		r->status = VIRTIO_IOMMU_S_INVAL;
	} else if (buf[0] == VIRTIO_IOMMU_T_PAGE_RESP) {
		r->status = vhost_iommu_page_resp(v, buf);
	} else if (!dom) {
		r->status = VIRTIO_IOMMU_S_NOENT;
	} else {
		r->act = VHOST_IOMMU_INVAL;
		r->first = q->nr_entries;
		r->nr = vhost_iommu_fan_out(&q->entries[r->first], buf, vdevs);
		q->nr_entries += r->nr;
		q->viommu = dom->viommu;
	}
	return out_len;
}

static unsigned long vhost_iommu_busy_clock(void)
{
	return local_clock() >> 10;
}

/*
 * VHOST_SET_VRING_BUSYLOOP_TIMEOUT, as vhost-net: when the ring runs empty,
 * complete what was popped, then watch the ring for up to the timeout (in
 * units of 1024 ns) before waiting for a kick. While the worker watches,
 * the guest is told not to notify: a driver that polls for its completions
 * then submits an INVALIDATE with no exit at all. The wait ends early for
 * other work of the worker, a reschedule, a signal, or a call of the VMM
 * (an ioctl, the release), which may need the queue's mutex: the VMM's stop
 * never waits for a watch to time out. Return whether the ring has new
 * requests.
 */
static bool vhost_iommu_busy_poll(struct vhost_iommu *v,
				  struct vhost_iommu_invalq *q)
{
	struct vhost_virtqueue *vq = &q->vq;
	unsigned long endtime;
	bool found = false;

	if (!vq->busyloop_timeout)
		return false;
	vhost_iommu_flush(v, q);
	/* One CPU's clock; reading the ring may fault, so no preempt_disable() */
	migrate_disable();
	endtime = vhost_iommu_busy_clock() + vq->busyloop_timeout;
	while (!need_resched() && !signal_pending(current) &&
	       !time_after(vhost_iommu_busy_clock(), endtime) &&
	       !vhost_vq_has_work(vq) && !atomic_read(&v->ctl_calls)) {
		if (!vhost_vq_avail_empty(&v->dev, vq)) {
			found = true;
			break;
		}
		cpu_relax();
	}
	migrate_enable();
	return found;
}

static void vhost_iommu_handle_kick(struct vhost_work *work)
{
	struct vhost_virtqueue *vq = container_of(work, struct vhost_virtqueue,
						  poll.work);
	struct vhost_iommu_invalq *q = container_of(vq, struct vhost_iommu_invalq,
						    vq);
	struct vhost_iommu *v = container_of(vq->dev, struct vhost_iommu, dev);
	unsigned int out, in, log_num = 0;
	struct vhost_log *log;
	size_t total_len = 0;
	int head, pkts = 0;
	int idx;

	mutex_lock(&vq->mutex);
	if (!vhost_vq_get_backend(vq))
		goto out_unlock;

	idx = srcu_read_lock(&v->srcu);
	log = unlikely(vhost_has_feature(vq, VHOST_F_LOG_ALL)) ? vq->log : NULL;
	vhost_disable_notify(&v->dev, vq);
	do {
		head = vhost_get_vq_desc(vq, vq->iov, ARRAY_SIZE(vq->iov),
					 &out, &in, log, &log_num);
		/* On error, stop handling until the next kick */
		if (unlikely(head < 0))
			break;
		/* Nothing new? Wait for eventfd to tell us they refilled */
		if (head == vq->num) {
			if (vhost_iommu_busy_poll(v, q))
				continue;
			if (unlikely(vhost_enable_notify(&v->dev, vq))) {
				vhost_disable_notify(&v->dev, vq);
				continue;
			}
			break;
		}
		total_len += vhost_iommu_handle_req(v, q, head, out, in, log,
						    log_num);
	} while (likely(!vhost_exceeds_weight(vq, ++pkts, total_len)));

	/* Nothing popped stays behind the pass */
	vhost_iommu_flush(v, q);
	srcu_read_unlock(&v->srcu, idx);
out_unlock:
	mutex_unlock(&vq->mutex);
}

static void vhost_iommu_stop(struct vhost_iommu *v)
{
	int i;

	for (i = 0; i < v->dev.nvqs; i++) {
		struct vhost_virtqueue *vq = v->dev.vqs[i];

		mutex_lock(&vq->mutex);
		vhost_vq_set_backend(vq, NULL);
		mutex_unlock(&vq->mutex);
	}
	vhost_dev_flush(&v->dev);
}

/* Serve every queue that has a ring; the others stay idle */
static int vhost_iommu_start(struct vhost_iommu *v)
{
	int ret = 0;
	int i;

	for (i = 0; i < v->dev.nvqs; i++) {
		struct vhost_virtqueue *vq = v->dev.vqs[i];

		mutex_lock(&vq->mutex);
		if (!vq->handle_kick || !vq->desc || vhost_vq_get_backend(vq))
			goto next;
		if (!vhost_vq_access_ok(vq)) {
			ret = -EFAULT;
		} else {
			vhost_vq_set_backend(vq, v);
			ret = vhost_vq_init_access(vq);
			if (ret)
				vhost_vq_set_backend(vq, NULL);
		}
next:
		mutex_unlock(&vq->mutex);
		if (ret) {
			vhost_iommu_stop(v);
			return ret;
		}
		/* What the guest queued while stopped */
		if (vq->handle_kick)
			vhost_poll_queue(&vq->poll);
	}
	vhost_iommu_prq_start(v);
	return 0;
}

static void vhost_iommu_free_dom(struct vhost_iommu_dom *dom)
{
	iommufd_viommu_put_ref(dom->viommu);
	kfree(rcu_dereference_protected(dom->vdevs, true));
	kfree(dom);
}

/* Drop every binding. The device is stopped and flushed. */
static void vhost_iommu_unbind_all(struct vhost_iommu *v)
{
	struct vhost_iommu_dom *dom;
	struct vhost_iommu_ep *ep;
	unsigned long id;

	vhost_iommu_prq_unbind(v);
	mutex_lock(&v->prq.lock);
	xa_for_each(&v->eps, id, ep) {
		xa_erase(&v->eps, id);
		kfree(ep);
	}
	mutex_unlock(&v->prq.lock);
	/* Stopped: no worker reads the domains */
	xa_for_each(&v->doms, id, dom) {
		xa_erase(&v->doms, id);
		vhost_iommu_free_dom(dom);
	}
	if (v->ictx) {
		iommufd_ctx_put(v->ictx);
		v->ictx = NULL;
	}
}

static int vhost_iommu_open(struct inode *inode, struct file *f)
{
	struct vhost_virtqueue **vqs;
	struct vhost_iommu *v;
	int i;

	/* The queues hold large arrays: fall back to vmalloc if needed */
	v = kvzalloc_obj(*v, GFP_KERNEL_ACCOUNT | __GFP_RETRY_MAYFAIL);
	if (!v)
		return -ENOMEM;
	vqs = kmalloc_objs(*vqs, VHOST_IOMMU_NVQS, GFP_KERNEL_ACCOUNT);
	if (!vqs)
		goto err_free;
	if (init_srcu_struct(&v->srcu))
		goto err_free_vqs;

	xa_init(&v->doms);
	xa_init(&v->eps);
	mutex_init(&v->prq.lock);
	INIT_LIST_HEAD(&v->prq.groups);
	vqs[VHOST_IOMMU_VQ_PRQ] = &v->prq_vq;
	for (i = 0; i < VHOST_IOMMU_MAX_INVALQ; i++) {
		vqs[VHOST_IOMMU_VQ_INVAL + i] = &v->invalqs[i].vq;
		v->invalqs[i].vq.handle_kick = vhost_iommu_handle_kick;
	}
	vhost_iommu_prq_init(v);
	vhost_dev_init(&v->dev, vqs, VHOST_IOMMU_NVQS, UIO_MAXIOV,
		       VHOST_IOMMU_PKT_WEIGHT, VHOST_IOMMU_WEIGHT, true, NULL);
	f->private_data = v;
	return 0;

err_free_vqs:
	kfree(vqs);
err_free:
	kvfree(v);
	return -ENOMEM;
}

static int vhost_iommu_release(struct inode *inode, struct file *f)
{
	struct vhost_iommu *v = f->private_data;

	atomic_inc(&v->ctl_calls);
	vhost_iommu_stop(v);
	vhost_iommu_unbind_all(v);
	vhost_dev_stop(&v->dev);
	vhost_dev_cleanup(&v->dev);
	xa_destroy(&v->doms);
	xa_destroy(&v->eps);
	mutex_destroy(&v->prq.lock);
	cleanup_srcu_struct(&v->srcu);
	kfree(v->dev.vqs);
	kvfree(v);
	return 0;
}

/* VHOST_IOMMU_RESET and VHOST_RESET_OWNER: stop and drop every binding */
static long vhost_iommu_reset(struct vhost_iommu *v, bool owner)
{
	struct vhost_iotlb *umem = NULL;
	long ret;

	mutex_lock(&v->dev.mutex);
	ret = vhost_dev_check_owner(&v->dev);
	if (ret)
		goto out_unlock;
	if (owner) {
		umem = vhost_dev_reset_owner_prepare();
		if (!umem) {
			ret = -ENOMEM;
			goto out_unlock;
		}
	}
	vhost_iommu_stop(v);
	vhost_iommu_unbind_all(v);
	if (owner) {
		vhost_dev_stop(&v->dev);
		vhost_dev_reset_owner(&v->dev, umem);
	}
out_unlock:
	mutex_unlock(&v->dev.mutex);
	return ret;
}

static int vhost_iommu_set_features(struct vhost_iommu *v, u64 features)
{
	int ret = 0;
	int i;

	if (features & ~VHOST_IOMMU_FEATURES)
		return -EOPNOTSUPP;

	mutex_lock(&v->dev.mutex);
	if (features & BIT_ULL(VHOST_F_LOG_ALL)) {
		if (!vhost_log_access_ok(&v->dev)) {
			ret = -EFAULT;
			goto out_unlock;
		}
		/* Page-request groups live in the device: they cannot move */
		if (vhost_iommu_prq_held(v)) {
			ret = -EBUSY;
			goto out_unlock;
		}
	}
	for (i = 0; i < v->dev.nvqs; i++) {
		struct vhost_virtqueue *vq = v->dev.vqs[i];

		mutex_lock(&vq->mutex);
		vq->acked_features = features;
		mutex_unlock(&vq->mutex);
	}
out_unlock:
	mutex_unlock(&v->dev.mutex);
	return ret;
}

static long vhost_iommu_set_iommufd(struct vhost_iommu *v,
				    const struct vhost_iommu_iommufd *cmd)
{
	struct iommufd_ctx *ictx;

	if (cmd->flags)
		return -EOPNOTSUPP;
	if (cmd->fd == -1) {
		if (!xa_empty(&v->doms))
			return -EBUSY;
		/* Its fault queue's device IDs mean nothing to another one */
		vhost_iommu_prq_unbind(v);
		if (v->ictx)
			iommufd_ctx_put(v->ictx);
		v->ictx = NULL;
		return 0;
	}
	if (cmd->fd < 0)
		return -EBADF;
	if (v->ictx)
		return -EBUSY;
	ictx = iommufd_ctx_from_fd(cmd->fd);
	if (IS_ERR(ictx))
		return PTR_ERR(ictx);
	v->ictx = ictx;
	return 0;
}

static long vhost_iommu_bind_domain(struct vhost_iommu *v,
				    const struct vhost_iommu_domain *cmd)
{
	struct vhost_iommu_vdevs *vdevs = NULL;
	struct iommufd_viommu *viommu;
	struct vhost_iommu_dom *dom;
	u32 num = 0;
	long ret;

	if (!v->ictx)
		return -EINVAL;
	if (xa_load(&v->doms, cmd->domain))
		return -EEXIST;

	viommu = iommufd_viommu_get_by_id(v->ictx, cmd->viommu_id);
	if (IS_ERR(viommu))
		return PTR_ERR(viommu);
	/* Refuse a vIOMMU that does not take virtio invalidations */
	ret = iommufd_viommu_invalidate_virtio(viommu, NULL, &num);
	if (ret)
		goto err_put;
	dom = kzalloc_obj(*dom, GFP_KERNEL_ACCOUNT);
	if (!dom) {
		ret = -ENOMEM;
		goto err_put;
	}
	vdevs = kzalloc_flex(*vdevs, id, 0, GFP_KERNEL_ACCOUNT);
	if (!vdevs) {
		ret = -ENOMEM;
		goto err_free;
	}
	dom->id = cmd->domain;
	dom->viommu = viommu;
	RCU_INIT_POINTER(dom->vdevs, vdevs);
	ret = xa_insert(&v->doms, cmd->domain, dom, GFP_KERNEL_ACCOUNT);
	if (ret)
		goto err_free;
	return 0;

err_free:
	kfree(vdevs);
	kfree(dom);
err_put:
	iommufd_viommu_put_ref(viommu);
	return ret;
}

static long vhost_iommu_set_domain(struct vhost_iommu *v,
				   const struct vhost_iommu_domain *cmd)
{
	struct vhost_iommu_dom *dom;
	struct vhost_iommu_ep *ep;
	unsigned long id;

	if (cmd->reserved)
		return -EINVAL;
	if (cmd->flags & ~VHOST_IOMMU_F_UNBIND)
		return -EOPNOTSUPP;
	if (!(cmd->flags & VHOST_IOMMU_F_UNBIND))
		return vhost_iommu_bind_domain(v, cmd);

	if (cmd->viommu_id)
		return -EINVAL;
	dom = xa_load(&v->doms, cmd->domain);
	if (!dom)
		return -ENOENT;
	xa_for_each(&v->eps, id, ep)
		if (ep->domain == cmd->domain)
			return -EBUSY;
	xa_erase(&v->doms, cmd->domain);
	synchronize_srcu(&v->srcu);
	vhost_iommu_free_dom(dom);
	return 0;
}

/* Publish the vDEVICE IDs of the domain's endpoints but @skip */
static int vhost_iommu_update_vdevs(struct vhost_iommu *v,
				    struct vhost_iommu_dom *dom,
				    const struct vhost_iommu_ep *skip)
{
	struct vhost_iommu_vdevs *old, *new;
	struct vhost_iommu_ep *ep;
	unsigned int nr = 0;
	unsigned long id;

	old = rcu_dereference_protected(dom->vdevs,
					lockdep_is_held(&v->dev.mutex));
	new = kzalloc_flex(*new, id, old->nr + 1, GFP_KERNEL_ACCOUNT);
	if (!new)
		return -ENOMEM;
	xa_for_each(&v->eps, id, ep)
		if (ep->domain == dom->id && ep != skip && nr <= old->nr)
			new->id[nr++] = ep->vdev_id;
	new->nr = nr;
	rcu_assign_pointer(dom->vdevs, new);
	synchronize_srcu(&v->srcu);
	kfree(old);
	return 0;
}

static long vhost_iommu_unbind_endpoint(struct vhost_iommu *v,
					const struct vhost_iommu_endpoint *cmd)
{
	struct vhost_iommu_ep *ep;
	long ret;

	if (cmd->domain || cmd->dev_id || cmd->vdev_id)
		return -EINVAL;
	ep = xa_load(&v->eps, cmd->endpoint);
	if (!ep)
		return -ENOENT;
	ret = vhost_iommu_update_vdevs(v, xa_load(&v->doms, ep->domain), ep);
	if (ret)
		return ret;
	mutex_lock(&v->prq.lock);
	xa_erase(&v->eps, cmd->endpoint);
	mutex_unlock(&v->prq.lock);
	/* The guest detached it: nobody answers its page requests */
	vhost_iommu_prq_drop_ep(v, cmd->endpoint);
	kfree(ep);
	return 0;
}

static long vhost_iommu_set_endpoint(struct vhost_iommu *v,
				     const struct vhost_iommu_endpoint *cmd)
{
	struct vhost_iommu_dom *dom;
	struct vhost_iommu_ep *ep;
	long ret;

	if (cmd->reserved)
		return -EINVAL;
	if (cmd->flags & ~VHOST_IOMMU_F_UNBIND)
		return -EOPNOTSUPP;
	if (cmd->flags & VHOST_IOMMU_F_UNBIND)
		return vhost_iommu_unbind_endpoint(v, cmd);

	dom = xa_load(&v->doms, cmd->domain);
	if (!dom)
		return -ENOENT;
	if (xa_load(&v->eps, cmd->endpoint))
		return -EEXIST;
	if (rcu_dereference_protected(dom->vdevs, true)->nr >= VHOST_IOMMU_MAX_EPS)
		return -ENOSPC;
	/* Behind another vIOMMU its entries would be skipped as stale */
	if (!iommufd_viommu_has_vdevice(dom->viommu, cmd->vdev_id))
		return -EXDEV;

	ep = kzalloc_obj(*ep, GFP_KERNEL_ACCOUNT);
	if (!ep)
		return -ENOMEM;
	ep->id = cmd->endpoint;
	ep->domain = cmd->domain;
	ep->dev_id = cmd->dev_id;
	ep->vdev_id = cmd->vdev_id;
	mutex_lock(&v->prq.lock);
	ret = xa_insert(&v->eps, ep->id, ep, GFP_KERNEL_ACCOUNT);
	mutex_unlock(&v->prq.lock);
	if (ret)
		goto err_free;
	ret = vhost_iommu_update_vdevs(v, dom, NULL);
	if (ret)
		goto err_erase;
	return 0;

err_erase:
	mutex_lock(&v->prq.lock);
	xa_erase(&v->eps, ep->id);
	mutex_unlock(&v->prq.lock);
err_free:
	kfree(ep);
	return ret;
}

/* The device's own ioctls, under dev.mutex as the owner */
static long vhost_iommu_dev_ioctl(struct vhost_iommu *v, unsigned int ioctl,
				  void __user *argp)
{
	union {
		struct vhost_iommu_iommufd fd;
		struct vhost_iommu_domain dom;
		struct vhost_iommu_endpoint ep;
		int running;
	} cmd;

	switch (ioctl) {
	case VHOST_IOMMU_SET_IOMMUFD:
		if (copy_from_user(&cmd.fd, argp, sizeof(cmd.fd)))
			return -EFAULT;
		return vhost_iommu_set_iommufd(v, &cmd.fd);
	case VHOST_IOMMU_SET_DOMAIN:
		if (copy_from_user(&cmd.dom, argp, sizeof(cmd.dom)))
			return -EFAULT;
		return vhost_iommu_set_domain(v, &cmd.dom);
	case VHOST_IOMMU_SET_ENDPOINT:
		if (copy_from_user(&cmd.ep, argp, sizeof(cmd.ep)))
			return -EFAULT;
		return vhost_iommu_set_endpoint(v, &cmd.ep);
	case VHOST_IOMMU_SET_RUNNING:
		if (copy_from_user(&cmd.running, argp, sizeof(cmd.running)))
			return -EFAULT;
		if (cmd.running == 1)
			return vhost_iommu_start(v);
		if (cmd.running)
			return -EINVAL;
		vhost_iommu_stop(v);
		return 0;
	default:
		return vhost_iommu_prq_ioctl(v, ioctl, argp);
	}
}

static long vhost_iommu_call(struct vhost_iommu *v, unsigned int ioctl,
			     void __user *argp)
{
	u64 features;
	long ret;

	switch (ioctl) {
	case VHOST_GET_FEATURES:
		features = VHOST_IOMMU_FEATURES;
		if (copy_to_user(argp, &features, sizeof(features)))
			return -EFAULT;
		return 0;
	case VHOST_SET_FEATURES:
		if (copy_from_user(&features, argp, sizeof(features)))
			return -EFAULT;
		return vhost_iommu_set_features(v, features);
	case VHOST_GET_BACKEND_FEATURES:
		features = VHOST_IOMMU_BACKEND_FEATURES;
		if (copy_to_user(argp, &features, sizeof(features)))
			return -EFAULT;
		return 0;
	case VHOST_SET_BACKEND_FEATURES:
		if (copy_from_user(&features, argp, sizeof(features)))
			return -EFAULT;
		if (features & ~VHOST_IOMMU_BACKEND_FEATURES)
			return -EOPNOTSUPP;
		vhost_set_backend_features(&v->dev, features);
		return 0;
	case VHOST_IOMMU_RESET:
		return vhost_iommu_reset(v, false);
	case VHOST_RESET_OWNER:
		return vhost_iommu_reset(v, true);
	case VHOST_NEW_WORKER:
	case VHOST_FREE_WORKER:
	case VHOST_ATTACH_VRING_WORKER:
	case VHOST_GET_VRING_WORKER:
		mutex_lock(&v->dev.mutex);
		ret = vhost_worker_ioctl(&v->dev, ioctl, argp);
		mutex_unlock(&v->dev.mutex);
		return ret;
	}

	mutex_lock(&v->dev.mutex);
	if (_IOC_TYPE(ioctl) == VHOST_VIRTIO && _IOC_NR(ioctl) >= 0x50 &&
	    _IOC_NR(ioctl) <= 0x5f) {
		ret = vhost_dev_check_owner(&v->dev);
		if (!ret)
			ret = vhost_iommu_dev_ioctl(v, ioctl, argp);
	} else {
		ret = vhost_dev_ioctl(&v->dev, ioctl, argp);
		if (ret == -ENOIOCTLCMD)
			ret = vhost_vring_ioctl(&v->dev, ioctl, argp);
		else
			vhost_dev_flush(&v->dev);
	}
	mutex_unlock(&v->dev.mutex);
	return ret;
}

static long vhost_iommu_ioctl(struct file *f, unsigned int ioctl,
			      unsigned long arg)
{
	struct vhost_iommu *v = f->private_data;
	long ret;

	atomic_inc(&v->ctl_calls);
	ret = vhost_iommu_call(v, ioctl, (void __user *)arg);
	atomic_dec(&v->ctl_calls);
	return ret;
}

static const struct file_operations vhost_iommu_fops = {
	.owner		= THIS_MODULE,
	.open		= vhost_iommu_open,
	.release	= vhost_iommu_release,
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
MODULE_DESCRIPTION("vhost virtio-iommu device: invalidation and page-request queues");
MODULE_ALIAS("devname:vhost-iommu");
