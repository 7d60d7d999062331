// SPDX-License-Identifier: GPL-2.0
/*
 * Throughput of virtio-iommu INVALIDATE requests on an invalidation queue
 * (VIRTIO_IOMMU_F_INVALQ), on the iommufd selftest mock vIOMMU and on the
 * emulated nesting SMMUv3, at 1, 8 and 64 requests per kick, along these
 * paths:
 *
 *  fast   the invalidation queue of /dev/vhost-iommu: kick -> vhost worker
 *         -> the B1 fan-out (a domain entry for the IOTLB and one entry per
 *         endpoint) of the kick's requests in one
 *         iommufd_viommu_invalidate_virtio() call -> used ring -> call
 *  user   the best a VMM serving the same invalidation queue itself can do:
 *         a VMM thread woken by the kick eventfd pops the kick's worth of
 *         requests from a plain userspace split ring, builds the same
 *         fan-out and issues ONE IOMMU_HWPT_INVALIDATE with the virtio type
 *         for all of them, writes the used entries and signals the call
 *         eventfd once per kick
 *  floor  a bare loop of IOMMU_HWPT_INVALIDATE with the entries the fast
 *         path hands to the driver, one call per batch, no virtqueue
 *  ring   a diagnostic: the fast path with requests on a domain that is not
 *         bound, answered S_NOENT by vhost-iommu without a driver call, so
 *         the ring work alone
 *
 * and the page request round trip, on the mock only: the guest posts
 * buffers on the page-request queue, the mock device raises page requests
 * (IOMMU_TEST_OP_TRIGGER_IOPF, one group each), the guest reads the records
 * and answers each group with a PAGE_RESP on the invalidation queue, which
 * reaches the mock device (IOMMU_TEST_OP_IOPF_RESPONSE counts them):
 *
 *  prq-k  vhost-iommu reads the fault queue, writes the records into the
 *         page-request queue and answers the PAGE_RESPs through iommufd
 *  prq-u  a VMM fault thread polls the fault fd, reads the groups and
 *         writes the records into a userspace page-request ring (signal
 *         after each batch); the VMM's invalidation-queue thread reads the
 *         PAGE_RESPs and writes the responses to the fault fd
 *
 * For prq-u, "helper" CPU time is that of both VMM threads.
 *
 * The guest side (post, kick, wait for the used entries) is the same code
 * for both rings. Paths are interleaved within each repeat (the order is
 * reversed every other repeat), and each ratio is taken within a repeat.
 *
 * Output: a table, and machine-readable lines starting with "BENCH ".
 * Under TCG the absolute figures mean nothing; only the ratios indicate.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include "../../../../drivers/iommu/iommufd/iommufd_test.h"
#include "nested_smmu_lib.h"
#include "vhost_iommu_utils.h"

#define FEATURES	VI_FEATURES
#define PRQ_FEATURES	VI_FEATURES_PRI
#define RING		256	/* descriptors: 128 two-part requests */
#define MAX_BATCH	64
/* Entries of one request: the domain's IOTLB entry and its endpoint's */
#define FAN_OUT		2
#define DOMAIN		1
#define DOMAIN_UNBOUND	99	/* the ring path's requests: S_NOENT */
/* The queues: the page-request queue and one invalidation queue */
#define PRQ_VQ		VI_PRQ_VQ
#define INV_VQ		VI_INVALQ(0)
#define NR_VQS		2
#define ENDPOINT	5
#define MOCK_VSID	0x10
#define MOCK_VSID_B	0x11	/* the second mock device, the VMM's */
#define SMMU_VSID	0x10
#define MOCK_ASID	0x42
#define INVAL_LEN	offsetof(struct virtio_iommu_req_invalidate, tail)
#define TAIL_LEN	sizeof(struct virtio_iommu_req_tail)
#define TIMEOUT_MS	10000
#define INVAL_VA	0x400000ULL	/* away from the VAs the oracle uses */
#define PRQ_VA		0x800000ULL	/* faulting address of page request i */
#define REC_LEN		sizeof(struct virtio_iommu_page_request)
#define RESP_LEN	offsetof(struct virtio_iommu_req_page_resp, tail)
#define PRQ_FLAGS	(VIRTIO_IOMMU_FAULT_F_READ | VIRTIO_IOMMU_FAULT_F_WRITE | \
			 VIRTIO_IOMMU_FAULT_F_ADDRESS | VIRTIO_IOMMU_FAULT_F_LAST_PAGE)

enum { PATH_FAST, PATH_USER, PATH_FLOOR, PATH_RING, PATH_PRQ_K, PATH_PRQ_U, NR_PATHS };
static const char * const path_name[NR_PATHS] = {
	"fast", "user", "floor", "ring", "prq-k", "prq-u"
};

static const unsigned int batches[] = { 1, 8, 64 };
#define ARRAY_SIZE(a)	(sizeof(a) / sizeof((a)[0]))
#define NR_BATCHES	ARRAY_SIZE(batches)

static int nr_reqs = 1024;	/* requests per measurement */
static int nr_reps = 7;

struct sample {
	double wall_ns;		/* per request */
	double cpu_ns;		/* CPU time of the whole process, per request */
	double helper_ns;	/* vhost worker (fast) or VMM thread (user) */
	double guest_ns;	/* the guest thread (the caller, for floor) */
};

/* The userspace VMM's side of plain split rings */
struct uvmm {
	struct vi_dev g;	/* the guest side: only vqs and mem */
	uint16_t last_avail[NR_VQS];
	uint16_t used_idx[NR_VQS];
	pthread_t thread;	/* the invalidation queue */
	clockid_t clock;
	pthread_t fthread;	/* the fault fd and the page-request queue */
	clockid_t fclock;
	int fault_fd;		/* -1: no page requests */
	/* Page request records read from the fault fd, not delivered yet */
	struct virtio_iommu_page_request pend[2 * MAX_BATCH];
	unsigned int pend_head, pend_nr;
	/* The iommufd cookie of each group ID the guest may answer */
	uint32_t cookie[MAX_BATCH];
	bool held[MAX_BATCH];
	/* One kick's worth of requests: their entries, heads, tails */
	struct iommu_viommu_invalidate_virtio ent[FAN_OUT * RING];
	struct {
		uint16_t head;
		uint8_t *tail;
		uint8_t status;
		bool inval;
		unsigned int first, nr;
	} pop[RING];
	unsigned long calls, kicks;	/* IOMMU_HWPT_INVALIDATE calls */
	bool stop;
	int errors;
};

struct target {
	const char *name;
	bool smmu;
	int iommufd;
	uint32_t viommu_id;
	uint32_t idev_id;
	uint32_t stdev_id;
	uint32_t vsid;
	/* Page requests (mock): device A for vhost-iommu, B for the VMM */
	bool prq;
	uint32_t idev_b, stdev_b;
	int fault_fd[2];
	struct virtio_iommu_page_request *ev[2][MAX_BATCH];
	struct virtio_iommu_req_page_resp *presp[2][MAX_BATCH];
	uint8_t *ptail[2][MAX_BATCH];
	uint16_t asid;
	struct nested_smmu n;	/* SMMUv3 only */
	struct vi_dev d;	/* vhost-iommu */
	pid_t worker_tid;	/* its vhost worker, 0 if not found */
	struct uvmm u;
	/*
	 * Per slot of a batch: the request and the tail, in each ring: 0 the
	 * vhost-iommu ring, 1 the userspace one, 2 requests on an unbound
	 * domain (vhost-iommu)
	 */
	struct virtio_iommu_req_invalidate *req[3][MAX_BATCH];
	uint8_t *tail[3][MAX_BATCH];
	/* The entries the kernel builds from the requests (the floor's) */
	struct iommu_viommu_invalidate_virtio ent[FAN_OUT * MAX_BATCH];
	struct sample s[NR_PATHS][NR_BATCHES][64];
	unsigned long mock_calls[NR_BATCHES];	/* driver calls, fast path */
	unsigned long mock_kicks[NR_BATCHES];
	unsigned long user_calls[NR_BATCHES];	/* ioctls, user path */
	unsigned long user_kicks[NR_BATCHES];
	char err[256];
};

static double ts_ns(const struct timespec *t)
{
	return t->tv_sec * 1e9 + t->tv_nsec;
}

static double clock_ns(clockid_t c)
{
	struct timespec t;

	if (clock_gettime(c, &t))
		return 0;
	return ts_ns(&t);
}

static clockid_t tid_clock(pid_t tid)
{
	/* The per-thread CPUCLOCK_SCHED clock of another thread of ours */
	return ((~(clockid_t)tid) << 3) | 6;
}

static int hwpt_invalidate(int fd, uint32_t id, uint32_t type,
			   const void *data, uint32_t len, uint32_t num)
{
	struct iommu_hwpt_invalidate cmd = {
		.size = sizeof(cmd),
		.hwpt_id = id,
		.data_uptr = (uintptr_t)data,
		.data_type = type,
		.entry_len = len,
		.entry_num = num,
	};

	if (ioctl(fd, IOMMU_HWPT_INVALIDATE, &cmd))
		return -errno;
	return cmd.entry_num == num ? 0 : -EIO;
}

/* The vhost worker threads of this process ("vhost-<pid>") */
static int vhost_workers(pid_t *tids, int max)
{
	DIR *dir = opendir("/proc/self/task");
	struct dirent *de;
	int n = 0;

	if (!dir)
		return 0;
	while ((de = readdir(dir)) && n < max) {
		char path[300], comm[32] = "";
		FILE *f;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/comm", de->d_name);
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

/* The request of slot @i: a one-page TLB invalidation of address space id */
static void fill_req(struct target *t, struct virtio_iommu_req_invalidate *r,
		     unsigned int i)
{
	memset(r, 0, sizeof(*r));
	r->head.type = VIRTIO_IOMMU_T_INVALIDATE;
	r->scope = VIRTIO_IOMMU_INVAL_S_ADDRESS;
	r->caches = VIRTIO_IOMMU_INVAL_C_TLB;
	r->flags = htole16(VIRTIO_IOMMU_INVAL_F_ID | VIRTIO_IOMMU_INVAL_F_LEAF);
	r->domain = htole32(DOMAIN);
	r->id = htole64(t->asid);
	r->address = htole64(INVAL_VA + i * 4096ULL);
	r->nr_pages = htole64(1);
	r->page_size = 12;
}

/* Guest RAM at guest-physical address @addr */
static void *hva(struct vi_dev *d, uint64_t addr)
{
	return (uint8_t *)d->mem + (addr - VI_GPA_BASE);
}

/*
 * The B1 fan-out of an INVALIDATE on DOMAIN, whose one endpoint is @vsid,
 * into @e: the domain entry (IOTLB) then the endpoint entry. As the kernel
 * builds it, so that both paths hand the driver the same work.
 */
static unsigned int fan_out(struct iommu_viommu_invalidate_virtio *e,
			    const struct virtio_iommu_req_invalidate *r,
			    uint32_t vsid)
{
	memset(e, 0, 2 * sizeof(*e));
	memcpy((uint8_t *)e + IOMMU_VIRTIO_INVAL_REQ_OFFSET,
	       (const uint8_t *)r + sizeof(r->head), IOMMU_VIRTIO_INVAL_REQ_LEN);
	e[1] = e[0];
	e[0].caches &= ~IOMMU_VIRTIO_INVAL_C_PASID;
	e[1].flags = IOMMU_VIRTIO_INVAL_HOST_F_VDEV;
	e[1].vdev_id = vsid;
	return 2;
}

/*
 * The entries @u->ent[@done..@nr) of the popped requests in one call, and
 * again from the request after one that fails; each request's status.
 */
static void uvmm_invalidate(struct target *t, unsigned int nr_pop,
			    unsigned int done, unsigned int nr)
{
	struct uvmm *u = &t->u;

	while (done < nr) {
		struct iommu_hwpt_invalidate cmd = {
			.size = sizeof(cmd),
			.hwpt_id = t->viommu_id,
			.data_uptr = (uintptr_t)&u->ent[done],
			.data_type = IOMMU_VIOMMU_INVALIDATE_DATA_VIRTIO,
			.entry_len = sizeof(u->ent[0]),
			.entry_num = nr - done,
		};
		int ret = ioctl(t->iommufd, IOMMU_HWPT_INVALIDATE, &cmd);
		unsigned int ok = done + (ret ? cmd.entry_num : nr - done);
		unsigned int next = nr;

		u->calls++;
		for (unsigned int i = 0; i < nr_pop; i++) {
			if (!u->pop[i].inval || u->pop[i].first < done ||
			    u->pop[i].first + u->pop[i].nr <= ok)
				continue;
			/* The failing request; the next one is handed again */
			u->pop[i].status = VIRTIO_IOMMU_S_INVAL;
			next = u->pop[i].first + u->pop[i].nr;
			break;
		}
		if (!ret)
			break;
		done = next;
	}
}

/* Answer a PAGE_RESP: the response to the group, on the fault fd */
static int uvmm_page_resp(struct target *t,
			  const struct virtio_iommu_req_page_resp *r)
{
	struct uvmm *u = &t->u;
	struct iommu_hwpt_page_response resp = {};
	uint32_t grp = le32toh(r->group);

	if (u->fault_fd < 0 || le32toh(r->endpoint) != ENDPOINT ||
	    r->flags || grp >= MAX_BATCH ||
	    !__atomic_load_n(&u->held[grp], __ATOMIC_ACQUIRE))
		return VIRTIO_IOMMU_S_INVAL;
	resp.cookie = u->cookie[grp];
	resp.code = le16toh(r->code);
	__atomic_store_n(&u->held[grp], false, __ATOMIC_RELEASE);
	if (write(u->fault_fd, &resp, sizeof(resp)) != sizeof(resp))
		return VIRTIO_IOMMU_S_IOERR;
	return VIRTIO_IOMMU_S_OK;
}

/* Return a buffer of @vq to the guest (the caller signals) */
static void uvmm_used(struct uvmm *u, unsigned int index, uint16_t head,
		      uint32_t len)
{
	struct vi_vq *vq = &u->g.vqs[index];
	uint16_t idx = u->used_idx[index];

	vq->used->ring[idx % vq->num].id = head;
	vq->used->ring[idx % vq->num].len = len;
	u->used_idx[index] = ++idx;
	__atomic_store_n(&vq->used->idx, idx, __ATOMIC_RELEASE);
}

/*
 * The invalidation queue, as a VMM serving it itself does it best: pop the
 * kick's worth, one IOMMU_HWPT_INVALIDATE (virtio type) for all of its
 * INVALIDATEs, complete in ring order with one signal. A PAGE_RESP goes to
 * the fault fd after the INVALIDATEs before it, as on the device.
 */
static void *uvmm_fn(void *arg)
{
	struct target *t = arg;
	struct uvmm *u = &t->u;
	struct vi_vq *vq = &u->g.vqs[INV_VQ];
	uint16_t *last = &u->last_avail[INV_VQ];
	eventfd_t val;

	for (;;) {
		unsigned int nr_pop = 0, nr_ent = 0, sent = 0;

		/* The kick eventfd is blocking for this thread: the "ioeventfd" */
		if (eventfd_read(vq->kick_fd, &val))
			continue;
		if (__atomic_load_n(&u->stop, __ATOMIC_ACQUIRE))
			return NULL;
		u->kicks++;
		while (*last != __atomic_load_n(&vq->avail->idx, __ATOMIC_ACQUIRE) &&
		       nr_pop < RING) {
			union {
				struct virtio_iommu_req_head head;
				struct virtio_iommu_req_invalidate inv;
				struct virtio_iommu_req_page_resp resp;
			} r;
			uint16_t head = vq->avail->ring[*last % vq->num];
			struct vring_desc *dr, *dw;
			uint32_t rlen;

			(*last)++;
			if (head >= vq->num) {
				u->errors++;
				continue;
			}
			dr = &vq->desc[head];
			dw = &vq->desc[dr->next % vq->num];
			u->pop[nr_pop].head = head;
			u->pop[nr_pop].tail = NULL;
			u->pop[nr_pop].inval = false;
			/* Copy the request out of guest memory before using it */
			memset(&r, 0, sizeof(r));
			if (dr->len >= sizeof(r.head))
				memcpy(&r.head, hva(&u->g, dr->addr), sizeof(r.head));
			rlen = r.head.type == VIRTIO_IOMMU_T_PAGE_RESP ?
			       RESP_LEN : INVAL_LEN;
			if (!(dr->flags & VRING_DESC_F_NEXT) || dr->len < rlen ||
			    !(dw->flags & VRING_DESC_F_WRITE) || dw->len < TAIL_LEN) {
				u->errors++;
				nr_pop++;
				continue;
			}
			memcpy(&r, hva(&u->g, dr->addr), rlen);
			u->pop[nr_pop].tail = hva(&u->g, dw->addr);
			if (r.head.type == VIRTIO_IOMMU_T_PAGE_RESP) {
				/* After the INVALIDATEs before it */
				uvmm_invalidate(t, nr_pop, sent, nr_ent);
				sent = nr_ent;
				u->pop[nr_pop].status = uvmm_page_resp(t, &r.resp);
			} else if (le32toh(r.inv.domain) != DOMAIN) {
				u->pop[nr_pop].status = VIRTIO_IOMMU_S_NOENT;
			} else {
				u->pop[nr_pop].inval = true;
				u->pop[nr_pop].status = VIRTIO_IOMMU_S_OK;
				u->pop[nr_pop].first = nr_ent;
				u->pop[nr_pop].nr = fan_out(&u->ent[nr_ent], &r.inv,
							    t->vsid);
				nr_ent += u->pop[nr_pop].nr;
			}
			nr_pop++;
		}
		if (!nr_pop)
			continue;
		/* The entries not handed yet, in one call */
		uvmm_invalidate(t, nr_pop, sent, nr_ent);
		for (unsigned int i = 0; i < nr_pop; i++) {
			uint32_t len = 0;
			uint16_t idx = u->used_idx[INV_VQ];

			if (u->pop[i].tail) {
				if (u->pop[i].status != VIRTIO_IOMMU_S_OK &&
				    u->pop[i].status != VIRTIO_IOMMU_S_NOENT)
					u->errors++;
				memset(u->pop[i].tail, 0, TAIL_LEN);
				u->pop[i].tail[0] = u->pop[i].status;
				len = TAIL_LEN;
			}
			vq->used->ring[idx % vq->num].id = u->pop[i].head;
			vq->used->ring[idx % vq->num].len = len;
			u->used_idx[INV_VQ] = idx + 1;
		}
		/* One used index update and one signal per kick */
		__atomic_store_n(&vq->used->idx, u->used_idx[INV_VQ],
				 __ATOMIC_RELEASE);
		eventfd_write(vq->call_fd, 1);
	}
}

/* Write the pending page request records into the guest's buffers */
static void uvmm_deliver(struct uvmm *u)
{
	struct vi_vq *vq = &u->g.vqs[PRQ_VQ];
	uint16_t *last = &u->last_avail[PRQ_VQ];
	bool any = false;

	while (u->pend_nr &&
	       *last != __atomic_load_n(&vq->avail->idx, __ATOMIC_ACQUIRE)) {
		uint16_t head = vq->avail->ring[*last % vq->num];
		struct vring_desc *dw;
		uint32_t len = 0;

		(*last)++;
		if (head >= vq->num) {
			u->errors++;
			continue;
		}
		dw = &vq->desc[head];
		if ((dw->flags & (VRING_DESC_F_WRITE | VRING_DESC_F_NEXT)) !=
		    VRING_DESC_F_WRITE || dw->len < REC_LEN) {
			u->errors++;
		} else {
			memcpy(hva(&u->g, dw->addr),
			       &u->pend[u->pend_head % ARRAY_SIZE(u->pend)], REC_LEN);
			u->pend_head++;
			u->pend_nr--;
			len = REC_LEN;
		}
		uvmm_used(u, PRQ_VQ, head, len);
		any = true;
	}
	/* One signal per batch of records, as the device does */
	if (any)
		eventfd_write(vq->call_fd, 1);
}

/* Read the groups of the fault fd into virtio records */
static void uvmm_read_faults(struct uvmm *u)
{
	struct iommu_hwpt_pgfault f[16];
	ssize_t n;

	n = read(u->fault_fd, f, sizeof(f));
	if (n <= 0)
		return;
	for (unsigned int i = 0; i < n / sizeof(f[0]); i++) {
		struct virtio_iommu_page_request *rec;
		uint32_t flags = VIRTIO_IOMMU_FAULT_F_ADDRESS;

		if (f[i].grpid >= MAX_BATCH || u->pend_nr == ARRAY_SIZE(u->pend) ||
		    (f[i].flags & IOMMU_PGFAULT_FLAGS_PASID_VALID)) {
			struct iommu_hwpt_page_response resp = {
				.cookie = f[i].cookie,
				.code = IOMMUFD_PAGE_RESP_INVALID,
			};

			u->errors++;
			if (write(u->fault_fd, &resp, sizeof(resp)) != sizeof(resp))
				u->errors++;
			continue;
		}
		if (f[i].perm & IOMMU_PGFAULT_PERM_READ)
			flags |= VIRTIO_IOMMU_FAULT_F_READ;
		if (f[i].perm & IOMMU_PGFAULT_PERM_WRITE)
			flags |= VIRTIO_IOMMU_FAULT_F_WRITE;
		if (f[i].flags & IOMMU_PGFAULT_FLAGS_LAST_PAGE)
			flags |= VIRTIO_IOMMU_FAULT_F_LAST_PAGE;
		rec = &u->pend[(u->pend_head + u->pend_nr++) % ARRAY_SIZE(u->pend)];
		memset(rec, 0, sizeof(*rec));
		rec->reason = VIRTIO_IOMMU_FAULT_R_PAGE_REQUEST;
		rec->flags = htole32(flags);
		rec->endpoint = htole32(ENDPOINT);
		rec->address = htole64(f[i].addr);
		rec->group = htole32(f[i].grpid);
		u->cookie[f[i].grpid] = f[i].cookie;
		__atomic_store_n(&u->held[f[i].grpid], true, __ATOMIC_RELEASE);
	}
}

/* The fault fd and the event queue */
static void *uvmm_fault_fn(void *arg)
{
	struct target *t = arg;
	struct uvmm *u = &t->u;
	struct pollfd pfd[2] = {
		{ .fd = u->fault_fd, .events = POLLIN },
		{ .fd = u->g.vqs[PRQ_VQ].kick_fd, .events = POLLIN },
	};
	eventfd_t val;

	for (;;) {
		if (poll(pfd, 2, -1) <= 0)
			continue;
		if (__atomic_load_n(&u->stop, __ATOMIC_ACQUIRE))
			return NULL;
		if (pfd[1].revents)
			eventfd_read(pfd[1].fd, &val);
		if (pfd[0].revents)
			uvmm_read_faults(u);
		uvmm_deliver(u);
	}
}

static int uvmm_setup(struct target *t)
{
	struct uvmm *u = &t->u;

	memset(u, 0, sizeof(*u));
	u->g.fd = -1;
	u->fault_fd = t->prq ? t->fault_fd[1] : -1;
	for (int i = 0; i < NR_VQS; i++) {
		u->g.vqs[i].kick_fd = -1;
		u->g.vqs[i].call_fd = -1;
	}
	u->g.mem = mmap(NULL, VI_MEM_SIZE, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (u->g.mem == MAP_FAILED) {
		u->g.mem = NULL;
		return -errno;
	}
	for (int i = 0; i < NR_VQS; i++) {
		struct vi_vq *vq = &u->g.vqs[i];

		vq->num = RING;
		vq->desc = vi_alloc(&u->g, 16 * RING);
		vq->avail = vi_alloc(&u->g, 6 + 2 * RING);
		vq->used = vi_alloc(&u->g, 6 + 8 * RING);
		vq->chain_len = calloc(RING, sizeof(*vq->chain_len));
		if (!vq->desc || !vq->avail || !vq->used || !vq->chain_len)
			return -ENOMEM;
		for (unsigned int j = 0; j < RING; j++)
			vq->desc[j].next = j + 1;
		vq->nr_free = RING;
		/* Blocking for the request thread, polled by the fault thread */
		vq->kick_fd = eventfd(0, EFD_CLOEXEC |
				      (i == PRQ_VQ ? EFD_NONBLOCK : 0));
		vq->call_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (vq->kick_fd < 0 || vq->call_fd < 0)
			return -errno;
	}
	if (pthread_create(&u->thread, NULL, uvmm_fn, t))
		return -EAGAIN;
	if (pthread_getcpuclockid(u->thread, &u->clock))
		u->clock = 0;
	if (u->fault_fd < 0)
		return 0;
	if (pthread_create(&u->fthread, NULL, uvmm_fault_fn, t))
		return -EAGAIN;
	if (pthread_getcpuclockid(u->fthread, &u->fclock))
		u->fclock = 0;
	return 0;
}

static void uvmm_teardown(struct target *t)
{
	struct uvmm *u = &t->u;

	__atomic_store_n(&u->stop, true, __ATOMIC_RELEASE);
	if (u->thread) {
		eventfd_write(u->g.vqs[INV_VQ].kick_fd, 1);
		pthread_join(u->thread, NULL);
	}
	if (u->fthread) {
		eventfd_write(u->g.vqs[PRQ_VQ].kick_fd, 1);
		pthread_join(u->fthread, NULL);
	}
	for (int i = 0; i < NR_VQS; i++) {
		struct vi_vq *vq = &u->g.vqs[i];

		/* 0: uvmm_setup() did not run (static storage) */
		if (vq->kick_fd > 0)
			close(vq->kick_fd);
		if (vq->call_fd > 0)
			close(vq->call_fd);
		free(vq->chain_len);
	}
	if (u->g.mem)
		munmap(u->g.mem, VI_MEM_SIZE);
}

static int mock_setup(struct target *t)
{
	struct iommu_test_cmd mock = {
		.size = sizeof(mock),
		.op = IOMMU_TEST_OP_MOCK_DOMAIN,
	};
	struct iommu_vdevice_alloc vdev = {
		.size = sizeof(vdev),
		.virt_id = MOCK_VSID_B,
	};
	struct vi_mock m;
	int ret;

	ret = vi_mock_viommu(&m, MOCK_VSID);
	t->iommufd = m.iommufd;
	if (ret)
		return ret;
	t->idev_id = m.idev_id;
	t->stdev_id = m.stdev_id;
	t->viommu_id = m.viommu_id;
	t->vsid = MOCK_VSID;
	t->asid = MOCK_ASID;

	/* Page requests: device A for vhost-iommu, device B for the VMM */
	ret = vi_mock_fault_attach(t->iommufd, t->viommu_id, t->idev_id,
				   t->stdev_id, NULL, &t->fault_fd[0], NULL);
	if (ret)
		return ret;
	mock.id = m.ioas_id;
	if (ioctl(t->iommufd, IOMMU_TEST_CMD, &mock))
		return -errno;
	t->idev_b = mock.mock_domain.out_idev_id;
	t->stdev_b = mock.mock_domain.out_stdev_id;
	vdev.viommu_id = t->viommu_id;
	vdev.dev_id = t->idev_b;
	if (ioctl(t->iommufd, IOMMU_VDEVICE_ALLOC, &vdev))
		return -errno;
	ret = vi_mock_fault_attach(t->iommufd, t->viommu_id, t->idev_b,
				   t->stdev_b, NULL, &t->fault_fd[1], NULL);
	if (ret)
		return ret;
	t->prq = true;
	return 0;
}

/* The mock device raises a page request: one group, no PASID */
static int mock_trigger(struct target *t, uint32_t dev_id, uint32_t grpid,
			uint64_t addr)
{
	struct iommu_test_cmd cmd = {
		.size = sizeof(cmd),
		.op = IOMMU_TEST_OP_TRIGGER_IOPF,
		.trigger_iopf = {
			.dev_id = dev_id,
			.grpid = grpid,
			.perm = IOMMU_PGFAULT_PERM_READ |
				IOMMU_PGFAULT_PERM_WRITE,
			.addr = addr,
		},
	};

	return ioctl(t->iommufd, IOMMU_TEST_CMD, &cmd) ? -errno : 0;
}

/* Number of page responses the mock device of @dev_id received */
static long mock_responses(struct target *t, uint32_t dev_id)
{
	struct iommu_test_cmd cmd = {
		.size = sizeof(cmd),
		.op = IOMMU_TEST_OP_IOPF_RESPONSE,
		.iopf_response = { .dev_id = dev_id },
	};

	if (ioctl(t->iommufd, IOMMU_TEST_CMD, &cmd))
		return -errno;
	return cmd.iopf_response.out_count;
}

/* Read and clear the mock's count of virtio cache_invalidate calls */
static long mock_calls(struct target *t)
{
	struct iommu_test_virtio_inv_record recs[MOCK_VIRTIO_LOG_MAX];
	struct iommu_test_cmd cmd = {
		.size = sizeof(cmd),
		.op = IOMMU_TEST_OP_VIOMMU_VIRTIO_LOG,
		.id = t->viommu_id,
		.virtio_log = {
			.uptr = (uintptr_t)recs,
			.max = MOCK_VIRTIO_LOG_MAX,
		},
	};

	if (ioctl(t->iommufd, IOMMU_TEST_CMD, &cmd))
		return -errno;
	return cmd.virtio_log.out_calls;
}

static int target_setup(struct target *t)
{
	pid_t before[16], after[16];
	int nb, na, ret;

	t->iommufd = -1;
	t->d.fd = -1;
	t->fault_fd[0] = -1;
	t->fault_fd[1] = -1;
	if (t->smmu) {
		ret = nsmmu_setup(&t->n, 0, SMMU_VSID);
		if (ret) {
			snprintf(t->err, sizeof(t->err), "%s", t->n.err);
			return ret;
		}
		t->iommufd = t->n.iommufd;
		t->viommu_id = t->n.viommu_id;
		t->idev_id = t->n.edu.dev_id;
		t->vsid = t->n.vsid;
		t->asid = t->n.asid;
	} else {
		ret = mock_setup(t);
		if (ret) {
			snprintf(t->err, sizeof(t->err), "mock vIOMMU: %s", strerror(-ret));
			return ret;
		}
	}

	nb = vhost_workers(before, 16);
	ret = vi_open(&t->d);
	if (!ret)
		ret = vi_setup(&t->d, t->prq ? PRQ_FEATURES : FEATURES, RING, 1);
	if (ret) {
		snprintf(t->err, sizeof(t->err), "vhost-iommu: %s", strerror(-ret));
		return ret;
	}
	ret = vi_set_iommufd(t->d.fd, t->iommufd, 0);
	if (!ret)
		ret = vi_set_domain(t->d.fd, 0, DOMAIN, t->viommu_id);
	if (!ret)
		ret = vi_set_endpoint(t->d.fd, 0, ENDPOINT, DOMAIN, t->idev_id,
				      t->vsid);
	if (!ret && t->prq)
		ret = vi_set_fault_queue(t->d.fd, 0, t->fault_fd[0]);
	if (ret) {
		snprintf(t->err, sizeof(t->err), "vhost-iommu bind: %s", strerror(-ret));
		return ret;
	}
	na = vhost_workers(after, 16);
	for (int i = 0; i < na && !t->worker_tid; i++) {
		bool old = false;

		for (int j = 0; j < nb; j++)
			old |= after[i] == before[j];
		if (!old)
			t->worker_tid = after[i];
	}

	ret = uvmm_setup(t);
	if (ret) {
		snprintf(t->err, sizeof(t->err), "userspace ring: %s", strerror(-ret));
		return ret;
	}

	for (unsigned int i = 0; i < MAX_BATCH; i++) {
		struct vi_dev *ring[3] = { &t->d, &t->u.g, &t->d };

		for (int k = 0; k < 3; k++) {
			t->req[k][i] = vi_alloc(ring[k], sizeof(*t->req[k][i]));
			t->tail[k][i] = vi_alloc(ring[k], TAIL_LEN);
			if (!t->req[k][i] || !t->tail[k][i])
				return -ENOMEM;
			fill_req(t, t->req[k][i], i);
		}
		t->req[2][i]->domain = htole32(DOMAIN_UNBOUND);
		/* What vhost-iommu builds for the request: its B1 fan-out */
		fan_out(&t->ent[FAN_OUT * i], t->req[0][i], t->vsid);

		for (int k = 0; k < 2 && t->prq; k++) {
			t->ev[k][i] = vi_alloc(ring[k], REC_LEN);
			t->presp[k][i] = vi_alloc(ring[k], sizeof(*t->presp[k][i]));
			t->ptail[k][i] = vi_alloc(ring[k], TAIL_LEN);
			if (!t->ev[k][i] || !t->presp[k][i] || !t->ptail[k][i])
				return -ENOMEM;
			memset(t->presp[k][i], 0, sizeof(*t->presp[k][i]));
			t->presp[k][i]->head.type = VIRTIO_IOMMU_T_PAGE_RESP;
			t->presp[k][i]->endpoint = htole32(ENDPOINT);
			t->presp[k][i]->group = htole32(i);
			t->presp[k][i]->code = htole16(VIRTIO_IOMMU_PAGE_RESP_SUCCESS);
		}
	}
	return 0;
}

static void target_teardown(struct target *t)
{
	uvmm_teardown(t);
	if (t->d.fd >= 0)
		vi_close(&t->d);
	for (int k = 0; k < 2; k++)
		if (t->fault_fd[k] > 0)
			close(t->fault_fd[k]);
	if (t->smmu)
		nsmmu_teardown(&t->n);
	else if (t->iommufd >= 0)
		close(t->iommufd);
}

/* The guest: @batch requests, one kick, wait for all; 0 or -errno */
static int guest_batch(struct target *t, int k, unsigned int batch)
{
	struct vi_dev *d = k == 1 ? &t->u.g : &t->d;
	uint8_t want = k == 2 ? VIRTIO_IOMMU_S_NOENT : VIRTIO_IOMMU_S_OK;
	uint32_t id, len;

	for (unsigned int i = 0; i < batch; i++) {
		t->tail[k][i][0] = 0xff;
		if (vi_post_req(d, INV_VQ, t->req[k][i], INVAL_LEN, t->tail[k][i],
				TAIL_LEN) < 0)
			return -ENOSPC;
	}
	eventfd_write(d->vqs[INV_VQ].kick_fd, 1);
	for (unsigned int i = 0; i < batch; i++) {
		if (vi_get_used(d, INV_VQ, &id, &len, TIMEOUT_MS))
			return -ETIMEDOUT;
		if (len != TAIL_LEN)
			return -EIO;
	}
	for (unsigned int i = 0; i < batch; i++)
		if (t->tail[k][i][0] != want)
			return -EIO;
	return 0;
}

/*
 * The page request round trip, @batch groups at a time: event buffers, the
 * mock device's page requests, the records, the PAGE_RESPs and their
 * completion. k = 0: vhost-iommu, 1: the userspace VMM. 0 or -errno.
 */
static int guest_prq(struct target *t, int k, unsigned int batch)
{
	struct vi_dev *d = k ? &t->u.g : &t->d;
	uint32_t dev_id = k ? t->idev_b : t->idev_id;
	uint32_t id, len;
	int ret;

	for (unsigned int i = 0; i < batch; i++) {
		struct vi_seg seg = {
			.addr = t->ev[k][i], .len = REC_LEN, .writable = true,
		};

		memset(t->ev[k][i], 0xff, REC_LEN);
		if (vi_post(d, PRQ_VQ, &seg, 1) < 0)
			return -ENOSPC;
	}
	eventfd_write(d->vqs[PRQ_VQ].kick_fd, 1);
	for (unsigned int i = 0; i < batch; i++) {
		ret = mock_trigger(t, dev_id, i, PRQ_VA + i * 4096ULL);
		if (ret)
			return ret;
	}
	for (unsigned int i = 0; i < batch; i++) {
		if (vi_get_used(d, PRQ_VQ, &id, &len, TIMEOUT_MS))
			return -ETIMEDOUT;
		if (len != REC_LEN)
			return -EIO;
	}
	/* The records arrive in the order the device raised them */
	for (unsigned int i = 0; i < batch; i++) {
		const struct virtio_iommu_page_request *rec = t->ev[k][i];

		if (rec->reason != VIRTIO_IOMMU_FAULT_R_PAGE_REQUEST ||
		    le32toh(rec->flags) != PRQ_FLAGS ||
		    le32toh(rec->endpoint) != ENDPOINT ||
		    le32toh(rec->group) != i ||
		    le64toh(rec->address) != PRQ_VA + i * 4096ULL)
			return -EIO;
	}
	for (unsigned int i = 0; i < batch; i++) {
		t->ptail[k][i][0] = 0xff;
		if (vi_post_req(d, INV_VQ, t->presp[k][i], RESP_LEN, t->ptail[k][i],
				TAIL_LEN) < 0)
			return -ENOSPC;
	}
	eventfd_write(d->vqs[INV_VQ].kick_fd, 1);
	for (unsigned int i = 0; i < batch; i++) {
		if (vi_get_used(d, INV_VQ, &id, &len, TIMEOUT_MS))
			return -ETIMEDOUT;
		if (len != TAIL_LEN)
			return -EIO;
	}
	for (unsigned int i = 0; i < batch; i++)
		if (t->ptail[k][i][0] != VIRTIO_IOMMU_S_OK)
			return -EIO;
	return 0;
}

static int floor_batch(struct target *t, unsigned int batch)
{
	return hwpt_invalidate(t->iommufd, t->viommu_id,
			       IOMMU_VIOMMU_INVALIDATE_DATA_VIRTIO, t->ent,
			       sizeof(t->ent[0]), FAN_OUT * batch);
}

static bool has_path(const struct target *t, int path)
{
	return t->prq || (path != PATH_PRQ_K && path != PATH_PRQ_U);
}

static int measure(struct target *t, int path, unsigned int bi,
		   struct sample *s)
{
	unsigned int batch = batches[bi];
	int rounds = (nr_reqs + batch - 1) / batch;
	clockid_t helper = 0, helper2 = 0;
	double w0, c0, g0, h0 = 0, h1 = 0;
	long resp0 = 0;
	int ret = 0;

	if ((path == PATH_FAST || path == PATH_RING || path == PATH_PRQ_K) &&
	    t->worker_tid)
		helper = tid_clock(t->worker_tid);
	else if (path == PATH_USER || path == PATH_PRQ_U)
		helper = t->u.clock;
	if (path == PATH_PRQ_U)
		helper2 = t->u.fclock;
	unsigned long ucalls = t->u.calls, ukicks = t->u.kicks;

	if (path == PATH_FAST && !t->smmu)
		mock_calls(t);
	if (path == PATH_PRQ_K || path == PATH_PRQ_U) {
		resp0 = mock_responses(t, path == PATH_PRQ_K ? t->idev_id : t->idev_b);
		if (resp0 < 0)
			ret = resp0;
	}

	w0 = clock_ns(CLOCK_MONOTONIC);
	c0 = clock_ns(CLOCK_PROCESS_CPUTIME_ID);
	g0 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
	if (helper)
		h0 = clock_ns(helper);
	if (helper2)
		h1 = clock_ns(helper2);
	for (int r = 0; r < rounds && !ret; r++) {
		switch (path) {
		case PATH_FAST:
			ret = guest_batch(t, 0, batch);
			break;
		case PATH_USER:
			ret = guest_batch(t, 1, batch);
			break;
		case PATH_RING:
			ret = guest_batch(t, 2, batch);
			break;
		case PATH_PRQ_K:
			ret = guest_prq(t, 0, batch);
			break;
		case PATH_PRQ_U:
			ret = guest_prq(t, 1, batch);
			break;
		default:
			ret = floor_batch(t, batch);
		}
	}
	s->wall_ns = (clock_ns(CLOCK_MONOTONIC) - w0) / (rounds * batch);
	s->cpu_ns = (clock_ns(CLOCK_PROCESS_CPUTIME_ID) - c0) / (rounds * batch);
	s->guest_ns = (clock_ns(CLOCK_THREAD_CPUTIME_ID) - g0) / (rounds * batch);
	s->helper_ns = helper ? (clock_ns(helper) - h0) / (rounds * batch) : 0;
	if (helper2)
		s->helper_ns += (clock_ns(helper2) - h1) / (rounds * batch);

	/* Every PAGE_RESP reached the mock device, once */
	if (!ret && (path == PATH_PRQ_K || path == PATH_PRQ_U)) {
		long resp = mock_responses(t, path == PATH_PRQ_K ? t->idev_id : t->idev_b);

		if (resp - resp0 != (long)rounds * batch)
			ret = -EPROTO;
	}

	if (path == PATH_USER) {
		t->user_calls[bi] += t->u.calls - ucalls;
		t->user_kicks[bi] += t->u.kicks - ukicks;
	}
	if (path == PATH_FAST && !t->smmu) {
		long calls = mock_calls(t);

		if (calls > 0) {
			t->mock_calls[bi] += calls;
			t->mock_kicks[bi] += rounds;
		}
	}
	if (ret)
		snprintf(t->err, sizeof(t->err), "%s batch %u: %s", path_name[path],
			 batch, strerror(-ret));
	return ret;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

struct stat3 {
	double med, min, max;
};

static struct stat3 stats(double *v, int n)
{
	struct stat3 s;

	qsort(v, n, sizeof(*v), cmp_double);
	s.min = v[0];
	s.max = v[n - 1];
	s.med = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
	return s;
}

static double rps(const struct sample *s)
{
	return s->wall_ns > 0 ? 1e9 / s->wall_ns : 0;
}

static void report(struct target *t)
{
	double v[64];
	struct stat3 st;

	printf("\n== %s: requests per second, median of %d repeats [min..max], ", t->name, nr_reps);
	printf("%d requests per measurement ==\n", nr_reqs);
	printf("%-6s %-6s %10s %22s %9s %10s %10s %10s\n", "batch", "path", "req/s",
	       "[min..max]", "spread", "cpu ns/rq", "helper ns", "guest ns");
	for (unsigned int b = 0; b < NR_BATCHES; b++) {
		for (int p = 0; p < NR_PATHS; p++) {
			double cpu[64], hlp[64], gst[64];
			struct stat3 c, h, g;

			if (!has_path(t, p))
				continue;
			for (int r = 0; r < nr_reps; r++) {
				v[r] = rps(&t->s[p][b][r]);
				cpu[r] = t->s[p][b][r].cpu_ns;
				hlp[r] = t->s[p][b][r].helper_ns;
				gst[r] = t->s[p][b][r].guest_ns;
			}
			st = stats(v, nr_reps);
			c = stats(cpu, nr_reps);
			h = stats(hlp, nr_reps);
			g = stats(gst, nr_reps);
			printf("%-6u %-6s %10.0f [%9.0f..%9.0f] %8.1f%% %10.0f %10.0f %10.0f\n",
			       batches[b], path_name[p], st.med, st.min, st.max,
			       100 * (st.max - st.min) / st.med, c.med, h.med, g.med);
			printf("BENCH target=%s path=%s batch=%u reps=%d reqs=%d ",
			       t->name, path_name[p], batches[b], nr_reps, nr_reqs);
			printf("rps_median=%.0f rps_min=%.0f rps_max=%.0f spread_pct=%.1f ",
			       st.med, st.min, st.max, 100 * (st.max - st.min) / st.med);
			printf("cpu_ns_per_req=%.0f helper_ns_per_req=%.0f guest_ns_per_req=%.0f\n",
			       c.med, h.med, g.med);
		}
	}

	printf("-- %s: ratios, each within one repeat (median [min..max]) --\n", t->name);
	for (unsigned int b = 0; b < NR_BATCHES; b++) {
		/* time: time per request of a over b; else throughput of a over b */
		static const struct {
			const char *name, *what;
			int a, b;
			bool time;
		} rt[] = {
			{ "fast/user", "throughput, fast over user (a VMM, one ioctl per kick)",
			  PATH_FAST, PATH_USER, false },
			{ "fast/floor", "time per request, fast over floor (target <= 1.25)",
			  PATH_FAST, PATH_FLOOR, true },
			{ "ring/fast", "time per request, refused requests over fast",
			  PATH_RING, PATH_FAST, true },
			{ "prq-k/prq-u", "page request round trips, kernel over VMM",
			  PATH_PRQ_K, PATH_PRQ_U, false },
		};

		for (unsigned int k = 0; k < ARRAY_SIZE(rt); k++) {
			const char *what = rt[k].what;

			if (!has_path(t, rt[k].a) || !has_path(t, rt[k].b))
				continue;
			for (int r = 0; r < nr_reps; r++) {
				const struct sample *a = &t->s[rt[k].a][b][r];
				const struct sample *c = &t->s[rt[k].b][b][r];

				v[r] = rt[k].time ? a->wall_ns / c->wall_ns :
						    c->wall_ns / a->wall_ns;
			}
			st = stats(v, nr_reps);
			printf("batch %-3u %-11s %7.2f [%.2f..%.2f]  %s\n", batches[b],
			       rt[k].name, st.med, st.min, st.max, what);
			printf("BENCH-RATIO target=%s ratio=%s batch=%u ",
			       t->name, rt[k].name, batches[b]);
			printf("median=%.3f min=%.3f max=%.3f\n",
			       st.med, st.min, st.max);
		}
	}
	for (unsigned int b = 0; b < NR_BATCHES && t->worker_tid; b++) {
		for (int r = 0; r < nr_reps; r++)
			v[r] = t->s[PATH_FAST][b][r].helper_ns / t->s[PATH_FLOOR][b][r].cpu_ns;
		st = stats(v, nr_reps);
		printf("batch %-3u worker CPU/floor CPU per request %6.2f [%.2f..%.2f]\n",
		       batches[b], st.med, st.min, st.max);
		printf("BENCH-RATIO target=%s ratio=worker_cpu/floor_cpu batch=%u ",
		       t->name, batches[b]);
		printf("median=%.3f min=%.3f max=%.3f\n", st.med, st.min, st.max);
	}
	for (int p = 0; p < NR_PATHS; p++) {
		if (!has_path(t, p))
			continue;
		for (int r = 0; r < nr_reps; r++)
			v[r] = t->s[p][0][r].wall_ns / t->s[p][NR_BATCHES - 1][r].wall_ns;
		st = stats(v, nr_reps);
		printf("%-5s batch-64/batch-1 per request %7.2f [%.2f..%.2f]%s\n",
		       path_name[p], st.med, st.min, st.max,
		       p == PATH_FAST ? "  (target >= 10)" : "");
		printf("BENCH-RATIO target=%s ratio=b64/b1 path=%s median=%.3f min=%.3f max=%.3f\n",
		       t->name, path_name[p], st.med, st.min, st.max);
	}
	if (!t->smmu) {
		for (unsigned int b = 0; b < NR_BATCHES; b++) {
			double cpk = t->mock_kicks[b] ?
				     (double)t->mock_calls[b] / t->mock_kicks[b] : 0;

			printf("fast batch %-3u: %.2f driver calls per kick (mock counter)\n",
			       batches[b], cpk);
			printf("BENCH-COUNTER target=%s path=fast batch=%u ",
			       t->name, batches[b]);
			printf("driver_calls_per_kick=%.2f\n", cpk);
		}
	}
	for (unsigned int b = 0; b < NR_BATCHES; b++) {
		double cpk = t->user_kicks[b] ?
			     (double)t->user_calls[b] / t->user_kicks[b] : 0;

		printf("user batch %-3u: %.2f IOMMU_HWPT_INVALIDATE calls per kick\n",
		       batches[b], cpk);
		printf("BENCH-COUNTER target=%s path=user batch=%u ioctls_per_kick=%.2f\n",
		       t->name, batches[b], cpk);
	}
	if (!t->worker_tid)
		printf("(the vhost worker thread was not found: no helper time for fast)\n");
	fflush(stdout);
}

/*
 * -p: after the figures, one more measurement of each path at batch 1 and
 * 64 with the kernel's function profiler on (CONFIG_FUNCTION_PROFILER,
 * in the bench kernel's config), limited to the functions of the paths. Times
 * include the children and exclude sleeping; the profiler's own hooks inflate
 * them, so read them as shares, not as costs.
 */
static bool profile;

static int run_profile(struct target *t)
{
	static const int paths[] = {
		PATH_FAST, PATH_USER, PATH_FLOOR, PATH_RING, PATH_PRQ_K, PATH_PRQ_U,
	};
	static struct vi_prof_ent ent[512];
	struct sample s;
	int ret = 0;

	for (unsigned int pi = 0; pi < ARRAY_SIZE(paths) && !ret; pi++) {
		for (unsigned int bi = 0; bi < NR_BATCHES && !ret; bi++) {
			int p = paths[pi], n, rounds;
			unsigned int batch = batches[bi];
			double reqs;

			if (batch == 8 || !has_path(t, p))
				continue;
			rounds = (nr_reqs + batch - 1) / batch;
			reqs = (double)rounds * batch;
			vi_prof_enable(true);
			ret = measure(t, p, bi, &s);
			vi_prof_enable(false);
			if (ret)
				break;
			n = vi_prof_collect(ent, ARRAY_SIZE(ent));
			printf("\n-- %s: profile of %s at batch %u, %.0f requests --\n",
			       t->name, path_name[p], batch, reqs);
			printf("   (inclusive us per request, calls per request)\n");
			for (int i = 0; i < n && i < 24; i++) {
				printf("  %-40s %10.2f us/rq %8.3f calls/rq\n", ent[i].name,
				       ent[i].us / reqs, ent[i].hits / reqs);
				printf("BENCH-PROFILE target=%s path=%s batch=%u func=%s ",
				       t->name, path_name[p], batch, ent[i].name);
				printf("us_per_req=%.3f calls_per_req=%.4f\n",
				       ent[i].us / reqs, ent[i].hits / reqs);
			}
		}
	}
	return ret;
}

static int run_target(struct target *t)
{
	int ret = target_setup(t);

	if (ret) {
		printf("BENCH-SKIP target=%s reason=\"%s\"\n", t->name, t->err);
		target_teardown(t);
		return 0;
	}
	/* Warm up every path and batch once */
	for (int p = 0; p < NR_PATHS && !ret; p++)
		for (unsigned int b = 0; b < NR_BATCHES && !ret && has_path(t, p); b++)
			ret = measure(t, p, b, &t->s[p][b][0]);
	for (int r = 0; r < nr_reps && !ret; r++) {
		for (unsigned int b = 0; b < NR_BATCHES && !ret; b++) {
			for (int i = 0; i < NR_PATHS && !ret; i++) {
				/* A B C, then C B A: drift hits every path alike */
				int p = r % 2 ? NR_PATHS - 1 - i : i;

				if (has_path(t, p))
					ret = measure(t, p, b, &t->s[p][b][r]);
			}
		}
		fprintf(stderr, "%s: repeat %d/%d done\n", t->name, r + 1, nr_reps);
	}
	if (!ret && t->u.errors) {
		snprintf(t->err, sizeof(t->err), "userspace VMM: %d failed requests",
			 t->u.errors);
		ret = -EIO;
	}
	if (!ret)
		report(t);
	if (!ret && profile && vi_prof_setup())
		ret = run_profile(t);
	if (ret)
		printf("BENCH-FAIL target=%s reason=\"%s\"\n", t->name, t->err);
	target_teardown(t);
	return ret;
}

static void usage(const char *prog)
{
	fprintf(stderr,
		"Usage: %s [-n REQS] [-r REPEATS] [-t mock|smmuv3]... [-p]\n  -n  requests per measurement (default %d)\n  -r  repeats, at most 64 (default %d)\n  -t  target, mock or smmuv3 (default: both)\n  -p  then profile each path at batch 1 and 64 (function profiler)\n",
		prog, nr_reqs, nr_reps);
}

int main(int argc, char **argv)
{
	static struct target targets[2] = {
		{ .name = "mock" },
		{ .name = "smmuv3", .smmu = true },
	};
	bool want[2] = { false, false }, any = false;
	int opt, ret = 0;
	FILE *f;

	while ((opt = getopt(argc, argv, "n:r:t:ph")) != -1) {
		switch (opt) {
		case 'n':
			nr_reqs = atoi(optarg);
			break;
		case 'r':
			nr_reps = atoi(optarg);
			break;
		case 'p':
			profile = true;
			break;
		case 't':
			any = true;
			if (!strcmp(optarg, "mock"))
				want[0] = true;
			else if (!strcmp(optarg, "smmuv3"))
				want[1] = true;
			else
				goto bad;
			break;
		default:
			goto bad;
		}
	}
	if (nr_reqs < MAX_BATCH || nr_reps < 1 || nr_reps > 64)
		goto bad;
	if (!any) {
		want[0] = true;
		want[1] = true;
	}

	printf("vhost-iommu INVALIDATE benchmark on an invalidation queue: fast (vhost-iommu), ");
	printf("user (a VMM serving the queue, one IOMMU_HWPT_INVALIDATE per kick), ");
	printf("floor (bare ioctl, one per batch), ring (S_NOENT, no driver call)\n");
	printf("and page request round trips (mock): prq-k (vhost-iommu), ");
	printf("prq-u (a VMM on the fault fd)\n");
	f = fopen("/proc/version", "r");
	if (f) {
		char line[256];

		if (fgets(line, sizeof(line), f))
			printf("kernel: %s", line);
		fclose(f);
	}
	printf("Under TCG emulation absolute times mean nothing; ratios are indicative.\n");
	fflush(stdout);

	for (int i = 0; i < 2; i++) {
		if (!want[i])
			continue;
		if (targets[i].smmu && edu_count() < 1) {
			printf("BENCH-SKIP target=smmuv3 reason=\"%s\"\n",
			       "no edu device bound to vfio-pci");
			continue;
		}
		ret |= run_target(&targets[i]);
	}
	printf("BENCH-DONE status=%s\n", ret ? "fail" : "ok");
	return ret ? 1 : 0;
bad:
	usage(argv[0]);
	return 2;
}
