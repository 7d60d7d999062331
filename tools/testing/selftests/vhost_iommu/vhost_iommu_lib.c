// SPDX-License-Identifier: GPL-2.0
/*
 * Helpers for driving /dev/vhost-iommu: what a VMM does to set the device up,
 * plus a minimal guest driver posting requests on split virtqueues. Guest "physical" addresses are the test
 * process's own addresses (one identity region in the memory table), as in
 * tools/virtio/virtio_test.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include "vhost_iommu_lib.h"

static void *vi_kicker_fn(void *arg)
{
	struct vi_dev *d = arg;

	for (;;) {
		while (sem_wait(&d->kick_sem) && errno == EINTR)
			;
		if (__atomic_load_n(&d->kicker_stop, __ATOMIC_ACQUIRE))
			return NULL;
		eventfd_write(d->vqs[d->kick_vq].kick_fd, 1);
	}
}

void *vi_alloc(struct vi_dev *d, size_t len)
{
	size_t off = (d->mem_used + 63) & ~63UL;

	if (off + len > VI_MEM_SIZE)
		return NULL;
	d->mem_used = off + len;
	return (char *)d->mem + off;
}

int vi_open(struct vi_dev *d)
{
	memset(d, 0, sizeof(*d));
	d->fd = -1;
	for (int i = 0; i < VI_MAX_VQS; i++) {
		d->vqs[i].kick_fd = -1;
		d->vqs[i].call_fd = -1;
		d->vqs[i].err_fd = -1;
	}

	d->mem = mmap(NULL, VI_MEM_SIZE, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (d->mem == MAP_FAILED) {
		d->mem = NULL;
		return -errno;
	}

	d->fd = open("/dev/vhost-iommu", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (d->fd < 0)
		return -errno;
	if (ioctl(d->fd, VHOST_SET_OWNER))
		return -errno;

	if (sem_init(&d->kick_sem, 0, 0))
		return -errno;
	if (pthread_create(&d->kicker, NULL, vi_kicker_fn, d))
		return -EAGAIN;
	d->kicker_running = true;
	return 0;
}

int vi_set_mem_table(struct vi_dev *d)
{
	struct {
		struct vhost_memory mem;
		struct vhost_memory_region region;
	} table = {
		.mem.nregions = 1,
		.region = {
			.guest_phys_addr = (uintptr_t)d->mem,
			.memory_size = VI_MEM_SIZE,
			.userspace_addr = (uintptr_t)d->mem,
		},
	};

	return ioctl(d->fd, VHOST_SET_MEM_TABLE, &table) ? -errno : 0;
}

static int vi_setup_vq(struct vi_dev *d, unsigned int index, unsigned int num)
{
	struct vi_vq *vq = &d->vqs[index];
	struct vhost_vring_state state = { .index = index };
	struct vhost_vring_addr addr = { .index = index };
	struct vhost_vring_file file = { .index = index };

	vq->num = num;
	vq->desc = vi_alloc(d, 16 * num);
	vq->avail = vi_alloc(d, 6 + 2 * num);
	vq->used = vi_alloc(d, 6 + 8 * num);
	vq->chain_len = calloc(num, sizeof(*vq->chain_len));
	if (!vq->desc || !vq->avail || !vq->used || !vq->chain_len)
		return -ENOMEM;
	for (unsigned int i = 0; i < num; i++)
		vq->desc[i].next = i + 1;
	vq->free_head = 0;
	vq->nr_free = num;

	vq->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	vq->call_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	vq->err_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (vq->kick_fd < 0 || vq->call_fd < 0 || vq->err_fd < 0)
		return -errno;

	state.num = num;
	if (ioctl(d->fd, VHOST_SET_VRING_NUM, &state))
		return -errno;
	state.num = 0;
	if (ioctl(d->fd, VHOST_SET_VRING_BASE, &state))
		return -errno;
	addr.desc_user_addr = (uintptr_t)vq->desc;
	addr.avail_user_addr = (uintptr_t)vq->avail;
	addr.used_user_addr = (uintptr_t)vq->used;
	if (ioctl(d->fd, VHOST_SET_VRING_ADDR, &addr))
		return -errno;
	file.fd = vq->kick_fd;
	if (ioctl(d->fd, VHOST_SET_VRING_KICK, &file))
		return -errno;
	file.fd = vq->call_fd;
	if (ioctl(d->fd, VHOST_SET_VRING_CALL, &file))
		return -errno;
	file.fd = vq->err_fd;
	if (ioctl(d->fd, VHOST_SET_VRING_ERR, &file))
		return -errno;
	return 0;
}

int vi_set_running(struct vi_dev *d, int running)
{
	return ioctl(d->fd, VHOST_IOMMU_SET_RUNNING, &running) ? -errno : 0;
}

int vi_setup(struct vi_dev *d, uint64_t features, unsigned int num)
{
	return vi_setup_n(d, features, num, 1);
}

int vi_setup_n(struct vi_dev *d, uint64_t features, unsigned int num,
	       unsigned int nr_invalq)
{
	uint64_t offered;
	int ret;

	if (ioctl(d->fd, VHOST_GET_FEATURES, &offered))
		return -errno;
	if (features & ~offered)
		return -EOPNOTSUPP;
	if (ioctl(d->fd, VHOST_SET_FEATURES, &features))
		return -errno;
	d->features = features;

	if (nr_invalq < 1 || 1 + nr_invalq > VI_MAX_VQS)
		return -EINVAL;
	ret = vi_set_mem_table(d);
	if (ret)
		return ret;
	d->nr_vqs = 1 + nr_invalq;
	for (unsigned int i = 0; i < d->nr_vqs; i++) {
		ret = vi_setup_vq(d, i, num);
		if (ret)
			return ret;
	}
	return vi_set_running(d, 1);
}

void vi_close(struct vi_dev *d)
{
	if (d->kicker_running) {
		__atomic_store_n(&d->kicker_stop, true, __ATOMIC_RELEASE);
		sem_post(&d->kick_sem);
		pthread_join(d->kicker, NULL);
		d->kicker_running = false;
		sem_destroy(&d->kick_sem);
	}
	if (d->fd >= 0)
		close(d->fd);
	d->fd = -1;
	for (int i = 0; i < VI_MAX_VQS; i++) {
		struct vi_vq *vq = &d->vqs[i];

		if (vq->kick_fd >= 0)
			close(vq->kick_fd);
		if (vq->call_fd >= 0)
			close(vq->call_fd);
		if (vq->err_fd >= 0)
			close(vq->err_fd);
		vq->kick_fd = -1;
		vq->call_fd = -1;
		vq->err_fd = -1;
		free(vq->chain_len);
		vq->chain_len = NULL;
	}
	if (d->mem)
		munmap(d->mem, VI_MEM_SIZE);
	d->mem = NULL;
}

int vi_post(struct vi_dev *d, unsigned int index, const struct vi_seg *segs,
	    unsigned int nr_segs)
{
	struct vi_vq *vq = &d->vqs[index];
	uint16_t head, i;

	if (!nr_segs || nr_segs > vq->nr_free)
		return -ENOSPC;

	head = vq->free_head;
	i = head;
	for (unsigned int n = 0; n < nr_segs; n++) {
		struct vring_desc *desc = &vq->desc[i];

		desc->addr = (uintptr_t)segs[n].addr;
		desc->len = segs[n].len;
		desc->flags = segs[n].writable ? VRING_DESC_F_WRITE : 0;
		if (n + 1 < nr_segs)
			desc->flags |= VRING_DESC_F_NEXT;
		i = desc->next;
	}
	/* The free list continues after the last descriptor of the chain */
	vq->free_head = i;
	vq->nr_free -= nr_segs;
	vq->chain_len[head] = nr_segs;

	vq->avail->ring[vq->avail_idx % vq->num] = head;
	vq->avail_idx++;
	__atomic_store_n(&vq->avail->idx, vq->avail_idx, __ATOMIC_RELEASE);
	return head;
}

void vi_kick(struct vi_dev *d, unsigned int index)
{
	d->kick_vq = index;
	sem_post(&d->kick_sem);
}

static void vi_free_chain(struct vi_vq *vq, uint16_t head)
{
	uint16_t i = head, n = vq->chain_len[head];

	/* Restore the next links of the chain, then put it back */
	for (uint16_t k = 1; k < n; k++)
		i = vq->desc[i].next;
	vq->desc[i].next = vq->free_head;
	vq->free_head = head;
	vq->nr_free += n;
	vq->chain_len[head] = 0;
}

unsigned int vi_nr_used(struct vi_dev *d, unsigned int index)
{
	struct vi_vq *vq = &d->vqs[index];

	return (uint16_t)(__atomic_load_n(&vq->used->idx, __ATOMIC_ACQUIRE) -
			  vq->used_idx);
}

int vi_get_used(struct vi_dev *d, unsigned int index, uint32_t *id,
		uint32_t *len, int timeout_ms)
{
	struct vi_vq *vq = &d->vqs[index];
	struct vring_used_elem *elem;

	struct pollfd pfd = { .fd = vq->call_fd, .events = POLLIN };
	struct timespec start, now;
	eventfd_t val;
	int left;

	clock_gettime(CLOCK_MONOTONIC, &start);
	while (!vi_nr_used(d, index)) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		left = timeout_ms - ((now.tv_sec - start.tv_sec) * 1000 +
				     (now.tv_nsec - start.tv_nsec) / 1000000);
		if (left <= 0)
			return -ETIMEDOUT;
		/* The device signals the call eventfd after adding used entries */
		if (poll(&pfd, 1, left) == 1)
			eventfd_read(vq->call_fd, &val);
	}
	elem = &vq->used->ring[vq->used_idx % vq->num];
	*id = elem->id;
	*len = elem->len;
	vq->used_idx++;
	if (*id < vq->num && vq->chain_len[*id])
		vi_free_chain(vq, *id);
	return 0;
}

bool vi_vq_error(struct vi_dev *d, unsigned int index, int timeout_ms)
{
	struct pollfd pfd = { .fd = d->vqs[index].err_fd, .events = POLLIN };
	eventfd_t val;

	if (poll(&pfd, 1, timeout_ms) != 1)
		return false;
	return eventfd_read(pfd.fd, &val) == 0;
}

int vi_post_req_q(struct vi_dev *d, unsigned int vq, const void *req,
		  uint32_t req_len, void *resp, uint32_t resp_len)
{
	struct vi_seg segs[2] = {
		{ .addr = (void *)req, .len = req_len },
		{ .addr = resp, .len = resp_len, .writable = true },
	};

	return vi_post(d, vq, segs, 2);
}

int vi_post_req(struct vi_dev *d, const void *req, uint32_t req_len,
		void *resp, uint32_t resp_len)
{
	return vi_post_req_q(d, VI_INVAL_VQ, req, req_len, resp, resp_len);
}
