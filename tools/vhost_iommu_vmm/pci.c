// SPDX-License-Identifier: GPL-2.0
/*
 * Device assignment: PCI devices of the host, bound to vfio-pci, on the
 * guest's bus 0 behind a generic ECAM host bridge (fdt.c), each at devfn
 * (i + 1) << 3.
 *
 * Each device is a VFIO cdev bound to the VMM's one iommufd. Its config
 * space is the VFIO config region, which VFIO already virtualises (BARs,
 * MSI, ...): every guest access is a pread()/pwrite() there, but for the
 * BARs, which read what this program assigned (the guest probes only, it
 * does not assign), and the interrupt pin, which reads 0 (no INTx is
 * delivered). Its BAR0 is trapped: every MMIO exit in it becomes a
 * pread()/pwrite() on the VFIO BAR0 region.
 *
 * Its DMA: viommu.c attaches the device to the IOAS of its virtio-iommu
 * domain (pci_attach()), or detaches it, which blocks its DMA.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <linux/iommufd.h>
#include <linux/pci_regs.h>
#include <linux/vfio.h>

#include "vmm.h"

/* Config space per function in the ECAM window */
#define ECAM_FN_SHIFT		12
#define ECAM_FN_SIZE		0x1000

/* QEMU's edu device (docs/specs/edu.rst) */
#define EDU_VENDOR		0x1234
#define EDU_DEVICE		0x11e8
#define EDU_DMA_SRC		0x80
#define EDU_DMA_DST		0x88
#define EDU_DMA_CNT		0x90
#define EDU_DMA_CMD		0x98
#define EDU_DMA_RUN		0x1
#define EDU_DMA_TO_RAM		0x2
#define EDU_DMA_BUF		0x40000
#define EDU_DMA_BUF_SIZE	0x1000

static bool natural(uint64_t off, uint32_t len, uint32_t max)
{
	return len && len <= max && !(len & (len - 1)) && !(off & (len - 1));
}

static void region_get(struct pdev *p, uint32_t index, uint64_t *off,
		       uint64_t *size)
{
	struct vfio_region_info reg = { .argsz = sizeof(reg), .index = index };

	if (ioctl(p->fd, VFIO_DEVICE_GET_REGION_INFO, &reg))
		die("%s: VFIO region info %u: %s", p->bdf, index, strerror(errno));
	*off = reg.offset;
	*size = reg.size;
}

static int cfg_rd(struct pdev *p, uint32_t off, void *buf, uint32_t len)
{
	return pread(p->fd, buf, len, p->cfg_off + off) == len ? 0 : -EIO;
}

static int cfg_wr(struct pdev *p, uint32_t off, const void *buf, uint32_t len)
{
	return pwrite(p->fd, buf, len, p->cfg_off + off) == len ? 0 : -EIO;
}

static uint64_t bar_addr(const struct pdev *p)
{
	return (p->bar_reg[0] & PCI_BASE_ADDRESS_MEM_MASK) |
	       (p->bar64 ? (uint64_t)p->bar_reg[1] << 32 : 0);
}

/*
 * A write of BAR0 (@i 0) or its upper half (@i 1): the size's bits stay
 * zero, the type bits stay, as on a device. Writing all-ones then reads
 * back the size (BAR sizing); the guest may move the BAR, and the trap
 * follows it.
 */
static void bar_write(struct pdev *p, unsigned int i, uint32_t val)
{
	uint64_t mask = ~(p->bar_size - 1);

	if (i == 0)
		p->bar_reg[0] = (val & (uint32_t)mask & PCI_BASE_ADDRESS_MEM_MASK) |
				p->bar_flags;
	else
		p->bar_reg[1] = val & (uint32_t)(mask >> 32);
}

/* The config dword at @reg where the guest sees other bits than VFIO's */
static bool cfg_virtual(const struct pdev *p, uint32_t reg, uint32_t *val)
{
	switch (reg) {
	case PCI_BASE_ADDRESS_0:
		*val = p->bar_reg[0];
		return true;
	case PCI_BASE_ADDRESS_1:
		*val = p->bar64 ? p->bar_reg[1] : 0;
		return true;
	case PCI_BASE_ADDRESS_2:
	case PCI_BASE_ADDRESS_3:
	case PCI_BASE_ADDRESS_4:
	case PCI_BASE_ADDRESS_5:
	case PCI_ROM_ADDRESS:
		/* Only BAR0 is offered */
		*val = 0;
		return true;
	}
	return false;
}

/*
 * The state the VMM hands over at boot (and at every machine reset), as
 * firmware would: the device reset if it can be, BAR0 at its place, memory
 * decoding on, bus mastering off.
 */
static void pdev_reset(struct pdev *p, bool can_reset)
{
	uint16_t cmd;

	if (can_reset && ioctl(p->fd, VFIO_DEVICE_RESET))
		vmm_log("%s: VFIO_DEVICE_RESET: %s", p->bdf, strerror(errno));
	bar_write(p, 0, p->bar_gpa);
	bar_write(p, 1, p->bar_gpa >> 32);
	if (cfg_rd(p, PCI_COMMAND, &cmd, 2))
		die("%s: config read: %s", p->bdf, strerror(errno));
	cmd = (cmd | PCI_COMMAND_MEMORY) & ~PCI_COMMAND_MASTER;
	if (cfg_wr(p, PCI_COMMAND, &cmd, 2))
		die("%s: config write: %s", p->bdf, strerror(errno));
}

static bool pdev_can_reset(struct pdev *p)
{
	struct vfio_device_info info = { .argsz = sizeof(info) };

	return !ioctl(p->fd, VFIO_DEVICE_GET_INFO, &info) &&
	       (info.flags & VFIO_DEVICE_FLAGS_RESET);
}

/* Open the VFIO cdev of host device @bdf and bind it to the VMM's iommufd */
static void pdev_open(struct vm *vm, struct pdev *p, const char *bdf)
{
	struct vfio_device_bind_iommufd bind = {
		.argsz = sizeof(bind),
		.iommufd = vm->iommufd,
	};
	char dir[256], path[512] = "";
	struct dirent *de;
	DIR *d;

	p->bdf = bdf;
	snprintf(dir, sizeof(dir), "/sys/bus/pci/devices/%s/vfio-dev", bdf);
	d = opendir(dir);
	if (!d)
		die("%s: %s (is %s bound to vfio-pci?)", dir, strerror(errno),
		    bdf);
	while ((de = readdir(d)))
		if (!strncmp(de->d_name, "vfio", 4))
			snprintf(path, sizeof(path), "/dev/vfio/devices/%s",
				 de->d_name);
	closedir(d);
	if (!path[0])
		die("%s: no VFIO device", dir);
	p->fd = open(path, O_RDWR | O_CLOEXEC);
	if (p->fd < 0)
		die("%s: %s", path, strerror(errno));
	/* Until an ATTACH, the device is bound but attached nowhere: blocked */
	if (ioctl(p->fd, VFIO_DEVICE_BIND_IOMMUFD, &bind))
		die("%s: VFIO_DEVICE_BIND_IOMMUFD: %s", bdf, strerror(errno));
	p->dev_id = bind.out_devid;
}

void pci_assign(struct vm *vm, const char *bdf)
{
	struct pdev *p = &vm->pdevs[vm->nr_pdevs];
	uint64_t next = PCI_MMIO_BASE;
	uint32_t bar, id;

	if (vm->nr_pdevs == MAX_ASSIGNED)
		die("at most %d assigned devices", MAX_ASSIGNED);
	if (vm->iommufd < 0) {
		vm->iommufd = open("/dev/iommu", O_RDWR | O_CLOEXEC);
		if (vm->iommufd < 0)
			die("/dev/iommu: %s", strerror(errno));
	}
	pdev_open(vm, p, bdf);
	region_get(p, VFIO_PCI_CONFIG_REGION_INDEX, &p->cfg_off, &p->cfg_size);
	region_get(p, VFIO_PCI_BAR0_REGION_INDEX, &p->bar_off, &p->bar_size);
	if (p->cfg_size > ECAM_FN_SIZE)
		p->cfg_size = ECAM_FN_SIZE;
	if (cfg_rd(p, PCI_VENDOR_ID, &id, 4) ||
	    cfg_rd(p, PCI_BASE_ADDRESS_0, &bar, 4))
		die("%s: config read: %s", bdf, strerror(errno));
	p->vendor = id;
	p->device = id >> 16;
	if (bar & PCI_BASE_ADDRESS_SPACE_IO || p->bar_size < 16 ||
	    (p->bar_size & (p->bar_size - 1)) || p->bar_size > PCI_MMIO_SIZE)
		die("%s: BAR0 is not a memory BAR this VMM can place", bdf);
	p->bar64 = (bar & PCI_BASE_ADDRESS_MEM_TYPE_MASK) ==
		   PCI_BASE_ADDRESS_MEM_TYPE_64;
	p->bar_flags = bar & ~PCI_BASE_ADDRESS_MEM_MASK;

	/* BAR0 naturally aligned in the window, after the others */
	for (unsigned int i = 0; i < vm->nr_pdevs; i++)
		if (vm->pdevs[i].bar_gpa + vm->pdevs[i].bar_size > next)
			next = vm->pdevs[i].bar_gpa + vm->pdevs[i].bar_size;
	p->bar_gpa = (next + p->bar_size - 1) & ~(p->bar_size - 1);
	if (p->bar_gpa + p->bar_size > PCI_MMIO_BASE + PCI_MMIO_SIZE)
		die("%s: no room for BAR0 in the PCI window", bdf);
	p->devfn = (vm->nr_pdevs + 1) << 3;
	vm->nr_pdevs++;
	pdev_reset(p, false);
	vmm_log("assigned %s (%04x:%04x) as 00:%02x.0 endpoint %#x, BAR0 %#llx (%llu KiB)",
		bdf, p->vendor, p->device, p->devfn >> 3,
		PCI_ENDPOINT_BASE + p->devfn, (unsigned long long)p->bar_gpa,
		(unsigned long long)p->bar_size >> 10);
}

int pci_attach(struct pdev *p, uint32_t ioas_id)
{
	struct vfio_device_attach_iommufd_pt at = {
		.argsz = sizeof(at),
		.pt_id = ioas_id,
	};
	struct vfio_device_detach_iommufd_pt de = { .argsz = sizeof(de) };

	if (ioas_id == p->pt_id)
		return 0;
	/* An attached device is replaced; a detached one is blocked */
	if (ioas_id ? ioctl(p->fd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &at) :
	    ioctl(p->fd, VFIO_DEVICE_DETACH_IOMMUFD_PT, &de))
		return -errno;
	p->pt_id = ioas_id;
	return 0;
}

/* ---- Config space: the ECAM window ---- */

static void cfg_read(struct pdev *p, uint32_t off, uint8_t *data,
		     uint32_t len)
{
	uint32_t val = ~0U, dw;

	if (cfg_virtual(p, off & ~3U, &dw)) {
		val = dw >> (8 * (off & 3));
	} else if (cfg_rd(p, off, &val, len)) {
		val = ~0U;
	} else if (off <= PCI_INTERRUPT_PIN && off + len > PCI_INTERRUPT_PIN) {
		/* No INTx: the guest must not wait for one */
		val &= ~(0xffU << (8 * (PCI_INTERRUPT_PIN - off)));
	}
	memcpy(data, &val, len);
}

static void cfg_write(struct pdev *p, uint32_t off, const uint8_t *data,
		      uint32_t len)
{
	uint32_t reg = off & ~3U, shift = 8 * (off & 3), val = 0, dw, mask;

	memcpy(&val, data, len);
	if (!cfg_virtual(p, reg, &dw)) {
		/* MEM and bus master enable included: VFIO passes them */
		cfg_wr(p, off, data, len);
		return;
	}
	if (reg != PCI_BASE_ADDRESS_0 &&
	    (reg != PCI_BASE_ADDRESS_1 || !p->bar64))
		return;
	mask = (len == 4 ? ~0U : ((1U << (8 * len)) - 1)) << shift;
	dw = (dw & ~mask) | ((val << shift) & mask);
	bar_write(p, reg == PCI_BASE_ADDRESS_1, dw);
}

void pci_ecam_mmio(struct vm *vm, uint64_t off, uint8_t *data, uint32_t len,
		   bool write)
{
	uint32_t devfn = (off >> ECAM_FN_SHIFT) & 0xff;
	uint32_t reg = off & (ECAM_FN_SIZE - 1);
	struct pdev *p = NULL;

	if (!write)
		memset(data, 0xff, len);	/* no device there */
	for (unsigned int i = 0; i < vm->nr_pdevs; i++)
		if (vm->pdevs[i].devfn == devfn)
			p = &vm->pdevs[i];
	if (!p)
		return;
	/* Naturally aligned bytes, words, dwords inside the region only */
	if (!natural(reg, len, 4) || reg + len > p->cfg_size) {
		p->nr_refused++;
		return;
	}
	p->nr_cfg++;
	if (write)
		cfg_write(p, reg, data, len);
	else
		cfg_read(p, reg, data, len);
}

/* ---- BAR0: trapped, forwarded ---- */

/*
 * QEMU's edu calls hw_error(), which aborts all of QEMU, when a DMA's range
 * in the device leaves its 4 KiB buffer. The guest must not get there: the
 * DMA registers do not change while a DMA runs, so the range is checked
 * when the command starts one.
 */
static bool edu_dma_ok(struct pdev *p, uint64_t off, const uint8_t *data,
		       uint32_t len)
{
	uint64_t src, dst, cnt, start, cmd = 0;

	if (p->vendor != EDU_VENDOR || p->device != EDU_DEVICE ||
	    off + len <= EDU_DMA_CMD || off >= EDU_DMA_CMD + 8)
		return true;
	if (off != EDU_DMA_CMD)
		return false;
	memcpy(&cmd, data, len);
	if (!(cmd & EDU_DMA_RUN))
		return true;
	if (pread(p->fd, &src, 8, p->bar_off + EDU_DMA_SRC) != 8 ||
	    pread(p->fd, &dst, 8, p->bar_off + EDU_DMA_DST) != 8 ||
	    pread(p->fd, &cnt, 8, p->bar_off + EDU_DMA_CNT) != 8)
		return false;
	start = cmd & EDU_DMA_TO_RAM ? src : dst;
	return start >= EDU_DMA_BUF && cnt <= EDU_DMA_BUF_SIZE &&
	       start - EDU_DMA_BUF <= EDU_DMA_BUF_SIZE - cnt;
}

void pci_bar_mmio(struct vm *vm, uint64_t gpa, uint8_t *data, uint32_t len,
		  bool write)
{
	struct pdev *p = NULL;
	uint64_t off = 0;

	if (!write)
		memset(data, 0xff, len);
	for (unsigned int i = 0; i < vm->nr_pdevs; i++) {
		uint64_t base = bar_addr(&vm->pdevs[i]);

		if (gpa >= base && gpa - base < vm->pdevs[i].bar_size) {
			p = &vm->pdevs[i];
			off = gpa - base;
		}
	}
	if (!p)
		return;
	if (!natural(off, len, 8) || off + len > p->bar_size ||
	    (write && !edu_dma_ok(p, off, data, len))) {
		p->nr_refused++;
		if (p->nr_refused <= 8)
			vmm_log("%s: refused BAR0 %s of %u bytes at %#llx",
				p->bdf, write ? "write" : "read", len,
				(unsigned long long)off);
		return;
	}
	p->nr_bar++;
	/* With memory decoding off, VFIO fails the access: reads all-ones */
	if (write)
		pwrite(p->fd, data, len, p->bar_off + off);
	else if (pread(p->fd, data, len, p->bar_off + off) != len)
		memset(data, 0xff, len);
}

/* ---- Machine ---- */

void pci_reset(struct vm *vm)
{
	for (unsigned int i = 0; i < vm->nr_pdevs; i++)
		pdev_reset(&vm->pdevs[i], pdev_can_reset(&vm->pdevs[i]));
}

static void pdev_print_stats(struct pdev *p)
{
	vmm_log("assigned %s as 00:%02x.0 endpoint %#x: %llu IOAS maps, %llu unmaps, %llu dropped",
		p->bdf, p->devfn >> 3, PCI_ENDPOINT_BASE + p->devfn,
		(unsigned long long)p->nr_ioas_maps,
		(unsigned long long)p->nr_ioas_unmaps,
		(unsigned long long)p->nr_unmaps_dropped);
	vmm_log("assigned %s: %llu config accesses, %llu BAR0 accesses, %llu refused",
		p->bdf, (unsigned long long)p->nr_cfg,
		(unsigned long long)p->nr_bar,
		(unsigned long long)p->nr_refused);
}

void pci_print_stats(struct vm *vm)
{
	for (unsigned int i = 0; i < vm->nr_pdevs; i++)
		pdev_print_stats(&vm->pdevs[i]);
}

/*
 * After viommu_destroy() detached the devices and destroyed the IOASes:
 * each device fd first (its iommufd binding goes with it), then the iommufd.
 */
void pci_close(struct vm *vm)
{
	for (unsigned int i = 0; i < vm->nr_pdevs; i++) {
		close(vm->pdevs[i].fd);
		vm->pdevs[i].fd = -1;
	}
	if (vm->iommufd >= 0)
		close(vm->iommufd);
	vm->iommufd = -1;
}
