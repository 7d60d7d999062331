// SPDX-License-Identifier: GPL-2.0
/*
 * vhost_iommu_fuzz: a structure-aware fuzzer of the vhost-iommu request queue.
 *
 * The program plays a hostile guest and a careless VMM against one device
 * ("VM a") while a second device with its own iommufd context ("VM b") sits
 * beside it. Each round posts a batch of requests laid out by a seeded
 * generator: every request type, valid and mutated bodies (reserved bytes,
 * unknown flags, huge and overflowing ranges), truncated readable or writable
 * parts, parts split over many descriptors including zero-length ones,
 * indirect tables, and at most one fatal chain per round (descriptor loop,
 * head or next out of range, out after in, bad or nested indirect table,
 * address outside the memory table, avail index jump). Kicks come whole or
 * in pieces, spurious or missing until the end; the VMM thread reads the
 * channel and answers in random order, sometimes with malformed answers
 * first; between and during rounds the device is reset (RESET_OWNER, close
 * and reopen, stop/start), its memory table is set again, its endpoint and
 * domain are unbound and bound again, and page requests arrive from the mock.
 *
 * Checked as it runs, for every request: it completes exactly once with the
 * used length and status the spec and the device's documented model give
 * (a model of the device below computes them from the request's bytes), the
 * tail's reserved bytes are zero, and nothing past the used length is
 * written; or, for an unparseable request, it comes back with used length 0
 * and an untouched buffer; a fatal chain is never returned and nothing
 * behind it either, until the reset. The INVALIDATE entries the mock vIOMMU
 * received match the ones the kernel served. After the run: VM b's pending
 * request, its ring and its vIOMMU's log are untouched and it still serves,
 * and VM a still serves a good request. Kernel splats are the runner's job
 * (panic_on_warn, KASAN, UBSAN, lockdep, kmemleak).
 *
 * Usage: vhost_iommu_fuzz [-n REQUESTS] [-s SEED] [-v]
 *   default 1000000 requests, seed from the clock; the seed is printed first
 *   and again on failure: "-s SEED" reproduces the run.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>

#include "vhost_iommu_lib.h"
#include "vi_hostile_lib.h"

#define RING		1024
#define MAX_BATCH	448
#define SLOT_OUT	192
#define SLOT_IN		256
#define MAX_PIECES	6
#define IND_MAX		16
#define TAIL		4
#define CANARY		0xa5
#define WAIT_MS		20000

#define ARRAY_SIZE(a)	(sizeof(a) / sizeof((a)[0]))
#define BIT64(n)	(1ULL << (n))
#define FEATURES	(BIT64(VIRTIO_F_VERSION_1) |			\
			 BIT64(VIRTIO_RING_F_INDIRECT_DESC) |		\
			 BIT64(VIRTIO_F_ANY_LAYOUT) |			\
			 BIT64(VIRTIO_IOMMU_F_MAP_UNMAP) |		\
			 BIT64(VIRTIO_IOMMU_F_PROBE) |			\
			 BIT64(VIRTIO_IOMMU_F_ATTACH_TABLE) |		\
			 BIT64(VIRTIO_IOMMU_F_PAGE_REQUEST))

/* VM a: domain 1 has one endpoint, domain 2 none, others are unbound */
#define DOM_EP		1
#define DOM_EMPTY	2
#define EP_ID		5
#define VSID_A		0x10
#define VSID_B		0x20
/* Groups of real page requests are below, forged ones above */
#define GRP_FORGED	0x10000

enum outcome {
	O_USED0,	/* returned with used length 0, buffer untouched */
	O_STATUS,	/* tail (after @payload bytes) with @status */
	O_FATAL,	/* never returned: the device stops at it */
};

struct freq {
	uint16_t head;
	bool done;
	enum outcome outcome;
	uint8_t status;
	uint32_t payload;
	uint32_t out_len;
	uint32_t in_len;
	uint8_t *out;		/* readable bytes, contiguous */
	uint8_t *in;		/* writable bytes, contiguous */
	struct vring_desc *ind;	/* indirect table of the slot */
	int fatal;		/* its fatal_kind, or -1 */
	uint16_t nr_desc;	/* descriptors in the ring or its table */
	bool indirect;
	uint32_t entries;	/* mock entries it makes if served in the kernel */
	bool bound_dom;		/* INVALIDATE of a bound domain */
};

static struct {
	uint64_t seed;
	uint64_t rng;
	bool verbose;
	struct vi_dev a, b;
	struct vi_mock ma, mb;
	uint16_t avail_idx, used_idx;	/* VM a's request queue */
	uint16_t ev_used_idx;
	pthread_mutex_t fd_lock;	/* the VMM thread vs resets */
	pthread_t vmm;
	bool vmm_stop;
	bool bound;			/* endpoint and domains bound */
	/* Figures */
	uint64_t requests, rounds, fatal, used0, forwarded_answers;
	uint64_t bad_answers, resets, reopens, stops, mem_tables, unbinds;
	uint64_t page_requests, kicks, indirect, split;
	uint64_t kernel_entries_expected, vmm_entries, mock_entries;
	uint64_t log_checks;
	uint64_t fatal_kinds[16];
	const char *phase;		/* what the main thread does, for hangs */
	bool mixed;			/* this round has slow-path requests */
	uint32_t next_grp;
	struct freq reqs[MAX_BATCH];
	uint8_t *slots;
} F;

static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	printf("not ok 1 vhost_iommu_fuzz: ");
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n# seed %llu (reproduce with -s %llu), round %llu, request %llu\n",
	       (unsigned long long)F.seed, (unsigned long long)F.seed,
	       (unsigned long long)F.rounds, (unsigned long long)F.requests);
	fflush(stdout);
	exit(1);
}

/* splitmix64: small, seedable, reproducible */
static uint64_t rnd64(void)
{
	uint64_t z = (F.rng += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint32_t rnd(uint32_t n)
{
	return n ? rnd64() % n : 0;
}

/* True with probability @pct percent */
static bool chance(unsigned int pct)
{
	return rnd(100) < pct;
}

static uint32_t hash(const uint8_t *p, size_t len)
{
	uint32_t h = 2166136261u;

	while (len--)
		h = (h ^ *p++) * 16777619u;
	return h;
}

/* Size of the readable part of a type, 0 if unknown (all features on) */
static uint32_t req_len(uint8_t type)
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
		return sizeof(struct virtio_iommu_req_probe);
	case VIRTIO_IOMMU_T_ATTACH_TABLE:
		return offsetof(struct virtio_iommu_req_attach_table, tail);
	case VIRTIO_IOMMU_T_INVALIDATE:
		return offsetof(struct virtio_iommu_req_invalidate, tail);
	case VIRTIO_IOMMU_T_PAGE_RESP:
		return offsetof(struct virtio_iommu_req_page_resp, tail);
	default:
		return 0;
	}
}

/*
 * Whether an INVALIDATE is valid: the device's rules (spec: reserved and
 * unknown bits refused, PASID scope needs F_PASID, a range in 64 bits) and
 * the iommufd core's (an unaligned address covers one more page).
 */
static bool inval_valid(const struct virtio_iommu_req_invalidate *inv)
{
	uint64_t nr = inv->nr_pages, addr = inv->address, mask, start, size;
	unsigned int ps = inv->page_size;

	if (inv->scope < VIRTIO_IOMMU_INVAL_S_DOMAIN ||
	    inv->scope > VIRTIO_IOMMU_INVAL_S_ADDRESS)
		return false;
	if (!inv->caches || inv->caches & ~VIRTIO_IOMMU_INVAL_C_MASK)
		return false;
	if (inv->flags & ~VIRTIO_IOMMU_INVAL_F_MASK)
		return false;
	for (unsigned int i = 0; i < sizeof(inv->reserved); i++)
		if (inv->reserved[i])
			return false;
	if (inv->scope == VIRTIO_IOMMU_INVAL_S_PASID &&
	    !(inv->flags & VIRTIO_IOMMU_INVAL_F_PASID))
		return false;
	if (inv->scope != VIRTIO_IOMMU_INVAL_S_ADDRESS)
		return true;
	if (ps < 12 || ps > 52 || !nr || nr > UINT64_MAX >> ps)
		return false;
	if (addr + ((nr << ps) - 1) < addr)
		return false;
	mask = (1ULL << ps) - 1;
	if (addr & mask) {
		if (nr == UINT64_MAX >> ps)
			return false;
		nr++;
	}
	start = addr & ~mask;
	size = nr << ps;
	return size - 1 <= UINT64_MAX - start;
}

/*
 * The VMM's answer to a forwarded request, a function of its bytes so that
 * the guest side knows it: INVALIDATE as the kernel would serve it, anything
 * else a status from the hash, and for PROBE a payload of a hashed length.
 */
static uint8_t vmm_status(const uint8_t *req, uint32_t len)
{
	if (req[0] == VIRTIO_IOMMU_T_INVALIDATE)
		return inval_valid((const void *)req) ? VIRTIO_IOMMU_S_OK :
							 VIRTIO_IOMMU_S_INVAL;
	return hash(req, len) % (VIRTIO_IOMMU_S_NOMEM + 1);
}

static uint32_t vmm_payload_len(const uint8_t *req, uint32_t len,
				uint32_t resp_len)
{
	uint32_t room = resp_len - TAIL;

	if (req[0] != VIRTIO_IOMMU_T_PROBE)
		return 0;
	if (room > 4096)
		room = 4096;
	return (hash(req, len) >> 8) % (room + 1);
}

static uint8_t payload_byte(const uint8_t *req, uint32_t len, uint32_t i)
{
	return (hash(req, len) + i * 7) & 0xff;
}

/* Mock entries an INVALIDATE makes when the kernel serves it */
static uint32_t inval_entries(const struct virtio_iommu_req_invalidate *inv)
{
	if (inv->domain == DOM_EP)
		return 1;
	return inv->caches & VIRTIO_IOMMU_INVAL_C_TLB ? 1 : 0;
}

/* Every 10 s: where the run is, so that a hang shows where it hangs */
static void *watchdog_thread(void *arg)
{
	(void)arg;
	for (;;) {
		sleep(10);
		printf("# %llu requests, %llu rounds, %llu VMM answers, %s\n",
		       (unsigned long long)F.requests,
		       (unsigned long long)F.rounds,
		       (unsigned long long)F.forwarded_answers,
		       __atomic_load_n(&F.phase, __ATOMIC_RELAXED));
	}
	return NULL;
}

static void phase(const char *what)
{
	__atomic_store_n(&F.phase, what, __ATOMIC_RELAXED);
}

/* ---------------------------------------------------------------- VMM */

static void *vmm_thread(void *arg)
{
	struct vhost_iommu_req_msg msgs[8];
	uint8_t buf[sizeof(struct vhost_iommu_resp_msg) + 4096 + 8];
	struct vhost_iommu_resp_msg *resp = (void *)buf;
	uint64_t rng = F.seed ^ 0x5555;
	unsigned int n, want;

	(void)arg;
	while (!__atomic_load_n(&F.vmm_stop, __ATOMIC_ACQUIRE)) {
		struct pollfd pfd = { .events = POLLIN };
		ssize_t ret;

		rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
		want = 1 + (rng >> 33) % 8;

		pthread_mutex_lock(&F.fd_lock);
		pfd.fd = F.a.fd;
		for (n = 0; n < want; n++) {
			if (poll(&pfd, 1, n ? 1 : 5) != 1)
				break;
			ret = read(F.a.fd, &msgs[n], sizeof(msgs[n]));
			if (ret < 0 && errno == EAGAIN)
				break;
			if (ret != sizeof(msgs[n]))
				die("VMM read: %zd errno %d", ret, errno);
			if (msgs[n].size != sizeof(msgs[n]) ||
			    msgs[n].version != VHOST_IOMMU_MSG_VERSION ||
			    msgs[n].type != VHOST_IOMMU_MSG_REQUEST ||
			    msgs[n].req_len != req_len(msgs[n].req[0]) ||
			    msgs[n].resp_len < TAIL)
				die("VMM: bad request message type %u len %u/%u",
				    msgs[n].req[0], msgs[n].req_len,
				    msgs[n].resp_len);
		}
		/* Answer in a random order */
		while (n) {
			struct vhost_iommu_req_msg *m;
			uint32_t plen, i, k;

			rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
			k = (rng >> 33) % n;
			m = &msgs[k];
			plen = vmm_payload_len(m->req, m->req_len, m->resp_len);
			memset(buf, 0, sizeof(*resp));
			resp->size = sizeof(*resp);
			resp->version = VHOST_IOMMU_MSG_VERSION;
			resp->type = VHOST_IOMMU_MSG_RESPONSE;
			resp->cookie = m->cookie;

			/* A careless VMM: an answer the device must refuse */
			if (((rng >> 20) & 31) == 0) {
				int expect = EINVAL;

				switch ((rng >> 40) % 4) {
				case 0:
					resp->cookie = m->cookie + 1000000;
					expect = ENOENT;
					break;
				case 1:
					resp->status = VIRTIO_IOMMU_S_NOMEM + 1;
					break;
				case 2:
					resp->payload_len = m->resp_len - TAIL + 1;
					if (m->req[0] != VIRTIO_IOMMU_T_PROBE)
						resp->payload_len = 1;
					break;
				default:
					resp->__reserved[0] = 1;
					expect = EOPNOTSUPP;
					break;
				}
				ret = write(F.a.fd, buf,
					    sizeof(*resp) + resp->payload_len);
				if (ret >= 0 || errno != expect)
					die("VMM: bad answer gave %zd errno %d, not %d",
					    ret, errno, expect);
				F.bad_answers++;
				memset(buf, 0, sizeof(*resp));
				resp->size = sizeof(*resp);
				resp->version = VHOST_IOMMU_MSG_VERSION;
				resp->type = VHOST_IOMMU_MSG_RESPONSE;
				resp->cookie = m->cookie;
			}

			resp->status = vmm_status(m->req, m->req_len);
			resp->payload_len = plen;
			for (i = 0; i < plen; i++)
				resp->payload[i] = payload_byte(m->req,
								m->req_len, i);
			/* Counted first: the guest sees it during write() */
			if (m->req[0] == VIRTIO_IOMMU_T_INVALIDATE &&
			    resp->status == VIRTIO_IOMMU_S_OK) {
				const struct virtio_iommu_req_invalidate *inv =
					(const void *)m->req;

				if (inv->domain == DOM_EP ||
				    inv->domain == DOM_EMPTY)
					__atomic_add_fetch(&F.vmm_entries,
							   inval_entries(inv),
							   __ATOMIC_RELAXED);
			}
			ret = write(F.a.fd, buf, sizeof(*resp) + plen);
			if (ret != (ssize_t)(sizeof(*resp) + plen))
				die("VMM answer: %zd errno %d", ret, errno);
			F.forwarded_answers++;
			msgs[k] = msgs[--n];
		}
		pthread_mutex_unlock(&F.fd_lock);
	}
	return NULL;
}

/* ------------------------------------------------------- device setup */

static void setup_vq(struct vi_dev *d, unsigned int index)
{
	struct vi_vq *vq = &d->vqs[index];
	struct vhost_vring_state state = { .index = index, .num = vq->num };
	struct vhost_vring_addr addr = {
		.index = index,
		.desc_user_addr = (uintptr_t)vq->desc,
		.avail_user_addr = (uintptr_t)vq->avail,
		.used_user_addr = (uintptr_t)vq->used,
	};
	struct vhost_vring_file file = { .index = index };

	memset(vq->avail, 0, 6 + 2 * vq->num);
	memset(vq->used, 0, 6 + 8 * vq->num);
	if (ioctl(d->fd, VHOST_SET_VRING_NUM, &state))
		die("SET_VRING_NUM: %d", errno);
	state.num = 0;
	if (ioctl(d->fd, VHOST_SET_VRING_BASE, &state))
		die("SET_VRING_BASE: %d", errno);
	if (ioctl(d->fd, VHOST_SET_VRING_ADDR, &addr))
		die("SET_VRING_ADDR: %d", errno);
	file.fd = vq->kick_fd;
	if (ioctl(d->fd, VHOST_SET_VRING_KICK, &file))
		die("SET_VRING_KICK: %d", errno);
	file.fd = vq->call_fd;
	if (ioctl(d->fd, VHOST_SET_VRING_CALL, &file))
		die("SET_VRING_CALL: %d", errno);
	file.fd = vq->err_fd;
	if (ioctl(d->fd, VHOST_SET_VRING_ERR, &file))
		die("SET_VRING_ERR: %d", errno);
}

static void bind_a(void)
{
	int ret = vi_bind_mock(&F.a, &F.ma, DOM_EP, EP_ID, true);

	if (!ret)
		ret = vi_set_domain(F.a.fd, 0, DOM_EMPTY, F.ma.viommu_id);
	if (ret)
		die("binding VM a: %d", ret);
	F.bound = true;
}

/* Everything after SET_OWNER, on the rings already in memory */
static void resetup_a(void)
{
	uint64_t features = FEATURES;
	uint64_t left;

	if (ioctl(F.a.fd, VHOST_SET_FEATURES, &features))
		die("SET_FEATURES: %d", errno);
	if (vi_set_mem_table(&F.a))
		die("SET_MEM_TABLE: %d", errno);
	for (unsigned int i = 0; i < VI_NR_VQS; i++)
		setup_vq(&F.a, i);
	/* The ring starts over: forget the old notifications */
	eventfd_read(F.a.vqs[0].call_fd, &left);
	eventfd_read(F.a.vqs[0].err_fd, &left);
	eventfd_read(F.a.vqs[1].call_fd, &left);
	eventfd_read(F.a.vqs[1].err_fd, &left);
	F.avail_idx = 0;
	F.used_idx = 0;
	F.ev_used_idx = 0;
	F.a.vqs[1].avail_idx = 0;
	F.a.vqs[1].used_idx = 0;
	F.a.vqs[1].free_head = 0;
	F.a.vqs[1].nr_free = F.a.vqs[1].num;
	for (unsigned int i = 0; i < F.a.vqs[1].num; i++) {
		F.a.vqs[1].desc[i].next = i + 1;
		F.a.vqs[1].chain_len[i] = 0;
	}
	if (vi_set_running(&F.a, 1))
		die("SET_RUNNING: %d", errno);
	bind_a();
}

/* A device reset between rounds: RESET_OWNER, or close and open again */
static void reset_a(bool reopen)
{
	phase("reset");
	pthread_mutex_lock(&F.fd_lock);
	if (reopen) {
		close(F.a.fd);
		F.a.fd = open("/dev/vhost-iommu", O_RDWR | O_NONBLOCK | O_CLOEXEC);
		if (F.a.fd < 0)
			die("reopen: %d", errno);
		F.reopens++;
	} else {
		if (ioctl(F.a.fd, VHOST_RESET_OWNER))
			die("RESET_OWNER: %d", errno);
		F.resets++;
	}
	if (ioctl(F.a.fd, VHOST_SET_OWNER))
		die("SET_OWNER: %d", errno);
	resetup_a();
	pthread_mutex_unlock(&F.fd_lock);
}

/* ------------------------------------------------------- generation */

static void fill_inval(uint8_t *out)
{
	struct virtio_iommu_req_invalidate *inv = (void *)out;
	static const uint32_t doms[] = { DOM_EP, DOM_EP, DOM_EP, DOM_EMPTY,
					 3, 0, 0xffffffff };

	inv->scope = 1 + rnd(3);
	inv->caches = 1 + rnd(3);
	inv->flags = rnd(16);
	if (inv->scope == VIRTIO_IOMMU_INVAL_S_PASID)
		inv->flags |= VIRTIO_IOMMU_INVAL_F_PASID;
	/* Unbound domains go to the VMM: only in mixed rounds */
	inv->domain = doms[rnd(F.mixed ? ARRAY_SIZE(doms) : 4)];
	inv->pasid = chance(80) ? 0 : rnd64();
	inv->id = rnd(0x10000);
	inv->page_size = chance(90) ? 12 + 2 * rnd(3) : rnd(80);
	inv->nr_pages = chance(90) ? 1 + rnd(64) : rnd64() >> rnd(64);
	inv->address = chance(90) ? rnd64() & 0xfffffffff000ULL : rnd64();
}

/* Change a few fields or bytes of a valid body */
static void mutate(uint8_t *out, uint32_t len)
{
	unsigned int n = 1 + rnd(3);

	while (n--) {
		uint32_t off = rnd(len);

		switch (rnd(4)) {
		case 0:		/* a random byte */
			out[off] = rnd(256);
			break;
		case 1:		/* a bit */
			out[off] ^= 1 << rnd(8);
			break;
		case 2:		/* all ones */
			out[off] = 0xff;
			break;
		default:	/* a reserved byte of INVALIDATE or the head */
			if (out[0] == VIRTIO_IOMMU_T_INVALIDATE)
				out[41 + rnd(19)] = 1 + rnd(255);
			else
				out[1 + rnd(3)] = 1 + rnd(255);
			break;
		}
	}
}

/*
 * Write the request of slot @k: its bytes and lengths, and the outcome the
 * device must give it. @page_resp: the group of a real page request to
 * answer, or 0.
 */
static void gen_req(struct freq *r, uint32_t page_resp)
{
	static const uint8_t slow[] = {
		VIRTIO_IOMMU_T_ATTACH, VIRTIO_IOMMU_T_DETACH,
		VIRTIO_IOMMU_T_MAP, VIRTIO_IOMMU_T_UNMAP,
		VIRTIO_IOMMU_T_PROBE, VIRTIO_IOMMU_T_ATTACH_TABLE,
	};
	uint32_t pick = rnd(100), rl, full;
	uint8_t type;

	memset(r->out, 0, SLOT_OUT);
	memset(r->in, CANARY, SLOT_IN);
	r->done = false;
	r->payload = 0;
	r->entries = 0;
	r->bound_dom = false;

	if (page_resp) {
		struct virtio_iommu_req_page_resp *pr = (void *)r->out;

		type = VIRTIO_IOMMU_T_PAGE_RESP;
		pr->endpoint = EP_ID;
		pr->group = page_resp;
		pr->code = VIRTIO_IOMMU_PAGE_RESP_SUCCESS;
	} else if (pick < 70 || (!F.mixed && pick < 88)) {
		type = VIRTIO_IOMMU_T_INVALIDATE;
		fill_inval(r->out);
	} else if (pick < 88) {
		type = slow[rnd(sizeof(slow))];
		for (uint32_t i = 4; i < req_len(type); i++)
			r->out[i] = chance(70) ? 0 : rnd(256);
	} else if (pick < 93) {
		struct virtio_iommu_req_page_resp *pr = (void *)r->out;

		/* A forged answer: no such group */
		type = VIRTIO_IOMMU_T_PAGE_RESP;
		pr->endpoint = chance(50) ? EP_ID : rnd64();
		pr->group = GRP_FORGED + rnd(1000);
		pr->code = rnd(4);
		pr->flags = chance(80) ? 0 : rnd64();
	} else {
		/* Unknown: 0, 9..255 */
		type = chance(20) ? 0 : 9 + rnd(247);
		for (uint32_t i = 4; i < SLOT_OUT; i++)
			r->out[i] = rnd(256);
	}
	r->out[0] = type;
	rl = req_len(type);
	full = rl ? rl : 4 + rnd(64);
	if (!page_resp && rl && chance(20))
		mutate(r->out, rl);
	type = r->out[0];
	rl = req_len(type);
	/* A mutated type that the VMM would get: keep fast rounds fast */
	if (!F.mixed && type != VIRTIO_IOMMU_T_INVALIDATE &&
	    type != VIRTIO_IOMMU_T_PAGE_RESP && rl) {
		r->out[0] = 0;
		type = 0;
		rl = 0;
	}
	if (!F.mixed && type == VIRTIO_IOMMU_T_INVALIDATE) {
		struct virtio_iommu_req_invalidate *inv = (void *)r->out;

		if (inv->domain != DOM_EP && inv->domain != DOM_EMPTY)
			inv->domain = DOM_EP;
	}

	/* Lengths of the readable and writable parts */
	r->out_len = full;
	if (!page_resp && chance(6))
		r->out_len = rnd(full);			/* truncated */
	else if (chance(5))
		r->out_len = full + rnd(SLOT_OUT - full + 1);	/* extra */
	r->in_len = TAIL;
	if (type == VIRTIO_IOMMU_T_PROBE)
		r->in_len = TAIL + rnd(SLOT_IN - TAIL + 1);
	if (!page_resp && chance(5))
		r->in_len = rnd(TAIL);			/* no room for the tail */
	else if (chance(5))
		r->in_len = TAIL + rnd(SLOT_IN - TAIL + 1);

	/* The model */
	if (r->out_len < 4 || r->in_len < TAIL || !rl) {
		r->outcome = O_USED0;
		return;
	}
	r->outcome = O_STATUS;
	if (r->out_len < rl) {
		r->status = VIRTIO_IOMMU_S_INVAL;
		return;
	}
	if (type == VIRTIO_IOMMU_T_PAGE_RESP) {
		struct virtio_iommu_req_page_resp *pr = (void *)r->out;
		bool resv = false;

		for (unsigned int i = 0; i < sizeof(pr->reserved); i++)
			resv |= pr->reserved[i];
		r->status = VIRTIO_IOMMU_S_INVAL;
		if (page_resp && pr->group == page_resp && !pr->flags &&
		    !pr->pasid && pr->endpoint == EP_ID && !resv &&
		    pr->code <= VIRTIO_IOMMU_PAGE_RESP_FAILURE)
			r->status = VIRTIO_IOMMU_S_OK;
		return;
	}
	r->status = vmm_status(r->out, rl);
	r->payload = vmm_payload_len(r->out, rl, r->in_len);
	if (type == VIRTIO_IOMMU_T_INVALIDATE) {
		const struct virtio_iommu_req_invalidate *inv = (void *)r->out;

		r->bound_dom = inv->domain == DOM_EP ||
			       inv->domain == DOM_EMPTY;
		if (r->bound_dom && r->status == VIRTIO_IOMMU_S_OK)
			r->entries = inval_entries(inv);
	}
}

/* ------------------------------------------------------- layout */

struct piece {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
};

/*
 * Cut @len bytes at @buf into at most @max pieces, some of zero length. A
 * zero-length piece may point anywhere; in the readable part it may even be
 * marked writable (it makes no iovec, so nothing is "out after in").
 */
static unsigned int cut(struct piece *p, unsigned int max, uint8_t *buf,
			uint32_t len, bool writable)
{
	unsigned int n = 0, parts = chance(25) ? 1 + rnd(max / 2) : 1;
	uint16_t flags = writable ? VRING_DESC_F_WRITE : 0;
	uint32_t off = 0;

	if (!len && chance(50))
		return 0;
	for (unsigned int k = 0; k < parts; k++) {
		uint32_t take = k + 1 == parts ? len - off : rnd(len - off + 1);

		if (chance(10)) {
			p[n].addr = chance(50) ? (uintptr_t)buf : rnd64();
			p[n].len = 0;
			p[n].flags = writable || chance(50) ?
				     VRING_DESC_F_WRITE : 0;
			n++;
		}
		p[n].addr = (uintptr_t)buf + off;
		p[n].len = take;
		p[n].flags = flags;
		off += take;
		n++;
	}
	return n;
}

enum fatal_kind {
	FK_LOOP, FK_HEAD, FK_NEXT, FK_OUT_AFTER_IN, FK_IND_LEN, FK_IND_NESTED,
	FK_IND_LOOP, FK_BAD_ADDR, FK_IND_ADDR, FK_IND_ZERO, FK_AVAIL_JUMP,
	FK_NR,
};

/*
 * Lay request @r out in the descriptor table from @*next, directly or in its
 * indirect table; make it fatal as @fatal says (-1: not). Return the head to
 * publish.
 */
static uint16_t layout(struct freq *r, uint16_t *next, int fatal)
{
	struct vring_desc *desc = F.a.vqs[0].desc;
	struct piece p[2 * MAX_PIECES + 3];
	unsigned int n, nr_out;
	bool indirect = (chance(15) && fatal != FK_LOOP && fatal != FK_NEXT) ||
			fatal == FK_IND_LEN ||
			fatal == FK_IND_NESTED || fatal == FK_IND_LOOP ||
			fatal == FK_IND_ADDR || fatal == FK_IND_ZERO;
	struct vring_desc *tab;
	uint16_t head = *next;

	nr_out = cut(p, MAX_PIECES, r->out, r->out_len, false);
	n = nr_out + cut(p + nr_out, MAX_PIECES, r->in, r->in_len, true);
	if (!n) {
		p[0].addr = (uintptr_t)r->out;
		p[0].len = 0;
		p[0].flags = 0;
		n = 1;
	}
	if (n > 2)
		F.split++;

	if (fatal == FK_OUT_AFTER_IN) {
		/* A non-empty writable piece first */
		memmove(p + 1, p, n * sizeof(p[0]));
		p[0].addr = (uintptr_t)r->in;
		p[0].len = 1 + rnd(TAIL);
		p[0].flags = VRING_DESC_F_WRITE;
		n++;
		if (!r->out_len) {
			p[n].addr = (uintptr_t)r->out;
			p[n].len = 1;
			p[n].flags = 0;
			n++;
		}
	}
	if (fatal == FK_BAD_ADDR) {
		unsigned int k = rnd(n);

		p[k].addr = 0x10000000000ULL + rnd(0x1000);
		p[k].len = 1 + rnd(64);
	}

	r->fatal = fatal;
	r->nr_desc = n;
	r->indirect = indirect;
	if (indirect) {
		F.indirect++;
		tab = r->ind;
		for (unsigned int i = 0; i < n; i++) {
			tab[i].addr = p[i].addr;
			tab[i].len = p[i].len;
			tab[i].flags = p[i].flags;
			tab[i].next = i + 1;
			if (i + 1 < n)
				tab[i].flags |= VRING_DESC_F_NEXT;
		}
		if (fatal == FK_IND_NESTED)
			tab[rnd(n)].flags |= VRING_DESC_F_INDIRECT;
		if (fatal == FK_IND_LOOP) {
			tab[n - 1].flags |= VRING_DESC_F_NEXT;
			tab[n - 1].next = rnd(n);
		}
		desc[head].addr = (uintptr_t)tab;
		desc[head].len = n * sizeof(*tab);
		if (fatal == FK_IND_LEN)
			desc[head].len = n * sizeof(*tab) - 1 - rnd(15);
		if (fatal == FK_IND_ADDR)
			desc[head].addr = 0x20000000000ULL;
		if (fatal == FK_IND_ZERO)
			desc[head].len = 0;
		desc[head].flags = VRING_DESC_F_INDIRECT;
		desc[head].next = 0;
		*next = head + 1;
		if (fatal == FK_HEAD)
			return RING + rnd(0x10000 - RING);
		return head;
	}

	for (unsigned int i = 0; i < n; i++) {
		uint16_t d = head + i;

		desc[d].addr = p[i].addr;
		desc[d].len = p[i].len;
		desc[d].flags = p[i].flags;
		desc[d].next = d + 1;
		if (i + 1 < n)
			desc[d].flags |= VRING_DESC_F_NEXT;
	}
	if (fatal == FK_LOOP) {
		desc[head + n - 1].flags |= VRING_DESC_F_NEXT;
		desc[head + n - 1].next = head + rnd(n);
	}
	if (fatal == FK_NEXT) {
		desc[head + n - 1].flags |= VRING_DESC_F_NEXT;
		desc[head + n - 1].next = RING + rnd(0x10000 - RING);
	}
	*next = head + n;
	if (fatal == FK_HEAD)
		return RING + rnd(0x10000 - RING);
	return head;
}

/* ------------------------------------------------------- checking */

static void check_used(struct freq *r, uint32_t len)
{
	uint32_t i;

	if (r->done)
		die("head %u returned twice", r->head);
	if (r->outcome == O_FATAL)
		die("fatal chain (kind %d, %u desc%s, type %u out %u in %u) head %u back (len %u)",
		    r->fatal, r->nr_desc, r->indirect ? " indirect" : "",
		    r->out[0], r->out_len, r->in_len, r->head, len);
	r->done = true;
	if (r->outcome == O_USED0) {
		if (len)
			die("type %u (out %u in %u): used length %u, not 0",
			    r->out[0], r->out_len, r->in_len, len);
		for (i = 0; i < SLOT_IN; i++)
			if (r->in[i] != CANARY)
				die("type %u: unparseable request written at %u",
				    r->out[0], i);
		F.used0++;
		return;
	}
	if (len != r->payload + TAIL)
		die("type %u (out %u in %u): used length %u, not %u",
		    r->out[0], r->out_len, r->in_len, len, r->payload + TAIL);
	for (i = 0; i < r->payload; i++)
		if (r->in[i] != payload_byte(r->out, req_len(r->out[0]), i))
			die("PROBE payload byte %u wrong", i);
	if (r->in[r->payload] != r->status)
		die("type %u (out %u in %u): status %u, not %u", r->out[0],
		    r->out_len, r->in_len, r->in[r->payload], r->status);
	for (i = 1; i < TAIL; i++)
		if (r->in[r->payload + i])
			die("tail reserved byte %u is %#x", i,
			    r->in[r->payload + i]);
	for (i = r->payload + TAIL; i < SLOT_IN; i++)
		if (r->in[i] != CANARY)
			die("type %u: written past the used length at %u",
			    r->out[0], i);
	if (r->out[0] == VIRTIO_IOMMU_T_INVALIDATE && r->bound_dom)
		F.kernel_entries_expected += r->entries;
}

static void kick(void)
{
	eventfd_write(F.a.vqs[0].kick_fd, 1);
	F.kicks++;
}

static void publish(uint16_t head)
{
	struct vring_avail *avail = F.a.vqs[0].avail;

	avail->ring[F.avail_idx % RING] = head;
	F.avail_idx++;
	__atomic_store_n(&avail->idx, F.avail_idx, __ATOMIC_RELEASE);
}

/* Take used entries until @want requests completed */
static void collect(unsigned int nr, unsigned int want)
{
	struct vring_used *used = F.a.vqs[0].used;
	struct timespec start, now;
	unsigned int got = 0;
	static int by_head[RING];
	bool first = true;

	for (unsigned int k = 0; k < RING; k++)
		by_head[k] = -1;
	for (unsigned int k = 0; k < nr; k++)
		if (F.reqs[k].head < RING)
			by_head[F.reqs[k].head] = k;

	clock_gettime(CLOCK_MONOTONIC, &start);
	while (got < want) {
		uint16_t idx = __atomic_load_n(&used->idx, __ATOMIC_ACQUIRE);

		while (F.used_idx != idx) {
			struct vring_used_elem *e = &used->ring[F.used_idx % RING];

			if (e->id >= RING || by_head[e->id] < 0)
				die("used id %u was not posted", e->id);
			check_used(&F.reqs[by_head[e->id]], e->len);
			F.used_idx++;
			got++;
		}
		if (got >= want)
			break;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if ((now.tv_sec - start.tv_sec) * 1000 +
		    (now.tv_nsec - start.tv_nsec) / 1000000 > WAIT_MS) {
			for (unsigned int k = 0; k < nr; k++)
				if (!F.reqs[k].done && F.reqs[k].outcome != O_FATAL)
					die("request %u (head %u type %u) not returned: %u of %u",
					    k, F.reqs[k].head, F.reqs[k].out[0],
					    got, want);
		}
		{
			struct pollfd pfd = { .fd = F.a.vqs[0].call_fd,
					      .events = POLLIN };
			eventfd_t v;

			if (poll(&pfd, 1, first ? 1 : 50) == 1)
				eventfd_read(pfd.fd, &v);
			first = false;
		}
	}
}

/* The entries the mock vIOMMU got match what the kernel served */
static void check_log(bool exact)
{
	uint32_t entries, calls;
	uint64_t kernel;

	if (vi_mock_log(F.ma.iommufd, F.ma.viommu_id, &entries, &calls))
		die("reading the mock log: %d", errno);
	F.mock_entries += entries;
	kernel = F.kernel_entries_expected -
		 __atomic_load_n(&F.vmm_entries, __ATOMIC_RELAXED);
	if (exact && F.mock_entries != kernel)
		die("mock vIOMMU got %llu entries, the kernel served %llu",
		    (unsigned long long)F.mock_entries,
		    (unsigned long long)kernel);
	if (!exact) {
		/* Bindings changed in the round: start counting again */
		F.kernel_entries_expected = 0;
		__atomic_store_n(&F.vmm_entries, 0, __ATOMIC_RELAXED);
		F.mock_entries = 0;
	}
	F.log_checks++;
}

/* Page requests for the round: deliver @nr groups to the guest */
static unsigned int page_requests(uint32_t *grps, unsigned int nr)
{
	struct vi_vq *ev = &F.a.vqs[1];
	uint32_t id, len;
	unsigned int got = 0;

	for (unsigned int i = 0; i < nr; i++) {
		struct vi_seg seg;

		grps[i] = 1 + (F.next_grp++ % 500);
		if (vi_mock_trigger(&F.ma, grps[i], 0x100000 + i * 0x1000))
			die("TRIGGER_IOPF: %d", errno);
		seg.addr = (uint8_t *)F.slots + MAX_BATCH *
			   (SLOT_OUT + SLOT_IN + IND_MAX * 16) + i * 64;
		seg.len = sizeof(struct virtio_iommu_page_request);
		seg.writable = true;
		if (vi_post(&F.a, VI_EVENT_VQ, &seg, 1) < 0)
			die("posting an event buffer");
	}
	eventfd_write(ev->kick_fd, 1);
	while (got < nr) {
		struct virtio_iommu_page_request *rec;

		if (vi_get_used(&F.a, VI_EVENT_VQ, &id, &len, WAIT_MS))
			die("page request %u of %u not delivered", got, nr);
		if (len != sizeof(*rec))
			die("page request record length %u", len);
		rec = (void *)(uintptr_t)ev->desc[id].addr;
		if (rec->reason != VIRTIO_IOMMU_FAULT_R_PAGE_REQUEST ||
		    rec->endpoint != EP_ID)
			die("page request record: reason %u endpoint %u",
			    rec->reason, rec->endpoint);
		grps[got++] = rec->group;
	}
	F.page_requests += nr;
	return nr;
}

static void drain(int fd)
{
	eventfd_t v;

	eventfd_read(fd, &v);
}

/* Whether the error eventfd of the request queue fires within @ms */
static bool vq_error(int ms)
{
	struct pollfd pfd = { .fd = F.a.vqs[0].err_fd, .events = POLLIN };

	return poll(&pfd, 1, ms) == 1;
}

/* One round: a batch of requests, with the chosen disturbances */
static void round_once(void)
{
	unsigned int nr = 1 + rnd(MAX_BATCH), i, want = 0, pieces;
	int fatal = chance(3) ? (int)rnd(FK_NR) : -1;
	bool rebind = false, chunks = chance(20);
	unsigned int nr_grps = 0;
	uint32_t grps[8];
	uint16_t next = 0;
	int responses = 0;

	/*
	 * One round in ten has requests for the VMM, and fewer of them: a
	 * forwarded request is a barrier, everything behind it goes to the
	 * VMM too, and that path is slow.
	 */
	F.mixed = chance(10);
	if (F.mixed)
		nr = 1 + rnd(48);
	phase("page requests");
	if (chance(4)) {
		nr_grps = page_requests(grps, 1 + rnd(8));
		responses = vi_mock_responses(&F.ma);
		/* Every group is answered in this round */
		fatal = -1;
		if (nr < nr_grps)
			nr = nr_grps;
	}

	for (i = 0; i < nr; i++) {
		struct freq *r = &F.reqs[i];
		bool last;

		/* Room for one more chain of the longest kind */
		if (next + 2 * MAX_PIECES + 3 > RING)
			nr = i + 1;
		last = i == nr - 1;
		gen_req(r, i < nr_grps ? grps[i] : 0);
		if (fatal >= 0 && last)
			r->outcome = O_FATAL;
		r->head = layout(r, &next,
				 last && fatal != FK_AVAIL_JUMP ? fatal : -1);
		if (r->outcome != O_FATAL)
			want++;
	}
	if (nr_grps > nr)
		die("internal: fewer requests than page responses");
	F.requests += nr;

	phase("publish");
	/* Publish and kick: at once, in chunks, or with spurious kicks */
	pieces = chunks ? 2 + rnd(3) : 1;
	for (i = 0; i < nr; i++) {
		if (fatal == FK_AVAIL_JUMP && i == nr - 1)
			break;
		publish(F.reqs[i].head);
		if (pieces > 1 && chance(100 / pieces) && i + 1 < nr)
			kick();
		if (chance(1))
			kick();
	}
	kick();

	phase("disturbances");
	/* Disturbances while the worker runs */
	if (chance(3)) {
		pthread_mutex_lock(&F.fd_lock);
		if (vi_set_mem_table(&F.a))
			die("SET_MEM_TABLE while running: %d", errno);
		pthread_mutex_unlock(&F.fd_lock);
		F.mem_tables++;
	}
	if (chance(2)) {
		pthread_mutex_lock(&F.fd_lock);
		if (vi_set_running(&F.a, 0))
			die("SET_RUNNING 0: %d", errno);
		usleep(rnd(2000));
		if (vi_set_running(&F.a, 1))
			die("SET_RUNNING 1: %d", errno);
		pthread_mutex_unlock(&F.fd_lock);
		F.stops++;
	}
	if (chance(2) && !nr_grps) {
		/* The guest's bindings change under the worker */
		pthread_mutex_lock(&F.fd_lock);
		if (vi_set_endpoint(F.a.fd, VHOST_IOMMU_BIND_UNBIND, EP_ID, 0,
				    0, 0) ||
		    vi_set_domain(F.a.fd, VHOST_IOMMU_BIND_UNBIND, DOM_EP, 0) ||
		    vi_set_domain(F.a.fd, VHOST_IOMMU_BIND_UNBIND, DOM_EMPTY, 0))
			die("unbinding while running: %d", errno);
		usleep(rnd(1000));
		if (vi_set_domain(F.a.fd, 0, DOM_EP, F.ma.viommu_id) ||
		    vi_set_domain(F.a.fd, 0, DOM_EMPTY, F.ma.viommu_id) ||
		    vi_set_endpoint(F.a.fd, 0, EP_ID, DOM_EP, F.ma.idev_id,
				    VSID_A))
			die("binding again while running: %d", errno);
		pthread_mutex_unlock(&F.fd_lock);
		F.unbinds++;
		rebind = true;
	}

	phase("collect");
	collect(nr, want);
	phase("after collect");
	if (fatal >= 0) {
		if (fatal == FK_AVAIL_JUMP) {
			/* The index moves further than the ring holds */
			drain(F.a.vqs[0].err_fd);
			F.avail_idx += RING + 1 + rnd(1000);
			__atomic_store_n(&F.a.vqs[0].avail->idx, F.avail_idx,
					 __ATOMIC_RELEASE);
			kick();
		}
		/* The device complains, and nothing comes back; reset */
		if (!vq_error(WAIT_MS))
			die("fatal chain (kind %d): no error signalled", fatal);
		usleep(1000);
		if (__atomic_load_n(&F.a.vqs[0].used->idx, __ATOMIC_ACQUIRE) !=
		    F.used_idx)
			die("used entries after the fatal chain (kind %d)",
			    fatal);
		F.fatal++;
		F.fatal_kinds[fatal]++;
		check_log(!rebind);
		reset_a(chance(30));
	} else if (nr_grps) {
		int now = vi_mock_responses(&F.ma);

		if (now != responses + (int)nr_grps)
			die("mock got %d page responses, not %u",
			    now - responses, nr_grps);
	}
	if (fatal < 0 && chance(1)) {
		check_log(!rebind);
		reset_a(chance(30));
	} else if (rebind || F.rounds % 64 == 0) {
		check_log(!rebind);
	}
	F.rounds++;
}

/* ------------------------------------------------------- VM b */

static struct {
	uint8_t *attach, *attach_resp;
	int head;
} B;

static void setup_b(void)
{
	uint32_t len = offsetof(struct virtio_iommu_req_attach, tail);
	struct pollfd pfd = { .events = POLLIN };
	int ret;

	ret = vi_open(&F.b);
	if (!ret)
		ret = vi_setup(&F.b, FEATURES, 64);
	if (ret)
		die("VM b setup: %d", ret);
	ret = vi_mock_setup(&F.mb, VSID_B);
	if (!ret)
		ret = vi_bind_mock(&F.b, &F.mb, DOM_EP, EP_ID, true);
	if (ret)
		die("VM b mock: %d", ret);
	/* A request waits at VM b's VMM, unread, for the whole run */
	B.attach = vi_alloc(&F.b, len);
	B.attach_resp = vi_alloc(&F.b, TAIL);
	memset(B.attach, 0, len);
	B.attach[0] = VIRTIO_IOMMU_T_ATTACH;
	B.attach[4] = DOM_EP;
	B.attach[8] = EP_ID;
	memset(B.attach_resp, CANARY, TAIL);
	B.head = vi_post_req(&F.b, B.attach, len, B.attach_resp, TAIL);
	vi_kick(&F.b, VI_REQ_VQ);
	pfd.fd = F.b.fd;
	if (poll(&pfd, 1, WAIT_MS) != 1)
		die("VM b: the ATTACH did not reach its VMM");
}

static void check_b(void)
{
	uint32_t len = offsetof(struct virtio_iommu_req_attach, tail);
	struct vhost_iommu_req_msg msg;
	struct virtio_iommu_req_invalidate *inv;
	uint32_t entries, calls, id, used_len;
	uint8_t *resp;
	int head;

	if (vi_nr_used(&F.b, VI_REQ_VQ))
		die("VM b: its ring moved");
	if (vi_mock_log(F.mb.iommufd, F.mb.viommu_id, &entries, &calls) ||
	    entries || calls)
		die("VM b: its vIOMMU got %u entries in %u calls", entries,
		    calls);
	if (vi_read_msg(&F.b, &msg, 1000) != sizeof(msg) ||
	    msg.req_len != len || memcmp(msg.req, B.attach, len))
		die("VM b: its pending request changed");
	if (vi_answer(&F.b, msg.cookie, VIRTIO_IOMMU_S_OK, NULL, 0) ||
	    vi_get_used(&F.b, VI_REQ_VQ, &id, &used_len, WAIT_MS) ||
	    id != (uint32_t)B.head || used_len != TAIL ||
	    B.attach_resp[0] != VIRTIO_IOMMU_S_OK)
		die("VM b: its ATTACH did not complete");

	/* And it serves in the kernel */
	inv = vi_alloc(&F.b, sizeof(*inv));
	resp = vi_alloc(&F.b, TAIL);
	memset(inv, 0, sizeof(*inv));
	memset(resp, CANARY, TAIL);
	inv->head.type = VIRTIO_IOMMU_T_INVALIDATE;
	inv->scope = VIRTIO_IOMMU_INVAL_S_DOMAIN;
	inv->caches = VIRTIO_IOMMU_INVAL_C_TLB;
	inv->domain = DOM_EP;
	head = vi_post_req(&F.b, inv, offsetof(typeof(*inv), tail), resp,
			   TAIL);
	vi_kick(&F.b, VI_REQ_VQ);
	if (vi_get_used(&F.b, VI_REQ_VQ, &id, &used_len, WAIT_MS) ||
	    id != (uint32_t)head || resp[0] != VIRTIO_IOMMU_S_OK)
		die("VM b: an INVALIDATE failed after the run");
	if (vi_mock_log(F.mb.iommufd, F.mb.viommu_id, &entries, &calls) ||
	    entries != 1)
		die("VM b: %u entries for one INVALIDATE", entries);
}

/* VM a still serves: one good INVALIDATE, in the kernel */
static void check_a_serves(void)
{
	struct freq *r = &F.reqs[0];
	struct virtio_iommu_req_invalidate *inv = (void *)r->out;
	uint16_t next = 0;

	memset(r->out, 0, SLOT_OUT);
	memset(r->in, CANARY, SLOT_IN);
	inv->head.type = VIRTIO_IOMMU_T_INVALIDATE;
	inv->scope = VIRTIO_IOMMU_INVAL_S_ADDRESS;
	inv->caches = VIRTIO_IOMMU_INVAL_C_TLB;
	inv->domain = DOM_EP;
	inv->address = 0x200000;
	inv->nr_pages = 2;
	inv->page_size = 12;
	r->out_len = offsetof(typeof(*inv), tail);
	r->in_len = TAIL;
	r->outcome = O_STATUS;
	r->status = VIRTIO_IOMMU_S_OK;
	r->payload = 0;
	r->done = false;
	r->bound_dom = true;
	r->entries = 1;
	F.reqs[0].head = 0;
	F.a.vqs[0].desc[0] = (struct vring_desc){
		.addr = (uintptr_t)r->out, .len = r->out_len,
		.flags = VRING_DESC_F_NEXT, .next = 1 };
	F.a.vqs[0].desc[1] = (struct vring_desc){
		.addr = (uintptr_t)r->in, .len = TAIL,
		.flags = VRING_DESC_F_WRITE };
	(void)next;
	publish(0);
	kick();
	collect(1, 1);
	check_log(true);
}

int main(int argc, char **argv)
{
	uint64_t target = 1000000;
	struct timespec t0, t1;
	double secs;
	int opt, ret;

	F.seed = time(NULL) ^ getpid();
	while ((opt = getopt(argc, argv, "n:s:vh")) != -1) {
		switch (opt) {
		case 'n':
			target = strtoull(optarg, NULL, 0);
			break;
		case 's':
			F.seed = strtoull(optarg, NULL, 0);
			break;
		case 'v':
			F.verbose = true;
			break;
		default:
			printf("usage: %s [-n REQUESTS] [-s SEED] [-v]\n",
			       argv[0]);
			return 2;
		}
	}
	F.rng = F.seed;
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("TAP version 13\n1..1\n# seed %llu, %llu requests\n",
	       (unsigned long long)F.seed, (unsigned long long)target);

	ret = vi_open(&F.a);
	if (ret == -ENOENT) {
		printf("ok 1 # SKIP no /dev/vhost-iommu\n");
		return 4;
	}
	if (!ret)
		ret = vi_setup(&F.a, FEATURES, RING);
	if (ret)
		die("VM a setup: %d", ret);
	ret = vi_mock_setup(&F.ma, VSID_A);
	if (ret == -ENOTTY || ret == -ENOENT) {
		printf("ok 1 # SKIP no iommufd selftest mock\n");
		return 4;
	}
	if (ret)
		die("VM a mock: %d", ret);
	bind_a();
	setup_b();

	F.slots = vi_alloc(&F.a, MAX_BATCH * (SLOT_OUT + SLOT_IN + IND_MAX * 16) +
			   64 * 8);
	if (!F.slots)
		die("no room for the request buffers");
	for (unsigned int i = 0; i < MAX_BATCH; i++) {
		uint8_t *s = F.slots + i * (SLOT_OUT + SLOT_IN + IND_MAX * 16);

		F.reqs[i].out = s;
		F.reqs[i].in = s + SLOT_OUT;
		F.reqs[i].ind = (void *)(s + SLOT_OUT + SLOT_IN);
	}
	/* The lib's kicker thread is not used: kicks come from here */
	pthread_mutex_init(&F.fd_lock, NULL);
	phase("start");
	{
		pthread_t wd;

		if (pthread_create(&wd, NULL, watchdog_thread, NULL))
			die("watchdog thread");
	}
	if (pthread_create(&F.vmm, NULL, vmm_thread, NULL))
		die("VMM thread");

	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (F.requests < target) {
		round_once();
		if (F.verbose && F.rounds % 500 == 0)
			printf("# %llu requests, %llu rounds\n",
			       (unsigned long long)F.requests,
			       (unsigned long long)F.rounds);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;

	check_a_serves();
	__atomic_store_n(&F.vmm_stop, true, __ATOMIC_RELEASE);
	pthread_join(F.vmm, NULL);
	check_b();

	printf("# %llu requests in %llu rounds, %.1f s, %.0f requests/s\n",
	       (unsigned long long)F.requests, (unsigned long long)F.rounds,
	       secs, F.requests / secs);
	printf("# used length 0: %llu, fatal chains: %llu, indirect: %llu, split: %llu\n",
	       (unsigned long long)F.used0, (unsigned long long)F.fatal,
	       (unsigned long long)F.indirect, (unsigned long long)F.split);
	printf("# VMM answers: %llu (+%llu refused), page requests: %llu, kicks: %llu\n",
	       (unsigned long long)F.forwarded_answers,
	       (unsigned long long)F.bad_answers,
	       (unsigned long long)F.page_requests,
	       (unsigned long long)F.kicks);
	printf("# RESET_OWNER: %llu, reopen: %llu, stop/start: %llu, ",
	       (unsigned long long)F.resets, (unsigned long long)F.reopens,
	       (unsigned long long)F.stops);
	printf("SET_MEM_TABLE: %llu, unbind/bind: %llu, log checks: %llu\n",
	       (unsigned long long)F.mem_tables,
	       (unsigned long long)F.unbinds, (unsigned long long)F.log_checks);
	/*
	 * Loop, head, next, out after in, indirect length, nested indirect,
	 * indirect loop, address, indirect address, empty indirect, avail jump
	 */
	printf("# fatal chains of each kind:");
	for (int k = 0; k < FK_NR; k++)
		printf(" %llu", (unsigned long long)F.fatal_kinds[k]);
	printf("\n");
	/* A default run must have met every kind */
	for (int k = 0; k < FK_NR; k++)
		if (target >= 200000 && !F.fatal_kinds[k])
			die("fatal kind %d never drawn", k);
	printf("ok 1 vhost_iommu_fuzz seed %llu\n", (unsigned long long)F.seed);

	vi_close(&F.a);
	vi_close(&F.b);
	vi_mock_close(&F.ma);
	vi_mock_close(&F.mb);
	return 0;
}
