// SPDX-License-Identifier: GPL-2.0
/*
 * vhost-iommu v2, step by step: the INVALIDATE fast path on the emulated
 * nesting SMMUv3.
 *
 * One process plays three parts:
 *  - the VMM: sets up iommufd (IOAS for the guest RAM, S2 nest parent,
 *    vIOMMU, vDEVICE) for the edu device, turns the guest's STE (what its
 *    ATTACH_TABLE on the request queue carries; the VMM serves that queue
 *    itself) into a nested HWPT, then binds the iommufd, the domain and the
 *    endpoint to /dev/vhost-iommu and hands it one invalidation queue;
 *  - the guest: writes its stage-1 tables, changes a PTE, and posts
 *    virtio-iommu INVALIDATE requests on the invalidation queue;
 *  - the device: edu DMA through the nested translation shows where each
 *    access lands (nested_smmu_lib.h).
 * Where it can, it counts the kernel's calls to iommufd with the
 * vhost_iommu:vhost_iommu_invalidate tracepoint.
 * It exits non-zero if any step does not behave as told.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../kselftest.h"
#include "nested_smmu_lib.h"
#include "vhost_iommu_utils.h"

#define VSID		0x10
#define EP		8
#define DOMAIN		1
#define ASID		0x42
#define RING		64
#define BATCH		16
#define TIMEOUT_MS	5000
#define IQ		VI_INVALQ(0)

static struct nested_smmu n;
static struct vi_dev d;
static int failures;
static unsigned int posted, completed, completed_ok;

/* The tracepoint, if tracefs is there: its directory, or NULL */
static const char *tracing;
static const char *const tracing_dirs[] = {
	"/sys/kernel/tracing", "/sys/kernel/debug/tracing",
};

#define TP_DIR "events/vhost_iommu/vhost_iommu_invalidate"

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

static bool check(bool ok, const char *what)
{
	if (!ok) {
		failures++;
		say("ERROR", "%s", what);
	}
	return ok;
}

static const char *status_name(int s)
{
	switch (s) {
	case VIRTIO_IOMMU_S_OK:		return "S_OK";
	case VIRTIO_IOMMU_S_IOERR:	return "S_IOERR";
	case VIRTIO_IOMMU_S_UNSUPP:	return "S_UNSUPP";
	case VIRTIO_IOMMU_S_DEVERR:	return "S_DEVERR";
	case VIRTIO_IOMMU_S_INVAL:	return "S_INVAL";
	case VIRTIO_IOMMU_S_RANGE:	return "S_RANGE";
	case VIRTIO_IOMMU_S_NOENT:	return "S_NOENT";
	case VIRTIO_IOMMU_S_FAULT:	return "S_FAULT";
	case VIRTIO_IOMMU_S_NOMEM:	return "S_NOMEM";
	case -ETIMEDOUT:		return "no completion (timeout)";
	default:			return "?";
	}
}

static void dma(const char *why, int expect)
{
	int page = nsmmu_probe(&n, NSMMU_VA_X);

	say("device", "edu DMA to VA %#llx lands in %s%s%s",
	    (unsigned long long)NSMMU_VA_X, nsmmu_page_name(page),
	    why ? " - " : "", why ? why : "");
	if (page != expect) {
		failures++;
		say("ERROR", "DMA should have landed in %s", nsmmu_page_name(expect));
	}
}

/* tracefs: enable the invalidate tracepoint and clear the buffer */
static void trace_start(void)
{
	char path[128];
	unsigned int i;
	int fd;

	mkdir("/sys/kernel/tracing", 0755);
	mount("tracefs", "/sys/kernel/tracing", "tracefs", 0, NULL);
	for (i = 0; i < ARRAY_SIZE(tracing_dirs); i++) {
		snprintf(path, sizeof(path), "%s/" TP_DIR "/enable", tracing_dirs[i]);
		if (access(path, W_OK))
			continue;
		if (vi_write_file(path, "1"))
			continue;
		/* Opening "trace" with O_TRUNC clears the buffer */
		snprintf(path, sizeof(path), "%s/trace", tracing_dirs[i]);
		fd = open(path, O_WRONLY | O_TRUNC);
		if (fd < 0)
			continue;
		close(fd);
		tracing = tracing_dirs[i];
		return;
	}
}

/* Count the tracepoint's records since trace_start(), and disable it */
static int trace_count(unsigned int *calls, unsigned long *entries,
		       unsigned long *handled, unsigned int *errors)
{
	char path[128], line[512];
	FILE *f;

	*calls = *errors = 0;
	*entries = *handled = 0;
	if (!tracing)
		return -ENOENT;
	snprintf(path, sizeof(path), "%s/trace", tracing);
	f = fopen(path, "r");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		unsigned int vq, e, h;
		int err;
		char *p = strstr(line, "vhost_iommu_invalidate:");

		if (!p || sscanf(p, "vhost_iommu_invalidate: vq=%u entries=%u handled=%u err=%d",
				 &vq, &e, &h, &err) != 4)
			continue;
		(*calls)++;
		*entries += e;
		*handled += h;
		*errors += err != 0;
	}
	fclose(f);
	snprintf(path, sizeof(path), "%s/" TP_DIR "/enable", tracing);
	vi_write_file(path, "0");
	return 0;
}

/*
 * The guest posts @count INVALIDATEs on its invalidation queue, kicks once
 * and waits for every completion. Returns how many completed with S_OK,
 * *@status the status of the first one that did not (or S_OK).
 */
static unsigned int guest_invalidate(uint8_t scope, uint8_t caches, uint16_t flags,
				     uint64_t id, uint64_t address, uint64_t nr_pages,
				     unsigned int count, int *status, bool narrate)
{
	struct virtio_iommu_req_tail *tails[RING];
	unsigned int i, ok = 0;
	uint32_t head, len;

	*status = VIRTIO_IOMMU_S_OK;
	for (i = 0; i < count; i++) {
		struct virtio_iommu_req_invalidate *req;
		int h;

		req = vi_make_inval(&d, DOMAIN, scope, caches, flags, 0, id, address,
				    nr_pages, nr_pages ? 12 : 0);
		tails[i] = vi_alloc(&d, VI_TAIL);
		if (!req || !tails[i]) {
			*status = -ENOMEM;
			return 0;
		}
		memset(tails[i], 0xff, VI_TAIL);
		h = vi_post_req(&d, IQ, req, VI_INVAL_LEN, tails[i], VI_TAIL);
		if (h < 0) {
			*status = h;
			return 0;
		}
		posted++;
		if (narrate)
			say("guest", "  posted: desc %d (%zu+%zu bytes) on invalq 0 (vq %u)",
			    h, VI_INVAL_LEN, VI_TAIL, IQ);
	}
	vi_kick(&d, IQ);
	if (narrate)
		say("guest", "  kick (eventfd of vhost vq %u)", IQ);
	for (i = 0; i < count; i++) {
		if (vi_get_used(&d, IQ, &head, &len, TIMEOUT_MS)) {
			say("guest", "  no completion within %d ms", TIMEOUT_MS);
			*status = -ETIMEDOUT;
			return ok;
		}
		completed++;
		if (narrate)
			say("guest", "  used: descriptor %u, %u byte(s) written", head, len);
		if (len != VI_TAIL) {
			say("guest", "  used length %u, expected %zu", len, VI_TAIL);
			*status = -EIO;
		}
	}
	for (i = 0; i < count; i++) {
		if (tails[i]->status == VIRTIO_IOMMU_S_OK)
			ok++;
		else if (*status == VIRTIO_IOMMU_S_OK)
			*status = tails[i]->status;
	}
	completed_ok += ok;
	return ok;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(void)
{
	unsigned int calls, trace_errors, ok;
	unsigned long entries, handled;
	uint64_t ste[2];
	int ret, status;
	double t;

	setvbuf(stdout, NULL, _IOLBF, 0);
	d.fd = -1;
	printf("vhost-iommu v2 demo: the INVALIDATE fast path on a nested SMMUv3\n\n");

	say("VMM", "iommufd: bind edu (vfio cdev), IOAS with %d KiB of guest RAM at IPA %#llx,",
	    (int)(NSMMU_NR_PAGES * NSMMU_PAGE_SIZE / 1024),
	    (unsigned long long)NSMMU_IPA_BASE);
	say("VMM", "  S2 nest-parent HWPT, vIOMMU (ARM SMMUv3), vDEVICE vSID %#x", VSID);
	if (edu_count() < 1) {
		say("ERROR", "no edu device bound to vfio-pci");
		return 1;
	}
	ret = nsmmu_setup_host(&n, 0, VSID);
	if (ret) {
		say("ERROR", "%s", n.err);
		return 1;
	}
	say("VMM", "  edu %s: iommufd device %u, vIOMMU %u, vDEVICE %u, SMMU IDR0 %#x",
	    n.edu.bdf, n.edu.dev_id, n.viommu_id, n.vdevice_id, n.hw.idr[0]);

	say("guest", "stage-1 tables in guest RAM: CD at IPA %#llx (ASID %#x), VA %#llx -> page A",
	    (unsigned long long)nsmmu_ipa(NSMMU_PG_CD), ASID, (unsigned long long)NSMMU_VA_X);
	nsmmu_guest_ste(&n, ste);
	say("guest", "ATTACH_TABLE endpoint %u domain %u on the request queue (served by the VMM)",
	    EP, DOMAIN);
	say("VMM", "  guest STE %#018llx %#018llx -> nested HWPT, device attached",
	    (unsigned long long)ste[0], (unsigned long long)ste[1]);
	ret = nsmmu_attach_ste(&n, ste);
	if (ret) {
		say("ERROR", "%s", n.err);
		nsmmu_teardown(&n);
		return 1;
	}
	say("VMM", "  nested HWPT %u on vIOMMU %u", n.nested_hwpt_id, n.viommu_id);

	ret = vi_open(&d);
	if (ret) {
		say("ERROR", "open /dev/vhost-iommu: %s", strerror(-ret));
		nsmmu_teardown(&n);
		return 1;
	}
	say("VMM", "/dev/vhost-iommu: features %#llx (VERSION_1, ATTACH_TABLE, INVALQ),",
	    (unsigned long long)VI_FEATURES);
	say("VMM", "  mem table, page-request queue (vq 0), invalq (vq 1), running");
	ret = vi_setup(&d, VI_FEATURES, RING, 1);
	if (!ret) {
		ret = vi_set_iommufd(d.fd, n.iommufd, 0);
		if (!ret)
			say("VMM", "  VHOST_IOMMU_SET_IOMMUFD fd %d", n.iommufd);
	}
	if (!ret) {
		ret = vi_set_domain(d.fd, 0, DOMAIN, n.viommu_id);
		if (!ret)
			say("VMM", "  VHOST_IOMMU_SET_DOMAIN domain %u -> vIOMMU %u",
			    DOMAIN, n.viommu_id);
	}
	if (!ret) {
		ret = vi_set_endpoint(d.fd, 0, EP, DOMAIN, n.edu.dev_id, n.vsid);
		if (!ret)
			say("VMM", "  SET_ENDPOINT endpoint %u domain %u -> device %u, vSID %#x",
			    EP, DOMAIN, n.edu.dev_id, n.vsid);
	}
	if (ret) {
		say("ERROR", "vhost-iommu setup: %s", strerror(-ret));
		vi_close(&d);
		nsmmu_teardown(&n);
		return 1;
	}
	say("VMM", "  from now on the domain's INVALIDATEs are served in the kernel");
	trace_start();
	if (tracing)
		say("VMM", "  tracing vhost_iommu:vhost_iommu_invalidate (%s)", tracing);
	else
		say("VMM", "  (no tracefs: counting completions only)");

	printf("\n");
	dma("as the tables say", NSMMU_PG_A);
	say("guest", "changes the PTE of VA %#llx to page B, no invalidation yet",
	    (unsigned long long)NSMMU_VA_X);
	nsmmu_map(&n, NSMMU_VA_X, NSMMU_PG_B);
	dma("the SMMU still uses its stale IOTLB entry", NSMMU_PG_A);

	printf("\n");
	say("guest", "INVALIDATE scope ADDRESS, caches TLB, flags ID, ASID %#x, VA %#llx, 1 page",
	    ASID, (unsigned long long)NSMMU_VA_X);
	ok = guest_invalidate(VIRTIO_IOMMU_INVAL_S_ADDRESS, VIRTIO_IOMMU_INVAL_C_TLB,
			      VIRTIO_IOMMU_INVAL_F_ID, ASID, NSMMU_VA_X, 1, 1, &status, true);
	say("guest", "  completion status %u (%s)", status < 0 ? 0xff : status,
	    status_name(status));
	check(ok == 1 && status == VIRTIO_IOMMU_S_OK, "the INVALIDATE did not complete with S_OK");
	say("kernel", "served it: virtio entry -> iommufd -> arm-smmu-v3 -> TLBI_NH_VA + CMD_SYNC");
	dma("after the INVALIDATE", NSMMU_PG_B);

	printf("\n");
	say("guest", "negative control: PTE of VA %#llx to page C, INVALIDATE of VA %#llx instead",
	    (unsigned long long)NSMMU_VA_X, (unsigned long long)NSMMU_VA_Y);
	nsmmu_map(&n, NSMMU_VA_X, NSMMU_PG_C);
	ok = guest_invalidate(VIRTIO_IOMMU_INVAL_S_ADDRESS, VIRTIO_IOMMU_INVAL_C_TLB,
			      VIRTIO_IOMMU_INVAL_F_ID, ASID, NSMMU_VA_Y, 1, 1, &status, false);
	say("guest", "  completion status %u (%s)", status < 0 ? 0xff : status,
	    status_name(status));
	check(ok == 1 && status == VIRTIO_IOMMU_S_OK, "the INVALIDATE did not complete with S_OK");
	dma("another address was invalidated: still stale", NSMMU_PG_B);
	say("guest", "INVALIDATE of VA %#llx", (unsigned long long)NSMMU_VA_X);
	ok = guest_invalidate(VIRTIO_IOMMU_INVAL_S_ADDRESS, VIRTIO_IOMMU_INVAL_C_TLB,
			      VIRTIO_IOMMU_INVAL_F_ID, ASID, NSMMU_VA_X, 1, 1, &status, false);
	say("guest", "  completion status %u (%s)", status < 0 ? 0xff : status,
	    status_name(status));
	check(ok == 1 && status == VIRTIO_IOMMU_S_OK, "the INVALIDATE did not complete with S_OK");
	dma("the right address: follows the tables", NSMMU_PG_C);

	printf("\n");
	say("guest", "points VA %#llx back to page A, then %d domain-wide INVALIDATEs, one kick",
	    (unsigned long long)NSMMU_VA_X, BATCH);
	nsmmu_map(&n, NSMMU_VA_X, NSMMU_PG_A);
	dma("stale again", NSMMU_PG_C);
	t = now();
	ok = guest_invalidate(VIRTIO_IOMMU_INVAL_S_DOMAIN, VIRTIO_IOMMU_INVAL_C_TLB |
			      VIRTIO_IOMMU_INVAL_C_PASID, 0, 0, 0, 0, BATCH, &status, false);
	say("guest", "  %u of %d completed with S_OK (%.1f ms, TCG)", ok, BATCH,
	    (now() - t) * 1e3);
	check(ok == BATCH, "not every INVALIDATE of the batch completed with S_OK");
	dma("after the domain-wide INVALIDATEs", NSMMU_PG_A);

	ret = trace_count(&calls, &entries, &handled, &trace_errors);
	vi_close(&d);
	nsmmu_teardown(&n);

	printf("\ncounts:\n");
	printf("  INVALIDATE requests posted by the guest      %u\n", posted);
	printf("  completed by the kernel (used entries)       %u\n", completed);
	printf("  completed with S_OK                          %u\n", completed_ok);
	if (!ret) {
		printf("  iommufd calls (vhost_iommu_invalidate)       %u\n", calls);
		printf("  iommufd entries passed / handled             %lu / %lu\n",
		       entries, handled);
		printf("  iommufd calls that failed                    %u\n", trace_errors);
		/* One kick, one worker pass: fewer calls than requests */
		check(calls >= 1 && calls <= posted, "unexpected number of iommufd calls");
		check(trace_errors == 0, "an iommufd call failed");
		check(handled == entries, "iommufd did not handle every entry");
	} else {
		printf("  iommufd calls                  (tracepoint not readable: %s)\n",
		       strerror(-ret));
	}
	check(completed == posted && completed_ok == posted,
	      "not every INVALIDATE completed with S_OK");

	if (failures)
		printf("\ndemo FAILED (%d step(s) did not behave)\n", failures);
	else
		printf("\ndemo passed: DMA followed the tables once the kernel invalidated\n");
	return failures ? 1 : 0;
}
