/* SPDX-License-Identifier: GPL-2.0 */
/*
 * vhost-iommu-vmm: a small KVM VMM for arm64 that boots a Linux guest whose
 * virtio-iommu is served by this program, the fast-path queues of
 * VIRTIO_IOMMU_F_INVALQ by /dev/vhost-iommu.
 *
 * The machine (guest physical addresses):
 *   0x08000000  GICv3 distributor (in-kernel vGIC), 64 KiB
 *   0x080a0000  GICv3 redistributor of vCPU 0, 128 KiB
 *   0x09000000  PL011 UART (emulated here), SPI 1
 *   0x0a000000  virtio-mmio: virtio-iommu, SPI 16
 *   0x0a000200  virtio-mmio: virtio-rng, SPI 17, behind the virtio-iommu
 *               as endpoint 1
 *   0x10000000  PCI memory window (32-bit, bus address = CPU address),
 *               256 MiB: the BARs of the assigned devices (-p)
 *   0x30000000  PCI ECAM of bus 0, 1 MiB (pci-host-ecam-generic), only
 *               with assigned devices; device i at devfn (i + 1) << 3,
 *               behind the virtio-iommu as endpoint 0x100 + devfn
 *   0x80000000  RAM
 */
#ifndef VMM_H
#define VMM_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdnoreturn.h>
#include <linux/iommufd.h>

#ifndef ARRAY_SIZE
#define ARRAY_SIZE(a)		(sizeof(a) / sizeof((a)[0]))
#endif
#ifndef BIT
#define BIT(n)			(1U << (n))
#endif
#ifndef BIT_ULL
#define BIT_ULL(n)		(1ULL << (n))
#endif

#define GIC_DIST_BASE		0x08000000ULL
#define GIC_DIST_SIZE		0x10000ULL
#define GIC_REDIST_BASE		0x080a0000ULL
#define GIC_REDIST_SIZE		0x20000ULL
#define UART_BASE		0x09000000ULL
#define UART_SIZE		0x1000ULL
#define UART_SPI		1
#define VIRTIO_MMIO_BASE	0x0a000000ULL
#define VIRTIO_MMIO_SIZE	0x200ULL
#define VIOMMU_SPI		16
#define RNG_SPI			17
#define RAM_BASE		0x80000000ULL
#define PCI_MMIO_BASE		0x10000000ULL
#define PCI_MMIO_SIZE		0x10000000ULL
#define PCI_ECAM_BASE		0x30000000ULL
#define PCI_ECAM_SIZE		0x100000ULL

/* The MSI doorbell window the virtio-iommu reports as reserved (PROBE) */
#define MSI_WINDOW_BASE		0x08080000ULL
#define MSI_WINDOW_SIZE		0x20000ULL

/* The endpoint ID of the virtio-rng device (its "iommus" cell) */
#define RNG_ENDPOINT		1
/* The host bridge's iommu-map: endpoint ID = PCI_ENDPOINT_BASE + RID */
#define PCI_ENDPOINT_BASE	0x100
#define MAX_ASSIGNED		2

/* Virtio status bits and feature bits used here */
#define VIRTIO_STAT_ACKNOWLEDGE	1
#define VIRTIO_STAT_DRIVER	2
#define VIRTIO_STAT_DRIVER_OK	4
#define VIRTIO_STAT_FEATURES_OK	8
#define VIRTIO_STAT_NEEDS_RESET	64
#define VIRTIO_FEAT_VERSION_1	32
#define VIRTIO_FEAT_ACCESS_PLATFORM 33

/*
 * The most queues of a device: the virtio-iommu's requestq and eventq, and
 * with VIRTIO_IOMMU_F_INVALQ its page-request queue and one invalidation
 * queue (one per vCPU)
 */
#define VQ_MAX			4
#define VQ_SIZE			64
#define CHAIN_MAX		16

struct vm;

/* A device-visible range of a descriptor chain */
struct seg {
	uint64_t addr;
	uint32_t len;
	bool write;
};

struct chain {
	uint16_t head;
	unsigned int nr;
	struct seg segs[CHAIN_MAX];
};

/*
 * How a device reaches guest memory: the virtio-iommu itself uses guest
 * physical addresses; an endpoint behind it uses IOVAs that the virtio-iommu
 * translates (and may refuse). Return 0 or -EFAULT.
 */
struct dma_ops {
	int (*rw)(void *ctx, uint64_t addr, void *buf, size_t len, bool write);
	void *ctx;
};

/* A split virtqueue, as the device side sees it */
struct vq {
	uint16_t num;
	bool ready;
	uint64_t desc, avail, used;
	uint16_t last_avail;	/* next avail entry to take */
	uint16_t used_idx;	/* next used entry to write */
};

struct vdev;

struct vdev_ops {
	/* Read @len bytes of the configuration space at @off */
	void (*cfg_read)(struct vdev *d, uint32_t off, void *buf, uint32_t len);
	/* Whether the driver's features (offered ones only) go together */
	bool (*features_ok)(struct vdev *d, uint64_t features);
	/* The driver wrote the status: 0 is a reset */
	void (*status)(struct vdev *d, uint32_t old, uint32_t status);
	/* The driver notified queue @q (MMIO exit, not an ioeventfd) */
	void (*notify)(struct vdev *d, unsigned int q);
};

/* A virtio-mmio transport (version 2) */
struct vdev {
	struct vm *vm;
	const char *name;
	uint64_t base;
	unsigned int spi;
	uint32_t device_id;
	uint64_t features;	/* offered */
	uint64_t driver_features;
	uint32_t dev_feat_sel, drv_feat_sel;
	uint32_t queue_sel;
	uint32_t status;
	uint32_t int_status;
	bool int_always;	/* report "used buffer" on every read */
	unsigned int nr_vqs;
	struct vq vqs[VQ_MAX];
	int irq_fd;		/* an irqfd: a write raises the SPI (edge) */
	const struct vdev_ops *ops;
	void *priv;
};

/* A PCI device of the host assigned to the guest through VFIO (pci.c) */
struct pdev {
	const char *bdf;	/* on the host */
	int fd;			/* its VFIO cdev, bound to vm->iommufd */
	uint32_t dev_id;	/* its iommufd device */
	uint8_t devfn;		/* on the guest's bus 0 */
	uint16_t vendor, device;
	uint64_t cfg_off, cfg_size;	/* the VFIO config region */
	uint64_t bar_off, bar_size;	/* the VFIO BAR0 region */
	uint32_t bar_flags;	/* the low bits of BAR0 (type, prefetch) */
	bool bar64;
	uint64_t bar_gpa;	/* where the VMM put BAR0 */
	uint32_t bar_reg[2];	/* BAR0 (and BAR1 of a 64-bit BAR) as seen */
	uint32_t pt_id;		/* the IOAS it is attached to, or 0: blocked */
	/* Statistics: on its domain's IOAS, while attached */
	uint64_t nr_ioas_maps, nr_ioas_unmaps, nr_unmaps_dropped;
	uint64_t nr_cfg, nr_bar, nr_refused;
};

struct vm {
	int kvm_fd, vm_fd, vcpu_fd, gic_fd;
	struct kvm_run *run;
	size_t run_size;
	uint8_t *ram;
	uint64_t ram_size;
	bool ram_hugetlb;
	/* Boot images */
	const char *kernel_path, *initrd_path, *cmdline;
	uint64_t kernel_entry, dtb_gpa;
	uint64_t initrd_start, initrd_end;
	unsigned int boot, nr_boots;
	/* Devices */
	struct vdev viommu_dev, rng_dev;
	int iommufd;		/* with assigned devices, else -1 */
	unsigned int nr_pdevs;
	struct pdev pdevs[MAX_ASSIGNED];
	/* --unmap=drop: UNMAP on an IOAS answered S_OK, not carried out */
	bool unmap_drop;
	/* Where the guest's INVALIDATEs of table domains are served (-I) */
	enum inval_mode {
		INVAL_KERNEL,	/* invalidation queue, /dev/vhost-iommu */
		INVAL_VMM,	/* invalidation queue, this program's thread */
		INVAL_VCPU,	/* invalidation queue, in the vCPU's exit */
		INVAL_REQUESTQ,	/* no F_INVALQ: request queue, this program */
		INVAL_DROP,	/* negative control: answered, not carried out */
		INVAL_NONE,	/* no F_ATTACH_TABLE: MAP/UNMAP only */
	} inval;
	/*
	 * --busy-poll: how long the server of the invalidation queues (the
	 * vhost worker, or this program's thread) watches them when emptied (us)
	 */
	unsigned int busy_poll_us;
	uint32_t uart_imsc;
	bool uart_line;
	char uart_buf[512];
	size_t uart_len;
};

/* main.c */
void *gpa_to_hva(struct vm *vm, uint64_t gpa, uint64_t len);
void vmm_log(const char *fmt, ...);
noreturn void die(const char *fmt, ...);
extern bool verbose;

/* fdt.c */
void *fdt_build(struct vm *vm, size_t *size);

/* virtio.c */
void vdev_init(struct vdev *d, struct vm *vm, const char *name, uint64_t base,
	       unsigned int spi, uint32_t device_id, uint64_t features,
	       unsigned int nr_vqs, const struct vdev_ops *ops, void *priv);
void vdev_mmio(struct vdev *d, uint64_t off, uint8_t *data, uint32_t len,
	       bool write);
void vdev_reset(struct vdev *d);
void vdev_irq(struct vdev *d);
int vq_pop(const struct dma_ops *dma, struct vq *q, struct chain *c);
int vq_push(const struct dma_ops *dma, struct vq *q, uint16_t head,
	    uint32_t len);
bool vq_wants_irq(const struct dma_ops *dma, struct vq *q);
bool vq_has_avail(const struct dma_ops *dma, struct vq *q);
void vq_set_notify(const struct dma_ops *dma, struct vq *q, bool on);

/* viommu.c */
void viommu_create(struct vm *vm);
void viommu_destroy(struct vm *vm);
void viommu_reset(struct vm *vm);
void viommu_mmio(struct vm *vm, uint64_t off, uint8_t *data, uint32_t len,
		 bool write);
void viommu_print_stats(struct vm *vm);
/*
 * DMA of endpoint @ep at IOVA @iova through the guest's mappings; refused
 * accesses are reported to the guest. Return 0 or -EFAULT.
 */
int viommu_dma(struct vm *vm, uint32_t ep, uint64_t iova, void *buf,
	       size_t len, bool write);
/* Whether @iova is mapped for endpoint @ep (for the "wild DMA" check) */
bool viommu_is_mapped(struct vm *vm, uint32_t ep, uint64_t iova);

/* pci.c */
void pci_assign(struct vm *vm, const char *bdf);
void pci_ecam_mmio(struct vm *vm, uint64_t off, uint8_t *data, uint32_t len,
		   bool write);
void pci_bar_mmio(struct vm *vm, uint64_t gpa, uint8_t *data, uint32_t len,
		  bool write);
void pci_reset(struct vm *vm);
void pci_print_stats(struct vm *vm);
void pci_close(struct vm *vm);
/* Attach @p to IOAS @ioas_id (replacing), or with 0 detach it: blocked */
int pci_attach(struct pdev *p, uint32_t ioas_id);
/* nested.c: the table domains of the assigned devices */
#define NEST_MAX_EPS		2

/* The objects shared by all table domains: one vIOMMU over the guest RAM */
struct nest {
	int iommufd;
	uint32_t ioas_id;	/* the guest RAM at IOVA = guest physical */
	uint32_t s2_hwpt_id;	/* nest parent on it */
	uint32_t viommu_id;
	struct iommu_hw_info_arm_smmuv3 hw;	/* the host SMMUv3 */
	uint64_t attaches, invalidations;
};

/* An assigned device as the vIOMMU sees it */
struct nest_ep {
	struct pdev *pdev;
	uint32_t endpoint;	/* virtio endpoint ID, also the vSID */
	uint32_t vdevice_id;
	uint32_t abort_hwpt_id;	/* nested HWPT of an invalid vSTE */
	uint32_t table_hwpt_id;	/* of the guest's vSTE, or 0 */
};

int nest_init(struct nest *n, struct vm *vm, int iommufd, uint32_t dev_id);
void nest_destroy(struct nest *n);
int nest_add_ep(struct nest *n, struct nest_ep *ep);
void nest_remove_ep(struct nest *n, struct nest_ep *ep);
/* VIRTIO_IOMMU_S_OK if a guest may hand over these STE words */
uint8_t nest_check_ste(struct vm *vm, const uint64_t ste[2]);
/* Install the guest's vSTE, or the abort one; 0 or -errno */
int nest_attach_table(struct nest *n, struct nest_ep *ep,
		      const uint64_t ste[2]);
int nest_block(struct nest *n, struct nest_ep *ep);
/* Destroy the HWPT of the guest's vSTE once the device left it */
void nest_drop_table(struct nest *n, struct nest_ep *ep);
/*
 * IOMMU_HWPT_INVALIDATE of a guest INVALIDATE request @req (the
 * device-readable part, struct virtio_iommu_req_invalidate) on a domain
 * with endpoints @eps; 0 or -errno
 */
int nest_invalidate(struct nest *n, const void *req,
		    const struct nest_ep *const *eps, unsigned int nr_eps);

/* The entries of several INVALIDATEs, for one IOMMU_HWPT_INVALIDATE */
#define NEST_BATCH_REQS		64
#define NEST_BATCH_ENTRIES	(NEST_BATCH_REQS * (1 + NEST_MAX_EPS))
struct nest_batch {
	struct iommu_viommu_invalidate_virtio e[NEST_BATCH_ENTRIES];
	unsigned int nr;
};

/*
 * Add the entries of INVALIDATE @req (as nest_invalidate()) to @b; false
 * if @b has no room for them
 */
bool nest_inval_add(struct nest_batch *b, const void *req,
		    const struct nest_ep *const *eps, unsigned int nr_eps);
/*
 * One IOMMU_HWPT_INVALIDATE of the entries of @b from @from; 0 or -errno,
 * and in @done how many of them the kernel handled
 */
int nest_inval_submit(struct nest *n, const struct nest_batch *b,
		      unsigned int from, unsigned int *done);
/* The PROBE property VIRTIO_IOMMU_PROBE_T_HW_ARM_SMMU3; its size */
size_t nest_probe_prop(const struct nest *n, void *buf);
/* The virtio status of an iommufd or VFIO error (-errno) */
uint8_t nest_status(int err);

/* rng.c */
struct rng_opts {
	uint64_t seed;
	uint64_t wild_dma_at;	/* request number of the wild DMA, 0: none */
	uint64_t wild_iova;
};

void rng_create(struct vm *vm, const struct rng_opts *opts);
void rng_reset(struct vm *vm);
void rng_print_stats(struct vm *vm);

/* The stream of the virtio-rng device: byte @n of the stream from @seed */
static inline uint64_t rng_stream_word(uint64_t seed, uint64_t n)
{
	/* splitmix64 of the word index: any byte is computable on its own */
	uint64_t z = seed + (n + 1) * 0x9e3779b97f4a7c15ULL;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static inline uint8_t rng_stream_byte(uint64_t seed, uint64_t n)
{
	return rng_stream_word(seed, n / 8) >> (8 * (n % 8));
}

#endif
