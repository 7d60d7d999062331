// SPDX-License-Identifier: GPL-2.0
/*
 * vhost-iommu against a careless VMM and failing allocations: fail-nth sweeps
 * of every allocation on the ioctl paths and on the worker's paths, and race
 * loops of the VMM's device-wide operations against the worker, the channel
 * and the page request path.
 *
 * The 21 hostile and fault cases of the project's reference (anchors.md,
 * C5) and where each one is tested:
 *
 *  1 no writable part / writable before readable
 *        vhost_iommu_test: short_parts, wrong_direction;
 *        vhost_iommu_fuzz: in_len < 4 (used length 0), fatal kind
 *        out-after-in (FK_OUT_AFTER_IN)
 *  2 readable part shorter than the head or the type, writable part shorter
 *    than the tail
 *        vhost_iommu_test: short_parts; vhost_iommu_fuzz: truncated parts
 *  3 header split over tiny iovecs, zero-length descriptors
 *        vhost_iommu_test: split_descriptors; vhost_iommu_fuzz: split layouts
 *        with zero-length descriptors anywhere (any address, either
 *        direction in the readable part)
 *  4 unknown type, types of features not negotiated
 *        vhost_iommu_test: unknown_type; vhost_iommu_fuzz: types 0, 9-255
 *  5 reserved bytes, unknown flags, scope or caches bits
 *        vhost_iommu_test: inval_validation; vhost_iommu_pri: bad_responses;
 *        vhost_iommu_fuzz: mutated bodies
 *  6 unknown domain, endpoint, PASID, group; another VM's IDs
 *        vhost_iommu_test: bind_ioctls, inval_in_kernel; vhost_smmu (two
 *        VMs, same ASID); vhost_iommu_fuzz: VM b with the same domain and
 *        endpoint IDs stays untouched
 *  7 range arithmetic: overflow, page_size >= 64, nr_pages 0 or huge
 *        vhost_iommu_test: inval_validation; vhost_smmu; vhost_iommu_fuzz:
 *        random page_size, nr_pages and addresses against a model
 *  8 huge batches
 *        vhost_iommu_test: many_per_kick, full_ring, inval_batch;
 *        vhost_iommu_fuzz: up to 448 requests per kick
 *  9 descriptor loops, head >= num, bad indirect tables, nested indirect
 *        vhost_iommu_fuzz: fatal kinds FK_LOOP, FK_HEAD, FK_NEXT,
 *        FK_IND_LEN, FK_IND_NESTED, FK_IND_LOOP, FK_IND_ZERO, FK_AVAIL_JUMP;
 *        valid indirect tables throughout
 * 10 guest memory outside the memory table
 *        vhost_iommu_fuzz: FK_BAD_ADDR, FK_IND_ADDR
 * 11 commands the SMMU would reject
 *        KUnit arm-smmu-v3 virtio decoder (1600 combinations); vhost_smmu
 * 12 stale, forged, duplicate page responses
 *        vhost_iommu_pri: bad_responses, detach_then_late_response;
 *        vhost_iommu_fuzz: forged PAGE_RESP among real ones
 * 13 no kernel memory in responses
 *        vhost_iommu_fuzz: tail reserved bytes zero, nothing written past
 *        the used length, unparseable requests' buffers untouched
 * 14 ioctl size, reserved, flags rules
 *        vhost_iommu_test: ioctl_sizes, bind_sizes; vhost_iommu_pri:
 *        fault_queue_ioctl
 * 15 ioctls before SET_OWNER, from another process, after RESET_OWNER
 *        vhost_iommu_test: other_process, features, reset_owner_pending
 * 16 SET_MEM_TABLE while the worker runs
 *        vhost_iommu_test: mem_table_while_running; here: race.mem_table;
 *        vhost_iommu_fuzz: SET_MEM_TABLE during rounds
 * 17 bad fds, wrong IDs, rebinding, unbinding with requests in flight
 *        vhost_iommu_test: bind_ioctls; here: race.unbind;
 *        vhost_iommu_fuzz: unbind and bind during rounds
 * 18 IOMMU_DESTROY of bound objects, closing the iommufd
 *        vhost_iommu_test: bind_ioctls (EBUSY); here: race.destroy,
 *        race.close_iommufd
 * 19 release racing the worker and the page request path
 *        vhost_iommu_pri: faults_racing_close; here: race.close,
 *        race.reset_owner, race.stop_start
 * 20 allocation failures on the ioctl and worker paths
 *        here: fail_nth.ioctl_paths, fail_nth.worker_paths
 * 21 all of it under KASAN, UBSAN, lockdep, PROVE_RCU, DEBUG_ATOMIC_SLEEP,
 *    kmemleak, panic_on_warn
 *        vmtest.sh (debug kernel; any splat fails the run)
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
#include "vhost_iommu_lib.h"
#include "vi_hostile_lib.h"

#define TIMEOUT_MS	3000
#define RING_NUM	256
#define TAIL		sizeof(struct virtio_iommu_req_tail)
#define ATTACH_LEN	offsetof(struct virtio_iommu_req_attach, tail)
#define INVAL_LEN	offsetof(struct virtio_iommu_req_invalidate, tail)
#define RESP_LEN	offsetof(struct virtio_iommu_req_page_resp, tail)
#define PROBE_LEN	sizeof(struct virtio_iommu_req_probe)
#define DOM_ID		1
#define EP_ID		5
#define VSID		0x10
/* fail-nth: iterations per sweep before giving up (as iommufd_fail_nth) */
#define NTH_MAX		1000

#define BIT64(n)	(1ULL << (n))
#define FEATURES	(BIT64(VIRTIO_F_VERSION_1) |			\
			 BIT64(VIRTIO_RING_F_INDIRECT_DESC) |		\
			 BIT64(VIRTIO_IOMMU_F_MAP_UNMAP) |		\
			 BIT64(VIRTIO_IOMMU_F_PROBE) |			\
			 BIT64(VIRTIO_IOMMU_F_ATTACH_TABLE) |		\
			 BIT64(VIRTIO_IOMMU_F_PAGE_REQUEST))

static uint8_t *make_attach(struct vi_dev *d)
{
	uint8_t *req = vi_alloc(d, ATTACH_LEN);

	memset(req, 0, ATTACH_LEN);
	req[0] = VIRTIO_IOMMU_T_ATTACH;
	req[4] = DOM_ID;
	req[8] = EP_ID;
	return req;
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

static uint8_t *make_resp(struct vi_dev *d, uint32_t len)
{
	uint8_t *resp = vi_alloc(d, len);

	memset(resp, 0xa5, len);
	return resp;
}

/* Answer what the VMM has, reap what the guest gets, until all came back */
static int drain(struct vi_dev *d, int timeout_ms)
{
	struct vi_vq *vq = &d->vqs[VI_REQ_VQ];
	struct vhost_iommu_req_msg msg;
	struct timespec start, now;
	uint32_t id, len;

	clock_gettime(CLOCK_MONOTONIC, &start);
	while (vq->nr_free != vq->num) {
		while (vi_read_msg(d, &msg, 0) == sizeof(msg))
			if (vi_answer(d, msg.cookie, VIRTIO_IOMMU_S_OK, NULL, 0))
				return -EIO;
		while (vi_nr_used(d, VI_REQ_VQ))
			vi_get_used(d, VI_REQ_VQ, &id, &len, 0);
		clock_gettime(CLOCK_MONOTONIC, &now);
		if ((now.tv_sec - start.tv_sec) * 1000 +
		    (now.tv_nsec - start.tv_nsec) / 1000000 > timeout_ms)
			return -ETIMEDOUT;
		vi_kick(d, VI_REQ_VQ);
		usleep(1000);
	}
	return 0;
}

/* One INVALIDATE served in the kernel: the device works */
static int serves(struct vi_dev *d, struct vi_mock *m)
{
	uint8_t *resp = make_resp(d, TAIL);
	uint32_t id, len, entries, calls;
	int head;

	if (m)
		vi_mock_log(m->iommufd, m->viommu_id, &entries, &calls);
	head = vi_post_req(d, make_inval(d), INVAL_LEN, resp, TAIL);
	if (head < 0)
		return head;
	vi_kick(d, VI_REQ_VQ);
	if (vi_get_used(d, VI_REQ_VQ, &id, &len, TIMEOUT_MS))
		return -ETIMEDOUT;
	if (id != (uint32_t)head || len != TAIL || resp[0] != VIRTIO_IOMMU_S_OK)
		return -EIO;
	if (m && (vi_mock_log(m->iommufd, m->viommu_id, &entries, &calls) ||
		  entries != 1))
		return -EIO;
	return 0;
}

/* A slow-path request answered by the VMM: the channel works */
static int forwards(struct vi_dev *d)
{
	uint8_t *resp = make_resp(d, TAIL);
	struct vhost_iommu_req_msg msg;
	uint32_t id, len;
	int head;

	head = vi_post_req(d, make_attach(d), ATTACH_LEN, resp, TAIL);
	if (head < 0)
		return head;
	vi_kick(d, VI_REQ_VQ);
	if (vi_read_msg(d, &msg, TIMEOUT_MS) != sizeof(msg))
		return -EIO;
	if (vi_answer(d, msg.cookie, VIRTIO_IOMMU_S_OK, NULL, 0))
		return -EIO;
	if (vi_get_used(d, VI_REQ_VQ, &id, &len, TIMEOUT_MS))
		return -ETIMEDOUT;
	return id == (uint32_t)head && resp[0] == VIRTIO_IOMMU_S_OK ? 0 : -EIO;
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
 * The VMM's whole life with the device, each step an ioctl, read() or
 * write() whose allocations fail in turn: open, owner, features, memory
 * table, rings, start, bindings, a forwarded PROBE read and answered with a
 * payload, a worker, unbinding, RESET_OWNER, release. Memory and eventfds
 * are made before, so that only the device's paths see the faults. Return 0
 * if everything succeeded.
 */
struct vmm_life {
	void *mem;
	int kick[2], call[2], err[2];
};

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
	struct vhost_iommu_info info = { .size = sizeof(info) };
	struct vhost_worker_state worker = {};
	uint8_t *base = l->mem, *probe, *resp;
	struct vhost_iommu_req_msg msg;
	uint64_t features = FEATURES;
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	int fd, ret = -1, i;
	uint8_t payload[16];

	if (nth)
		vi_fail_nth_set(nth_fd, nth);
	fd = open("/dev/vhost-iommu", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		goto out;
	if (ioctl(fd, VHOST_SET_OWNER) || ioctl(fd, VHOST_SET_FEATURES, &features) ||
	    ioctl(fd, VHOST_SET_MEM_TABLE, &table))
		goto out_close;
	for (i = 0; i < VI_NR_VQS; i++) {
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
	{
		struct vhost_iommu_running run = { .size = sizeof(run),
						   .running = 1 };

		if (ioctl(fd, VHOST_IOMMU_GET_INFO, &info) ||
		    ioctl(fd, VHOST_IOMMU_SET_RUNNING, &run))
			goto out_close;
	}
	if (vi_set_iommufd(fd, m->iommufd) ||
	    vi_set_domain(fd, 0, DOM_ID, m->viommu_id) ||
	    vi_set_endpoint(fd, 0, EP_ID, DOM_ID, m->idev_id, m->vsid) ||
	    vi_set_fault_queue(fd, 0, m->fault_fd))
		goto out_close;

	/* A PROBE: forwarded by the worker, read and answered here */
	desc = (void *)base;
	avail = (void *)(base + 1024);
	used = (void *)(base + 2048);
	probe = base + 3072;
	resp = base + 3072 + 128;
	memset(probe, 0, PROBE_LEN);
	probe[0] = VIRTIO_IOMMU_T_PROBE;
	probe[4] = EP_ID;
	desc[0] = (struct vring_desc){ .addr = (uintptr_t)probe,
				       .len = PROBE_LEN,
				       .flags = VRING_DESC_F_NEXT, .next = 1 };
	desc[1] = (struct vring_desc){ .addr = (uintptr_t)resp, .len = 64,
				       .flags = VRING_DESC_F_WRITE };
	avail->ring[0] = 0;
	__atomic_store_n(&avail->idx, 1, __ATOMIC_RELEASE);
	eventfd_write(l->kick[0], 1);
	{
		struct pollfd pfd = { .fd = fd, .events = POLLIN };

		if (poll(&pfd, 1, TIMEOUT_MS) != 1 ||
		    read(fd, &msg, sizeof(msg)) != sizeof(msg))
			goto out_close;
	}
	memset(payload, 0x5a, sizeof(payload));
	{
		uint8_t buf[sizeof(struct vhost_iommu_resp_msg) +
			    sizeof(payload)] = {};
		struct vhost_iommu_resp_msg *r = (void *)buf;

		r->size = sizeof(*r);
		r->version = VHOST_IOMMU_MSG_VERSION;
		r->type = VHOST_IOMMU_MSG_RESPONSE;
		r->cookie = msg.cookie;
		r->payload_len = sizeof(payload);
		memcpy(r->payload, payload, sizeof(payload));
		if (write(fd, buf, sizeof(buf)) != sizeof(buf))
			goto out_close;
	}
	if (__atomic_load_n(&used->idx, __ATOMIC_ACQUIRE) != 1 ||
	    used->ring[0].len != sizeof(payload) + TAIL ||
	    resp[sizeof(payload)] != VIRTIO_IOMMU_S_OK)
		goto out_close;

	/* A second worker, then everything undone */
	if (ioctl(fd, VHOST_NEW_WORKER, &worker) ||
	    vi_set_fault_queue(fd, VHOST_IOMMU_BIND_UNBIND, -1) ||
	    vi_set_endpoint(fd, VHOST_IOMMU_BIND_UNBIND, EP_ID, 0, 0, 0) ||
	    vi_set_domain(fd, VHOST_IOMMU_BIND_UNBIND, DOM_ID, 0) ||
	    vi_set_iommufd(fd, -1) || ioctl(fd, VHOST_RESET_OWNER))
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
TEST_F_TIMEOUT(fail_nth, ioctl_paths, 400)
{
	struct vmm_life l;
	unsigned int nth, fired = 0;

	l.mem = mmap(NULL, VI_MEM_SIZE, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	ASSERT_NE(MAP_FAILED, l.mem);
	memset(l.mem, 0, VI_MEM_SIZE);
	for (int i = 0; i < VI_NR_VQS; i++) {
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
		memset(l.mem, 0, 4 * 4096);
		vmm_life_run(&l, &self->m, self->nth_fd, nth);
		if (!vi_fail_nth_fired(self->nth_fd)) {
			/* The sequence ran to its end before the n-th site */
			break;
		}
		fired++;
		memset(l.mem, 0, 4 * 4096);
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
 * waited forever. One injected failure cannot fail xa_alloc() (it retries
 * with GFP_KERNEL), so this fails the worker's next two slab allocations:
 * both attempts at the node of the cookie xarray, which the first cookie
 * (1, XA_FLAGS_ALLOC1) needs.
 */
TEST_F_TIMEOUT(fail_nth, page_request_no_cookie, 120)
{
	struct virtio_iommu_page_request *rec;
	struct vi_seg seg;
	uint32_t id, len;
	char path[64];
	struct vi_dev d;
	int tid, base, ret;

	ASSERT_EQ(0, vi_open(&d));
	ASSERT_EQ(0, vi_setup(&d, FEATURES, RING_NUM));
	ASSERT_EQ(0, vi_bind_mock(&d, &self->m, DOM_ID, EP_ID, true));
	tid = vi_worker_tid();
	ASSERT_LT(0, tid);
	rec = vi_alloc(&d, sizeof(*rec));
	memset(rec, 0xff, sizeof(*rec));
	seg = (struct vi_seg){ .addr = rec, .len = sizeof(*rec),
			       .writable = true };
	ASSERT_LE(0, vi_post(&d, VI_EVENT_VQ, &seg, 1));
	vi_kick(&d, VI_EVENT_VQ);
	/* Let the worker see the buffer first */
	usleep(100000);
	base = vi_mock_responses(&self->m);

	/* The worker's next two slab allocations fail */
	snprintf(path, sizeof(path), "/proc/%d/make-it-fail", tid);
	ASSERT_EQ(0, vi_write_file(path, "1"));
	ASSERT_EQ(0, failslab_attr("task-filter", "Y"));
	ASSERT_EQ(0, failslab_attr("interval", "1"));
	ASSERT_EQ(0, failslab_attr("times", "2"));
	ASSERT_EQ(0, failslab_attr("probability", "100"));

	ASSERT_EQ(0, vi_mock_trigger(&self->m, 7, 0x100000));
	ret = vi_get_used(&d, VI_EVENT_VQ, &id, &len, TIMEOUT_MS);

	failslab_attr("probability", "0");
	failslab_attr("task-filter", "N");
	vi_write_file(path, "0");
	ASSERT_EQ(0, ret) {
		TH_LOG("the page request waits in iommufd, the device sleeps");
	}
	ASSERT_EQ(sizeof(*rec), len);
	ASSERT_EQ(7, rec->group);
	/* Nothing was refused on the way */
	ASSERT_EQ(base, vi_mock_responses(&self->m));
	vi_close(&d);
}

/*
 * Every allocation of the worker, failing in turn (fail-nth of the vhost
 * worker thread): forwarding a request, serving an INVALIDATE, taking a
 * page request from the fault queue and answering it. Each request
 * completes, with S_DEVERR or S_NOMEM where its allocation failed; a
 * refused page request is answered INVALID to the IOMMU; the device serves
 * the next round.
 */
TEST_F_TIMEOUT(fail_nth, worker_paths, 400)
{
	struct virtio_iommu_page_request *rec[2];
	unsigned int nth, fired = 0;
	int tid, wfd, base_resp;
	bool ev_posted[2] = {};
	struct vi_dev d;

	ASSERT_EQ(0, vi_open(&d));
	ASSERT_EQ(0, vi_setup(&d, FEATURES, RING_NUM));
	ASSERT_EQ(0, vi_bind_mock(&d, &self->m, DOM_ID, EP_ID, true));
	tid = vi_worker_tid();
	ASSERT_LT(0, tid);
	wfd = vi_fail_nth_open(tid);
	ASSERT_LE(0, wfd);
	/* Two event buffers, each posted again once used */
	rec[0] = vi_alloc(&d, sizeof(*rec[0]));
	rec[1] = vi_alloc(&d, sizeof(*rec[1]));

	for (nth = 0; nth < NTH_MAX; nth++) {
		struct vi_seg seg;
		uint8_t *a_resp, *i_resp, *p_resp;
		struct virtio_iommu_req_page_resp *pr;
		struct vhost_iommu_req_msg msg;
		int a_head, i_head, p_head, got;
		uint32_t id, len, entries, calls;

		d.mem_used = 0x100000;	/* reuse the request buffers */
		vi_mock_log(self->m.iommufd, self->m.viommu_id, &entries,
			    &calls);
		base_resp = vi_mock_responses(&self->m);
		if (nth)
			ASSERT_EQ(0, vi_fail_nth_set(wfd, nth));

		/* Forwarded, then served in the kernel, one kick */
		a_resp = make_resp(&d, TAIL);
		i_resp = make_resp(&d, TAIL);
		a_head = vi_post_req(&d, make_attach(&d), ATTACH_LEN, a_resp,
				     TAIL);
		ASSERT_LE(0, a_head);
		vi_kick(&d, VI_REQ_VQ);
		got = vi_read_msg(&d, &msg, 500);
		if (got == sizeof(msg)) {
			ASSERT_EQ(0, vi_answer(&d, msg.cookie,
					       VIRTIO_IOMMU_S_OK, NULL, 0));
		}
		ASSERT_EQ(0, vi_get_used(&d, VI_REQ_VQ, &id, &len,
					 TIMEOUT_MS));
		ASSERT_EQ(a_head, id);
		ASSERT_EQ(TAIL, len);
		/* Without memory to forward it: S_DEVERR, and no message */
		ASSERT_EQ(got == sizeof(msg) ? VIRTIO_IOMMU_S_OK :
					       VIRTIO_IOMMU_S_DEVERR, a_resp[0]);

		i_head = vi_post_req(&d, make_inval(&d), INVAL_LEN, i_resp,
				     TAIL);
		vi_kick(&d, VI_REQ_VQ);
		ASSERT_EQ(0, vi_get_used(&d, VI_REQ_VQ, &id, &len,
					 TIMEOUT_MS));
		ASSERT_EQ(i_head, id);
		ASSERT_EQ(TAIL, len);
		if (i_resp[0] != VIRTIO_IOMMU_S_OK) {
			ASSERT_TRUE(i_resp[0] == VIRTIO_IOMMU_S_NOMEM ||
				    i_resp[0] == VIRTIO_IOMMU_S_DEVERR);
		}

		/*
		 * Two page requests (two groups in flight need more than the
		 * first cookie): each delivered and answered, or refused to
		 * the IOMMU; both answered in the end.
		 */
		for (int k = 0; k < 2; k++) {
			if (ev_posted[k])
				continue;
			memset(rec[k], 0xff, sizeof(*rec[k]));
			seg = (struct vi_seg){ .addr = rec[k],
					       .len = sizeof(*rec[k]),
					       .writable = true };
			ASSERT_LE(0, vi_post(&d, VI_EVENT_VQ, &seg, 1));
			ev_posted[k] = true;
		}
		vi_kick(&d, VI_EVENT_VQ);
		ASSERT_EQ(0, vi_mock_trigger(&self->m, 7, 0x100000));
		ASSERT_EQ(0, vi_mock_trigger(&self->m, 8, 0x200000));
		for (int t = 0; t < TIMEOUT_MS / 10; t++) {
			if (vi_mock_responses(&self->m) == base_resp + 2)
				break;
			if (!vi_nr_used(&d, VI_EVENT_VQ)) {
				usleep(10000);
				continue;
			}
			ASSERT_EQ(0, vi_get_used(&d, VI_EVENT_VQ, &id, &len,
						 0));
			ASSERT_EQ(sizeof(*rec[0]), len);
			ev_posted[rec[0] == (void *)(uintptr_t)
				  d.vqs[VI_EVENT_VQ].desc[id].addr ? 0 : 1] =
				false;
			pr = vi_alloc(&d, sizeof(*pr));
			memset(pr, 0, sizeof(*pr));
			pr->head.type = VIRTIO_IOMMU_T_PAGE_RESP;
			pr->endpoint = EP_ID;
			pr->group = ((struct virtio_iommu_page_request *)
				     (uintptr_t)d.vqs[VI_EVENT_VQ].desc[id].addr)->group;
			p_resp = make_resp(&d, TAIL);
			p_head = vi_post_req(&d, pr, RESP_LEN, p_resp, TAIL);
			vi_kick(&d, VI_REQ_VQ);
			ASSERT_EQ(0, vi_get_used(&d, VI_REQ_VQ, &id, &len,
						 TIMEOUT_MS));
			ASSERT_EQ(p_head, id);
			ASSERT_EQ(VIRTIO_IOMMU_S_OK, p_resp[0]);
		}
		ASSERT_EQ(base_resp + 2, vi_mock_responses(&self->m)) {
			TH_LOG("a page request was lost (fault at worker site %u)",
			       nth);
		}

		if (!nth)
			continue;
		if (!vi_fail_nth_fired(wfd))
			break;
		fired++;
	}
	TH_LOG("worker paths: %u allocation sites failed in turn", fired);
	ASSERT_LT(nth, NTH_MAX);
	ASSERT_LT(0, fired);
	close(wfd);
	ASSERT_EQ(0, drain(&d, TIMEOUT_MS));
	ASSERT_EQ(0, serves(&d, &self->m));
	ASSERT_EQ(0, forwards(&d));
	vi_close(&d);
}

/* ------------------------------------------------------------ races */

/*
 * Traffic on one device: a guest thread posting requests (in the kernel and
 * to the VMM) and kicking, a VMM thread answering, a thread raising page
 * requests. The test thread races one VMM operation against them.
 */
struct traffic {
	struct vi_dev *d;
	struct vi_mock *m;
	pthread_t guest, vmm, faults;
	bool stop;
	unsigned int posted, answered, triggered;
};

static bool stopping(struct traffic *t)
{
	return __atomic_load_n(&t->stop, __ATOMIC_ACQUIRE);
}

static void *guest_fn(void *arg)
{
	struct traffic *t = arg;
	struct vi_dev *d = t->d;
	size_t mark = d->mem_used;
	uint32_t id, len;

	/* Event buffers for the page requests */
	for (int i = 0; i < 16; i++) {
		struct vi_seg seg = {
			.addr = vi_alloc(d, 32), .len = 32, .writable = true,
		};

		vi_post(d, VI_EVENT_VQ, &seg, 1);
	}
	mark = d->mem_used;
	while (!stopping(t)) {
		/* Buffers are reused once the ring went round */
		if (d->mem_used > VI_MEM_SIZE - 4096)
			d->mem_used = mark;
		for (int i = 0; i < 8 && d->vqs[VI_REQ_VQ].nr_free >= 2; i++) {
			if (i & 1)
				vi_post_req(d, make_attach(d), ATTACH_LEN,
					    make_resp(d, TAIL), TAIL);
			else
				vi_post_req(d, make_inval(d), INVAL_LEN,
					    make_resp(d, TAIL), TAIL);
			t->posted++;
		}
		eventfd_write(d->vqs[VI_REQ_VQ].kick_fd, 1);
		eventfd_write(d->vqs[VI_EVENT_VQ].kick_fd, 1);
		while (vi_nr_used(d, VI_REQ_VQ))
			vi_get_used(d, VI_REQ_VQ, &id, &len, 0);
		usleep(200);
	}
	return NULL;
}

static void *vmm_fn(void *arg)
{
	struct traffic *t = arg;
	struct vhost_iommu_req_msg msg;
	struct pollfd pfd = { .fd = t->d->fd, .events = POLLIN };

	while (!stopping(t)) {
		if (poll(&pfd, 1, 2) != 1)
			continue;
		if (read(pfd.fd, &msg, sizeof(msg)) != sizeof(msg))
			continue;
		if (!vi_answer(t->d, msg.cookie, VIRTIO_IOMMU_S_OK, NULL, 0))
			t->answered++;
	}
	return NULL;
}

static void *faults_fn(void *arg)
{
	struct traffic *t = arg;

	while (!stopping(t) && t->triggered < 300) {
		if (!vi_mock_trigger(t->m, 1 + t->triggered % 500, 0x100000))
			t->triggered++;
		usleep(300);
	}
	return NULL;
}

static int traffic_start(struct traffic *t, struct vi_dev *d,
			 struct vi_mock *m)
{
	memset(t, 0, sizeof(*t));
	t->d = d;
	t->m = m;
	if (pthread_create(&t->guest, NULL, guest_fn, t))
		return -1;
	if (pthread_create(&t->vmm, NULL, vmm_fn, t))
		return -1;
	if (pthread_create(&t->faults, NULL, faults_fn, t))
		return -1;
	return 0;
}

static void traffic_stop(struct traffic *t)
{
	__atomic_store_n(&t->stop, true, __ATOMIC_RELEASE);
	pthread_join(t->guest, NULL);
	pthread_join(t->vmm, NULL);
	pthread_join(t->faults, NULL);
}

enum race_op {
	RACE_CLOSE,
	RACE_RESET_OWNER,
	RACE_STOP_START,
	RACE_MEM_TABLE,
	RACE_UNBIND,
	RACE_DESTROY,
	RACE_CLOSE_IOMMUFD,
};

FIXTURE(race) {
	unsigned int loops;
};

FIXTURE_VARIANT(race) {
	enum race_op op;
	unsigned int loops;
};

FIXTURE_VARIANT_ADD(race, close) { .op = RACE_CLOSE, .loops = 10 };
FIXTURE_VARIANT_ADD(race, reset_owner) { .op = RACE_RESET_OWNER, .loops = 10 };
FIXTURE_VARIANT_ADD(race, stop_start) { .op = RACE_STOP_START, .loops = 10 };
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

/* Set the device up again after RESET_OWNER: a new owner, new rings */
static int resetup(struct vi_dev *d, struct vi_mock *m)
{
	for (int i = 0; i < VI_NR_VQS; i++) {
		free(d->vqs[i].chain_len);
		d->vqs[i].chain_len = NULL;
		close(d->vqs[i].kick_fd);
		close(d->vqs[i].call_fd);
		close(d->vqs[i].err_fd);
		d->vqs[i].kick_fd = -1;
		d->vqs[i].call_fd = -1;
		d->vqs[i].err_fd = -1;
	}
	/* The old rings and the guest's view of them start over */
	memset(d->mem, 0, d->mem_used);
	for (int i = 0; i < VI_NR_VQS; i++) {
		d->vqs[i].avail_idx = 0;
		d->vqs[i].used_idx = 0;
	}
	d->mem_used = 0;
	if (ioctl(d->fd, VHOST_SET_OWNER))
		return -errno;
	if (vi_setup(d, FEATURES, RING_NUM))
		return -EIO;
	return vi_bind_mock(d, m, DOM_ID, EP_ID, true);
}

/*
 * Each loop: a device with traffic on it, a random delay, then the VMM
 * operation of the variant while the worker, the channel and the page
 * request path are busy. Afterwards the device (or a new one) serves.
 */
TEST_F_TIMEOUT(race, loops, 400)
{
	unsigned int seed = 1, posted = 0, answered = 0, triggered = 0;
	struct {
		struct vhost_memory mem;
		struct vhost_memory_region region;
	} table;
	unsigned int i, loops = variant->loops;

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
		ASSERT_EQ(0, vi_open(&d));
		ASSERT_EQ(0, vi_setup(&d, FEATURES, RING_NUM));
		ASSERT_EQ(0, vi_bind_mock(&d, &m, DOM_ID, EP_ID, true));
		ASSERT_EQ(0, traffic_start(&t, &d, &m));
		usleep(rand_r(&seed) % 20000);

		switch (variant->op) {
		case RACE_CLOSE:
			/* Release with everything in flight */
			ret = close(d.fd);
			ASSERT_EQ(0, ret);
			traffic_stop(&t);
			d.fd = -1;
			break;
		case RACE_RESET_OWNER:
			ASSERT_EQ(0, ioctl(d.fd, VHOST_RESET_OWNER));
			traffic_stop(&t);
			ASSERT_EQ(0, resetup(&d, &m));
			ASSERT_EQ(0, serves(&d, &m));
			ASSERT_EQ(0, forwards(&d));
			break;
		case RACE_STOP_START:
			for (int k = 0; k < 10; k++) {
				ASSERT_EQ(0, vi_set_running(&d, 0));
				usleep(rand_r(&seed) % 1000);
				ASSERT_EQ(0, vi_set_running(&d, 1));
			}
			traffic_stop(&t);
			break;
		case RACE_MEM_TABLE:
			/* Alternately without, then with the guest memory */
			memset(&table, 0, sizeof(table));
			table.mem.nregions = 1;
			table.region.guest_phys_addr = (uintptr_t)d.mem + 0x200000;
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
				uint32_t un = VHOST_IOMMU_BIND_UNBIND;

				ASSERT_EQ(0, vi_set_fault_queue(d.fd, un, -1));
				ASSERT_EQ(0, vi_set_endpoint(d.fd, un, EP_ID, 0,
							     0, 0));
				ASSERT_EQ(0, vi_set_domain(d.fd, un, DOM_ID, 0));
				ASSERT_EQ(0, vi_set_iommufd(d.fd, -1));
				usleep(rand_r(&seed) % 500);
				ASSERT_EQ(0, vi_bind_mock(&d, &m, DOM_ID,
							  EP_ID, true));
			}
			traffic_stop(&t);
			break;
		case RACE_DESTROY:
			/* Bound objects stay; the vDEVICE may go */
			ASSERT_EQ(-EBUSY, vi_destroy(m.iommufd, m.viommu_id));
			ASSERT_EQ(-EBUSY, vi_destroy(m.iommufd, m.nested_id));
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
		posted += t.posted;
		answered += t.answered;
		triggered += t.triggered;

		if (d.fd >= 0 && variant->op != RACE_RESET_OWNER) {
			ASSERT_EQ(0, drain(&d, TIMEOUT_MS));
			/* Without the iommufd, the mock's log is out of reach */
			ASSERT_EQ(0, serves(&d, variant->op == RACE_CLOSE_IOMMUFD ?
					     NULL : &m));
			ASSERT_EQ(0, forwards(&d));
		}
		vi_close(&d);
		vi_mock_close(&m);
	}
	TH_LOG("%u loops: %u requests posted, %u answered by the VMM, %u page requests",
	       i, posted, answered, triggered);
}

TEST_HARNESS_MAIN
