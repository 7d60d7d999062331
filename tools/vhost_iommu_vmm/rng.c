// SPDX-License-Identifier: GPL-2.0
/*
 * virtio-rng (virtio 1.2, 5.4), an endpoint behind the virtio-iommu: it
 * negotiates VIRTIO_F_ACCESS_PLATFORM, so every address it sees, its rings
 * included, is an IOVA of the guest's DMA domain that the virtio-iommu
 * translates. It serves its queue on the vCPU thread, at the notification.
 *
 * The bytes it produces are a known stream (rng_stream_byte() in vmm.h):
 * the guest reads them from /dev/hwrng in order, so a test can check what
 * arrived against what the device sent.
 */
#include <errno.h>
#include <string.h>

#include "vmm.h"

#define RNG_DEVICE_ID	4

struct rng {
	struct vm *vm;
	struct vdev *dev;
	struct dma_ops dma;
	struct rng_opts opts;
	bool broken;
	uint64_t pos;		/* bytes of the stream produced this boot */
	uint64_t nr_reqs;	/* requests served this boot */
	uint64_t total_reqs, total_bytes, refused, wild_refused, wild_passed;
};

static struct rng rng;

static int rng_dma(void *ctx, uint64_t iova, void *buf, size_t len,
		   bool write)
{
	return viommu_dma(ctx, RNG_ENDPOINT, iova, buf, len, write);
}

/* A device that goes astray: a write to an address the guest never mapped */
static void wild_dma(struct rng *r)
{
	uint8_t junk[64];

	memset(junk, 0x5a, sizeof(junk));
	if (viommu_is_mapped(r->vm, RNG_ENDPOINT, r->opts.wild_iova))
		vmm_log("wild DMA: IOVA %#llx is mapped, the DMA will land",
			(unsigned long long)r->opts.wild_iova);
	if (viommu_dma(r->vm, RNG_ENDPOINT, r->opts.wild_iova, junk,
		       sizeof(junk), true)) {
		r->wild_refused++;
	} else {
		r->wild_passed++;
		vmm_log("wild DMA: NOT refused");
	}
}

/* Fill one writable segment from the stream; return the bytes written */
static uint32_t fill(struct rng *r, const struct seg *s)
{
	uint8_t buf[256];
	uint32_t done = 0;

	while (done < s->len) {
		uint32_t n = s->len - done < sizeof(buf) ? s->len - done :
			     sizeof(buf);

		for (uint32_t i = 0; i < n; i++)
			buf[i] = rng_stream_byte(r->opts.seed, r->pos + done + i);
		if (rng_dma(r->vm, s->addr + done, buf, n, true)) {
			r->refused++;
			break;
		}
		done += n;
	}
	return done;
}

static void rng_notify(struct vdev *d, unsigned int q_idx)
{
	struct rng *r = d->priv;
	struct vq *q = &d->vqs[q_idx];
	bool added = false;
	struct chain c;
	int ret;

	while (!r->broken && (ret = vq_pop(&r->dma, q, &c)) != 0) {
		uint32_t len = 0;

		if (ret < 0)
			goto broken;
		r->nr_reqs++;
		r->total_reqs++;
		if (r->opts.wild_dma_at && r->nr_reqs == r->opts.wild_dma_at)
			wild_dma(r);
		for (unsigned int i = 0; i < c.nr; i++) {
			uint32_t n;

			if (!c.segs[i].write)
				continue;
			n = fill(r, &c.segs[i]);
			len += n;
			r->pos += n;
			if (n < c.segs[i].len)
				break;
		}
		r->total_bytes += len;
		if (vq_push(&r->dma, q, c.head, len))
			goto broken;
		added = true;
	}
	if (added && vq_wants_irq(&r->dma, q))
		vdev_irq(d);
	return;

broken:
	/* Rings the device cannot reach: it needs a reset (spec 2.1.2) */
	vmm_log("virtio-rng: queue unreachable or malformed: needs reset");
	r->broken = true;
	d->status |= VIRTIO_STAT_NEEDS_RESET;
	if (added)
		vdev_irq(d);
}

static void rng_status(struct vdev *d, uint32_t old, uint32_t status)
{
	struct rng *r = d->priv;

	if (!status)
		r->broken = false;
}

static const struct vdev_ops rng_ops = {
	.status = rng_status,
	.notify = rng_notify,
};

void rng_create(struct vm *vm, const struct rng_opts *opts)
{
	struct rng *r = &rng;

	r->vm = vm;
	r->dev = &vm->rng_dev;
	r->opts = *opts;
	r->dma = (struct dma_ops){ .rw = rng_dma, .ctx = vm };
	vdev_init(r->dev, vm, "virtio-rng", VIRTIO_MMIO_BASE + VIRTIO_MMIO_SIZE,
		  RNG_SPI, RNG_DEVICE_ID,
		  (1ULL << VIRTIO_FEAT_VERSION_1) |
		  (1ULL << VIRTIO_FEAT_ACCESS_PLATFORM), 1, &rng_ops, r);
}

/* A new boot: the stream starts again */
void rng_reset(struct vm *vm)
{
	vmm_log("virtio-rng: boot %u: %llu requests, %llu stream bytes",
		vm->boot, (unsigned long long)rng.nr_reqs,
		(unsigned long long)rng.pos);
	vdev_reset(&vm->rng_dev);
	rng.pos = 0;
	rng.nr_reqs = 0;
}

void rng_print_stats(struct vm *vm)
{
	vmm_log("virtio-rng: boot %u: %llu requests, %llu stream bytes",
		vm->boot + 1, (unsigned long long)rng.nr_reqs,
		(unsigned long long)rng.pos);
	vmm_log("virtio-rng: %llu requests, %llu bytes, %llu DMA refused; "
		"wild DMA: %llu refused, %llu not refused",
		(unsigned long long)rng.total_reqs,
		(unsigned long long)rng.total_bytes,
		(unsigned long long)rng.refused,
		(unsigned long long)rng.wild_refused,
		(unsigned long long)rng.wild_passed);
}
