/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The helpers of the vhost-iommu selftests, as selftests/iommu has
 * iommufd_utils.h:
 *
 * - the VMM's side of /dev/vhost-iommu: device and ring setup with the
 *   standard vhost ioctls, the binding ioctls (iommufd, domain, endpoint,
 *   fault queue), stop, reset, the dirty log;
 * - a guest driver posting buffers on split virtqueues in a small "guest
 *   RAM" (its own guest-physical addresses, so that the dirty log is small);
 * - a mock VM on the iommufd selftest mock (device, vIOMMU, vDEVICE, fault
 *   queue) and its observers (the vIOMMU's log of virtio entries, page
 *   responses, device caches);
 * - fail-nth fault injection.
 *
 * The SMMUv3 DMA oracle is nested_smmu_lib.h.
 *
 * vhost queue indices: 0 is the page-request queue (virtio queue 2), 1..N
 * the invalidation queues (virtio queues 3..3+N-1); the VMM keeps the
 * request and event queues.
 */
#ifndef VHOST_IOMMU_UTILS_H
#define VHOST_IOMMU_UTILS_H

#include <pthread.h>
#include <semaphore.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <linux/iommufd.h>
#include <linux/vhost.h>
#include <linux/virtio_iommu.h>
#include <linux/virtio_ring.h>

#ifndef VIRTIO_IOMMU_F_INVALQ
#define VIRTIO_IOMMU_F_INVALQ		10
#endif
#ifndef VHOST_IOMMU_MAX_INVALQ
#define VHOST_IOMMU_MAX_INVALQ		8
#endif

#define VI_PRQ_VQ		0		/* the page-request queue */
#define VI_INVALQ(n)		(1 + (n))	/* the n-th invalidation queue */
#define VI_MAX_VQS		(1 + VHOST_IOMMU_MAX_INVALQ)

#define VI_BIT64(n)		(1ULL << (n))
/* What a VMM offering the fast-path queues negotiates */
#define VI_FEATURES		(VI_BIT64(VIRTIO_F_VERSION_1) |		\
				 VI_BIT64(VIRTIO_IOMMU_F_ATTACH_TABLE) |	\
				 VI_BIT64(VIRTIO_IOMMU_F_INVALQ))
#define VI_FEATURES_PRI		(VI_FEATURES |				\
				 VI_BIT64(VIRTIO_IOMMU_F_PAGE_REQUEST))

#define VI_TAIL			sizeof(struct virtio_iommu_req_tail)
#define VI_INVAL_LEN		offsetof(struct virtio_iommu_req_invalidate, tail)
#define VI_PAGE_RESP_LEN	offsetof(struct virtio_iommu_req_page_resp, tail)
#define VI_PRQ_REC		sizeof(struct virtio_iommu_page_request)

/* Guest RAM: VI_MEM_SIZE bytes of this process, at guest-physical VI_GPA_BASE */
#define VI_MEM_SIZE		(4UL << 20)
#define VI_GPA_BASE		0x10000000UL
#define VI_PAGE_SIZE		4096UL
/* One bit per guest page from guest-physical 0, VHOST_SET_LOG_BASE */
#define VI_LOG_BYTES		((VI_GPA_BASE + VI_MEM_SIZE) / VI_PAGE_SIZE / 8)

struct vi_vq {
	unsigned int num;	/* 0: not set up (the device does not serve it) */
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
	void *mem;		/* guest RAM, VI_MEM_SIZE bytes */
	size_t mem_used;	/* bump allocator over mem */
	uint8_t *log;		/* dirty bitmap once vi_enable_log() ran */
	unsigned int nr_invalq;
	struct vi_vq vqs[VI_MAX_VQS];
	uint64_t features;
	/* The "vCPU": a thread that writes the kick eventfds */
	pthread_t kicker;
	sem_t kick_sem;
	uint32_t kick_mask;	/* queues to kick, one bit each */
	bool kicker_stop;
	bool kicker_running;
};

/* One segment of a buffer: @len bytes at @addr, device-writable or not */
struct vi_seg {
	void *addr;
	uint32_t len;
	bool writable;
};

/* Device setup, as a VMM does it */
int vi_open(struct vi_dev *d);
/* Features, memory table, the PRQ and @nr_invalq invalidation queues, start */
int vi_setup(struct vi_dev *d, uint64_t features, unsigned int num,
	     unsigned int nr_invalq);
int vi_set_mem_table(struct vi_dev *d);
/* A new ring for vhost queue @index (fresh eventfds, base 0) */
int vi_setup_vq(struct vi_dev *d, unsigned int index, unsigned int num);
int vi_set_running(struct vi_dev *d, int running);
int vi_reset(struct vi_dev *d);		/* VHOST_IOMMU_RESET */
/* VHOST_GET_VRING_BASE of vhost queue @index, or -errno */
int vi_vring_base(struct vi_dev *d, unsigned int index);
/* A dirty bitmap, VHOST_SET_LOG_BASE, and logging of every ring set up */
int vi_enable_log(struct vi_dev *d);
/* Whether the page of @p is marked dirty */
bool vi_log_dirty(struct vi_dev *d, const void *p);
void vi_log_clear(struct vi_dev *d);
void vi_close(struct vi_dev *d);

/* Guest RAM */
void *vi_alloc(struct vi_dev *d, size_t len);
void *vi_alloc_page(struct vi_dev *d);	/* a whole page of its own */
uint64_t vi_gpa(struct vi_dev *d, const void *p);

/* Guest side */
int vi_post(struct vi_dev *d, unsigned int vq, const struct vi_seg *segs,
	    unsigned int nr_segs);
/* Readable @req (@req_len bytes) then writable @resp; returns the head */
int vi_post_req(struct vi_dev *d, unsigned int vq, const void *req,
		uint32_t req_len, void *resp, uint32_t resp_len);
void vi_kick(struct vi_dev *d, unsigned int vq);
/* Wait for a used entry; 0 on success, -ETIMEDOUT */
int vi_get_used(struct vi_dev *d, unsigned int vq, uint32_t *id,
		uint32_t *len, int timeout_ms);
unsigned int vi_nr_used(struct vi_dev *d, unsigned int vq);
/* Whether the error eventfd of @vq fired within @timeout_ms */
bool vi_vq_error(struct vi_dev *d, unsigned int vq, int timeout_ms);

/*
 * A request of @req_len bytes at @req on queue @vq with a tail: post, kick,
 * wait. Returns the tail's status, -EIO for another head, -ETIMEDOUT;
 * *@used_len is the used length (a status is only meaningful with VI_TAIL).
 */
int vi_request(struct vi_dev *d, unsigned int vq, const void *req,
	       uint32_t req_len, uint32_t *used_len, int timeout_ms);

/* A guest INVALIDATE in guest RAM (little-endian fields) */
struct virtio_iommu_req_invalidate *
vi_make_inval(struct vi_dev *d, uint32_t domain, uint8_t scope, uint8_t caches,
	      uint16_t flags, uint32_t pasid, uint64_t id, uint64_t address,
	      uint64_t nr_pages, uint8_t page_size);
/* A guest PAGE_RESP in guest RAM */
struct virtio_iommu_req_page_resp *
vi_make_page_resp(struct vi_dev *d, uint32_t endpoint, uint32_t flags,
		  uint32_t pasid, uint32_t group, uint16_t code);

/* The binding ioctls; 0 or -errno */
int vi_set_iommufd(int fd, int iommufd, uint32_t flags);
int vi_set_domain(int fd, uint32_t flags, uint32_t domain, uint32_t viommu_id);
int vi_set_endpoint(int fd, uint32_t flags, uint32_t endpoint, uint32_t domain,
		    uint32_t dev_id, uint32_t vdev_id);
int vi_set_fault_queue(int fd, uint32_t flags, int fault_fd);

/* One mock "VM": its own iommufd context and objects */
struct vi_mock {
	int iommufd;
	int fault_fd;
	uint32_t ioas_id;
	uint32_t idev_id;
	uint32_t stdev_id;
	uint32_t parent_id;
	uint32_t viommu_id;
	uint32_t vdevice_id;
	uint32_t fault_id;
	uint32_t nested_id;
	uint32_t vsid;
};

/* A further mock device of the same VM with its vDEVICE on the vIOMMU */
struct vi_mock_dev {
	uint32_t idev_id;
	uint32_t stdev_id;
	uint32_t vdevice_id;
	uint32_t vsid;
};

/* Open /dev/iommu and build the objects with a fault queue; -ENOTTY without the mock */
int vi_mock_setup(struct vi_mock *m, uint32_t vsid);
/* The same up to the vDEVICE: no fault queue, the device on its IOAS */
int vi_mock_viommu(struct vi_mock *m, uint32_t vsid);
int vi_mock_add_dev(struct vi_mock *m, uint32_t vsid, struct vi_mock_dev *md);
/* A vDEVICE of virtual ID @vsid for iommufd device @idev_id on the vIOMMU */
int vi_mock_vdevice(int iommufd, uint32_t viommu_id, uint32_t idev_id,
		    uint32_t vsid, uint32_t *vdevice_id);
/*
 * Attach mock device @stdev_id (iommufd device @dev_id) to a new nested HWPT
 * of the vIOMMU with a new fault queue; @fault_id and @nested_id may be NULL.
 * *@fault_fd is set (and the caller's to close) once the queue exists.
 */
int vi_mock_fault_attach(int iommufd, uint32_t viommu_id, uint32_t dev_id,
			 uint32_t stdev_id, uint32_t *fault_id, int *fault_fd,
			 uint32_t *nested_id);
void vi_mock_close(struct vi_mock *m);
int vi_mock_trigger(struct vi_mock *m, uint32_t dev_id, uint32_t pasid,
		    uint32_t grpid, uint64_t addr);
/* Page responses mock device @dev_id got so far (and the last one), or -errno */
int vi_mock_responses(struct vi_mock *m, uint32_t dev_id, uint32_t *grpid,
		      uint32_t *code);
/*
 * Read and clear the mock vIOMMU's log of virtio entries: up to @max
 * records into @recs (may be NULL with @max 0); *@num the records,
 * *@calls the driver calls, *@lost the entries that did not fit.
 */
struct iommu_test_virtio_inv_record;
int vi_mock_log(int iommufd, uint32_t viommu_id,
		struct iommu_test_virtio_inv_record *recs, uint32_t max,
		uint32_t *num, uint32_t *calls, uint32_t *lost);
/* Whether cache @cache_id of mock device @dev_id holds @val */
bool vi_mock_cache_is(int iommufd, uint32_t dev_id, unsigned int cache_id,
		      uint32_t val);
int vi_destroy(int iommufd, uint32_t id);
/* SET_IOMMUFD, domain @domain with endpoint @endpoint, and the fault queue */
int vi_bind_mock(struct vi_dev *d, struct vi_mock *m, uint32_t domain,
		 uint32_t endpoint, bool faults);

/* The vhost worker threads of this process ("vhost-<pid>"), up to @max */
int vi_worker_tids(int *tids, int max);
/* The first one, or -1 */
int vi_worker_tid(void);
/* Run thread @tid (0: the caller) on CPU @cpu only: 0 or -errno */
int vi_pin(int tid, int cpu);
/* Milliseconds of CLOCK_MONOTONIC since @start */
long vi_ms_since(const struct timespec *start);
int vi_write_file(const char *path, const char *val);
/* The integer in a file, or -errno */
long vi_read_long(const char *path);
/* Make every allocation injectable, quietly; -errno without debugfs */
int vi_fault_setup(void);
/*
 * The fail-nth file of thread @tid (0: the calling one), kept open so that
 * arming and reading it allocates nothing; -errno on failure.
 */
int vi_fail_nth_open(int tid);
/* Arm at @nth (0 disarms) */
int vi_fail_nth_set(int fd, unsigned int nth);
/* Whether the armed fault fired (fail-nth reads 0); disarms in any case */
bool vi_fail_nth_fired(int fd);

/*
 * The kernel's function profiler (CONFIG_FUNCTION_PROFILER) limited to the
 * functions of the vhost-iommu paths and of their userspace alternatives:
 * times include the children and exclude sleeping; the profiler's hooks
 * inflate them, so read them as shares, not as costs.
 */
struct vi_prof_ent {
	char name[64];
	unsigned long hits;
	double us;
};

/* Set the profiler up; false (and a BENCH-PROFILE-SKIP line) without it */
bool vi_prof_setup(void);
/* Start (from zero) or stop profiling */
void vi_prof_enable(bool on);
/* Sum the per-CPU figures, most time first; return the number of functions */
int vi_prof_collect(struct vi_prof_ent *ent, int max);

/*
 * Events the trace buffers of tracefs directory @dir (tracefs or one of its
 * instances) took: entries plus those overwritten
 */
long long vi_trace_events(const char *dir);

#endif
