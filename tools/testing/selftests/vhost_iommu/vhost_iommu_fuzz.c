// SPDX-License-Identifier: GPL-2.0
/*
 * vhost_iommu_fuzz: a structure-aware fuzzer of the vhost-iommu queues (v2:
 * the page-request queue and the invalidation queues).
 *
 * The program plays a hostile guest and a careless VMM against one device
 * ("VM a", two invalidation queues) while a second device with its own
 * iommufd context ("VM b") sits beside it. Each round posts a batch of
 * requests on one or both invalidation queues, laid out by a seeded
 * generator: INVALIDATE (valid and mutated: reserved bytes, unknown scope,
 * caches and flags bits, huge and overflowing ranges, bound, endpoint-less
 * and unbound domains), PAGE_RESP (real groups, forged ones, another VM's),
 * the other request types and unknown ones (which an invalidation queue
 * leaves with used length 0), truncated readable or writable parts, parts
 * split over many descriptors including zero-length ones, indirect tables,
 * and at most one fatal chain per round (descriptor loop, head or next out
 * of range, out after in, bad or nested indirect table, address outside the
 * memory table, avail index jump). Kicks come whole or in pieces, spurious or
 * missing until the end. Page requests of the mock device are delivered on
 * the page-request queue and answered on either invalidation queue, or left
 * held for a reset to answer. In some rounds the vDEVICE of one of the two
 * endpoints of a domain is gone (B1: its entries are skipped, nothing else
 * changes). Between and during rounds the device is
 * stopped and started, its memory table is set again, its endpoint and
 * domains are unbound and bound again, its rings are changed while stopped
 * (GET_VRING_BASE must be exact, nothing may survive), it is reset
 * (VHOST_IOMMU_RESET, RESET_OWNER, close and reopen), and a careless VMM
 * thread issues binding ioctls the device must refuse, while the worker runs.
 *
 * Checked as it runs, for every request: it completes exactly once with the
 * used length and status the spec and the interface give (a model below
 * computes them from the request's bytes and the bindings), the tail's
 * reserved bytes are zero and nothing past the used length is written; or,
 * for a request an invalidation queue does not take, it comes back with used
 * length 0 and an untouched buffer; a fatal chain is never returned and
 * nothing behind it on its queue either, until the reset, and the queue's
 * error eventfd fires (and no other time). No completion overtakes an
 * earlier INVALIDATE of its queue that the driver has not done yet (the mock
 * vIOMMU's log is read when one is seen ahead), and requests complete in
 * ring order within a queue, as documented. The entries the mock vIOMMU
 * received are those the B1 shape gives (one domain entry for C_TLB, one
 * per endpoint). Page responses reach the mock device once; held groups are
 * answered by the reset. After the run: VM b's rings, its vIOMMU's log and
 * its held page request are untouched and it still serves, and VM a still
 * serves on both queues. Kernel splats are the runner's job (panic_on_warn,
 * KASAN, UBSAN, lockdep, kmemleak).
 *
 * Usage: vhost_iommu_fuzz [-n REQUESTS] [-s SEED] [-v]
 *   default 1000000 requests, seed from the clock; the seed is printed first
 *   and again on failure: "-s SEED" reproduces the run (the VMM thread's
 *   timing aside).
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

#include "vhost_iommu_utils.h"

#define NQ		2	/* invalidation queues of VM a */
#define RING		1024
#define MAX_BATCH	448
#define SLOT_OUT	192
#define SLOT_IN		256
#define SLOT		(SLOT_OUT + SLOT_IN + IND_MAX * 16)
#define MAX_PIECES	6
#define IND_MAX		16
#define TAIL		4
#define CANARY		0xa5
#define WAIT_MS		20000
#define MAX_GRPS	8

#define ARRAY_SIZE(a)	(sizeof(a) / sizeof((a)[0]))
#define BIT64(n)	(1ULL << (n))
#define FEATURES	(BIT64(VIRTIO_F_VERSION_1) |			\
			 BIT64(VIRTIO_RING_F_INDIRECT_DESC) |		\
			 BIT64(VIRTIO_IOMMU_F_ATTACH_TABLE) |		\
			 BIT64(VIRTIO_IOMMU_F_PAGE_REQUEST) |		\
			 BIT64(VIRTIO_IOMMU_F_INVALQ))
#define ST(s)		(1u << (s))

/* VM a: domain 1 has two endpoints, domain 2 none, others are unbound */
#define DOM_EP		1
#define DOM_EMPTY	2
#define DOM_UNBOUND	3	/* the careless VMM's bind attempts target it */
#define EP_ID		5
#define EP2_ID		6	/* the second endpoint of DOM_EP */
#define NR_EP		2
#define VSID_A		0x10
#define VSID_A2		0x11
#define VSID_B		0x20
/* Groups of real page requests are below, forged ones above */
#define GRP_FORGED	0x10000
#define GRP_B		(GRP_FORGED + 77)	/* VM b's held group */

enum outcome {
	O_USED0,	/* returned with used length 0, buffer untouched */
	O_STATUS,	/* a tail with a status of @stmask */
	O_FATAL,	/* never returned: the queue stops at it */
};

struct freq {
	uint16_t head;
	uint8_t q;		/* invalidation queue, 0..NQ-1 */
	bool done;
	enum outcome outcome;
	uint32_t stmask;	/* the statuses the model allows */
	uint32_t out_len;
	uint32_t in_len;
	uint8_t *out;		/* readable bytes, contiguous */
	uint8_t *in;		/* writable bytes, contiguous */
	struct vring_desc *ind;	/* indirect table of the slot */
	int fatal;		/* its fatal_kind, or -1 */
	uint16_t nr_desc;	/* descriptors in the ring or its table */
	bool indirect;
	uint32_t emin, emax;	/* mock entries it makes */
	unsigned int seq;	/* position among the round's requests of its queue */
};

enum reset_kind { RK_IORESET, RK_RESET_OWNER, RK_REOPEN, RK_RING, RK_NR };

static struct {
	uint64_t seed;
	uint64_t rng;
	bool verbose;
	struct vi_dev a, b;
	struct vi_mock ma, mb;
	struct vi_mock_dev md2;		/* VM a's second endpoint */
	uint64_t features;
	uint16_t avail_idx[NQ], used_idx[NQ];
	uint16_t next_desc[NQ];
	pthread_mutex_t fd_lock;	/* the VMM thread vs resets */
	pthread_t vmm;
	bool vmm_stop;
	bool relaxed;			/* bindings change in this round */
	/* Figures */
	uint64_t requests, rounds, fatal, used0, status[16];
	uint64_t resets[RK_NR], stops, mem_tables, unbinds, event_idx_runs;
	uint64_t page_requests, held_answered, kicks, indirect, split;
	uint64_t bad_ioctls, overtakes, log_checks, stale_rounds;
	uint64_t fatal_kinds[16];
	/* Mock entries the model gives since the last log check */
	uint64_t kmin, kmax, mock_entries;
	const char *phase;		/* what the main thread does, for hangs */
	uint32_t next_grp;
	struct freq reqs[MAX_BATCH];
	/* Per queue: the round's requests in publish order */
	unsigned int ord[NQ][MAX_BATCH], nr_ord[NQ], first_open[NQ];
	/* A request the queue cannot parse this round: its error eventfd fires */
	bool may_err[NQ];
	uint8_t *slots;
	uint8_t *prq_bufs;
} F;

static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	printf("not ok 1 vhost_iommu_fuzz: ");
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n# seed %llu (reproduce with -s %llu), round %llu, request %llu, phase %s\n",
	       (unsigned long long)F.seed, (unsigned long long)F.seed,
	       (unsigned long long)F.rounds, (unsigned long long)F.requests,
	       F.phase);
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

static void phase(const char *what)
{
	__atomic_store_n(&F.phase, what, __ATOMIC_RELAXED);
}

static struct vi_vq *ivq(unsigned int q)
{
	return &F.a.vqs[VI_INVALQ(q)];
}

/* Guest-physical address of @p in VM a's RAM, and back */
static uint64_t gpa(const void *p)
{
	return vi_gpa(&F.a, p);
}

static void *hva(struct vi_dev *d, uint64_t addr)
{
	return (uint8_t *)d->mem + (addr - VI_GPA_BASE);
}

/* The mock vIOMMU's entries since the last read */
static int mock_log(int iommufd, uint32_t viommu_id, uint32_t *entries,
		    uint32_t *calls)
{
	uint32_t num = 0, lost = 0;
	int ret = vi_mock_log(iommufd, viommu_id, NULL, 0, &num, calls, &lost);

	*entries = num + lost;
	return ret;
}

static int mock_trigger(struct vi_mock *m, uint32_t grpid, uint64_t addr)
{
	return vi_mock_trigger(m, m->idev_id, 0, grpid, addr);
}

static int mock_responses(struct vi_mock *m)
{
	return vi_mock_responses(m, m->idev_id, NULL, NULL);
}

/* Size of the readable part of a type, 0 if unknown */
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

/* ------------------------------------------------------------- model */

/*
 * The iommufd checks of an entry that do not depend on @caches (interface
 * section 1): scope, flags, reserved bytes, S_PASID without F_PASID, and the
 * range (page_size in [12, 52], nr_pages not 0, the last byte of the range,
 * from the unaligned address, within 64 bits).
 */
static bool inval_common_ok(const struct virtio_iommu_req_invalidate *inv)
{
	uint64_t nr = inv->nr_pages, addr = inv->address;
	unsigned int ps = inv->page_size;

	if (inv->scope < VIRTIO_IOMMU_INVAL_S_DOMAIN ||
	    inv->scope > VIRTIO_IOMMU_INVAL_S_ADDRESS)
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
	if (ps < 12 || ps > 52 || !nr || nr - 1 > UINT64_MAX >> ps)
		return false;
	/* address + nr_pages * 2^ps - 1 <= 2^64 - 1 (2^52 4K pages from 0 fit) */
	return (((nr - 1) << ps) | ((1ULL << ps) - 1)) <= UINT64_MAX - addr;
}

static bool caches_ok(uint8_t caches)
{
	return caches && !(caches & ~VIRTIO_IOMMU_INVAL_C_MASK);
}

/*
 * The B1 shape of an INVALIDATE on a bound domain with @nr_ep endpoints, as
 * the device builds it (interface section 1): first a domain entry for the
 * IOTLB, with C_PASID cleared, unless the request names only the PASID
 * tables; then one entry per endpoint with the request's caches. iommufd
 * checks each entry and stops at the first bad one, having handled those
 * before it; the device hands the next request's entries again. The status
 * the guest sees and the entries the mock vIOMMU handles. A request that
 * makes no entry (C_PASID alone, no endpoint) has nothing to do: S_OK, as
 * documented, whatever its other fields say (nothing checks them).
 */
static void inval_shape(const struct virtio_iommu_req_invalidate *inv,
			unsigned int nr_ep, uint32_t *stmask, uint32_t *emin,
			uint32_t *emax)
{
	bool common = inval_common_ok(inv), bad = false;
	unsigned int handled = 0;

	if (inv->caches != VIRTIO_IOMMU_INVAL_C_PASID) {
		if (common && caches_ok(inv->caches & ~VIRTIO_IOMMU_INVAL_C_PASID))
			handled++;
		else
			bad = true;
	}
	for (unsigned int i = 0; i < nr_ep && !bad; i++) {
		if (common && caches_ok(inv->caches))
			handled++;
		else
			bad = true;
	}
	*stmask = bad ? ST(VIRTIO_IOMMU_S_INVAL) : ST(VIRTIO_IOMMU_S_OK);
	*emin = *emax = handled;
}

/* The model of an INVALIDATE of VM a, from the request's bytes */
static void inval_model(struct freq *r)
{
	const struct virtio_iommu_req_invalidate *inv = (const void *)r->out;
	uint32_t st2, min2, max2;

	if (inv->domain != DOM_EP && inv->domain != DOM_EMPTY) {
		r->stmask = ST(VIRTIO_IOMMU_S_NOENT);
		return;
	}
	inval_shape(inv, inv->domain == DOM_EP ? NR_EP : 0, &r->stmask, &r->emin,
		    &r->emax);
	if (!F.relaxed)
		return;
	/* Bindings change under it: unbound, or the domain without endpoint */
	inval_shape(inv, 0, &st2, &min2, &max2);
	r->stmask |= st2 | ST(VIRTIO_IOMMU_S_NOENT);
	r->emin = 0;
}

/* ------------------------------------------------------- generation */

static void fill_inval(uint8_t *out)
{
	struct virtio_iommu_req_invalidate *inv = (void *)out;
	static const uint32_t doms[] = { DOM_EP, DOM_EP, DOM_EP, DOM_EP,
					 DOM_EMPTY, DOM_EMPTY, DOM_UNBOUND, 0,
					 0xffffffff };

	inv->scope = 1 + rnd(3);
	inv->caches = 1 + rnd(3);
	inv->flags = rnd(16);
	if (inv->scope == VIRTIO_IOMMU_INVAL_S_PASID)
		inv->flags |= VIRTIO_IOMMU_INVAL_F_PASID;
	inv->domain = doms[rnd(ARRAY_SIZE(doms))];
	inv->pasid = chance(80) ? 0 : rnd64();
	inv->id = rnd(0x10000);
	inv->page_size = chance(90) ? 12 + 2 * rnd(3) : rnd(80);
	inv->nr_pages = chance(90) ? 1 + rnd(64) : rnd64() >> rnd(64);
	inv->address = chance(90) ? rnd64() & 0xfffffffff000ULL : rnd64();
	if (chance(2)) {
		/* A range ending exactly at 2^64 - 1, or one byte beyond */
		inv->page_size = 12;
		inv->nr_pages = 1 + rnd(4);
		inv->address = 0 - (inv->nr_pages << 12) + chance(50);
	} else if (chance(1)) {
		/* The whole space from 0, or from the next page (one too many) */
		inv->page_size = 12;
		inv->nr_pages = 1ULL << 52;
		inv->address = chance(50) ? 0 : 0x1000;
	}
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
 * Write request @r: its bytes and lengths, and the outcome the device must
 * give it. @page_resp: the group of a real page request to answer, or 0.
 */
static void gen_req(struct freq *r, uint32_t page_resp)
{
	static const uint8_t other[] = {
		VIRTIO_IOMMU_T_ATTACH, VIRTIO_IOMMU_T_DETACH,
		VIRTIO_IOMMU_T_MAP, VIRTIO_IOMMU_T_UNMAP,
		VIRTIO_IOMMU_T_PROBE, VIRTIO_IOMMU_T_ATTACH_TABLE,
	};
	uint32_t pick = rnd(100), rl, full;
	uint8_t type;

	memset(r->out, 0, SLOT_OUT);
	memset(r->in, CANARY, SLOT_IN);
	r->done = false;
	r->emin = 0;
	r->emax = 0;
	r->stmask = 0;

	if (page_resp) {
		struct virtio_iommu_req_page_resp *pr = (void *)r->out;

		type = VIRTIO_IOMMU_T_PAGE_RESP;
		pr->endpoint = EP_ID;
		pr->group = page_resp;
		pr->code = rnd(3);	/* SUCCESS, INVALID, FAILURE */
	} else if (pick < 78) {
		type = VIRTIO_IOMMU_T_INVALIDATE;
		fill_inval(r->out);
	} else if (pick < 84) {
		/* A request type the requestq takes, not this queue */
		type = other[rnd(sizeof(other))];
		for (uint32_t i = 4; i < req_len(type); i++)
			r->out[i] = chance(70) ? 0 : rnd(256);
	} else if (pick < 92) {
		struct virtio_iommu_req_page_resp *pr = (void *)r->out;

		/* A forged answer: no such group here, or VM b's */
		type = VIRTIO_IOMMU_T_PAGE_RESP;
		pr->endpoint = chance(50) ? EP_ID : rnd64();
		pr->group = chance(20) ? GRP_B : GRP_FORGED + rnd(1000);
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

	/* Lengths of the readable and writable parts */
	r->out_len = full;
	if (!page_resp && chance(6))
		r->out_len = rnd(full);			/* truncated */
	else if (chance(5))
		r->out_len = full + rnd(SLOT_OUT - full + 1);	/* extra */
	r->in_len = TAIL;
	if (!page_resp && chance(5))
		r->in_len = rnd(TAIL);			/* no room for the tail */
	else if (chance(5))
		r->in_len = TAIL + rnd(SLOT_IN - TAIL + 1);

	/* The model */
	if (r->out_len < 4 || r->in_len < TAIL ||
	    (type != VIRTIO_IOMMU_T_INVALIDATE &&
	     type != VIRTIO_IOMMU_T_PAGE_RESP)) {
		r->outcome = O_USED0;
		return;
	}
	r->outcome = O_STATUS;
	if (r->out_len < rl) {
		r->stmask = ST(VIRTIO_IOMMU_S_INVAL);
		return;
	}
	if (type == VIRTIO_IOMMU_T_PAGE_RESP) {
		struct virtio_iommu_req_page_resp *pr = (void *)r->out;
		bool resv = false;

		for (unsigned int i = 0; i < sizeof(pr->reserved); i++)
			resv |= pr->reserved[i];
		r->stmask = ST(VIRTIO_IOMMU_S_INVAL);
		if (page_resp && pr->group == page_resp && !pr->flags &&
		    !pr->pasid && pr->endpoint == EP_ID && !resv &&
		    pr->code <= VIRTIO_IOMMU_PAGE_RESP_FAILURE)
			r->stmask = ST(VIRTIO_IOMMU_S_OK);
		return;
	}
	inval_model(r);
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
			p[n].addr = chance(50) ? gpa(buf) : rnd64();
			p[n].len = 0;
			p[n].flags = writable || chance(50) ?
				     VRING_DESC_F_WRITE : 0;
			n++;
		}
		p[n].addr = gpa(buf) + off;
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
 * Lay request @r out in the descriptor table of its queue, directly or in
 * its indirect table; make it fatal as @fatal says (-1: not). Return the
 * head to publish.
 */
static uint16_t layout(struct freq *r, int fatal)
{
	struct vring_desc *desc = ivq(r->q)->desc;
	uint16_t *next = &F.next_desc[r->q];
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
		p[0].addr = gpa(r->out);
		p[0].len = 0;
		p[0].flags = 0;
		n = 1;
	}
	if (n > 2)
		F.split++;

	if (fatal == FK_OUT_AFTER_IN) {
		/* A non-empty writable piece first */
		memmove(p + 1, p, n * sizeof(p[0]));
		p[0].addr = gpa(r->in);
		p[0].len = 1 + rnd(TAIL);
		p[0].flags = VRING_DESC_F_WRITE;
		n++;
		if (!r->out_len) {
			p[n].addr = gpa(r->out);
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
		desc[head].addr = gpa(tab);
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

/* Read the mock vIOMMU's log into F.mock_entries */
static void read_log(void)
{
	uint32_t entries, calls;
	int ret = mock_log(F.ma.iommufd, F.ma.viommu_id, &entries, &calls);

	if (ret)
		die("reading the mock log: %d", ret);
	F.mock_entries += entries;
}

/*
 * The entries the mock vIOMMU got are within what the model gives for the
 * requests completed since the last check; everything posted is complete.
 */
static void check_log(void)
{
	read_log();
	if (F.mock_entries < F.kmin || F.mock_entries > F.kmax)
		die("mock vIOMMU got %llu entries, the model gives %llu..%llu",
		    (unsigned long long)F.mock_entries,
		    (unsigned long long)F.kmin, (unsigned long long)F.kmax);
	F.kmin = 0;
	F.kmax = 0;
	F.mock_entries = 0;
	F.log_checks++;
}

/*
 * The used entry of @r was seen. An INVALIDATE of the same queue published
 * before it and not completed yet must have been done by the driver already
 * (interface section 3): its entries are in the mock's log. The log holds
 * the entries of every completed request and of those: at least their
 * minimum (other requests in flight may add more).
 */
static void check_order(struct freq *r)
{
	unsigned int q = r->q, pend_min = 0;
	bool pending = false;

	for (unsigned int k = F.first_open[q]; k < r->seq; k++) {
		struct freq *e = &F.reqs[F.ord[q][k]];

		if (e->done || e->outcome != O_STATUS || !e->emax)
			continue;
		pending = true;
		pend_min += e->emin;
	}
	if (!pending)
		return;
	F.overtakes++;
	read_log();
	if (F.mock_entries < F.kmin + pend_min)
		die("q %u: head %u (type %u) done before an earlier INVALIDATE (log %llu < %llu)",
		    q, r->head, r->out[0],
		    (unsigned long long)F.mock_entries,
		    (unsigned long long)(F.kmin + pend_min));
}

static void check_used(struct freq *r, uint32_t len)
{
	uint32_t i;
	uint8_t st;

	if (r->done)
		die("queue %u head %u returned twice", r->q, r->head);
	if (r->outcome == O_FATAL)
		die("fatal chain (kind %d, %u desc%s, type %u out %u in %u) q %u head %u back (%u)",
		    r->fatal, r->nr_desc, r->indirect ? " indirect" : "",
		    r->out[0], r->out_len, r->in_len, r->q, r->head, len);
	check_order(r);
	/* Documented: within a queue, requests complete in ring order */
	if (r->seq != F.first_open[r->q])
		die("queue %u: head %u (type %u) completed before head %u published ahead of it",
		    r->q, r->head, r->out[0],
		    F.reqs[F.ord[r->q][F.first_open[r->q]]].head);
	r->done = true;
	while (F.first_open[r->q] < F.nr_ord[r->q] &&
	       F.reqs[F.ord[r->q][F.first_open[r->q]]].done)
		F.first_open[r->q]++;
	if (r->outcome == O_USED0) {
		if (len)
			die("type %u (out %u in %u): used length %u, not 0",
			    r->out[0], r->out_len, r->in_len, len);
		for (i = 0; i < SLOT_IN; i++)
			if (r->in[i] != CANARY)
				die("type %u: refused request written at %u",
				    r->out[0], i);
		F.used0++;
		return;
	}
	if (len != TAIL)
		die("type %u (out %u in %u): used length %u, not %u",
		    r->out[0], r->out_len, r->in_len, len, TAIL);
	st = r->in[0];
	if (st >= 32 || !(r->stmask & ST(st))) {
		const struct virtio_iommu_req_invalidate *inv = (void *)r->out;

		die("type %u (%u/%u): status %u not in %#x (s%u c%#x f%#x d%u ps%u n%#llx a%#llx)",
		    r->out[0], r->out_len, r->in_len, st, r->stmask,
		    inv->scope, inv->caches, inv->flags, inv->domain,
		    inv->page_size, (unsigned long long)inv->nr_pages,
		    (unsigned long long)inv->address);
	}
	F.status[st & 15]++;
	for (i = 1; i < TAIL; i++)
		if (r->in[i])
			die("tail reserved byte %u is %#x", i, r->in[i]);
	for (i = TAIL; i < SLOT_IN; i++)
		if (r->in[i] != CANARY)
			die("type %u: written past the used length at %u",
			    r->out[0], i);
	F.kmin += r->emin;
	F.kmax += r->emax;
}

static void kick(unsigned int q)
{
	eventfd_write(ivq(q)->kick_fd, 1);
	F.kicks++;
}

static void publish(unsigned int q, uint16_t head)
{
	struct vring_avail *avail = ivq(q)->avail;

	avail->ring[F.avail_idx[q] % RING] = head;
	F.avail_idx[q]++;
	__atomic_store_n(&avail->idx, F.avail_idx[q], __ATOMIC_RELEASE);
}

/* Take used entries until @want requests completed */
static void collect(unsigned int nr, unsigned int want)
{
	struct timespec start, now;
	unsigned int got = 0;
	static int by_head[NQ][RING];
	bool first = true;

	for (unsigned int q = 0; q < NQ; q++)
		for (unsigned int k = 0; k < RING; k++)
			by_head[q][k] = -1;
	for (unsigned int k = 0; k < nr; k++)
		if (F.reqs[k].head < RING)
			by_head[F.reqs[k].q][F.reqs[k].head] = k;

	clock_gettime(CLOCK_MONOTONIC, &start);
	while (got < want) {
		struct pollfd pfd[NQ];

		for (unsigned int q = 0; q < NQ; q++) {
			struct vring_used *used = ivq(q)->used;
			uint16_t idx = __atomic_load_n(&used->idx,
						       __ATOMIC_ACQUIRE);

			while (F.used_idx[q] != idx) {
				struct vring_used_elem *e =
					&used->ring[F.used_idx[q] % RING];

				if (e->id >= RING || by_head[q][e->id] < 0)
					die("queue %u: used id %u was not posted",
					    q, e->id);
				check_used(&F.reqs[by_head[q][e->id]], e->len);
				F.used_idx[q]++;
				got++;
			}
			/* VIRTIO_RING_F_EVENT_IDX: signal the next one */
			__atomic_store_n(&ivq(q)->avail->ring[RING],
					 F.used_idx[q], __ATOMIC_RELEASE);
			pfd[q].fd = ivq(q)->call_fd;
			pfd[q].events = POLLIN;
		}
		if (got >= want)
			break;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if ((now.tv_sec - start.tv_sec) * 1000 +
		    (now.tv_nsec - start.tv_nsec) / 1000000 > WAIT_MS) {
			for (unsigned int k = 0; k < nr; k++)
				if (!F.reqs[k].done && F.reqs[k].outcome != O_FATAL)
					die("req %u (q %u head %u type %u) not returned: %u/%u",
					    k, F.reqs[k].q, F.reqs[k].head,
					    F.reqs[k].out[0], got, want);
		}
		if (poll(pfd, NQ, first ? 1 : 50) > 0) {
			eventfd_t v;

			for (unsigned int q = 0; q < NQ; q++)
				if (pfd[q].revents)
					eventfd_read(pfd[q].fd, &v);
		}
		first = false;
	}
}

static void drain(int fd)
{
	eventfd_t v;

	eventfd_read(fd, &v);
}

/* Whether the error eventfd @fd fires within @ms */
static bool fired(int fd, int ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };

	return poll(&pfd, 1, ms) == 1;
}

/* ------------------------------------------------- the careless VMM */

/*
 * One binding or device ioctl the device must refuse, on the live device,
 * while the worker runs: reserved fields (EINVAL) and unknown flags
 * (EOPNOTSUPP) per the interface, unknown feature bits (EOPNOTSUPP, vhost),
 * a ring change while running (EBUSY, vhost), a vIOMMU that does not exist,
 * an endpoint on an unbound domain, unbinding or replacing the iommufd under
 * its bindings, another context's fault queue. Each is refused and changes
 * nothing: the model of the requests in flight stays exact. Called with
 * F.fd_lock held.
 */
static void careless_ioctl(uint64_t r)
{
	struct vhost_iommu_domain dom = {
		.domain = DOM_UNBOUND, .viommu_id = F.ma.viommu_id,
	};
	struct vhost_iommu_endpoint ep = {
		.endpoint = EP_ID + 4, .domain = DOM_EP,
		.dev_id = F.ma.idev_id, .vdev_id = VSID_A,
	};
	struct vhost_iommu_iommufd ifd = { .fd = F.ma.iommufd };
	struct vhost_iommu_fault_queue fq = { .fd = F.ma.fault_fd };
	struct vhost_vring_state state = {
		.index = VI_INVALQ((r >> 8) % NQ), .num = RING,
	};
	uint64_t features = F.features | BIT64(40 + (r >> 16) % 20);
	int fd = F.a.fd, ret, want = 0;
	unsigned int op = r % 13;

	switch (op) {
	case 0:
		dom.reserved = 1 + (r >> 20) % 0xffff;
		ret = ioctl(fd, VHOST_IOMMU_SET_DOMAIN, &dom);
		want = EINVAL;
		break;
	case 1:
		dom.flags = 1u << (1 + (r >> 20) % 31);
		ret = ioctl(fd, VHOST_IOMMU_SET_DOMAIN, &dom);
		want = EOPNOTSUPP;
		break;
	case 2:
		ep.reserved = 1 + (r >> 20) % 0xffff;
		ret = ioctl(fd, VHOST_IOMMU_SET_ENDPOINT, &ep);
		want = EINVAL;
		break;
	case 3:
		ep.flags = 1u << (1 + (r >> 20) % 31);
		ret = ioctl(fd, VHOST_IOMMU_SET_ENDPOINT, &ep);
		want = EOPNOTSUPP;
		break;
	case 4:
		ifd.flags = 1u << (r >> 20) % 32;
		ret = ioctl(fd, VHOST_IOMMU_SET_IOMMUFD, &ifd);
		want = EOPNOTSUPP;
		break;
	case 5:
		fq.flags = 1u << (r >> 20) % 32;
		ret = ioctl(fd, VHOST_IOMMU_SET_FAULT_QUEUE, &fq);
		want = EOPNOTSUPP;
		break;
	case 6:
		ret = ioctl(fd, VHOST_SET_FEATURES, &features);
		want = EOPNOTSUPP;
		break;
	case 7:
		/* A ring change under the worker */
		ret = ioctl(fd, (r >> 30) & 1 ? VHOST_SET_VRING_NUM :
						VHOST_SET_VRING_BASE, &state);
		want = EBUSY;
		break;
	case 8:
		/* No such vIOMMU */
		dom.viommu_id = 0xdead0000 + (r >> 20) % 0xffff;
		ret = ioctl(fd, VHOST_IOMMU_SET_DOMAIN, &dom);
		break;
	case 9:
		/* An endpoint on a domain that is not bound */
		ep.domain = DOM_UNBOUND;
		ret = ioctl(fd, VHOST_IOMMU_SET_ENDPOINT, &ep);
		break;
	case 10:
		/* Unbinding the iommufd under its domains and fault queue */
		ifd.fd = -1;
		ret = ioctl(fd, VHOST_IOMMU_SET_IOMMUFD, &ifd);
		break;
	case 11:
		/* Another iommufd while this one is bound */
		ifd.fd = F.mb.iommufd;
		ret = ioctl(fd, VHOST_IOMMU_SET_IOMMUFD, &ifd);
		break;
	default:
		/* Another context's fault queue (B6) */
		fq.fd = F.mb.fault_fd;
		ret = ioctl(fd, VHOST_IOMMU_SET_FAULT_QUEUE, &fq);
		break;
	}
	if (!ret)
		die("careless VMM: ioctl %u was accepted", op);
	if (want && errno != want)
		die("careless VMM: ioctl %u failed with %d, not %d", op, errno,
		    want);
	F.bad_ioctls++;
}

static void *vmm_thread(void *arg)
{
	uint64_t rng = F.seed ^ 0x5555;

	(void)arg;
	while (!__atomic_load_n(&F.vmm_stop, __ATOMIC_ACQUIRE)) {
		rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
		usleep((rng >> 40) % 3000);
		pthread_mutex_lock(&F.fd_lock);
		careless_ioctl(rng >> 3);
		pthread_mutex_unlock(&F.fd_lock);
	}
	return NULL;
}

/* Every 10 s: where the run is, so that a hang shows where it hangs */
static void *watchdog_thread(void *arg)
{
	(void)arg;
	for (;;) {
		sleep(10);
		printf("# %llu requests, %llu rounds, %llu refused ioctls, %s\n",
		       (unsigned long long)F.requests,
		       (unsigned long long)F.rounds,
		       (unsigned long long)F.bad_ioctls,
		       __atomic_load_n(&F.phase, __ATOMIC_RELAXED));
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
	eventfd_t left;

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
	/* The ring starts over: forget the old notifications */
	eventfd_read(vq->call_fd, &left);
	eventfd_read(vq->err_fd, &left);
	vq->avail_idx = 0;
	vq->used_idx = 0;
	vq->free_head = 0;
	vq->nr_free = vq->num;
	for (unsigned int i = 0; i < vq->num; i++) {
		vq->desc[i].next = i + 1;
		vq->chain_len[i] = 0;
	}
}

/* New rings on every queue of VM a, the device stopped */
static void setup_rings(void)
{
	for (unsigned int i = 0; i < (1 + F.a.nr_invalq); i++)
		setup_vq(&F.a, i);
	for (unsigned int q = 0; q < NQ; q++) {
		F.avail_idx[q] = 0;
		F.used_idx[q] = 0;
		F.next_desc[q] = 0;
	}
}

static void bind_a(void)
{
	int ret = vi_bind_mock(&F.a, &F.ma, DOM_EP, EP_ID, true);

	if (!ret)
		ret = vi_set_endpoint(F.a.fd, 0, EP2_ID, DOM_EP, F.md2.idev_id,
				      VSID_A2);
	if (!ret)
		ret = vi_set_domain(F.a.fd, 0, DOM_EMPTY, F.ma.viommu_id);
	if (ret)
		die("binding VM a: %d", ret);
}

/* Everything after SET_OWNER, on the rings already in memory */
static void resetup_a(void)
{
	F.features = FEATURES;
	if (chance(50)) {
		F.features |= BIT64(VIRTIO_RING_F_EVENT_IDX);
		F.event_idx_runs++;
	}
	if (ioctl(F.a.fd, VHOST_SET_FEATURES, &F.features))
		die("SET_FEATURES: %d", errno);
	if (vi_set_mem_table(&F.a))
		die("SET_MEM_TABLE: %d", errno);
	setup_rings();
	if (chance(50)) {
		bind_a();
		if (vi_set_running(&F.a, 1))
			die("SET_RUNNING: %d", errno);
	} else {
		if (vi_set_running(&F.a, 1))
			die("SET_RUNNING: %d", errno);
		bind_a();
	}
}

/*
 * Stop, check that GET_VRING_BASE is exact on every queue (except @fatal_q,
 * which stopped at its fatal chain: -1 for none), change the rings, start:
 * nothing the device took before the stop may show up in the new rings.
 */
static void ring_change(int fatal_q)
{
	if (vi_set_running(&F.a, 0))
		die("SET_RUNNING 0: %d", errno);
	for (unsigned int i = 0; i < (1 + F.a.nr_invalq); i++) {
		struct vhost_vring_state state = { .index = i };
		uint16_t want = i == VI_PRQ_VQ ? F.a.vqs[i].avail_idx :
						 F.avail_idx[i - VI_INVALQ(0)];

		if (ioctl(F.a.fd, VHOST_GET_VRING_BASE, &state))
			die("GET_VRING_BASE: %d", errno);
		if ((int)i - VI_INVALQ(0) != fatal_q && state.num != want)
			die("vq %u stopped: GET_VRING_BASE %u, %u were posted and returned",
			    i, state.num, want);
	}
	setup_rings();
	if (vi_set_running(&F.a, 1))
		die("SET_RUNNING 1: %d", errno);
	usleep(1000);
	for (unsigned int i = 0; i < (1 + F.a.nr_invalq); i++)
		if (__atomic_load_n(&F.a.vqs[i].used->idx, __ATOMIC_ACQUIRE))
			die("vq %u: a used entry in the new ring: it survived the stop",
			    i);
}

/*
 * A device reset between rounds: VHOST_IOMMU_RESET, RESET_OWNER, close and
 * open again, or stop and new rings. @fatal_q: the queue stopped at a fatal
 * chain, or -1.
 */
static void reset_a(enum reset_kind kind, int fatal_q)
{
	phase("reset");
	pthread_mutex_lock(&F.fd_lock);
	switch (kind) {
	case RK_IORESET:
		if (ioctl(F.a.fd, VHOST_IOMMU_RESET))
			die("VHOST_IOMMU_RESET: %d", errno);
		setup_rings();
		bind_a();
		if (vi_set_running(&F.a, 1))
			die("SET_RUNNING after RESET: %d", errno);
		break;
	case RK_RESET_OWNER:
		if (ioctl(F.a.fd, VHOST_RESET_OWNER))
			die("RESET_OWNER: %d", errno);
		if (ioctl(F.a.fd, VHOST_SET_OWNER))
			die("SET_OWNER: %d", errno);
		resetup_a();
		break;
	case RK_REOPEN:
		close(F.a.fd);
		F.a.fd = open("/dev/vhost-iommu", O_RDWR | O_NONBLOCK | O_CLOEXEC);
		if (F.a.fd < 0)
			die("reopen: %d", errno);
		if (ioctl(F.a.fd, VHOST_SET_OWNER))
			die("SET_OWNER: %d", errno);
		resetup_a();
		break;
	default:
		ring_change(fatal_q);
		break;
	}
	F.resets[kind]++;
	pthread_mutex_unlock(&F.fd_lock);
}

/* ------------------------------------------------------- page requests */

/* The next record on the page-request queue; its buffer's address */
static struct virtio_iommu_page_request *prq_get(struct vi_dev *d)
{
	struct vi_vq *vq = &d->vqs[VI_PRQ_VQ];
	struct pollfd pfd = { .fd = vq->call_fd, .events = POLLIN };
	uint32_t id, len;

	for (int t = 0; t < WAIT_MS / 50; t++) {
		/* VIRTIO_RING_F_EVENT_IDX: signal the next one */
		__atomic_store_n(&vq->avail->ring[vq->num], vq->used_idx,
				 __ATOMIC_RELEASE);
		if (vi_nr_used(d, VI_PRQ_VQ)) {
			if (vi_get_used(d, VI_PRQ_VQ, &id, &len, 0))
				die("page-request queue: no used entry");
			if (id >= vq->num)
				die("page-request queue: used id %u", id);
			if (len != sizeof(struct virtio_iommu_page_request))
				die("page request record length %u", len);
			return hva(d, vq->desc[id].addr);
		}
		if (poll(&pfd, 1, 50) == 1) {
			eventfd_t v;

			eventfd_read(pfd.fd, &v);
		}
	}
	return NULL;
}

static void prq_post(struct vi_dev *d, void *buf)
{
	struct vi_seg seg = {
		.addr = buf,
		.len = sizeof(struct virtio_iommu_page_request),
		.writable = true,
	};

	memset(buf, 0xff, seg.len);
	if (vi_post(d, VI_PRQ_VQ, &seg, 1) < 0)
		die("posting a page-request buffer");
	eventfd_write(d->vqs[VI_PRQ_VQ].kick_fd, 1);
}

static void check_record(const struct virtio_iommu_page_request *rec,
			 uint64_t addr)
{
	if (rec->reason != VIRTIO_IOMMU_FAULT_R_PAGE_REQUEST ||
	    rec->endpoint != EP_ID || rec->address != addr ||
	    !(rec->flags & VIRTIO_IOMMU_FAULT_F_ADDRESS) ||
	    rec->reserved[0] || rec->reserved[1] || rec->reserved[2] ||
	    rec->reserved2[0] || rec->reserved2[1] || rec->reserved2[2] ||
	    rec->reserved2[3])
		die("page request record: reason %u endpoint %u flags %#x address %#llx",
		    rec->reason, rec->endpoint, rec->flags,
		    (unsigned long long)rec->address);
}

/*
 * @nr page requests of the mock device, delivered on the page-request
 * queue (buffers posted before or after the faults); their groups in @grps.
 */
static void page_requests(uint32_t *grps, unsigned int nr)
{
	bool late = chance(30);

	for (unsigned int i = 0; i < nr && !late; i++)
		prq_post(&F.a, F.prq_bufs + i * 64);
	for (unsigned int i = 0; i < nr; i++)
		if (mock_trigger(&F.ma, 1 + (F.next_grp++ % 500),
				 0x100000 + i * 0x1000))
			die("TRIGGER_IOPF: %d", errno);
	/* Never dropped: they wait in the device for buffers */
	for (unsigned int i = 0; i < nr && late; i++) {
		if (!i)
			usleep(rnd(3000));
		prq_post(&F.a, F.prq_bufs + i * 64);
	}
	for (unsigned int i = 0; i < nr; i++) {
		struct virtio_iommu_page_request *rec = prq_get(&F.a);

		if (!rec)
			die("page request %u of %u not delivered", i, nr);
		check_record(rec, 0x100000 + i * 0x1000);
		grps[i] = rec->group;
	}
	F.page_requests += nr;
}

/* The mock device got @want page responses in all */
static void wait_responses(int want, const char *what)
{
	int now = -1;

	for (int t = 0; t < WAIT_MS / 10; t++) {
		now = mock_responses(&F.ma);
		if (now >= want)
			break;
		usleep(10000);
	}
	usleep(2000);
	now = mock_responses(&F.ma);
	if (now != want)
		die("%s: the mock device got %d page responses, not %d", what,
		    now, want);
}

/* ------------------------------------------------------- VM b */

static struct {
	uint8_t *prq_buf;
	uint32_t grp;
} B;

/* VM b: bound like VM a, one page request held for the whole run */
static void setup_b(void)
{
	struct virtio_iommu_page_request *rec;
	int ret;

	ret = vi_open(&F.b);
	if (!ret)
		ret = vi_setup(&F.b, FEATURES, 64, 1);
	if (ret)
		die("VM b setup: %d", ret);
	ret = vi_mock_setup(&F.mb, VSID_B);
	if (!ret)
		ret = vi_bind_mock(&F.b, &F.mb, DOM_EP, EP_ID, true);
	if (ret)
		die("VM b mock: %d", ret);
	B.prq_buf = vi_alloc(&F.b, 64);
	prq_post(&F.b, B.prq_buf);
	if (mock_trigger(&F.mb, 9, 0x100000))
		die("VM b: TRIGGER_IOPF: %d", errno);
	rec = prq_get(&F.b);
	if (!rec)
		die("VM b: its page request was not delivered");
	check_record(rec, 0x100000);
	B.grp = rec->group;
}

static void check_b(void)
{
	struct virtio_iommu_req_invalidate *inv;
	struct virtio_iommu_req_page_resp *pr;
	uint32_t entries, calls, id, used_len;
	uint8_t *resp;
	int head;

	if (vi_nr_used(&F.b, VI_INVALQ(0)) || vi_nr_used(&F.b, VI_PRQ_VQ))
		die("VM b: its rings moved");
	if (mock_log(F.mb.iommufd, F.mb.viommu_id, &entries, &calls) ||
	    entries || calls)
		die("VM b: its vIOMMU got %u entries in %u calls", entries,
		    calls);
	if (mock_responses(&F.mb))
		die("VM b: its held page request was answered by someone else");

	/* Its own answer to its group */
	pr = vi_alloc(&F.b, sizeof(*pr));
	resp = vi_alloc(&F.b, TAIL);
	memset(pr, 0, sizeof(*pr));
	memset(resp, CANARY, TAIL);
	pr->head.type = VIRTIO_IOMMU_T_PAGE_RESP;
	pr->endpoint = EP_ID;
	pr->group = B.grp;
	head = vi_post_req(&F.b, VI_INVALQ(0), pr, offsetof(typeof(*pr), tail), resp, TAIL);
	eventfd_write(F.b.vqs[VI_INVALQ(0)].kick_fd, 1);
	if (vi_get_used(&F.b, VI_INVALQ(0), &id, &used_len, WAIT_MS) ||
	    id != (uint32_t)head || used_len != TAIL ||
	    resp[0] != VIRTIO_IOMMU_S_OK || mock_responses(&F.mb) != 1)
		die("VM b: its PAGE_RESP did not complete");

	/* And it serves an INVALIDATE: a domain entry and an endpoint entry */
	inv = vi_alloc(&F.b, sizeof(*inv));
	resp = vi_alloc(&F.b, TAIL);
	memset(inv, 0, sizeof(*inv));
	memset(resp, CANARY, TAIL);
	inv->head.type = VIRTIO_IOMMU_T_INVALIDATE;
	inv->scope = VIRTIO_IOMMU_INVAL_S_DOMAIN;
	inv->caches = VIRTIO_IOMMU_INVAL_C_TLB;
	inv->domain = DOM_EP;
	head = vi_post_req(&F.b, VI_INVALQ(0), inv, offsetof(typeof(*inv), tail), resp,
			   TAIL);
	eventfd_write(F.b.vqs[VI_INVALQ(0)].kick_fd, 1);
	if (vi_get_used(&F.b, VI_INVALQ(0), &id, &used_len, WAIT_MS) ||
	    id != (uint32_t)head || resp[0] != VIRTIO_IOMMU_S_OK)
		die("VM b: an INVALIDATE failed after the run");
	if (mock_log(F.mb.iommufd, F.mb.viommu_id, &entries, &calls) ||
	    entries != 2)
		die("VM b: %u entries for one INVALIDATE, not 2", entries);
}

/* ------------------------------------------------------- rounds */

/* One round: a batch of requests, with the chosen disturbances */
static void round_once(void)
{
	unsigned int nr = 1 + rnd(MAX_BATCH), i, want = 0, pieces;
	int fatal = chance(3) ? (int)rnd(FK_NR) : -1, fatal_q = -1;
	bool chunks = chance(20), hold = false, both = chance(50), stale = false;
	unsigned int q1 = rnd(NQ), nr_grps = 0, nr_held = 0;
	uint32_t grps[MAX_GRPS];
	int responses = 0;

	phase("page requests");
	F.relaxed = false;
	if (chance(4)) {
		nr_grps = 1 + rnd(MAX_GRPS);
		responses = mock_responses(&F.ma);
		page_requests(grps, nr_grps);
		/* Answered in this round, or held until a reset answers them */
		fatal = -1;
		hold = chance(25);
		if (hold) {
			nr_held = nr_grps;
			nr_grps = 0;
		} else if (nr < nr_grps) {
			nr = nr_grps;
		}
	} else if (chance(2)) {
		/* The bindings change under the worker in this round */
		F.relaxed = true;
	} else if (chance(3)) {
		/*
		 * The second endpoint's vDEVICE is gone for the round (the VMM
		 * closed the device before it unbound the endpoint): its
		 * entries are skipped, and nothing else changes (B1).
		 */
		if (vi_destroy(F.ma.iommufd, F.md2.vdevice_id))
			die("destroying the second vDEVICE: %d", errno);
		stale = true;
		F.stale_rounds++;
	}

	phase("generate");
	/* Everything of the last round came back: the tables start over */
	for (unsigned int q = 0; q < NQ; q++) {
		F.nr_ord[q] = 0;
		F.first_open[q] = 0;
		F.next_desc[q] = 0;
		F.may_err[q] = false;
	}
	for (i = 0; i < nr; i++) {
		struct freq *r = &F.reqs[i];
		/* Room for the longest chain, fatal or not */
		unsigned int room = 2 * MAX_PIECES + 5;

		r->q = both ? rnd(NQ) : q1;
		if (F.next_desc[r->q] + room > RING)
			r->q = (r->q + 1) % NQ;
		if (F.next_desc[r->q] + room > RING)
			break;
		gen_req(r, i < nr_grps ? grps[i] : 0);
		/* VM b's group, while this VM holds none */
		if (!nr_grps && !nr_held &&
		    r->out[0] == VIRTIO_IOMMU_T_PAGE_RESP &&
		    ((struct virtio_iommu_req_page_resp *)r->out)->group ==
		    GRP_B)
			((struct virtio_iommu_req_page_resp *)r->out)->group =
				B.grp;
		r->head = layout(r, -1);
		if (r->out_len < 4 || r->in_len < TAIL)
			F.may_err[r->q] = true;
		r->seq = F.nr_ord[r->q];
		F.ord[r->q][F.nr_ord[r->q]++] = i;
	}
	nr = i;
	if (nr < nr_grps)
		die("internal: fewer requests than page responses");
	if (fatal >= 0) {
		/* The last request, the last of its queue, laid out again */
		struct freq *r = &F.reqs[nr - 1];

		F.next_desc[r->q] = r->head;
		r->outcome = O_FATAL;
		r->head = layout(r, fatal);
		fatal_q = r->q;
	}
	for (i = 0; i < nr; i++)
		if (F.reqs[i].outcome != O_FATAL)
			want++;
	F.requests += nr;

	phase("publish");
	/* Publish and kick: at once, in chunks, or with spurious kicks */
	pieces = chunks ? 2 + rnd(3) : 1;
	for (i = 0; i < nr; i++) {
		if (fatal == FK_AVAIL_JUMP && i == nr - 1)
			break;
		publish(F.reqs[i].q, F.reqs[i].head);
		if (pieces > 1 && chance(100 / pieces) && i + 1 < nr)
			kick(F.reqs[i].q);
		if (chance(1))
			kick(rnd(NQ));
	}
	for (unsigned int q = 0; q < NQ; q++)
		if (F.nr_ord[q])
			kick(q);

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
		/* A VM pause: bindings and page-request state stay */
		pthread_mutex_lock(&F.fd_lock);
		if (vi_set_running(&F.a, 0))
			die("SET_RUNNING 0: %d", errno);
		usleep(rnd(2000));
		if (vi_set_running(&F.a, 1))
			die("SET_RUNNING 1: %d", errno);
		pthread_mutex_unlock(&F.fd_lock);
		F.stops++;
	}
	if (F.relaxed) {
		/* The guest's bindings change under the worker */
		pthread_mutex_lock(&F.fd_lock);
		if (vi_set_endpoint(F.a.fd, VHOST_IOMMU_F_UNBIND, EP_ID, 0, 0, 0) ||
		    vi_set_endpoint(F.a.fd, VHOST_IOMMU_F_UNBIND, EP2_ID, 0, 0, 0) ||
		    vi_set_domain(F.a.fd, VHOST_IOMMU_F_UNBIND, DOM_EP, 0) ||
		    vi_set_domain(F.a.fd, VHOST_IOMMU_F_UNBIND, DOM_EMPTY, 0))
			die("unbinding while running: %d", errno);
		usleep(rnd(1000));
		if (vi_set_domain(F.a.fd, 0, DOM_EP, F.ma.viommu_id) ||
		    vi_set_domain(F.a.fd, 0, DOM_EMPTY, F.ma.viommu_id) ||
		    vi_set_endpoint(F.a.fd, 0, EP_ID, DOM_EP, F.ma.idev_id,
				    VSID_A) ||
		    vi_set_endpoint(F.a.fd, 0, EP2_ID, DOM_EP, F.md2.idev_id,
				    VSID_A2))
			die("binding again while running: %d", errno);
		pthread_mutex_unlock(&F.fd_lock);
		F.unbinds++;
	}

	phase("collect");
	collect(nr, want);
	phase("after collect");
	if (stale) {
		struct iommu_vdevice_alloc vdev = {
			.size = sizeof(vdev),
			.viommu_id = F.ma.viommu_id,
			.dev_id = F.md2.idev_id,
			.virt_id = VSID_A2,
		};

		if (ioctl(F.ma.iommufd, IOMMU_VDEVICE_ALLOC, &vdev))
			die("the second vDEVICE again: %d", errno);
		F.md2.vdevice_id = vdev.out_vdevice_id;
	}
	if (fatal >= 0) {
		struct vi_vq *vq = ivq(fatal_q);

		if (fatal == FK_AVAIL_JUMP) {
			/* The index moves further than the ring holds */
			drain(vq->err_fd);
			F.avail_idx[fatal_q] += RING + 1 + rnd(1000);
			__atomic_store_n(&vq->avail->idx, F.avail_idx[fatal_q],
					 __ATOMIC_RELEASE);
			kick(fatal_q);
		}
		/* The device complains, and nothing comes back; reset */
		if (!fired(vq->err_fd, WAIT_MS))
			die("fatal chain (kind %d): no error signalled", fatal);
		usleep(1000);
		if (__atomic_load_n(&vq->used->idx, __ATOMIC_ACQUIRE) !=
		    F.used_idx[fatal_q])
			die("used entries after the fatal chain (kind %d)",
			    fatal);
		if (!F.may_err[!fatal_q] && fired(ivq(!fatal_q)->err_fd, 0))
			die("the error eventfd of the other queue fired");
		F.fatal++;
		F.fatal_kinds[fatal]++;
		check_log();
		reset_a(rnd(RK_NR), fatal_q);
		F.rounds++;
		return;
	}
	/*
	 * The error eventfd means a request the device could not parse (no
	 * head, no room for a tail) or a bad chain; a request it answered,
	 * whatever its status, does not raise it.
	 */
	for (unsigned int q = 0; q < NQ; q++) {
		bool err = fired(ivq(q)->err_fd, 0);

		if (err && !F.may_err[q])
			die("queue %u: the error eventfd fired for answered requests",
			    q);
		if (!err && F.may_err[q])
			die("queue %u: an unparseable request, no error signalled",
			    q);
		if (err)
			drain(ivq(q)->err_fd);
	}
	if (nr_grps) {
		int now = mock_responses(&F.ma);

		if (now != responses + (int)nr_grps)
			die("mock got %d page responses, not %u",
			    now - responses, nr_grps);
	}
	if (hold) {
		/* The reset answers the groups the guest did not */
		check_log();
		reset_a(rnd(RK_RING), -1);
		wait_responses(responses + nr_held, "held groups after a reset");
		F.held_answered += nr_held;
	} else if (chance(1)) {
		check_log();
		reset_a(rnd(RK_NR), -1);
	} else if (F.relaxed || F.rounds % 64 == 0) {
		check_log();
	}
	F.rounds++;
}

/* VM a still serves: one good INVALIDATE on each queue, in the kernel */
static void check_a_serves(void)
{
	for (unsigned int q = 0; q < NQ; q++) {
		struct freq *r = &F.reqs[q];
		struct virtio_iommu_req_invalidate *inv = (void *)r->out;

		memset(r->out, 0, SLOT_OUT);
		memset(r->in, CANARY, SLOT_IN);
		inv->head.type = VIRTIO_IOMMU_T_INVALIDATE;
		inv->scope = VIRTIO_IOMMU_INVAL_S_ADDRESS;
		inv->caches = VIRTIO_IOMMU_INVAL_C_TLB;
		inv->domain = DOM_EP;
		inv->address = 0x200000;
		inv->nr_pages = 2;
		inv->page_size = 12;
		r->q = q;
		r->out_len = offsetof(typeof(*inv), tail);
		r->in_len = TAIL;
		r->outcome = O_STATUS;
		r->done = false;
		F.relaxed = false;
		inval_model(r);
		if (r->stmask != ST(VIRTIO_IOMMU_S_OK) || r->emin != 1 + NR_EP)
			die("internal: the model of a good INVALIDATE");
		r->seq = 0;
		F.next_desc[q] = 0;
		F.nr_ord[q] = 1;
		F.ord[q][0] = q;
		F.first_open[q] = 0;
		r->head = layout(r, -1);
		publish(q, r->head);
		kick(q);
	}
	collect(NQ, NQ);
	check_log();
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
	F.features = FEATURES;
	if (!ret)
		ret = vi_setup(&F.a, F.features, RING, NQ);
	if (ret)
		die("VM a setup: %d", ret);
	ret = vi_mock_setup(&F.ma, VSID_A);
	if (ret == -ENOTTY || ret == -ENOENT) {
		printf("ok 1 # SKIP no iommufd selftest mock\n");
		return 4;
	}
	if (!ret)
		ret = vi_mock_add_dev(&F.ma, VSID_A2, &F.md2);
	if (ret)
		die("VM a mock: %d", ret);
	bind_a();
	setup_b();

	F.slots = vi_alloc(&F.a, MAX_BATCH * SLOT);
	F.prq_bufs = vi_alloc(&F.a, 64 * MAX_GRPS);
	if (!F.slots || !F.prq_bufs)
		die("no room for the request buffers");
	for (unsigned int i = 0; i < MAX_BATCH; i++) {
		uint8_t *s = F.slots + i * SLOT;

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

	__atomic_store_n(&F.vmm_stop, true, __ATOMIC_RELEASE);
	pthread_join(F.vmm, NULL);
	phase("end checks");
	check_log();
	check_a_serves();
	check_b();

	printf("# %llu requests in %llu rounds, %.1f s, %.0f requests/s\n",
	       (unsigned long long)F.requests, (unsigned long long)F.rounds,
	       secs, F.requests / secs);
	printf("# statuses: OK %llu, INVAL %llu, NOENT %llu, other %llu; used length 0: %llu\n",
	       (unsigned long long)F.status[VIRTIO_IOMMU_S_OK],
	       (unsigned long long)F.status[VIRTIO_IOMMU_S_INVAL],
	       (unsigned long long)F.status[VIRTIO_IOMMU_S_NOENT],
	       (unsigned long long)(F.status[VIRTIO_IOMMU_S_IOERR] +
				    F.status[VIRTIO_IOMMU_S_UNSUPP] +
				    F.status[VIRTIO_IOMMU_S_DEVERR] +
				    F.status[VIRTIO_IOMMU_S_RANGE] +
				    F.status[VIRTIO_IOMMU_S_FAULT] +
				    F.status[VIRTIO_IOMMU_S_NOMEM]),
	       (unsigned long long)F.used0);
	printf("# fatal chains: %llu, indirect: %llu, split: %llu, kicks: %llu\n",
	       (unsigned long long)F.fatal, (unsigned long long)F.indirect,
	       (unsigned long long)F.split, (unsigned long long)F.kicks);
	printf("# page requests: %llu (%llu answered by a reset), refused VMM ioctls: %llu\n",
	       (unsigned long long)F.page_requests,
	       (unsigned long long)F.held_answered,
	       (unsigned long long)F.bad_ioctls);
	printf("# VHOST_IOMMU_RESET: %llu, RESET_OWNER: %llu, reopen: %llu, ring change: %llu, ",
	       (unsigned long long)F.resets[RK_IORESET],
	       (unsigned long long)F.resets[RK_RESET_OWNER],
	       (unsigned long long)F.resets[RK_REOPEN],
	       (unsigned long long)F.resets[RK_RING]);
	printf("stop/start: %llu, SET_MEM_TABLE: %llu, unbind/bind: %llu, EVENT_IDX setups: %llu\n",
	       (unsigned long long)F.stops, (unsigned long long)F.mem_tables,
	       (unsigned long long)F.unbinds,
	       (unsigned long long)F.event_idx_runs);
	printf("# log checks: %llu, overtakes: %llu, stale-endpoint rounds: %llu\n",
	       (unsigned long long)F.log_checks,
	       (unsigned long long)F.overtakes,
	       (unsigned long long)F.stale_rounds);
	/*
	 * Loop, head, next, out after in, indirect length, nested indirect,
	 * indirect loop, address, indirect address, empty indirect, avail jump
	 */
	printf("# fatal chains of each kind:");
	for (int k = 0; k < FK_NR; k++)
		printf(" %llu", (unsigned long long)F.fatal_kinds[k]);
	printf("\n");
	/* A default run must have met every kind and every reset */
	for (int k = 0; k < FK_NR; k++)
		if (target >= 200000 && !F.fatal_kinds[k])
			die("fatal kind %d never drawn", k);
	for (int k = 0; k < RK_NR; k++)
		if (target >= 200000 && !F.resets[k])
			die("reset kind %d never drawn", k);
	printf("ok 1 vhost_iommu_fuzz seed %llu\n", (unsigned long long)F.seed);

	vi_close(&F.a);
	vi_close(&F.b);
	vi_mock_close(&F.ma);
	vi_mock_close(&F.mb);
	return 0;
}
