// SPDX-License-Identifier: GPL-2.0
/*
 * The inner guest's half of the DMA-mapping benchmark (vhost_iommu_guest
 * -B): map+unmap cycles through the guest kernel's DMA API on the domain of
 * an assigned device, with the kernel's own dma_map_benchmark driver bound to
 * it. Each pass is one DMA_MAP_BENCHMARK call (one thread, dma_map_single()
 * and dma_unmap_single() of GRANULE pages in a loop for SECS seconds); its
 * cycles are counted exactly, by the iommu:unmap tracepoint, not derived from
 * the average latencies.
 *
 * Every pass prints two marker lines, which the host side reads as they come
 * to snapshot its own counters around the pass:
 *
 *   BENCH-MARK begin pass=N kind=time|count|control|profile strict=0|1 size=BYTES trans=NS
 *   BENCH-MARK end pass=N unmaps=U secs=S map_100ns=M unmap_100ns=U2
 *
 * and sleeps a second after the first and before the second, so that the
 * host's snapshots fall outside the pass. A "control" pass runs no cycle:
 * the host subtracts what its markers alone cost.
 *
 * Usage: vhost_iommu_dmabench BDF SECS SIZE[,SIZE...] TRANS_NS [count]
 *   the passes: strict at every size, then at the first size with a
 *   TRANS_NS transfer in each cycle (dma_map_benchmark's dma_trans_ns: a
 *   delay between map and unmap standing for the device's DMA), then the
 *   same lazy (DMA-FQ, switched while bound); with "count", a control and a
 *   count pass at the first size, strict then lazy, and a profile pass
 *   (strict) for the host's function profiler.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <linux/map_benchmark.h>

#include "vhost_iommu_utils.h"

#define TRACING		"/sys/kernel/tracing"
#define DEBUGFS		"/sys/kernel/debug"
#define PCI_DEVS	"/sys/bus/pci/devices"
#define PAGE_SZ		4096

/*
 * Every line behind $BENCH_PREFIX, written as it comes: the host reads the
 * markers while the pass runs, so they go through no pipe that buffers
 */
static void say(const char *fmt, ...)
{
	const char *prefix = getenv("BENCH_PREFIX");
	va_list ap;

	va_start(ap, fmt);
	printf("%s", prefix ? prefix : "");
	vprintf(fmt, ap);
	va_end(ap);
	fflush(stdout);
}

static void die(const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	say("BENCH-ERROR %s\n", msg);
	exit(1);
}

static void write_file(const char *path, const char *val)
{
	int fd = open(path, O_WRONLY);
	ssize_t n;

	if (fd < 0)
		die("open %s: %s", path, strerror(errno));
	n = write(fd, val, strlen(val));
	if (n != (ssize_t)strlen(val))
		die("write %s to %s: %s", val, path, strerror(errno));
	close(fd);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Bind the device to dma_map_benchmark; return its debugfs file */
static int bind_benchmark(const char *bdf)
{
	char path[256];
	int fd;

	snprintf(path, sizeof(path), PCI_DEVS "/%s/driver_override", bdf);
	write_file(path, "dma_map_benchmark");
	snprintf(path, sizeof(path), PCI_DEVS "/%s/driver/unbind", bdf);
	if (!access(path, W_OK))
		write_file(path, bdf);
	write_file("/sys/bus/pci/drivers_probe", bdf);
	fd = open(DEBUGFS "/dma_map_benchmark", O_RDWR);
	if (fd < 0)
		die("dma_map_benchmark did not bind %s: %s", bdf,
		    strerror(errno));
	return fd;
}

static void run_pass(int fd, int nr, const char *kind, int strict,
		     unsigned int size, unsigned int trans, unsigned int secs)
{
	struct map_benchmark b = {
		.threads = 1, .seconds = secs, .node = -1, .dma_bits = 48,
		.dma_dir = DMA_MAP_BIDIRECTIONAL, .granule = size / PAGE_SZ,
		.map_mode = DMA_MAP_BENCH_SINGLE_MODE, .dma_trans_ns = trans,
	};
	long long ev;
	double t;

	say("BENCH-MARK begin pass=%d kind=%s strict=%d size=%u trans=%u\n",
	    nr, kind, strict, size, trans);
	sleep(1);
	ev = vi_trace_events(TRACING);
	t = now();
	if (strcmp(kind, "control") && ioctl(fd, DMA_MAP_BENCHMARK, &b))
		die("DMA_MAP_BENCHMARK: %s", strerror(errno));
	t = now() - t;
	ev = vi_trace_events(TRACING) - ev;
	sleep(1);
	say("BENCH-MARK end pass=%d unmaps=%lld secs=%.3f map_100ns=%llu unmap_100ns=%llu\n",
	    nr, ev, t, (unsigned long long)b.avg_map_100ns,
	    (unsigned long long)b.avg_unmap_100ns);
}

int main(int argc, char **argv)
{
	unsigned int sizes[8], nr_sizes = 0, secs, trans;
	char path[256], *tok;
	int fd, nr = 0;
	bool count;

	if (argc < 5)
		die("usage: %s BDF SECS SIZE[,SIZE...] TRANS_NS [count]", argv[0]);
	secs = strtoul(argv[2], NULL, 0);
	for (tok = strtok(argv[3], ","); tok && nr_sizes < 8;
	     tok = strtok(NULL, ","))
		sizes[nr_sizes++] = strtoul(tok, NULL, 0);
	trans = strtoul(argv[4], NULL, 0);
	count = argc > 5 && !strcmp(argv[5], "count");
	if (!nr_sizes || !secs)
		die("no size or no time");

	mount("debugfs", DEBUGFS, "debugfs", 0, NULL);
	mount("tracefs", TRACING, "tracefs", 0, NULL);
	/* One event per cycle: every unmap of the guest's IOMMU API */
	write_file(TRACING "/buffer_size_kb", "4096");
	write_file(TRACING "/events/iommu/unmap/enable", "1");
	fd = bind_benchmark(argv[1]);

	snprintf(path, sizeof(path), PCI_DEVS "/%s/iommu_group/type", argv[1]);
	for (int strict = 1; strict >= 0; strict--) {
		/* DMA to DMA-FQ: allowed with the driver bound */
		if (!strict)
			write_file(path, "DMA-FQ");
		for (unsigned int i = 0; i < nr_sizes; i++)
			run_pass(fd, ++nr, "time", strict, sizes[i], 0, secs);
		if (trans)
			run_pass(fd, ++nr, "time", strict, sizes[0], trans, secs);
		if (count) {
			run_pass(fd, ++nr, "control", strict, sizes[0], 0, secs);
			run_pass(fd, ++nr, "count", strict, sizes[0], 0, secs);
		}
		if (count && strict)
			run_pass(fd, ++nr, "profile", strict, sizes[0], 0, secs);
	}
	say("BENCH-DONE passes=%d\n", nr);
	return 0;
}
