// SPDX-License-Identifier: GPL-2.0
/*
 * The virtio-mmio transport (version 2) and the device side of a split
 * virtqueue. See the virtio 1.2 specification, 4.2 "Virtio Over MMIO" and
 * 2.7 "Split Virtqueues".
 */
#include <errno.h>
#include <string.h>
#include <sys/eventfd.h>

#include "vmm.h"

/* virtio-mmio registers */
#define REG_MAGIC		0x000
#define REG_VERSION		0x004
#define REG_DEVICE_ID		0x008
#define REG_VENDOR_ID		0x00c
#define REG_DEV_FEATURES	0x010
#define REG_DEV_FEATURES_SEL	0x014
#define REG_DRV_FEATURES	0x020
#define REG_DRV_FEATURES_SEL	0x024
#define REG_QUEUE_SEL		0x030
#define REG_QUEUE_NUM_MAX	0x034
#define REG_QUEUE_NUM		0x038
#define REG_QUEUE_READY		0x044
#define REG_QUEUE_NOTIFY	0x050
#define REG_INT_STATUS		0x060
#define REG_INT_ACK		0x064
#define REG_STATUS		0x070
#define REG_QUEUE_DESC_LO	0x080
#define REG_QUEUE_DESC_HI	0x084
#define REG_QUEUE_AVAIL_LO	0x090
#define REG_QUEUE_AVAIL_HI	0x094
#define REG_QUEUE_USED_LO	0x0a0
#define REG_QUEUE_USED_HI	0x0a4
#define REG_SHM_LEN_LO		0x0b0
#define REG_SHM_LEN_HI		0x0b4
#define REG_SHM_BASE_LO		0x0b8
#define REG_SHM_BASE_HI		0x0bc
#define REG_CONFIG_GEN		0x0fc
#define REG_CONFIG		0x100

#define INT_VRING		1

#define VRING_DESC_F_NEXT	1
#define VRING_DESC_F_WRITE	2
#define VRING_DESC_F_INDIRECT	4
#define VRING_AVAIL_F_NO_INTERRUPT 1
#define VRING_USED_F_NO_NOTIFY	1

void vdev_init(struct vdev *d, struct vm *vm, const char *name, uint64_t base,
	       unsigned int spi, uint32_t device_id, uint64_t features,
	       unsigned int nr_vqs, const struct vdev_ops *ops, void *priv)
{
	memset(d, 0, sizeof(*d));
	d->vm = vm;
	d->name = name;
	d->base = base;
	d->spi = spi;
	d->device_id = device_id;
	d->features = features;
	d->nr_vqs = nr_vqs;
	d->ops = ops;
	d->priv = priv;
	d->irq_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (d->irq_fd < 0)
		die("eventfd: %s", strerror(errno));
}

void vdev_reset(struct vdev *d)
{
	uint32_t old = d->status;

	/* The device stops using the queues before they are forgotten */
	d->status = 0;
	if (d->ops->status)
		d->ops->status(d, old, 0);
	d->driver_features = 0;
	d->int_status = 0;
	d->queue_sel = 0;
	memset(d->vqs, 0, sizeof(d->vqs));
}

void vdev_irq(struct vdev *d)
{
	__atomic_or_fetch(&d->int_status, INT_VRING, __ATOMIC_SEQ_CST);
	eventfd_write(d->irq_fd, 1);
}

static uint32_t lo(uint64_t v)
{
	return v;
}

static uint32_t hi(uint64_t v)
{
	return v >> 32;
}

static void set_lo(uint64_t *v, uint32_t val)
{
	*v = (*v & ~0xffffffffULL) | val;
}

static void set_hi(uint64_t *v, uint32_t val)
{
	*v = (*v & 0xffffffffULL) | (uint64_t)val << 32;
}

static uint32_t vdev_read(struct vdev *d, uint64_t off)
{
	struct vq *q = d->queue_sel < d->nr_vqs ? &d->vqs[d->queue_sel] : NULL;

	switch (off) {
	case REG_MAGIC:
		return 0x74726976;	/* "virt" */
	case REG_VERSION:
		return 2;
	case REG_DEVICE_ID:
		return d->device_id;
	case REG_VENDOR_ID:
		return 0x554d4551;	/* "QEMU", as most VMMs say */
	case REG_DEV_FEATURES:
		return d->dev_feat_sel == 0 ? lo(d->features) :
		       d->dev_feat_sel == 1 ? hi(d->features) : 0;
	case REG_QUEUE_NUM_MAX:
		return q ? VQ_SIZE : 0;
	case REG_QUEUE_READY:
		return q ? q->ready : 0;
	case REG_INT_STATUS:
		/*
		 * When vhost serves queues, it signals the call eventfd, wired
		 * straight to the GIC as an irqfd: this code never sees the
		 * interrupt, so it reports "used buffer" whenever asked and
		 * the driver scans its queues.
		 */
		if (d->int_always)
			return INT_VRING;
		return __atomic_load_n(&d->int_status, __ATOMIC_SEQ_CST);
	case REG_STATUS:
		return d->status;
	case REG_QUEUE_DESC_LO:
		return q ? lo(q->desc) : 0;
	case REG_QUEUE_DESC_HI:
		return q ? hi(q->desc) : 0;
	case REG_QUEUE_AVAIL_LO:
		return q ? lo(q->avail) : 0;
	case REG_QUEUE_AVAIL_HI:
		return q ? hi(q->avail) : 0;
	case REG_QUEUE_USED_LO:
		return q ? lo(q->used) : 0;
	case REG_QUEUE_USED_HI:
		return q ? hi(q->used) : 0;
	case REG_SHM_LEN_LO:
	case REG_SHM_LEN_HI:
		return 0xffffffff;	/* no shared memory region */
	case REG_CONFIG_GEN:
		return 0;
	default:
		return 0;
	}
}

static void vdev_set_status(struct vdev *d, uint32_t val)
{
	uint32_t old = d->status;

	if (!val) {
		vdev_reset(d);
		return;
	}
	/*
	 * FEATURES_OK sticks only if the driver took offered features only,
	 * in a combination the device accepts
	 */
	if ((val & VIRTIO_STAT_FEATURES_OK) &&
	    !(old & VIRTIO_STAT_FEATURES_OK) &&
	    ((d->driver_features & ~d->features) ||
	     !(d->driver_features & (1ULL << VIRTIO_FEAT_VERSION_1)) ||
	     (d->ops->features_ok &&
	      !d->ops->features_ok(d, d->driver_features))))
		val &= ~VIRTIO_STAT_FEATURES_OK;
	d->status = val;
	if (d->ops->status)
		d->ops->status(d, old, val);
}

static void vdev_write(struct vdev *d, uint64_t off, uint32_t val)
{
	struct vq *q = d->queue_sel < d->nr_vqs ? &d->vqs[d->queue_sel] : NULL;
	bool q_ok = q && !q->ready;	/* a live queue's layout is fixed */

	switch (off) {
	case REG_DEV_FEATURES_SEL:
		d->dev_feat_sel = val;
		break;
	case REG_DRV_FEATURES:
		if (d->status & VIRTIO_STAT_FEATURES_OK)
			break;
		if (d->drv_feat_sel == 0)
			set_lo(&d->driver_features, val);
		else if (d->drv_feat_sel == 1)
			set_hi(&d->driver_features, val);
		break;
	case REG_DRV_FEATURES_SEL:
		d->drv_feat_sel = val;
		break;
	case REG_QUEUE_SEL:
		d->queue_sel = val;
		break;
	case REG_QUEUE_NUM:
		/* A power of 2 up to VQ_SIZE, or the queue stays unusable */
		if (q_ok)
			q->num = (val && val <= VQ_SIZE && !(val & (val - 1))) ?
				 val : 0;
		break;
	case REG_QUEUE_READY:
		if (q && val == 1 && q->num)
			q->ready = true;
		else if (q && val == 0)
			q->ready = false;
		break;
	case REG_QUEUE_NOTIFY:
		if (val < d->nr_vqs && d->ops->notify &&
		    (d->status & VIRTIO_STAT_DRIVER_OK))
			d->ops->notify(d, val);
		break;
	case REG_INT_ACK:
		__atomic_and_fetch(&d->int_status, ~val, __ATOMIC_SEQ_CST);
		break;
	case REG_STATUS:
		vdev_set_status(d, val);
		break;
	case REG_QUEUE_DESC_LO:
		if (q_ok)
			set_lo(&q->desc, val);
		break;
	case REG_QUEUE_DESC_HI:
		if (q_ok)
			set_hi(&q->desc, val);
		break;
	case REG_QUEUE_AVAIL_LO:
		if (q_ok)
			set_lo(&q->avail, val);
		break;
	case REG_QUEUE_AVAIL_HI:
		if (q_ok)
			set_hi(&q->avail, val);
		break;
	case REG_QUEUE_USED_LO:
		if (q_ok)
			set_lo(&q->used, val);
		break;
	case REG_QUEUE_USED_HI:
		if (q_ok)
			set_hi(&q->used, val);
		break;
	default:
		break;
	}
}

void vdev_mmio(struct vdev *d, uint64_t off, uint8_t *data, uint32_t len,
	       bool write)
{
	uint32_t val = 0;

	if (off >= REG_CONFIG) {
		/* The configuration space is read-only for both devices */
		if (!write && d->ops->cfg_read)
			d->ops->cfg_read(d, off - REG_CONFIG, data, len);
		else if (!write)
			memset(data, 0, len);
		return;
	}
	/* Registers are 32-bit wide and aligned */
	if (len != 4 || off % 4) {
		if (!write)
			memset(data, 0, len);
		return;
	}
	if (write) {
		memcpy(&val, data, 4);
		vdev_write(d, off, val);
	} else {
		val = vdev_read(d, off);
		memcpy(data, &val, 4);
	}
}

static int rd(const struct dma_ops *dma, uint64_t addr, void *buf, size_t len)
{
	return dma->rw(dma->ctx, addr, buf, len, false);
}

static int wr(const struct dma_ops *dma, uint64_t addr, const void *buf,
	      size_t len)
{
	return dma->rw(dma->ctx, addr, (void *)buf, len, true);
}

/*
 * Take the next available chain of @q. Return 1 with @c filled, 0 if the
 * ring is empty, -EFAULT if the rings are unreachable, -EINVAL if the chain
 * is malformed (too long, a loop, an index out of range, indirect).
 */
int vq_pop(const struct dma_ops *dma, struct vq *q, struct chain *c)
{
	uint16_t avail_idx, head, i;
	struct {
		uint64_t addr;
		uint32_t len;
		uint16_t flags;
		uint16_t next;
	} desc;
	unsigned int n;

	if (!q->ready || !q->num)
		return 0;
	if (rd(dma, q->avail + 2, &avail_idx, 2))
		return -EFAULT;
	if (avail_idx == q->last_avail)
		return 0;
	/* Read the ring entry only after its index */
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	if (rd(dma, q->avail + 4 + 2 * (q->last_avail % q->num), &head, 2))
		return -EFAULT;
	q->last_avail++;
	if (head >= q->num)
		return -EINVAL;

	c->head = head;
	c->nr = 0;
	i = head;
	for (n = 0; n < CHAIN_MAX; n++) {
		if (rd(dma, q->desc + 16 * (uint64_t)i, &desc, sizeof(desc)))
			return -EFAULT;
		if (desc.flags & VRING_DESC_F_INDIRECT)
			return -EINVAL;	/* not offered */
		c->segs[c->nr].addr = desc.addr;
		c->segs[c->nr].len = desc.len;
		c->segs[c->nr].write = desc.flags & VRING_DESC_F_WRITE;
		c->nr++;
		if (!(desc.flags & VRING_DESC_F_NEXT))
			return 1;
		i = desc.next;
		if (i >= q->num)
			return -EINVAL;
	}
	return -EINVAL;
}

/* Return the chain at @head to the driver with @len bytes written */
int vq_push(const struct dma_ops *dma, struct vq *q, uint16_t head,
	    uint32_t len)
{
	uint32_t elem[2] = { head, len };
	uint16_t idx;

	if (wr(dma, q->used + 4 + 8 * (q->used_idx % q->num), elem,
	       sizeof(elem)))
		return -EFAULT;
	/* The entry before the index that publishes it */
	__atomic_thread_fence(__ATOMIC_RELEASE);
	idx = ++q->used_idx;
	return wr(dma, q->used + 2, &idx, 2);
}

/* Whether the driver wants an interrupt (no VIRTIO_RING_F_EVENT_IDX here) */
bool vq_wants_irq(const struct dma_ops *dma, struct vq *q)
{
	uint16_t flags;

	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (rd(dma, q->avail, &flags, 2))
		return true;
	return !(flags & VRING_AVAIL_F_NO_INTERRUPT);
}

/* Whether the driver made chains of @q available that were not taken */
bool vq_has_avail(const struct dma_ops *dma, struct vq *q)
{
	uint16_t avail_idx;

	if (!q->ready || !q->num || rd(dma, q->avail + 2, &avail_idx, 2))
		return false;
	return avail_idx != q->last_avail;
}

/* Tell the driver whether to notify @q (VRING_USED_F_NO_NOTIFY) */
void vq_set_notify(const struct dma_ops *dma, struct vq *q, bool on)
{
	uint16_t flags = on ? 0 : VRING_USED_F_NO_NOTIFY;

	if (!q->ready || !q->num)
		return;
	wr(dma, q->used, &flags, 2);
	/* The flag before the ring is read again */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}
