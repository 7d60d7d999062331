// SPDX-License-Identifier: GPL-2.0
/*
 * The helpers of the vhost-iommu selftests (see vhost_iommu_utils.h): the
 * VMM's setup of /dev/vhost-iommu, a minimal guest driver on split
 * virtqueues, a mock VM on the iommufd selftest mock, and fail-nth fault
 * injection (Documentation/fault-injection/fault-injection.rst).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE	/* sched_setaffinity() */
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <endian.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include "vhost_iommu_utils.h"

#define ARRAY_SIZE(a)	(sizeof(a) / sizeof((a)[0]))
#include "../../../../drivers/iommu/iommufd/iommufd_test.h"

/* Device setup */

static void *vi_kicker_fn(void *arg)
{
	struct vi_dev *d = arg;

	for (;;) {
		uint32_t mask;

		while (sem_wait(&d->kick_sem) && errno == EINTR)
			;
		if (__atomic_load_n(&d->kicker_stop, __ATOMIC_ACQUIRE))
			return NULL;
		mask = __atomic_exchange_n(&d->kick_mask, 0, __ATOMIC_ACQ_REL);
		for (unsigned int i = 0; i < VI_MAX_VQS; i++)
			if (mask & (1U << i))
				eventfd_write(d->vqs[i].kick_fd, 1);
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

void *vi_alloc_page(struct vi_dev *d)
{
	size_t off = (d->mem_used + VI_PAGE_SIZE - 1) & ~(VI_PAGE_SIZE - 1);

	if (off + VI_PAGE_SIZE > VI_MEM_SIZE)
		return NULL;
	d->mem_used = off + VI_PAGE_SIZE;
	return (char *)d->mem + off;
}

uint64_t vi_gpa(struct vi_dev *d, const void *p)
{
	return VI_GPA_BASE + ((const char *)p - (const char *)d->mem);
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
			.guest_phys_addr = VI_GPA_BASE,
			.memory_size = VI_MEM_SIZE,
			.userspace_addr = (uintptr_t)d->mem,
		},
	};

	return ioctl(d->fd, VHOST_SET_MEM_TABLE, &table) ? -errno : 0;
}

static void vi_close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static int vi_set_vring_addr(struct vi_dev *d, unsigned int index)
{
	struct vi_vq *vq = &d->vqs[index];
	struct vhost_vring_addr addr = {
		.index = index,
		.desc_user_addr = (uintptr_t)vq->desc,
		.avail_user_addr = (uintptr_t)vq->avail,
		.used_user_addr = (uintptr_t)vq->used,
	};

	if (d->log) {
		addr.flags = 1 << VHOST_VRING_F_LOG;
		addr.log_guest_addr = vi_gpa(d, vq->used);
	}
	return ioctl(d->fd, VHOST_SET_VRING_ADDR, &addr) ? -errno : 0;
}

int vi_setup_vq(struct vi_dev *d, unsigned int index, unsigned int num)
{
	struct vi_vq *vq = &d->vqs[index];
	struct vhost_vring_state state = { .index = index };
	struct vhost_vring_file file = { .index = index };
	int ret;

	vi_close_fd(&vq->kick_fd);
	vi_close_fd(&vq->call_fd);
	vi_close_fd(&vq->err_fd);
	free(vq->chain_len);
	memset(vq, 0, sizeof(*vq));
	vq->kick_fd = -1;
	vq->call_fd = -1;
	vq->err_fd = -1;

	vq->num = num;
	/* Page aligned, so that the dirty log can tell the parts apart */
	vq->desc = vi_alloc_page(d);
	vi_alloc(d, 16 * num);
	vq->avail = vi_alloc_page(d);
	vi_alloc(d, 6 + 2 * num);
	vq->used = vi_alloc_page(d);
	vi_alloc(d, 6 + 8 * num);
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
	ret = vi_set_vring_addr(d, index);
	if (ret)
		return ret;
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

int vi_reset(struct vi_dev *d)
{
	return ioctl(d->fd, VHOST_IOMMU_RESET) ? -errno : 0;
}

int vi_vring_base(struct vi_dev *d, unsigned int index)
{
	struct vhost_vring_state state = { .index = index };

	if (ioctl(d->fd, VHOST_GET_VRING_BASE, &state))
		return -errno;
	return state.num;
}

int vi_setup(struct vi_dev *d, uint64_t features, unsigned int num,
	     unsigned int nr_invalq)
{
	uint64_t offered;
	int ret;

	if (nr_invalq > VHOST_IOMMU_MAX_INVALQ)
		return -EINVAL;
	if (ioctl(d->fd, VHOST_GET_FEATURES, &offered))
		return -errno;
	if (features & ~offered)
		return -EOPNOTSUPP;
	if (ioctl(d->fd, VHOST_SET_FEATURES, &features))
		return -errno;
	d->features = features;
	d->nr_invalq = nr_invalq;

	ret = vi_set_mem_table(d);
	if (ret)
		return ret;
	for (unsigned int i = 0; i <= nr_invalq; i++) {
		ret = vi_setup_vq(d, i, num);
		if (ret)
			return ret;
	}
	return vi_set_running(d, 1);
}

int vi_enable_log(struct vi_dev *d)
{
	uint64_t base;
	int ret;

	if (!d->log) {
		d->log = calloc(1, VI_LOG_BYTES);
		if (!d->log)
			return -ENOMEM;
	}
	base = (uintptr_t)d->log;
	if (ioctl(d->fd, VHOST_SET_LOG_BASE, &base))
		return -errno;
	for (unsigned int i = 0; i < VI_MAX_VQS; i++) {
		if (!d->vqs[i].num)
			continue;
		ret = vi_set_vring_addr(d, i);
		if (ret)
			return ret;
	}
	return 0;
}

bool vi_log_dirty(struct vi_dev *d, const void *p)
{
	uint64_t pfn = vi_gpa(d, p) / VI_PAGE_SIZE;

	return __atomic_load_n(&d->log[pfn / 8], __ATOMIC_ACQUIRE) &
	       (1 << (pfn % 8));
}

void vi_log_clear(struct vi_dev *d)
{
	memset(d->log, 0, VI_LOG_BYTES);
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
	vi_close_fd(&d->fd);
	for (int i = 0; i < VI_MAX_VQS; i++) {
		struct vi_vq *vq = &d->vqs[i];

		vi_close_fd(&vq->kick_fd);
		vi_close_fd(&vq->call_fd);
		vi_close_fd(&vq->err_fd);
		free(vq->chain_len);
		vq->chain_len = NULL;
	}
	if (d->mem)
		munmap(d->mem, VI_MEM_SIZE);
	d->mem = NULL;
	free(d->log);
	d->log = NULL;
}

/* Guest side */

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

		desc->addr = segs[n].addr ? vi_gpa(d, segs[n].addr) : 0;
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

int vi_post_req(struct vi_dev *d, unsigned int vq, const void *req,
		uint32_t req_len, void *resp, uint32_t resp_len)
{
	struct vi_seg segs[2] = {
		{ .addr = (void *)req, .len = req_len },
		{ .addr = resp, .len = resp_len, .writable = true },
	};

	return vi_post(d, vq, segs, 2);
}

void vi_kick(struct vi_dev *d, unsigned int index)
{
	__atomic_fetch_or(&d->kick_mask, 1U << index, __ATOMIC_ACQ_REL);
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
	struct pollfd pfd = { .fd = vq->call_fd, .events = POLLIN };
	struct vring_used_elem *elem;
	struct timespec start;
	eventfd_t val;
	long left;

	clock_gettime(CLOCK_MONOTONIC, &start);
	while (!vi_nr_used(d, index)) {
		left = timeout_ms - vi_ms_since(&start);
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

int vi_request(struct vi_dev *d, unsigned int vq, const void *req,
	       uint32_t req_len, uint32_t *used_len, int timeout_ms)
{
	uint8_t *resp = vi_alloc(d, VI_TAIL);
	uint32_t id, len;
	int head;

	if (!resp)
		return -ENOMEM;
	memset(resp, 0xff, VI_TAIL);
	head = vi_post_req(d, vq, req, req_len, resp, VI_TAIL);
	if (head < 0)
		return head;
	vi_kick(d, vq);
	if (vi_get_used(d, vq, &id, &len, timeout_ms))
		return -ETIMEDOUT;
	if (used_len)
		*used_len = len;
	if (id != (uint32_t)head)
		return -EIO;
	return resp[0];
}

struct virtio_iommu_req_invalidate *
vi_make_inval(struct vi_dev *d, uint32_t domain, uint8_t scope, uint8_t caches,
	      uint16_t flags, uint32_t pasid, uint64_t id, uint64_t address,
	      uint64_t nr_pages, uint8_t page_size)
{
	struct virtio_iommu_req_invalidate *inv = vi_alloc(d, sizeof(*inv));

	if (!inv)
		return NULL;
	memset(inv, 0, sizeof(*inv));
	inv->head.type = VIRTIO_IOMMU_T_INVALIDATE;
	inv->scope = scope;
	inv->caches = caches;
	inv->flags = htole16(flags);
	inv->domain = htole32(domain);
	inv->pasid = htole32(pasid);
	inv->id = htole64(id);
	inv->address = htole64(address);
	inv->nr_pages = htole64(nr_pages);
	inv->page_size = page_size;
	return inv;
}

struct virtio_iommu_req_page_resp *
vi_make_page_resp(struct vi_dev *d, uint32_t endpoint, uint32_t flags,
		  uint32_t pasid, uint32_t group, uint16_t code)
{
	struct virtio_iommu_req_page_resp *req = vi_alloc(d, sizeof(*req));

	if (!req)
		return NULL;
	memset(req, 0, sizeof(*req));
	req->head.type = VIRTIO_IOMMU_T_PAGE_RESP;
	req->endpoint = htole32(endpoint);
	req->flags = htole32(flags);
	req->pasid = htole32(pasid);
	req->group = htole32(group);
	req->code = htole16(code);
	return req;
}

/* The binding ioctls */

int vi_set_iommufd(int fd, int iommufd, uint32_t flags)
{
	struct vhost_iommu_iommufd cmd = { .fd = iommufd, .flags = flags };

	return ioctl(fd, VHOST_IOMMU_SET_IOMMUFD, &cmd) ? -errno : 0;
}

int vi_set_domain(int fd, uint32_t flags, uint32_t domain, uint32_t viommu_id)
{
	struct vhost_iommu_domain cmd = {
		.flags = flags,
		.domain = domain,
		.viommu_id = viommu_id,
	};

	return ioctl(fd, VHOST_IOMMU_SET_DOMAIN, &cmd) ? -errno : 0;
}

int vi_set_endpoint(int fd, uint32_t flags, uint32_t endpoint, uint32_t domain,
		    uint32_t dev_id, uint32_t vdev_id)
{
	struct vhost_iommu_endpoint cmd = {
		.flags = flags,
		.endpoint = endpoint,
		.domain = domain,
		.dev_id = dev_id,
		.vdev_id = vdev_id,
	};

	return ioctl(fd, VHOST_IOMMU_SET_ENDPOINT, &cmd) ? -errno : 0;
}

int vi_set_fault_queue(int fd, uint32_t flags, int fault_fd)
{
	struct vhost_iommu_fault_queue cmd = { .fd = fault_fd, .flags = flags };

	return ioctl(fd, VHOST_IOMMU_SET_FAULT_QUEUE, &cmd) ? -errno : 0;
}

/* The mock VM */

static int vi_mock_domain(int iommufd, uint32_t ioas_id, uint32_t *idev_id,
			  uint32_t *stdev_id)
{
	struct iommu_test_cmd mock = {
		.size = sizeof(mock),
		.op = IOMMU_TEST_OP_MOCK_DOMAIN,
		.id = ioas_id,
	};

	if (ioctl(iommufd, IOMMU_TEST_CMD, &mock))
		return -errno;
	*idev_id = mock.mock_domain.out_idev_id;
	*stdev_id = mock.mock_domain.out_stdev_id;
	return 0;
}

int vi_mock_vdevice(int iommufd, uint32_t viommu_id, uint32_t idev_id,
		    uint32_t vsid, uint32_t *vdevice_id)
{
	struct iommu_vdevice_alloc vdev = {
		.size = sizeof(vdev),
		.viommu_id = viommu_id,
		.dev_id = idev_id,
		.virt_id = vsid,
	};

	if (ioctl(iommufd, IOMMU_VDEVICE_ALLOC, &vdev))
		return -errno;
	*vdevice_id = vdev.out_vdevice_id;
	return 0;
}

int vi_mock_viommu(struct vi_mock *m, uint32_t vsid)
{
	struct iommu_ioas_alloc ioas = { .size = sizeof(ioas) };
	struct iommu_hwpt_alloc parent = {
		.size = sizeof(parent),
		.flags = IOMMU_HWPT_ALLOC_NEST_PARENT,
	};
	struct iommu_viommu_alloc viommu = {
		.size = sizeof(viommu),
		.type = IOMMU_VIOMMU_TYPE_SELFTEST,
	};
	int ret;

	memset(m, 0, sizeof(*m));
	m->fault_fd = -1;
	m->vsid = vsid;
	m->iommufd = open("/dev/iommu", O_RDWR | O_CLOEXEC);
	if (m->iommufd < 0)
		return -errno;
	if (ioctl(m->iommufd, IOMMU_IOAS_ALLOC, &ioas))
		return -errno;
	m->ioas_id = ioas.out_ioas_id;
	ret = vi_mock_domain(m->iommufd, m->ioas_id, &m->idev_id, &m->stdev_id);
	if (ret)
		return ret;
	parent.dev_id = m->idev_id;
	parent.pt_id = m->ioas_id;
	if (ioctl(m->iommufd, IOMMU_HWPT_ALLOC, &parent))
		return -errno;
	m->parent_id = parent.out_hwpt_id;
	viommu.dev_id = m->idev_id;
	viommu.hwpt_id = m->parent_id;
	if (ioctl(m->iommufd, IOMMU_VIOMMU_ALLOC, &viommu))
		return -errno;
	m->viommu_id = viommu.out_viommu_id;
	return vi_mock_vdevice(m->iommufd, m->viommu_id, m->idev_id, vsid,
			  &m->vdevice_id);
}

int vi_mock_add_dev(struct vi_mock *m, uint32_t vsid, struct vi_mock_dev *md)
{
	int ret;

	memset(md, 0, sizeof(*md));
	md->vsid = vsid;
	ret = vi_mock_domain(m->iommufd, m->ioas_id, &md->idev_id,
			     &md->stdev_id);
	if (ret)
		return ret;
	return vi_mock_vdevice(m->iommufd, m->viommu_id, md->idev_id, vsid,
			  &md->vdevice_id);
}

int vi_mock_fault_attach(int iommufd, uint32_t viommu_id, uint32_t dev_id,
			 uint32_t stdev_id, uint32_t *fault_id, int *fault_fd,
			 uint32_t *nested_id)
{
	struct iommu_fault_alloc fault = { .size = sizeof(fault) };
	struct iommu_hwpt_selftest data = {
		.iotlb = IOMMU_TEST_IOTLB_DEFAULT,
	};
	struct iommu_hwpt_alloc nested = {
		.size = sizeof(nested),
		.flags = IOMMU_HWPT_FAULT_ID_VALID,
		.data_type = IOMMU_HWPT_DATA_SELFTEST,
		.data_len = sizeof(data),
		.data_uptr = (uintptr_t)&data,
	};
	struct iommu_test_cmd replace = {
		.size = sizeof(replace),
		.op = IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE,
	};

	if (ioctl(iommufd, IOMMU_FAULT_QUEUE_ALLOC, &fault))
		return -errno;
	/* The caller owns the fd from here, whatever fails next */
	*fault_fd = fault.out_fault_fd;
	if (fault_id)
		*fault_id = fault.out_fault_id;
	nested.dev_id = dev_id;
	nested.pt_id = viommu_id;
	nested.fault_id = fault.out_fault_id;
	if (ioctl(iommufd, IOMMU_HWPT_ALLOC, &nested))
		return -errno;
	if (nested_id)
		*nested_id = nested.out_hwpt_id;
	replace.id = stdev_id;
	replace.mock_domain_replace.pt_id = nested.out_hwpt_id;
	if (ioctl(iommufd, IOMMU_TEST_CMD, &replace))
		return -errno;
	return 0;
}

int vi_mock_setup(struct vi_mock *m, uint32_t vsid)
{
	int ret = vi_mock_viommu(m, vsid);

	if (ret)
		return ret;
	return vi_mock_fault_attach(m->iommufd, m->viommu_id, m->idev_id,
				    m->stdev_id, &m->fault_id, &m->fault_fd,
				    &m->nested_id);
}

void vi_mock_close(struct vi_mock *m)
{
	vi_close_fd(&m->fault_fd);
	vi_close_fd(&m->iommufd);
}

int vi_mock_trigger(struct vi_mock *m, uint32_t dev_id, uint32_t pasid,
		    uint32_t grpid, uint64_t addr)
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

	return ioctl(m->iommufd, IOMMU_TEST_CMD, &cmd) ? -errno : 0;
}

int vi_mock_responses(struct vi_mock *m, uint32_t dev_id, uint32_t *grpid,
		      uint32_t *code)
{
	struct iommu_test_cmd cmd = {
		.size = sizeof(cmd),
		.op = IOMMU_TEST_OP_IOPF_RESPONSE,
		.iopf_response = { .dev_id = dev_id },
	};

	if (ioctl(m->iommufd, IOMMU_TEST_CMD, &cmd))
		return -errno;
	if (grpid)
		*grpid = cmd.iopf_response.out_grpid;
	if (code)
		*code = cmd.iopf_response.out_code;
	return cmd.iopf_response.out_count;
}

int vi_mock_log(int iommufd, uint32_t viommu_id,
		struct iommu_test_virtio_inv_record *recs, uint32_t max,
		uint32_t *num, uint32_t *calls, uint32_t *lost)
{
	struct iommu_test_cmd cmd = {
		.size = sizeof(cmd),
		.op = IOMMU_TEST_OP_VIOMMU_VIRTIO_LOG,
		.id = viommu_id,
		.virtio_log = {
			.uptr = (uintptr_t)recs,
			.max = max,
		},
	};

	if (ioctl(iommufd, IOMMU_TEST_CMD, &cmd))
		return -errno;
	if (num)
		*num = cmd.virtio_log.out_num;
	if (calls)
		*calls = cmd.virtio_log.out_calls;
	if (lost)
		*lost = cmd.virtio_log.out_lost;
	return 0;
}

bool vi_mock_cache_is(int iommufd, uint32_t dev_id, unsigned int cache_id,
		      uint32_t val)
{
	struct iommu_test_cmd cmd = {
		.size = sizeof(cmd),
		.op = IOMMU_TEST_OP_DEV_CHECK_CACHE,
		.id = dev_id,
		.check_dev_cache = {
			.id = cache_id,
			.cache = val,
		},
	};

	return !ioctl(iommufd, IOMMU_TEST_CMD, &cmd);
}

int vi_destroy(int iommufd, uint32_t id)
{
	struct iommu_destroy cmd = { .size = sizeof(cmd), .id = id };

	return ioctl(iommufd, IOMMU_DESTROY, &cmd) ? -errno : 0;
}

int vi_bind_mock(struct vi_dev *d, struct vi_mock *m, uint32_t domain,
		 uint32_t endpoint, bool faults)
{
	int ret;

	ret = vi_set_iommufd(d->fd, m->iommufd, 0);
	if (!ret)
		ret = vi_set_domain(d->fd, 0, domain, m->viommu_id);
	if (!ret)
		ret = vi_set_endpoint(d->fd, 0, endpoint, domain, m->idev_id,
				      m->vsid);
	if (!ret && faults)
		ret = vi_set_fault_queue(d->fd, 0, m->fault_fd);
	return ret;
}

/* Fault injection */

int vi_worker_tids(int *tids, int max)
{
	char path[300], comm[32];
	struct dirent *de;
	int n = 0;
	DIR *dir;

	dir = opendir("/proc/self/task");
	if (!dir)
		return 0;
	while (n < max && (de = readdir(dir))) {
		FILE *f;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/comm",
			 de->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (fgets(comm, sizeof(comm), f) && !strncmp(comm, "vhost-", 6))
			tids[n++] = atoi(de->d_name);
		fclose(f);
	}
	closedir(dir);
	return n;
}

int vi_worker_tid(void)
{
	int tid;

	return vi_worker_tids(&tid, 1) == 1 ? tid : -1;
}

int vi_pin(int tid, int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return sched_setaffinity(tid, sizeof(set), &set) ? -errno : 0;
}

long vi_ms_since(const struct timespec *start)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - start->tv_sec) * 1000 +
	       (now.tv_nsec - start->tv_nsec) / 1000000;
}

int vi_write_file(const char *path, const char *val)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t ret;

	if (fd < 0)
		return -errno;
	ret = write(fd, val, strlen(val));
	close(fd);
	return ret < 0 ? -errno : 0;
}

long vi_read_long(const char *path)
{
	char buf[32] = "";
	ssize_t ret;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ret = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (ret <= 0)
		return -EIO;
	return strtol(buf, NULL, 10);
}

int vi_fault_setup(void)
{
	static const char * const files[][2] = {
		{ "/sys/kernel/debug/failslab/ignore-gfp-wait", "N" },
		{ "/sys/kernel/debug/fail_page_alloc/ignore-gfp-wait", "N" },
		{ "/sys/kernel/debug/fail_page_alloc/ignore-gfp-highmem", "N" },
		{ "/sys/kernel/debug/failslab/verbose", "0" },
		{ "/sys/kernel/debug/fail_page_alloc/verbose", "0" },
	};
	int ret;

	for (unsigned int i = 0; i < ARRAY_SIZE(files); i++) {
		ret = vi_write_file(files[i][0], files[i][1]);
		if (ret)
			return ret;
	}
	return 0;
}

int vi_fail_nth_open(int tid)
{
	char path[64];
	int fd;

	if (tid)
		snprintf(path, sizeof(path), "/proc/self/task/%d/fail-nth", tid);
	else
		snprintf(path, sizeof(path), "/proc/thread-self/fail-nth");
	fd = open(path, O_RDWR | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

int vi_fail_nth_set(int fd, unsigned int nth)
{
	char val[16];
	int len;

	len = snprintf(val, sizeof(val), "%u", nth);
	return pwrite(fd, val, len, 0) == len ? 0 : -errno;
}

bool vi_fail_nth_fired(int fd)
{
	char buf[16] = "";
	ssize_t ret;

	ret = pread(fd, buf, sizeof(buf) - 1, 0);
	vi_fail_nth_set(fd, 0);
	return ret > 0 && strtol(buf, NULL, 10) == 0;
}

/* ---- The kernel's function profiler on the vhost-iommu paths ---- */

static const char *prof_tracefs;

static const char * const prof_funcs[] = {
	"vhost_iommu_*", "vhost_get_vq_desc*", "vhost_add_used*", "vhost_signal",
	"vhost_poll_wakeup", "vhost_task_fn", "vhost_run_work_list", "translate_desc",
	"vhost_disable_notify", "vhost_enable_notify", "vhost_exceeds_weight",
	"vhost_vq_avail_empty",
	"iommufd_viommu_invalidate*", "iommufd_hwpt_invalidate", "iommufd_fops_ioctl",
	"iommufd_ioas_map", "iommufd_ioas_unmap", "iopt_map_user_pages", "iopt_unmap_iova",
	"mock_viommu_cache_invalidate*", "arm_smmu_*invalidate*", "arm_smmu_cmdq_issue_cmdlist",
	"__arm_smmu_cmdq_issue_cmdlist", "arm_smmu_cmdq_batch_submit", "arm_vsmmu_*",
	"arm_smmu_cmdq_poll_until_sync", "arm_smmu_tlb_inv_range*",
	"eventfd_signal_mask", "eventfd_write", "eventfd_read", "ioeventfd_write",
	"kvm_io_bus_write", "io_mem_abort", "kvm_arch_vcpu_ioctl_run",
	"do_sys_poll", "try_to_wake_up", "_copy_from_iter", "_copy_to_iter",
	"__arm64_sys_ioctl", "__arm64_sys_write", "__arm64_sys_read", "__arm64_sys_ppoll",
	"iommufd_fault_*", "iommufd_auto_response_faults", "iommu_report_device_fault",
	"iopf_group_response", "mock_domain_page_response",
};

static int prof_put(const char *file, const char *val, bool append)
{
	char path[256];
	int fd, ret = 0;

	snprintf(path, sizeof(path), "%s/%s", prof_tracefs, file);
	fd = open(path, O_WRONLY | O_CLOEXEC | (append ? O_APPEND : O_TRUNC));
	if (fd < 0)
		return -errno;
	if (write(fd, val, strlen(val)) < 0)
		ret = -errno;
	close(fd);
	return ret;
}

bool vi_prof_setup(void)
{
	static const char * const dirs[] = {
		"/sys/kernel/tracing", "/sys/kernel/debug/tracing",
	};
	char path[256];

	for (unsigned int i = 0; i < ARRAY_SIZE(dirs) && !prof_tracefs; i++) {
		snprintf(path, sizeof(path), "%s/function_profile_enabled", dirs[i]);
		if (!access(path, W_OK))
			prof_tracefs = dirs[i];
	}
	if (!prof_tracefs) {
		printf("BENCH-PROFILE-SKIP reason=\"no function profiler in this kernel\"\n");
		return false;
	}
	prof_put("function_profile_enabled", "0", false);
	prof_put("set_ftrace_filter", "", false);
	/* A pattern that matches nothing (an absent driver) is refused: skip it */
	for (unsigned int i = 0; i < ARRAY_SIZE(prof_funcs); i++)
		prof_put("set_ftrace_filter", prof_funcs[i], true);
	prof_put("options/sleep-time", "0", false);
	prof_put("options/graph-time", "1", false);
	return true;
}

void vi_prof_enable(bool on)
{
	/* Writing 1 again starts from zero: every profile is of one run */
	if (prof_tracefs)
		prof_put("function_profile_enabled", on ? "1" : "0", false);
}

static int cmp_prof(const void *a, const void *b)
{
	const struct vi_prof_ent *x = a, *y = b;

	return x->us < y->us ? 1 : x->us > y->us ? -1 : 0;
}

int vi_prof_collect(struct vi_prof_ent *ent, int max)
{
	char path[256], line[512];
	int n = 0;

	for (int cpu = 0; prof_tracefs && cpu < 64; cpu++) {
		FILE *f;

		snprintf(path, sizeof(path), "%s/trace_stat/function%d",
			 prof_tracefs, cpu);
		f = fopen(path, "r");
		if (!f)
			break;
		while (fgets(line, sizeof(line), f)) {
			char name[64];
			unsigned long hits;
			double us;
			int i;

			if (sscanf(line, " %63s %lu %lf", name, &hits, &us) != 3)
				continue;
			for (i = 0; i < n && strcmp(ent[i].name, name); i++)
				;
			if (i == n) {
				if (n == max)
					continue;
				snprintf(ent[n].name, sizeof(ent[n].name), "%s", name);
				ent[n].hits = 0;
				ent[n].us = 0;
				n++;
			}
			ent[i].hits += hits;
			ent[i].us += us;
		}
		fclose(f);
	}
	qsort(ent, n, sizeof(*ent), cmp_prof);
	return n;
}

long long vi_trace_events(const char *dir)
{
	long long total = 0, v;
	char path[512], line[128];

	for (int cpu = 0;; cpu++) {
		FILE *f;

		snprintf(path, sizeof(path), "%s/per_cpu/cpu%d/stats", dir, cpu);
		f = fopen(path, "r");
		if (!f)
			break;
		while (fgets(line, sizeof(line), f))
			if (sscanf(line, "entries: %lld", &v) == 1 ||
			    sscanf(line, "overrun: %lld", &v) == 1)
				total += v;
		fclose(f);
	}
	return total;
}
