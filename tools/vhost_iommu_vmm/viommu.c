// SPDX-License-Identifier: GPL-2.0
/*
 * The virtio-iommu device.
 *
 * With /dev/vhost-iommu (the default), the kernel reads the request queue
 * and the event queue: the guest's notifications reach it through ioeventfds
 * and its call eventfd is an irqfd, so a request never exits to this program
 * unless the kernel forwards it on the slow-path channel (the device file):
 * here every request, since no domain is bound to an iommufd vIOMMU. This
 * program reads each request, carries it out on its own tables (domains,
 * endpoints, mappings) and writes the answer back.
 *
 * With -u, this program serves the two queues itself, from the same
 * ioeventfds and irqfd, with the same request code: the comparison point.
 *
 * Either way, the tables are what the emulated endpoint (virtio-rng) uses to
 * translate its DMA, and a refused DMA is reported on the event queue:
 * through VHOST_IOMMU_REPORT_FAULT, or written there directly with -u.
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
/* Largest device-readable part of the requests served here (PROBE) */
#define REQ_MAX			128

#define VIOMMU_FEATURES	((1ULL << VIRTIO_FEAT_VERSION_1) |		\
			 (1ULL << VIRTIO_IOMMU_F_INPUT_RANGE) |		\
			 (1ULL << VIRTIO_IOMMU_F_DOMAIN_RANGE) |		\
			 (1ULL << VIRTIO_IOMMU_F_MAP_UNMAP) |		\
			 (1ULL << VIRTIO_IOMMU_F_PROBE))

#define PAGE_MASK_4K		0xfffULL
#define INPUT_END		((1ULL << 48) - 1)
#define DOMAIN_FIRST		1
#define DOMAIN_LAST		(MAX_DOMAINS - 1)

struct mapping {
	uint64_t start, end;	/* IOVA, inclusive */
	uint64_t gpa;
	uint32_t flags;
};

struct domain {
	bool used;
	unsigned int nr_eps;
	struct mapping *maps;
	size_t nr_maps;
};

struct viommu {
	struct vm *vm;
	struct vdev *dev;
	bool userspace;
	pthread_mutex_t lock;	/* everything below, and the transport */
	pthread_t thread;
	int ctl_fd;		/* wakes the thread */
	bool quit;

	int vhost_fd;
	bool vhost_owned;
	bool started;		/* DRIVER_OK seen, queues served */
	int kick_fd[VQ_MAX];	/* ioeventfds of the two queues */
	int err_fd[VQ_MAX];

	struct domain doms[MAX_DOMAINS];
	int ep_dom;		/* the domain of the rng endpoint, or -1 */

	/* -u: faults waiting for an event buffer */
	struct virtio_iommu_fault faults[MAX_PENDING_FAULTS];
	unsigned int nr_faults;

	/* Statistics */
	uint64_t nr_req[NR_TYPES + 1];	/* the last: unknown types */
	uint64_t nr_fail[NR_TYPES + 1];
	uint64_t nr_forwarded, nr_answered;
	uint64_t nr_unparseable;
	uint64_t maps_max;
	uint64_t bytes_read, bytes_written;
	uint64_t faults_reported, faults_lost, faults_delivered;
	uint64_t resets;
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

/* The device-readable size of each request served here */
static uint32_t req_size(uint8_t type)
{
	switch (type) {
	case VIRTIO_IOMMU_T_ATTACH:
		return offsetof(struct virtio_iommu_req_attach, tail);
	case VIRTIO_IOMMU_T_DETACH:
		return offsetof(struct virtio_iommu_req_detach, tail);
	case VIRTIO_IOMMU_T_MAP:
		return offsetof(struct virtio_iommu_req_map, tail);
	case VIRTIO_IOMMU_T_UNMAP:
		return offsetof(struct virtio_iommu_req_unmap, tail);
	case VIRTIO_IOMMU_T_PROBE:
		return offsetof(struct virtio_iommu_req_probe, properties);
	default:
		return 0;	/* not offered: the guest cannot send it */
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

static void domain_free(struct domain *dom)
{
	free(dom->maps);
	memset(dom, 0, sizeof(*dom));
}

/* The endpoint leaves its domain; the last one out destroys the domain */
static void endpoint_detach(struct viommu *vi)
{
	struct domain *dom;

	if (vi->ep_dom < 0)
		return;
	dom = &vi->doms[vi->ep_dom];
	vi->ep_dom = -1;
	if (--dom->nr_eps == 0)
		domain_free(dom);
}

static uint8_t do_attach(struct viommu *vi, const uint8_t *buf)
{
	const struct virtio_iommu_req_attach *req = (const void *)buf;
	uint32_t id = le32toh(req->domain);
	uint32_t ep = le32toh(req->endpoint);

	if (!zero(req->reserved, sizeof(req->reserved)) || req->flags)
		return VIRTIO_IOMMU_S_INVAL;	/* no BYPASS feature */
	if (ep != RNG_ENDPOINT)
		return VIRTIO_IOMMU_S_NOENT;
	if (id < DOMAIN_FIRST || id > DOMAIN_LAST)
		return VIRTIO_IOMMU_S_RANGE;
	if (vi->ep_dom == (int)id)
		return VIRTIO_IOMMU_S_OK;
	/* Attaching to another domain detaches from the current one */
	endpoint_detach(vi);
	vi->doms[id].used = true;
	vi->doms[id].nr_eps++;
	vi->ep_dom = id;
	return VIRTIO_IOMMU_S_OK;
}

static uint8_t do_detach(struct viommu *vi, const uint8_t *buf)
{
	const struct virtio_iommu_req_detach *req = (const void *)buf;
	uint32_t id = le32toh(req->domain);
	uint32_t ep = le32toh(req->endpoint);

	if (!zero(req->reserved, sizeof(req->reserved)))
		return VIRTIO_IOMMU_S_INVAL;
	if (ep != RNG_ENDPOINT || !domain_get(vi, id))
		return VIRTIO_IOMMU_S_NOENT;
	if (vi->ep_dom != (int)id)
		return VIRTIO_IOMMU_S_INVAL;
	endpoint_detach(vi);
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

	if (!dom)
		return VIRTIO_IOMMU_S_NOENT;
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
	dom->maps[dom->nr_maps++] = (struct mapping) {
		.start = start, .end = end, .gpa = gpa, .flags = flags,
	};
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
	size_t i;

	if (!dom)
		return VIRTIO_IOMMU_S_NOENT;
	if (!zero(req->reserved, sizeof(req->reserved)) || end < start)
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

		if (start <= m->start && m->end <= end)
			*m = dom->maps[--dom->nr_maps];
		else
			i++;
	}
	return VIRTIO_IOMMU_S_OK;
}

/* PROBE: the MSI doorbell window, which the endpoint's MSIs bypass */
static uint8_t do_probe(const uint8_t *buf, uint32_t resp_len, uint8_t *props,
			uint32_t *props_len)
{
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
	if (le32toh(req->endpoint) != RNG_ENDPOINT)
		return VIRTIO_IOMMU_S_NOENT;
	/* The tail goes after probe_size bytes of properties */
	if (resp_len < PROBE_SIZE + sizeof(struct virtio_iommu_req_tail))
		return VIRTIO_IOMMU_S_INVAL;
	memset(props, 0, PROBE_SIZE);
	memcpy(props, &msi, sizeof(msi));
	*props_len = PROBE_SIZE;
	return VIRTIO_IOMMU_S_OK;
}

/*
 * Carry out one request whose @req_len device-readable bytes are in @req.
 * Return the status; a PROBE also fills @payload. Under the lock.
 */
static uint8_t viommu_request(struct viommu *vi, const uint8_t *req,
			      uint32_t req_len, uint32_t resp_len,
			      uint8_t *payload, uint32_t *payload_len)
{
	uint8_t type = req[0];
	uint8_t status;

	*payload_len = 0;
	if (!req_size(type) || req_len < req_size(type)) {
		/* The kernel forwards only what the negotiated features allow */
		vi->nr_req[NR_TYPES]++;
		vi->nr_fail[NR_TYPES]++;
		return VIRTIO_IOMMU_S_INVAL;
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
	default:
		status = do_probe(req, resp_len, payload, payload_len);
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

/* ---- Faults ---- */

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

/* -u: write waiting faults into the guest's event buffers. Under the lock. */
static void userspace_flush_faults(struct viommu *vi)
{
	struct vq *q = &vi->dev->vqs[1];
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
	struct vhost_iommu_fault cmd = {
		.size = sizeof(cmd),
		.reason = reason,
		.fault_flags = flags,
		.endpoint = ep,
		.address = iova,
	};

	vi->faults_reported++;
	vmm_log("refused %s of endpoint %u at IOVA %#llx (%s): reported",
		write ? "DMA write" : "DMA read", ep, (unsigned long long)iova,
		reason == VIRTIO_IOMMU_FAULT_R_DOMAIN ? "no domain" :
		"not mapped");
	if (!vi->userspace) {
		if (ioctl(vi->vhost_fd, VHOST_IOMMU_REPORT_FAULT, &cmd)) {
			vi->faults_lost++;
			vmm_log("VHOST_IOMMU_REPORT_FAULT: %s", strerror(errno));
		}
		return;
	}
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
	userspace_flush_faults(vi);
}

/* ---- DMA of the endpoints ---- */

static int translate(struct viommu *vi, uint64_t iova, bool write,
		     uint64_t *gpa, uint64_t *room, uint8_t *reason)
{
	struct domain *dom;

	if (vi->ep_dom < 0) {
		*reason = VIRTIO_IOMMU_FAULT_R_DOMAIN;
		return -EFAULT;
	}
	dom = &vi->doms[vi->ep_dom];
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

/* ---- -u: the request queue served here ---- */

/* Serve one chain: gather, carry out, scatter. Return the used length. */
static uint32_t userspace_serve(struct viommu *vi, const struct chain *c)
{
	uint8_t req[REQ_MAX] = { 0 }, payload[PROBE_SIZE];
	uint32_t req_len = 0, resp_len = 0, payload_len, off;
	struct virtio_iommu_req_tail tail = { 0 };
	unsigned int i, first_w = c->nr;

	for (i = 0; i < c->nr; i++) {
		const struct seg *s = &c->segs[i];

		if (s->write) {
			if (first_w == c->nr)
				first_w = i;
			resp_len += s->len;
			continue;
		}
		if (first_w != c->nr)
			return 0;	/* readable after writable */
		if (req_len < REQ_MAX) {
			uint32_t n = s->len < REQ_MAX - req_len ? s->len :
				     REQ_MAX - req_len;

			if (gpa_rw(vi->vm, s->addr, req + req_len, n, false))
				return 0;
			req_len += n;
		}
	}
	/* As the kernel: unparseable, unknown or not negotiated: length 0 */
	if (req_len < sizeof(struct virtio_iommu_req_head) ||
	    resp_len < sizeof(tail) || !req_size(req[0])) {
		vi->nr_unparseable++;
		return 0;
	}
	tail.status = viommu_request(vi, req, req_len, resp_len, payload,
				     &payload_len);

	/* The payload, then the tail, from the start of the writable part */
	off = 0;
	for (i = first_w; i < c->nr && off < payload_len + sizeof(tail); i++) {
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

static void userspace_req_queue(struct viommu *vi)
{
	struct vq *q = &vi->dev->vqs[0];
	bool added = false;
	struct chain c;
	int ret;

	while (vi->started && (ret = vq_pop(&gpa_dma, q, &c)) != 0) {
		if (ret < 0) {
			vmm_log("request queue: bad chain (%d): queue stopped",
				ret);
			q->ready = false;
			break;
		}
		vq_push(&gpa_dma, q, c.head, userspace_serve(vi, &c));
		added = true;
	}
	if (added && vq_wants_irq(&gpa_dma, q))
		vdev_irq(vi->dev);
}

/* ---- vhost: the slow-path channel ---- */

static void vhost_serve_channel(struct viommu *vi)
{
	struct {
		struct vhost_iommu_resp_msg hdr;
		uint8_t payload[PROBE_SIZE];
	} resp;
	struct vhost_iommu_req_msg msg;
	uint32_t payload_len;
	ssize_t ret;

	/* A bounded batch: the vCPU thread may want the lock too */
	for (int n = 0; n < 64; n++) {
		ret = read(vi->vhost_fd, &msg, sizeof(msg));
		if (ret < 0) {
			if (errno != EAGAIN)
				vmm_log("channel read: %s", strerror(errno));
			return;
		}
		if (ret != sizeof(msg) || msg.version != VHOST_IOMMU_MSG_VERSION ||
		    msg.type != VHOST_IOMMU_MSG_REQUEST)
			die("channel: unexpected message (%zd bytes)", ret);
		vi->nr_forwarded++;
		memset(&resp.hdr, 0, sizeof(resp.hdr));
		resp.hdr.status = viommu_request(vi, msg.req,
						 msg.req_len, msg.resp_len,
						 resp.payload, &payload_len);
		resp.hdr.size = sizeof(resp.hdr);
		resp.hdr.version = VHOST_IOMMU_MSG_VERSION;
		resp.hdr.type = VHOST_IOMMU_MSG_RESPONSE;
		resp.hdr.cookie = msg.cookie;
		resp.hdr.payload_len = payload_len;
		ret = write(vi->vhost_fd, &resp, sizeof(resp.hdr) + payload_len);
		if (ret != (ssize_t)(sizeof(resp.hdr) + payload_len))
			vmm_log("channel write: %s", strerror(errno));
		else
			vi->nr_answered++;
	}
}

static void vhost_ioctl(struct viommu *vi, unsigned long req, void *arg,
			const char *name)
{
	if (ioctl(vi->vhost_fd, req, arg))
		die("%s: %s", name, strerror(errno));
}

/* A guest's ring layout the kernel refuses: the device needs a reset */
static bool vhost_try(struct viommu *vi, unsigned long req, void *arg,
		      const char *name)
{
	if (!ioctl(vi->vhost_fd, req, arg))
		return true;
	vmm_log("%s: %s: virtio-iommu needs a reset", name, strerror(errno));
	vi->dev->status |= VIRTIO_STAT_NEEDS_RESET;
	return false;
}

/* DRIVER_OK: hand the two queues to the kernel. Under the lock. */
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
	struct vhost_iommu_running run = { .size = sizeof(run), .running = 1 };
	uint64_t features = vi->dev->driver_features;

	if (!vi->vhost_owned) {
		vhost_ioctl(vi, VHOST_SET_OWNER, NULL, "VHOST_SET_OWNER");
		vi->vhost_owned = true;
	}
	if (!vhost_try(vi, VHOST_SET_FEATURES, &features, "SET_FEATURES"))
		return;
	vhost_ioctl(vi, VHOST_SET_MEM_TABLE, &table, "VHOST_SET_MEM_TABLE");
	for (unsigned int i = 0; i < VQ_MAX; i++) {
		struct vq *q = &vi->dev->vqs[i];
		struct vhost_vring_state state = { .index = i, .num = q->num };
		struct vhost_vring_addr addr = {
			.index = i,
			.desc_user_addr = (uintptr_t)gpa_to_hva(vm, q->desc,
								16 * q->num),
			.avail_user_addr = (uintptr_t)gpa_to_hva(vm, q->avail,
								 6 + 2 * q->num),
			.used_user_addr = (uintptr_t)gpa_to_hva(vm, q->used,
								6 + 8 * q->num),
		};
		struct vhost_vring_file file = { .index = i };

		if (!q->ready || !addr.desc_user_addr ||
		    !addr.avail_user_addr || !addr.used_user_addr) {
			vmm_log("queue %u not usable: virtio-iommu needs a reset",
				i);
			vi->dev->status |= VIRTIO_STAT_NEEDS_RESET;
			return;
		}
		vhost_ioctl(vi, VHOST_SET_VRING_NUM, &state, "SET_VRING_NUM");
		state.num = 0;
		vhost_ioctl(vi, VHOST_SET_VRING_BASE, &state, "SET_VRING_BASE");
		if (!vhost_try(vi, VHOST_SET_VRING_ADDR, &addr, "SET_VRING_ADDR"))
			return;
		file.fd = vi->kick_fd[i];
		vhost_ioctl(vi, VHOST_SET_VRING_KICK, &file, "SET_VRING_KICK");
		file.fd = vi->dev->irq_fd;
		vhost_ioctl(vi, VHOST_SET_VRING_CALL, &file, "SET_VRING_CALL");
		file.fd = vi->err_fd[i];
		vhost_ioctl(vi, VHOST_SET_VRING_ERR, &file, "SET_VRING_ERR");
	}
	if (!vhost_try(vi, VHOST_IOMMU_SET_RUNNING, &run, "SET_RUNNING"))
		return;
	vi->started = true;
}

/* ---- The device ---- */

/*
 * Count the requests of the request queue: posted by the guest (avail
 * index) and returned to it (used index). Under the lock.
 */
static void account_queue(struct viommu *vi)
{
	struct vq *q = &vi->dev->vqs[0];
	uint16_t avail, used;

	if (!vi->started || gpa_rw(vi->vm, q->avail + 2, &avail, 2, false) ||
	    gpa_rw(vi->vm, q->used + 2, &used, 2, false))
		return;
	vi->posted += avail;
	vi->returned += used;
}

/* Reset: forget every domain and mapping. Under the lock. */
static void viommu_dev_reset(struct viommu *vi)
{
	account_queue(vi);
	vi->started = false;
	if (!vi->userspace && vi->vhost_owned) {
		/* Drops pending requests, bindings and waiting faults */
		vhost_ioctl(vi, VHOST_RESET_OWNER, NULL, "VHOST_RESET_OWNER");
		vi->vhost_owned = false;
	}
	for (unsigned int i = 0; i < MAX_DOMAINS; i++)
		if (vi->doms[i].used)
			domain_free(&vi->doms[i]);
	vi->ep_dom = -1;
	vi->nr_faults = 0;
	vi->resets++;
}

static void viommu_status(struct vdev *d, uint32_t old, uint32_t status)
{
	struct viommu *vi = d->priv;

	if (!status) {
		if (old)
			viommu_dev_reset(vi);
		return;
	}
	if (!(status & VIRTIO_STAT_DRIVER_OK) ||
	    (old & VIRTIO_STAT_DRIVER_OK))
		return;
	if (vi->userspace) {
		vi->started = true;
		/* Notifications before DRIVER_OK wait in the eventfds */
		eventfd_write(vi->ctl_fd, 1);
	} else {
		vhost_start(vi);
	}
	vmm_log("virtio-iommu: driver ready (features %#llx), %s",
		(unsigned long long)d->driver_features,
		vi->userspace ? "queues served here" :
		"queues served by /dev/vhost-iommu");
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

	memset(buf, 0, len);
	if (off < sizeof(cfg) && len <= sizeof(cfg) - off)
		memcpy(buf, (uint8_t *)&cfg + off, len);
}

static const struct vdev_ops viommu_ops = {
	.cfg_read = viommu_cfg_read,
	.status = viommu_status,
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

static void *viommu_thread(void *arg)
{
	struct viommu *vi = arg;
	struct pollfd p[1 + 2 * VQ_MAX];

	for (;;) {
		unsigned int n = 0;

		p[n++] = (struct pollfd){ .fd = vi->ctl_fd, .events = POLLIN };
		if (vi->userspace) {
			for (int i = 0; i < VQ_MAX; i++)
				p[n++] = (struct pollfd){ .fd = vi->kick_fd[i],
							  .events = POLLIN };
		} else {
			p[n++] = (struct pollfd){ .fd = vi->vhost_fd,
						  .events = POLLIN };
			for (int i = 0; i < VQ_MAX; i++)
				p[n++] = (struct pollfd){ .fd = vi->err_fd[i],
							  .events = POLLIN };
		}
		if (poll(p, n, -1) < 0) {
			if (errno == EINTR)
				continue;
			die("poll: %s", strerror(errno));
		}
		if (p[0].revents)
			drain(vi->ctl_fd);
		pthread_mutex_lock(&vi->lock);
		if (vi->quit) {
			pthread_mutex_unlock(&vi->lock);
			return NULL;
		}
		if (vi->userspace) {
			if (p[1].revents)
				drain(vi->kick_fd[0]);
			if (p[2].revents)
				drain(vi->kick_fd[1]);
			/* After a wakeup (start) too: kicks may predate it */
			userspace_req_queue(vi);
			userspace_flush_faults(vi);
		} else {
			if (p[1].revents & POLLIN)
				vhost_serve_channel(vi);
			for (int i = 0; i < VQ_MAX; i++) {
				if (p[2 + i].revents) {
					drain(vi->err_fd[i]);
					vmm_log("vhost: error on queue %d", i);
				}
			}
		}
		pthread_mutex_unlock(&vi->lock);
	}
}

void viommu_create(struct vm *vm, const struct viommu_opts *opts)
{
	struct viommu *vi = &viommu;
	struct vhost_iommu_info info = { .size = sizeof(info) };
	uint64_t offered;

	vi->vm = vm;
	gpa_dma.ctx = vm;
	vi->dev = &vm->viommu_dev;
	vi->userspace = opts->userspace;
	vi->ep_dom = -1;
	vi->vhost_fd = -1;
	pthread_mutex_init(&vi->lock, NULL);
	vdev_init(vi->dev, vm, "virtio-iommu", VIRTIO_MMIO_BASE, VIOMMU_SPI,
		  VIOMMU_DEVICE_ID, VIOMMU_FEATURES, VQ_MAX, &viommu_ops, vi);
	vi->dev->int_always = true;
	vi->ctl_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (vi->ctl_fd < 0)
		die("eventfd: %s", strerror(errno));

	/* The queue notifications never exit to us: one ioeventfd each */
	for (unsigned int i = 0; i < VQ_MAX; i++) {
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
		if (ioctl(vm->vm_fd, KVM_IOEVENTFD, &ioev))
			die("KVM_IOEVENTFD: %s", strerror(errno));
	}

	if (!vi->userspace) {
		vi->vhost_fd = open("/dev/vhost-iommu",
				    O_RDWR | O_NONBLOCK | O_CLOEXEC);
		if (vi->vhost_fd < 0)
			die("/dev/vhost-iommu: %s", strerror(errno));
		vhost_ioctl(vi, VHOST_SET_OWNER, NULL, "VHOST_SET_OWNER");
		vi->vhost_owned = true;
		vhost_ioctl(vi, VHOST_GET_FEATURES, &offered,
			    "VHOST_GET_FEATURES");
		/* Offer the guest what both the kernel and this VMM do */
		vi->dev->features &= offered;
		vhost_ioctl(vi, VHOST_IOMMU_GET_INFO, &info,
			    "VHOST_IOMMU_GET_INFO");
		if (info.out_channel_version != VHOST_IOMMU_MSG_VERSION ||
		    info.out_req_msg_size != sizeof(struct vhost_iommu_req_msg) ||
		    info.out_resp_payload_max < PROBE_SIZE)
			die("unexpected vhost-iommu channel (version %u)",
			    info.out_channel_version);
	}
	if (pthread_create(&vi->thread, NULL, viommu_thread, vi))
		die("pthread_create");
}

void viommu_destroy(struct vm *vm)
{
	struct viommu *vi = &viommu;

	pthread_mutex_lock(&vi->lock);
	vi->quit = true;
	pthread_mutex_unlock(&vi->lock);
	eventfd_write(vi->ctl_fd, 1);
	pthread_join(vi->thread, NULL);
	for (unsigned int i = 0; i < MAX_DOMAINS; i++)
		if (vi->doms[i].used)
			domain_free(&vi->doms[i]);
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
	vmm_log("virtio-iommu requests (%s):", vi->userspace ?
		"served by the VMM from the queue" :
		"forwarded by /dev/vhost-iommu to the VMM");
	for (unsigned int t = 1; t <= NR_TYPES; t++) {
		if (!vi->nr_req[t])
			continue;
		vmm_log("  %-10s %10llu  (%llu failed)", type_names[t],
			(unsigned long long)vi->nr_req[t],
			(unsigned long long)vi->nr_fail[t]);
		total += vi->nr_req[t];
	}
	vmm_log("  total      %10llu", (unsigned long long)total);
	if (!vi->userspace)
		vmm_log("channel: %llu read, %llu answered",
			(unsigned long long)vi->nr_forwarded,
			(unsigned long long)vi->nr_answered);
	else
		vmm_log("queue: %llu unparseable", (unsigned long long)
			vi->nr_unparseable);
	for (unsigned int i = 0; i < MAX_DOMAINS; i++)
		maps += vi->doms[i].nr_maps;
	vmm_log("mappings: %llu now, at most %llu in a domain; endpoint %u in domain %d",
		(unsigned long long)maps,
		(unsigned long long)vi->maps_max, RNG_ENDPOINT, vi->ep_dom);
	vmm_log("endpoint DMA through the mappings: %llu bytes read, %llu bytes written",
		(unsigned long long)vi->bytes_read,
		(unsigned long long)vi->bytes_written);
	vmm_log("faults: %llu reported, %llu lost; device resets: %llu",
		(unsigned long long)vi->faults_reported,
		(unsigned long long)vi->faults_lost,
		(unsigned long long)vi->resets);
	pthread_mutex_unlock(&vi->lock);
}
