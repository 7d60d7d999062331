// SPDX-License-Identifier: GPL-2.0
/*
 * vhost-iommu-vmm: the VM (KVM), the boot of an arm64 Linux Image, the vCPU
 * loop, and a PL011 UART for the console.
 *
 * One vCPU. RAM is backed by huge pages (hugetlbfs if available, else
 * transparent huge pages). The in-kernel vGICv3, KVM's PSCI 0.2 and the
 * architected timer need nothing from this program but a device tree.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <linux/kvm.h>

#include "vmm.h"

bool verbose;
static sig_atomic_t report_pc;
static unsigned long long nr_exits, nr_mmio_exits;

void vmm_log(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("vmm: ", stdout);
	vprintf(fmt, ap);
	fputc('\n', stdout);
	fflush(stdout);
	va_end(ap);
}

void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("vmm: error: ", stdout);
	vprintf(fmt, ap);
	fputc('\n', stdout);
	fflush(stdout);
	va_end(ap);
	exit(1);
}

void *gpa_to_hva(struct vm *vm, uint64_t gpa, uint64_t len)
{
	if (gpa < RAM_BASE || len > vm->ram_size ||
	    gpa - RAM_BASE > vm->ram_size - len)
		return NULL;
	return vm->ram + (gpa - RAM_BASE);
}

/* ---- PL011: just enough for the Linux amba-pl011 driver and console ---- */

#define UART_DR		0x000
#define UART_FR		0x018
#define UART_IMSC	0x038
#define UART_RIS	0x03c
#define UART_MIS	0x040
#define UART_FR_TXFE	0x80
#define UART_FR_RXFE	0x10
#define UART_TXIS	0x20

static void uart_set_line(struct vm *vm)
{
	/* The transmit FIFO is always empty: TXIS is always raised */
	bool level = vm->uart_imsc & UART_TXIS;
	struct kvm_irq_level irq = {
		.irq = (KVM_ARM_IRQ_TYPE_SPI << KVM_ARM_IRQ_TYPE_SHIFT) |
		       (32 + UART_SPI),
		.level = level,
	};

	if (level == vm->uart_line)
		return;
	vm->uart_line = level;
	if (ioctl(vm->vm_fd, KVM_IRQ_LINE, &irq))
		die("KVM_IRQ_LINE: %s", strerror(errno));
}

static void uart_putc(struct vm *vm, char ch)
{
	if (ch == '\r')
		return;
	if (ch != '\n' && vm->uart_len < sizeof(vm->uart_buf) - 1) {
		vm->uart_buf[vm->uart_len++] = ch;
		return;
	}
	/* The guest's lines, as they are, on our stdout */
	fwrite(vm->uart_buf, 1, vm->uart_len, stdout);
	fputc('\n', stdout);
	fflush(stdout);
	vm->uart_len = 0;
	if (ch != '\n')
		vm->uart_buf[vm->uart_len++] = ch;
}

static void uart_mmio(struct vm *vm, uint64_t off, uint8_t *data,
		      uint32_t len, bool write)
{
	uint32_t val = 0;

	if (write) {
		memcpy(&val, data, len < 4 ? len : 4);
		if (off == UART_DR) {
			uart_putc(vm, val & 0xff);
		} else if (off == UART_IMSC) {
			vm->uart_imsc = val & 0x7ff;
			uart_set_line(vm);
		}
		return;
	}
	switch (off) {
	case UART_FR:
		val = UART_FR_TXFE | UART_FR_RXFE;
		break;
	case UART_IMSC:
		val = vm->uart_imsc;
		break;
	case UART_RIS:
		val = UART_TXIS;
		break;
	case UART_MIS:
		val = UART_TXIS & vm->uart_imsc;
		break;
	}
	memset(data, 0, len);
	memcpy(data, &val, len < 4 ? len : 4);
}

/* ---- The VM ---- */

static void *alloc_ram(struct vm *vm)
{
	void *p;

	/* Huge pages: hugetlbfs first, then THP */
	p = mmap(NULL, vm->ram_size, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_NORESERVE,
		 -1, 0);
	if (p != MAP_FAILED) {
		/* Touch it now: a missing huge page must fail here, not later */
		if (!madvise(p, vm->ram_size, MADV_POPULATE_WRITE)) {
			vm->ram_hugetlb = true;
			return p;
		}
		munmap(p, vm->ram_size);
	}
	p = mmap(NULL, vm->ram_size, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		die("mmap of %llu MiB: %s",
		    (unsigned long long)vm->ram_size >> 20, strerror(errno));
	madvise(p, vm->ram_size, MADV_HUGEPAGE);
	return p;
}

static void vgic_attr(struct vm *vm, uint32_t group, uint64_t attr,
		      void *addr)
{
	struct kvm_device_attr a = {
		.group = group,
		.attr = attr,
		.addr = (uintptr_t)addr,
	};

	if (ioctl(vm->gic_fd, KVM_SET_DEVICE_ATTR, &a))
		die("vGIC attribute %u/%llu: %s", group,
		    (unsigned long long)attr, strerror(errno));
}

static void set_reg(struct vm *vm, uint64_t id, uint64_t val)
{
	struct kvm_one_reg reg = { .id = id, .addr = (uintptr_t)&val };

	if (ioctl(vm->vcpu_fd, KVM_SET_ONE_REG, &reg))
		die("KVM_SET_ONE_REG: %s", strerror(errno));
}

#define CORE_REG(name) (KVM_REG_ARM64 | KVM_REG_SIZE_U64 | \
			KVM_REG_ARM_CORE | KVM_REG_ARM_CORE_REG(name))

static void vcpu_reset(struct vm *vm)
{
	struct kvm_vcpu_init init;

	if (ioctl(vm->vm_fd, KVM_ARM_PREFERRED_TARGET, &init))
		die("KVM_ARM_PREFERRED_TARGET: %s", strerror(errno));
	init.features[0] |= 1 << KVM_ARM_VCPU_PSCI_0_2;
	/* Also the reset: the vCPU starts at EL1h, interrupts masked */
	if (ioctl(vm->vcpu_fd, KVM_ARM_VCPU_INIT, &init))
		die("KVM_ARM_VCPU_INIT: %s", strerror(errno));
	/* arm64 boot protocol: x0 = device tree, x1-x3 = 0, MMU off */
	set_reg(vm, CORE_REG(regs.pc), vm->kernel_entry);
	set_reg(vm, CORE_REG(regs.regs[0]), vm->dtb_gpa);
}

static void vm_create(struct vm *vm)
{
	struct kvm_create_device gic = { .type = KVM_DEV_TYPE_ARM_VGIC_V3 };
	struct kvm_userspace_memory_region region;
	uint64_t dist = GIC_DIST_BASE, redist = GIC_REDIST_BASE;
	uint32_t nr_irqs = 128;
	int ret;

	vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm->kvm_fd < 0)
		die("/dev/kvm: %s", strerror(errno));
	ret = ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0);
	if (ret != KVM_API_VERSION)
		die("KVM API version %d", ret);
	vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0)
		die("KVM_CREATE_VM: %s", strerror(errno));
	for (int cap = 0; cap < 3; cap++) {
		static const int caps[] = { KVM_CAP_IOEVENTFD, KVM_CAP_IRQFD,
					    KVM_CAP_ARM_PSCI_0_2 };

		if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, caps[cap]) <= 0)
			die("KVM lacks capability %d", caps[cap]);
	}

	vm->ram = alloc_ram(vm);
	region = (struct kvm_userspace_memory_region) {
		.slot = 0,
		.guest_phys_addr = RAM_BASE,
		.memory_size = vm->ram_size,
		.userspace_addr = (uintptr_t)vm->ram,
	};
	if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &region))
		die("KVM_SET_USER_MEMORY_REGION: %s", strerror(errno));

	/* The vGIC before the vCPU, its initialisation after (as kvmtool) */
	if (ioctl(vm->vm_fd, KVM_CREATE_DEVICE, &gic))
		die("creating the vGICv3: %s", strerror(errno));
	vm->gic_fd = gic.fd;
	vgic_attr(vm, KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_DIST,
		  &dist);
	vgic_attr(vm, KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_REDIST,
		  &redist);

	vm->vcpu_fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, 0);
	if (vm->vcpu_fd < 0)
		die("KVM_CREATE_VCPU: %s", strerror(errno));
	vm->run_size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	vm->run = mmap(NULL, vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		       vm->vcpu_fd, 0);
	if (vm->run == MAP_FAILED)
		die("mmap of kvm_run: %s", strerror(errno));
	vcpu_reset(vm);

	vgic_attr(vm, KVM_DEV_ARM_VGIC_GRP_NR_IRQS, 0, &nr_irqs);
	vgic_attr(vm, KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT,
		  NULL);
}

/* Wire a device's irqfd to its SPI (GSI n is SPI n, INTID 32 + n) */
static void vm_irqfd(struct vm *vm, struct vdev *d)
{
	struct kvm_irqfd irqfd = { .fd = d->irq_fd, .gsi = d->spi };

	if (ioctl(vm->vm_fd, KVM_IRQFD, &irqfd))
		die("KVM_IRQFD: %s", strerror(errno));
}

static void *read_file(const char *path, size_t *size)
{
	struct stat st;
	void *buf;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st))
		die("%s: %s", path, strerror(errno));
	buf = malloc(st.st_size);
	if (!buf)
		die("out of memory");
	for (size_t off = 0; off < (size_t)st.st_size;) {
		ssize_t n = read(fd, (char *)buf + off, st.st_size - off);

		if (n <= 0)
			die("%s: short read", path);
		off += n;
	}
	close(fd);
	*size = st.st_size;
	return buf;
}

/*
 * Lay out RAM: the Image at the start (2 MiB aligned + text_offset, see
 * Documentation/arch/arm64/booting.rst), the device tree in the last 2 MiB,
 * the initramfs just below it.
 */
static void load_images(struct vm *vm)
{
	uint64_t text_offset, image_size, dtb_off, initrd_off = 0;
	size_t ksize, isize = 0, dsize;
	void *kernel, *initrd = NULL, *dtb;
	uint8_t *hdr;

	kernel = read_file(vm->kernel_path, &ksize);
	hdr = kernel;
	if (ksize < 64 || memcmp(hdr + 56, "ARM\x64", 4))
		die("%s is not an arm64 Image", vm->kernel_path);
	memcpy(&text_offset, hdr + 8, 8);
	memcpy(&image_size, hdr + 16, 8);
	if (!image_size)
		image_size = ksize;
	if (text_offset + image_size > vm->ram_size / 2)
		die("the Image needs %llu MiB: give the guest more RAM",
		    (unsigned long long)(text_offset + image_size) >> 20);
	memcpy(vm->ram + text_offset, kernel, ksize);
	vm->kernel_entry = RAM_BASE + text_offset;
	free(kernel);

	dtb_off = vm->ram_size - (2 << 20);
	if (vm->initrd_path) {
		initrd = read_file(vm->initrd_path, &isize);
		initrd_off = (dtb_off - isize) & ~0xfffULL;
		if (isize > dtb_off ||
		    initrd_off < text_offset + image_size)
			die("no room for the initramfs");
		memcpy(vm->ram + initrd_off, initrd, isize);
		free(initrd);
	}
	vm->dtb_gpa = RAM_BASE + dtb_off;
	/* The device tree names the initramfs: keep its place in @vm */
	vm->initrd_start = initrd ? RAM_BASE + initrd_off : 0;
	vm->initrd_end = initrd ? RAM_BASE + initrd_off + isize : 0;
	dtb = fdt_build(vm, &dsize);
	if (dsize > (2 << 20))
		die("device tree too large");
	memcpy(vm->ram + dtb_off, dtb, dsize);
	free(dtb);
}

static void mmio_exit(struct vm *vm)
{
	struct kvm_run *run = vm->run;
	uint64_t addr = run->mmio.phys_addr;
	uint32_t len = run->mmio.len;
	uint8_t *data = run->mmio.data;
	bool write = run->mmio.is_write;

	if (addr >= UART_BASE && addr < UART_BASE + UART_SIZE)
		uart_mmio(vm, addr - UART_BASE, data, len, write);
	else if (addr >= vm->viommu_dev.base &&
		 addr < vm->viommu_dev.base + VIRTIO_MMIO_SIZE)
		viommu_mmio(vm, addr - vm->viommu_dev.base, data, len, write);
	else if (addr >= vm->rng_dev.base &&
		 addr < vm->rng_dev.base + VIRTIO_MMIO_SIZE)
		vdev_mmio(&vm->rng_dev, addr - vm->rng_dev.base, data, len,
			  write);
	else if (vm->nr_pdevs && addr >= PCI_ECAM_BASE &&
		 addr < PCI_ECAM_BASE + PCI_ECAM_SIZE)
		pci_ecam_mmio(vm, addr - PCI_ECAM_BASE, data, len, write);
	else if (vm->nr_pdevs && addr >= PCI_MMIO_BASE &&
		 addr < PCI_MMIO_BASE + PCI_MMIO_SIZE)
		pci_bar_mmio(vm, addr, data, len, write);
	else if (!write)
		memset(data, 0, len);	/* nothing there: reads as zero */
}

static void machine_reset(struct vm *vm)
{
	rng_reset(vm);
	viommu_reset(vm);	/* blocks the assigned devices' DMA */
	pci_reset(vm);
	vm->uart_imsc = 0;
	uart_set_line(vm);
	load_images(vm);
	vcpu_reset(vm);
}

static void on_alarm(int sig)
{
	report_pc = 1;
}

/* -t: every few seconds, where the vCPU is (KVM_RUN returns EINTR) */
static void show_progress(struct vm *vm)
{
	struct kvm_one_reg reg = { .id = CORE_REG(regs.pc) };
	uint64_t pc = 0;

	reg.addr = (uintptr_t)&pc;
	ioctl(vm->vcpu_fd, KVM_GET_ONE_REG, &reg);
	vmm_log("progress: pc %#llx, %llu exits (%llu MMIO)",
		(unsigned long long)pc, nr_exits, nr_mmio_exits);
}

/* Run until the guest powers off or a fatal exit. Return the exit code. */
static int vcpu_loop(struct vm *vm)
{
	struct kvm_run *run = vm->run;

	for (;;) {
		if (ioctl(vm->vcpu_fd, KVM_RUN, 0)) {
			if (errno == EINTR && report_pc) {
				report_pc = 0;
				show_progress(vm);
			}
			if (errno == EINTR || errno == EAGAIN)
				continue;
			die("KVM_RUN: %s", strerror(errno));
		}
		nr_exits++;
		switch (run->exit_reason) {
		case KVM_EXIT_MMIO:
			nr_mmio_exits++;
			mmio_exit(vm);
			break;
		case KVM_EXIT_SYSTEM_EVENT:
			if (run->system_event.type == KVM_SYSTEM_EVENT_RESET &&
			    vm->boot + 1 < vm->nr_boots) {
				vm->boot++;
				vmm_log("guest reset: boot %u of %u",
					vm->boot + 1, vm->nr_boots);
				machine_reset(vm);
				break;
			}
			vmm_log("guest %s", run->system_event.type ==
				KVM_SYSTEM_EVENT_RESET ? "reset (last boot)" :
				"powered off");
			return 0;
		case KVM_EXIT_FAIL_ENTRY:
			die("KVM_EXIT_FAIL_ENTRY: reason %llx",
			    (unsigned long long)
			    run->fail_entry.hardware_entry_failure_reason);
		case KVM_EXIT_INTERNAL_ERROR:
			die("KVM_EXIT_INTERNAL_ERROR: suberror %u",
			    run->internal.suberror);
		default:
			die("unexpected exit reason %u", run->exit_reason);
		}
	}
}

/*
 * quiet: every console character is an exit. The stock drivers do the
 * rest; iommu.strict=1 makes each DMA unmap an UNMAP request at once, and
 * rng_core.default_quality=0 keeps the kernel's hwrng thread from reading
 * the virtio-rng, so /dev/hwrng returns the device's stream in order.
 */
#define DEFAULT_CMDLINE "console=ttyAMA0 quiet panic=-1 rdinit=/init " \
	"iommu.passthrough=0 iommu.strict=1 rng_core.default_quality=0 " \
	"kmemleak=off"

static enum inval_mode inval_mode(const char *arg)
{
	static const char *const names[] = {
		[INVAL_KERNEL] = "kernel", [INVAL_VMM] = "vmm",
		[INVAL_VCPU] = "vcpu",
		[INVAL_REQUESTQ] = "requestq", [INVAL_DROP] = "drop",
		[INVAL_NONE] = "none",
	};

	for (unsigned int i = 0; i < ARRAY_SIZE(names); i++)
		if (!strcmp(arg, names[i]))
			return i;
	die("-I %s: kernel, vmm, vcpu, requestq, drop or none", arg);
}

static void usage(const char *prog)
{
	printf("Usage: %s -k Image [options]\n"
	       "  -k FILE     the arm64 Linux Image to boot\n"
	       "  -i FILE     its initramfs\n"
	       "  -a ARGS     the kernel command line (default: %s)\n"
	       "  -A ARG      append ARG to the kernel command line\n"
	       "  -m MIB      guest RAM (default 384)\n"
	       "  -b N        boot N times: a guest reset reboots it in place\n"
	       "              (the VMM resets every device) until the last\n"
	       "  -s SEED     seed of the virtio-rng stream (default 1)\n"
	       "  -w N        wild DMA: the virtio-rng device also writes to an\n"
	       "              unmapped IOVA while serving its Nth request\n"
	       "  -W IOVA     the IOVA of the wild DMA (default 0xdead0000)\n"
	       "  -p, --assign BDF\n"
	       "              assign host PCI device BDF (bound to vfio-pci) to\n"
	       "              the guest, at most %d times: on a PCI bus of its own\n"
	       "              (ECAM, BARs placed by the VMM, no interrupts) as\n"
	       "              00:01.0, 00:02.0, behind the virtio-iommu as endpoint\n"
	       "              0x108, 0x110; its domain's MAP/UNMAP become\n"
	       "              IOMMU_IOAS_MAP/UNMAP of an IOAS it is attached to\n"
	       "  -U, --unmap=drop\n"
	       "              negative control: answer UNMAP on a domain with an\n"
	       "              assigned device without unmapping it from the IOAS\n"
	       "  -I, --invalidate=MODE\n"
	       "              the INVALIDATEs of the assigned devices' table\n"
	       "              domains: kernel (the invalidation queue, served by\n"
	       "              /dev/vhost-iommu; the default), vmm (the same queue\n"
	       "              served by a VMM thread woken by an ioeventfd, one\n"
	       "              IOMMU_HWPT_INVALIDATE per pass over the queue),\n"
	       "              vcpu (served in the vCPU's exit on the notification,\n"
	       "              one IOMMU_HWPT_INVALIDATE per request), requestq\n"
	       "              (no F_INVALQ: on the request queue, by the VMM),\n"
	       "              drop (negative control: the VMM answers them\n"
	       "              without invalidating), none (no F_ATTACH_TABLE:\n"
	       "              MAP/UNMAP only)\n"
	       "  -P, --busy-poll=USECS\n"
	       "              with -I kernel or vmm: the server of the invalidation\n"
	       "              queues (the vhost worker, or the VMM's thread) watches\n"
	       "              them for USECS microseconds once emptied, their\n"
	       "              notifications off, before it sleeps\n"
	       "  -v          log every request of the request queue\n"
	       "  -t SECS     log the vCPU's progress every SECS seconds\n", prog,
	       DEFAULT_CMDLINE, MAX_ASSIGNED);
}

int main(int argc, char **argv)
{
	struct rng_opts ropts = { .seed = 1, .wild_iova = 0xdead0000 };
	static const struct option longopts[] = {
		{ "assign", required_argument, NULL, 'p' },
		{ "unmap", required_argument, NULL, 'U' },
		{ "invalidate", required_argument, NULL, 'I' },
		{ "busy-poll", required_argument, NULL, 'P' },
		{ "help", no_argument, NULL, 'h' },
		{ }
	};
	struct vm vm = { .ram_size = 384ULL << 20, .nr_boots = 1, .iommufd = -1 };
	const char *assign[MAX_ASSIGNED];
	unsigned int nr_assign = 0;
	struct timespec t0, t1;
	static char cmdline[2048];
	const char *base = DEFAULT_CMDLINE;
	unsigned int progress = 0;
	int opt, ret;

	while ((opt = getopt_long(argc, argv, "k:i:a:A:m:b:s:w:W:I:P:vt:p:U:h",
				  longopts, NULL)) != -1) {
		switch (opt) {
		case 'k':
			vm.kernel_path = optarg;
			break;
		case 'i':
			vm.initrd_path = optarg;
			break;
		case 'a':
			base = optarg;
			break;
		case 'A':
			if (strlen(cmdline) + strlen(optarg) + 2 >
			    sizeof(cmdline))
				die("command line too long");
			strcat(cmdline, " ");
			strcat(cmdline, optarg);
			break;
		case 'm':
			vm.ram_size = strtoull(optarg, NULL, 0) << 20;
			break;
		case 'b':
			vm.nr_boots = strtoul(optarg, NULL, 0);
			break;
		case 's':
			ropts.seed = strtoull(optarg, NULL, 0);
			break;
		case 'w':
			ropts.wild_dma_at = strtoull(optarg, NULL, 0);
			break;
		case 'W':
			ropts.wild_iova = strtoull(optarg, NULL, 0);
			break;
		case 'I':
			vm.inval = inval_mode(optarg);
			break;
		case 'P':
			vm.busy_poll_us = strtoul(optarg, NULL, 0);
			break;
		case 'v':
			verbose = true;
			break;
		case 't':
			progress = strtoul(optarg, NULL, 0);
			break;
		case 'p':
			if (nr_assign == MAX_ASSIGNED)
				die("at most %d assigned devices", MAX_ASSIGNED);
			assign[nr_assign++] = optarg;
			break;
		case 'U':
			if (strcmp(optarg, "drop"))
				die("--unmap: only \"drop\"");
			vm.unmap_drop = true;
			break;
		case 'h':
			usage(argv[0]);
			return 0;
		default:
			usage(argv[0]);
			return 2;
		}
	}
	if (!vm.kernel_path || vm.ram_size < (64 << 20) || !vm.nr_boots) {
		usage(argv[0]);
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	{
		static char full[3072];

		snprintf(full, sizeof(full), "%s%s", base, cmdline);
		vm.cmdline = full;
	}

	vm_create(&vm);
	for (unsigned int i = 0; i < nr_assign; i++)
		pci_assign(&vm, assign[i]);
	viommu_create(&vm);
	rng_create(&vm, &ropts);
	vm_irqfd(&vm, &vm.viommu_dev);
	vm_irqfd(&vm, &vm.rng_dev);
	load_images(&vm);
	vcpu_reset(&vm);	/* now that the entry point is known */
	vmm_log("RAM %llu MiB at %#llx (%s)",
		(unsigned long long)vm.ram_size >> 20, RAM_BASE,
		vm.ram_hugetlb ? "hugetlbfs 2 MiB pages" :
		"transparent huge pages");

	if (progress) {
		struct sigaction sa = { .sa_handler = on_alarm };
		struct itimerval it = {
			.it_interval.tv_sec = progress,
			.it_value.tv_sec = progress,
		};

		/* No SA_RESTART: the signal makes KVM_RUN return */
		sigaction(SIGALRM, &sa, NULL);
		setitimer(ITIMER_REAL, &it, NULL);
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ret = vcpu_loop(&vm);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (vm.uart_len)
		uart_putc(&vm, '\n');
	vmm_log("guest ran %.2f s", (t1.tv_sec - t0.tv_sec) +
		(t1.tv_nsec - t0.tv_nsec) / 1e9);
	viommu_print_stats(&vm);
	rng_print_stats(&vm);
	viommu_destroy(&vm);	/* the assigned devices blocked, IOASes gone */
	pci_print_stats(&vm);
	pci_close(&vm);
	return ret;
}
