// SPDX-License-Identifier: GPL-2.0
/*
 * DMA of QEMU's edu device through vfio-pci and an iommufd IOAS, as any
 * VFIO user makes it: the device is attached to an IOAS, buffers of this
 * process are mapped at fixed IOVAs (IOMMU_IOAS_MAP) and unmapped again
 * (IOMMU_IOAS_UNMAP), and the DMA must land where the IOAS says: in the
 * buffer mapped at the IOVA, in the new buffer after a remap, and nowhere
 * once the IOVA is unmapped, in both directions.
 *
 * The same static binary runs in the test VM, on QEMU's SMMUv3, and in the
 * inner guest of vhost-iommu-vmm with an edu assigned to it (guest_init.sh,
 * "guest.edu=ARGS"): there the IOMMU is the guest's virtio-iommu, whose MAP
 * and UNMAP the VMM turns into IOAS maps of the test VM's SMMUv3, and the
 * guest's kernel needs iommufd.allow_unsafe_interrupts=1 (no MSI controller).
 *
 * Options, before the harness's own (-t, -f, ...):
 *   --bdf BDF       the edu to use (default: the first one; env EDU_BDF). An
 *                   edu that no driver has is bound to vfio-pci.
 *   --expect-stale  the negative control of a VMM that drops UNMAP (env
 *                   EDU_EXPECT_STALE=1): every "nothing lands after the
 *                   unmap" check is inverted and passes only if the DMA
 *                   still lands in the buffer that was mapped last. Where
 *                   UNMAP works, those checks then fail. Only those checks
 *                   change: e.g. "--expect-stale -t unmapped_dma".
 *   --skip-unmap    test-only: leave out the IOMMU_IOAS_UNMAP before each
 *                   of those checks, as such a VMM would (env
 *                   EDU_SKIP_UNMAP=1): the negative control of the checks
 *                   where UNMAP works. Alone, those checks fail; with
 *                   --expect-stale, they pass.
 *
 * edu DMAs between its 4 KiB buffer and a bus address below 256 MiB (28-bit
 * mask); the IOVAs here stay below it and away from the MSI window
 * (0x08000000-0x080fffff). Each DMA takes ~100 ms of virtual time.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <linux/iommufd.h>
#include <linux/vfio.h>

#include "../kselftest_harness.h"
#include "edu_lib.h"

#define PAGE		4096UL
#define SZ_1M		0x100000UL
#define SZ_2M		0x200000UL
/*
 * A DMA that the IOMMU should refuse is this short: QEMU's SMMUv3 reports
 * one fault per 4-byte access of a refused transfer.
 */
#define SHORT		64U

/* IOVAs: below 256 MiB, outside the MSI window */
#define IOVA_X		0x100000ULL	/* the IOVA under test: A, then B, then nothing */
#define IOVA_SRC	0x200000ULL	/* source page: RAM -> device buffer */
#define IOVA_CHK	0x300000ULL	/* check page: device buffer -> RAM */
#define IOVA_HUGE	0x400000ULL	/* 2 MiB, 2 MiB aligned */

/* Where a pattern was found: a mask of these */
#define IN_A		1
#define IN_B		2

static const char *opt_bdf;
static bool opt_expect_stale;
static bool opt_skip_unmap;

struct edu_test {
	int iommufd;
	uint32_t ioas_id;
	struct edu_dev edu;
	char bdf[32];
	uint32_t hwpt_id;	/* the IOMMU domain the device is in */
	struct edu_dev edu2;	/* a second edu, when a test has one */
	uint8_t *pages;		/* A, B, SRC, CHK: one page each */
	uint8_t *a, *b, *src, *chk;
	uint8_t *huge;		/* the 2 MiB buffer, when a test has one */
	void *huge_map;		/* and the mapping it is in */
	size_t huge_map_len;
	uint32_t seq;
};

FIXTURE(edu) {
	struct edu_test t;
};

static uint32_t next_pattern(struct edu_test *t)
{
	t->seq++;
	return (((uint32_t)getpid() << 12) ^ (t->seq * 0x9e3779b9u)) | 1;
}

static void fill(void *p, uint32_t pattern, size_t len)
{
	uint32_t *w = p;
	size_t i;

	for (i = 0; i < len / 4; i++)
		w[i] = pattern + i;
}

static bool holds(const void *p, uint32_t pattern, size_t len)
{
	const uint32_t *w = p;
	size_t i;

	for (i = 0; i < len / 4; i++)
		if (w[i] != pattern + i)
			return false;
	return true;
}

/* Which of A and B got the first @len bytes of @pattern */
static int where(struct edu_test *t, uint32_t pattern, size_t len)
{
	return (holds(t->a, pattern, len) ? IN_A : 0) |
	       (holds(t->b, pattern, len) ? IN_B : 0);
}

static const char *where_name(int mask)
{
	static const char * const names[] = {
		"nowhere", "buffer A", "buffer B", "buffers A and B",
	};

	return names[mask & 3];
}

static int ioas_map(struct edu_test *t, void *buf, size_t len, uint64_t iova)
{
	struct iommu_ioas_map map = {
		.size = sizeof(map),
		.flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE |
			 IOMMU_IOAS_MAP_WRITEABLE,
		.ioas_id = t->ioas_id,
		.user_va = (uintptr_t)buf,
		.length = len,
		.iova = iova,
	};

	return ioctl(t->iommufd, IOMMU_IOAS_MAP, &map) ? -errno : 0;
}

/* 0 or -errno; *@unmapped (may be NULL) the bytes the IOAS unmapped */
static int ioas_unmap(struct edu_test *t, uint64_t iova, uint64_t len,
		      uint64_t *unmapped)
{
	struct iommu_ioas_unmap unmap = {
		.size = sizeof(unmap),
		.ioas_id = t->ioas_id,
		.iova = iova,
		.length = len,
	};
	int ret = ioctl(t->iommufd, IOMMU_IOAS_UNMAP, &unmap) ? -errno : 0;

	if (unmapped)
		*unmapped = ret ? 0 : unmap.length;
	return ret;
}

/*
 * Open the edu @bdf on the test's iommufd and attach it to the IOAS;
 * *@hwpt_id (may be NULL) the HWPT (the IOMMU domain) iommufd chose for it
 */
static void edu_attach(struct __test_metadata *_metadata, struct edu_test *t,
		       struct edu_dev *edu, const char *bdf, uint32_t *hwpt_id)
{
	struct vfio_device_attach_iommufd_pt attach = {
		.argsz = sizeof(attach),
		.pt_id = t->ioas_id,
	};
	int ret;

	ret = edu_open_bdf(edu, bdf, t->iommufd);
	ASSERT_EQ(0, ret) TH_LOG("open edu %s through vfio-pci: %s", bdf, strerror(-ret));
	ASSERT_EQ(0, ioctl(edu->fd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &attach))
		TH_LOG("VFIO_DEVICE_ATTACH_IOMMUFD_PT edu %s to IOAS %u: %s",
		       bdf, t->ioas_id, strerror(errno));
	if (hwpt_id)
		*hwpt_id = attach.pt_id;
}

/* A fresh iommufd and IOAS, the device attached, SRC and CHK mapped */
static void edu_up(struct __test_metadata *_metadata, struct edu_test *t)
{
	struct iommu_ioas_alloc alloc = { .size = sizeof(alloc) };
	int ret;

	t->iommufd = open("/dev/iommu", O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, t->iommufd) TH_LOG("open /dev/iommu: %s", strerror(errno));
	ASSERT_EQ(0, ioctl(t->iommufd, IOMMU_IOAS_ALLOC, &alloc))
		TH_LOG("IOMMU_IOAS_ALLOC: %s", strerror(errno));
	t->ioas_id = alloc.out_ioas_id;
	edu_attach(_metadata, t, &t->edu, t->bdf, &t->hwpt_id);
	ret = ioas_map(t, t->src, PAGE, IOVA_SRC);
	ASSERT_EQ(0, ret) TH_LOG("IOMMU_IOAS_MAP source page: %s", strerror(-ret));
	ret = ioas_map(t, t->chk, PAGE, IOVA_CHK);
	ASSERT_EQ(0, ret) TH_LOG("IOMMU_IOAS_MAP check page: %s", strerror(-ret));
}

/* Closing the devices detaches them; closing the iommufd frees its objects. */
static void edu_down(struct edu_test *t)
{
	edu_close(&t->edu);
	edu_close(&t->edu2);
	if (t->iommufd >= 0)
		close(t->iommufd);
	t->iommufd = -1;
}

FIXTURE_SETUP(edu)
{
	struct edu_test *t = &self->t;
	int ret;

	t->iommufd = -1;
	t->edu.fd = -1;
	t->edu2.fd = -1;
	if (opt_bdf) {
		snprintf(t->bdf, sizeof(t->bdf), "%s", opt_bdf);
	} else {
		ret = edu_bdf(0, t->bdf, sizeof(t->bdf));
		if (ret)
			SKIP(return, "no edu device: %s", strerror(-ret));
	}
	t->pages = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	ASSERT_NE(MAP_FAILED, t->pages);
	t->a = t->pages;
	t->b = t->pages + PAGE;
	t->src = t->pages + 2 * PAGE;
	t->chk = t->pages + 3 * PAGE;
	edu_up(_metadata, t);
}

FIXTURE_TEARDOWN(edu)
{
	struct edu_test *t = &self->t;

	edu_down(t);
	if (t->pages && t->pages != MAP_FAILED)
		munmap(t->pages, 4 * PAGE);
	if (t->huge_map)
		munmap(t->huge_map, t->huge_map_len);
}

/* @pattern into the buffer of device @edu, from the source page */
static void load_edu(struct __test_metadata *_metadata, struct edu_test *t,
		     struct edu_dev *edu, uint32_t pattern)
{
	int ret;

	fill(t->src, pattern, PAGE);
	ret = edu_dma(edu, IOVA_SRC, PAGE, false);
	ASSERT_EQ(0, ret) TH_LOG("edu %s DMA source page -> device: %s",
				 edu->bdf, strerror(-ret));
}

static void load_device(struct __test_metadata *_metadata,
			struct edu_test *t, uint32_t pattern)
{
	load_edu(_metadata, t, &t->edu, pattern);
}

/*
 * @len bytes of the buffer of device @edu -> @iova, the buffer holding
 * @pattern first
 */
static void edu_dma_to(struct __test_metadata *_metadata, struct edu_test *t,
		       struct edu_dev *edu, uint64_t iova, uint32_t pattern,
		       uint32_t len)
{
	int ret;

	load_edu(_metadata, t, edu, pattern);
	ret = edu_dma(edu, iova, len, true);
	ASSERT_EQ(0, ret) TH_LOG("edu %s DMA device -> IOVA %#llx: %s", edu->bdf,
				 (unsigned long long)iova, strerror(-ret));
}

/* The same with the test's (first) device */
static void dma_to(struct __test_metadata *_metadata, struct edu_test *t,
		   uint64_t iova, uint32_t pattern, uint32_t len)
{
	edu_dma_to(_metadata, t, &t->edu, iova, pattern, len);
}

/* @len bytes at @iova -> device buffer, then the device buffer into the check page */
static void dma_from(struct __test_metadata *_metadata, struct edu_test *t,
		     uint64_t iova, uint32_t len)
{
	int ret;

	ret = edu_dma(&t->edu, iova, len, false);
	ASSERT_EQ(0, ret) TH_LOG("edu DMA IOVA %#llx -> device: %s",
				 (unsigned long long)iova, strerror(-ret));
	memset(t->chk, 0, PAGE);
	ret = edu_dma(&t->edu, IOVA_CHK, PAGE, true);
	ASSERT_EQ(0, ret) TH_LOG("edu DMA device -> check page: %s", strerror(-ret));
}

/*
 * The one check a VMM that drops UNMAP inverts: after the unmap of @iova,
 * the DMA must not have landed (@landed false). With --expect-stale it must
 * have landed in the buffer mapped last.
 */
static void check_unmapped(struct __test_metadata *_metadata, uint64_t iova,
			   bool landed, const char *what)
{
	if (opt_expect_stale) {
		ksft_print_msg("  after IOMMU_IOAS_UNMAP of IOVA %#llx: %s (stale expected)\n",
			       (unsigned long long)iova, what);
		ASSERT_TRUE(landed)
			TH_LOG("--expect-stale: nothing stale at IOVA %#llx (%s): UNMAP was done",
			       (unsigned long long)iova, what);
	} else {
		ksft_print_msg("  after IOMMU_IOAS_UNMAP of IOVA %#llx: %s\n",
			       (unsigned long long)iova, what);
		ASSERT_FALSE(landed)
			TH_LOG("DMA at IOVA %#llx landed after IOMMU_IOAS_UNMAP: %s",
			       (unsigned long long)iova, what);
	}
}

/*
 * The unmap whose effect check_unmapped() checks. The test-only switch
 * --skip-unmap leaves it out, as a VMM that drops UNMAP does behind the
 * guest's back: the negative control of the check where UNMAP works.
 */
static void unmap_checked(struct __test_metadata *_metadata, struct edu_test *t,
			  uint64_t iova, uint64_t len)
{
	uint64_t done;
	int ret;

	if (opt_skip_unmap) {
		ksft_print_msg("  --skip-unmap: no IOMMU_IOAS_UNMAP of IOVA %#llx\n",
			       (unsigned long long)iova);
		return;
	}
	ret = ioas_unmap(t, iova, len, &done);
	ASSERT_EQ(0, ret) TH_LOG("IOMMU_IOAS_UNMAP of IOVA %#llx: %s",
				 (unsigned long long)iova, strerror(-ret));
	ASSERT_EQ(len, done);
}

/* The kernel log from now on, for kmsg_report() */
static int kmsg_open(void)
{
	int fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);

	if (fd >= 0)
		lseek(fd, 0, SEEK_END);
	return fd;
}

/* Say what the kernel logged about faults since kmsg_open(): count, first */
static void kmsg_report(int fd)
{
	char rec[1024], first[1024] = "";
	unsigned int count = 0;
	ssize_t n;
	char *msg;

	if (fd < 0)
		return;
	usleep(100000);	/* the IOMMU's fault interrupt */
	while ((n = read(fd, rec, sizeof(rec) - 1)) > 0 || (n < 0 && errno == EPIPE)) {
		if (n <= 0)
			continue;
		rec[n] = 0;
		msg = strchr(rec, ';');
		msg = msg ? msg + 1 : rec;
		msg[strcspn(msg, "\n")] = 0;
		if (!strstr(msg, "fault") && !strstr(msg, "event 0x"))
			continue;
		if (!count++)
			snprintf(first, sizeof(first), "%s", msg);
	}
	close(fd);
	if (count)
		ksft_print_msg("  kernel log: %u fault lines, the first: %s\n", count, first);
	else
		ksft_print_msg("  kernel log: no fault (or rate-limited)\n");
}

/* Device -> RAM: the pattern lands in the buffer mapped at the IOVA */
TEST_F(edu, map_dma)
{
	struct edu_test *t = &self->t;
	uint32_t p = next_pattern(t);
	int ret;

	ret = ioas_map(t, t->a, PAGE, IOVA_X);
	ASSERT_EQ(0, ret) TH_LOG("IOMMU_IOAS_MAP buffer A at %#llx: %s", IOVA_X, strerror(-ret));
	dma_to(_metadata, t, IOVA_X, p, PAGE);
	ksft_print_msg("  DMA device -> IOVA %#llx (buffer A mapped): %s\n",
		       IOVA_X, where_name(where(t, p, PAGE)));
	ASSERT_EQ(IN_A, where(t, p, PAGE))
		TH_LOG("pattern %#x DMAed to IOVA %#llx (buffer A mapped) landed in %s",
		       p, IOVA_X, where_name(where(t, p, PAGE)));
}

/* The same IOVA remapped to another buffer: the DMA follows the new map */
TEST_F(edu, remap_dma)
{
	struct edu_test *t = &self->t;
	uint32_t p1 = next_pattern(t), p2 = next_pattern(t);
	uint64_t len;
	int ret;

	ASSERT_EQ(0, ioas_map(t, t->a, PAGE, IOVA_X));
	dma_to(_metadata, t, IOVA_X, p1, PAGE);
	ASSERT_EQ(IN_A, where(t, p1, PAGE))
		TH_LOG("first DMA to IOVA %#llx (buffer A mapped) landed in %s",
		       IOVA_X, where_name(where(t, p1, PAGE)));

	ret = ioas_unmap(t, IOVA_X, PAGE, &len);
	ASSERT_EQ(0, ret) TH_LOG("IOMMU_IOAS_UNMAP %#llx: %s", IOVA_X, strerror(-ret));
	ASSERT_EQ(PAGE, len);
	ret = ioas_map(t, t->b, PAGE, IOVA_X);
	ASSERT_EQ(0, ret) TH_LOG("IOMMU_IOAS_MAP buffer B at %#llx: %s", IOVA_X, strerror(-ret));
	dma_to(_metadata, t, IOVA_X, p2, PAGE);
	ksft_print_msg("  DMA device -> IOVA %#llx (remapped from A to B): %s\n",
		       IOVA_X, where_name(where(t, p2, PAGE)));
	ASSERT_EQ(IN_B, where(t, p2, PAGE))
		TH_LOG("DMA to IOVA %#llx after the remap to buffer B landed in %s",
		       IOVA_X, where_name(where(t, p2, PAGE)));
	ASSERT_TRUE(holds(t->a, p1, PAGE))
		TH_LOG("buffer A changed after it was unmapped (it should still hold %#x)", p1);
}

/* Once unmapped, a DMA to the IOVA is refused: nothing lands in A or B */
TEST_F(edu, unmapped_dma)
{
	struct edu_test *t = &self->t;
	uint32_t p1 = next_pattern(t), p2 = next_pattern(t);
	uint32_t p3 = next_pattern(t);
	int kmsg, got;

	ASSERT_EQ(0, ioas_map(t, t->a, PAGE, IOVA_X));
	dma_to(_metadata, t, IOVA_X, p1, PAGE);
	ASSERT_EQ(IN_A, where(t, p1, PAGE))
		TH_LOG("DMA to IOVA %#llx (buffer A mapped) landed in %s",
		       IOVA_X, where_name(where(t, p1, PAGE)));
	ASSERT_EQ(0, ioas_unmap(t, IOVA_X, PAGE, NULL));
	ASSERT_EQ(0, ioas_map(t, t->b, PAGE, IOVA_X));
	dma_to(_metadata, t, IOVA_X, p2, PAGE);
	ASSERT_EQ(IN_B, where(t, p2, PAGE))
		TH_LOG("DMA to IOVA %#llx (buffer B mapped) landed in %s",
		       IOVA_X, where_name(where(t, p2, PAGE)));
	unmap_checked(_metadata, t, IOVA_X, PAGE);

	kmsg = kmsg_open();
	dma_to(_metadata, t, IOVA_X, p3, SHORT);
	kmsg_report(kmsg);
	got = where(t, p3, SHORT);
	check_unmapped(_metadata, IOVA_X, got != 0, where_name(got));
	if (opt_expect_stale) {
		ASSERT_EQ(IN_B, got)
			TH_LOG("the stale DMA landed in %s, not in buffer B (mapped last)",
			       where_name(got));
		return;
	}
	ASSERT_TRUE(holds(t->a, p1, PAGE) && holds(t->b, p2, PAGE))
		TH_LOG("buffer A or B changed after the unmap");
	ksft_print_msg("  the DMA was refused by the IOMMU: A and B unchanged\n");
}

/* RAM -> device: the device reads the buffer mapped at the IOVA, then none */
TEST_F(edu, ram_to_device)
{
	struct edu_test *t = &self->t;
	uint32_t q1 = next_pattern(t), q2 = next_pattern(t);
	uint32_t sentinel = next_pattern(t);
	static const uint8_t zeros[SHORT];
	const char *what;
	int kmsg;

	fill(t->a, q1, PAGE);
	fill(t->b, q2, PAGE);
	ASSERT_EQ(0, ioas_map(t, t->a, PAGE, IOVA_X));
	dma_from(_metadata, t, IOVA_X, PAGE);
	ksft_print_msg("  DMA IOVA %#llx (buffer A mapped) -> device: the device read %s\n",
		       IOVA_X, holds(t->chk, q1, PAGE) ? "buffer A" :
		       holds(t->chk, q2, PAGE) ? "buffer B" : "something else");
	ASSERT_TRUE(holds(t->chk, q1, PAGE))
		TH_LOG("the device did not read buffer A's bytes from IOVA %#llx", IOVA_X);

	ASSERT_EQ(0, ioas_unmap(t, IOVA_X, PAGE, NULL));
	ASSERT_EQ(0, ioas_map(t, t->b, PAGE, IOVA_X));
	dma_from(_metadata, t, IOVA_X, PAGE);
	ASSERT_TRUE(holds(t->chk, q2, PAGE))
		TH_LOG("after the remap to buffer B the device read %s from IOVA %#llx",
		       holds(t->chk, q1, PAGE) ? "buffer A (stale)" : "something else",
		       IOVA_X);
	unmap_checked(_metadata, t, IOVA_X, PAGE);

	/* A known content first, to tell "kept" from "read zeros" */
	load_device(_metadata, t, sentinel);
	kmsg = kmsg_open();
	dma_from(_metadata, t, IOVA_X, SHORT);
	kmsg_report(kmsg);
	if (holds(t->chk, q2, SHORT))
		what = "the device read buffer B";
	else if (holds(t->chk, q1, SHORT))
		what = "the device read buffer A";
	else if (holds(t->chk, sentinel, SHORT))
		what = "nothing read, the device buffer kept its bytes";
	else if (!memcmp(t->chk, zeros, SHORT))
		what = "nothing read from A or B (the device got zeros)";
	else
		what = "nothing read from A or B (the device got other bytes)";
	check_unmapped(_metadata, IOVA_X,
		       holds(t->chk, q1, SHORT) || holds(t->chk, q2, SHORT), what);
	if (opt_expect_stale)
		ASSERT_TRUE(holds(t->chk, q2, SHORT))
			TH_LOG("the stale read was not of buffer B (mapped last): %s", what);
}

/*
 * A 2 MiB buffer (a huge page when there is one) mapped at a 2 MiB IOVA:
 * DMA lands at the right offset; unmapping part of it is refused (an IOAS
 * unmaps whole mappings only: ENOENT) and leaves it mapped; the whole unmap
 * works and nothing lands after it.
 */
static long huge_where(struct edu_test *t, uint32_t pattern, size_t len)
{
	long off, found = -1;

	for (off = 0; off < (long)SZ_2M; off += PAGE) {
		if (!holds(t->huge + off, pattern, len))
			continue;
		if (found >= 0)
			return -2;
		found = off;
	}
	return found;
}

static void huge_alloc(struct __test_metadata *_metadata, struct edu_test *t)
{
	uintptr_t p;

	t->huge_map = mmap(NULL, SZ_2M, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_POPULATE, -1, 0);
	if (t->huge_map != MAP_FAILED) {
		t->huge_map_len = SZ_2M;
		t->huge = t->huge_map;
		ksft_print_msg("  2 MiB buffer: a hugetlb page\n");
		return;
	}
	ksft_print_msg("  note: no hugetlb page (%s): 2 MiB of small pages, THP if it comes\n",
		       strerror(errno));
	t->huge_map_len = 2 * SZ_2M;
	t->huge_map = mmap(NULL, t->huge_map_len, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, t->huge_map) {
		t->huge_map = NULL;
	}
	p = ((uintptr_t)t->huge_map + SZ_2M - 1) & ~(SZ_2M - 1);
	t->huge = (uint8_t *)p;
	madvise(t->huge, SZ_2M, MADV_HUGEPAGE);
	memset(t->huge, 0, SZ_2M);
}

TEST_F(edu, map_2m)
{
	static const unsigned long offs[] = { 0, SZ_1M + PAGE, SZ_2M - PAGE };
	struct edu_test *t = &self->t;
	uint64_t mid = IOVA_HUGE + SZ_1M + PAGE, len;
	unsigned int i;
	uint32_t p;
	long got;
	int ret;

	huge_alloc(_metadata, t);
	ret = ioas_map(t, t->huge, SZ_2M, IOVA_HUGE);
	ASSERT_EQ(0, ret) TH_LOG("IOMMU_IOAS_MAP 2 MiB at %#llx: %s", IOVA_HUGE, strerror(-ret));
	for (i = 0; i < ARRAY_SIZE(offs); i++) {
		p = next_pattern(t);
		dma_to(_metadata, t, IOVA_HUGE + offs[i], p, PAGE);
		got = huge_where(t, p, PAGE);
		ksft_print_msg("  DMA device -> IOVA %#llx: offset %#lx of the 2 MiB buffer\n",
			       IOVA_HUGE + offs[i], got);
		ASSERT_EQ((long)offs[i], got)
			TH_LOG("DMA to %#llx: offset %ld of the 2 MiB, not %lu (-1 none, -2 twice)",
			       IOVA_HUGE + offs[i], got, offs[i]);
	}

	ret = ioas_unmap(t, mid, PAGE, &len);
	ksft_print_msg("  IOMMU_IOAS_UNMAP of 4 KiB inside the 2 MiB mapping: %s\n",
		       ret ? strerror(-ret) : "done");
	ASSERT_EQ(-ENOENT, ret)
		TH_LOG("a partial unmap of a 2 MiB mapping returned %d (%llu bytes), not -ENOENT",
		       ret, (unsigned long long)len);
	p = next_pattern(t);
	dma_to(_metadata, t, mid, p, PAGE);
	ASSERT_EQ((long)(mid - IOVA_HUGE), huge_where(t, p, PAGE))
		TH_LOG("after the refused partial unmap, DMA to %#llx landed at offset %ld",
		       (unsigned long long)mid, huge_where(t, p, PAGE));

	unmap_checked(_metadata, t, IOVA_HUGE, SZ_2M);
	p = next_pattern(t);
	dma_to(_metadata, t, mid, p, SHORT);
	got = huge_where(t, p, SHORT);
	check_unmapped(_metadata, mid, got >= 0,
		       got >= 0 ? "landed in the 2 MiB buffer" : "nowhere in the 2 MiB buffer");
}

/* DMAs the device cannot make are refused before they start */
TEST_F(edu, dma_range_refused)
{
	struct edu_test *t = &self->t;
	uint32_t p = next_pattern(t);

	ASSERT_EQ(-EINVAL, edu_dma_check(0, IOVA_X, 0));
	ASSERT_EQ(-EINVAL, edu_dma_check(0, IOVA_X, EDU_DMA_BUF_SIZE + 1));
	ASSERT_EQ(-EINVAL, edu_dma_check(1, IOVA_X, EDU_DMA_BUF_SIZE));
	ASSERT_EQ(-EINVAL, edu_dma_check(EDU_DMA_BUF_SIZE, IOVA_X, 1));
	ASSERT_EQ(-EINVAL, edu_dma_check(0, EDU_DMA_MASK - 63, 128));
	ASSERT_EQ(-EINVAL, edu_dma_check(0, EDU_DMA_MASK + 1, 4));
	ASSERT_EQ(-EINVAL, edu_dma_check(0, ~0ULL, 4));
	ASSERT_EQ(0, edu_dma_check(0, EDU_DMA_MASK - 127, 128));
	ASSERT_EQ(0, edu_dma_check(EDU_DMA_BUF_SIZE - 64, IOVA_X, 64));

	/* Refused: were they started, QEMU would be gone (or clamp the IOVA) */
	ASSERT_EQ(-EINVAL, edu_dma_at(&t->edu, 64, IOVA_X, PAGE, true));
	ASSERT_EQ(-EINVAL, edu_dma_at(&t->edu, 0, 1ULL << 28, 64, false));

	/* The device is still there and idle */
	ASSERT_EQ(0, ioas_map(t, t->a, PAGE, IOVA_X));
	dma_to(_metadata, t, IOVA_X, p, PAGE);
	ASSERT_EQ(IN_A, where(t, p, PAGE))
		TH_LOG("DMA after the refused ones landed in %s", where_name(where(t, p, PAGE)));
}

/* Close and reopen the device and the iommufd: it works every time */
TEST_F(edu, reopen)
{
	struct edu_test *t = &self->t;
	uint32_t p;
	int i, in;

	for (i = 0; i < 3; i++) {
		if (i) {
			edu_down(t);
			edu_up(_metadata, t);
		}
		in = i % 2 ? IN_B : IN_A;
		p = next_pattern(t);
		ASSERT_EQ(0, ioas_map(t, in == IN_A ? t->a : t->b, PAGE, IOVA_X));
		dma_to(_metadata, t, IOVA_X, p, PAGE);
		ksft_print_msg("  open %d: DMA device -> IOVA %#llx (%s mapped): %s\n",
			       i + 1, IOVA_X, where_name(in), where_name(where(t, p, PAGE)));
		ASSERT_EQ(in, where(t, p, PAGE))
			TH_LOG("open %d: DMA to IOVA %#llx (%s mapped) landed in %s",
			       i + 1, IOVA_X, where_name(in), where_name(where(t, p, PAGE)));
	}
}

/*
 * Both edu devices on one iommufd, attached to the same IOAS: both DMA
 * through its mappings, and after the IOVA is remapped to another buffer both
 * follow the new mapping, the second device first. In the inner guest both
 * are in one domain of the guest's IOMMU; a stale translation cached by
 * either device's first DMA would send the bytes to the old buffer A.
 */
static int dma_two(struct __test_metadata *_metadata, struct edu_test *t,
		   struct edu_dev *edu, int nr, const char *mapped)
{
	uint32_t p = next_pattern(t);
	int got;

	edu_dma_to(_metadata, t, edu, IOVA_X, p, PAGE);
	got = where(t, p, PAGE);
	ksft_print_msg("  device %d (%s) -> IOVA %#llx (%s): %s\n",
		       nr, edu->bdf, IOVA_X, mapped, where_name(got));
	return got;
}

TEST_F(edu, two_devices)
{
	struct edu_test *t = &self->t;
	int i, n = edu_count(), got;
	char bdf[32] = "";
	uint32_t hwpt2;
	uint64_t len;

	if (n < 2)
		SKIP(return, "%d edu device(s): two_devices needs two", n);
	/* The other one: the first edu that is not the fixture's */
	for (i = 0; i < n && !bdf[0]; i++)
		if (!edu_bdf(i, bdf, sizeof(bdf)) && !strcmp(bdf, t->bdf))
			bdf[0] = 0;
	ASSERT_NE(0, bdf[0]) TH_LOG("no edu other than %s", t->bdf);
	edu_attach(_metadata, t, &t->edu2, bdf, &hwpt2);
	ksft_print_msg("  edu %s and %s attached to IOAS %u: HWPT %u and %u\n",
		       t->bdf, bdf, t->ioas_id, t->hwpt_id, hwpt2);
	/* One IOMMU domain for both: they share its tables (and ASID) */
	ASSERT_EQ(t->hwpt_id, hwpt2)
		TH_LOG("the two edus are in different IOMMU domains: HWPT %u and %u",
		       t->hwpt_id, hwpt2);

	ASSERT_EQ(0, ioas_map(t, t->a, PAGE, IOVA_X));
	got = dma_two(_metadata, t, &t->edu, 1, "buffer A mapped");
	ASSERT_EQ(IN_A, got) TH_LOG("device 1's DMA landed in %s", where_name(got));
	got = dma_two(_metadata, t, &t->edu2, 2, "buffer A mapped");
	ASSERT_EQ(IN_A, got) TH_LOG("device 2's DMA landed in %s", where_name(got));

	ASSERT_EQ(0, ioas_unmap(t, IOVA_X, PAGE, &len));
	ASSERT_EQ(PAGE, len);
	ASSERT_EQ(0, ioas_map(t, t->b, PAGE, IOVA_X));
	got = dma_two(_metadata, t, &t->edu2, 2, "remapped from A to B");
	ASSERT_EQ(IN_B, got)
		TH_LOG("device 2's DMA after the remap to buffer B landed in %s",
		       where_name(got));
	got = dma_two(_metadata, t, &t->edu, 1, "remapped from A to B");
	ASSERT_EQ(IN_B, got)
		TH_LOG("device 1's DMA after the remap to buffer B landed in %s",
		       where_name(got));
}

int main(int argc, char **argv)
{
	const char *env = getenv("EDU_EXPECT_STALE");
	int i, n = 1;

	opt_bdf = getenv("EDU_BDF");
	opt_expect_stale = env && *env && strcmp(env, "0");
	env = getenv("EDU_SKIP_UNMAP");
	opt_skip_unmap = env && *env && strcmp(env, "0");
	/* Take ours out, leave the harness's */
	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--expect-stale"))
			opt_expect_stale = true;
		else if (!strcmp(argv[i], "--skip-unmap"))
			opt_skip_unmap = true;
		else if (!strcmp(argv[i], "--bdf") && i + 1 < argc)
			opt_bdf = argv[++i];
		else
			argv[n++] = argv[i];
	}
	argv[n] = NULL;
	return test_harness_run(n, argv);
}
