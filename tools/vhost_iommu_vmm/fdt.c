// SPDX-License-Identifier: GPL-2.0
/*
 * A flattened device tree writer (Devicetree Specification v0.4, chapter 5)
 * and the tree of the machine: memory, one CPU, PSCI, the GICv3, the timer,
 * the PL011, and the two virtio-mmio devices, the virtio-rng sitting behind
 * the virtio-iommu (Documentation/devicetree/bindings/virtio/iommu.yaml);
 * with assigned devices, a PCI host bridge whose devices sit behind it too
 * (Documentation/devicetree/bindings/pci/host-generic-pci.yaml, pci-iommu.txt).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <endian.h>

#include "vmm.h"

#define FDT_MAGIC	0xd00dfeed
#define FDT_BEGIN_NODE	1
#define FDT_END_NODE	2
#define FDT_PROP	3
#define FDT_END		9

#define PH_GIC		1
#define PH_CLK		2
#define PH_VIOMMU	3

/* GIC interrupt specifier: type (0 SPI, 1 PPI), number, flags */
#define GIC_SPI		0
#define GIC_PPI		1
#define IRQ_EDGE_RISING	1
#define IRQ_LEVEL_HIGH	4

/* PCI address, first cell: 32-bit memory space */
#define PCI_SPACE_MEM32	0x02000000

struct fdt {
	uint8_t *st;		/* structure block */
	size_t st_len, st_cap;
	char *str;		/* strings block */
	size_t str_len, str_cap;
};

static void *grow(void *buf, size_t *cap, size_t need)
{
	if (need <= *cap)
		return buf;
	while (*cap < need)
		*cap = *cap ? *cap * 2 : 4096;
	buf = realloc(buf, *cap);
	if (!buf)
		die("out of memory");
	return buf;
}

static void put(struct fdt *f, const void *data, size_t len)
{
	size_t padded = (len + 3) & ~3UL;

	f->st = grow(f->st, &f->st_cap, f->st_len + padded);
	memcpy(f->st + f->st_len, data, len);
	memset(f->st + f->st_len + len, 0, padded - len);
	f->st_len += padded;
}

static void put32(struct fdt *f, uint32_t v)
{
	v = htobe32(v);
	put(f, &v, 4);
}

static uint32_t string_off(struct fdt *f, const char *name)
{
	size_t len = strlen(name) + 1;

	for (size_t off = 0; off < f->str_len; off += strlen(f->str + off) + 1)
		if (!strcmp(f->str + off, name))
			return off;
	f->str = grow(f->str, &f->str_cap, f->str_len + len);
	memcpy(f->str + f->str_len, name, len);
	f->str_len += len;
	return f->str_len - len;
}

static void begin_node(struct fdt *f, const char *name)
{
	put32(f, FDT_BEGIN_NODE);
	put(f, name, strlen(name) + 1);
}

static void end_node(struct fdt *f)
{
	put32(f, FDT_END_NODE);
}

static void prop(struct fdt *f, const char *name, const void *data,
		 size_t len)
{
	put32(f, FDT_PROP);
	put32(f, len);
	put32(f, string_off(f, name));
	put(f, data, len);
}

static void prop_str(struct fdt *f, const char *name, const char *s)
{
	prop(f, name, s, strlen(s) + 1);
}

/* A property of @n 32-bit cells */
static void prop_cells(struct fdt *f, const char *name, unsigned int n,
		       const uint32_t *cells)
{
	uint32_t be[16];

	for (unsigned int i = 0; i < n; i++)
		be[i] = htobe32(cells[i]);
	prop(f, name, be, 4 * n);
}

static void prop_u32(struct fdt *f, const char *name, uint32_t v)
{
	prop_cells(f, name, 1, &v);
}

static void prop_u64(struct fdt *f, const char *name, uint64_t v)
{
	uint32_t cells[2] = { v >> 32, v };

	prop_cells(f, name, 2, cells);
}

/* reg = <addr size> with #address-cells = #size-cells = 2 */
static void prop_reg(struct fdt *f, uint64_t addr, uint64_t size)
{
	uint32_t cells[4] = { addr >> 32, addr, size >> 32, size };

	prop_cells(f, "reg", 4, cells);
}

static void prop_irq(struct fdt *f, uint32_t spi, uint32_t flags)
{
	uint32_t cells[3] = { GIC_SPI, spi, flags };

	prop_cells(f, "interrupts", 3, cells);
}

static void virtio_node(struct fdt *f, const struct vdev *d)
{
	char name[64];

	snprintf(name, sizeof(name), "virtio_mmio@%llx",
		 (unsigned long long)d->base);
	begin_node(f, name);
	prop_str(f, "compatible", "virtio,mmio");
	prop_reg(f, d->base, VIRTIO_MMIO_SIZE);
	prop_irq(f, d->spi, IRQ_EDGE_RISING);
	/* The VMM's accesses to guest memory are cache coherent */
	prop(f, "dma-coherent", NULL, 0);
}

/*
 * The host bridge of the assigned devices: bus 0 only, one 32-bit memory
 * window, no I/O space and no interrupt-map (no INTx: the devices' pin
 * reads 0). The BARs are the VMM's (linux,pci-probe-only in /chosen).
 */
static void pci_node(struct fdt *f)
{
	char name[64];
	uint32_t bus_range[2] = { 0, 0 };
	uint32_t ranges[7] = {
		PCI_SPACE_MEM32, PCI_MMIO_BASE >> 32, (uint32_t)PCI_MMIO_BASE,
		PCI_MMIO_BASE >> 32, (uint32_t)PCI_MMIO_BASE,
		PCI_MMIO_SIZE >> 32, (uint32_t)PCI_MMIO_SIZE,
	};
	/* RID 0.. to endpoint ID PCI_ENDPOINT_BASE.., for 256 RIDs */
	uint32_t iommu_map[4] = { 0, PH_VIOMMU, PCI_ENDPOINT_BASE, 0x100 };

	snprintf(name, sizeof(name), "pcie@%llx",
		 (unsigned long long)PCI_ECAM_BASE);
	begin_node(f, name);
	prop_str(f, "compatible", "pci-host-ecam-generic");
	prop_str(f, "device_type", "pci");
	prop_u32(f, "#address-cells", 3);
	prop_u32(f, "#size-cells", 2);
	prop_reg(f, PCI_ECAM_BASE, PCI_ECAM_SIZE);
	prop_cells(f, "bus-range", 2, bus_range);
	prop_cells(f, "ranges", 7, ranges);
	prop_cells(f, "iommu-map", 4, iommu_map);
	/* The devices' DMA goes through the host's IOMMU, cache coherent */
	prop(f, "dma-coherent", NULL, 0);
	end_node(f);
}

void *fdt_build(struct vm *vm, size_t *size)
{
	struct fdt f = { 0 };
	char bootargs[1024];
	uint32_t hdr[10];
	uint8_t *blob;
	size_t off_st, off_str, total;

	/* The root */
	begin_node(&f, "");
	prop_str(&f, "compatible", "linux,dummy-virt");
	prop_u32(&f, "#address-cells", 2);
	prop_u32(&f, "#size-cells", 2);
	prop_u32(&f, "interrupt-parent", PH_GIC);

	begin_node(&f, "chosen");
	snprintf(bootargs, sizeof(bootargs), "%s vmm.boot=%u",
		 vm->cmdline ? vm->cmdline : "console=ttyAMA0", vm->boot + 1);
	prop_str(&f, "bootargs", bootargs);
	prop_str(&f, "stdout-path", "/pl011@9000000");
	if (vm->initrd_start) {
		prop_u64(&f, "linux,initrd-start", vm->initrd_start);
		prop_u64(&f, "linux,initrd-end", vm->initrd_end);
	}
	/* The guest takes the BARs the VMM assigned, and assigns none */
	if (vm->nr_pdevs)
		prop_u32(&f, "linux,pci-probe-only", 1);
	end_node(&f);

	begin_node(&f, "memory@80000000");
	prop_str(&f, "device_type", "memory");
	prop_reg(&f, RAM_BASE, vm->ram_size);
	end_node(&f);

	begin_node(&f, "cpus");
	prop_u32(&f, "#address-cells", 1);
	prop_u32(&f, "#size-cells", 0);
	begin_node(&f, "cpu@0");
	prop_str(&f, "device_type", "cpu");
	prop_str(&f, "compatible", "arm,arm-v8");
	prop_u32(&f, "reg", 0);
	prop_str(&f, "enable-method", "psci");
	end_node(&f);
	end_node(&f);

	/* KVM implements PSCI 0.2 behind HVC */
	begin_node(&f, "psci");
	prop_str(&f, "compatible", "arm,psci-0.2");
	prop_str(&f, "method", "hvc");
	end_node(&f);

	begin_node(&f, "intc@8000000");
	prop_str(&f, "compatible", "arm,gic-v3");
	prop_u32(&f, "#interrupt-cells", 3);
	prop(&f, "interrupt-controller", NULL, 0);
	{
		uint32_t reg[8] = {
			GIC_DIST_BASE >> 32, (uint32_t)GIC_DIST_BASE,
			0, GIC_DIST_SIZE,
			GIC_REDIST_BASE >> 32, (uint32_t)GIC_REDIST_BASE,
			0, GIC_REDIST_SIZE,
		};

		prop_cells(&f, "reg", 8, reg);
	}
	prop_u32(&f, "phandle", PH_GIC);
	end_node(&f);

	begin_node(&f, "timer");
	prop_str(&f, "compatible", "arm,armv8-timer");
	{
		/* Secure and non-secure physical, virtual, hypervisor PPIs */
		uint32_t irqs[12] = {
			GIC_PPI, 13, IRQ_LEVEL_HIGH, GIC_PPI, 14, IRQ_LEVEL_HIGH,
			GIC_PPI, 11, IRQ_LEVEL_HIGH, GIC_PPI, 10, IRQ_LEVEL_HIGH,
		};

		prop_cells(&f, "interrupts", 12, irqs);
	}
	prop(&f, "always-on", NULL, 0);
	end_node(&f);

	begin_node(&f, "apb-pclk");
	prop_str(&f, "compatible", "fixed-clock");
	prop_u32(&f, "#clock-cells", 0);
	prop_u32(&f, "clock-frequency", 24000000);
	prop_str(&f, "clock-output-names", "clk24mhz");
	prop_u32(&f, "phandle", PH_CLK);
	end_node(&f);

	begin_node(&f, "pl011@9000000");
	{
		static const char compat[] = "arm,pl011\0arm,primecell";
		static const char clk_names[] = "uartclk\0apb_pclk";
		uint32_t clocks[2] = { PH_CLK, PH_CLK };

		prop(&f, "compatible", compat, sizeof(compat));
		prop_reg(&f, UART_BASE, UART_SIZE);
		prop_irq(&f, UART_SPI, IRQ_LEVEL_HIGH);
		prop_cells(&f, "clocks", 2, clocks);
		prop(&f, "clock-names", clk_names, sizeof(clk_names));
		/* The amba bus then reads no ID registers */
		prop_u32(&f, "arm,primecell-periphid", 0x00241011);
	}
	end_node(&f);

	virtio_node(&f, &vm->viommu_dev);
	prop_u32(&f, "#iommu-cells", 1);
	prop_u32(&f, "phandle", PH_VIOMMU);
	end_node(&f);

	virtio_node(&f, &vm->rng_dev);
	{
		uint32_t iommus[2] = { PH_VIOMMU, RNG_ENDPOINT };

		prop_cells(&f, "iommus", 2, iommus);
	}
	end_node(&f);

	if (vm->nr_pdevs)
		pci_node(&f);

	end_node(&f);
	put32(&f, FDT_END);

	/* Header, the empty memory reservation map, structure, strings */
	off_st = sizeof(hdr) + 16;
	off_str = off_st + f.st_len;
	total = off_str + f.str_len;
	hdr[0] = htobe32(FDT_MAGIC);
	hdr[1] = htobe32(total);
	hdr[2] = htobe32(off_st);
	hdr[3] = htobe32(off_str);
	hdr[4] = htobe32(sizeof(hdr));	/* off_mem_rsvmap */
	hdr[5] = htobe32(17);		/* version */
	hdr[6] = htobe32(16);		/* last_comp_version */
	hdr[7] = 0;			/* boot_cpuid_phys */
	hdr[8] = htobe32(f.str_len);
	hdr[9] = htobe32(f.st_len);
	blob = calloc(1, total);
	if (!blob)
		die("out of memory");
	memcpy(blob, hdr, sizeof(hdr));
	memcpy(blob + off_st, f.st, f.st_len);
	memcpy(blob + off_str, f.str, f.str_len);
	free(f.st);
	free(f.str);
	*size = total;
	return blob;
}
