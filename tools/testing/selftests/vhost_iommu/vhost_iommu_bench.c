// SPDX-License-Identifier: GPL-2.0
/*
 * Throughput of virtio-iommu INVALIDATE requests, on the iommufd selftest
 * mock vIOMMU and on the emulated nesting SMMUv3, at 1, 8 and 64 requests
 * per kick, along three paths:
 *
 *  fast   the guest ring of /dev/vhost-iommu: kick -> vhost worker -> one
 *         iommufd_viommu_invalidate() per batch -> used ring -> call
 *  user   what a VMM without vhost-iommu does: a VMM thread woken by the
 *         kick eventfd pops the requests from a plain userspace split ring,
 *         issues one IOMMU_HWPT_INVALIDATE per request (native SMMUv3
 *         TLBI_NH_VA commands, as QEMU's accelerated SMMUv3 does; the
 *         virtio type on the mock), writes the used entry and signals the
 *         call eventfd after each request, as QEMU's virtio-iommu does
 *  floor  a bare loop of IOMMU_HWPT_INVALIDATE with the entries the fast
 *         path hands to the driver, one call per batch, no virtqueue
 *  ring   a diagnostic: the fast path with requests that have a reserved
 *         byte set, refused by vhost-iommu after all its checks (S_INVAL),
 *         so the ring work without the driver call
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
#include "vhost_iommu_lib.h"

#define BIT64(n)	(1ULL << (n))
#define FEATURES	(BIT64(VIRTIO_F_VERSION_1) | BIT64(VIRTIO_IOMMU_F_ATTACH_TABLE))
#define RING		256	/* descriptors: 128 two-part requests */
#define MAX_BATCH	64
#define DOMAIN		1
#define ENDPOINT	5
#define MOCK_VSID	0x10
#define SMMU_VSID	0x10
#define MOCK_ASID	0x42
#define INVAL_LEN	offsetof(struct virtio_iommu_req_invalidate, tail)
#define TAIL_LEN	sizeof(struct virtio_iommu_req_tail)
#define TIMEOUT_MS	10000
#define TLBI_ASID(x)	((uint64_t)(x) << 48)
#define INVAL_VA	0x400000ULL	/* away from the VAs the oracle uses */

enum { PATH_FAST, PATH_USER, PATH_FLOOR, PATH_RING, NR_PATHS };
static const char * const path_name[NR_PATHS] = { "fast", "user", "floor", "ring" };
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

/* The userspace VMM's side of a plain split ring */
struct uvmm {
	struct vi_dev g;	/* the guest side: only vqs[0] and mem */
	uint16_t last_avail;
	uint16_t used_idx;
	pthread_t thread;
	clockid_t clock;
	bool stop;
	int errors;
};

struct target {
	const char *name;
	bool smmu;
	int iommufd;
	uint32_t viommu_id;
	uint32_t idev_id;
	uint32_t vsid;
	uint16_t asid;
	struct nested_smmu n;	/* SMMUv3 only */
	struct vi_dev d;	/* vhost-iommu */
	pid_t worker_tid;	/* its vhost worker, 0 if not found */
	struct uvmm u;
	/*
	 * Per slot of a batch: the request and the tail, in each ring: 0 the
	 * vhost-iommu ring, 1 the userspace one, 2 refused requests (vhost-iommu)
	 */
	struct virtio_iommu_req_invalidate *req[3][MAX_BATCH];
	uint8_t *tail[3][MAX_BATCH];
	/* The entries the kernel builds from the requests (the floor's) */
	struct iommu_viommu_invalidate_virtio ent[MAX_BATCH];
	struct sample s[NR_PATHS][NR_BATCHES][64];
	unsigned long mock_calls[NR_BATCHES];	/* driver calls, fast path */
	unsigned long mock_kicks[NR_BATCHES];
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

/*
 * The VMM translates a request to what it hands to the kernel: one native
 * command on SMMUv3, one virtio entry on the mock. Unknown requests: -1.
 */
static int uvmm_serve(struct target *t, const struct virtio_iommu_req_invalidate *r)
{
	struct iommu_viommu_invalidate_virtio e;
	uint64_t cmd[2];

	if (r->head.type != VIRTIO_IOMMU_T_INVALIDATE ||
	    r->scope != VIRTIO_IOMMU_INVAL_S_ADDRESS ||
	    le32toh(r->domain) != DOMAIN || le64toh(r->nr_pages) != 1 ||
	    r->page_size != 12)
		return VIRTIO_IOMMU_S_INVAL;
	if (t->smmu) {
		cmd[0] = NSMMU_CMD_TLBI_NH_VA | TLBI_ASID(le64toh(r->id));
		cmd[1] = le64toh(r->address) & ~0xfffULL;
		if (le16toh(r->flags) & VIRTIO_IOMMU_INVAL_F_LEAF)
			cmd[1] |= 1;	/* Leaf */
		return hwpt_invalidate(t->iommufd, t->viommu_id,
				       IOMMU_VIOMMU_INVALIDATE_DATA_ARM_SMMUV3,
				       cmd, sizeof(cmd), 1) ?
		       VIRTIO_IOMMU_S_IOERR : VIRTIO_IOMMU_S_OK;
	}
	memset(&e, 0, sizeof(e));
	memcpy(&e, r, INVAL_LEN);
	e.flags |= htole16(IOMMU_VIRTIO_INVAL_F_VDEV);
	e.vdev_id = htole32(t->vsid);
	return hwpt_invalidate(t->iommufd, t->viommu_id,
			       IOMMU_VIOMMU_INVALIDATE_DATA_VIRTIO, &e,
			       sizeof(e), 1) ?
	       VIRTIO_IOMMU_S_IOERR : VIRTIO_IOMMU_S_OK;
}

static void *uvmm_fn(void *arg)
{
	struct target *t = arg;
	struct uvmm *u = &t->u;
	struct vi_vq *vq = &u->g.vqs[VI_REQ_VQ];
	eventfd_t val;

	for (;;) {
		/* The kick eventfd is blocking for this thread: the "ioeventfd" */
		if (eventfd_read(vq->kick_fd, &val))
			continue;
		if (__atomic_load_n(&u->stop, __ATOMIC_ACQUIRE))
			return NULL;
		while (u->last_avail != __atomic_load_n(&vq->avail->idx, __ATOMIC_ACQUIRE)) {
			struct virtio_iommu_req_invalidate r;
			uint16_t head = vq->avail->ring[u->last_avail % vq->num];
			struct vring_desc *dr, *dw;
			uint32_t len = 0;
			uint8_t status;

			u->last_avail++;
			if (head >= vq->num) {
				u->errors++;
				continue;
			}
			dr = &vq->desc[head];
			dw = &vq->desc[dr->next % vq->num];
			/* Copy the request out of guest memory before using it */
			if (!(dr->flags & VRING_DESC_F_NEXT) || dr->len < INVAL_LEN ||
			    !(dw->flags & VRING_DESC_F_WRITE) || dw->len < TAIL_LEN) {
				u->errors++;
			} else {
				memcpy(&r, (void *)(uintptr_t)dr->addr, INVAL_LEN);
				status = uvmm_serve(t, &r);
				if (status != VIRTIO_IOMMU_S_OK)
					u->errors++;
				memset((void *)(uintptr_t)dw->addr, 0, TAIL_LEN);
				*(uint8_t *)(uintptr_t)dw->addr = status;
				len = TAIL_LEN;
			}
			vq->used->ring[u->used_idx % vq->num].id = head;
			vq->used->ring[u->used_idx % vq->num].len = len;
			u->used_idx++;
			__atomic_store_n(&vq->used->idx, u->used_idx, __ATOMIC_RELEASE);
			/* QEMU's virtio-iommu notifies after each element */
			eventfd_write(vq->call_fd, 1);
		}
	}
}

static int uvmm_setup(struct target *t)
{
	struct uvmm *u = &t->u;
	struct vi_vq *vq = &u->g.vqs[VI_REQ_VQ];

	memset(u, 0, sizeof(*u));
	u->g.fd = -1;
	u->g.mem = mmap(NULL, VI_MEM_SIZE, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (u->g.mem == MAP_FAILED) {
		u->g.mem = NULL;
		return -errno;
	}
	vq->num = RING;
	vq->desc = vi_alloc(&u->g, 16 * RING);
	vq->avail = vi_alloc(&u->g, 6 + 2 * RING);
	vq->used = vi_alloc(&u->g, 6 + 8 * RING);
	vq->chain_len = calloc(RING, sizeof(*vq->chain_len));
	if (!vq->desc || !vq->avail || !vq->used || !vq->chain_len)
		return -ENOMEM;
	for (unsigned int i = 0; i < RING; i++)
		vq->desc[i].next = i + 1;
	vq->nr_free = RING;
	vq->kick_fd = eventfd(0, EFD_CLOEXEC);
	vq->call_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (vq->kick_fd < 0 || vq->call_fd < 0)
		return -errno;
	if (pthread_create(&u->thread, NULL, uvmm_fn, t))
		return -EAGAIN;
	if (pthread_getcpuclockid(u->thread, &u->clock))
		u->clock = 0;
	return 0;
}

static void uvmm_teardown(struct target *t)
{
	struct uvmm *u = &t->u;
	struct vi_vq *vq = &u->g.vqs[VI_REQ_VQ];

	if (u->thread) {
		__atomic_store_n(&u->stop, true, __ATOMIC_RELEASE);
		eventfd_write(vq->kick_fd, 1);
		pthread_join(u->thread, NULL);
	}
	if (vq->kick_fd > 0)
		close(vq->kick_fd);
	if (vq->call_fd > 0)
		close(vq->call_fd);
	free(vq->chain_len);
	if (u->g.mem)
		munmap(u->g.mem, VI_MEM_SIZE);
}

static int mock_setup(struct target *t)
{
	struct iommu_ioas_alloc ioas = { .size = sizeof(ioas) };
	struct iommu_test_cmd mock = {
		.size = sizeof(mock),
		.op = IOMMU_TEST_OP_MOCK_DOMAIN,
	};
	struct iommu_hwpt_alloc hwpt = {
		.size = sizeof(hwpt),
		.flags = IOMMU_HWPT_ALLOC_NEST_PARENT,
	};
	struct iommu_viommu_alloc viommu = {
		.size = sizeof(viommu),
		.type = IOMMU_VIOMMU_TYPE_SELFTEST,
	};
	struct iommu_vdevice_alloc vdev = {
		.size = sizeof(vdev),
		.virt_id = MOCK_VSID,
	};

	t->iommufd = open("/dev/iommu", O_RDWR | O_CLOEXEC);
	if (t->iommufd < 0)
		return -errno;
	if (ioctl(t->iommufd, IOMMU_IOAS_ALLOC, &ioas))
		return -errno;
	mock.id = ioas.out_ioas_id;
	if (ioctl(t->iommufd, IOMMU_TEST_CMD, &mock))
		return -errno;
	t->idev_id = mock.mock_domain.out_idev_id;
	hwpt.dev_id = t->idev_id;
	hwpt.pt_id = ioas.out_ioas_id;
	if (ioctl(t->iommufd, IOMMU_HWPT_ALLOC, &hwpt))
		return -errno;
	viommu.dev_id = t->idev_id;
	viommu.hwpt_id = hwpt.out_hwpt_id;
	if (ioctl(t->iommufd, IOMMU_VIOMMU_ALLOC, &viommu))
		return -errno;
	t->viommu_id = viommu.out_viommu_id;
	vdev.viommu_id = t->viommu_id;
	vdev.dev_id = t->idev_id;
	if (ioctl(t->iommufd, IOMMU_VDEVICE_ALLOC, &vdev))
		return -errno;
	t->vsid = MOCK_VSID;
	t->asid = MOCK_ASID;
	return 0;
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
	struct vhost_iommu_iommufd fd = { .size = sizeof(fd) };
	struct vhost_iommu_domain dom = {
		.size = sizeof(dom),
		.domain = DOMAIN,
	};
	struct vhost_iommu_endpoint ep = {
		.size = sizeof(ep),
		.endpoint = ENDPOINT,
		.domain = DOMAIN,
	};
	pid_t before[16], after[16];
	int nb, na, ret;

	t->iommufd = -1;
	t->d.fd = -1;
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
		ret = vi_setup(&t->d, FEATURES, RING);
	if (ret) {
		snprintf(t->err, sizeof(t->err), "vhost-iommu: %s", strerror(-ret));
		return ret;
	}
	fd.iommufd = t->iommufd;
	dom.viommu_id = t->viommu_id;
	ep.dev_id = t->idev_id;
	ep.vdev_id = t->vsid;
	if (ioctl(t->d.fd, VHOST_IOMMU_SET_IOMMUFD, &fd) ||
	    ioctl(t->d.fd, VHOST_IOMMU_SET_DOMAIN, &dom) ||
	    ioctl(t->d.fd, VHOST_IOMMU_SET_ENDPOINT, &ep)) {
		ret = -errno;
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
		t->req[2][i]->reserved[sizeof(t->req[2][i]->reserved) - 1] = 1;
		/* What vhost-iommu builds for the request: vdev_id of the endpoint */
		memset(&t->ent[i], 0, sizeof(t->ent[i]));
		memcpy(&t->ent[i], t->req[0][i], INVAL_LEN);
		t->ent[i].flags |= htole16(IOMMU_VIRTIO_INVAL_F_VDEV);
		t->ent[i].vdev_id = htole32(t->vsid);
	}
	return 0;
}

static void target_teardown(struct target *t)
{
	uvmm_teardown(t);
	if (t->d.fd >= 0)
		vi_close(&t->d);
	if (t->smmu)
		nsmmu_teardown(&t->n);
	else if (t->iommufd >= 0)
		close(t->iommufd);
}

/* The guest: @batch requests, one kick, wait for all; 0 or -errno */
static int guest_batch(struct target *t, int k, unsigned int batch)
{
	struct vi_dev *d = k == 1 ? &t->u.g : &t->d;
	uint8_t want = k == 2 ? VIRTIO_IOMMU_S_INVAL : VIRTIO_IOMMU_S_OK;
	uint32_t id, len;

	for (unsigned int i = 0; i < batch; i++) {
		t->tail[k][i][0] = 0xff;
		if (vi_post_req(d, t->req[k][i], INVAL_LEN, t->tail[k][i], TAIL_LEN) < 0)
			return -ENOSPC;
	}
	eventfd_write(d->vqs[VI_REQ_VQ].kick_fd, 1);
	for (unsigned int i = 0; i < batch; i++) {
		if (vi_get_used(d, VI_REQ_VQ, &id, &len, TIMEOUT_MS))
			return -ETIMEDOUT;
		if (len != TAIL_LEN)
			return -EIO;
	}
	for (unsigned int i = 0; i < batch; i++)
		if (t->tail[k][i][0] != want)
			return -EIO;
	return 0;
}

static int floor_batch(struct target *t, unsigned int batch)
{
	return hwpt_invalidate(t->iommufd, t->viommu_id,
			       IOMMU_VIOMMU_INVALIDATE_DATA_VIRTIO, t->ent,
			       sizeof(t->ent[0]), batch);
}

static int measure(struct target *t, int path, unsigned int bi,
		   struct sample *s)
{
	unsigned int batch = batches[bi];
	int rounds = (nr_reqs + batch - 1) / batch;
	clockid_t helper = 0;
	double w0, c0, g0, h0 = 0;
	int ret = 0;

	if ((path == PATH_FAST || path == PATH_RING) && t->worker_tid)
		helper = tid_clock(t->worker_tid);
	else if (path == PATH_USER)
		helper = t->u.clock;
	if (path == PATH_FAST && !t->smmu)
		mock_calls(t);

	w0 = clock_ns(CLOCK_MONOTONIC);
	c0 = clock_ns(CLOCK_PROCESS_CPUTIME_ID);
	g0 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
	if (helper)
		h0 = clock_ns(helper);
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
		default:
			ret = floor_batch(t, batch);
		}
	}
	s->wall_ns = (clock_ns(CLOCK_MONOTONIC) - w0) / (rounds * batch);
	s->cpu_ns = (clock_ns(CLOCK_PROCESS_CPUTIME_ID) - c0) / (rounds * batch);
	s->guest_ns = (clock_ns(CLOCK_THREAD_CPUTIME_ID) - g0) / (rounds * batch);
	s->helper_ns = helper ? (clock_ns(helper) - h0) / (rounds * batch) : 0;

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
	printf("%-6s %-5s %10s %22s %9s %10s %10s %10s\n", "batch", "path", "req/s",
	       "[min..max]", "spread", "cpu ns/rq", "helper ns", "guest ns");
	for (unsigned int b = 0; b < NR_BATCHES; b++) {
		for (int p = 0; p < NR_PATHS; p++) {
			double cpu[64], hlp[64], gst[64];
			struct stat3 c, h, g;

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
			printf("%-6u %-5s %10.0f [%9.0f..%9.0f] %8.1f%% %10.0f %10.0f %10.0f\n",
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
			{ "fast/user", "throughput, fast over user (target >= 5)",
			  PATH_FAST, PATH_USER, false },
			{ "fast/floor", "time per request, fast over floor (target <= 1.25)",
			  PATH_FAST, PATH_FLOOR, true },
			{ "ring/fast", "time per request, refused requests over fast",
			  PATH_RING, PATH_FAST, true },
		};

		for (unsigned int k = 0; k < ARRAY_SIZE(rt); k++) {
			const char *what = rt[k].what;

			for (int r = 0; r < nr_reps; r++) {
				const struct sample *a = &t->s[rt[k].a][b][r];
				const struct sample *c = &t->s[rt[k].b][b][r];

				v[r] = rt[k].time ? a->wall_ns / c->wall_ns :
						    c->wall_ns / a->wall_ns;
			}
			st = stats(v, nr_reps);
			printf("batch %-3u %-10s %7.2f [%.2f..%.2f]  %s\n", batches[b],
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
	if (!t->worker_tid)
		printf("(the vhost worker thread was not found: no helper time for fast)\n");
	fflush(stdout);
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
		for (unsigned int b = 0; b < NR_BATCHES && !ret; b++)
			ret = measure(t, p, b, &t->s[p][b][0]);
	for (int r = 0; r < nr_reps && !ret; r++) {
		for (unsigned int b = 0; b < NR_BATCHES && !ret; b++) {
			for (int i = 0; i < NR_PATHS && !ret; i++) {
				/* A B C, then C B A: drift hits every path alike */
				int p = r % 2 ? NR_PATHS - 1 - i : i;

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
	if (ret)
		printf("BENCH-FAIL target=%s reason=\"%s\"\n", t->name, t->err);
	else
		report(t);
	target_teardown(t);
	return ret;
}

static void usage(const char *prog)
{
	fprintf(stderr,
		"Usage: %s [-n REQS] [-r REPEATS] [-t mock|smmuv3]...\n  -n  requests per measurement (default %d)\n  -r  repeats, at most 64 (default %d)\n  -t  target, mock or smmuv3 (default: both)\n",
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

	while ((opt = getopt(argc, argv, "n:r:t:h")) != -1) {
		switch (opt) {
		case 'n':
			nr_reqs = atoi(optarg);
			break;
		case 'r':
			nr_reps = atoi(optarg);
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

	printf("vhost-iommu INVALIDATE benchmark: fast (vhost-iommu ring), ");
	printf("user (userspace VMM, one ioctl per request), floor (bare ioctl, one per batch)\n");
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
