// SPDX-License-Identifier: GPL-2.0
/*
 * Table domains (VIRTIO_IOMMU_F_ATTACH_TABLE) of the assigned devices: the
 * guest owns the stage-1 tables and context descriptor, iommufd the stage 2.
 *
 * One iommufd vIOMMU (IOMMU_VIOMMU_TYPE_ARM_SMMUV3) stands for the
 * virtio-iommu. Its stage 2 is a nest-parent HWPT on an IOAS that maps the
 * whole guest RAM at IOVA = guest physical address, so the only memory a
 * guest's tables can reach is its own. Each assigned device has a vDEVICE
 * whose virtual ID (the vSID) is its virtio endpoint ID, and is attached
 * either to an abort HWPT (a nested HWPT with an invalid vSTE: no DMA at
 * all) or to the nested HWPT made from the STE words of the guest's
 * ATTACH_TABLE. The guest's INVALIDATEs go to the vIOMMU as
 * IOMMU_VIOMMU_INVALIDATE_DATA_VIRTIO entries, from this program or from
 * /dev/vhost-iommu, which is given the same objects.
 */
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <linux/iommufd.h>
#include <linux/virtio_iommu.h>

#include "vmm.h"

/* The STE fields a guest may set (virtio spec, ATTACH_TABLE ARM_SMMU3) */
#define STE0_V			BIT_ULL(0)
#define STE0_CFG_SHIFT		1
#define STE0_CFG_MASK		0x7ULL
#define STE0_CFG_ABORT		0x0
#define STE0_CFG_BYPASS		0x4
#define STE0_CFG_S1_TRANS	0x5
#define STE0_S1FMT		(0x3ULL << 4)
#define STE0_S1CTXPTR		0x000ffffffffffc0ULL
#define STE0_S1CDMAX		(0x1fULL << 59)
#define STE0_ALLOWED		(STE0_V | (STE0_CFG_MASK << STE0_CFG_SHIFT) | \
				 STE0_S1FMT | STE0_S1CTXPTR | STE0_S1CDMAX)
#define STE1_S1DSS		(0x3ULL << 0)
#define STE1_S1CIR		(0x3ULL << 2)
#define STE1_S1COR		(0x3ULL << 4)
#define STE1_S1CSH		(0x3ULL << 6)
#define STE1_S1STALLD		BIT_ULL(27)
#define STE1_EATS		(0x3ULL << 28)
#define STE1_ALLOWED		(STE1_S1DSS | STE1_S1CIR | STE1_S1COR |	\
				 STE1_S1CSH | STE1_S1STALLD | STE1_EATS)
/* A linear table of one 64-byte context descriptor */
#define CD_SIZE			64

/*
 * The ID register fields a guest is shown (the list of
 * struct iommu_hw_info_arm_smmuv3 minus what this program does not
 * offer): IDR0 TERM_MODEL, TTENDIAN, ASID16, TTF; IDR3 BBML, RIL; IDR5
 * GRAN4K/16K/64K, OAS. STALL_MODEL says "no stall"; IDR1 (SSIDSIZE: no
 * substreams), PRI, ATS, HTTU stay 0; COHACC and S1P are set, as the
 * kernel's documentation tells a VMM to assume.
 */
#define IDR0_S1P		BIT(1)
#define IDR0_TTF		(3U << 2)
#define IDR0_COHACC		BIT(4)
#define IDR0_ASID16		BIT(12)
#define IDR0_TTENDIAN		(3U << 21)
#define IDR0_STALL_NONE		BIT(24)
#define IDR0_TERM_MODEL		BIT(26)
#define IDR3_BBML		(3U << 11)
#define IDR3_RIL		BIT(14)
#define IDR5_OAS		(7U << 0)
#define IDR5_GRAN		(7U << 4)

static int fail(const char *what)
{
	int err = errno;

	vmm_log("nested: %s: %s", what, strerror(err));
	return -err;
}

static int destroy(int iommufd, uint32_t id)
{
	struct iommu_destroy d = { .size = sizeof(d), .id = id };

	return id ? ioctl(iommufd, IOMMU_DESTROY, &d) : 0;
}

/* A nested HWPT on the vIOMMU for @ep from @ste; 0 or -errno */
static int alloc_nested(struct nest *n, struct nest_ep *ep,
			const uint64_t ste[2], uint32_t *hwpt_id)
{
	struct iommu_hwpt_arm_smmuv3 data = {
		.ste = { htole64(ste[0]), htole64(ste[1]) },
	};
	struct iommu_hwpt_alloc alloc = {
		.size = sizeof(alloc),
		.dev_id = ep->pdev->dev_id,
		.pt_id = n->viommu_id,
		.data_type = IOMMU_HWPT_DATA_ARM_SMMUV3,
		.data_len = sizeof(data),
		.data_uptr = (uintptr_t)&data,
	};

	if (ioctl(n->iommufd, IOMMU_HWPT_ALLOC, &alloc))
		return -errno;
	*hwpt_id = alloc.out_hwpt_id;
	return 0;
}

int nest_init(struct nest *n, struct vm *vm, int iommufd, uint32_t dev_id)
{
	struct iommu_hw_info info = {
		.size = sizeof(info),
		.dev_id = dev_id,
		.data_len = sizeof(n->hw),
		.data_uptr = (uintptr_t)&n->hw,
	};
	struct iommu_ioas_alloc ioas = { .size = sizeof(ioas) };
	struct iommu_ioas_map map = {
		.size = sizeof(map),
		.flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE |
			 IOMMU_IOAS_MAP_WRITEABLE,
		.user_va = (uintptr_t)vm->ram,
		.length = vm->ram_size,
		.iova = RAM_BASE,
	};
	struct iommu_hwpt_alloc s2 = {
		.size = sizeof(s2),
		.flags = IOMMU_HWPT_ALLOC_NEST_PARENT,
		.dev_id = dev_id,
	};
	struct iommu_viommu_alloc viommu = {
		.size = sizeof(viommu),
		.type = IOMMU_VIOMMU_TYPE_ARM_SMMUV3,
		.dev_id = dev_id,
	};

	memset(n, 0, sizeof(*n));
	n->iommufd = iommufd;
	if (ioctl(iommufd, IOMMU_GET_HW_INFO, &info))
		return fail("IOMMU_GET_HW_INFO");
	if (info.out_data_type != IOMMU_HW_INFO_TYPE_ARM_SMMUV3) {
		vmm_log("nested: the host IOMMU is not an SMMUv3 (type %u)",
			info.out_data_type);
		return -EOPNOTSUPP;
	}
	if (ioctl(iommufd, IOMMU_IOAS_ALLOC, &ioas))
		return fail("IOMMU_IOAS_ALLOC");
	n->ioas_id = ioas.out_ioas_id;
	map.ioas_id = n->ioas_id;
	if (ioctl(iommufd, IOMMU_IOAS_MAP, &map)) {
		fail("IOMMU_IOAS_MAP of the guest RAM");
		goto err;
	}
	s2.pt_id = n->ioas_id;
	if (ioctl(iommufd, IOMMU_HWPT_ALLOC, &s2)) {
		fail("IOMMU_HWPT_ALLOC (nest parent)");
		goto err;
	}
	n->s2_hwpt_id = s2.out_hwpt_id;
	viommu.hwpt_id = n->s2_hwpt_id;
	if (ioctl(iommufd, IOMMU_VIOMMU_ALLOC, &viommu)) {
		fail("IOMMU_VIOMMU_ALLOC");
		goto err;
	}
	n->viommu_id = viommu.out_viommu_id;
	return 0;
err:
	nest_destroy(n);
	return -EOPNOTSUPP;
}

void nest_destroy(struct nest *n)
{
	destroy(n->iommufd, n->viommu_id);
	destroy(n->iommufd, n->s2_hwpt_id);
	destroy(n->iommufd, n->ioas_id);
	n->viommu_id = 0;
	n->s2_hwpt_id = 0;
	n->ioas_id = 0;
}

int nest_add_ep(struct nest *n, struct nest_ep *ep)
{
	static const uint64_t abort_ste[2];
	struct iommu_vdevice_alloc vdev = {
		.size = sizeof(vdev),
		.viommu_id = n->viommu_id,
		.dev_id = ep->pdev->dev_id,
		.virt_id = ep->endpoint,
	};
	int ret;

	if (ioctl(n->iommufd, IOMMU_VDEVICE_ALLOC, &vdev))
		return fail("IOMMU_VDEVICE_ALLOC");
	ep->vdevice_id = vdev.out_vdevice_id;
	ret = alloc_nested(n, ep, abort_ste, &ep->abort_hwpt_id);
	if (ret) {
		errno = -ret;
		return fail("IOMMU_HWPT_ALLOC (abort vSTE)");
	}
	ret = nest_block(n, ep);
	if (ret) {
		errno = -ret;
		return fail("attach to the abort vSTE");
	}
	return 0;
}

void nest_remove_ep(struct nest *n, struct nest_ep *ep)
{
	pci_attach(ep->pdev, 0);
	destroy(n->iommufd, ep->table_hwpt_id);
	destroy(n->iommufd, ep->abort_hwpt_id);
	destroy(n->iommufd, ep->vdevice_id);
	ep->table_hwpt_id = 0;
	ep->abort_hwpt_id = 0;
	ep->vdevice_id = 0;
}

uint8_t nest_check_ste(struct vm *vm, const uint64_t ste[2])
{
	uint64_t cfg = (ste[0] >> STE0_CFG_SHIFT) & STE0_CFG_MASK;
	uint64_t cd = ste[0] & STE0_S1CTXPTR;

	if ((ste[0] & ~STE0_ALLOWED) || (ste[1] & ~STE1_ALLOWED))
		return VIRTIO_IOMMU_S_INVAL;
	if (!(ste[0] & STE0_V))
		return VIRTIO_IOMMU_S_OK;	/* abort, whatever the rest */
	if (cfg != STE0_CFG_ABORT && cfg != STE0_CFG_BYPASS &&
	    cfg != STE0_CFG_S1_TRANS)
		return VIRTIO_IOMMU_S_INVAL;
	if (cfg != STE0_CFG_S1_TRANS)
		return VIRTIO_IOMMU_S_OK;
	/*
	 * PROBE shows no substreams (SSIDSIZE 0): one linear descriptor, in
	 * guest RAM. Stall and ATS are not offered either.
	 */
	if ((ste[0] & (STE0_S1CDMAX | STE0_S1FMT)) ||
	    (ste[1] & (STE1_S1STALLD | STE1_EATS)) ||
	    !gpa_to_hva(vm, cd, CD_SIZE))
		return VIRTIO_IOMMU_S_INVAL;
	return VIRTIO_IOMMU_S_OK;
}

int nest_attach_table(struct nest *n, struct nest_ep *ep,
		      const uint64_t ste[2])
{
	uint32_t old = ep->table_hwpt_id, hwpt_id;
	int ret;

	ret = alloc_nested(n, ep, ste, &hwpt_id);
	if (ret)
		return ret;
	ret = pci_attach(ep->pdev, hwpt_id);
	if (ret) {
		destroy(n->iommufd, hwpt_id);
		return ret;
	}
	ep->table_hwpt_id = hwpt_id;
	destroy(n->iommufd, old);
	n->attaches++;
	return 0;
}

void nest_drop_table(struct nest *n, struct nest_ep *ep)
{
	if (!ep->table_hwpt_id || ep->pdev->pt_id == ep->table_hwpt_id)
		return;
	destroy(n->iommufd, ep->table_hwpt_id);
	ep->table_hwpt_id = 0;
}

int nest_block(struct nest *n, struct nest_ep *ep)
{
	int ret = pci_attach(ep->pdev, ep->abort_hwpt_id);

	if (ret)
		return ret;
	destroy(n->iommufd, ep->table_hwpt_id);
	ep->table_hwpt_id = 0;
	return 0;
}

/*
 * As the kernel's own documentation of the type has it (and vhost-iommu
 * does): a domain entry for the IOTLB unless the request names only the
 * PASID tables, which are per endpoint, and one endpoint entry per endpoint
 */
bool nest_inval_add(struct nest_batch *b, const void *req,
		    const struct nest_ep *const *eps, unsigned int nr_eps)
{
	struct iommu_viommu_invalidate_virtio guest = { 0 };
	unsigned int nr = 0;

	if (nr_eps > NEST_MAX_EPS || b->nr + 1 + nr_eps > NEST_BATCH_ENTRIES)
		return false;
	memcpy((uint8_t *)&guest + IOMMU_VIRTIO_INVAL_REQ_OFFSET,
	       (const uint8_t *)req + sizeof(struct virtio_iommu_req_head),
	       IOMMU_VIRTIO_INVAL_REQ_LEN);
	if (guest.caches != IOMMU_VIRTIO_INVAL_C_PASID) {
		b->e[b->nr + nr] = guest;
		b->e[b->nr + nr++].caches &= ~IOMMU_VIRTIO_INVAL_C_PASID;
	}
	for (unsigned int i = 0; i < nr_eps; i++) {
		b->e[b->nr + nr] = guest;
		b->e[b->nr + nr].flags = IOMMU_VIRTIO_INVAL_HOST_F_VDEV;
		b->e[b->nr + nr++].vdev_id = eps[i]->endpoint;
	}
	b->nr += nr;
	return true;
}

int nest_inval_submit(struct nest *n, const struct nest_batch *b,
		      unsigned int from, unsigned int *done)
{
	struct iommu_hwpt_invalidate cmd = {
		.size = sizeof(cmd),
		.hwpt_id = n->viommu_id,
		.data_uptr = (uintptr_t)&b->e[from],
		.data_type = IOMMU_VIOMMU_INVALIDATE_DATA_VIRTIO,
		.entry_len = sizeof(b->e[0]),
		.entry_num = b->nr - from,
	};

	*done = cmd.entry_num;
	if (!cmd.entry_num)
		return 0;
	n->invalidations++;
	if (!ioctl(n->iommufd, IOMMU_HWPT_INVALIDATE, &cmd))
		return 0;
	/* The kernel reports how many entries it handled before the error */
	*done = cmd.entry_num;
	return -errno;
}

int nest_invalidate(struct nest *n, const void *req,
		    const struct nest_ep *const *eps, unsigned int nr_eps)
{
	struct nest_batch b = { .nr = 0 };
	unsigned int done;

	if (!nest_inval_add(&b, req, eps, nr_eps))
		return -EINVAL;
	return nest_inval_submit(n, &b, 0, &done);
}

size_t nest_probe_prop(const struct nest *n, void *buf)
{
	struct virtio_iommu_probe_hw_arm_smmu3 p = {
		.head.type = htole16(VIRTIO_IOMMU_PROBE_T_HW_ARM_SMMU3),
		.head.length = htole16(sizeof(p) - sizeof(p.head)),
		.idr0 = htole64((n->hw.idr[0] & (IDR0_TTF | IDR0_ASID16 |
						 IDR0_TTENDIAN |
						 IDR0_TERM_MODEL)) |
				IDR0_S1P | IDR0_COHACC | IDR0_STALL_NONE),
		.idr3 = htole64(n->hw.idr[3] & (IDR3_BBML | IDR3_RIL)),
		.idr5 = htole64(n->hw.idr[5] & (IDR5_OAS | IDR5_GRAN)),
	};

	memcpy(buf, &p, sizeof(p));
	return sizeof(p);
}

uint8_t nest_status(int err)
{
	switch (err) {
	case 0:
		return VIRTIO_IOMMU_S_OK;
	case -EOPNOTSUPP:
		return VIRTIO_IOMMU_S_UNSUPP;
	case -EINVAL:
	case -EIO:
		return VIRTIO_IOMMU_S_INVAL;
	case -ENOENT:
		return VIRTIO_IOMMU_S_NOENT;
	case -ENOMEM:
		return VIRTIO_IOMMU_S_NOMEM;
	case -EADDRINUSE:	/* IOMMU_IOAS_MAP over a mapping */
	case -EEXIST:
	case -ERANGE:
		return VIRTIO_IOMMU_S_RANGE;
	default:
		return VIRTIO_IOMMU_S_DEVERR;
	}
}
