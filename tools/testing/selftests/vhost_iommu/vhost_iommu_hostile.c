// SPDX-License-Identifier: GPL-2.0
/*
 * vhost-iommu (v2: the page-request queue and the invalidation queues)
 * against a careless VMM and failing allocations: fail-nth sweeps of every
 * allocation on the ioctl paths and on the worker's paths, and race loops of
 * the VMM's device-wide operations against the workers of two invalidation
 * queues and the page request path.
 *
 * The hostile and fault cases of the project's reference (anchors.md, C5),
 * as they apply to v2, and where each one is tested:
 *
 *  1 no writable part / writable before readable
 *        vhost_iommu_fuzz: in_len < 4 (used length 0), fatal kind
 *        out-after-in (FK_OUT_AFTER_IN)
 *  2 readable part shorter than the head or the type, writable part shorter
 *    than the tail
 *        vhost_iommu_fuzz: truncated parts
 *  3 header split over tiny iovecs, zero-length descriptors
 *        vhost_iommu_fuzz: split layouts with zero-length descriptors
 *        anywhere (any address, either direction in the readable part)
 *  4 unknown type, types an invalidation queue does not take
 *        vhost_iommu_fuzz: types 0, 9-255 and ATTACH..ATTACH_TABLE (used
 *        length 0, buffer untouched)
 *  5 reserved bytes, unknown flags, scope or caches bits
 *        vhost_iommu_fuzz: mutated bodies against the B1-shape model
 *  6 unknown domain, endpoint, PASID, group; another VM's IDs
 *        vhost_iommu_fuzz: unbound domains (S_NOENT), forged groups and VM
 *        b's held group, VM b with the same domain and endpoint IDs stays
 *        untouched; the careless VMM binds another context's fault queue
 *  7 range arithmetic: overflow, page_size >= 64, nr_pages 0 or huge
 *        vhost_iommu_fuzz: random page_size, nr_pages and addresses, ranges
 *        ending at 2^64 - 1 and one byte beyond
 *  8 huge batches
 *        vhost_iommu_fuzz: up to 448 requests per round over two queues
 *  9 descriptor loops, head >= num, bad indirect tables, nested indirect
 *        vhost_iommu_fuzz: fatal kinds FK_LOOP, FK_HEAD, FK_NEXT,
 *        FK_IND_LEN, FK_IND_NESTED, FK_IND_LOOP, FK_IND_ZERO, FK_AVAIL_JUMP;
 *        valid indirect tables throughout
 * 10 guest memory outside the memory table
 *        vhost_iommu_fuzz: FK_BAD_ADDR, FK_IND_ADDR; here: race.mem_table
 * 12 stale, forged, duplicate page responses
 *        vhost_iommu_fuzz: forged PAGE_RESP among real ones; here: races
 *        answer every page request exactly once
 * 13 no kernel memory in responses
 *        vhost_iommu_fuzz: tail reserved bytes zero, nothing written past
 *        the used length, refused requests' buffers untouched, page request
 *        records' reserved bytes zero
 * 14 ioctl reserved and flags rules
 *        vhost_iommu_fuzz: the careless VMM thread (EINVAL, EOPNOTSUPP)
 * 16 SET_MEM_TABLE while the workers run
 *        here: race.mem_table; vhost_iommu_fuzz: SET_MEM_TABLE during rounds
 * 17 bad fds, wrong IDs, rebinding, unbinding with requests in flight
 *        here: race.unbind; vhost_iommu_fuzz: unbind and bind during rounds,
 *        the careless VMM
 * 18 IOMMU_DESTROY of bound objects, closing the iommufd
 *        here: race.destroy (a stale endpoint costs no invalidation, B1),
 *        race.close_iommufd
 * 19 release racing the workers and the page request path
 *        here: race.close, race.reset_owner, race.reset, race.stop_start
 * 20 allocation failures on the ioctl and worker paths
 *        here: fail_nth.ioctl_paths, fail_nth.worker_paths,
 *        fail_nth.page_request_no_cookie
 * 21 all of it under KASAN, UBSAN, lockdep, PROVE_RCU, DEBUG_ATOMIC_SLEEP,
 *    kmemleak, panic_on_warn
 *        vmtest.sh (debug kernel; any splat fails the run)
 *
 * (11, commands the SMMU would reject, is the iommufd half's: KUnit.)
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <linux/iommufd.h>

#include "../kselftest_harness.h"
#include "vhost_iommu_utils.h"

#define TIMEOUT_MS	3000
#define RING_NUM	256
#define NQ		2	/* invalidation queues */
#define TAIL		sizeof(struct virtio_iommu_req_tail)
#define INVAL_LEN	offsetof(struct virtio_iommu_req_invalidate, tail)
#define RESP_LEN	offsetof(struct virtio_iommu_req_page_resp, tail)
#define REC_LEN		sizeof(struct virtio_iommu_page_request)
#define DOM_ID		1
#define EP_ID		5
#define VSID		0x10
/* fail-nth: iterations per sweep before giving up (as iommufd_fail_nth) */
#define NTH_MAX		1000

#define BIT64(n)	(1ULL << (n))
#define FEATURES	(BIT64(VIRTIO_F_VERSION_1) |			\
			 BIT64(VIRTIO_RING_F_INDIRECT_DESC) |		\
			 BIT64(VIRTIO_IOMMU_F_ATTACH_TABLE) |		\
			 BIT64(VIRTIO_IOMMU_F_PAGE_REQUEST) |		\
			 BIT64(VIRTIO_IOMMU_F_INVALQ))

/* Guest RAM at guest-physical address @addr */
static void *hva(struct vi_dev *d, uint64_t addr)
{
	return (uint8_t *)d->mem + (addr - VI_GPA_BASE);
}

static int mock_trigger(struct vi_mock *m, uint32_t grpid, uint64_t addr)
{
	return vi_mock_trigger(m, m->idev_id, 0, grpid, addr);
}

static int mock_responses(struct vi_mock *m)
{
	return vi_mock_responses(m, m->idev_id, NULL, NULL);
}

/* The entries the mock vIOMMU handled since the last read, or -errno */
static int mock_entries(struct vi_mock *m)
{
	uint32_t num = 0, calls, lost = 0;
	int ret = vi_mock_log(m->iommufd, m->viommu_id, NULL, 0, &num, &calls,
			      &lost);

	return ret ? ret : (int)(num + lost);
}

static uint8_t *make_inval(struct vi_dev *d)
{
	struct virtio_iommu_req_invalidate *inv = vi_alloc(d, sizeof(*inv));

	memset(inv, 0, sizeof(*inv));
	inv->head.type = VIRTIO_IOMMU_T_INVALIDATE;
	inv->scope = VIRTIO_IOMMU_INVAL_S_ADDRESS;
	inv->caches = VIRTIO_IOMMU_INVAL_C_TLB;
	inv->domain = DOM_ID;
	inv->address = 0x100000;
	inv->nr_pages = 1;
	inv->page_size = 12;
	return (uint8_t *)inv;
}

static uint8_t *make_page_resp(struct vi_dev *d, uint32_t group)
{
	struct virtio_iommu_req_page_resp *pr = vi_alloc(d, sizeof(*pr));

	memset(pr, 0, sizeof(*pr));
	pr->head.type = VIRTIO_IOMMU_T_PAGE_RESP;
	pr->endpoint = EP_ID;
	pr->group = group;
	pr->code = VIRTIO_IOMMU_PAGE_RESP_SUCCESS;
	return (uint8_t *)pr;
}

static uint8_t *make_resp(struct vi_dev *d, uint32_t len)
{
	uint8_t *resp = vi_alloc(d, len);

	memset(resp, 0xa5, len);
	return resp;
}

/* Post a page-request buffer: @buf again, or a new one */
static int post_prq_buf_at(struct vi_dev *d, void *buf)
{
	struct vi_seg seg = { .addr = buf, .len = REC_LEN, .writable = true };

	if (!seg.addr)
		seg.addr = vi_alloc(d, REC_LEN);
	if (!seg.addr)
		return -ENOMEM;
	memset(seg.addr, 0xff, REC_LEN);
	return vi_post(d, VI_PRQ_VQ, &seg, 1);
}

static int post_prq_buf(struct vi_dev *d)
{
	return post_prq_buf_at(d, NULL);
}

/* Reap what came back on the invalidation queues, until all came back */
static int drain(struct vi_dev *d, int timeout_ms)
{
	struct timespec start;
	uint32_t id, len;

	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		bool busy = false;

		for (unsigned int q = VI_INVALQ(0); q <= d->nr_invalq; q++) {
			while (vi_nr_used(d, q))
				vi_get_used(d, q, &id, &len, 0);
			if (d->vqs[q].nr_free != d->vqs[q].num) {
				busy = true;
				vi_kick(d, q);
			}
		}
		if (!busy)
			return 0;
		if (vi_ms_since(&start) > timeout_ms)
			return -ETIMEDOUT;
		usleep(1000);
	}
}

/*
 * One INVALIDATE on each invalidation queue, served in the kernel: the
 * device works. With the mock (@m), each made two entries: the domain's
 * TLB entry and its endpoint's.
 */
static int serves(struct vi_dev *d, struct vi_mock *m)
{
	uint32_t id, len;

	if (m)
		mock_entries(m);
	for (unsigned int q = VI_INVALQ(0); q <= d->nr_invalq; q++) {
		uint8_t *resp = make_resp(d, TAIL);
		int head;

		head = vi_post_req(d, q, make_inval(d), INVAL_LEN, resp, TAIL);
		if (head < 0)
			return head;
		vi_kick(d, q);
		if (vi_get_used(d, q, &id, &len, TIMEOUT_MS))
			return -ETIMEDOUT;
		if (id != (uint32_t)head || len != TAIL ||
		    resp[0] != VIRTIO_IOMMU_S_OK)
			return -EIO;
		if (m && mock_entries(m) != 2)
			return -EIO;
	}
	return 0;
}

/* ------------------------------------------------------------ fail-nth */

FIXTURE(fail_nth) {
	struct vi_mock m;
	int nth_fd;
};

FIXTURE_SETUP(fail_nth)
{
	int ret;

	self->m.iommufd = -1;
	self->m.fault_fd = -1;
	self->nth_fd = -1;
	if (access("/dev/vhost-iommu", F_OK))
		SKIP(return, "no /dev/vhost-iommu");
	ret = vi_mock_setup(&self->m, VSID);
	if (ret == -ENOTTY || ret == -ENOENT)
		SKIP(return, "no iommufd selftest mock");
	ASSERT_EQ(0, ret);
	if (vi_fault_setup())
		SKIP(return, "no fault injection in debugfs");
	self->nth_fd = vi_fail_nth_open(0);
	ASSERT_LE(0, self->nth_fd);
}

FIXTURE_TEARDOWN(fail_nth)
{
	if (self->nth_fd >= 0) {
		vi_fail_nth_set(self->nth_fd, 0);
		close(self->nth_fd);
	}
	vi_mock_close(&self->m);
}

/*
 * The VMM's whole life with the device, each step an ioctl whose allocations
 * fail in turn: open, owner, features, memory table, the page-request queue
 * and two invalidation queues, a second worker for the second queue, start,
 * the bindings (iommufd, domain, endpoint, fault queue), an INVALIDATE on
 * each queue, stop and start (a VM pause), unbinding, VHOST_IOMMU_RESET,
 * binding again, RESET_OWNER, release. Memory and eventfds are made before,
 * so that only the device's paths see the faults. Return 0 if everything
 * succeeded.
 */
#define LIFE_VQS	(1 + NQ)

struct vmm_life {
	void *mem;
	int kick[LIFE_VQS], call[LIFE_VQS], err[LIFE_VQS];
};

static int life_inval(struct vmm_life *l, unsigned int i)
{
	uint8_t *base = (uint8_t *)l->mem + i * 4096;
	struct vring_desc *desc = (void *)base;
	struct vring_avail *avail = (void *)(base + 1024);
	struct vring_used *used = (void *)(base + 2048);
	uint8_t *req = base + 3072, *resp = base + 3072 + 128;
	struct virtio_iommu_req_invalidate *inv = (void *)req;

	memset(inv, 0, INVAL_LEN);
	inv->head.type = VIRTIO_IOMMU_T_INVALIDATE;
	inv->scope = VIRTIO_IOMMU_INVAL_S_DOMAIN;
	inv->caches = VIRTIO_IOMMU_INVAL_C_TLB;
	inv->domain = DOM_ID;
	memset(resp, 0xa5, TAIL);
	desc[0] = (struct vring_desc){ .addr = (uintptr_t)req,
				       .len = INVAL_LEN,
				       .flags = VRING_DESC_F_NEXT, .next = 1 };
	desc[1] = (struct vring_desc){ .addr = (uintptr_t)resp, .len = TAIL,
				       .flags = VRING_DESC_F_WRITE };
	avail->ring[0] = 0;
	__atomic_store_n(&avail->idx, 1, __ATOMIC_RELEASE);
	eventfd_write(l->kick[i], 1);
	for (int t = 0; t < TIMEOUT_MS; t++) {
		if (__atomic_load_n(&used->idx, __ATOMIC_ACQUIRE) == 1)
			return used->ring[0].len == TAIL &&
			       resp[0] == VIRTIO_IOMMU_S_OK ? 0 : -EIO;
		usleep(1000);
	}
	return -ETIMEDOUT;
}

static int vmm_life_run(struct vmm_life *l, struct vi_mock *m, int nth_fd,
			unsigned int nth)
{
	struct {
		struct vhost_memory mem;
		struct vhost_memory_region region;
	} table = {
		.mem.nregions = 1,
		.region = {
			.guest_phys_addr = (uintptr_t)l->mem,
			.memory_size = VI_MEM_SIZE,
			.userspace_addr = (uintptr_t)l->mem,
		},
	};
	struct vhost_worker_state worker = {};
	struct vhost_vring_worker vworker = { .index = VI_INVALQ(1) };
	uint8_t *base = l->mem;
	uint64_t features = FEATURES;
	int fd, ret = -1, i, run = 1, stop = 0;

	memset(l->mem, 0, LIFE_VQS * 4096);
	if (nth)
		vi_fail_nth_set(nth_fd, nth);
	fd = open("/dev/vhost-iommu", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		goto out;
	if (ioctl(fd, VHOST_SET_OWNER) || ioctl(fd, VHOST_SET_FEATURES, &features) ||
	    ioctl(fd, VHOST_SET_MEM_TABLE, &table))
		goto out_close;
	for (i = 0; i < LIFE_VQS; i++) {
		struct vhost_vring_state state = { .index = i, .num = 16 };
		struct vhost_vring_addr addr = {
			.index = i,
			.desc_user_addr = (uintptr_t)base + i * 4096,
			.avail_user_addr = (uintptr_t)base + i * 4096 + 1024,
			.used_user_addr = (uintptr_t)base + i * 4096 + 2048,
		};
		struct vhost_vring_file kick = { .index = i, .fd = l->kick[i] };
		struct vhost_vring_file call = { .index = i, .fd = l->call[i] };
		struct vhost_vring_file err = { .index = i, .fd = l->err[i] };

		if (ioctl(fd, VHOST_SET_VRING_NUM, &state) ||
		    ioctl(fd, VHOST_SET_VRING_ADDR, &addr) ||
		    ioctl(fd, VHOST_SET_VRING_KICK, &kick) ||
		    ioctl(fd, VHOST_SET_VRING_CALL, &call) ||
		    ioctl(fd, VHOST_SET_VRING_ERR, &err))
			goto out_close;
	}
	/* The second invalidation queue on a worker of its own */
	if (ioctl(fd, VHOST_NEW_WORKER, &worker))
		goto out_close;
	vworker.worker_id = worker.worker_id;
	if (ioctl(fd, VHOST_ATTACH_VRING_WORKER, &vworker) ||
	    ioctl(fd, VHOST_IOMMU_SET_RUNNING, &run))
		goto out_close;
	if (vi_set_iommufd(fd, m->iommufd, 0) ||
	    vi_set_domain(fd, 0, DOM_ID, m->viommu_id) ||
	    vi_set_endpoint(fd, 0, EP_ID, DOM_ID, m->idev_id, m->vsid) ||
	    vi_set_fault_queue(fd, 0, m->fault_fd))
		goto out_close;
	/* Served on each queue, by each worker */
	for (i = VI_INVALQ(0); i < LIFE_VQS; i++)
		if (life_inval(l, i))
			goto out_close;
	/* A VM pause, then everything undone, reset, bound again */
	if (ioctl(fd, VHOST_IOMMU_SET_RUNNING, &stop) ||
	    ioctl(fd, VHOST_IOMMU_SET_RUNNING, &run) ||
	    vi_set_fault_queue(fd, 0, -1) ||
	    vi_set_endpoint(fd, VHOST_IOMMU_F_UNBIND, EP_ID, 0, 0, 0) ||
	    vi_set_domain(fd, VHOST_IOMMU_F_UNBIND, DOM_ID, 0) ||
	    vi_set_iommufd(fd, -1, 0) ||
	    vi_set_iommufd(fd, m->iommufd, 0) ||
	    vi_set_domain(fd, 0, DOM_ID, m->viommu_id) ||
	    vi_set_endpoint(fd, 0, EP_ID, DOM_ID, m->idev_id, m->vsid) ||
	    vi_set_fault_queue(fd, 0, m->fault_fd) ||
	    ioctl(fd, VHOST_IOMMU_RESET) ||
	    vi_set_iommufd(fd, m->iommufd, 0) ||
	    vi_set_domain(fd, 0, DOM_ID, m->viommu_id) ||
	    ioctl(fd, VHOST_RESET_OWNER))
		goto out_close;
	ret = 0;
out_close:
	close(fd);
out:
	return ret;
}

/*
 * Every allocation the VMM's calls make, failing in turn (the thread's
 * fail-nth): each call fails cleanly or succeeds, the device unwinds,
 * nothing leaks (kmemleak at the end of the run), and after each iteration
 * a new device does it all again without faults.
 */
TEST_F_TIMEOUT(fail_nth, ioctl_paths, 600)
{
	struct vmm_life l;
	unsigned int nth, fired = 0;

	l.mem = mmap(NULL, VI_MEM_SIZE, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	ASSERT_NE(MAP_FAILED, l.mem);
	for (int i = 0; i < LIFE_VQS; i++) {
		l.kick[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		l.call[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		l.err[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		ASSERT_LE(0, l.kick[i]);
		ASSERT_LE(0, l.call[i]);
		ASSERT_LE(0, l.err[i]);
	}

	/* Without faults first: the sequence must work */
	ASSERT_EQ(0, vmm_life_run(&l, &self->m, self->nth_fd, 0));
	for (nth = 1; nth < NTH_MAX; nth++) {
		vmm_life_run(&l, &self->m, self->nth_fd, nth);
		if (!vi_fail_nth_fired(self->nth_fd)) {
			/* The sequence ran to its end before the n-th site */
			break;
		}
		fired++;
		ASSERT_EQ(0, vmm_life_run(&l, &self->m, self->nth_fd, 0)) {
			TH_LOG("the device failed after a fault at site %u", nth);
		}
	}
	TH_LOG("ioctl paths: %u allocation sites failed in turn", fired);
	ASSERT_LT(nth, NTH_MAX);
	ASSERT_LT(10, fired);
}

static int failslab_attr(const char *name, const char *val)
{
	char path[96];

	snprintf(path, sizeof(path), "/sys/kernel/debug/failslab/%s", name);
	return vi_write_file(path, val);
}

/*
 * Regression test: no memory for a page request's cookie. iommufd puts the
 * group back in its queue (-ENOMEM from iommufd_fault_fetch()); the device
 * used to stop reading the queue then, and nothing woke it again until
 * another fault came or the guest answered a group: the page request
 * waited forever. One injected failure cannot fail xa_alloc_cyclic() (it
 * retries with GFP_KERNEL), so this fails the worker's next two slab
 * allocations: both attempts at the node of the cookie xarray, which the
 * first cookie needs.
 */
TEST_F_TIMEOUT(fail_nth, page_request_no_cookie, 120)
{
	struct virtio_iommu_page_request *rec;
	uint32_t id, len;
	char path[64];
	struct vi_dev d;
	int tid, base, ret, head;
	uint8_t *resp;

	ASSERT_EQ(0, vi_open(&d));
	ASSERT_EQ(0, vi_setup(&d, FEATURES, RING_NUM, 1));
	ASSERT_EQ(0, vi_bind_mock(&d, &self->m, DOM_ID, EP_ID, true));
	tid = vi_worker_tid();
	ASSERT_LT(0, tid);
	ASSERT_LE(0, post_prq_buf(&d));
	rec = hva(&d, d.vqs[VI_PRQ_VQ].desc[0].addr);
	eventfd_write(d.vqs[VI_PRQ_VQ].kick_fd, 1);
	/* Let the worker see the buffer first */
	usleep(100000);
	base = mock_responses(&self->m);

	/* The worker's next two slab allocations fail */
	snprintf(path, sizeof(path), "/proc/%d/make-it-fail", tid);
	ASSERT_EQ(0, vi_write_file(path, "1"));
	ASSERT_EQ(0, failslab_attr("task-filter", "Y"));
	ASSERT_EQ(0, failslab_attr("interval", "1"));
	ASSERT_EQ(0, failslab_attr("times", "2"));
	ASSERT_EQ(0, failslab_attr("probability", "100"));

	ASSERT_EQ(0, mock_trigger(&self->m, 7, 0x100000));
	ret = vi_get_used(&d, VI_PRQ_VQ, &id, &len, TIMEOUT_MS);

	failslab_attr("probability", "0");
	failslab_attr("task-filter", "N");
	vi_write_file(path, "0");
	ASSERT_EQ(0, ret) {
		TH_LOG("the page request waits in iommufd, the device sleeps");
	}
	ASSERT_EQ(REC_LEN, len);
	ASSERT_EQ(VIRTIO_IOMMU_FAULT_R_PAGE_REQUEST, rec->reason);
	ASSERT_EQ(0x100000, rec->address);
	/* Nothing was refused on the way */
	ASSERT_EQ(base, mock_responses(&self->m));
	/* The guest answers it */
	resp = make_resp(&d, TAIL);
	head = vi_post_req(&d, VI_INVALQ(0), make_page_resp(&d, rec->group),
			   RESP_LEN, resp, TAIL);
	ASSERT_LE(0, head);
	eventfd_write(d.vqs[VI_INVALQ(0)].kick_fd, 1);
	ASSERT_EQ(0, vi_get_used(&d, VI_INVALQ(0), &id, &len, TIMEOUT_MS));
	ASSERT_EQ(head, id);
	ASSERT_EQ(VIRTIO_IOMMU_S_OK, resp[0]);
	ASSERT_EQ(base + 1, mock_responses(&self->m));
	vi_close(&d);
}

/*
 * Every allocation of the worker, failing in turn (fail-nth of the vhost
 * worker thread): serving INVALIDATEs (a domain entry and an endpoint entry
 * each, two requests in one batch), taking page requests from the fault
 * queue, writing their records, answering them with PAGE_RESP. Each request
 * completes, with S_NOMEM or S_DEVERR where its allocation failed; a page
 * request the device could not take is answered INVALID to the IOMMU; no
 * page request is lost; the device serves the next round.
 */
TEST_F_TIMEOUT(fail_nth, worker_paths, 600)
{
	unsigned int nth, fired = 0, nomem = 0;
	int tid, wfd, base_resp;
	struct vi_dev d;

	ASSERT_EQ(0, vi_open(&d));
	ASSERT_EQ(0, vi_setup(&d, FEATURES, RING_NUM, 1));
	ASSERT_EQ(0, vi_bind_mock(&d, &self->m, DOM_ID, EP_ID, true));
	tid = vi_worker_tid();
	ASSERT_LT(0, tid);
	wfd = vi_fail_nth_open(tid);
	ASSERT_LE(0, wfd);
	/* Two page-request buffers, each posted again once used */
	ASSERT_LE(0, post_prq_buf(&d));
	ASSERT_LE(0, post_prq_buf(&d));

	for (nth = 0; nth < NTH_MAX; nth++) {
		uint8_t *i_resp[2];
		int i_head[2], delivered = 0;
		uint32_t id, len;

		d.mem_used = 0x100000;	/* reuse the request buffers */
		mock_entries(&self->m);
		base_resp = mock_responses(&self->m);
		if (nth)
			ASSERT_EQ(0, vi_fail_nth_set(wfd, nth));

		/* Two INVALIDATEs in one kick */
		for (int k = 0; k < 2; k++) {
			i_resp[k] = make_resp(&d, TAIL);
			i_head[k] = vi_post_req(&d, VI_INVALQ(0), make_inval(&d),
						INVAL_LEN, i_resp[k], TAIL);
			ASSERT_LE(0, i_head[k]);
		}
		eventfd_write(d.vqs[VI_INVALQ(0)].kick_fd, 1);
		for (int k = 0; k < 2; k++) {
			ASSERT_EQ(0, vi_get_used(&d, VI_INVALQ(0), &id, &len,
						 TIMEOUT_MS));
			ASSERT_EQ(TAIL, len);
		}
		for (int k = 0; k < 2; k++) {
			if (i_resp[k][0] == VIRTIO_IOMMU_S_OK)
				continue;
			ASSERT_TRUE(i_resp[k][0] == VIRTIO_IOMMU_S_NOMEM ||
				    i_resp[k][0] == VIRTIO_IOMMU_S_DEVERR) {
				TH_LOG("INVALIDATE status %u at worker site %u",
				       i_resp[k][0], nth);
			}
			nomem++;
		}

		/*
		 * Two page requests (two groups in flight need more than the
		 * first cookie): each delivered and answered, or refused to
		 * the IOMMU; both answered in the end.
		 */
		ASSERT_EQ(0, mock_trigger(&self->m, 7, 0x100000));
		ASSERT_EQ(0, mock_trigger(&self->m, 8, 0x200000));
		for (int t = 0; t < TIMEOUT_MS / 10; t++) {
			struct virtio_iommu_page_request *rec;
			uint8_t *p_resp;
			int p_head;

			if (mock_responses(&self->m) == base_resp + 2)
				break;
			if (!vi_nr_used(&d, VI_PRQ_VQ)) {
				usleep(10000);
				continue;
			}
			ASSERT_EQ(0, vi_get_used(&d, VI_PRQ_VQ, &id, &len, 0));
			ASSERT_EQ(REC_LEN, len);
			rec = hva(&d, d.vqs[VI_PRQ_VQ].desc[id].addr);
			ASSERT_EQ(VIRTIO_IOMMU_FAULT_R_PAGE_REQUEST, rec->reason);
			delivered++;
			p_resp = make_resp(&d, TAIL);
			p_head = vi_post_req(&d, VI_INVALQ(0),
					     make_page_resp(&d, rec->group),
					     RESP_LEN, p_resp, TAIL);
			ASSERT_LE(0, p_head);
			ASSERT_LE(0, post_prq_buf_at(&d, rec));
			eventfd_write(d.vqs[VI_INVALQ(0)].kick_fd, 1);
			eventfd_write(d.vqs[VI_PRQ_VQ].kick_fd, 1);
			ASSERT_EQ(0, vi_get_used(&d, VI_INVALQ(0), &id, &len,
						 TIMEOUT_MS));
			ASSERT_EQ(p_head, id);
			/* Refused for want of memory, then INVALID by the device */
			if (p_resp[0] != VIRTIO_IOMMU_S_OK) {
				ASSERT_TRUE(p_resp[0] == VIRTIO_IOMMU_S_NOMEM ||
					    p_resp[0] == VIRTIO_IOMMU_S_DEVERR);
			}
		}
		ASSERT_EQ(base_resp + 2, mock_responses(&self->m)) {
			TH_LOG("page request lost or answered twice (fault site %u, %d delivered)",
			       nth, delivered);
		}

		if (!nth) {
			/* Without faults: both served, two entries each */
			ASSERT_EQ(4, mock_entries(&self->m));
			ASSERT_EQ(2, delivered);
			continue;
		}
		if (!vi_fail_nth_fired(wfd))
			break;
		fired++;
	}
	TH_LOG("worker paths: %u allocation sites failed in turn, %u INVALIDATEs refused",
	       fired, nomem);
	ASSERT_LT(nth, NTH_MAX);
	ASSERT_LT(0, fired);
	close(wfd);
	ASSERT_EQ(0, drain(&d, TIMEOUT_MS));
	ASSERT_EQ(0, serves(&d, &self->m));
	vi_close(&d);
}

/* ------------------------------------------------------------ races */

enum race_op {
	RACE_CLOSE,
	RACE_RESET_OWNER,
	RACE_RESET,
	RACE_STOP_START,
	RACE_RING_CHANGE,
	RACE_MEM_TABLE,
	RACE_UNBIND,
	RACE_DESTROY,
	RACE_CLOSE_IOMMUFD,
};

/*
 * Traffic on one device with two invalidation queues, each on its own
 * worker: a guest thread posting INVALIDATEs on both queues, reading the
 * page request records and answering each group with a PAGE_RESP on
 * alternate queues; a thread raising page requests. The test thread races
 * one VMM operation against them. The guest checks every INVALIDATE status
 * against what the operation allows.
 */
struct traffic {
	struct vi_dev *d;
	struct vi_mock *m;
	enum race_op op;
	pthread_t guest, faults;
	bool stop;
	unsigned int posted, completed, bad_status, records, answered;
	unsigned int triggered;
	uint8_t last_bad;
	/* Groups delivered and not answered yet (no room in the queues) */
	uint32_t pend[512];
	unsigned int nr_pend;
};

static bool stopping(struct traffic *t)
{
	return __atomic_load_n(&t->stop, __ATOMIC_ACQUIRE);
}

/* The INVALIDATE statuses an operation may cause */
static bool status_ok(enum race_op op, uint8_t st)
{
	if (st == VIRTIO_IOMMU_S_OK)
		return true;
	/* Unbound for a moment, or dropped by the reset until bound again */
	return st == VIRTIO_IOMMU_S_NOENT &&
	       (op == RACE_UNBIND || op == RACE_RESET);
}

/* Reap the invalidation queues: check the INVALIDATE statuses */
static void reap(struct traffic *t)
{
	struct vi_dev *d = t->d;
	uint32_t id, len;

	for (unsigned int q = VI_INVALQ(0); q <= d->nr_invalq; q++) {
		while (vi_nr_used(d, q)) {
			struct vring_desc *desc;
			uint8_t *req, *resp;

			vi_get_used(d, q, &id, &len, 0);
			if (id >= d->vqs[q].num)
				continue;
			desc = &d->vqs[q].desc[id];
			req = hva(d, desc->addr);
			resp = hva(d, d->vqs[q].desc[desc->next].addr);
			t->completed++;
			if (req[0] != VIRTIO_IOMMU_T_INVALIDATE)
				continue;
			if (len != TAIL || !status_ok(t->op, resp[0])) {
				t->bad_status++;
				t->last_bad = len != TAIL ? 0xff : resp[0];
			}
		}
	}
}

static void *guest_fn(void *arg)
{
	struct traffic *t = arg;
	struct vi_dev *d = t->d;
	size_t mark;
	unsigned int q = 0;

	/* Buffers for the page request records, posted again once used */
	for (int i = 0; i < 16; i++)
		post_prq_buf(d);
	eventfd_write(d->vqs[VI_PRQ_VQ].kick_fd, 1);
	mark = d->mem_used;
	while (!stopping(t)) {
		/* Buffers are reused once the ring went round */
		if (d->mem_used > VI_MEM_SIZE - 8192)
			d->mem_used = mark;
		for (int i = 0; i < 8; i++) {
			q = VI_INVALQ((q + 1 - VI_INVALQ(0)) % NQ);
			if (d->vqs[q].nr_free < 2)
				continue;
			vi_post_req(d, q, make_inval(d), INVAL_LEN,
				    make_resp(d, TAIL), TAIL);
			t->posted++;
		}
		/* Page requests: each group is answered, on the next queue */
		while (vi_nr_used(d, VI_PRQ_VQ)) {
			struct virtio_iommu_page_request *rec;
			uint32_t id, len;

			vi_get_used(d, VI_PRQ_VQ, &id, &len, 0);
			if (id >= d->vqs[VI_PRQ_VQ].num)
				continue;
			rec = hva(d, d->vqs[VI_PRQ_VQ].desc[id].addr);
			t->records++;
			if (len == REC_LEN && t->nr_pend < ARRAY_SIZE(t->pend))
				t->pend[t->nr_pend++] = rec->group;
			post_prq_buf_at(d, rec);
		}
		while (t->nr_pend) {
			q = VI_INVALQ((q + 1 - VI_INVALQ(0)) % NQ);
			if (d->vqs[q].nr_free < 2)
				break;
			vi_post_req(d, q, make_page_resp(d, t->pend[--t->nr_pend]),
				    RESP_LEN, make_resp(d, TAIL), TAIL);
			t->answered++;
		}
		for (unsigned int k = 0; k <= d->nr_invalq; k++)
			eventfd_write(d->vqs[k].kick_fd, 1);
		reap(t);
		usleep(200);
	}
	return NULL;
}

static void *faults_fn(void *arg)
{
	struct traffic *t = arg;

	while (!stopping(t) && t->triggered < 300) {
		if (!mock_trigger(t->m, 1 + t->triggered % 500, 0x100000))
			t->triggered++;
		usleep(300);
	}
	return NULL;
}

static int traffic_start(struct traffic *t, struct vi_dev *d,
			 struct vi_mock *m, enum race_op op)
{
	memset(t, 0, sizeof(*t));
	t->d = d;
	t->m = m;
	t->op = op;
	if (pthread_create(&t->guest, NULL, guest_fn, t))
		return -1;
	if (pthread_create(&t->faults, NULL, faults_fn, t))
		return -1;
	return 0;
}

static void traffic_stop(struct traffic *t)
{
	__atomic_store_n(&t->stop, true, __ATOMIC_RELEASE);
	pthread_join(t->guest, NULL);
	pthread_join(t->faults, NULL);
}

/*
 * After the traffic: every page request the mock device raised is answered
 * exactly once, by the guest's PAGE_RESP or by the device (a reset, a
 * release, a refusal): answer what is still delivered, then count.
 */
static int all_answered(struct vi_dev *d, struct vi_mock *m,
			struct traffic *tr, int want)
{
	int got = -1;
	uint32_t id, len;

	/* The groups the guest saw and could not answer yet */
	while (d && tr->nr_pend) {
		vi_post_req(d, VI_INVALQ(0),
			    make_page_resp(d, tr->pend[--tr->nr_pend]),
			    RESP_LEN, make_resp(d, TAIL), TAIL);
		vi_kick(d, VI_INVALQ(0));
		vi_get_used(d, VI_INVALQ(0), &id, &len, TIMEOUT_MS);
	}

	/* Room for what is still in the fault queue (the rings may be new) */
	for (int k = 0; d && k < 8; k++)
		post_prq_buf(d);
	if (d)
		eventfd_write(d->vqs[VI_PRQ_VQ].kick_fd, 1);
	for (int t = 0; t < TIMEOUT_MS / 10; t++) {
		struct iommu_hwpt_pgfault f[8];
		ssize_t n;

		got = mock_responses(m);
		if (got >= want)
			break;
		while (d && vi_nr_used(d, VI_PRQ_VQ)) {
			struct virtio_iommu_page_request *rec;

			vi_get_used(d, VI_PRQ_VQ, &id, &len, 0);
			rec = hva(d, d->vqs[VI_PRQ_VQ].desc[id].addr);
			vi_post_req(d, VI_INVALQ(0),
				    make_page_resp(d, rec->group), RESP_LEN,
				    make_resp(d, TAIL), TAIL);
			post_prq_buf_at(d, rec);
			eventfd_write(d->vqs[VI_INVALQ(0)].kick_fd, 1);
			eventfd_write(d->vqs[VI_PRQ_VQ].kick_fd, 1);
			vi_get_used(d, VI_INVALQ(0), &id, &len, TIMEOUT_MS);
		}
		/* Without the device, the fault queue is the VMM's again */
		n = d ? 0 : read(m->fault_fd, f, sizeof(f));
		for (int k = 0; n > 0 && k < n / (ssize_t)sizeof(f[0]); k++) {
			struct iommu_hwpt_page_response r = {
				.cookie = f[k].cookie,
				.code = IOMMUFD_PAGE_RESP_INVALID,
			};

			if (write(m->fault_fd, &r, sizeof(r)) != sizeof(r))
				return -EIO;
		}
		usleep(10000);
	}
	usleep(10000);
	got = mock_responses(m);
	return got == want ? 0 : got;
}

FIXTURE(race) {
	unsigned int loops;
};

FIXTURE_VARIANT(race) {
	enum race_op op;
	unsigned int loops;
};

FIXTURE_VARIANT_ADD(race, close) { .op = RACE_CLOSE, .loops = 10 };
FIXTURE_VARIANT_ADD(race, reset_owner) { .op = RACE_RESET_OWNER, .loops = 10 };
FIXTURE_VARIANT_ADD(race, reset) { .op = RACE_RESET, .loops = 10 };
FIXTURE_VARIANT_ADD(race, stop_start) { .op = RACE_STOP_START, .loops = 10 };
FIXTURE_VARIANT_ADD(race, ring_change) { .op = RACE_RING_CHANGE, .loops = 10 };
FIXTURE_VARIANT_ADD(race, mem_table) { .op = RACE_MEM_TABLE, .loops = 10 };
FIXTURE_VARIANT_ADD(race, unbind) { .op = RACE_UNBIND, .loops = 10 };
FIXTURE_VARIANT_ADD(race, destroy) { .op = RACE_DESTROY, .loops = 10 };
FIXTURE_VARIANT_ADD(race, close_iommufd) { .op = RACE_CLOSE_IOMMUFD, .loops = 10 };

FIXTURE_SETUP(race)
{
	if (access("/dev/vhost-iommu", F_OK))
		SKIP(return, "no /dev/vhost-iommu");
	if (access("/dev/iommu", F_OK))
		SKIP(return, "no /dev/iommu");
}

FIXTURE_TEARDOWN(race)
{
}

/* A device with the page-request queue and two invalidation queues, each on a worker */
static int race_device(struct vi_dev *d, struct vi_mock *m)
{
	struct vhost_worker_state worker = {};
	struct vhost_vring_worker vworker = { .index = VI_INVALQ(1) };
	int ret;

	ret = vi_open(d);
	if (!ret)
		ret = vi_setup(d, FEATURES, RING_NUM, NQ);
	if (ret)
		return ret;
	/* Attaching a worker needs the device stopped */
	if (vi_set_running(d, 0) || ioctl(d->fd, VHOST_NEW_WORKER, &worker))
		return -errno;
	vworker.worker_id = worker.worker_id;
	if (ioctl(d->fd, VHOST_ATTACH_VRING_WORKER, &vworker) ||
	    vi_set_running(d, 1))
		return -errno;
	return vi_bind_mock(d, m, DOM_ID, EP_ID, true);
}

/* New rings (the guest's view starts over), the device stopped */
static int new_rings(struct vi_dev *d)
{
	for (unsigned int i = 0; i <= d->nr_invalq; i++) {
		struct vi_vq *vq = &d->vqs[i];
		struct vhost_vring_state state = { .index = i, .num = 0 };
		eventfd_t v;

		memset(vq->avail, 0, 6 + 2 * vq->num);
		memset(vq->used, 0, 6 + 8 * vq->num);
		if (ioctl(d->fd, VHOST_SET_VRING_BASE, &state))
			return -errno;
		eventfd_read(vq->call_fd, &v);
		vq->avail_idx = 0;
		vq->used_idx = 0;
		vq->free_head = 0;
		vq->nr_free = vq->num;
		for (unsigned int k = 0; k < vq->num; k++) {
			vq->desc[k].next = k + 1;
			vq->chain_len[k] = 0;
		}
	}
	return 0;
}

/* Set the device up again after RESET_OWNER: a new owner, new rings */
static int resetup(struct vi_dev *d, struct vi_mock *m)
{
	for (unsigned int i = 0; i < VI_MAX_VQS; i++) {
		free(d->vqs[i].chain_len);
		d->vqs[i].chain_len = NULL;
		if (d->vqs[i].kick_fd >= 0) {
			close(d->vqs[i].kick_fd);
			close(d->vqs[i].call_fd);
			close(d->vqs[i].err_fd);
		}
		d->vqs[i].kick_fd = -1;
		d->vqs[i].call_fd = -1;
		d->vqs[i].err_fd = -1;
	}
	/* The old rings and the guest's view of them start over */
	memset(d->mem, 0, d->mem_used);
	for (unsigned int i = 0; i < VI_MAX_VQS; i++) {
		d->vqs[i].avail_idx = 0;
		d->vqs[i].used_idx = 0;
	}
	d->mem_used = 0;
	if (ioctl(d->fd, VHOST_SET_OWNER))
		return -errno;
	if (vi_setup(d, FEATURES, RING_NUM, NQ))
		return -EIO;
	return vi_bind_mock(d, m, DOM_ID, EP_ID, true);
}

/*
 * Each loop: a device with traffic on both invalidation queues and the
 * page-request queue, a random delay, then the VMM operation of the variant
 * while the workers and the page request path are busy. Afterwards: every
 * INVALIDATE that came back had a status the operation allows (a stale
 * endpoint costs no invalidation: OK while the vDEVICE is gone), every page
 * request was answered exactly once, and the device (or a new one) serves
 * on both queues.
 */
TEST_F_TIMEOUT(race, loops, 600)
{
	unsigned int seed = 1, posted = 0, completed = 0, records = 0;
	unsigned int triggered = 0;
	struct {
		struct vhost_memory mem;
		struct vhost_memory_region region;
	} table;
	unsigned int i, loops = variant->loops;
	enum race_op op = variant->op;

	/* Longer runs: VHOST_IOMMU_RACE_LOOPS=n */
	if (getenv("VHOST_IOMMU_RACE_LOOPS"))
		loops = atoi(getenv("VHOST_IOMMU_RACE_LOOPS"));
	for (i = 0; i < loops; i++) {
		struct traffic t;
		struct vi_mock m;
		struct vi_dev d;
		int ret;

		ret = vi_mock_setup(&m, VSID);
		if (ret == -ENOTTY)
			SKIP(return, "no iommufd selftest mock");
		ASSERT_EQ(0, ret);
		ASSERT_EQ(0, race_device(&d, &m));
		ASSERT_EQ(0, traffic_start(&t, &d, &m, op));
		usleep(rand_r(&seed) % 20000);

		switch (op) {
		case RACE_CLOSE:
			/* Release with everything in flight */
			ASSERT_EQ(0, close(d.fd));
			d.fd = -1;
			traffic_stop(&t);
			break;
		case RACE_RESET_OWNER:
			ASSERT_EQ(0, ioctl(d.fd, VHOST_RESET_OWNER));
			traffic_stop(&t);
			ASSERT_EQ(0, resetup(&d, &m));
			break;
		case RACE_RESET:
			/* Stop, drop the bindings, answer the held groups */
			ASSERT_EQ(0, ioctl(d.fd, VHOST_IOMMU_RESET));
			usleep(rand_r(&seed) % 2000);
			traffic_stop(&t);
			ASSERT_EQ(0, new_rings(&d));
			ASSERT_EQ(0, vi_bind_mock(&d, &m, DOM_ID, EP_ID, true));
			ASSERT_EQ(0, vi_set_running(&d, 1));
			break;
		case RACE_STOP_START:
			for (int k = 0; k < 10; k++) {
				ASSERT_EQ(0, vi_set_running(&d, 0));
				usleep(rand_r(&seed) % 1000);
				ASSERT_EQ(0, vi_set_running(&d, 1));
			}
			traffic_stop(&t);
			break;
		case RACE_RING_CHANGE:
			/* QEMU's vhost stop: GET_VRING_BASE exact, nothing kept */
			ASSERT_EQ(0, vi_set_running(&d, 0));
			traffic_stop(&t);
			for (unsigned int q = 0; q <= d.nr_invalq; q++) {
				struct vhost_vring_state state = { .index = q };
				uint16_t avail = d.vqs[q].avail->idx;

				ASSERT_EQ(0, ioctl(d.fd, VHOST_GET_VRING_BASE,
						   &state));
				/* The device took no more than was posted... */
				ASSERT_LE((uint16_t)(avail - state.num),
					  d.vqs[q].num);
				/* ...and returned all it took: it holds nothing */
				ASSERT_EQ(state.num, d.vqs[q].used->idx) {
					TH_LOG("vq %u: GET_VRING_BASE %u, used %u",
					       q, state.num, d.vqs[q].used->idx);
				}
			}
			ASSERT_EQ(0, new_rings(&d));
			ASSERT_EQ(0, vi_set_running(&d, 1));
			usleep(2000);
			for (unsigned int q = 0; q <= d.nr_invalq; q++) {
				ASSERT_EQ(0, d.vqs[q].used->idx) {
					TH_LOG("vq %u: an entry survived the stop", q);
				}
			}
			/*
			 * Page-request groups are device state: they survive
			 * the stop. Those delivered into the old ring are
			 * still the guest's to answer: every group it could
			 * have been sent, once (the others get S_INVAL).
			 */
			for (unsigned int g = 1; g <= t.triggered; g++) {
				uint32_t used_len;
				int st = vi_request(&d, VI_INVALQ(0),
						    make_page_resp(&d, g),
						    RESP_LEN, &used_len,
						    TIMEOUT_MS);

				ASSERT_TRUE(st == VIRTIO_IOMMU_S_OK ||
					    st == VIRTIO_IOMMU_S_INVAL);
				if (d.mem_used > VI_MEM_SIZE - 4096)
					d.mem_used = VI_MEM_SIZE / 2;
			}
			break;
		case RACE_MEM_TABLE:
			/* Alternately without, then with the guest memory */
			memset(&table, 0, sizeof(table));
			table.mem.nregions = 1;
			table.region.guest_phys_addr = VI_GPA_BASE + 0x200000;
			table.region.memory_size = 0x1000;
			table.region.userspace_addr = (uintptr_t)d.mem + 0x200000;
			for (int k = 0; k < 10; k++) {
				ASSERT_EQ(0, ioctl(d.fd, VHOST_SET_MEM_TABLE,
						   &table));
				usleep(rand_r(&seed) % 500);
				ASSERT_EQ(0, vi_set_mem_table(&d));
			}
			traffic_stop(&t);
			break;
		case RACE_UNBIND:
			for (int k = 0; k < 10; k++) {
				uint32_t un = VHOST_IOMMU_F_UNBIND;

				ASSERT_EQ(0, vi_set_fault_queue(d.fd, 0, -1));
				ASSERT_EQ(0, vi_set_endpoint(d.fd, un, EP_ID, 0,
							     0, 0));
				ASSERT_EQ(0, vi_set_domain(d.fd, un, DOM_ID, 0));
				ASSERT_EQ(0, vi_set_iommufd(d.fd, -1, 0));
				usleep(rand_r(&seed) % 500);
				ASSERT_EQ(0, vi_bind_mock(&d, &m, DOM_ID,
							  EP_ID, true));
			}
			traffic_stop(&t);
			break;
		case RACE_DESTROY:
			/* Bound objects stay; the vDEVICE may go */
			ASSERT_EQ(-EBUSY, vi_destroy(m.iommufd, m.viommu_id));
			ASSERT_EQ(-EBUSY, vi_destroy(m.iommufd, m.fault_id));
			ASSERT_EQ(0, vi_destroy(m.iommufd, m.vdevice_id));
			usleep(rand_r(&seed) % 2000);
			{
				struct iommu_vdevice_alloc vdev = {
					.size = sizeof(vdev),
					.viommu_id = m.viommu_id,
					.dev_id = m.idev_id,
					.virt_id = m.vsid,
				};

				ASSERT_EQ(0, ioctl(m.iommufd,
						   IOMMU_VDEVICE_ALLOC, &vdev));
				m.vdevice_id = vdev.out_vdevice_id;
			}
			traffic_stop(&t);
			break;
		case RACE_CLOSE_IOMMUFD:
			/* The device keeps its references */
			ASSERT_EQ(0, close(m.iommufd));
			ASSERT_EQ(0, close(m.fault_fd));
			m.iommufd = -1;
			m.fault_fd = -1;
			usleep(rand_r(&seed) % 2000);
			traffic_stop(&t);
			break;
		}
		ASSERT_EQ(0, t.bad_status) {
			TH_LOG("loop %u: %u INVALIDATEs came back wrong (last status %u)",
			       i, t.bad_status, t.last_bad);
		}
		posted += t.posted;
		completed += t.completed;
		records += t.records;
		triggered += t.triggered;

		if (d.fd >= 0) {
			if (op != RACE_RESET_OWNER && op != RACE_RING_CHANGE &&
			    op != RACE_RESET)
				ASSERT_EQ(0, drain(&d, TIMEOUT_MS));
			/* Without the iommufd, the mock's log is out of reach */
			ASSERT_EQ(0, serves(&d, op == RACE_CLOSE_IOMMUFD ?
					     NULL : &m));
		}
		if (m.iommufd >= 0)
			ASSERT_EQ(0, all_answered(d.fd >= 0 ? &d : NULL, &m, &t,
						  t.triggered)) {
				TH_LOG("loop %u: %u page requests raised", i,
				       t.triggered);
			}
		vi_close(&d);
		vi_mock_close(&m);
	}
	TH_LOG("%u loops: %u INVALIDATEs, %u completed, %u page requests, %u delivered",
	       i, posted, completed, triggered, records);
}

TEST_HARNESS_MAIN
