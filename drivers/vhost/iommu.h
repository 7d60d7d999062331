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

/* An endpoint bound with VHOST_IOMMU_SET_ENDPOINT */
struct vhost_iommu_ep {
	u32 id;
	u32 domain;
	u32 dev_id;	/* iommufd device ID: page requests name it */
	u32 vdev_id;	/* virtual ID of its vDEVICE */
};

/* The vDEVICE IDs of a domain's endpoints, replaced as a whole (SRCU) */
struct vhost_iommu_vdevs {
	unsigned int nr;
	u32 id[] __counted_by(nr);
};

/* A domain bound with VHOST_IOMMU_SET_DOMAIN to a vIOMMU it holds */
struct vhost_iommu_dom {
	u32 id;
	struct iommufd_viommu *viommu;
	struct vhost_iommu_vdevs __rcu *vdevs;
};

/* What completing a popped request writes */
enum vhost_iommu_act {
	VHOST_IOMMU_UNUSED,	/* nothing, used length 0: not parsed */
	VHOST_IOMMU_STATUS,	/* a tail with the status decided at parse */
	VHOST_IOMMU_INVAL,	/* a tail with the status of its entries */
};

/*
 * A request popped in this pass: its head, the buffers of its tail and
 * their guest addresses (VHOST_F_LOG_ALL), and for an INVALIDATE its
 * entries in the batch.
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

/*
 * An invalidation queue and its batch: the requests popped and not
 * completed, in ring order, and the driver entries of its INVALIDATEs, all
 * for @viommu. The batch belongs to the pass that holds the queue's mutex
 * and is empty whenever the mutex is free.
 */
struct vhost_iommu_invalq {
	struct vhost_virtqueue vq;
	struct iommufd_viommu *viommu;
	unsigned int nr_reqs;
	unsigned int nr_entries;
	struct vhost_iommu_req reqs[VHOST_IOMMU_BATCH_REQS];
	struct iommu_viommu_invalidate_virtio entries[VHOST_IOMMU_BATCH_ENTRIES];
};

/*
 * The page-request state, under @lock: the fault queue bound with
 * VHOST_IOMMU_SET_FAULT_QUEUE, the poll that runs the page-request queue's
 * work when it has faults, the groups taken and not answered (in order), and
 * room for one group from the fault queue.
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

/*
 * A vhost-iommu device. Bindings (@ictx, @doms, @eps) change under
 * @dev.mutex, @eps also under @prq.lock. The workers read @doms and the
 * domains' vDEVICEs under @srcu; an unbind waits for them before it frees.
 */
struct vhost_iommu {
	struct vhost_dev dev;
	struct vhost_virtqueue prq_vq;
	struct vhost_iommu_invalq invalqs[VHOST_IOMMU_MAX_INVALQ];
	struct iommufd_ctx *ictx;
	struct srcu_struct srcu;
	struct xarray doms;	/* struct vhost_iommu_dom by domain ID */
	struct xarray eps;	/* struct vhost_iommu_ep by endpoint ID */
	struct vhost_iommu_prq prq;
	atomic_t ctl_calls;	/* in progress: each ends a busy-poll */
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
