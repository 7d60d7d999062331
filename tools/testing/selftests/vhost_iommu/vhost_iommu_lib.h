/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A small library for driving /dev/vhost-iommu from userspace: the setup a
 * VMM does, and a guest side that posts requests on identity-mapped split
 * virtqueues (the page-request queue and the invalidation queues).
 */
#ifndef VHOST_IOMMU_LIB_H
#define VHOST_IOMMU_LIB_H

#include <pthread.h>
#include <semaphore.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/vhost.h>
#include <linux/virtio_iommu.h>
#include <linux/virtio_ring.h>

/*
 * v2 queue layout: vhost vq 0 is the page-request queue (virtio queue 2),
 * vqs 1..N the invalidation queues (virtio queues 3..3+N-1).
 */
#define VI_PRQ_VQ	0
#define VI_INVAL_VQ	1	/* the first invalidation queue */
#define VI_MAX_VQS	(1 + VHOST_IOMMU_MAX_INVALQ)

/* Guest "physical" memory: the test process's own addresses (identity) */
#define VI_MEM_SIZE	(4UL << 20)

struct vi_vq {
	unsigned int num;
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	uint16_t avail_idx;	/* next avail index the guest publishes */
	uint16_t used_idx;	/* next used entry the guest consumes */
	uint16_t free_head;	/* free descriptors, chained by next */
	unsigned int nr_free;
	uint16_t *chain_len;	/* descriptors in the chain of each head */
	int kick_fd;
	int call_fd;
	int err_fd;
};

struct vi_dev {
	int fd;
	void *mem;		/* VI_MEM_SIZE bytes, registered as guest memory */
	size_t mem_used;	/* bump allocator over mem */
	struct vi_vq vqs[VI_MAX_VQS];
	unsigned int nr_vqs;	/* set up by vi_setup: 1 + invalidation queues */
	uint64_t features;
	/* The "vCPU": a thread that writes the kick eventfds */
	pthread_t kicker;
	sem_t kick_sem;
	int kick_vq;
	bool kicker_stop;
	bool kicker_running;
};

/* One segment of a request: @len bytes at @addr, device-writable or not */
struct vi_seg {
	void *addr;
	uint32_t len;
	bool writable;
};

/* Device setup, as a VMM does it */
int vi_open(struct vi_dev *d);
/* The page-request queue and one invalidation queue */
int vi_setup(struct vi_dev *d, uint64_t features, unsigned int num);
/* The page-request queue and @nr_invalq invalidation queues */
int vi_setup_n(struct vi_dev *d, uint64_t features, unsigned int num,
	       unsigned int nr_invalq);
int vi_set_mem_table(struct vi_dev *d);
int vi_set_running(struct vi_dev *d, int running);
void vi_close(struct vi_dev *d);
void *vi_alloc(struct vi_dev *d, size_t len);

/* Guest side */
int vi_post(struct vi_dev *d, unsigned int vq, const struct vi_seg *segs,
	    unsigned int nr_segs);
void vi_kick(struct vi_dev *d, unsigned int vq);
/* Wait for a used entry; 0 on success, -ETIMEDOUT */
int vi_get_used(struct vi_dev *d, unsigned int vq, uint32_t *id,
		uint32_t *len, int timeout_ms);
unsigned int vi_nr_used(struct vi_dev *d, unsigned int vq);
/* Whether the error eventfd of @vq fired within @timeout_ms */
bool vi_vq_error(struct vi_dev *d, unsigned int vq, int timeout_ms);

/*
 * Post a request whose readable part is @req (@req_len bytes) and whose
 * writable part is @resp (@resp_len bytes) on the first invalidation queue
 * (vi_post_req_q: on queue @vq); returns the head.
 */
int vi_post_req(struct vi_dev *d, const void *req, uint32_t req_len,
		void *resp, uint32_t resp_len);
int vi_post_req_q(struct vi_dev *d, unsigned int vq, const void *req,
		  uint32_t req_len, void *resp, uint32_t resp_len);

#endif
