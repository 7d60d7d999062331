/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A small library for driving /dev/vhost-iommu from userspace: the setup a
 * VMM does, a guest side that posts requests on an identity-mapped split
 * virtqueue, and the VMM side of the slow-path channel.
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

#define VI_REQ_VQ	0
#define VI_EVENT_VQ	1
#define VI_NR_VQS	2

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
	struct vi_vq vqs[VI_NR_VQS];
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
int vi_setup(struct vi_dev *d, uint64_t features, unsigned int num);
int vi_set_mem_table(struct vi_dev *d);
int vi_set_running(struct vi_dev *d, unsigned int running);
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
 * writable part is @resp (@resp_len bytes); returns the head.
 */
int vi_post_req(struct vi_dev *d, const void *req, uint32_t req_len,
		void *resp, uint32_t resp_len);

/* VMM side of the channel */
int vi_read_msg(struct vi_dev *d, struct vhost_iommu_req_msg *msg,
		int timeout_ms);
int vi_answer(struct vi_dev *d, uint64_t cookie, uint8_t status,
	      const void *payload, uint32_t payload_len);

#endif
