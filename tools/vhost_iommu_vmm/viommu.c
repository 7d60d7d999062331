// SPDX-License-Identifier: GPL-2.0
/*
 * The virtio-iommu device.
 *
 * This program serves the request queue (0) and the event queue (1) itself,
 * as the virtio spec has them: the guest's notifications reach its thread
 * through ioeventfds, its answers go back through an irqfd. It carries out
 * every request on its own tables (domains, endpoints, mappings), which the
 * emulated endpoint (virtio-rng) uses to translate its DMA, and writes the
 * faults of a refused DMA into the guest's event buffers.
 *
 * An assigned PCI device (pci.c) is an endpoint too: the domain it joins
 * gets an IOAS of the VMM's iommufd, the device is attached to it, and the
 * domain's mappings are mapped there (IOMMU_IOAS_MAP of the guest memory's
 * VMM address at the IOVA), so that the host's IOMMU enforces them. A
 * device that leaves its domain (DETACH, a device reset) is detached from
 * the IOAS, which blocks its DMA, and an IOAS goes when its domain holds no
 * assigned device any more.
 *
 * /dev/vhost-iommu serves only the fast-path queues of
 * VIRTIO_IOMMU_F_INVALQ: 2, the page-request queue, and 3.., the
 * invalidation queues (vhost indices 0, 1..). When the device file exists
 * this program takes it (SET_OWNER) and reads what it offers; the guest is
 * offered F_INVALQ only if this program also serves what the feature needs
 * (F_ATTACH_TABLE, not yet), and only a guest that negotiated it gets its
 * queues 2.. handed to the kernel. A stock guest never meets vhost.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <linux/iommufd.h>
#include <linux/kvm.h>
#include <linux/vhost.h>
#include <linux/virtio_iommu.h>

#include "vmm.h"

#define VIOMMU_DEVICE_ID	23
#define PROBE_SIZE		512
#define MAX_DOMAINS		64
#define MAX_MAPPINGS		4096
#define MAX_PENDING_FAULTS	64
#define NR_TYPES		(VIRTIO_IOMMU_T_PAGE_RESP + 1)
/* Largest device-readable part of the requests parsed here (PROBE) */
#define REQ_MAX			128

/*
 * The v2 uAPI (VIRTIO_IOMMU_F_INVALQ, the typed vhost-iommu ioctls), from
 * the v2 interface agreement, provisional: until the kernel headers carry
 * it, its numbers here. They are used only after the guest negotiated
 * F_INVALQ, which is offered only when the kernel offers it (a v1 kernel
 * does not).
 */
#ifndef VIRTIO_IOMMU_F_INVALQ
#define VIRTIO_IOMMU_F_INVALQ		10
#define VIOMMU_VHOST_SET_RUNNING	_IOW(VHOST_VIRTIO, 0x54, int)
#define VIOMMU_VHOST_RESET		_IO(VHOST_VIRTIO, 0x55)
#else
#define VIOMMU_VHOST_SET_RUNNING	VHOST_IOMMU_SET_RUNNING
#define VIOMMU_VHOST_RESET		VHOST_IOMMU_RESET
#endif

/* The queues: requestq and eventq here, the fast-path queues in vhost */
#define VQ_REQ			0
#define VQ_EVENT		1
#define VQ_FAST			2	/* page requests; 3.. invalidations */
#define NR_INVALQ		(VQ_MAX - VQ_FAST - 1)
/* The config field of F_INVALQ: le16 num_invalq */
#define CFG_NUM_INVALQ		40
#define CFG_SIZE		42

#define BIT64(n)		(1ULL << (n))

/* What this program serves itself */
#define VIOMMU_FEATURES	(BIT64(VIRTIO_FEAT_VERSION_1) |			\
			 BIT64(VIRTIO_IOMMU_F_INPUT_RANGE) |		\
			 BIT64(VIRTIO_IOMMU_F_DOMAIN_RANGE) |		\
			 BIT64(VIRTIO_IOMMU_F_MAP_UNMAP) |		\
			 BIT64(VIRTIO_IOMMU_F_PROBE))
/* The fast-path features, which only /dev/vhost-iommu serves */
#define VHOST_FAST_FEATURES	(BIT64(VIRTIO_IOMMU_F_INVALQ) |		\
				 BIT64(VIRTIO_IOMMU_F_PAGE_REQUEST))
/* Table domains for the assigned devices (nested.c), unless -I none */
#define TABLE_FEATURES		BIT64(VIRTIO_IOMMU_F_ATTACH_TABLE)

#define PAGE_MASK_4K		0xfffULL
#define INPUT_END		((1ULL << 48) - 1)
#define DOMAIN_FIRST		1
#define DOMAIN_LAST		(MAX_DOMAINS - 1)

struct mapping {
	uint64_t start, end;	/* IOVA, inclusive */
	uint64_t gpa;
	uint32_t flags;
	bool in_ioas;		/* mapped in the domain's IOAS */
};

struct domain {
	bool used;
	bool table;		/* made by ATTACH_TABLE: no MAP/UNMAP */
	unsigned int nr_eps;
	struct mapping *maps;
	size_t nr_maps;
	/* With an assigned endpoint: its IOAS (else 0), and how many */
	uint32_t ioas_id;
	unsigned int nr_pdevs;
};

struct endpoint {
	uint32_t id;
	int dom;		/* its domain, or -1 */
	struct pdev *pdev;	/* an assigned device, or NULL: the virtio-rng */
	struct nest_ep nest;	/* an assigned device on the vIOMMU */
};

/* The device-readable bytes of a chain, and where its writable part starts */
struct req_buf {
	uint8_t req[REQ_MAX];
	uint32_t req_len, resp_len;
	unsigned int first_w;
};

/* A request of an invalidation queue in a batch (-I vmm, drop) */
struct inval_req {
	struct chain c;
	struct req_buf r;
	bool parsed;
	uint8_t status;
	unsigned int first, nr;	/* its entries in the batch */
};

struct viommu {
	struct vm *vm;
	struct vdev *dev;
	pthread_mutex_t lock;	/* everything below, and the transport */
	pthread_t thread;
	int ctl_fd;		/* wakes the thread */
	bool quit;
	bool started;		/* DRIVER_OK seen: requestq and eventq served */
	int kick_fd[VQ_MAX];	/* ioeventfds of the queues */

	/* /dev/vhost-iommu, or -1; what it offers; its queues handed over */
	int vhost_fd;
	uint64_t vhost_features;
	bool vhost_running;
	int err_fd[VQ_MAX];

	struct domain doms[MAX_DOMAINS];
	struct endpoint eps[1 + MAX_ASSIGNED];	/* the virtio-rng first */
	unsigned int nr_eps;

	/* Table domains: the vIOMMU of the assigned devices (nested.c) */
	struct nest nest;	/* nest.viommu_id 0: no table domains */
	bool vhost_iommufd;	/* the iommufd is bound to /dev/vhost-iommu */

	/* Faults waiting for an event buffer */
	struct virtio_iommu_fault faults[MAX_PENDING_FAULTS];
	unsigned int nr_faults;

	/* Statistics */
	uint64_t nr_req[NR_TYPES + 1];	/* the last: unknown types */
	uint64_t nr_fail[NR_TYPES + 1];
	uint64_t nr_len0;	/* returned unwritten, used length 0 */
	uint64_t maps_max;
	uint64_t bytes_read, bytes_written;
	uint64_t faults_reported, faults_lost, faults_delivered;
	uint64_t resets, vhost_starts;
	/* INVALIDATEs of the invalidation queue served here (-I vmm, vcpu, drop) */
	uint64_t nr_invalq, nr_invalq_fail, nr_dropped;
	/* The batch of a pass over an invalidation queue (-I vmm, drop) */
	struct inval_req inval_reqs[NEST_BATCH_REQS];
	struct nest_batch inval_batch;
	/* Requests the guest posted and got back, summed over device resets */
	uint64_t posted, returned;
};

static struct viommu viommu;

static const char *const type_names[NR_TYPES + 1] = {
	[VIRTIO_IOMMU_T_ATTACH] = "ATTACH",
	[VIRTIO_IOMMU_T_DETACH] = "DETACH",
	[VIRTIO_IOMMU_T_MAP] = "MAP",
	[VIRTIO_IOMMU_T_UNMAP] = "UNMAP",
	[VIRTIO_IOMMU_T_PROBE] = "PROBE",
	[VIRTIO_IOMMU_T_ATTACH_TABLE] = "ATTACH_TABLE",
	[VIRTIO_IOMMU_T_INVALIDATE] = "INVALIDATE",
	[VIRTIO_IOMMU_T_PAGE_RESP] = "PAGE_RESP",
	[NR_TYPES] = "unknown",
};

static bool negotiated(const struct viommu *vi, unsigned int bit)
{
	return vi->dev->driver_features & BIT64(bit);
}

/*
 * The device-readable size of a request of @type on queue @q, or 0 if it is
 * returned unwritten with used length 0: an unknown type, one whose feature
 * was not negotiated (as the spec has it for PROBE without F_PROBE), or
 * anything but INVALIDATE on an invalidation queue that this program serves
 * (-I vmm, drop; it offers no F_PAGE_REQUEST, so no PAGE_RESP). With
 * F_INVALQ, INVALIDATE and PAGE_RESP on the request queue get S_UNSUPP;
 * without it, INVALIDATE is the request queue's.
 */
static uint32_t req_size(const struct viommu *vi, unsigned int q, uint8_t type)
{
	if (q != VQ_REQ)
		return type == VIRTIO_IOMMU_T_INVALIDATE ?
		       offsetof(struct virtio_iommu_req_invalidate, tail) : 0;
	switch (type) {
	case VIRTIO_IOMMU_T_ATTACH:
		return offsetof(struct virtio_iommu_req_attach, tail);
	case VIRTIO_IOMMU_T_DETACH:
		return offsetof(struct virtio_iommu_req_detach, tail);
	case VIRTIO_IOMMU_T_MAP:
		return negotiated(vi, VIRTIO_IOMMU_F_MAP_UNMAP) ?
		       offsetof(struct virtio_iommu_req_map, tail) : 0;
	case VIRTIO_IOMMU_T_UNMAP:
		return negotiated(vi, VIRTIO_IOMMU_F_MAP_UNMAP) ?
		       offsetof(struct virtio_iommu_req_unmap, tail) : 0;
	case VIRTIO_IOMMU_T_PROBE:
		return negotiated(vi, VIRTIO_IOMMU_F_PROBE) ?
		       offsetof(struct virtio_iommu_req_probe, properties) : 0;
	case VIRTIO_IOMMU_T_ATTACH_TABLE:
		return negotiated(vi, VIRTIO_IOMMU_F_ATTACH_TABLE) ?
		       offsetof(struct virtio_iommu_req_attach_table, tail) : 0;
	case VIRTIO_IOMMU_T_INVALIDATE:
		return negotiated(vi, VIRTIO_IOMMU_F_ATTACH_TABLE) ?
		       offsetof(struct virtio_iommu_req_invalidate, tail) : 0;
	case VIRTIO_IOMMU_T_PAGE_RESP:
		return negotiated(vi, VIRTIO_IOMMU_F_INVALQ) ?
		       offsetof(struct virtio_iommu_req_page_resp, tail) : 0;
	default:
		return 0;
	}
}

static bool zero(const void *p, size_t len)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < len; i++)
		if (b[i])
			return false;
	return true;
}

/* ---- Domains, endpoints, mappings ---- */

static struct domain *domain_get(struct viommu *vi, uint32_t id)
{
	if (id < DOMAIN_FIRST || id > DOMAIN_LAST || !vi->doms[id].used)
		return NULL;
	return &vi->doms[id];
}

static struct endpoint *endpoint_get(struct viommu *vi, uint32_t id)
{
	for (unsigned int i = 0; i < vi->nr_eps; i++)
		if (vi->eps[i].id == id)
			return &vi->eps[i];
	return NULL;
}

/* Account an IOAS operation to the assigned endpoints of @dom */
static void count_ioas(struct viommu *vi, struct domain *dom, bool map,
		       bool dropped)
{
	for (unsigned int i = 0; i < vi->nr_eps; i++) {
		struct pdev *p = vi->eps[i].pdev;

		if (!p || vi->eps[i].dom != dom - vi->doms)
			continue;
		if (map)
			p->nr_ioas_maps++;
		else if (dropped)
			p->nr_unmaps_dropped++;
		else
			p->nr_ioas_unmaps++;
	}
}

/*
 * Map @m into the domain's IOAS, at its IOVA, the VMM's address of the
 * guest memory (do_map() checked that it is RAM). Return 0 or -errno.
 */
static int ioas_map(struct viommu *vi, struct domain *dom, struct mapping *m)
{
	uint64_t len = m->end - m->start + 1;
	struct iommu_ioas_map map = {
		.size = sizeof(map),
		.flags = IOMMU_IOAS_MAP_FIXED_IOVA,
		.ioas_id = dom->ioas_id,
		.user_va = (uintptr_t)gpa_to_hva(vi->vm, m->gpa, len),
		.length = len,
		.iova = m->start,
	};

	if (m->flags & VIRTIO_IOMMU_MAP_F_READ)
		map.flags |= IOMMU_IOAS_MAP_READABLE;
	if (m->flags & VIRTIO_IOMMU_MAP_F_WRITE)
		map.flags |= IOMMU_IOAS_MAP_WRITEABLE;
	/* Neither: no access, nothing the IOMMU needs to know */
	if (!(map.flags & ~IOMMU_IOAS_MAP_FIXED_IOVA) || !dom->ioas_id)
		return 0;
	if (ioctl(vi->vm->iommufd, IOMMU_IOAS_MAP, &map)) {
		vmm_log("IOMMU_IOAS_MAP of [%#llx-%#llx]: %s",
			(unsigned long long)m->start,
			(unsigned long long)m->end, strerror(errno));
		return -errno;
	}
	m->in_ioas = true;
	count_ioas(vi, dom, true, false);
	return 0;
}

/*
 * Unmap @m from the domain's IOAS: exactly its range. --unmap=drop (a
 * negative control for tests) leaves it there.
 */
static int ioas_unmap(struct viommu *vi, struct domain *dom, struct mapping *m)
{
	struct iommu_ioas_unmap unmap = {
		.size = sizeof(unmap),
		.ioas_id = dom->ioas_id,
		.iova = m->start,
		.length = m->end - m->start + 1,
	};

	if (!m->in_ioas)
		return 0;
	m->in_ioas = false;
	count_ioas(vi, dom, false, vi->vm->unmap_drop);
	if (vi->vm->unmap_drop)
		return 0;
	if (ioctl(vi->vm->iommufd, IOMMU_IOAS_UNMAP, &unmap)) {
		vmm_log("IOMMU_IOAS_UNMAP of [%#llx-%#llx]: %s",
			(unsigned long long)m->start,
			(unsigned long long)m->end, strerror(errno));
		return -errno;
	}
	return 0;
}

/* Destroy the IOAS of @dom; no device may be attached to it */
static void ioas_destroy(struct viommu *vi, struct domain *dom)
{
	struct iommu_destroy d = { .size = sizeof(d), .id = dom->ioas_id };

	if (!dom->ioas_id)
		return;
	if (ioctl(vi->vm->iommufd, IOMMU_DESTROY, &d))
		die("IOMMU_DESTROY of IOAS %u: %s", dom->ioas_id,
		    strerror(errno));
	dom->ioas_id = 0;
	for (size_t i = 0; i < dom->nr_maps; i++)
		dom->maps[i].in_ioas = false;
}

/* Give @dom an IOAS holding its mappings. Return 0 or -errno. */
static int ioas_create(struct viommu *vi, struct domain *dom)
{
	struct iommu_ioas_alloc alloc = { .size = sizeof(alloc) };
	int ret = 0;

	if (dom->ioas_id)
		return 0;
	if (ioctl(vi->vm->iommufd, IOMMU_IOAS_ALLOC, &alloc))
		return -errno;
	dom->ioas_id = alloc.out_ioas_id;
	for (size_t i = 0; i < dom->nr_maps && !ret; i++)
		ret = ioas_map(vi, dom, &dom->maps[i]);
	if (ret)
		ioas_destroy(vi, dom);
	return ret;
}

static void domain_free(struct viommu *vi, struct domain *dom)
{
	ioas_destroy(vi, dom);
	free(dom->maps);
	memset(dom, 0, sizeof(*dom));
}

static void table_leave(struct viommu *vi, struct endpoint *ep);

/*
 * The endpoint leaves its domain (an assigned device is detached from the
 * IOAS already); the last one out destroys the domain, the last assigned
 * one the IOAS
 */
static void endpoint_leave(struct viommu *vi, struct endpoint *ep)
{
	struct domain *dom;

	if (ep->dom < 0)
		return;
	dom = &vi->doms[ep->dom];
	if (dom->table)
		table_leave(vi, ep);
	ep->dom = -1;
	if (ep->pdev)
		dom->nr_pdevs--;
	if (--dom->nr_eps == 0)
		domain_free(vi, dom);
	else if (!dom->nr_pdevs)
		ioas_destroy(vi, dom);
}

/*
 * Block the DMA of an assigned endpoint: on its abort vSTE when there are
 * table domains, else detached from any IOAS
 */
static int endpoint_block(struct viommu *vi, struct endpoint *ep)
{
	int ret;

	if (!ep->pdev)
		return 0;
	ret = vi->nest.viommu_id ? nest_block(&vi->nest, &ep->nest) :
	      pci_attach(ep->pdev, 0);
	if (ret)
		vmm_log("%s: VFIO_DEVICE_DETACH_IOMMUFD_PT: %s", ep->pdev->bdf,
			strerror(-ret));
	return ret;
}

/*
 * An assigned endpoint joins @dom: the domain gets an IOAS with its
 * mappings, the device is attached to it, replacing its former IOAS
 */
static int endpoint_join_ioas(struct viommu *vi, struct endpoint *ep,
			      struct domain *dom)
{
	bool fresh = !dom->ioas_id;
	int ret;

	ret = ioas_create(vi, dom);
	if (!ret) {
		ret = pci_attach(ep->pdev, dom->ioas_id);
		if (ret)
			vmm_log("%s: VFIO_DEVICE_ATTACH_IOMMUFD_PT: %s",
				ep->pdev->bdf, strerror(-ret));
	}
	if (ret && !dom->nr_pdevs)
		ioas_destroy(vi, dom);
	/* The mappings a new IOAS got are this device's */
	for (size_t i = 0; !ret && fresh && i < dom->nr_maps; i++)
		ep->pdev->nr_ioas_maps += dom->maps[i].in_ioas;
	return ret;
}

static uint8_t do_attach(struct viommu *vi, const uint8_t *buf)
{
	const struct virtio_iommu_req_attach *req = (const void *)buf;
	uint32_t id = le32toh(req->domain);
	struct endpoint *ep = endpoint_get(vi, le32toh(req->endpoint));
	struct domain *dom;
	int ret;

	if (!zero(req->reserved, sizeof(req->reserved)) || req->flags)
		return VIRTIO_IOMMU_S_INVAL;	/* no BYPASS feature */
	if (!ep)
		return VIRTIO_IOMMU_S_NOENT;
	if (id < DOMAIN_FIRST || id > DOMAIN_LAST)
		return VIRTIO_IOMMU_S_RANGE;
	if (ep->dom == (int)id)
		return VIRTIO_IOMMU_S_OK;
	dom = &vi->doms[id];
	if (dom->table)
		return VIRTIO_IOMMU_S_INVAL;	/* one kind per domain */
	if (ep->pdev) {
		ret = endpoint_join_ioas(vi, ep, dom);
		if (ret)
			return nest_status(ret);
		dom->nr_pdevs++;
	}
	/* Attaching to another domain detaches from the current one */
	endpoint_leave(vi, ep);
	dom->used = true;
	dom->nr_eps++;
	ep->dom = id;
	return VIRTIO_IOMMU_S_OK;
}

static uint8_t do_detach(struct viommu *vi, const uint8_t *buf)
{
	const struct virtio_iommu_req_detach *req = (const void *)buf;
	uint32_t id = le32toh(req->domain);
	struct endpoint *ep = endpoint_get(vi, le32toh(req->endpoint));

	if (!zero(req->reserved, sizeof(req->reserved)))
		return VIRTIO_IOMMU_S_INVAL;
	if (!ep || !domain_get(vi, id))
		return VIRTIO_IOMMU_S_NOENT;
	if (ep->dom != (int)id)
		return VIRTIO_IOMMU_S_INVAL;
	if (endpoint_block(vi, ep))
		return VIRTIO_IOMMU_S_DEVERR;
	endpoint_leave(vi, ep);
	return VIRTIO_IOMMU_S_OK;
}

static uint8_t do_map(struct viommu *vi, const uint8_t *buf)
{
	const struct virtio_iommu_req_map *req = (const void *)buf;
	struct domain *dom = domain_get(vi, le32toh(req->domain));
	uint64_t start = le64toh(req->virt_start);
	uint64_t end = le64toh(req->virt_end);
	uint64_t gpa = le64toh(req->phys_start);
	uint32_t flags = le32toh(req->flags);
	struct mapping *m;
	int ret;

	if (!dom)
		return VIRTIO_IOMMU_S_NOENT;
	if (dom->table)
		return VIRTIO_IOMMU_S_INVAL;	/* the guest's tables map it */
	if (flags & ~(VIRTIO_IOMMU_MAP_F_READ | VIRTIO_IOMMU_MAP_F_WRITE))
		return VIRTIO_IOMMU_S_INVAL;	/* MMIO was not offered */
	if (end < start || (start & PAGE_MASK_4K) ||
	    ((end + 1) & PAGE_MASK_4K) || (gpa & PAGE_MASK_4K))
		return VIRTIO_IOMMU_S_INVAL;
	if (end > INPUT_END || !gpa_to_hva(vi->vm, gpa, end - start + 1))
		return VIRTIO_IOMMU_S_RANGE;
	for (size_t i = 0; i < dom->nr_maps; i++) {
		m = &dom->maps[i];
		if (start <= m->end && m->start <= end)
			return VIRTIO_IOMMU_S_INVAL;	/* overlaps */
	}
	if (dom->nr_maps == MAX_MAPPINGS)
		return VIRTIO_IOMMU_S_NOMEM;
	if (!dom->maps) {
		dom->maps = calloc(MAX_MAPPINGS, sizeof(*dom->maps));
		if (!dom->maps)
			return VIRTIO_IOMMU_S_NOMEM;
	}
	m = &dom->maps[dom->nr_maps];
	*m = (struct mapping) {
		.start = start, .end = end, .gpa = gpa, .flags = flags,
	};
	ret = ioas_map(vi, dom, m);
	if (ret)
		return nest_status(ret);
	dom->nr_maps++;
	if (dom->nr_maps > vi->maps_max)
		vi->maps_max = dom->nr_maps;
	return VIRTIO_IOMMU_S_OK;
}

static uint8_t do_unmap(struct viommu *vi, const uint8_t *buf)
{
	const struct virtio_iommu_req_unmap *req = (const void *)buf;
	struct domain *dom = domain_get(vi, le32toh(req->domain));
	uint64_t start = le64toh(req->virt_start);
	uint64_t end = le64toh(req->virt_end);
	uint8_t status = VIRTIO_IOMMU_S_OK;
	size_t i;

	if (!dom)
		return VIRTIO_IOMMU_S_NOENT;
	if (!zero(req->reserved, sizeof(req->reserved)) || end < start ||
	    dom->table)
		return VIRTIO_IOMMU_S_INVAL;
	/* A mapping the range splits: nothing is unmapped (spec 5.13.6.6) */
	for (i = 0; i < dom->nr_maps; i++) {
		struct mapping *m = &dom->maps[i];

		if (start <= m->end && m->start <= end &&
		    (m->start < start || m->end > end))
			return VIRTIO_IOMMU_S_RANGE;
	}
	for (i = 0; i < dom->nr_maps;) {
		struct mapping *m = &dom->maps[i];

		if (start > m->start || m->end > end) {
			i++;
			continue;
		}
		/* Out of the IOMMU before the guest hears it is gone */
		if (ioas_unmap(vi, dom, m))
			status = VIRTIO_IOMMU_S_DEVERR;
		*m = dom->maps[--dom->nr_maps];
	}
	return status;
}

/*
 * PROBE: the MSI doorbell window, which the endpoint's MSIs bypass; for an
 * assigned device with F_ATTACH_TABLE, the host SMMUv3's ID registers that
 * its tables must follow
 */
static uint8_t do_probe(struct viommu *vi, const uint8_t *buf,
			uint32_t resp_len, uint8_t *props, uint32_t *props_len)
{
	struct endpoint *ep;
	const struct virtio_iommu_req_probe *req = (const void *)buf;
	struct virtio_iommu_probe_resv_mem msi = {
		.head.type = htole16(VIRTIO_IOMMU_PROBE_T_RESV_MEM),
		.head.length = htole16(sizeof(msi) - sizeof(msi.head)),
		.subtype = VIRTIO_IOMMU_RESV_MEM_T_MSI,
		.start = htole64(MSI_WINDOW_BASE),
		.end = htole64(MSI_WINDOW_BASE + MSI_WINDOW_SIZE - 1),
	};

	if (!zero(req->reserved, sizeof(req->reserved)))
		return VIRTIO_IOMMU_S_INVAL;
	ep = endpoint_get(vi, le32toh(req->endpoint));
	if (!ep)
		return VIRTIO_IOMMU_S_NOENT;
	/* The tail goes after probe_size bytes of properties */
	if (resp_len < PROBE_SIZE + sizeof(struct virtio_iommu_req_tail))
		return VIRTIO_IOMMU_S_INVAL;
	memset(props, 0, PROBE_SIZE);
	memcpy(props, &msi, sizeof(msi));
	if (ep->pdev && vi->nest.viommu_id &&
	    negotiated(vi, VIRTIO_IOMMU_F_ATTACH_TABLE))
		nest_probe_prop(&vi->nest, props + sizeof(msi));
	*props_len = PROBE_SIZE;
	return VIRTIO_IOMMU_S_OK;
}

/* ---- Table domains (F_ATTACH_TABLE), on nested.c's vIOMMU ---- */

static bool tables_offered(const struct viommu *vi)
{
	return vi->dev->features & TABLE_FEATURES;
}

/* The INVALIDATEs of table domains go to /dev/vhost-iommu */
static bool vhost_serves(const struct viommu *vi)
{
	return vi->vhost_running && vi->vm->inval == INVAL_KERNEL;
}

/* The assigned device of endpoint @id, on the vIOMMU, or NULL */
static struct endpoint *table_endpoint(struct viommu *vi, uint32_t id)
{
	struct endpoint *ep = endpoint_get(vi, id);

	return ep && ep->pdev && tables_offered(vi) ? ep : NULL;
}

/*
 * Tell /dev/vhost-iommu which vIOMMU serves table domain @id (binding the
 * iommufd first), before the ATTACH_TABLE that creates it completes
 */
static int vhost_bind_domain(struct viommu *vi, uint32_t id)
{
	struct vhost_iommu_iommufd f = { .fd = vi->nest.iommufd };
	struct vhost_iommu_domain d = {
		.domain = id, .viommu_id = vi->nest.viommu_id,
	};

	if (!vhost_serves(vi))
		return 0;
	if (!vi->vhost_iommufd) {
		if (ioctl(vi->vhost_fd, VHOST_IOMMU_SET_IOMMUFD, &f))
			return -errno;
		vi->vhost_iommufd = true;
	}
	return ioctl(vi->vhost_fd, VHOST_IOMMU_SET_DOMAIN, &d) ? -errno : 0;
}

static int vhost_bind_ep(struct viommu *vi, const struct endpoint *ep,
			 uint32_t id)
{
	struct vhost_iommu_endpoint e = {
		.endpoint = ep->id, .domain = id,
		.dev_id = ep->pdev->dev_id, .vdev_id = ep->id,
	};

	if (!vhost_serves(vi))
		return 0;
	return ioctl(vi->vhost_fd, VHOST_IOMMU_SET_ENDPOINT, &e) ? -errno : 0;
}

/* Unbinding what this program bound cannot fail but for a bug */
static void vhost_unbind(struct viommu *vi, unsigned long req, void *arg)
{
	if (vhost_serves(vi) && ioctl(vi->vhost_fd, req, arg))
		die("vhost-iommu unbind: %s", strerror(errno));
}

static void vhost_unbind_domain(struct viommu *vi, uint32_t id)
{
	struct vhost_iommu_domain d = {
		.flags = VHOST_IOMMU_F_UNBIND, .domain = id,
	};

	vhost_unbind(vi, VHOST_IOMMU_SET_DOMAIN, &d);
}

/*
 * Endpoint @ep leaves its table domain (endpoint_leave()): no more
 * invalidations for it in the kernel, its vSTE's HWPT goes once the device
 * is attached elsewhere, and the last one out unbinds the domain. Under
 * the lock.
 */
static void table_leave(struct viommu *vi, struct endpoint *ep)
{
	struct vhost_iommu_endpoint e = {
		.flags = VHOST_IOMMU_F_UNBIND, .endpoint = ep->id,
	};

	vhost_unbind(vi, VHOST_IOMMU_SET_ENDPOINT, &e);
	nest_drop_table(&vi->nest, &ep->nest);
	if (vi->doms[ep->dom].nr_eps == 1)
		vhost_unbind_domain(vi, ep->dom);
}

static uint8_t do_attach_table(struct viommu *vi, const uint8_t *buf)
{
	const struct virtio_iommu_req_attach_table_arm_smmu3 *req =
		(const void *)buf;
	uint32_t id = le32toh(req->domain), epid = le32toh(req->endpoint);
	uint64_t ste[2] = { le64toh(req->ste0), le64toh(req->ste1) };
	struct endpoint *ep = table_endpoint(vi, epid);
	struct domain *dom;
	bool fresh, bound;
	uint8_t status;
	int ret;

	if (!ep)
		return endpoint_get(vi, epid) ? VIRTIO_IOMMU_S_UNSUPP :
		       VIRTIO_IOMMU_S_NOENT;
	if (req->format != VIRTIO_IOMMU_ATTACH_TABLE_ARM_SMMU3)
		return VIRTIO_IOMMU_S_UNSUPP;
	if (!zero(req->reserved0, sizeof(req->reserved0)) ||
	    !zero(req->reserved1, sizeof(req->reserved1)))
		return VIRTIO_IOMMU_S_INVAL;
	if (id < DOMAIN_FIRST || id > DOMAIN_LAST)
		return VIRTIO_IOMMU_S_RANGE;
	dom = &vi->doms[id];
	if (dom->used && !dom->table)
		return VIRTIO_IOMMU_S_INVAL;	/* a mapping domain */
	status = nest_check_ste(vi->vm, ste);
	if (status)
		return status;
	/* The device moves to the new vSTE, or stays as it was */
	ret = nest_attach_table(&vi->nest, &ep->nest, ste);
	if (ret) {
		vmm_log("ATTACH_TABLE endpoint %#x: %s", epid, strerror(-ret));
		return nest_status(ret);
	}
	if (ep->dom == (int)id)
		return VIRTIO_IOMMU_S_OK;	/* a new STE, same domain */
	endpoint_leave(vi, ep);
	fresh = !dom->used;
	ret = fresh ? vhost_bind_domain(vi, id) : 0;
	bound = fresh && !ret;
	if (!ret)
		ret = vhost_bind_ep(vi, ep, id);
	if (ret) {
		/* Detached from its old domain: nothing may reach memory */
		vmm_log("ATTACH_TABLE endpoint %#x: vhost-iommu binding: %s",
			epid, strerror(-ret));
		if (bound)
			vhost_unbind_domain(vi, id);
		nest_block(&vi->nest, &ep->nest);
		return VIRTIO_IOMMU_S_DEVERR;
	}
	dom->used = true;
	dom->table = true;
	dom->nr_eps++;
	dom->nr_pdevs++;
	ep->dom = id;
	return VIRTIO_IOMMU_S_OK;
}

/*
 * Whether INVALIDATE @buf is to be carried out, and on which endpoints of
 * its table domain; if not, its status in @status
 */
static bool inval_eps(struct viommu *vi, const uint8_t *buf,
		      const struct nest_ep **eps, unsigned int *nr,
		      uint8_t *status)
{
	const struct virtio_iommu_req_invalidate *req = (const void *)buf;
	uint32_t id = le32toh(req->domain);
	struct domain *dom = domain_get(vi, id);

	*nr = 0;
	*status = VIRTIO_IOMMU_S_OK;
	if (!dom)
		*status = VIRTIO_IOMMU_S_NOENT;
	else if (!dom->table)
		*status = VIRTIO_IOMMU_S_INVAL;
	else if (vi->vm->inval == INVAL_DROP)
		vi->nr_dropped++;
	else
		for (unsigned int i = 0; i < vi->nr_eps && *nr < NEST_MAX_EPS; i++)
			if (vi->eps[i].pdev && vi->eps[i].dom == (int)id)
				eps[(*nr)++] = &vi->eps[i].nest;
	return dom && dom->table && vi->vm->inval != INVAL_DROP;
}

/*
 * INVALIDATE on a table domain: one IOMMU_HWPT_INVALIDATE with the domain
 * entry and an endpoint entry per endpoint. The kernel checks every guest
 * field, as for /dev/vhost-iommu's queues, so both paths answer alike.
 */
static uint8_t do_invalidate(struct viommu *vi, const uint8_t *buf)
{
	const struct nest_ep *eps[NEST_MAX_EPS];
	unsigned int nr;
	uint8_t status;

	if (!inval_eps(vi, buf, eps, &nr, &status))
		return status;
	return nest_status(nest_invalidate(&vi->nest, buf, eps, nr));
}

/*
 * Carry out one request of queue @q whose req_size() device-readable bytes
 * are in @req, with @resp_len writable bytes. Return the status; a PROBE
 * also fills @payload. Under the lock.
 */
static uint8_t viommu_request(struct viommu *vi, unsigned int q,
			      const uint8_t *req, uint32_t resp_len,
			      uint8_t *payload, uint32_t *payload_len)
{
	uint8_t type = req[0];
	uint8_t status;

	*payload_len = 0;
	if (q != VQ_REQ) {
		/* An invalidation queue served in the vCPU's exit (-I vcpu) */
		status = do_invalidate(vi, req);
		vi->nr_invalq++;
		vi->nr_invalq_fail += !!status;
		return status;
	}
	vi->nr_req[type]++;
	switch (type) {
	case VIRTIO_IOMMU_T_ATTACH:
		status = do_attach(vi, req);
		break;
	case VIRTIO_IOMMU_T_DETACH:
		status = do_detach(vi, req);
		break;
	case VIRTIO_IOMMU_T_MAP:
		status = do_map(vi, req);
		break;
	case VIRTIO_IOMMU_T_UNMAP:
		status = do_unmap(vi, req);
		break;
	case VIRTIO_IOMMU_T_PROBE:
		status = do_probe(vi, req, resp_len, payload, payload_len);
		break;
	case VIRTIO_IOMMU_T_ATTACH_TABLE:
		status = do_attach_table(vi, req);
		break;
	case VIRTIO_IOMMU_T_INVALIDATE:
		/* Without F_INVALQ (-I requestq, or a guest without it) */
		status = negotiated(vi, VIRTIO_IOMMU_F_INVALQ) ?
			 VIRTIO_IOMMU_S_UNSUPP : do_invalidate(vi, req);
		break;
	default:
		/* PAGE_RESP with F_INVALQ: not on this queue */
		status = VIRTIO_IOMMU_S_UNSUPP;
		break;
	}
	if (status)
		vi->nr_fail[type]++;
	if (verbose) {
		const struct virtio_iommu_req_map *m = (const void *)req;

		if (type == VIRTIO_IOMMU_T_MAP)
			vmm_log("%s domain %u [%#llx-%#llx] -> %#llx %s%s: %u",
				type_names[type], le32toh(m->domain),
				(unsigned long long)le64toh(m->virt_start),
				(unsigned long long)le64toh(m->virt_end),
				(unsigned long long)le64toh(m->phys_start),
				le32toh(m->flags) & 1 ? "R" : "",
				le32toh(m->flags) & 2 ? "W" : "", status);
		else if (type == VIRTIO_IOMMU_T_UNMAP)
			vmm_log("%s domain %u [%#llx-%#llx]: %u",
				type_names[type], le32toh(m->domain),
				(unsigned long long)le64toh(m->virt_start),
				(unsigned long long)le64toh(m->virt_end),
				status);
		else if (type == VIRTIO_IOMMU_T_PROBE)
			vmm_log("%s endpoint %u: status %u", type_names[type],
				le32toh(*(uint32_t *)(req + 4)), status);
		else
			vmm_log("%s endpoint %u domain %u: status %u",
				type_names[type], le32toh(*(uint32_t *)(req + 8)),
				le32toh(*(uint32_t *)(req + 4)), status);
	}
	return status;
}

/* ---- The device's own accesses: guest physical ---- */

static int gpa_rw(void *ctx, uint64_t addr, void *buf, size_t len, bool write)
{
	void *hva = gpa_to_hva(ctx, addr, len);

	if (!hva)
		return -EFAULT;
	if (write)
		memcpy(hva, buf, len);
	else
		memcpy(buf, hva, len);
	return 0;
}

/* The device's own accesses (rings, requests) are guest physical */
static struct dma_ops gpa_dma = { .rw = gpa_rw };

/* ---- Faults, on the event queue ---- */

/* Write waiting faults into the guest's event buffers. Under the lock. */
static void flush_faults(struct viommu *vi)
{
	struct vq *q = &vi->dev->vqs[VQ_EVENT];
	struct chain c;
	bool added = false;

	while (vi->started && vi->nr_faults) {
		int ret = vq_pop(&gpa_dma, q, &c);

		if (ret <= 0)
			break;
		if (c.nr != 1 || !c.segs[0].write ||
		    c.segs[0].len < sizeof(vi->faults[0]) ||
		    gpa_rw(vi->vm, c.segs[0].addr, &vi->faults[0],
			   sizeof(vi->faults[0]), true)) {
			vq_push(&gpa_dma, q, c.head, 0);
			added = true;
			continue;
		}
		vq_push(&gpa_dma, q, c.head, sizeof(vi->faults[0]));
		added = true;
		vi->faults_delivered++;
		memmove(&vi->faults[0], &vi->faults[1],
			--vi->nr_faults * sizeof(vi->faults[0]));
	}
	if (added && vq_wants_irq(&gpa_dma, q))
		vdev_irq(vi->dev);
}

/* Report a refused DMA of endpoint @ep to the guest. Under the lock. */
static void report_fault(struct viommu *vi, uint8_t reason, uint32_t ep,
			 uint64_t iova, bool write)
{
	uint32_t flags = VIRTIO_IOMMU_FAULT_F_ADDRESS |
			 (write ? VIRTIO_IOMMU_FAULT_F_WRITE :
			  VIRTIO_IOMMU_FAULT_F_READ);

	vi->faults_reported++;
	vmm_log("refused %s of endpoint %u at IOVA %#llx (%s): reported",
		write ? "DMA write" : "DMA read", ep, (unsigned long long)iova,
		reason == VIRTIO_IOMMU_FAULT_R_DOMAIN ? "no domain" :
		"not mapped");
	/* No buffer for long: the spec lets the device drop the event */
	if (vi->nr_faults == MAX_PENDING_FAULTS) {
		vi->faults_lost++;
		return;
	}
	vi->faults[vi->nr_faults++] = (struct virtio_iommu_fault) {
		.reason = reason,
		.flags = htole32(flags),
		.endpoint = htole32(ep),
		.address = htole64(iova),
	};
	flush_faults(vi);
}

/* ---- DMA of the endpoints ---- */

static int translate(struct viommu *vi, uint64_t iova, bool write,
		     uint64_t *gpa, uint64_t *room, uint8_t *reason)
{
	int id = endpoint_get(vi, RNG_ENDPOINT)->dom;
	struct domain *dom;

	if (id < 0) {
		*reason = VIRTIO_IOMMU_FAULT_R_DOMAIN;
		return -EFAULT;
	}
	dom = &vi->doms[id];
	for (size_t i = 0; i < dom->nr_maps; i++) {
		const struct mapping *m = &dom->maps[i];

		if (iova < m->start || iova > m->end)
			continue;
		if (!(m->flags & (write ? VIRTIO_IOMMU_MAP_F_WRITE :
					  VIRTIO_IOMMU_MAP_F_READ)))
			break;
		*gpa = m->gpa + (iova - m->start);
		*room = m->end - iova + 1;
		return 0;
	}
	*reason = VIRTIO_IOMMU_FAULT_R_MAPPING;
	return -EFAULT;
}

int viommu_dma(struct vm *vm, uint32_t ep, uint64_t iova, void *buf,
	       size_t len, bool write)
{
	struct viommu *vi = &viommu;
	uint8_t *p = buf;
	uint64_t gpa, room;
	uint8_t reason;
	int ret = 0;

	if (ep != RNG_ENDPOINT)
		return -EFAULT;
	/* Held across the copy: an UNMAP completes after the DMA using it */
	pthread_mutex_lock(&vi->lock);
	while (len) {
		size_t chunk;
		void *hva;

		if (translate(vi, iova, write, &gpa, &room, &reason)) {
			report_fault(vi, reason, ep, iova, write);
			ret = -EFAULT;
			break;
		}
		chunk = len < room ? len : room;
		hva = gpa_to_hva(vm, gpa, chunk);
		if (!hva) {	/* MAP checked it: cannot happen */
			ret = -EFAULT;
			break;
		}
		if (write)
			memcpy(hva, p, chunk);
		else
			memcpy(p, hva, chunk);
		if (write)
			vi->bytes_written += chunk;
		else
			vi->bytes_read += chunk;
		p += chunk;
		iova += chunk;
		len -= chunk;
	}
	pthread_mutex_unlock(&vi->lock);
	return ret;
}

bool viommu_is_mapped(struct vm *vm, uint32_t ep, uint64_t iova)
{
	struct viommu *vi = &viommu;
	uint64_t gpa, room;
	uint8_t reason;
	bool ret;

	pthread_mutex_lock(&vi->lock);
	ret = ep == RNG_ENDPOINT &&
	      (!translate(vi, iova, false, &gpa, &room, &reason) ||
	       !translate(vi, iova, true, &gpa, &room, &reason));
	pthread_mutex_unlock(&vi->lock);
	return ret;
}

/* ---- The request queue ---- */

/*
 * Read the request of chain @c of queue @q into @r; false if it cannot be
 * parsed (then it is returned unwritten, used length 0)
 */
static bool gather(struct viommu *vi, unsigned int q, const struct chain *c,
		   struct req_buf *r)
{
	unsigned int i;

	memset(r, 0, sizeof(*r));
	r->first_w = c->nr;
	for (i = 0; i < c->nr; i++) {
		const struct seg *s = &c->segs[i];

		if (s->write) {
			if (r->first_w == c->nr)
				r->first_w = i;
			r->resp_len += s->len;
			continue;
		}
		if (r->first_w != c->nr)
			return false;	/* readable after writable */
		if (r->req_len < REQ_MAX) {
			uint32_t n = s->len < REQ_MAX - r->req_len ? s->len :
				     REQ_MAX - r->req_len;

			if (gpa_rw(vi->vm, s->addr, r->req + r->req_len, n,
				   false))
				return false;
			r->req_len += n;
		}
	}
	/* Unparseable, unknown type or not negotiated: used length 0 */
	if (r->req_len < sizeof(struct virtio_iommu_req_head) ||
	    r->resp_len < sizeof(struct virtio_iommu_req_tail) ||
	    !req_size(vi, q, r->req[0]) ||
	    r->req_len < req_size(vi, q, r->req[0])) {
		unsigned int t = r->req_len && r->req[0] &&
				 r->req[0] < NR_TYPES ? r->req[0] : NR_TYPES;

		vi->nr_req[t]++;
		vi->nr_fail[t]++;
		vi->nr_len0++;
		return false;
	}
	return true;
}

/*
 * Write the payload, then the tail with @status, from the start of the
 * writable part of chain @c. Return the used length.
 */
static uint32_t scatter(struct viommu *vi, const struct chain *c,
			const struct req_buf *r, const uint8_t *payload,
			uint32_t payload_len, uint8_t status)
{
	struct virtio_iommu_req_tail tail = { .status = status };
	uint32_t off = 0;

	for (unsigned int i = r->first_w;
	     i < c->nr && off < payload_len + sizeof(tail); i++) {
		const struct seg *s = &c->segs[i];

		for (uint32_t n = 0; n < s->len &&
		     off < payload_len + sizeof(tail);) {
			const uint8_t *src = off < payload_len ?
				payload + off :
				(uint8_t *)&tail + (off - payload_len);
			uint32_t left = off < payload_len ? payload_len - off :
					payload_len + sizeof(tail) - off;
			uint32_t k = s->len - n < left ? s->len - n : left;

			if (gpa_rw(vi->vm, s->addr + n, (void *)src, k, true))
				return 0;
			n += k;
			off += k;
		}
	}
	return payload_len + sizeof(tail);
}

/*
 * Serve one chain of queue @q: gather, carry out, scatter. Return the used
 * length.
 */
static uint32_t serve(struct viommu *vi, unsigned int q, const struct chain *c)
{
	uint8_t payload[PROBE_SIZE], status;
	uint32_t payload_len;
	struct req_buf r;

	if (!gather(vi, q, c, &r))
		return 0;
	status = viommu_request(vi, q, r.req, r.resp_len, payload,
				&payload_len);
	return scatter(vi, c, &r, payload, payload_len, status);
}

/* The request queue, or an invalidation queue with -I vcpu */
static void serve_queue(struct viommu *vi, unsigned int qi)
{
	struct vq *q = &vi->dev->vqs[qi];
	bool added = false;
	struct chain c;
	int ret;

	while (vi->started && q->ready && (ret = vq_pop(&gpa_dma, q, &c)) != 0) {
		if (ret < 0) {
			vmm_log("queue %u: bad chain (%d): queue stopped", qi,
				ret);
			q->ready = false;
			break;
		}
		vq_push(&gpa_dma, q, c.head, serve(vi, qi, &c));
		added = true;
	}
	if (added && vq_wants_irq(&gpa_dma, q))
		vdev_irq(vi->dev);
}

/*
 * Hand the entries of batch @b to the kernel, which may stop at an entry:
 * that entry's request of @reqs takes the error, the entries behind it are
 * handed again.
 */
static void inval_submit(struct viommu *vi, const struct nest_batch *b,
			 struct inval_req *reqs, unsigned int n)
{
	unsigned int from = 0, done, i;
	int err;

	while (from < b->nr) {
		err = nest_inval_submit(&vi->nest, b, from, &done);
		if (!err)
			return;
		for (i = 0; i < n; i++)
			if (reqs[i].nr && reqs[i].first <= from + done &&
			    from + done < reqs[i].first + reqs[i].nr)
				break;
		if (i == n) {
			vmm_log("IOMMU_HWPT_INVALIDATE: %s past entry %u",
				strerror(-err), from + done);
			return;
		}
		reqs[i].status = nest_status(err);
		from = reqs[i].first + reqs[i].nr;
	}
}

/*
 * An invalidation queue served by this program's thread (-I vmm, drop): the
 * requests of a pass, NEST_BATCH_REQS at most, in one IOMMU_HWPT_INVALIDATE,
 * each answered with the status of its entries, in ring order. Under the
 * lock.
 */
static void serve_invalq(struct viommu *vi, unsigned int qi)
{
	struct inval_req *reqs = vi->inval_reqs;
	struct nest_batch *b = &vi->inval_batch;
	struct vq *q = &vi->dev->vqs[qi];
	const struct nest_ep *eps[NEST_MAX_EPS];
	bool added = false;
	unsigned int n, nr;
	int ret = 1;

	while (ret > 0) {
		for (n = 0, b->nr = 0; n < NEST_BATCH_REQS && vi->started &&
		     q->ready && (ret = vq_pop(&gpa_dma, q, &reqs[n].c)) > 0; n++) {
			struct inval_req *ir = &reqs[n];

			ir->first = b->nr;
			ir->nr = 0;
			ir->parsed = gather(vi, qi, &ir->c, &ir->r);
			if (!ir->parsed)
				continue;
			vi->nr_invalq++;
			/* Room for the most entries a request makes */
			if (inval_eps(vi, ir->r.req, eps, &nr, &ir->status) &&
			    nest_inval_add(b, ir->r.req, eps, nr))
				ir->nr = b->nr - ir->first;
		}
		if (ret < 0) {
			vmm_log("queue %u: bad chain (%d): queue stopped", qi,
				ret);
			q->ready = false;
		}
		inval_submit(vi, b, reqs, n);
		for (unsigned int i = 0; i < n; i++) {
			struct inval_req *ir = &reqs[i];

			vi->nr_invalq_fail += ir->parsed && ir->status;
			vq_push(&gpa_dma, q, ir->c.head, ir->parsed ?
				scatter(vi, &ir->c, &ir->r, NULL, 0, ir->status) : 0);
			added = true;
		}
		if (!n)
			break;
	}
	if (added && vq_wants_irq(&gpa_dma, q))
		vdev_irq(vi->dev);
}

/*
 * -I vcpu: an invalidation queue's notification exits to the vCPU, which
 * serves it right there, one IOMMU_HWPT_INVALIDATE per request
 */
static void viommu_notify(struct vdev *d, unsigned int q)
{
	struct viommu *vi = d->priv;

	if (vi->started && q > VQ_FAST && vi->vm->inval == INVAL_VCPU)
		serve_queue(vi, q);
}

/* ---- /dev/vhost-iommu: the fast-path queues ---- */

/*
 * F_ATTACH_TABLE when the assigned devices have a vIOMMU (not with -I
 * none); F_INVALQ, which requires it, when its queue has a server: the
 * kernel (-I kernel, if /dev/vhost-iommu has the feature) or this program
 * (-I vmm, vcpu, drop). Not F_PAGE_REQUEST: no fault queue is bound.
 * Transport features (EVENT_IDX, INDIRECT_DESC) would apply to the queues
 * served here too: not offered.
 */
static uint64_t offered_features(const struct viommu *vi)
{
	uint64_t f = VIOMMU_FEATURES;

	if (!vi->nest.viommu_id)
		return f;
	f |= TABLE_FEATURES;
	if (vi->vm->inval == INVAL_VMM || vi->vm->inval == INVAL_DROP ||
	    vi->vm->inval == INVAL_VCPU ||
	    (vi->vm->inval == INVAL_KERNEL && vi->vhost_fd >= 0 &&
	     (vi->vhost_features & BIT64(VIRTIO_IOMMU_F_INVALQ))))
		f |= BIT64(VIRTIO_IOMMU_F_INVALQ);
	return f;
}

/* A guest's ring layout or a state the kernel refuses: a device reset */
static bool vhost_try(struct viommu *vi, unsigned long req, void *arg,
		      const char *name)
{
	if (!ioctl(vi->vhost_fd, req, arg))
		return true;
	vmm_log("%s: %s: virtio-iommu needs a reset", name, strerror(errno));
	vi->dev->status |= VIRTIO_STAT_NEEDS_RESET;
	return false;
}

/*
 * DRIVER_OK with F_INVALQ: hand the queues VQ_FAST.. the driver set up to
 * the kernel (vhost index q - VQ_FAST); a queue left without a ring is not
 * served. Under the lock.
 */
static void vhost_start(struct viommu *vi)
{
	struct vm *vm = vi->vm;
	struct {
		struct vhost_memory mem;
		struct vhost_memory_region region;
	} table = {
		.mem.nregions = 1,
		.region = {
			.guest_phys_addr = RAM_BASE,
			.memory_size = vm->ram_size,
			.userspace_addr = (uintptr_t)vm->ram,
		},
	};
	uint64_t features = vi->dev->driver_features & vi->vhost_features;
	int running = 1;

	/* From here the kernel may hold state: a reset must drop it */
	vi->vhost_running = true;
	vi->vhost_starts++;
	/* Its call eventfd is the irqfd: report "used buffer" on every read */
	vi->dev->int_always = true;
	if (!vhost_try(vi, VHOST_SET_FEATURES, &features, "VHOST_SET_FEATURES") ||
	    !vhost_try(vi, VHOST_SET_MEM_TABLE, &table, "VHOST_SET_MEM_TABLE"))
		return;
	for (unsigned int i = VQ_FAST; i < vi->dev->nr_vqs; i++) {
		struct vq *q = &vi->dev->vqs[i];
		struct vhost_vring_state state = {
			.index = i - VQ_FAST, .num = q->num,
		};
		struct vhost_vring_addr addr = {
			.index = i - VQ_FAST,
			.desc_user_addr = (uintptr_t)gpa_to_hva(vm, q->desc,
								16 * q->num),
			.avail_user_addr = (uintptr_t)gpa_to_hva(vm, q->avail,
								 6 + 2 * q->num),
			.used_user_addr = (uintptr_t)gpa_to_hva(vm, q->used,
								6 + 8 * q->num),
		};
		struct vhost_vring_file kick = {
			.index = i - VQ_FAST, .fd = vi->kick_fd[i],
		};
		struct vhost_vring_file call = {
			.index = i - VQ_FAST, .fd = vi->dev->irq_fd,
		};
		struct vhost_vring_file err = {
			.index = i - VQ_FAST, .fd = vi->err_fd[i],
		};

		if (!q->ready)
			continue;
		if (!addr.desc_user_addr || !addr.avail_user_addr ||
		    !addr.used_user_addr) {
			vmm_log("queue %u outside RAM: virtio-iommu needs a reset",
				i);
			vi->dev->status |= VIRTIO_STAT_NEEDS_RESET;
			return;
		}
		if (!vhost_try(vi, VHOST_SET_VRING_NUM, &state, "SET_VRING_NUM"))
			return;
		state.num = 0;
		if (!vhost_try(vi, VHOST_SET_VRING_BASE, &state, "SET_VRING_BASE") ||
		    !vhost_try(vi, VHOST_SET_VRING_ADDR, &addr, "SET_VRING_ADDR") ||
		    !vhost_try(vi, VHOST_SET_VRING_KICK, &kick, "SET_VRING_KICK") ||
		    !vhost_try(vi, VHOST_SET_VRING_CALL, &call, "SET_VRING_CALL") ||
		    !vhost_try(vi, VHOST_SET_VRING_ERR, &err, "SET_VRING_ERR"))
			return;
		/* --busy-poll: the invalidation queues only */
		state.num = i > VQ_FAST ? vm->busy_poll_us : 0;
		if (state.num &&
		    !vhost_try(vi, VHOST_SET_VRING_BUSYLOOP_TIMEOUT, &state,
			       "SET_VRING_BUSYLOOP_TIMEOUT"))
			return;
	}
	vhost_try(vi, VIOMMU_VHOST_SET_RUNNING, &running, "SET_RUNNING");
}

/*
 * Virtio reset: the kernel stops, drops every binding and answers its held
 * page-request groups INVALID; owner, memory table and workers stay. Under
 * the lock.
 */
static void vhost_reset(struct viommu *vi)
{
	if (!vi->vhost_running)
		return;
	if (ioctl(vi->vhost_fd, VIOMMU_VHOST_RESET))
		die("VHOST_IOMMU_RESET: %s", strerror(errno));
	vi->vhost_running = false;
	vi->vhost_iommufd = false;
	vi->dev->int_always = false;
}

/* Take /dev/vhost-iommu if there is one, and read what it offers */
static void vhost_open(struct viommu *vi)
{
	vi->vhost_fd = open("/dev/vhost-iommu", O_RDWR | O_CLOEXEC);
	if (vi->vhost_fd < 0) {
		vmm_log("/dev/vhost-iommu: %s: no fast-path queues",
			strerror(errno));
		return;
	}
	if (ioctl(vi->vhost_fd, VHOST_SET_OWNER) ||
	    ioctl(vi->vhost_fd, VHOST_GET_FEATURES, &vi->vhost_features)) {
		vmm_log("/dev/vhost-iommu: %s: no fast-path queues",
			strerror(errno));
		close(vi->vhost_fd);
		vi->vhost_fd = -1;
	}
}

/* ---- The device ---- */

/*
 * Count the requests of the request queue: posted by the guest (avail
 * index) and returned to it (used index). Under the lock.
 */
static void account_queue(struct viommu *vi)
{
	struct vq *q = &vi->dev->vqs[VQ_REQ];
	uint16_t avail, used;

	if (!vi->started || gpa_rw(vi->vm, q->avail + 2, &avail, 2, false) ||
	    gpa_rw(vi->vm, q->used + 2, &used, 2, false))
		return;
	vi->posted += avail;
	vi->returned += used;
}

/*
 * Every endpoint out of its domain, the assigned ones blocked (detached
 * from their IOAS), every domain and IOAS destroyed. Under the lock.
 */
static void domains_clear(struct viommu *vi)
{
	for (unsigned int i = 0; i < vi->nr_eps; i++) {
		struct endpoint *ep = &vi->eps[i];

		if (ep->dom >= 0 && endpoint_block(vi, ep))
			die("%s: cannot block its DMA", ep->pdev->bdf);
		ep->dom = -1;
	}
	for (unsigned int i = 0; i < MAX_DOMAINS; i++)
		if (vi->doms[i].used)
			domain_free(vi, &vi->doms[i]);
}

/* Reset: forget every domain, mapping and waiting fault. Under the lock. */
static void viommu_dev_reset(struct viommu *vi)
{
	account_queue(vi);
	vi->started = false;
	vhost_reset(vi);
	domains_clear(vi);
	vi->nr_faults = 0;
	vi->resets++;
}

static void viommu_status(struct vdev *d, uint32_t old, uint32_t status)
{
	struct viommu *vi = d->priv;
	bool fast = negotiated(vi, VIRTIO_IOMMU_F_INVALQ);

	if (!status) {
		if (old)
			viommu_dev_reset(vi);
		return;
	}
	if (!(status & VIRTIO_STAT_DRIVER_OK) ||
	    (old & VIRTIO_STAT_DRIVER_OK))
		return;
	vi->started = true;
	/* Notifications before DRIVER_OK wait in the eventfds */
	eventfd_write(vi->ctl_fd, 1);
	if (fast && vi->vm->inval == INVAL_KERNEL)
		vhost_start(vi);
	vmm_log("virtio-iommu: driver ready (features %#llx), requestq/eventq by the VMM, %s",
		(unsigned long long)d->driver_features,
		!fast ? "no fast-path queue (F_INVALQ not negotiated)" :
		vi->vm->inval == INVAL_KERNEL ?
		"fast-path queues by /dev/vhost-iommu" :
		vi->vm->inval == INVAL_DROP ?
		"invalidation queue by the VMM, dropping (negative control)" :
		vi->vm->inval == INVAL_VCPU ?
		"invalidation queue by the VMM in the vCPU's exit" :
		"invalidation queue by the VMM's thread");
}

static void viommu_cfg_read(struct vdev *d, uint32_t off, void *buf,
			    uint32_t len)
{
	struct virtio_iommu_config cfg = {
		.page_size_mask = htole64(~PAGE_MASK_4K),
		.input_range.start = 0,
		.input_range.end = htole64(INPUT_END),
		.domain_range.start = htole32(DOMAIN_FIRST),
		.domain_range.end = htole32(DOMAIN_LAST),
		.probe_size = htole32(PROBE_SIZE),
	};
	uint8_t space[CFG_SIZE] = { 0 };
	uint16_t num_invalq = htole16(NR_INVALQ);

	memcpy(space, &cfg, CFG_NUM_INVALQ);
	if (d->features & BIT64(VIRTIO_IOMMU_F_INVALQ))
		memcpy(space + CFG_NUM_INVALQ, &num_invalq, 2);
	memset(buf, 0, len);
	if (off < sizeof(space) && len <= sizeof(space) - off)
		memcpy(buf, space + off, len);
}

/* F_INVALQ requires F_ATTACH_TABLE, F_PAGE_REQUEST requires F_INVALQ */
static bool viommu_features_ok(struct vdev *d, uint64_t f)
{
	if ((f & BIT64(VIRTIO_IOMMU_F_INVALQ)) &&
	    !(f & BIT64(VIRTIO_IOMMU_F_ATTACH_TABLE)))
		return false;
	return !(f & BIT64(VIRTIO_IOMMU_F_PAGE_REQUEST)) ||
	       (f & BIT64(VIRTIO_IOMMU_F_INVALQ));
}

static const struct vdev_ops viommu_ops = {
	.cfg_read = viommu_cfg_read,
	.features_ok = viommu_features_ok,
	.status = viommu_status,
	.notify = viommu_notify,
};

void viommu_mmio(struct vm *vm, uint64_t off, uint8_t *data, uint32_t len,
		 bool write)
{
	pthread_mutex_lock(&viommu.lock);
	vdev_mmio(&vm->viommu_dev, off, data, len, write);
	pthread_mutex_unlock(&viommu.lock);
}

void viommu_reset(struct vm *vm)
{
	pthread_mutex_lock(&viommu.lock);
	vdev_reset(&vm->viommu_dev);
	pthread_mutex_unlock(&viommu.lock);
}

static void drain(int fd)
{
	eventfd_t v;

	eventfd_read(fd, &v);
}

static uint64_t now_us(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000000ULL + t.tv_nsec / 1000;
}

/*
 * --busy-poll with -I vmm: once it served them, the thread watches the
 * invalidation queues for up to the timeout since the last request, their
 * notifications off, as QEMU's iothreads poll their virtqueues. The lock is
 * taken for each look, so the vCPU's exits are not held up.
 */
static void poll_invalqs(struct viommu *vi)
{
	unsigned int nr_vqs = vi->dev->nr_vqs, i;
	uint64_t last = now_us();
	bool found;

	pthread_mutex_lock(&vi->lock);
	for (i = VQ_FAST + 1; i < nr_vqs; i++)
		vq_set_notify(&gpa_dma, &vi->dev->vqs[i], false);
	pthread_mutex_unlock(&vi->lock);
	do {
		found = false;
		pthread_mutex_lock(&vi->lock);
		for (i = VQ_FAST + 1; i < nr_vqs && vi->started && !vi->quit; i++) {
			if (!vq_has_avail(&gpa_dma, &vi->dev->vqs[i]))
				continue;
			serve_invalq(vi, i);
			found = true;
		}
		if (vi->quit || !vi->started)
			last = 0;
		pthread_mutex_unlock(&vi->lock);
		if (found)
			last = now_us();
	} while (now_us() - last < vi->vm->busy_poll_us);
	/* Notifications on; what came meanwhile is served */
	pthread_mutex_lock(&vi->lock);
	for (i = VQ_FAST + 1; i < nr_vqs; i++)
		vq_set_notify(&gpa_dma, &vi->dev->vqs[i], true);
	for (i = VQ_FAST + 1; i < nr_vqs && vi->started && !vi->quit; i++)
		serve_invalq(vi, i);
	pthread_mutex_unlock(&vi->lock);
}

/*
 * The requestq and eventq notifications, and the error eventfds of the
 * queues the kernel serves, or with -I vmm and drop the notifications of
 * the invalidation queues
 */
static void *viommu_thread(void *arg)
{
	struct viommu *vi = arg;
	unsigned int nr_vqs = vi->dev->nr_vqs;
	bool own = vi->vm->inval == INVAL_VMM || vi->vm->inval == INVAL_DROP;
	struct pollfd p[1 + VQ_MAX];

	p[0] = (struct pollfd){ .fd = vi->ctl_fd, .events = POLLIN };
	p[1 + VQ_REQ] = (struct pollfd){ .fd = vi->kick_fd[VQ_REQ],
					 .events = POLLIN };
	p[1 + VQ_EVENT] = (struct pollfd){ .fd = vi->kick_fd[VQ_EVENT],
					   .events = POLLIN };
	for (unsigned int i = VQ_FAST; i < nr_vqs; i++)
		p[1 + i] = (struct pollfd){
			.fd = own ? vi->kick_fd[i] : vi->err_fd[i],
			.events = POLLIN,
		};
	for (;;) {
		if (poll(p, 1 + nr_vqs, -1) < 0) {
			if (errno == EINTR)
				continue;
			die("poll: %s", strerror(errno));
		}
		for (unsigned int i = 0; i < 1 + nr_vqs; i++)
			if (p[i].revents)
				drain(p[i].fd);
		pthread_mutex_lock(&vi->lock);
		if (vi->quit) {
			pthread_mutex_unlock(&vi->lock);
			return NULL;
		}
		for (unsigned int i = VQ_FAST; i < nr_vqs && !own; i++)
			if (p[1 + i].revents)
				vmm_log("vhost: error on queue %u", i);
		/* After a wakeup (start) too: kicks may predate it */
		if (vi->started) {
			serve_queue(vi, VQ_REQ);
			for (unsigned int i = VQ_FAST + 1; i < nr_vqs && own; i++)
				serve_invalq(vi, i);
			flush_faults(vi);
		}
		pthread_mutex_unlock(&vi->lock);
		if (own && vi->vm->busy_poll_us)
			poll_invalqs(vi);
	}
}

/*
 * The vIOMMU of the table domains and the assigned devices on it, each on
 * its abort vSTE; without it (a host IOMMU that cannot nest) the guest is
 * not offered F_ATTACH_TABLE
 */
static void nest_create(struct viommu *vi)
{
	struct vm *vm = vi->vm;
	unsigned int i;

	if (nest_init(&vi->nest, vm, vm->iommufd, vm->pdevs[0].dev_id))
		goto err;
	for (i = 0; i < vi->nr_eps; i++) {
		struct endpoint *ep = &vi->eps[i];

		if (!ep->pdev)
			continue;
		ep->nest = (struct nest_ep) { .pdev = ep->pdev, .endpoint = ep->id };
		if (nest_add_ep(&vi->nest, &ep->nest))
			goto err_eps;
	}
	vmm_log("table domains: vIOMMU %u over the guest RAM, %u devices on it",
		vi->nest.viommu_id, vm->nr_pdevs);
	return;

err_eps:
	for (unsigned int k = 0; k <= i && k < vi->nr_eps; k++)
		if (vi->eps[k].pdev)
			nest_remove_ep(&vi->nest, &vi->eps[k].nest);
	nest_destroy(&vi->nest);
err:
	vmm_log("table domains: no vIOMMU: F_ATTACH_TABLE not offered");
}

void viommu_create(struct vm *vm)
{
	struct viommu *vi = &viommu;
	unsigned int nr_vqs;
	uint64_t features;

	vi->vm = vm;
	gpa_dma.ctx = vm;
	vi->dev = &vm->viommu_dev;
	vi->eps[vi->nr_eps++] = (struct endpoint) {
		.id = RNG_ENDPOINT, .dom = -1,
	};
	for (unsigned int i = 0; i < vm->nr_pdevs; i++)
		vi->eps[vi->nr_eps++] = (struct endpoint) {
			.id = PCI_ENDPOINT_BASE + vm->pdevs[i].devfn,
			.dom = -1, .pdev = &vm->pdevs[i],
		};
	pthread_mutex_init(&vi->lock, NULL);
	vhost_open(vi);
	if (vm->nr_pdevs && vm->inval != INVAL_NONE)
		nest_create(vi);
	features = offered_features(vi);
	/* The fast-path queues exist only with the feature that adds them */
	nr_vqs = features & BIT64(VIRTIO_IOMMU_F_INVALQ) ? VQ_MAX : VQ_FAST;
	vdev_init(vi->dev, vm, "virtio-iommu", VIRTIO_MMIO_BASE, VIOMMU_SPI,
		  VIOMMU_DEVICE_ID, features, nr_vqs, &viommu_ops, vi);
	vi->ctl_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (vi->ctl_fd < 0)
		die("eventfd: %s", strerror(errno));

	/*
	 * The queue notifications never exit to the vCPU loop, but those of
	 * the invalidation queues with -I vcpu
	 */
	for (unsigned int i = 0; i < nr_vqs; i++) {
		struct kvm_ioeventfd ioev = {
			.datamatch = i,
			.addr = VIRTIO_MMIO_BASE + 0x50,	/* QueueNotify */
			.len = 4,
			.flags = KVM_IOEVENTFD_FLAG_DATAMATCH,
		};

		vi->kick_fd[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		vi->err_fd[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (vi->kick_fd[i] < 0 || vi->err_fd[i] < 0)
			die("eventfd: %s", strerror(errno));
		ioev.fd = vi->kick_fd[i];
		if (i > VQ_FAST && vm->inval == INVAL_VCPU)
			continue;
		if (ioctl(vm->vm_fd, KVM_IOEVENTFD, &ioev))
			die("KVM_IOEVENTFD: %s", strerror(errno));
	}
	if (vi->vhost_fd >= 0)
		vmm_log("/dev/vhost-iommu: features %#llx; %s",
			(unsigned long long)vi->vhost_features,
			features & BIT64(VIRTIO_IOMMU_F_INVALQ) ?
			"F_INVALQ offered to the guest" :
			!(vi->vhost_features & BIT64(VIRTIO_IOMMU_F_INVALQ)) ?
			"no F_INVALQ: no fast-path queues" :
			"F_INVALQ not offered (needs ATTACH_TABLE in the VMM)");
	if (pthread_create(&vi->thread, NULL, viommu_thread, vi))
		die("pthread_create");
}

void viommu_destroy(struct vm *vm)
{
	struct viommu *vi = &viommu;

	pthread_mutex_lock(&vi->lock);
	vi->quit = true;
	vhost_reset(vi);
	pthread_mutex_unlock(&vi->lock);
	eventfd_write(vi->ctl_fd, 1);
	pthread_join(vi->thread, NULL);
	domains_clear(vi);
	if (vi->nest.viommu_id) {
		for (unsigned int i = 0; i < vi->nr_eps; i++)
			if (vi->eps[i].pdev)
				nest_remove_ep(&vi->nest, &vi->eps[i].nest);
		nest_destroy(&vi->nest);
	}
	if (vi->vhost_fd >= 0)
		close(vi->vhost_fd);
}

void viommu_print_stats(struct vm *vm)
{
	struct viommu *vi = &viommu;
	uint64_t total = 0, maps = 0;

	pthread_mutex_lock(&vi->lock);
	account_queue(vi);
	vi->started = false;	/* counted once */
	vmm_log("request queue: %llu requests posted by the guest, %llu returned to it",
		(unsigned long long)vi->posted,
		(unsigned long long)vi->returned);
	vmm_log("virtio-iommu requests (served by the VMM from its request queue):");
	for (unsigned int t = 1; t <= NR_TYPES; t++) {
		if (!vi->nr_req[t])
			continue;
		vmm_log("  %-10s %10llu  (%llu failed)", type_names[t],
			(unsigned long long)vi->nr_req[t],
			(unsigned long long)vi->nr_fail[t]);
		total += vi->nr_req[t];
	}
	vmm_log("  total      %10llu", (unsigned long long)total);
	vmm_log("request queue: %llu returned unwritten (used length 0)",
		(unsigned long long)vi->nr_len0);
	if (vi->vhost_fd < 0)
		vmm_log("fast-path queues: none (no /dev/vhost-iommu)");
	else
		vmm_log("fast-path queues: handed to /dev/vhost-iommu %llu times (F_INVALQ %s)",
			(unsigned long long)vi->vhost_starts,
			vi->dev->features & BIT64(VIRTIO_IOMMU_F_INVALQ) ?
			"offered" : "not offered");
	if (vi->nest.viommu_id) {
		char inv[160];
		int n;

		n = snprintf(inv, sizeof(inv), "invalidation queue by %s; ",
			     !(vi->dev->features & BIT64(VIRTIO_IOMMU_F_INVALQ)) ?
			     "none (not offered)" :
			     vi->vm->inval == INVAL_KERNEL ? "/dev/vhost-iommu" :
			     vi->vm->inval == INVAL_VCPU ? "the VMM's vCPU" :
			     "the VMM's thread");
		snprintf(inv + n, sizeof(inv) - n,
			 "served by the VMM: %llu INVALIDATE (%llu failed, %llu dropped)",
			 (unsigned long long)vi->nr_invalq,
			 (unsigned long long)vi->nr_invalq_fail,
			 (unsigned long long)vi->nr_dropped);
		vmm_log("table domains: %llu vSTEs installed, %llu IOMMU_HWPT_INVALIDATE; %s",
			(unsigned long long)vi->nest.attaches,
			(unsigned long long)vi->nest.invalidations, inv);
	}
	for (unsigned int i = 0; i < MAX_DOMAINS; i++)
		maps += vi->doms[i].nr_maps;
	vmm_log("mappings: %llu now, at most %llu in a domain; endpoint %u in domain %d",
		(unsigned long long)maps,
		(unsigned long long)vi->maps_max, RNG_ENDPOINT,
		endpoint_get(vi, RNG_ENDPOINT)->dom);
	vmm_log("endpoint DMA through the mappings: %llu bytes read, %llu bytes written",
		(unsigned long long)vi->bytes_read,
		(unsigned long long)vi->bytes_written);
	vmm_log("faults: %llu reported, %llu lost, %llu on the eventq; device resets: %llu",
		(unsigned long long)vi->faults_reported,
		(unsigned long long)vi->faults_lost,
		(unsigned long long)vi->faults_delivered,
		(unsigned long long)vi->resets);
	pthread_mutex_unlock(&vi->lock);
}
