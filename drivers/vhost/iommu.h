/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * vhost-iommu: what the invalidation queues (iommu.c) and the page-request
 * queue (iommu_prq.c) share.
 */
#ifndef _VHOST_IOMMU_H
#define _VHOST_IOMMU_H

#include <linux/iommufd.h>
#include <linux/list.h>
#include <linux/mutex.h>
#include <linux/srcu.h>
#include <linux/vhost.h>
#include <linux/virtio_iommu.h>
#include <linux/xarray.h>

#include "vhost.h"

/* vhost index 0: the page-request queue (virtio queue 2) */
#define VHOST_IOMMU_VQ_PRQ	0
/* vhost indices 1..N: the invalidation queues (virtio queues 3..3+N-1) */
#define VHOST_IOMMU_VQ_INVAL	1
#define VHOST_IOMMU_NVQS	(1 + VHOST_IOMMU_MAX_INVALQ)

/*
 * Max number of requests and of driver entries in one batch: one INVALIDATE
 * takes one domain entry and one entry per endpoint of its domain.
 */
#define VHOST_IOMMU_BATCH_REQS		64
#define VHOST_IOMMU_MAX_EPS		64
#define VHOST_IOMMU_BATCH_ENTRIES	(2 * VHOST_IOMMU_BATCH_REQS)

/* A tail is 4 bytes: at most 4 non-empty buffers hold it */
#define VHOST_IOMMU_TAIL_IOV	4

/* Max number of page-request groups held (delivered or not, unanswered) */
#define VHOST_IOMMU_MAX_GROUPS	64
/* Max number of page requests in one group; larger groups are refused */
#define VHOST_IOMMU_GROUP_MAX	32

/**
 * struct vhost_iommu_ep - An endpoint bound with VHOST_IOMMU_SET_ENDPOINT
 * @id: The virtio endpoint ID
 * @domain: The virtio domain ID it is attached to
 * @dev_id: Its iommufd device ID (page requests name it)
 * @vdev_id: The virtual ID of its vDEVICE
 */
struct vhost_iommu_ep {
	u32 id;
	u32 domain;
	u32 dev_id;
	u32 vdev_id;
};

/**
 * struct vhost_iommu_vdevs - The vDEVICE IDs of a domain's endpoints
 * @nr: Number of IDs
 * @id: The IDs
 *
 * Replaced as a whole on every bind and unbind, read under the device's SRCU.
 */
struct vhost_iommu_vdevs {
	unsigned int nr;
	u32 id[] __counted_by(nr);
};

/**
 * struct vhost_iommu_dom - A domain bound with VHOST_IOMMU_SET_DOMAIN
 * @id: The virtio domain ID
 * @viommu: The vIOMMU its INVALIDATEs go to; the device holds a reference
 * @vdevs: Its endpoints' vDEVICEs (SRCU)
 */
struct vhost_iommu_dom {
	u32 id;
	struct iommufd_viommu *viommu;
	struct vhost_iommu_vdevs __rcu *vdevs;
};

/**
 * enum vhost_iommu_act - What completing a popped request writes
 * @VHOST_IOMMU_UNUSED: Nothing: used length 0 (the request was not parsed)
 * @VHOST_IOMMU_STATUS: A tail with the status decided at parse time
 * @VHOST_IOMMU_INVAL: A tail with the status of its driver entries
 */
enum vhost_iommu_act {
	VHOST_IOMMU_UNUSED,
	VHOST_IOMMU_STATUS,
	VHOST_IOMMU_INVAL,
};

/**
 * struct vhost_iommu_req - A request popped in this pass, not completed yet
 * @head: Its descriptor head
 * @act: enum vhost_iommu_act
 * @status: The status of its tail
 * @nr_iov: Number of entries in @iov
 * @nr_log: Number of entries in @log
 * @first: Index of its first entry in the batch (VHOST_IOMMU_INVAL)
 * @nr: Number of its entries (VHOST_IOMMU_INVAL)
 * @iov: The guest buffers that hold its tail
 * @log: Their guest addresses, for VHOST_F_LOG_ALL
 */
struct vhost_iommu_req {
	unsigned int head;
	u8 act;
	u8 status;
	u8 nr_iov;
	u8 nr_log;
	u16 first;
	u16 nr;
	struct iovec iov[VHOST_IOMMU_TAIL_IOV];
	struct vhost_log log[VHOST_IOMMU_TAIL_IOV];
};

/**
 * struct vhost_iommu_invalq - An invalidation queue
 * @vq: The vhost queue
 * @viommu: The vIOMMU of every entry in @entries
 * @nr_reqs: Number of requests in @reqs
 * @nr_entries: Number of entries in @entries
 * @reqs: The requests popped and not completed, in ring order
 * @entries: The driver entries of the INVALIDATEs among them, in order
 *
 * The batch belongs to the worker pass that holds the queue's mutex, and is
 * empty whenever the mutex is free.
 */
struct vhost_iommu_invalq {
	struct vhost_virtqueue vq;
	struct iommufd_viommu *viommu;
	unsigned int nr_reqs;
	unsigned int nr_entries;
	struct vhost_iommu_req reqs[VHOST_IOMMU_BATCH_REQS];
	struct iommu_viommu_invalidate_virtio entries[VHOST_IOMMU_BATCH_ENTRIES];
};

/**
 * struct vhost_iommu_prq - The page-request state
 * @lock: Protects this structure and the endpoint table against the
 *        page-request path
 * @file: The fault queue file bound with VHOST_IOMMU_SET_FAULT_QUEUE
 * @fault: Its fault queue
 * @poll: Runs the page-request queue's work when the fault queue has faults
 * @groups: Groups taken from the fault queue and not answered, in order
 * @nr_groups: Number of groups in @groups
 * @pgfaults: Room for one group from the fault queue
 */
struct vhost_iommu_prq {
	struct mutex lock;	/* Protects the page-request state */
	struct file *file;
	struct iommufd_fault *fault;
	struct vhost_poll poll;
	struct list_head groups;
	unsigned int nr_groups;
	struct iommu_hwpt_pgfault pgfaults[VHOST_IOMMU_GROUP_MAX];
};

/**
 * struct vhost_iommu - A vhost-iommu device
 * @dev: The vhost device
 * @prq_vq: The page-request queue
 * @invalqs: The invalidation queues
 * @ictx: The iommufd bound with VHOST_IOMMU_SET_IOMMUFD
 * @srcu: Readers of @doms and of the domains' endpoints (the workers)
 * @doms: Bound domains (struct vhost_iommu_dom) by virtio domain ID
 * @eps: Bound endpoints (struct vhost_iommu_ep) by virtio endpoint ID
 * @prq: The page-request state
 *
 * Bindings change under @dev.mutex; @eps also under @prq.lock. A worker reads
 * @doms under @srcu, and an unbind waits for the readers before it frees.
 */
struct vhost_iommu {
	struct vhost_dev dev;
	struct vhost_virtqueue prq_vq;
	struct vhost_iommu_invalq invalqs[VHOST_IOMMU_MAX_INVALQ];
	struct iommufd_ctx *ictx;
	struct srcu_struct srcu;
	struct xarray doms;
	struct xarray eps;
	struct vhost_iommu_prq prq;
};

#if IS_ENABLED(CONFIG_VHOST_IOMMU_PAGE_REQUEST)
void vhost_iommu_prq_init(struct vhost_iommu *v);
void vhost_iommu_prq_start(struct vhost_iommu *v);
u8 vhost_iommu_page_resp(struct vhost_iommu *v, const void *req);
void vhost_iommu_prq_drop_ep(struct vhost_iommu *v, u32 endpoint);
void vhost_iommu_prq_unbind(struct vhost_iommu *v);
bool vhost_iommu_prq_held(struct vhost_iommu *v);
long vhost_iommu_prq_ioctl(struct vhost_iommu *v, unsigned int ioctl,
			   void __user *argp);
#else
static inline void vhost_iommu_prq_init(struct vhost_iommu *v) { }
static inline void vhost_iommu_prq_start(struct vhost_iommu *v) { }
static inline u8 vhost_iommu_page_resp(struct vhost_iommu *v, const void *req)
{
	return VIRTIO_IOMMU_S_UNSUPP;
}

static inline void vhost_iommu_prq_drop_ep(struct vhost_iommu *v, u32 ep) { }
static inline void vhost_iommu_prq_unbind(struct vhost_iommu *v) { }
static inline bool vhost_iommu_prq_held(struct vhost_iommu *v)
{
	return false;
}

static inline long vhost_iommu_prq_ioctl(struct vhost_iommu *v,
					 unsigned int ioctl, void __user *argp)
{
	return -ENOIOCTLCMD;
}
#endif

#endif /* _VHOST_IOMMU_H */
