// SPDX-License-Identifier: GPL-2.0
/*
 * A smoke test of the vhost-iommu v2 driver on the iommufd selftest mock:
 * the invalidation queues (status mapping, used length 0 for foreign types,
 * in-order completion), a page request and its PAGE_RESP, stop and restart
 * with an exact GET_VRING_BASE, the dirty log, and reset. Guest "physical"
 * addresses are the test's own addresses (one identity memory region).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <linux/iommufd.h>
#include <linux/vhost.h>
#include <linux/virtio_config.h>
#include <linux/virtio_iommu.h>
#include <linux/virtio_ring.h>

#define ARRAY_SIZE(a)	(sizeof(a) / sizeof((a)[0]))
#include "../../../../drivers/iommu/iommufd/iommufd_test.h"

#define MEM_SIZE	(1024UL * 1024)
#define NUM		16
#define NVQS		3	/* PRQ and two invalidation queues of 8 */
#define VSID		0x42
#define DOMAIN		1
#define ENDPOINT	7

static int failed;

#define CHECK(cond, ...) do {						\
	if (!(cond)) {							\
		printf("not ok: %s:%d: %s: ", __func__, __LINE__, #cond); \
		printf(__VA_ARGS__);					\
		printf("\n");						\
		failed++;						\
	}								\
} while (0)

struct vq {
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	uint16_t avail_idx, used_idx, next_desc;
	int kick, call;
};

static int vfd;
static char *mem;
static size_t mem_used;
static struct vq vqs[NVQS];

static void *alloc(size_t len)
{
	void *p = mem + mem_used;

	mem_used = (mem_used + len + 63) & ~63UL;
	return p;
}

static int setup_vq(unsigned int i)
{
	struct vhost_vring_state state = { .index = i, .num = NUM };
	struct vhost_vring_addr addr = { .index = i };
	struct vhost_vring_file file = { .index = i };
	struct vq *vq = &vqs[i];

	vq->desc = alloc(16 * NUM);
	vq->avail = alloc(6 + 2 * NUM);
	vq->used = alloc(6 + 8 * NUM);
	vq->kick = eventfd(0, EFD_NONBLOCK);
	vq->call = eventfd(0, EFD_NONBLOCK);
	addr.desc_user_addr = (uintptr_t)vq->desc;
	addr.avail_user_addr = (uintptr_t)vq->avail;
	addr.used_user_addr = (uintptr_t)vq->used;
	if (ioctl(vfd, VHOST_SET_VRING_NUM, &state))
		return -errno;
	state.num = 0;
	if (ioctl(vfd, VHOST_SET_VRING_BASE, &state) ||
	    ioctl(vfd, VHOST_SET_VRING_ADDR, &addr))
		return -errno;
	file.fd = vq->kick;
	if (ioctl(vfd, VHOST_SET_VRING_KICK, &file))
		return -errno;
	file.fd = vq->call;
	return ioctl(vfd, VHOST_SET_VRING_CALL, &file) ? -errno : 0;
}

/* Post a chain: @out readable bytes at @req, @in writable bytes at @resp */
static uint16_t post(unsigned int i, void *req, uint32_t out, void *resp,
		     uint32_t in)
{
	struct vq *vq = &vqs[i];
	uint16_t head = vq->next_desc % NUM, d = head;

	if (out) {
		vq->desc[d] = (struct vring_desc){ (uintptr_t)req, out,
			in ? VRING_DESC_F_NEXT : 0, (d + 1) % NUM };
		d = (d + 1) % NUM;
	}
	if (in) {
		vq->desc[d] = (struct vring_desc){ (uintptr_t)resp, in,
			VRING_DESC_F_WRITE, 0 };
		d = (d + 1) % NUM;
	}
	vq->next_desc = d;
	vq->avail->ring[vq->avail_idx++ % NUM] = head;
	__atomic_store_n(&vq->avail->idx, vq->avail_idx, __ATOMIC_RELEASE);
	return head;
}

static void kick(unsigned int i)
{
	eventfd_write(vqs[i].kick, 1);
}

/* The next used entry of queue @i, or -1 after 2 s */
static int used(unsigned int i, uint32_t *len)
{
	struct vq *vq = &vqs[i];
	struct pollfd pfd = { .fd = vq->call, .events = POLLIN };
	struct vring_used_elem *e;
	eventfd_t val;

	while (__atomic_load_n(&vq->used->idx, __ATOMIC_ACQUIRE) == vq->used_idx) {
		if (poll(&pfd, 1, 2000) != 1)
			return -1;
		eventfd_read(vq->call, &val);
	}
	e = &vq->used->ring[vq->used_idx++ % NUM];
	*len = e->len;
	return e->id;
}

struct inval {
	struct virtio_iommu_req_invalidate req;
	struct virtio_iommu_req_tail tail;
};

static struct inval *inval(uint32_t domain, uint8_t caches)
{
	struct inval *r = alloc(sizeof(*r));

	memset(r, 0, sizeof(*r));
	r->req.head.type = VIRTIO_IOMMU_T_INVALIDATE;
	r->req.scope = VIRTIO_IOMMU_INVAL_S_DOMAIN;
	r->req.caches = caches;
	r->req.domain = domain;
	r->tail.status = 0xee;
	return r;
}

static uint16_t post_inval(unsigned int i, struct inval *r)
{
	return post(i, &r->req, sizeof(r->req), &r->tail, sizeof(r->tail));
}

struct mock {
	int iommufd, fault_fd;
	uint32_t ioas, idev, stdev, parent, viommu, fault_id, nested;
};

static int mock_setup(struct mock *m)
{
	struct iommu_ioas_alloc ioas = { .size = sizeof(ioas) };
	struct iommu_test_cmd cmd = { .size = sizeof(cmd),
				      .op = IOMMU_TEST_OP_MOCK_DOMAIN };
	struct iommu_hwpt_alloc hwpt = { .size = sizeof(hwpt),
					 .flags = IOMMU_HWPT_ALLOC_NEST_PARENT };
	struct iommu_viommu_alloc viommu = { .size = sizeof(viommu),
					     .type = IOMMU_VIOMMU_TYPE_SELFTEST };
	struct iommu_vdevice_alloc vdev = { .size = sizeof(vdev), .virt_id = VSID };
	struct iommu_fault_alloc fault = { .size = sizeof(fault) };
	struct iommu_hwpt_selftest data = { .iotlb = IOMMU_TEST_IOTLB_DEFAULT };
	struct iommu_hwpt_alloc nested = {
		.size = sizeof(nested), .flags = IOMMU_HWPT_FAULT_ID_VALID,
		.data_type = IOMMU_HWPT_DATA_SELFTEST, .data_len = sizeof(data),
		.data_uptr = (uintptr_t)&data,
	};

	m->iommufd = open("/dev/iommu", O_RDWR);
	if (m->iommufd < 0 || ioctl(m->iommufd, IOMMU_IOAS_ALLOC, &ioas))
		return -errno;
	cmd.id = ioas.out_ioas_id;
	if (ioctl(m->iommufd, IOMMU_TEST_CMD, &cmd))
		return -errno;
	m->idev = cmd.mock_domain.out_idev_id;
	m->stdev = cmd.mock_domain.out_stdev_id;
	hwpt.dev_id = m->idev;
	hwpt.pt_id = ioas.out_ioas_id;
	if (ioctl(m->iommufd, IOMMU_HWPT_ALLOC, &hwpt))
		return -errno;
	viommu.dev_id = m->idev;
	viommu.hwpt_id = hwpt.out_hwpt_id;
	if (ioctl(m->iommufd, IOMMU_VIOMMU_ALLOC, &viommu))
		return -errno;
	m->viommu = viommu.out_viommu_id;
	vdev.viommu_id = m->viommu;
	vdev.dev_id = m->idev;
	if (ioctl(m->iommufd, IOMMU_VDEVICE_ALLOC, &vdev) ||
	    ioctl(m->iommufd, IOMMU_FAULT_QUEUE_ALLOC, &fault))
		return -errno;
	m->fault_fd = fault.out_fault_fd;
	nested.dev_id = m->idev;
	nested.pt_id = m->viommu;
	nested.fault_id = fault.out_fault_id;
	if (ioctl(m->iommufd, IOMMU_HWPT_ALLOC, &nested))
		return -errno;
	cmd = (struct iommu_test_cmd){ .size = sizeof(cmd), .id = m->stdev,
		.op = IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE,
		.mock_domain_replace.pt_id = nested.out_hwpt_id };
	return ioctl(m->iommufd, IOMMU_TEST_CMD, &cmd) ? -errno : 0;
}

static int bind(struct mock *m)
{
	struct vhost_iommu_iommufd fd = { .fd = m->iommufd };
	struct vhost_iommu_domain dom = { .domain = DOMAIN,
					  .viommu_id = m->viommu };
	struct vhost_iommu_endpoint ep = { .endpoint = ENDPOINT,
		.domain = DOMAIN, .dev_id = m->idev, .vdev_id = VSID };

	if (ioctl(vfd, VHOST_IOMMU_SET_IOMMUFD, &fd) ||
	    ioctl(vfd, VHOST_IOMMU_SET_DOMAIN, &dom) ||
	    ioctl(vfd, VHOST_IOMMU_SET_ENDPOINT, &ep))
		return -errno;
	return 0;
}

static int running(int on)
{
	return ioctl(vfd, VHOST_IOMMU_SET_RUNNING, &on) ? -errno : 0;
}

/* Statuses and order on an invalidation queue */
static void test_inval(void)
{
	struct inval *ok = inval(DOMAIN, VIRTIO_IOMMU_INVAL_C_TLB |
				 VIRTIO_IOMMU_INVAL_C_PASID);
	struct inval *noent = inval(99, VIRTIO_IOMMU_INVAL_C_TLB);
	struct inval *bad = inval(DOMAIN, 0);
	struct inval *ok2 = inval(DOMAIN, VIRTIO_IOMMU_INVAL_C_PASID);
	struct virtio_iommu_req_attach *att = alloc(sizeof(*att));
	struct inval *shrt = inval(DOMAIN, VIRTIO_IOMMU_INVAL_C_TLB);
	uint16_t heads[6];
	uint32_t len;
	int id;

	memset(att, 0, sizeof(*att));
	att->head.type = VIRTIO_IOMMU_T_ATTACH;
	att->tail.status = 0xee;
	heads[0] = post_inval(1, ok);
	heads[1] = post_inval(1, noent);
	heads[2] = post(1, att, offsetof(typeof(*att), tail), &att->tail,
			sizeof(att->tail));
	heads[3] = post_inval(1, bad);
	heads[4] = post(1, &shrt->req, 8, &shrt->tail, sizeof(shrt->tail));
	heads[5] = post_inval(1, ok2);
	kick(1);
	for (int i = 0; i < 6; i++) {
		id = used(1, &len);
		CHECK(id == heads[i], "completion %d: head %d, want %d", i, id,
		      heads[i]);
		CHECK(len == (i == 2 ? 0 : 4), "completion %d: len %u", i, len);
	}
	CHECK(ok->tail.status == VIRTIO_IOMMU_S_OK, "%u", ok->tail.status);
	CHECK(noent->tail.status == VIRTIO_IOMMU_S_NOENT, "%u",
	      noent->tail.status);
	CHECK(att->tail.status == 0xee, "ATTACH written: %u", att->tail.status);
	CHECK(bad->tail.status == VIRTIO_IOMMU_S_INVAL, "%u", bad->tail.status);
	CHECK(shrt->tail.status == VIRTIO_IOMMU_S_INVAL, "%u",
	      shrt->tail.status);
	CHECK(ok2->tail.status == VIRTIO_IOMMU_S_OK, "%u", ok2->tail.status);
}

/* A page request on the PRQ, answered on invalidation queue 2 */
static void test_prq(struct mock *m)
{
	struct virtio_iommu_page_request *rec = alloc(sizeof(*rec));
	struct vhost_iommu_fault_queue fq = { .fd = m->fault_fd };
	struct {
		struct virtio_iommu_req_page_resp req;
		struct virtio_iommu_req_tail tail;
	} *resp = alloc(sizeof(*resp));
	struct iommu_test_cmd cmd = { .size = sizeof(cmd),
		.op = IOMMU_TEST_OP_TRIGGER_IOPF,
		.trigger_iopf = { .dev_id = m->idev, .grpid = 5,
				  .perm = IOMMU_PGFAULT_PERM_READ,
				  .addr = 0x1234000 } };
	uint32_t len;
	int id;

	CHECK(!ioctl(vfd, VHOST_IOMMU_SET_FAULT_QUEUE, &fq), "bind: %d", errno);
	post(0, NULL, 0, rec, sizeof(*rec));
	kick(0);
	CHECK(!ioctl(m->iommufd, IOMMU_TEST_CMD, &cmd), "trigger: %d", errno);
	id = used(0, &len);
	CHECK(id == 0 && len == sizeof(*rec), "record: id %d len %u used %u",
	      id, len, vqs[0].used->idx);

	CHECK(rec->reason == VIRTIO_IOMMU_FAULT_R_PAGE_REQUEST &&
	      rec->endpoint == ENDPOINT && rec->group == 5 &&
	      rec->address == 0x1234000, "record: %u %u %u %llx", rec->reason,
	      rec->endpoint, rec->group, (unsigned long long)rec->address);

	memset(resp, 0, sizeof(*resp));
	resp->req.head.type = VIRTIO_IOMMU_T_PAGE_RESP;
	resp->req.endpoint = ENDPOINT;
	resp->req.group = 5;
	resp->req.code = VIRTIO_IOMMU_PAGE_RESP_FAILURE;
	post(2, &resp->req, sizeof(resp->req), &resp->tail, sizeof(resp->tail));
	kick(2);
	id = used(2, &len);
	CHECK(id >= 0 && len == 4 && resp->tail.status == VIRTIO_IOMMU_S_OK,
	      "PAGE_RESP: len %u status %u", len, resp->tail.status);
	cmd = (struct iommu_test_cmd){ .size = sizeof(cmd),
		.op = IOMMU_TEST_OP_IOPF_RESPONSE,
		.iopf_response = { .dev_id = m->idev } };
	CHECK(!ioctl(m->iommufd, IOMMU_TEST_CMD, &cmd) &&
	      cmd.iopf_response.out_count >= 1, "mock saw no response");
}

/* Binding errors, a worker per queue, unbinding in order (B6) */
static void test_bindings(struct mock *m)
{
	struct vhost_iommu_iommufd unbind_fd = { .fd = -1 };
	struct vhost_iommu_endpoint ep = { .endpoint = ENDPOINT + 1,
		.domain = DOMAIN, .dev_id = m->idev, .vdev_id = VSID + 1 };
	struct vhost_iommu_domain dom = { .flags = VHOST_IOMMU_F_UNBIND,
					  .domain = DOMAIN };
	struct vhost_vring_worker vw = { .index = 2 };
	struct vhost_worker_state w = {};
	struct iommu_hwpt_pgfault pgf;
	struct inval *r;
	uint32_t len;

	CHECK(ioctl(vfd, VHOST_IOMMU_SET_IOMMUFD, &unbind_fd) && errno == EBUSY,
	      "iommufd unbound under a domain: %d", errno);
	CHECK(ioctl(vfd, VHOST_IOMMU_SET_ENDPOINT, &ep) && errno == EXDEV,
	      "foreign vDEVICE: %d", errno);
	CHECK(ioctl(vfd, VHOST_IOMMU_SET_DOMAIN, &dom) && errno == EBUSY,
	      "domain unbound under an endpoint: %d", errno);

	/* Invalidation queue 2 gets a worker of its own */
	CHECK(!ioctl(vfd, VHOST_NEW_WORKER, &w), "NEW_WORKER: %d", errno);
	vw.worker_id = w.worker_id;
	CHECK(!ioctl(vfd, VHOST_ATTACH_VRING_WORKER, &vw), "ATTACH: %d", errno);
	r = inval(DOMAIN, VIRTIO_IOMMU_INVAL_C_TLB);
	post_inval(2, r);
	kick(2);
	CHECK(used(2, &len) >= 0 && r->tail.status == VIRTIO_IOMMU_S_OK,
	      "own worker: %u", r->tail.status);

	ep = (struct vhost_iommu_endpoint){ .flags = VHOST_IOMMU_F_UNBIND,
					    .endpoint = ENDPOINT };
	CHECK(!ioctl(vfd, VHOST_IOMMU_SET_ENDPOINT, &ep), "ep unbind %d", errno);
	CHECK(!ioctl(vfd, VHOST_IOMMU_SET_DOMAIN, &dom), "dom unbind %d", errno);
	r = inval(DOMAIN, VIRTIO_IOMMU_INVAL_C_TLB);
	post_inval(2, r);
	kick(2);
	CHECK(used(2, &len) >= 0 && r->tail.status == VIRTIO_IOMMU_S_NOENT,
	      "unbound domain: %u", r->tail.status);
	/* Unbinding the iommufd gives its fault queue back (B6) */
	CHECK(read(m->fault_fd, &pgf, sizeof(pgf)) < 0 && errno == EBUSY,
	      "fault queue not claimed: %d", errno);
	CHECK(!ioctl(vfd, VHOST_IOMMU_SET_IOMMUFD, &unbind_fd), "%d", errno);
	errno = 0;
	CHECK(read(m->fault_fd, &pgf, sizeof(pgf)) >= 0 || errno != EBUSY,
	      "fault queue still claimed");
	CHECK(!bind(m), "rebind: %d", errno);
}

/* Stop, GET_VRING_BASE equals the used index, restart, reset */
static void test_stop_reset(void)
{
	struct vhost_vring_state state = { .index = 1 };
	struct inval *r;
	uint32_t len;

	CHECK(!running(0), "stop");
	r = inval(DOMAIN, VIRTIO_IOMMU_INVAL_C_TLB);
	post_inval(1, r);
	kick(1);
	CHECK(used(1, &len) < 0, "served while stopped");
	CHECK(!ioctl(vfd, VHOST_GET_VRING_BASE, &state), "GET_VRING_BASE");
	CHECK(state.num == vqs[1].used_idx, "base %u used %u", state.num,
	      vqs[1].used_idx);
	CHECK(!ioctl(vfd, VHOST_SET_VRING_BASE, &state), "SET_VRING_BASE");
	CHECK(!running(1), "restart");
	CHECK(used(1, &len) >= 0 && r->tail.status == VIRTIO_IOMMU_S_OK,
	      "bindings kept over a stop: %u", r->tail.status);

	CHECK(!ioctl(vfd, VHOST_IOMMU_RESET), "reset: %d", errno);
	CHECK(!running(1), "restart after reset");
	r = inval(DOMAIN, VIRTIO_IOMMU_INVAL_C_TLB);
	post_inval(1, r);
	kick(1);
	CHECK(used(1, &len) >= 0 && r->tail.status == VIRTIO_IOMMU_S_NOENT,
	      "bindings dropped by reset: %u", r->tail.status);
}

/* VHOST_F_LOG_ALL: the tail's page is marked dirty */
static void test_log(uint64_t features)
{
	/* Above mem >> 15, so that the log base does not wrap */
	uint8_t *bitmap = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t base = (uintptr_t)bitmap - ((uintptr_t)mem >> 12) / 8;
	uint64_t page, f = features | (1ULL << VHOST_F_LOG_ALL);
	struct inval *r;
	uint32_t len;

	CHECK(!running(0), "stop");
	CHECK(!ioctl(vfd, VHOST_SET_LOG_BASE, &base), "SET_LOG_BASE %d", errno);
	CHECK(!ioctl(vfd, VHOST_SET_FEATURES, &f), "LOG_ALL: %d", errno);
	CHECK(!running(1), "start");
	r = inval(99, VIRTIO_IOMMU_INVAL_C_TLB);
	post_inval(1, r);
	kick(1);
	CHECK(used(1, &len) >= 0 && len == 4, "served");
	page = (uintptr_t)&r->tail >> 12;
	CHECK(bitmap[page / 8 - ((uintptr_t)mem >> 12) / 8] & (1 << page % 8),
	      "tail page not logged");
}

int main(void)
{
	uint64_t features = (1ULL << VIRTIO_F_VERSION_1) |
			    (1ULL << VIRTIO_IOMMU_F_ATTACH_TABLE) |
			    (1ULL << VIRTIO_IOMMU_F_INVALQ) |
			    (1ULL << VIRTIO_IOMMU_F_PAGE_REQUEST);
	struct {
		struct vhost_memory mem;
		struct vhost_memory_region region;
	} table = { .mem.nregions = 1 };
	struct mock m = { .iommufd = -1, .fault_fd = -1 };
	uint64_t offered;
	int ret;

	mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	vfd = open("/dev/vhost-iommu", O_RDWR);
	if (mem == MAP_FAILED || vfd < 0 || ioctl(vfd, VHOST_SET_OWNER)) {
		printf("not ok: no device: %d\n", errno);
		return 1;
	}
	CHECK(!ioctl(vfd, VHOST_GET_FEATURES, &offered) &&
	      (offered & features) == features &&
	      offered & (1ULL << VHOST_F_LOG_ALL), "features %llx",
	      (unsigned long long)offered);
	CHECK(!ioctl(vfd, VHOST_SET_FEATURES, &features), "SET_FEATURES");
	table.region.guest_phys_addr = (uintptr_t)mem;
	table.region.userspace_addr = (uintptr_t)mem;
	table.region.memory_size = MEM_SIZE;
	CHECK(!ioctl(vfd, VHOST_SET_MEM_TABLE, &table), "mem table");
	for (int i = 0; i < NVQS; i++)
		CHECK(!setup_vq(i), "vq %d", i);
	/* Queues 3..8 have no ring: not served, no error */
	CHECK(!running(1), "start: %d", errno);

	ret = mock_setup(&m);
	CHECK(!ret, "mock: %d", ret);
	ret = bind(&m);
	CHECK(!ret, "bind: %d", ret);
	if (failed)
		return 1;
	test_inval();
	test_prq(&m);
	test_bindings(&m);
	test_stop_reset();
	test_log(features);
	close(vfd);
	printf("%s: vhost_iommu_smoke (%d failed checks)\n",
	       failed ? "not ok" : "ok", failed);
	return failed ? 1 : 0;
}
