/* SPDX-License-Identifier: GPL-2.0 */
/*
 * QEMU's "edu" PCI device (1234:11e8) as a DMA engine, driven from userspace
 * through its vfio cdev bound to an iommufd: the device the SMMUv3 oracle
 * (nested_smmu_lib.h) and the IOAS test (vhost_iommu_edu) make DMA with.
 *
 * The same code runs in the test VM, where the suite's init binds the edu
 * devices to vfio-pci, and in the inner guest, where nothing binds them:
 * edu_open_bdf() binds an unbound device to vfio-pci itself.
 *
 * edu's DMA engine copies between its 4 KiB buffer at device address
 * EDU_DMA_BUF and a bus address (an IOVA behind an IOMMU). The model masks
 * the bus address to 28 bits and aborts QEMU on a transfer outside its
 * buffer, so every DMA is checked (edu_dma_check()) before it starts. One DMA
 * takes about 100 ms of the machine's virtual time; there is no interrupt,
 * edu_dma() polls for the end.
 */
#ifndef EDU_LIB_H
#define EDU_LIB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EDU_DMA_BUF		0x40000ULL	/* the device's DMA buffer address */
#define EDU_DMA_BUF_SIZE	4096U
#define EDU_DMA_MASK		((1ULL << 28) - 1)	/* edu's default dma_mask */

struct edu_dev {
	char bdf[32];
	int fd;			/* vfio cdev */
	uint32_t dev_id;	/* iommufd device ID */
	uint64_t bar0;		/* region offsets in the vfio fd */
	uint64_t cfg;
};

/* Number of edu devices on the PCI bus, and the BDF of the index-th (BDF order). */
int edu_count(void);
int edu_bdf(int index, char *bdf, size_t len);

/*
 * Bind @bdf to vfio-pci through driver_override if no driver has it yet;
 * 0 if it is (now) bound to vfio-pci, -EBUSY if another driver has it.
 */
int edu_bind_vfio(const char *bdf);
/*
 * The vfio cdev of @bdf (/dev/vfio/devices/vfioN) into @path; the node is
 * made from the sysfs "dev" numbers if /dev does not have it.
 */
int edu_cdev(const char *bdf, char *path, size_t len);

/*
 * Open the edu device @bdf (bound to vfio-pci first if unbound), bind it to
 * @iommufd and enable memory space and bus mastering. It is not attached to
 * any IOAS or HWPT yet. 0 or -errno.
 */
int edu_open_bdf(struct edu_dev *edu, const char *bdf, int iommufd);
/* The same for the index-th edu device */
int edu_open(struct edu_dev *edu, int index, int iommufd);
void edu_close(struct edu_dev *edu);

/*
 * Whether a DMA of @len bytes between offset @off of the device buffer and
 * bus address @iova is one the model takes: inside the 4 KiB buffer and
 * below the 28-bit DMA mask. 0 or -EINVAL.
 */
int edu_dma_check(uint32_t off, uint64_t iova, uint64_t len);
/*
 * One DMA: to_ram copies @len bytes from offset @off of the device buffer to
 * @iova, else from @iova to it. Refused with -EINVAL (nothing started) when
 * edu_dma_check() says so; 0 when the device is done, -EIO, -ETIMEDOUT.
 * A DMA the IOMMU refuses still completes on the device's side.
 */
int edu_dma_at(struct edu_dev *edu, uint32_t off, uint64_t iova, uint32_t len,
	       bool to_ram);
/* The same at offset 0 of the device buffer */
int edu_dma(struct edu_dev *edu, uint64_t iova, uint32_t len, bool to_ram);

#endif
