// SPDX-License-Identifier: GPL-2.0
/*
 * vhost-iommu, step by step, on the emulated nesting SMMUv3.
 *
 * One process plays three parts:
 *  - the VMM: sets up iommufd (IOAS for the guest RAM, S2 nest parent,
 *    vIOMMU, vDEVICE) for the edu device, opens /dev/vhost-iommu, hands it
 *    the virtqueues and the iommufd, and serves the slow path in a thread:
 *    it turns the guest's ATTACH_TABLE into a nested HWPT, attaches the
 *    device and tells vhost-iommu which vIOMMU backs the domain;
 *  - the guest: writes its stage-1 tables, sends ATTACH_TABLE and
 *    INVALIDATE requests on the virtio-iommu request queue, and changes
 *    its page tables;
 *  - the device: edu DMA through the nested translation shows where each
 *    access lands.
 * It exits non-zero if anything does not happen as told.
 */
#include <endian.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "nested_smmu_lib.h"
#include "vhost_iommu_lib.h"

#define VSID		0x10
#define EP		8
#define DOMAIN		1
#define ASID		0x42
#define BATCH		64
#define TIMEOUT_MS	5000
#define BIT64(n)	(1ULL << (n))
#define FEATURES	(BIT64(VIRTIO_F_VERSION_1) | BIT64(VIRTIO_IOMMU_F_ATTACH_TABLE))

static struct nested_smmu n;
static struct vi_dev d;
static int vmm_stop;
static unsigned int forwarded[16], sent[16];
static int failures;

static void say(const char *who, const char *fmt, ...)
{
	va_list ap;

	printf("%-7s ", who);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

static void check(bool ok, const char *what)
{
	if (!ok) {
		failures++;
		say("ERROR", "%s", what);
	}
}

static int dma(const char *why, int expect)
{
	int page = nsmmu_probe(&n, NSMMU_VA_X);

	say("device", "edu DMA to VA 0x%llx lands in %s%s%s",
	    (unsigned long long)NSMMU_VA_X, nsmmu_page_name(page), why ? " - " : "",
	    why ? why : "");
	check(page == expect, "DMA did not land where expected");
	return page;
}

/* The VMM's slow path: requests the kernel forwards through the channel */
static int vmm_serve(const struct vhost_iommu_req_msg *msg)
{
	const struct virtio_iommu_req_attach_table_arm_smmu3 *at = (const void *)msg->req;
	struct vhost_iommu_domain dom = { .size = sizeof(dom) };
	struct vhost_iommu_endpoint ep = { .size = sizeof(ep) };
	uint64_t ste[2];
	uint8_t type = msg->req[0];

	forwarded[type & 15]++;
	if (type != VIRTIO_IOMMU_T_ATTACH_TABLE) {
		say("VMM", "request type %u forwarded: not served here -> S_UNSUPP", type);
		return VIRTIO_IOMMU_S_UNSUPP;
	}
	if (at->format != VIRTIO_IOMMU_ATTACH_TABLE_ARM_SMMU3 ||
	    le32toh(at->endpoint) != EP)
		return VIRTIO_IOMMU_S_INVAL;
	ste[0] = le64toh(at->ste0);
	ste[1] = le64toh(at->ste1);
	say("VMM", "ATTACH_TABLE endpoint %u domain %u STE %#018llx %#018llx (forwarded)",
	    le32toh(at->endpoint), le32toh(at->domain),
	    (unsigned long long)ste[0], (unsigned long long)ste[1]);
	if (nsmmu_attach_ste(&n, ste)) {
		say("VMM", "%s", n.err);
		return VIRTIO_IOMMU_S_DEVERR;
	}
	say("VMM", "  nested HWPT %u on vIOMMU %u from the guest's STE, device attached",
	    n.nested_hwpt_id, n.viommu_id);
	dom.domain = le32toh(at->domain);
	dom.viommu_id = n.viommu_id;
	ep.endpoint = EP;
	ep.domain = dom.domain;
	ep.dev_id = n.edu.dev_id;
	ep.vdev_id = n.vsid;
	if (ioctl(d.fd, VHOST_IOMMU_SET_DOMAIN, &dom) ||
	    ioctl(d.fd, VHOST_IOMMU_SET_ENDPOINT, &ep)) {
		say("VMM", "binding the domain: %s", strerror(errno));
		return VIRTIO_IOMMU_S_DEVERR;
	}
	say("VMM", "  SET_DOMAIN %u -> vIOMMU %u, SET_ENDPOINT %u -> vSID %#x",
	    dom.domain, n.viommu_id, EP, n.vsid);
	say("VMM", "  from now on the domain's INVALIDATEs stay in the kernel");
	return VIRTIO_IOMMU_S_OK;
}

static void *vmm_thread(void *arg)
{
	struct vhost_iommu_req_msg msg;

	(void)arg;
	while (!__atomic_load_n(&vmm_stop, __ATOMIC_ACQUIRE)) {
		if (vi_read_msg(&d, &msg, 100) <= 0)
			continue;
		if (vi_answer(&d, msg.cookie, vmm_serve(&msg), NULL, 0))
			say("VMM", "answer failed: %s", strerror(errno));
	}
	return NULL;
}

/* The guest posts @count INVALIDATEs (one kick) and waits for them all */
static int guest_invalidate(uint8_t scope, uint8_t caches, uint16_t flags,
			    uint64_t address, unsigned int count)
{
	struct virtio_iommu_req_tail *tails[BATCH];
	unsigned int i, done = 0, ok = 0;
	uint32_t id, len;

	for (i = 0; i < count; i++) {
		struct virtio_iommu_req_invalidate *req = vi_alloc(&d, sizeof(*req));

		tails[i] = vi_alloc(&d, sizeof(*tails[i]));
		memset(req, 0, sizeof(*req));
		req->head.type = VIRTIO_IOMMU_T_INVALIDATE;
		req->scope = scope;
		req->caches = caches;
		req->flags = htole16(flags);
		req->domain = htole32(DOMAIN);
		req->id = htole64(ASID);
		req->address = htole64(address);
		req->nr_pages = htole64(1);
		req->page_size = 12;
		tails[i]->status = 0xff;
		if (vi_post_req(&d, req, offsetof(typeof(*req), tail), tails[i],
				sizeof(*tails[i])) < 0)
			return -ENOSPC;
	}
	sent[VIRTIO_IOMMU_T_INVALIDATE] += count;
	vi_kick(&d, VI_REQ_VQ);
	while (done < count) {
		if (vi_get_used(&d, VI_REQ_VQ, &id, &len, TIMEOUT_MS))
			return -ETIMEDOUT;
		done++;
	}
	for (i = 0; i < count; i++)
		ok += tails[i]->status == VIRTIO_IOMMU_S_OK;
	return ok == count ? 0 : -EIO;
}

static int guest_attach_table(void)
{
	struct virtio_iommu_req_attach_table_arm_smmu3 *req = vi_alloc(&d, sizeof(*req));
	struct virtio_iommu_req_tail *tail = vi_alloc(&d, sizeof(*tail));
	uint64_t ste[2];
	uint32_t id, len;

	memset(req, 0, sizeof(*req));
	nsmmu_guest_ste(&n, ste);
	req->head.type = VIRTIO_IOMMU_T_ATTACH_TABLE;
	req->domain = htole32(DOMAIN);
	req->endpoint = htole32(EP);
	req->format = VIRTIO_IOMMU_ATTACH_TABLE_ARM_SMMU3;
	req->ste0 = htole64(ste[0]);
	req->ste1 = htole64(ste[1]);
	tail->status = 0xff;
	say("guest", "ATTACH_TABLE endpoint %u domain %u, STE -> CD at IPA %#llx (ASID %#x)",
	    EP, DOMAIN, (unsigned long long)nsmmu_ipa(NSMMU_PG_CD), ASID);
	if (vi_post_req(&d, req, offsetof(typeof(*req), tail), tail, sizeof(*tail)) < 0)
		return -ENOSPC;
	sent[VIRTIO_IOMMU_T_ATTACH_TABLE]++;
	vi_kick(&d, VI_REQ_VQ);
	if (vi_get_used(&d, VI_REQ_VQ, &id, &len, TIMEOUT_MS))
		return -ETIMEDOUT;
	say("guest", "ATTACH_TABLE completed with status %u", tail->status);
	return tail->status == VIRTIO_IOMMU_S_OK ? 0 : -EIO;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(void)
{
	struct vhost_iommu_iommufd fd = { .size = sizeof(fd) };
	unsigned int in_kernel;
	pthread_t vmm;
	double t;
	int ret;

	setvbuf(stdout, NULL, _IOLBF, 0);
	say("VMM", "iommufd: bind edu (vfio cdev), IOAS with 64 KiB of guest RAM at IPA %#llx,",
	    (unsigned long long)NSMMU_IPA_BASE);
	say("VMM", "  S2 nest-parent HWPT, vIOMMU (ARM SMMUv3), vDEVICE vSID %#x", VSID);
	ret = nsmmu_setup_host(&n, 0, VSID);
	if (ret) {
		say("ERROR", "%s", n.err);
		return 1;
	}
	say("VMM", "  edu %s: iommufd device %u, vIOMMU %u, SMMU IDR0 %#x IDR3 %#x",
	    n.edu.bdf, n.edu.dev_id, n.viommu_id, n.hw.idr[0], n.hw.idr[3]);
	ret = vi_open(&d);
	if (!ret)
		ret = vi_setup(&d, FEATURES, 256);
	fd.iommufd = n.iommufd;
	if (!ret && ioctl(d.fd, VHOST_IOMMU_SET_IOMMUFD, &fd))
		ret = -errno;
	if (ret) {
		say("ERROR", "vhost-iommu setup: %s", strerror(-ret));
		return 1;
	}
	say("VMM", "/dev/vhost-iommu: features, owner, memory table, vrings, iommufd, running");
	pthread_create(&vmm, NULL, vmm_thread, NULL);

	say("guest", "stage-1 tables in guest RAM: VA %#llx -> page A",
	    (unsigned long long)NSMMU_VA_X);
	check(guest_attach_table() == 0, "ATTACH_TABLE failed");
	dma("as the tables say", NSMMU_PG_A);

	say("guest", "changes the PTE of VA %#llx to page B, no invalidation yet",
	    (unsigned long long)NSMMU_VA_X);
	nsmmu_map(&n, NSMMU_VA_X, NSMMU_PG_B);
	dma("the SMMU still uses its stale IOTLB entry", NSMMU_PG_A);
	say("guest", "INVALIDATE scope ADDRESS, caches TLB, ASID %#x, VA %#llx, 1 page", ASID,
	    (unsigned long long)NSMMU_VA_X);
	check(guest_invalidate(VIRTIO_IOMMU_INVAL_S_ADDRESS, VIRTIO_IOMMU_INVAL_C_TLB,
			       VIRTIO_IOMMU_INVAL_F_ID, NSMMU_VA_X, 1) == 0, "INVALIDATE failed");
	say("kernel", "served it: virtio entry -> iommufd -> arm-smmu-v3 -> TLBI_NH_VA + CMD_SYNC");
	dma("after the INVALIDATE", NSMMU_PG_B);

	say("guest", "points VA %#llx back to page A, then %d domain-wide INVALIDATEs, one kick",
	    (unsigned long long)NSMMU_VA_X, BATCH);
	nsmmu_map(&n, NSMMU_VA_X, NSMMU_PG_A);
	dma("stale again", NSMMU_PG_B);
	t = now();
	check(guest_invalidate(VIRTIO_IOMMU_INVAL_S_DOMAIN, VIRTIO_IOMMU_INVAL_C_TLB |
			       VIRTIO_IOMMU_INVAL_C_PASID, 0, 0, BATCH) == 0,
	      "batched INVALIDATEs failed");
	say("kernel", "served %d INVALIDATEs of one kick in one driver call (%.1f ms, TCG)",
	    BATCH, (now() - t) * 1e3);
	dma("after the domain-wide INVALIDATE", NSMMU_PG_A);

	__atomic_store_n(&vmm_stop, 1, __ATOMIC_RELEASE);
	pthread_join(vmm, NULL);
	in_kernel = sent[VIRTIO_IOMMU_T_INVALIDATE] - forwarded[VIRTIO_IOMMU_T_INVALIDATE];
	printf("\nwhat went where:\n");
	printf("  %-14s %6s %16s %16s\n", "request", "sent", "to the VMM", "in the kernel");
	printf("  %-14s %6u %16u %16u\n", "ATTACH_TABLE", sent[VIRTIO_IOMMU_T_ATTACH_TABLE],
	       forwarded[VIRTIO_IOMMU_T_ATTACH_TABLE],
	       sent[VIRTIO_IOMMU_T_ATTACH_TABLE] - forwarded[VIRTIO_IOMMU_T_ATTACH_TABLE]);
	printf("  %-14s %6u %16u %16u\n", "INVALIDATE", sent[VIRTIO_IOMMU_T_INVALIDATE],
	       forwarded[VIRTIO_IOMMU_T_INVALIDATE], in_kernel);
	check(forwarded[VIRTIO_IOMMU_T_ATTACH_TABLE] == 1, "ATTACH_TABLE did not reach the VMM");
	check(forwarded[VIRTIO_IOMMU_T_INVALIDATE] == 0, "an INVALIDATE reached the VMM");

	vi_close(&d);
	nsmmu_teardown(&n);
	if (failures)
		printf("\ndemo FAILED\n");
	else
		printf("\ndemo passed: DMA followed the tables, INVALIDATEs stayed in the kernel\n");
	return failures ? 1 : 0;
}
