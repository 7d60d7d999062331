// SPDX-License-Identifier: GPL-2.0-only
/*
 * vhost-iommu page requests: the device reads the page-request groups of an
 * iommufd fault queue, writes them to the guest's page-request queue as
 * struct virtio_iommu_page_request records, and answers a group through
 * iommufd when the guest sends PAGE_RESP on an invalidation queue.
 *
 * Groups are device state: they survive a stop (SET_RUNNING 0) and are
 * answered IOMMUFD_PAGE_RESP_INVALID by a reset, an unbind of the fault
 * queue or of the endpoint, and a close.
 */

#include <linux/file.h>
#include <linux/slab.h>
#include <linux/uio.h>

#include "iommu.h"
#include "iommu_trace.h"

/*
 * A page-request group taken from the fault queue: the cookie that answers
 * it, what the guest's PAGE_RESP names it by, and its records, @sent of
 * them delivered.
 */
struct vhost_iommu_group {
	struct list_head node;
	u32 cookie;
	u32 endpoint;
	u32 pasid;
	u32 grpid;
	bool pasid_valid;
	unsigned int sent;
	unsigned int nr;
	struct virtio_iommu_page_request recs[] __counted_by(nr);
};

/* Answer a group the guest will not answer, and free it. Under the lock. */
static void vhost_iommu_group_abort(struct vhost_iommu *v,
				    struct vhost_iommu_group *g)
{
	/* -EINVAL: iommufd answered it already (detach) */
	iommufd_fault_respond(v->prq.fault, g->cookie, IOMMU_PAGE_RESP_INVALID);
	list_del(&g->node);
	v->prq.nr_groups--;
	kfree(g);
}

static u32 vhost_iommu_rec_flags(const struct iommu_hwpt_pgfault *f)
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

/* Turn the group in pgfaults into records. Under the lock. */
static void vhost_iommu_group_add(struct vhost_iommu *v,
				  struct vhost_virtqueue *vq, unsigned int nr)
{
	const struct iommu_hwpt_pgfault *f = v->prq.pgfaults;
	struct vhost_iommu_ep *ep, *found = NULL;
	struct vhost_iommu_group *g;
	unsigned long id;
	unsigned int i;

	/* Device IDs of the bound iommufd, which the fault queue belongs to */
	xa_for_each(&v->eps, id, ep) {
		if (ep->dev_id == f->dev_id) {
			found = ep;
			break;
		}
	}
	if (!found || !vhost_has_feature(vq, VIRTIO_IOMMU_F_PAGE_REQUEST))
		goto refuse;
	g = kzalloc_flex(*g, recs, nr, GFP_KERNEL_ACCOUNT);
	if (!g)
		goto refuse;
	g->nr = nr;
	g->cookie = f->cookie;
	g->endpoint = found->id;
	g->pasid_valid = f->flags & IOMMU_PGFAULT_FLAGS_PASID_VALID;
	g->pasid = g->pasid_valid ? f->pasid : 0;
	g->grpid = f->grpid;
	for (i = 0; i < nr; i++) {
		struct virtio_iommu_page_request *rec = &g->recs[i];

		rec->reason = VIRTIO_IOMMU_FAULT_R_PAGE_REQUEST;
		rec->flags = cpu_to_le32(vhost_iommu_rec_flags(&f[i]));
		rec->endpoint = cpu_to_le32(found->id);
		rec->pasid = cpu_to_le32(g->pasid);
		rec->address = cpu_to_le64(f[i].addr);
		rec->group = cpu_to_le32(f[i].grpid);
	}
	list_add_tail(&g->node, &v->prq.groups);
	v->prq.nr_groups++;
	trace_vhost_iommu_group(g->endpoint, g->grpid, nr, -1, 0);
	return;

refuse:
	iommufd_fault_respond(v->prq.fault, f->cookie, IOMMU_PAGE_RESP_INVALID);
}

/*
 * Take groups from the fault queue up to the bound. Under the queue's mutex
 * and the lock. Return whether to run again.
 */
static bool vhost_iommu_fetch(struct vhost_iommu *v, struct vhost_virtqueue *vq)
{
	unsigned int budget = VHOST_IOMMU_MAX_GROUPS;
	unsigned int nr;
	int ret;

	if (!v->prq.fault)
		return false;
	while (v->prq.nr_groups < VHOST_IOMMU_MAX_GROUPS) {
		if (!budget--)
			return true;
		ret = iommufd_fault_fetch(v->prq.fault, v->prq.pgfaults,
					  VHOST_IOMMU_GROUP_MAX, &nr);
		/* Too large a group: iommufd answered it */
		if (ret == -E2BIG)
			continue;
		/* No memory for a cookie: the group stays queued, no wakeup */
		if (ret == -ENOMEM)
			return true;
		if (ret)
			break;
		vhost_iommu_group_add(v, vq, nr);
	}
	return false;
}

/*
 * Write the records not delivered yet into the guest's buffers, in order.
 * Under the queue's mutex and the lock.
 */
static void vhost_iommu_push(struct vhost_iommu *v, struct vhost_virtqueue *vq)
{
	const size_t rec_len = sizeof(struct virtio_iommu_page_request);
	unsigned int out, in, log_num = 0, nr_used = 0;
	struct vhost_iommu_group *g;
	struct vhost_log *log;
	struct iov_iter to;
	int head, pkts = 0;
	int len;

	log = unlikely(vhost_has_feature(vq, VHOST_F_LOG_ALL)) ? vq->log : NULL;
	list_for_each_entry(g, &v->prq.groups, node) {
		while (g->sent < g->nr) {
			if (vhost_exceeds_weight(vq, pkts, 0))
				goto out;
			head = vhost_get_vq_desc(vq, vq->iov,
						 ARRAY_SIZE(vq->iov), &out,
						 &in, log, &log_num);
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
			len = 0;
			iov_iter_init(&to, ITER_DEST, &vq->iov[out], in, rec_len);
			if (out || iov_iter_count(&to) < rec_len) {
				vq_err(vq, "vhost-iommu: bad page-request buffer\n");
			} else if (copy_to_iter(&g->recs[g->sent], rec_len,
						&to) != rec_len) {
				vq_err(vq, "vhost-iommu: faulted on a page request\n");
			} else {
				len = rec_len;
				g->sent++;
				if (unlikely(log))
					vhost_log_write(vq, log, log_num, len,
							NULL, 0);
			}
			vq->heads[nr_used].id = cpu_to_vhost32(vq, head);
			vq->heads[nr_used].len = cpu_to_vhost32(vq, len);
			nr_used++;
		}
	}
out:
	if (nr_used) {
		if (vhost_add_used_n(vq, vq->heads, NULL, nr_used))
			vq_err(vq, "vhost-iommu: cannot update the used ring\n");
		vhost_signal(&v->dev, vq);
	}
}

static void vhost_iommu_prq_handle(struct vhost_iommu *v)
{
	struct vhost_virtqueue *vq = &v->prq_vq;
	bool again;

	mutex_lock(&vq->mutex);
	if (!vhost_vq_get_backend(vq))
		goto out_unlock;
	vhost_disable_notify(&v->dev, vq);
	mutex_lock(&v->prq.lock);
	again = vhost_iommu_fetch(v, vq);
	vhost_iommu_push(v, vq);
	mutex_unlock(&v->prq.lock);
	if (again)
		vhost_poll_queue(&v->prq.poll);
out_unlock:
	mutex_unlock(&vq->mutex);
}

static void vhost_iommu_prq_kick(struct vhost_work *work)
{
	struct vhost_virtqueue *vq = container_of(work, struct vhost_virtqueue,
						  poll.work);

	vhost_iommu_prq_handle(container_of(vq->dev, struct vhost_iommu, dev));
}

static void vhost_iommu_prq_fault(struct vhost_work *work)
{
	vhost_iommu_prq_handle(container_of(work, struct vhost_iommu,
					    prq.poll.work));
}

void vhost_iommu_prq_init(struct vhost_iommu *v)
{
	v->prq_vq.handle_kick = vhost_iommu_prq_kick;
	vhost_poll_init(&v->prq.poll, vhost_iommu_prq_fault, EPOLLIN, &v->dev,
			&v->prq_vq);
}

/* Faults that arrived while stopped */
void vhost_iommu_prq_start(struct vhost_iommu *v)
{
	vhost_poll_queue(&v->prq.poll);
}

/*
 * Complete a PAGE_RESP: answer the delivered group it names through iommufd.
 * The guest's FAILURE is answered INVALID, the only refusal iommufd takes.
 * Return the status of the request.
 */
u8 vhost_iommu_page_resp(struct vhost_iommu *v, const void *req)
{
	const struct virtio_iommu_req_page_resp *resp = req;
	u32 flags = le32_to_cpu(resp->flags);
	u16 code = le16_to_cpu(resp->code);
	u8 status = VIRTIO_IOMMU_S_INVAL;
	struct vhost_iommu_group *g;
	bool pasid_valid;

	if (flags & ~VIRTIO_IOMMU_PAGE_RESP_F_PASID ||
	    code > VIRTIO_IOMMU_PAGE_RESP_FAILURE ||
	    memchr_inv(resp->reserved, 0, sizeof(resp->reserved)))
		return VIRTIO_IOMMU_S_INVAL;
	pasid_valid = flags & VIRTIO_IOMMU_PAGE_RESP_F_PASID;
	if (!pasid_valid && resp->pasid)
		return VIRTIO_IOMMU_S_INVAL;

	mutex_lock(&v->prq.lock);
	list_for_each_entry(g, &v->prq.groups, node) {
		/* The guest answers groups it has seen in full */
		if (g->sent != g->nr ||
		    g->endpoint != le32_to_cpu(resp->endpoint) ||
		    g->grpid != le32_to_cpu(resp->group) ||
		    g->pasid_valid != pasid_valid ||
		    g->pasid != le32_to_cpu(resp->pasid))
			continue;
		/* -EINVAL: iommufd answered it already (detach) */
		if (!iommufd_fault_respond(v->prq.fault, g->cookie,
					   code == VIRTIO_IOMMU_PAGE_RESP_SUCCESS ?
					   IOMMU_PAGE_RESP_SUCCESS :
					   IOMMU_PAGE_RESP_INVALID))
			status = VIRTIO_IOMMU_S_OK;
		trace_vhost_iommu_group(g->endpoint, g->grpid, g->nr, code,
					status);
		list_del(&g->node);
		/* At the bound the fault queue was left unread */
		if (v->prq.nr_groups-- == VHOST_IOMMU_MAX_GROUPS)
			vhost_poll_queue(&v->prq.poll);
		kfree(g);
		break;
	}
	mutex_unlock(&v->prq.lock);
	return status;
}

/* The endpoint is unbound: answer its groups */
void vhost_iommu_prq_drop_ep(struct vhost_iommu *v, u32 endpoint)
{
	struct vhost_iommu_group *g, *next;

	mutex_lock(&v->prq.lock);
	list_for_each_entry_safe(g, next, &v->prq.groups, node)
		if (g->endpoint == endpoint)
			vhost_iommu_group_abort(v, g);
	mutex_unlock(&v->prq.lock);
	/* Room for more groups */
	vhost_poll_queue(&v->prq.poll);
}

/* Stop serving the fault queue and answer every group. Under dev.mutex. */
void vhost_iommu_prq_unbind(struct vhost_iommu *v)
{
	struct vhost_iommu_group *g, *next;
	struct file *file;

	if (!v->prq.file)
		return;
	vhost_poll_stop(&v->prq.poll);
	vhost_dev_flush(&v->dev);
	mutex_lock(&v->prq.lock);
	list_for_each_entry_safe(g, next, &v->prq.groups, node)
		vhost_iommu_group_abort(v, g);
	iommufd_fault_unclaim(v->prq.fault);
	file = v->prq.file;
	v->prq.file = NULL;
	v->prq.fault = NULL;
	mutex_unlock(&v->prq.lock);
	fput(file);
}

bool vhost_iommu_prq_held(struct vhost_iommu *v)
{
	bool held;

	mutex_lock(&v->prq.lock);
	held = v->prq.nr_groups;
	mutex_unlock(&v->prq.lock);
	return held;
}

static long vhost_iommu_prq_bind(struct vhost_iommu *v, int fd)
{
	struct iommufd_fault *fault;
	struct file *file;
	long ret;

	if (!v->ictx)
		return -EINVAL;
	if (v->prq.file)
		return -EBUSY;
	file = fget(fd);
	if (!file)
		return -EBADF;
	/* Only a fault queue of the bound iommufd: its device IDs are ours */
	fault = iommufd_fault_from_file(v->ictx, file);
	if (IS_ERR(fault)) {
		ret = PTR_ERR(fault);
		goto err_put;
	}
	ret = iommufd_fault_claim(fault);
	if (ret)
		goto err_put;

	mutex_lock(&v->prq.lock);
	v->prq.file = file;
	v->prq.fault = fault;
	mutex_unlock(&v->prq.lock);
	ret = vhost_poll_start(&v->prq.poll, file);
	if (ret) {
		mutex_lock(&v->prq.lock);
		v->prq.file = NULL;
		v->prq.fault = NULL;
		mutex_unlock(&v->prq.lock);
		iommufd_fault_unclaim(fault);
		goto err_put;
	}
	/* Faults queued before the bind */
	vhost_poll_queue(&v->prq.poll);
	return 0;

err_put:
	fput(file);
	return ret;
}

/* VHOST_IOMMU_SET_FAULT_QUEUE, under dev.mutex as the owner */
long vhost_iommu_prq_ioctl(struct vhost_iommu *v, unsigned int ioctl,
			   void __user *argp)
{
	struct vhost_iommu_fault_queue cmd;

	if (ioctl != VHOST_IOMMU_SET_FAULT_QUEUE)
		return -ENOIOCTLCMD;
	if (copy_from_user(&cmd, argp, sizeof(cmd)))
		return -EFAULT;
	if (cmd.flags)
		return -EOPNOTSUPP;
	if (cmd.fd == -1) {
		vhost_iommu_prq_unbind(v);
		return 0;
	}
	if (cmd.fd < 0)
		return -EBADF;
	return vhost_iommu_prq_bind(v, cmd.fd);
}
