// SPDX-License-Identifier: GPL-2.0
/*
 * A real guest end to end: vhost-iommu-vmm (tools/vhost_iommu_vmm) boots the
 * test kernel under KVM with its stock drivers. The VMM serves the
 * virtio-iommu's request and event queues itself (/dev/vhost-iommu would
 * serve only the fast-path queues of VIRTIO_IOMMU_F_INVALQ, which a stock
 * guest does not negotiate); a virtio-rng device sits behind it and the VMM
 * translates its DMA through the guest's mappings.
 *
 * Checked from the VMM's output and the guest's console: the guest boots,
 * the virtio-iommu driver binds and the endpoint joins an IOMMU group; the
 * bytes the guest reads from /dev/hwrng are the device's stream (md5
 * computed here from the seed); every request the guest posted came back and
 * is counted by type, none returned unwritten, vhost never started; a DMA to
 * an unmapped IOVA is refused and the fault record the VMM writes on its
 * event queue reaches the guest's driver; a guest reset (reboot) and the
 * VMM's device reset leave a device that works again.
 *
 * Options: -n N reads per boot (64); -p N measures MAP+UNMAP per second with
 * N reads, -r R times; -d is make demo; -B SECS is make bench: the inner
 * guest's DMA map+unmap cycles under each way of serving them, SECS seconds
 * a pass, -r R rounds (see bench_main()).
 *
 * Expects /dev/kvm, /guest/Image, /guest/initrd.gz and the VMM next to this
 * program (vmtest.sh packs them).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "../kselftest.h"
#include "../../../vhost_iommu_vmm/vmm.h"
#include "edu_lib.h"
#include "vhost_iommu_utils.h"

#define GUEST_IMAGE	"/guest/Image"
#define GUEST_INITRD	"/guest/initrd.gz"
#define GUEST_RAM_MIB	256
#define RUN_TIMEOUT	420
#define WILD_IOVA	"0xdead0000"

/* ---- MD5 (RFC 1321), to check the guest's md5sum ---- */

static void md5(const uint8_t *data, size_t len, char out[33])
{
	static const uint8_t s[64] = {
		7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22,
		5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20,
		4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23,
		6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
	};
	uint32_t h[4] = { 0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476 };
	size_t total = ((len + 8) / 64 + 1) * 64;
	uint64_t bits = (uint64_t)len * 8;
	uint32_t k[64];
	uint8_t *msg;

	for (int i = 0; i < 64; i++)
		k[i] = (uint32_t)(fabs(sin(i + 1)) * 4294967296.0);
	msg = calloc(1, total);
	if (!msg)
		ksft_exit_fail_msg("out of memory\n");
	memcpy(msg, data, len);
	msg[len] = 0x80;
	for (int i = 0; i < 8; i++)
		msg[total - 8 + i] = bits >> (8 * i);

	for (size_t off = 0; off < total; off += 64) {
		uint32_t m[16], a = h[0], b = h[1], c = h[2], d = h[3];

		for (int i = 0; i < 16; i++)
			m[i] = msg[off + 4 * i] | msg[off + 4 * i + 1] << 8 |
			       msg[off + 4 * i + 2] << 16 |
			       (uint32_t)msg[off + 4 * i + 3] << 24;
		for (int i = 0; i < 64; i++) {
			uint32_t f, g;

			if (i < 16) {
				f = (b & c) | (~b & d);
				g = i;
			} else if (i < 32) {
				f = (d & b) | (~d & c);
				g = (5 * i + 1) % 16;
			} else if (i < 48) {
				f = b ^ c ^ d;
				g = (3 * i + 5) % 16;
			} else {
				f = c ^ (b | ~d);
				g = (7 * i) % 16;
			}
			f += a + k[i] + m[g];
			a = d;
			d = c;
			c = b;
			b += (f << s[i]) | (f >> (32 - s[i]));
		}
		h[0] += a;
		h[1] += b;
		h[2] += c;
		h[3] += d;
	}
	free(msg);
	for (int i = 0; i < 16; i++)
		sprintf(out + 2 * i, "%02x", (h[i / 4] >> (8 * (i % 4))) & 0xff);
}

/*
 * Whether @want is the md5 of @blocks 64-byte blocks of the device's stream
 * taken in order from its first @produced blocks with @skip of them left
 * out, the last one excepted. Linux 7.3 runs its hwrng thread whatever the
 * rng's quality: it reads a block of the current rng now and then, which
 * /dev/hwrng then never returns; the VMM counts every block it produced.
 * Fills @skipped with the blocks left out.
 */
static bool search(const uint8_t *stream, unsigned int produced,
		   unsigned int blocks, unsigned int skip, unsigned int from,
		   unsigned int *skipped, unsigned int depth, const char *want)
{
	char got[33];

	if (depth == skip) {
		uint8_t *buf = malloc((size_t)blocks * 64 + 1);
		unsigned int b = 0, k = 0;

		if (!buf)
			ksft_exit_fail_msg("out of memory\n");
		for (unsigned int i = 0; i < produced && b < blocks; i++) {
			if (k < skip && skipped[k] == i) {
				k++;
				continue;
			}
			memcpy(buf + (size_t)b++ * 64, stream + (size_t)i * 64, 64);
		}
		md5(buf, (size_t)blocks * 64, got);
		free(buf);
		return b == blocks && !strcmp(got, want);
	}
	for (unsigned int i = from; i + 1 < produced; i++) {
		skipped[depth] = i;
		if (search(stream, produced, blocks, skip, i + 1, skipped,
			   depth + 1, want))
			return true;
	}
	return false;
}

/* ---- Running the VMM ---- */

struct run {
	char **lines;
	int nr;
	int status;		/* the VMM's exit status, -1 if killed */
	double secs;
};

static pid_t running_vmm;
static void bench_line(const char *line);

static void add_line(struct run *r, const char *line)
{
	r->lines = realloc(r->lines, (r->nr + 1) * sizeof(*r->lines));
	if (!r->lines)
		ksft_exit_fail_msg("out of memory\n");
	r->lines[r->nr++] = strdup(line);
	/* Everything into the log, behind "# ": the outer verdict looks for
	 * kernel splats in its own kernel only; the guest's are checked here.
	 */
	printf("# %s\n", line);
	fflush(stdout);
	bench_line(line);
}

static void run_vmm(struct run *r, char *const argv[])
{
	char buf[4096], line[1024];
	struct timespec t0, t1;
	size_t len = 0, fill = 0;
	int pfd[2], status;
	pid_t pid;

	memset(r, 0, sizeof(*r));
	if (pipe(pfd))
		ksft_exit_fail_perror("pipe");
	printf("# running:");
	for (int i = 0; argv[i]; i++)
		printf(" %s", argv[i]);
	printf("\n");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	pid = fork();
	if (pid < 0)
		ksft_exit_fail_perror("fork");
	if (!pid) {
		dup2(pfd[1], 1);
		dup2(pfd[1], 2);
		close(pfd[0]);
		execv(argv[0], argv);
		_exit(127);
	}
	close(pfd[1]);
	running_vmm = pid;
	for (;;) {
		struct pollfd p = { .fd = pfd[0], .events = POLLIN };
		ssize_t n;
		int left;

		clock_gettime(CLOCK_MONOTONIC, &t1);
		left = RUN_TIMEOUT * 1000 - ((t1.tv_sec - t0.tv_sec) * 1000 +
					     (t1.tv_nsec - t0.tv_nsec) / 1000000);
		if (left <= 0 || poll(&p, 1, left) == 0) {
			add_line(r, "TEST: the VMM timed out, killed");
			kill(pid, SIGKILL);
			break;
		}
		n = read(pfd[0], buf + fill, sizeof(buf) - fill);
		if (n <= 0)
			break;
		fill += n;
		/* Split into lines */
		for (size_t i = 0; i < fill; i++) {
			if (buf[i] == '\n' || len == sizeof(line) - 1) {
				line[len] = 0;
				add_line(r, line);
				len = 0;
				if (buf[i] == '\n')
					continue;
			}
			if (buf[i] != '\r')
				line[len++] = buf[i];
		}
		fill = 0;
	}
	if (len) {
		line[len] = 0;
		add_line(r, line);
	}
	close(pfd[0]);
	waitpid(pid, &status, 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	r->status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
	r->secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
}

static void free_run(struct run *r)
{
	for (int i = 0; i < r->nr; i++)
		free(r->lines[i]);
	free(r->lines);
}

/* The first line that starts with @prefix and contains @needle (or NULL) */
static const char *find(const struct run *r, const char *prefix,
			const char *needle)
{
	for (int i = 0; i < r->nr; i++)
		if (!strncmp(r->lines[i], prefix, strlen(prefix)) &&
		    (!needle || strstr(r->lines[i], needle)))
			return r->lines[i];
	return NULL;
}

static int count(const struct run *r, const char *prefix, const char *needle)
{
	int n = 0;

	for (int i = 0; i < r->nr; i++)
		if (!strncmp(r->lines[i], prefix, strlen(prefix)) &&
		    (!needle || strstr(r->lines[i], needle)))
			n++;
	return n;
}

/* A number after @key in the first line matching @prefix/@needle, or -1 */
static long long number(const struct run *r, const char *prefix,
			const char *needle, const char *key)
{
	const char *line = find(r, prefix, needle), *p;

	if (!line)
		return -1;
	p = strstr(line, key);
	if (!p)
		return -1;
	return strtoll(p + strlen(key), NULL, 0);
}

/* Requests of type @type the VMM counted, and how many failed */
static long long requests(const struct run *r, const char *type,
			  long long *failed)
{
	char needle[32];
	const char *line;
	long long n;

	snprintf(needle, sizeof(needle), "vmm:   %-10s", type);
	line = find(r, needle, NULL);
	if (!line) {
		*failed = 0;
		return 0;
	}
	if (sscanf(line + strlen(needle), "%lld (%lld failed)", &n,
		   failed) != 2)
		return -1;
	return n;
}

static bool guest_splat(const struct run *r)
{
	static const char *const bad[] = {
		"Oops", "WARNING:", "BUG:", "Kernel panic", "KASAN:",
		"UBSAN:", "Unable to handle kernel", "Internal error:",
		"vmm: error",
	};

	for (int i = 0; i < r->nr; i++)
		for (size_t k = 0; k < ARRAY_SIZE(bad); k++)
			if (strstr(r->lines[i], bad[k]))
				return true;
	return false;
}

/* ---- The checks of one run ---- */

struct cfg {
	const char *name;
	unsigned int boots;
	unsigned int blocks;
	bool wild;
	bool verbose;
	bool perf;		/* no data check: too many blocks to search */
	uint64_t seed;
	/*
	 * Device assignment: the edu devices the VMM gives the guest (-p),
	 * the VMM's options for them, and what vhost_iommu_edu runs in the
	 * guest (guest.edu=, commas for spaces). @edu_fails names the one
	 * test of it that must fail (a negative control), or is NULL.
	 */
	unsigned int assign;
	const char *vmm_args[6];
	const char *edu;
	const char *edu_fails;
	/* -B: what vhost_iommu_dmabench runs in the guest (guest.bench=) */
	const char *bench;
	/* Table mode: where the INVALIDATEs must have been served */
	enum { INV_NONE, INV_KERNEL, INV_VMM } inval;
};

static double dd_secs(const struct run *r, unsigned int boot)
{
	char needle[32];
	const char *line, *s, *e;

	snprintf(needle, sizeof(needle), "boot=%u ", boot);
	line = find(r, "GUEST-DATA", needle);
	if (!line)
		return -1;
	s = strstr(line, "start=");
	e = strstr(line, "end=");
	if (!s || !e)
		return -1;
	return strtod(e + 4, NULL) - strtod(s + 6, NULL);
}

/* Every run: the VMM exits cleanly, the guest powers off, no splat */
static void check_exit(const struct cfg *c, const struct run *r)
{
	ksft_test_result(r->status == 0 &&
			 find(r, "vmm: guest powered off", NULL) &&
			 !guest_splat(r),
			 "%s: VMM exit %d, guest powered off, no splat (%.1f s)\n",
			 c->name, r->status, r->secs);
}

static void check_run(const struct cfg *c, const struct run *r)
{
	long long total = 0, posted, returned, fail, maps, unmaps, attach;
	static const char *const types[] = {
		"ATTACH", "DETACH", "MAP", "UNMAP", "PROBE", "unknown",
	};
	bool types_ok = true;
	char needle[64];

	check_exit(c, r);

	for (unsigned int b = 1; b <= c->boots; b++) {
		unsigned int skipped[3] = { 0 }, skip = 0, produced;
		char md5_got[33] = "", which[64] = "";
		long long bytes, stream_bytes;
		const char *line;
		uint8_t *stream;
		bool ok = false;

		snprintf(needle, sizeof(needle), "boot=%u ", b);
		ksft_test_result(find(r, "GUEST-BOOTED", needle) &&
				 find(r, "GUEST-DMESG", "input address") &&
				 find(r, "GUEST-DMESG",
				      "a000200.virtio_mmio: Adding to iommu group") &&
				 find(r, "GUEST-RNG", "current=virtio_rng"),
				 "%s: boot %u: virtio-iommu bound, endpoint in an IOMMU group, hwrng virtio_rng\n",
				 c->name, b);

		line = find(r, "GUEST-DATA", needle);
		bytes = number(r, "GUEST-DATA", needle, "bytes=");
		if (line && strstr(line, "md5="))
			sscanf(strstr(line, "md5=") + 4, "%32s", md5_got);
		if (c->perf)
			continue;
		snprintf(needle, sizeof(needle), "vmm: virtio-rng: boot %u:", b);
		stream_bytes = number(r, needle, NULL, "requests, ");
		produced = stream_bytes > 0 ? stream_bytes / 64 : 0;
		/* The blocks read, the prefetched one, those the thread took */
		if (bytes == 64LL * c->blocks && produced >= c->blocks + 1 &&
		    produced - c->blocks - 1 <= 3) {
			skip = produced - c->blocks - 1;
			stream = malloc((size_t)produced * 64);
			if (!stream)
				ksft_exit_fail_msg("out of memory\n");
			for (size_t i = 0; i < (size_t)produced * 64; i++)
				stream[i] = rng_stream_byte(c->seed, i);
			ok = search(stream, produced, c->blocks, skip, 0,
				    skipped, 0, md5_got);
			free(stream);
		}
		for (unsigned int k = 0; ok && k < skip; k++)
			snprintf(which + strlen(which), sizeof(which) - strlen(which),
				 " %u", skipped[k]);
		ksft_test_result(ok,
				 "%s: boot %u: %lld bytes through the IOMMU intact: the device's blocks in order (md5 %s; %u produced, %u taken by the kernel's hwrng thread:%s)\n",
				 c->name, b, bytes, md5_got, produced, skip,
				 which);

		if (!c->wild)
			continue;
		snprintf(needle, sizeof(needle), "boot=%u ", b);
		ksft_test_result(count(r, "GUEST-FAULT", needle) >= 1 &&
				 find(r, "GUEST-FAULT", "fault from EP 1 at " WILD_IOVA " [W]"),
				 "%s: boot %u: the wild DMA's fault reached the guest driver\n",
				 c->name, b);
	}

	for (size_t t = 0; t < ARRAY_SIZE(types); t++) {
		long long n = requests(r, types[t], &fail);

		if (n < 0 || fail)
			types_ok = false;
		total += n > 0 ? n : 0;
	}
	posted = number(r, "vmm: request queue:", NULL, "queue: ");
	returned = number(r, "vmm: request queue:", NULL, "posted by the guest, ");
	maps = requests(r, "MAP", &fail);
	unmaps = requests(r, "UNMAP", &fail);
	attach = requests(r, "ATTACH", &fail);
	/* A stock guest never meets vhost: no F_INVALQ, no fast-path queue */
	ksft_test_result(types_ok && posted > 0 && posted == returned &&
			 posted == total && attach >= c->boots &&
			 maps >= (long long)c->blocks * c->boots &&
			 unmaps >= (long long)c->blocks * c->boots &&
			 find(r, "vmm: virtio-iommu requests (served by the VMM", NULL) &&
			 number(r, "vmm: request queue:", "unwritten", "queue: ") == 0 &&
			 (find(r, "vmm: fast-path queues: none", NULL) ||
			  number(r, "vmm: fast-path queues:", NULL,
				 "/dev/vhost-iommu ") == 0) &&
			 !find(r, "vmm: virtio-iommu: driver ready", "fast-path queues by"),
			 "%s: %lld requests posted, %lld returned, %lld counted by type (%lld ATTACH, %lld MAP, %lld UNMAP), none failed, all served by the VMM\n",
			 c->name, posted, returned, total, attach, maps, unmaps);

	if (c->wild) {
		snprintf(needle, sizeof(needle), "%u refused, 0 not refused",
			 c->boots);
		ksft_test_result(count(r, "vmm: refused DMA write of endpoint 1 at IOVA "
				       WILD_IOVA, NULL) == (int)c->boots &&
				 find(r, "vmm: virtio-rng:", needle) &&
				 number(r, "vmm: faults:", NULL, "reported, ") == 0 &&
				 number(r, "vmm: faults:", NULL, "lost, ") ==
				 number(r, "vmm: faults:", NULL, "faults: "),
				 "%s: the wild DMA refused in each boot and its fault written to the event queue, none lost\n",
				 c->name);
	}
	if (c->boots > 1)
		ksft_test_result(count(r, "vmm: guest reset: boot", NULL) ==
				 (int)c->boots - 1 &&
				 number(r, "vmm: faults:", NULL, "device resets: ") >=
				 c->boots - 1,
				 "%s: %u boots, the device reset by the guest and the VMM each time, and working again\n",
				 c->name, c->boots);
}

/* ---- Device assignment ---- */

/*
 * The result of vhost_iommu_edu's test @name in boot @boot: 1 ok, 0 not ok,
 * -1 absent. Its TAP lines reach the console as "GUEST-EDU boot=N ok 3
 * edu.remap_dma".
 */
static int edu_result(const struct run *r, unsigned int boot, const char *name)
{
	char prefix[64], tail[64];

	snprintf(tail, sizeof(tail), " edu.%s", name);
	for (int i = 0; i < r->nr; i++) {
		const char *l = r->lines[i], *t;
		size_t n;

		snprintf(prefix, sizeof(prefix), "GUEST-EDU boot=%u ", boot);
		if (strncmp(l, prefix, strlen(prefix)))
			continue;
		l += strlen(prefix);
		t = strstr(l, tail);
		n = strlen(tail);
		if (!t || (t[n] && t[n] != ' '))
			continue;
		if (!strncmp(l, "ok ", 3))
			return 1;
		if (!strncmp(l, "not ok ", 7))
			return 0;
	}
	return -1;
}

/* Entries of the vhost-iommu invalidation batches traced since enabling */
static const char *const trace_dirs[] = {
	"/sys/kernel/tracing", "/sys/kernel/debug/tracing",
};

static const char *tracefs;

static void trace_start(void)
{
	char path[256];
	int fd;

	/* The test VM's init mounts no tracefs */
	if (!tracefs)
		mount("tracefs", trace_dirs[0], "tracefs", 0, NULL);
	for (size_t i = 0; i < ARRAY_SIZE(trace_dirs) && !tracefs; i++) {
		snprintf(path, sizeof(path), "%s/events/vhost_iommu", trace_dirs[i]);
		if (!access(path, F_OK))
			tracefs = trace_dirs[i];
	}
	if (!tracefs)
		return;
	snprintf(path, sizeof(path),
		 "%s/events/vhost_iommu/vhost_iommu_invalidate/enable", tracefs);
	vi_write_file(path, "1");
	snprintf(path, sizeof(path), "%s/trace", tracefs);
	/* An open with O_TRUNC clears the buffer: no entry of a run before */
	fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
	if (fd >= 0)
		close(fd);
}

static long long trace_entries(long long *batches)
{
	long long entries = 0;
	char path[256], line[512];
	FILE *f;

	*batches = -1;
	if (!tracefs)
		return -1;
	snprintf(path, sizeof(path), "%s/events/vhost_iommu/vhost_iommu_invalidate/enable",
		 tracefs);
	vi_write_file(path, "0");
	snprintf(path, sizeof(path), "%s/trace", tracefs);
	f = fopen(path, "r");
	if (!f)
		return -1;
	*batches = 0;
	while (fgets(line, sizeof(line), f)) {
		const char *e = strstr(line, "vhost_iommu_invalidate:");

		e = e ? strstr(e, "entries=") : NULL;
		if (!e)
			continue;
		(*batches)++;
		entries += strtoll(e + 8, NULL, 0);
	}
	fclose(f);
	return entries;
}

static void check_assign(const struct cfg *c, const struct run *r)
{
	long long fail, attach_table, inval, invalq, dropped, vstes;
	long long entries, batches;
	char needle[64];

	check_exit(c, r);
	for (unsigned int b = 1; b <= c->boots; b++) {
		long long pass, failed, skipped;
		bool grouped;

		snprintf(needle, sizeof(needle), "GUEST-EDU boot=%u ", b);
		pass = number(r, needle, "# Totals:", "pass:");
		failed = number(r, needle, "# Totals:", "fail:");
		skipped = number(r, needle, "# Totals:", "skip:");
		/* The second edu is device 2 of the guest's bus */
		grouped = find(r, "GUEST-DMESG", "0000:00:01.0: Adding to iommu group") &&
			  (c->assign < 2 ||
			   find(r, "GUEST-DMESG", "0000:00:02.0: Adding to iommu group"));
		/* A negative control may run its one test only: pass 0, fail 1 */
		ksft_test_result(grouped && skipped == 0 &&
				 (c->edu_fails ?
				  failed == 1 && edu_result(r, b, c->edu_fails) == 0 :
				  pass > 0 && failed == 0),
				 "%s: boot %u: the assigned edu%s in an IOMMU group; its DMA through vfio and iommufd in the guest: %lld passed, %lld failed, %lld skipped%s%s\n",
				 c->name, b, c->assign > 1 ? "s each" : "",
				 pass, failed, skipped,
				 c->edu_fails ? ", must fail (negative control): " : "",
				 c->edu_fails ? c->edu_fails : "");
	}

	attach_table = requests(r, "ATTACH_TABLE", &fail);
	inval = requests(r, "INVALIDATE", &fail);
	vstes = number(r, "vmm: table domains:", "vSTEs", "domains: ");
	invalq = number(r, "vmm: table domains:", "vSTEs", "served by the VMM: ");
	dropped = number(r, "vmm: table domains:", "vSTEs", "failed, ");
	entries = trace_entries(&batches);
	switch (c->inval) {
	case INV_NONE: {
		const char *l = find(r, "vmm: assigned", "IOAS maps");
		long long maps = -1, unmaps = -1, drops = -1;

		l = l ? strstr(l, "endpoint ") : NULL;
		l = l ? strchr(l, ':') : NULL;
		if (l)
			sscanf(l + 1, " %lld IOAS maps, %lld unmaps, %lld dropped",
			       &maps, &unmaps, &drops);
		ksft_test_result(attach_table == 0 && inval == 0 && maps > 0 &&
				 (c->edu_fails ? drops > 0 : unmaps > 0 && drops == 0),
				 "%s: MAP/UNMAP only: no ATTACH_TABLE; the guest's mappings in the device's IOAS: %lld maps, %lld unmaps, %lld unmaps dropped\n",
				 c->name, maps, unmaps, drops);
		break;
	}
	case INV_KERNEL:
		ksft_test_result(attach_table > 0 && !fail && inval == 0 &&
				 vstes > 0 && entries > 0 &&
				 find(r, "vmm: virtio-iommu: driver ready",
				      "fast-path queues by /dev/vhost-iommu"),
				 "%s: table mode: %lld ATTACH_TABLE, %lld vSTEs; no INVALIDATE reached the VMM; /dev/vhost-iommu served %lld entries in %lld batches\n",
				 c->name, attach_table, vstes, entries, batches);
		break;
	case INV_VMM:
		ksft_test_result(attach_table > 0 && (inval > 0 || invalq > 0) &&
				 entries == 0 && (c->edu_fails ? dropped > 0 : dropped == 0),
				 "%s: table mode: %lld ATTACH_TABLE; INVALIDATE served by the VMM: %lld on the request queue, %lld on the invalidation queue, %lld dropped; none in the kernel (%lld)\n",
				 c->name, attach_table, inval, invalq, dropped, entries);
		break;
	}
	if (c->boots > 1)
		ksft_test_result(count(r, "vmm: guest reset: boot", NULL) ==
				 (int)c->boots - 1,
				 "%s: %u boots, the device reset and the assigned device reusable\n",
				 c->name, c->boots);
}

static void run_cfg(const struct cfg *c, const char *vmm, struct run *r)
{
	char seed[32], n[32], boots[32], nb[32], ram[16], edu[256], bench[160];
	char bdf[2][32];
	char *argv[48];
	int a = 0;

	snprintf(seed, sizeof(seed), "%llu", (unsigned long long)c->seed);
	snprintf(n, sizeof(n), "guest.n=%u", c->blocks);
	snprintf(boots, sizeof(boots), "guest.boots=%u", c->boots);
	snprintf(nb, sizeof(nb), "%u", c->boots);
	snprintf(ram, sizeof(ram), "%u", GUEST_RAM_MIB);
	argv[a++] = (char *)vmm;
	argv[a++] = "-k";
	argv[a++] = GUEST_IMAGE;
	argv[a++] = "-i";
	argv[a++] = GUEST_INITRD;
	argv[a++] = "-m";
	argv[a++] = ram;
	argv[a++] = "-b";
	argv[a++] = nb;
	argv[a++] = "-s";
	argv[a++] = seed;
	argv[a++] = "-A";
	argv[a++] = n;
	argv[a++] = "-A";
	argv[a++] = boots;
	/* The KUnit suites built in ran in the test VM already */
	argv[a++] = "-A";
	argv[a++] = "kunit.enable=0";
	if (c->wild) {
		argv[a++] = "-w";
		argv[a++] = "5";
		argv[a++] = "-W";
		argv[a++] = WILD_IOVA;
	}
	if (c->verbose)
		argv[a++] = "-v";
	for (unsigned int i = 0; i < c->assign; i++) {
		if (edu_bdf(i, bdf[i], sizeof(bdf[i])))
			ksft_exit_fail_msg("no edu device %u\n", i);
		argv[a++] = "-p";
		argv[a++] = bdf[i];
	}
	for (unsigned int i = 0; i < ARRAY_SIZE(c->vmm_args) && c->vmm_args[i]; i++)
		argv[a++] = (char *)c->vmm_args[i];
	if (c->edu) {
		snprintf(edu, sizeof(edu), "guest.edu=%s", c->edu);
		argv[a++] = "-A";
		argv[a++] = edu;
		argv[a++] = "-A";
		argv[a++] = "iommufd.allow_unsafe_interrupts=1";
		/* A hugetlb page for edu.map_2m: a 2 MiB block, unmapped whole */
		argv[a++] = "-A";
		argv[a++] = "hugepages=2";
	}
	if (c->bench) {
		snprintf(bench, sizeof(bench), "guest.bench=%s", c->bench);
		argv[a++] = "-A";
		argv[a++] = bench;
	}
	argv[a] = NULL;
	if (c->inval != INV_NONE)
		trace_start();
	run_vmm(r, argv);
}

/*
 * The guest drives an assigned edu through vfio and iommufd
 * (vhost_iommu_edu), on MAP/UNMAP and on its own tables, with each
 * mechanism switched off once: the test it proves must then fail. With one
 * edu assigned, every test of it runs but the two-device one.
 */
static const struct cfg assign_cfgs[] = {
	{
		/* MAP/UNMAP become IOAS maps; a reboot leaves it reusable */
		.name = "assign-map", .boots = 2, .blocks = 4, .assign = 1,
		.vmm_args = { "-I", "none" }, .edu = "-T,two_devices", .inval = INV_NONE,
	}, {
		/* Negative control: an UNMAP the VMM does not carry out */
		.name = "assign-map-unmap-dropped", .boots = 1, .blocks = 4,
		.assign = 1, .vmm_args = { "-I", "none", "-U", "drop" },
		.edu = "-t,unmapped_dma", .edu_fails = "unmapped_dma",
		.inval = INV_NONE,
	}, {
		/* Table mode, invalidations in the kernel; a reboot */
		.name = "table-kernel", .boots = 2, .blocks = 4, .assign = 1,
		.edu = "-T,two_devices", .inval = INV_KERNEL,
	}, {
		/* Negative control: INVALIDATE answered, not carried out */
		.name = "table-dropped", .boots = 1, .blocks = 4, .assign = 1,
		.vmm_args = { "-I", "drop" }, .edu = "-t,remap_dma",
		.edu_fails = "remap_dma", .inval = INV_VMM,
	}, {
		/* The best a userspace VMM does: its own invalidation queue */
		.name = "table-vmm", .boots = 1, .blocks = 4, .assign = 1,
		.vmm_args = { "-I", "vmm" }, .edu = "-T,two_devices", .inval = INV_VMM,
	}, {
		/* A VMM without the fast-path feature: on the request queue */
		.name = "table-requestq", .boots = 1, .blocks = 4, .assign = 1,
		.vmm_args = { "-I", "requestq" }, .edu = "-T,two_devices",
		.inval = INV_VMM,
	}, {
		/* QEMU's way: each INVALIDATE served in the vCPU's exit */
		.name = "table-vcpu", .boots = 1, .blocks = 4, .assign = 1,
		.vmm_args = { "-I", "vcpu" },
		.edu = "-t,remap_dma,-t,unmapped_dma,-t,map_2m", .inval = INV_VMM,
	}, {
		/* The VMM's thread polling its queue, notifications off */
		.name = "table-vmm-poll", .boots = 1, .blocks = 4, .assign = 1,
		.vmm_args = { "-I", "vmm", "-P", "200" },
		.edu = "-t,remap_dma,-t,unmapped_dma,-t,map_2m", .inval = INV_VMM,
	}, {
		/* The kernel's worker busy-polling the queue between kicks */
		.name = "table-kernel-poll", .boots = 1, .blocks = 4, .assign = 1,
		.vmm_args = { "-P", "200" },
		.edu = "-t,remap_dma,-t,unmapped_dma,-t,map_2m", .inval = INV_KERNEL,
	}, {
		/* Both edu devices in one table domain */
		.name = "table-two-devices", .boots = 1, .blocks = 4,
		.assign = 2, .edu = "-t,two_devices", .inval = INV_KERNEL,
	}, {
		/*
		 * Negative control: after the remap, device 2's DMA hits the
		 * translation cached for the domain's ASID by the first DMAs
		 */
		.name = "table-two-devices-dropped", .boots = 1, .blocks = 4,
		.assign = 2, .vmm_args = { "-I", "drop" },
		.edu = "-t,two_devices", .edu_fails = "two_devices",
		.inval = INV_VMM,
	},
};

static unsigned int assign_tests(const struct cfg *c)
{
	return 1 + c->boots + 1 + (c->boots > 1);
}

/* ---- -B: the DMA-mapping benchmark in the inner guest ---- */

/*
 * Map+unmap cycles through the inner guest's DMA API on an assigned edu
 * (vhost_iommu_dmabench in the guest, the kernel's dma_map_benchmark), under
 * each way the host can serve them, one VMM run per mode, the modes
 * interleaved round after round. Around every pass the guest prints a
 * marker; on each, this side reads its counters: tracepoints of this
 * kernel, in trace instances of their own (events written, overruns
 * included), and the CPU time of the VMM's threads.
 */
#define BENCH_MAX_PASSES	16
#define BENCH_MAX_ROUNDS	9
#define BENCH_SIZES		"4096,65536,2097152"
#define BENCH_POLL_US		"200"
/* A transfer in each cycle: dma_map_benchmark's delay (ns) */
#define BENCH_TRANS_NS		"20000"

/*
 * The polling modes get a CPU of their own (their server's threads pinned,
 * see bench_pin()); the others are left to the scheduler, which serves
 * them best here: woken on the kicking vCPU's CPU, their server needs no
 * inter-processor interrupt, which costs milliseconds under TCG.
 */
static const struct bench_mode {
	const char *name;
	const char *what;
	const char *vmm_args[6];
	bool pin;
} bench_modes[] = {
	{ "stock",
	  "stock guest: MAP/UNMAP on the request queue, by the VMM's thread",
	  { "-I", "none" } },
	{ "vcpu",
	  "table mode: INVALIDATE in the vCPU's exit, an ioctl per request",
	  { "-I", "vcpu" } },
	{ "vmm",
	  "table mode: INVALIDATE by a VMM thread (ioeventfd), an ioctl per pass",
	  { "-I", "vmm" } },
	{ "vmm-poll",
	  "table mode: the VMM thread, busy-polling " BENCH_POLL_US " us, pinned",
	  { "-I", "vmm", "-P", BENCH_POLL_US }, true },
	{ "vhost",
	  "table mode: INVALIDATE by /dev/vhost-iommu",
	  { "-I", "kernel" } },
	{ "vhost-poll",
	  "table mode: /dev/vhost-iommu, its worker busy-polling " BENCH_POLL_US " us, pinned",
	  { "-I", "kernel", "-P", BENCH_POLL_US }, true },
};

#define NR_BENCH_MODES	ARRAY_SIZE(bench_modes)

/* What this side counts, snapshot at each marker */
enum {
	CNT_EXITS,	/* kvm:kvm_userspace_exit */
	CNT_WAKE_VMM,	/* sched:sched_wakeup of the VMM's threads */
	CNT_WAKE_VHOST,	/* sched:sched_wakeup of the vhost worker */
	CNT_SYSCALLS,	/* raw_syscalls:sys_enter of the VMM's threads */
	CNT_SYNCS,	/* CMD_SYNCs issued by the SMMUv3 driver (kprobe) */
	CNT_BATCHES,	/* vhost_iommu:vhost_iommu_invalidate */
	NR_CNT,
};

static const struct {
	const char *name, *event, *filter;
} bench_cnt[NR_CNT] = {
	[CNT_EXITS] = { "exits", "kvm/kvm_userspace_exit", NULL },
	[CNT_WAKE_VMM] = { "wakeups-vmm", "sched/sched_wakeup",
			   "comm == \"vhost-iommu-vmm\"" },
	[CNT_WAKE_VHOST] = { "wakeups-vhost", "sched/sched_wakeup",
			     "comm ~ \"vhost-[0-9]*\"" },
	[CNT_SYSCALLS] = { "syscalls", "raw_syscalls/sys_enter",
			   "comm == \"vhost-iommu-vmm\"" },
	[CNT_SYNCS] = { "cmd-syncs", "vib/cmdq_sync", "sync != 0" },
	[CNT_BATCHES] = { "vhost-batches", "vhost_iommu/vhost_iommu_invalidate",
			  NULL },
};

/* CPU time of the VMM's threads */
enum { CPU_VCPU, CPU_VMM, CPU_VHOST, NR_CPU };

struct snap {
	long long cnt[NR_CNT];
	double cpu[NR_CPU];
	double t;
};

struct bench_pass {
	char kind[8];
	int strict;
	unsigned int size, trans;
	long long unmaps;
	double secs;
	struct snap s0, s1;
	bool done;
};

static struct {
	bool active;
	bool prof;		/* the function profiler is set up */
	const char *mode;
	bool pin;
	struct bench_pass *passes;	/* of the run going on */
	int cur;
	bool cnt_ok[NR_CNT];
} bench;

static struct bench_pass bench_res[BENCH_MAX_ROUNDS][NR_BENCH_MODES][BENCH_MAX_PASSES];

static void bench_instance_path(char *path, size_t len, int c, const char *file)
{
	snprintf(path, len, "%s/instances/vib-%s/%s", tracefs, bench_cnt[c].name,
		 file);
}

/* One trace instance per counter, off until a counting pass */
static void bench_trace_setup(void)
{
	char path[512];

	trace_start();
	if (!tracefs)
		return;
	/*
	 * __arm_smmu_cmdq_issue_cmdlist(smmu, cmdq, cmds, n, sync): every
	 * command list the SMMUv3 driver issues (its callers inline the
	 * wrapper), with a CMD_SYNC when sync
	 */
	snprintf(path, sizeof(path), "%s/kprobe_events", tracefs);
	vi_write_file(path, "-:vib/cmdq_sync");
	vi_write_file(path, "p:vib/cmdq_sync __arm_smmu_cmdq_issue_cmdlist sync=$arg5:u8");
	for (int c = 0; c < NR_CNT; c++) {
		snprintf(path, sizeof(path), "%s/instances/vib-%s", tracefs,
			 bench_cnt[c].name);
		rmdir(path);
		if (mkdir(path, 0755))
			continue;
		bench_instance_path(path, sizeof(path), c, "tracing_on");
		vi_write_file(path, "0");
		bench_instance_path(path, sizeof(path), c, "buffer_size_kb");
		vi_write_file(path, "1024");
		if (bench_cnt[c].filter) {
			snprintf(path, sizeof(path), "%s/instances/vib-%s/events/%s/filter",
				 tracefs, bench_cnt[c].name, bench_cnt[c].event);
			if (vi_write_file(path, bench_cnt[c].filter))
				continue;
		}
		snprintf(path, sizeof(path), "%s/instances/vib-%s/events/%s/enable",
			 tracefs, bench_cnt[c].name, bench_cnt[c].event);
		bench.cnt_ok[c] = !vi_write_file(path, "1");
		if (!bench.cnt_ok[c])
			ksft_print_msg("bench: no %s counter (%s)\n",
				       bench_cnt[c].name, bench_cnt[c].event);
	}
}

static void bench_trace_on(bool on)
{
	char path[512];

	for (int c = 0; c < NR_CNT; c++) {
		if (!bench.cnt_ok[c])
			continue;
		bench_instance_path(path, sizeof(path), c, "tracing_on");
		vi_write_file(path, on ? "1" : "0");
	}
}

static long long bench_events(int c)
{
	char dir[512];

	snprintf(dir, sizeof(dir), "%s/instances/vib-%s", tracefs,
		 bench_cnt[c].name);
	return vi_trace_events(dir);
}

/* utime + stime of each thread of the VMM, by role */
static void bench_cpu(double cpu[NR_CPU])
{
	long tck = sysconf(_SC_CLK_TCK);
	char path[300], buf[1024];
	struct dirent *d;
	DIR *dir;

	memset(cpu, 0, NR_CPU * sizeof(*cpu));
	snprintf(path, sizeof(path), "/proc/%d/task", running_vmm);
	dir = opendir(path);
	if (!dir)
		return;
	while ((d = readdir(dir))) {
		unsigned long long ut, st;
		char *comm, *end;
		ssize_t n;
		int fd, role;

		if (d->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%s/stat", running_vmm,
			 d->d_name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n <= 0)
			continue;
		buf[n] = 0;
		comm = strchr(buf, '(');
		end = strrchr(buf, ')');
		if (!comm || !end ||
		    sscanf(end + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
			   &ut, &st) != 2)
			continue;
		*end = 0;
		if (atoi(d->d_name) == running_vmm)
			role = CPU_VCPU;	/* KVM_RUN in the main thread */
		else if (!strcmp(comm + 1, "vhost-iommu-vmm"))
			role = CPU_VMM;
		else
			role = CPU_VHOST;
		cpu[role] += (double)(ut + st) / tck;
	}
	closedir(dir);
}

static void bench_snap(struct snap *s)
{
	struct timespec ts;

	for (int c = 0; c < NR_CNT; c++)
		s->cnt[c] = bench.cnt_ok[c] ? bench_events(c) : -1;
	bench_cpu(s->cpu);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	s->t = ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Where a pass's time went on this side, per unmap */
static void bench_profile(const struct bench_pass *p)
{
	static struct vi_prof_ent ent[256];
	int n;

	if (!bench.prof || p->unmaps <= 0)
		return;
	n = vi_prof_collect(ent, ARRAY_SIZE(ent));
	ksft_print_msg("%s, %s 4K: host functions, us per unmap (inclusive), calls per unmap:\n",
		       bench.mode, p->strict ? "strict" : "lazy");
	for (int i = 0; i < n && i < 16; i++) {
		ksft_print_msg("  %-36s %9.2f us %8.3f calls\n", ent[i].name,
			       ent[i].us / p->unmaps, (double)ent[i].hits / p->unmaps);
		printf("BENCH-PROFILE mode=%s func=%s us_per_unmap=%.3f calls_per_unmap=%.4f\n",
		       bench.mode, ent[i].name, ent[i].us / p->unmaps,
		       (double)ent[i].hits / p->unmaps);
	}
}

/*
 * As an operator pins a VM for latency (libvirt's vcpupin, emulatorpin):
 * the vCPU thread on CPU 0, every other thread of the VMM (its request
 * queue thread, the vhost worker) on CPU 1, in every mode alike. Unpinned,
 * the scheduler wakes the server on the kicking vCPU's CPU, where it
 * preempts the guest it serves.
 */
static void bench_pin(void)
{
	char path[64];
	struct dirent *d;
	int others = 0;
	DIR *dir;

	snprintf(path, sizeof(path), "/proc/%d/task", running_vmm);
	dir = opendir(path);
	if (!dir)
		return;
	while ((d = readdir(dir))) {
		pid_t tid = atoi(d->d_name);
		int ret;

		if (tid <= 0)
			continue;
		ret = vi_pin(tid, tid == running_vmm ? 0 : 1);
		if (ret)
			ksft_print_msg("bench: pinning thread %d: %s\n", tid,
				       strerror(-ret));
		others += tid != running_vmm;
	}
	closedir(dir);
	ksft_print_msg("bench: %s: the vCPU thread on CPU 0, %d other threads on CPU 1\n",
		       bench.mode, others);
}

/* A line of the VMM's output as it comes: the guest's markers */
static void bench_line(const char *line)
{
	struct bench_pass *p;
	const char *m;
	int nr;

	m = bench.active ? strstr(line, "BENCH-MARK ") : NULL;
	if (!m)
		return;
	m += strlen("BENCH-MARK ");
	if (sscanf(m, "%*s pass=%d", &nr) != 1 || nr < 1 ||
	    nr > BENCH_MAX_PASSES)
		return;
	p = &bench.passes[nr - 1];
	if (nr == 1 && !strncmp(m, "begin ", 6) && bench.pin)
		bench_pin();
	if (!strncmp(m, "begin ", 6)) {
		memset(p, 0, sizeof(*p));
		if (sscanf(m, "begin pass=%*d kind=%7s strict=%d size=%u trans=%u",
			   p->kind, &p->strict, &p->size, &p->trans) != 4)
			return;
		if (!strcmp(p->kind, "count") || !strcmp(p->kind, "control"))
			bench_trace_on(true);
		bench_snap(&p->s0);
		if (!strcmp(p->kind, "profile"))
			vi_prof_enable(true);
	} else if (!strncmp(m, "end ", 4) && p->kind[0]) {
		if (!strcmp(p->kind, "profile"))
			vi_prof_enable(false);
		bench_snap(&p->s1);
		if (!strcmp(p->kind, "count") || !strcmp(p->kind, "control"))
			bench_trace_on(false);
		p->done = sscanf(m, "end pass=%*d unmaps=%lld secs=%lf",
				 &p->unmaps, &p->secs) == 2;
		if (p->done && !strcmp(p->kind, "profile"))
			bench_profile(p);
	}
}

static double bench_rate(const struct bench_pass *p)
{
	return p->done && p->secs > 0 ? p->unmaps / p->secs : 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* The pass of round @r and mode @m measured as @like (rounds differ) */
static const struct bench_pass *bench_find(unsigned int r, size_t m,
					   const struct bench_pass *like)
{
	for (int i = 0; i < BENCH_MAX_PASSES; i++) {
		const struct bench_pass *p = &bench_res[r][m][i];

		if (p->done && !strcmp(p->kind, like->kind) &&
		    p->strict == like->strict && p->size == like->size &&
		    p->trans == like->trans)
			return p;
	}
	return NULL;
}

/* Median, min and max over @rounds rounds of mode @m's passes as @like */
static double bench_median(unsigned int rounds, size_t m,
			   const struct bench_pass *like, double *lo, double *hi)
{
	double v[BENCH_MAX_ROUNDS];

	for (unsigned int r = 0; r < rounds; r++) {
		const struct bench_pass *p = bench_find(r, m, like);

		v[r] = p ? bench_rate(p) : 0;
	}
	qsort(v, rounds, sizeof(v[0]), cmp_double);
	*lo = v[0];
	*hi = v[rounds - 1];
	return rounds % 2 ? v[rounds / 2] :
	       (v[rounds / 2 - 1] + v[rounds / 2]) / 2;
}

static size_t bench_mode_index(const char *name)
{
	for (size_t m = 0; m < NR_BENCH_MODES; m++)
		if (!strcmp(bench_modes[m].name, name))
			return m;
	return 0;
}

static void bench_table(unsigned int rounds)
{
	const struct bench_pass *p0 = bench_res[0][0];
	size_t stock = bench_mode_index("stock"), vcpu = bench_mode_index("vcpu"),
	       vmm = bench_mode_index("vmm"), vhost = bench_mode_index("vhost"),
	       vmm_poll = bench_mode_index("vmm-poll"),
	       vhost_poll = bench_mode_index("vhost-poll");
	double med[NR_BENCH_MODES], lo, hi;

	ksft_print_msg("\n");
	ksft_print_msg("DMA map+unmap cycles per second in the inner guest\n");
	ksft_print_msg("(dma_map_benchmark, 1 thread),\n");
	ksft_print_msg("median of %u rounds, the modes interleaved, (max-min)/median:\n",
		       rounds);
	for (size_t m = 0; m < NR_BENCH_MODES; m++)
		ksft_print_msg("  %-10s %s\n", bench_modes[m].name, bench_modes[m].what);
	printf("# %-6s %-8s", "policy", "size");
	for (size_t m = 0; m < NR_BENCH_MODES; m++)
		printf(" %15s", bench_modes[m].name);
	printf("\n");
	for (int i = 0; i < BENCH_MAX_PASSES; i++) {
		char size[32];

		if (!p0[i].done || strcmp(p0[i].kind, "time"))
			continue;
		snprintf(size, sizeof(size), "%s%s",
			 p0[i].size >= 1 << 20 ? "2M" : p0[i].size >= 65536 ? "64K" : "4K",
			 p0[i].trans ? "+xfer" : "");
		printf("# %-6s %-8s", p0[i].strict ? "strict" : "lazy", size);
		for (size_t m = 0; m < NR_BENCH_MODES; m++) {
			med[m] = bench_median(rounds, m, &p0[i], &lo, &hi);
			printf(" %7.0f (%3.0f%%)", med[m],
			       med[m] ? 100 * (hi - lo) / med[m] : 0);
		}
		printf("\n");
		printf("#   ratios: vhost/stock %.2fx  vhost/vcpu %.2fx  vhost/vmm %.2fx",
		       med[stock] ? med[vhost] / med[stock] : 0,
		       med[vcpu] ? med[vhost] / med[vcpu] : 0,
		       med[vmm] ? med[vhost] / med[vmm] : 0);
		printf("  vhost-poll/vmm-poll %.2fx  vhost-poll/stock %.2fx\n",
		       med[vmm_poll] ? med[vhost_poll] / med[vmm_poll] : 0,
		       med[stock] ? med[vhost_poll] / med[stock] : 0);
		for (size_t m = 0; m < NR_BENCH_MODES; m++) {
			bench_median(rounds, m, &p0[i], &lo, &hi);
			printf("BENCH-RESULT mode=%s policy=%s size=%u trans_ns=%u rounds=%u",
			       bench_modes[m].name, p0[i].strict ? "strict" : "lazy",
			       p0[i].size, p0[i].trans, rounds);
			printf(" median=%.0f min=%.0f max=%.0f vs_stock=%.3f\n",
			       med[m], lo, hi, med[stock] ? med[m] / med[stock] : 0);
		}
	}
}

/* Per unmap, from the count pass of round 1 less its control pass */
static void bench_counts(void)
{
	ksft_print_msg("\n");
	ksft_print_msg("Per unmap (4 KiB; a counting pass less a pass with no cycle,\n");
	ksft_print_msg("tracing on; round 1):\n");
	ksft_print_msg("%-10s %-6s %7s %9s %9s %9s %9s %9s %9s %9s %9s\n", "mode",
		       "policy", "unmaps", "exits", "wake-vmm", "wake-vhost",
		       "syscalls", "CMD_SYNC", "vhost-bat", "vhost-CPU", "VMM-CPU");
	for (size_t m = 0; m < NR_BENCH_MODES; m++) {
		for (int i = 1; i < BENCH_MAX_PASSES; i++) {
			const struct bench_pass *p = &bench_res[0][m][i];
			const struct bench_pass *c = &bench_res[0][m][i - 1];
			double per[NR_CNT], cpu[NR_CPU];
			long long n;

			if (!p->done || strcmp(p->kind, "count") || !c->done ||
			    strcmp(c->kind, "control") || p->unmaps <= 0)
				continue;
			n = p->unmaps - c->unmaps;
			for (int k = 0; k < NR_CNT; k++)
				per[k] = p->s1.cnt[k] < 0 ? NAN :
					 (double)((p->s1.cnt[k] - p->s0.cnt[k]) -
						  (c->s1.cnt[k] - c->s0.cnt[k])) / n;
			/* CPU seconds per second of the pass */
			for (int k = 0; k < NR_CPU; k++)
				cpu[k] = ((p->s1.cpu[k] - p->s0.cpu[k]) -
					  (c->s1.cpu[k] - c->s0.cpu[k])) /
					 (p->secs > 0 ? p->secs : 1);
			printf("# %-10s %-6s %7lld", bench_modes[m].name,
			       p->strict ? "strict" : "lazy", n);
			printf(" %9.3f %9.3f %9.3f %9.3f %9.3f %9.3f %8.0f%% %8.0f%%\n",
			       per[CNT_EXITS], per[CNT_WAKE_VMM], per[CNT_WAKE_VHOST],
			       per[CNT_SYSCALLS], per[CNT_SYNCS], per[CNT_BATCHES],
			       100 * cpu[CPU_VHOST], 100 * cpu[CPU_VMM]);
			printf("BENCH-COUNT mode=%s policy=%s unmaps=%lld",
			       bench_modes[m].name, p->strict ? "strict" : "lazy", n);
			for (int k = 0; k < NR_CNT; k++)
				printf(" %s=%.4f", bench_cnt[k].name, per[k]);
			printf(" vhost_cpu=%.3f vmm_cpu=%.3f vcpu_cpu=%.3f\n",
			       cpu[CPU_VHOST], cpu[CPU_VMM], cpu[CPU_VCPU]);
		}
	}
}

static void bench_run_one(const char *vmm, size_t m, unsigned int round,
			  unsigned int secs)
{
	char arg[128];
	struct cfg c = {
		.name = bench_modes[m].name, .boots = 1, .blocks = 4, .assign = 1,
		.seed = 1, .bench = arg,
	};
	struct run r;
	int done = 0;

	memcpy(c.vmm_args, bench_modes[m].vmm_args, sizeof(c.vmm_args));
	/* The counts are the same every round: counted in the first */
	snprintf(arg, sizeof(arg), "%u:%s:%s%s", secs, BENCH_SIZES,
		 BENCH_TRANS_NS, round ? "" : ":count");
	bench.passes = bench_res[round][m];
	bench.mode = bench_modes[m].name;
	bench.pin = bench_modes[m].pin;
	bench.active = true;
	run_cfg(&c, vmm, &r);
	bench.active = false;
	for (int i = 0; i < BENCH_MAX_PASSES; i++)
		done += bench.passes[i].done;
	ksft_test_result(r.status == 0 && !guest_splat(&r) &&
			 find(&r, "GUEST-BENCH", "BENCH-DONE") &&
			 !find(&r, "GUEST-BENCH", "BENCH-ERROR"),
			 "bench: round %u, %s: %d passes\n", round + 1,
			 bench_modes[m].name, done);
	free_run(&r);
}

static void bench_main(const char *vmm, unsigned int rounds, unsigned int secs)
{
	if (rounds < 1 || rounds > BENCH_MAX_ROUNDS)
		ksft_exit_fail_msg("-r: 1 to %d rounds\n", BENCH_MAX_ROUNDS);
	if (edu_count() < 1) {
		ksft_test_result_skip("bench: needs an edu device\n");
		ksft_finished();
	}
	ksft_set_plan(rounds * NR_BENCH_MODES);
	bench_trace_setup();
	bench.prof = vi_prof_setup();
	for (unsigned int r = 0; r < rounds; r++)
		for (size_t m = 0; m < NR_BENCH_MODES; m++)
			bench_run_one(vmm, m, r, secs);
	bench_table(rounds);
	bench_counts();
}

/* Room for the guest's RAM in huge pages; returns the previous count */
static long reserve_hugepages(long extra)
{
	long before = 0;
	FILE *f = fopen("/proc/sys/vm/nr_hugepages", "r+");

	if (!f)
		return -1;
	if (fscanf(f, "%ld", &before) == 1) {
		rewind(f);
		fprintf(f, "%ld\n", before + extra);
	}
	fclose(f);
	return before;
}

static void restore_hugepages(long before)
{
	FILE *f;

	if (before < 0)
		return;
	f = fopen("/proc/sys/vm/nr_hugepages", "w");
	if (f) {
		fprintf(f, "%ld\n", before);
		fclose(f);
	}
}

int main(int argc, char **argv)
{
	unsigned int perf_blocks = 0, blocks = 64, rounds = 1, plan;
	unsigned int bench_secs = 0;
	const char *only = NULL;
	bool demo = false;
	char vmm[4096], *slash;
	struct run r;
	long huge;
	int opt;

	while ((opt = getopt(argc, argv, "p:n:r:de:B:")) != -1) {
		if (opt == 'B')
			bench_secs = strtoul(optarg, NULL, 0);
		else if (opt == 'e')
			only = optarg;
		else if (opt == 'd')
			demo = true;
		else if (opt == 'r')
			rounds = strtoul(optarg, NULL, 0);
		else if (opt == 'p')
			perf_blocks = strtoul(optarg, NULL, 0);
		else if (opt == 'n')
			blocks = strtoul(optarg, NULL, 0);
	}
	ksft_print_header();
	if (access("/dev/kvm", R_OK | W_OK) || access(GUEST_IMAGE, R_OK) ||
	    access(GUEST_INITRD, R_OK))
		ksft_exit_skip("needs /dev/kvm, %s and %s\n", GUEST_IMAGE,
			       GUEST_INITRD);
	snprintf(vmm, sizeof(vmm), "%s", argv[0]);
	slash = strrchr(vmm, '/');
	snprintf(slash ? slash + 1 : vmm, sizeof(vmm) - (slash ? slash + 1 - vmm : 0),
		 "vhost-iommu-vmm");
	if (access(vmm, X_OK))
		ksft_exit_fail_msg("no VMM at %s\n", vmm);
	huge = reserve_hugepages(GUEST_RAM_MIB / 2);

	if (demo) {
		/* make demo: one boot, every slow-path request logged */
		struct cfg c = {
			.name = "demo", .boots = 1, .blocks = 16, .wild = true,
			.verbose = true, .seed = time(NULL),
		};

		/* Then an assigned edu on the guest's own tables */
		struct cfg t = assign_cfgs[2];

		t.name = "demo-table";
		t.boots = 1;
		t.verbose = true;
		ksft_set_plan(1 + 3 + 2 + (edu_count() ? assign_tests(&t) : 0));
		run_cfg(&c, vmm, &r);
		check_run(&c, &r);
		free_run(&r);
		if (edu_count()) {
			run_cfg(&t, vmm, &r);
			check_assign(&t, &r);
			free_run(&r);
		}
		restore_hugepages(huge);
		ksft_finished();
	}

	if (bench_secs) {
		bench_main(vmm, rounds, bench_secs);
		restore_hugepages(huge);
		ksft_finished();
	}

	if (perf_blocks) {
		/*
		 * MAP+UNMAP per second: the guest's requests on the VMM's own
		 * request queue, -r rounds against a machine whose load
		 * changes.
		 */
		double secs, sum = 0;

		ksft_set_plan(3 * rounds);
		for (unsigned int i = 0; i < rounds; i++) {
			struct cfg c = {
				.name = "vmm", .boots = 1,
				.blocks = perf_blocks, .perf = true,
				.seed = time(NULL),
			};

			run_cfg(&c, vmm, &r);
			check_run(&c, &r);
			secs = dd_secs(&r, 1);
			ksft_print_msg("round %u: %u reads in %.2f s: %.0f MAP+UNMAP/s\n",
				       i + 1, perf_blocks, secs,
				       secs > 0 ? 2.0 * perf_blocks / secs : 0);
			sum += secs;
			free_run(&r);
		}
		ksft_print_msg("%u rounds of %u reads: %.0f MAP+UNMAP/s\n",
			       rounds, perf_blocks,
			       sum > 0 ? 2.0 * perf_blocks * rounds / sum : 0);
		restore_hugepages(huge);
		ksft_finished();
	}

	/* The stock guest: 1 + 3 per boot + 3; then the assignments */
	plan = only ? 0 : 1 + 3 * 2 + 3;
	for (size_t i = 0; i < ARRAY_SIZE(assign_cfgs); i++)
		if (!only || !strcmp(only, assign_cfgs[i].name))
			plan += assign_tests(&assign_cfgs[i]);
	ksft_set_plan(plan);
	if (!only) {
		/* Two boots: the guest reboots once */
		struct cfg c = {
			.name = "vmm", .boots = 2, .blocks = blocks,
			.wild = true, .seed = time(NULL),
		};

		run_cfg(&c, vmm, &r);
		check_run(&c, &r);
		ksft_print_msg("%u reads in %.2f s\n", blocks, dd_secs(&r, 1));
		free_run(&r);
	}
	for (size_t i = 0; i < ARRAY_SIZE(assign_cfgs); i++) {
		const struct cfg *c = &assign_cfgs[i];

		if (only && strcmp(only, c->name))
			continue;
		if (edu_count() < (int)c->assign) {
			for (unsigned int k = 0; k < assign_tests(c); k++)
				ksft_test_result_skip("%s: needs %u edu devices\n",
						      c->name, c->assign);
			continue;
		}
		run_cfg(c, vmm, &r);
		check_assign(c, &r);
		free_run(&r);
	}
	restore_hugepages(huge);
	ksft_finished();
}
