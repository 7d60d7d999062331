// SPDX-License-Identifier: GPL-2.0
/*
 * QEMU's edu device through vfio cdev and iommufd: discovery, binding to
 * vfio-pci, DMA with range checks. See edu_lib.h.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>
#include <linux/vfio.h>

#include "edu_lib.h"

#define EDU_VENDOR		0x1234
#define EDU_DEVICE		0x11e8
#define EDU_REG_ID		0x00
#define EDU_REG_DMA_SRC		0x80
#define EDU_REG_DMA_DST		0x88
#define EDU_REG_DMA_CNT		0x90
#define EDU_REG_DMA_CMD		0x98
#define EDU_DMA_START		0x01
#define EDU_DMA_TO_RAM		0x02	/* direction: device buffer -> RAM */

#define PCI_DEVICES		"/sys/bus/pci/devices"

static int read_hex(const char *path, unsigned long *val)
{
	char buf[32];
	FILE *f = fopen(path, "r");

	if (!f)
		return -errno;
	if (!fgets(buf, sizeof(buf), f)) {
		fclose(f);
		return -EIO;
	}
	fclose(f);
	*val = strtoul(buf, NULL, 16);
	return 0;
}

static int write_str(const char *path, const char *val)
{
	ssize_t len = strlen(val);
	int fd, ret = 0;

	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (write(fd, val, len) != len)
		ret = errno ? -errno : -EIO;
	close(fd);
	return ret;
}

static int bdf_cmp(const void *a, const void *b)
{
	return strcmp(*(char * const *)a, *(char * const *)b);
}

/* The edu devices, in BDF order */
static int edu_list(char ***out)
{
	char path[300], **list = NULL;
	unsigned long vendor, device;
	struct dirent *de;
	int count = 0;
	DIR *d;

	d = opendir(PCI_DEVICES);
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), PCI_DEVICES "/%s/vendor", de->d_name);
		if (read_hex(path, &vendor) || vendor != EDU_VENDOR)
			continue;
		snprintf(path, sizeof(path), PCI_DEVICES "/%s/device", de->d_name);
		if (read_hex(path, &device) || device != EDU_DEVICE)
			continue;
		list = realloc(list, sizeof(*list) * (count + 1));
		list[count++] = strdup(de->d_name);
	}
	closedir(d);
	qsort(list, count, sizeof(*list), bdf_cmp);
	*out = list;
	return count;
}

int edu_count(void)
{
	char **list;
	int i, n = edu_list(&list);

	for (i = 0; i < n; i++)
		free(list[i]);
	if (n >= 0)
		free(list);
	return n;
}

int edu_bdf(int index, char *bdf, size_t len)
{
	char **list;
	int i, n = edu_list(&list), ret = -ENODEV;

	if (n < 0)
		return n;
	if (index < n) {
		snprintf(bdf, len, "%s", list[index]);
		ret = 0;
	}
	for (i = 0; i < n; i++)
		free(list[i]);
	free(list);
	return ret;
}

/* 1 if vfio-pci has @bdf, 0 if another driver has it, -ENOENT if none */
static int driver_is_vfio(const char *bdf)
{
	char path[300], link[300];
	const char *base;
	ssize_t n;

	snprintf(path, sizeof(path), PCI_DEVICES "/%s/driver", bdf);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		return -errno;
	link[n] = 0;
	base = strrchr(link, '/');
	return !strcmp(base ? base + 1 : link, "vfio-pci");
}

int edu_bind_vfio(const char *bdf)
{
	char path[300];
	int ret;

	ret = driver_is_vfio(bdf);
	if (ret == -ENOENT) {
		snprintf(path, sizeof(path), PCI_DEVICES "/%s/driver_override", bdf);
		ret = write_str(path, "vfio-pci");
		if (!ret)
			ret = write_str("/sys/bus/pci/drivers_probe", bdf);
		if (!ret)
			ret = driver_is_vfio(bdf);
		/* vfio-pci did not take it (no IOMMU group?): see the kernel log */
		if (ret == -ENOENT)
			ret = -ENODEV;
	}
	if (ret < 0)
		return ret;
	return ret ? 0 : -EBUSY;
}

int edu_cdev(const char *bdf, char *path, size_t len)
{
	char dir[PATH_MAX], node[NAME_MAX + 1] = "";
	unsigned int major, minor;
	struct dirent *de;
	FILE *f;
	DIR *d;
	int n;

	snprintf(dir, sizeof(dir), PCI_DEVICES "/%s/vfio-dev", bdf);
	d = opendir(dir);
	if (!d)
		return -errno;
	while ((de = readdir(d)))
		if (!strncmp(de->d_name, "vfio", 4))
			snprintf(node, sizeof(node), "%s", de->d_name);
	closedir(d);
	if (!node[0])
		return -ENODEV;
	snprintf(path, len, "/dev/vfio/devices/%s", node);
	if (!access(path, F_OK))
		return 0;

	/* No devtmpfs: make the node from the class device's numbers */
	snprintf(dir, sizeof(dir), PCI_DEVICES "/%s/vfio-dev/%s/dev", bdf, node);
	f = fopen(dir, "r");
	if (!f)
		return -errno;
	n = fscanf(f, "%u:%u", &major, &minor);
	fclose(f);
	if (n != 2)
		return -EIO;
	mkdir("/dev/vfio", 0755);
	mkdir("/dev/vfio/devices", 0755);
	if (mknod(path, S_IFCHR | 0600, makedev(major, minor)))
		return -errno;
	return 0;
}

static int edu_rd32(struct edu_dev *edu, uint64_t reg, uint32_t *val)
{
	return pread(edu->fd, val, 4, edu->bar0 + reg) == 4 ? 0 : -EIO;
}

static int edu_wr32(struct edu_dev *edu, uint64_t reg, uint32_t val)
{
	return pwrite(edu->fd, &val, 4, edu->bar0 + reg) == 4 ? 0 : -EIO;
}

static int edu_wr64(struct edu_dev *edu, uint64_t reg, uint64_t val)
{
	return pwrite(edu->fd, &val, 8, edu->bar0 + reg) == 8 ? 0 : -EIO;
}

int edu_open_bdf(struct edu_dev *edu, const char *bdf, int iommufd)
{
	struct vfio_region_info reg = { .argsz = sizeof(reg) };
	struct vfio_device_bind_iommufd bind = {
		.argsz = sizeof(bind),
		.iommufd = iommufd,
	};
	char path[300];
	uint16_t cmd;
	uint32_t id;
	int ret;

	memset(edu, 0, sizeof(*edu));
	edu->fd = -1;
	snprintf(edu->bdf, sizeof(edu->bdf), "%s", bdf);
	ret = edu_bind_vfio(edu->bdf);
	if (!ret)
		ret = edu_cdev(edu->bdf, path, sizeof(path));
	if (ret)
		return ret;
	edu->fd = open(path, O_RDWR | O_CLOEXEC);
	if (edu->fd < 0)
		return -errno;
	if (ioctl(edu->fd, VFIO_DEVICE_BIND_IOMMUFD, &bind))
		goto err;
	edu->dev_id = bind.out_devid;

	reg.index = VFIO_PCI_BAR0_REGION_INDEX;
	if (ioctl(edu->fd, VFIO_DEVICE_GET_REGION_INFO, &reg))
		goto err;
	edu->bar0 = reg.offset;
	reg.index = VFIO_PCI_CONFIG_REGION_INDEX;
	reg.argsz = sizeof(reg);
	if (ioctl(edu->fd, VFIO_DEVICE_GET_REGION_INFO, &reg))
		goto err;
	edu->cfg = reg.offset;

	/* Memory space and bus master */
	if (pread(edu->fd, &cmd, 2, edu->cfg + 4) != 2)
		goto err;
	cmd |= 0x6;
	if (pwrite(edu->fd, &cmd, 2, edu->cfg + 4) != 2)
		goto err;
	if (edu_rd32(edu, EDU_REG_ID, &id) || (id & 0xff) != 0xed) {
		errno = ENODEV;
		goto err;
	}
	return 0;
err:
	ret = -errno;
	close(edu->fd);
	edu->fd = -1;
	return ret;
}

int edu_open(struct edu_dev *edu, int index, int iommufd)
{
	char bdf[32];
	int ret;

	memset(edu, 0, sizeof(*edu));
	edu->fd = -1;
	ret = edu_bdf(index, bdf, sizeof(bdf));
	if (ret)
		return ret;
	return edu_open_bdf(edu, bdf, iommufd);
}

void edu_close(struct edu_dev *edu)
{
	if (edu->fd >= 0)
		close(edu->fd);
	edu->fd = -1;
}

int edu_dma_check(uint32_t off, uint64_t iova, uint64_t len)
{
	if (!len || len > EDU_DMA_BUF_SIZE || off > EDU_DMA_BUF_SIZE - len)
		return -EINVAL;
	if (iova > EDU_DMA_MASK || len - 1 > EDU_DMA_MASK - iova)
		return -EINVAL;
	return 0;
}

int edu_dma_at(struct edu_dev *edu, uint32_t off, uint64_t iova, uint32_t len,
	       bool to_ram)
{
	uint64_t buf = EDU_DMA_BUF + off;
	struct timespec start, now;
	uint32_t cmd;
	int ret;

	ret = edu_dma_check(off, iova, len);
	if (ret)
		return ret;
	if (edu_wr64(edu, EDU_REG_DMA_SRC, to_ram ? buf : iova) ||
	    edu_wr64(edu, EDU_REG_DMA_DST, to_ram ? iova : buf) ||
	    edu_wr64(edu, EDU_REG_DMA_CNT, len) ||
	    edu_wr32(edu, EDU_REG_DMA_CMD, EDU_DMA_START | (to_ram ? EDU_DMA_TO_RAM : 0)))
		return -EIO;
	/* The model completes a DMA after a 100 ms timer */
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		if (edu_rd32(edu, EDU_REG_DMA_CMD, &cmd))
			return -EIO;
		if (!(cmd & EDU_DMA_START))
			return 0;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec - start.tv_sec > 10)
			return -ETIMEDOUT;
		usleep(2000);
	}
}

int edu_dma(struct edu_dev *edu, uint64_t iova, uint32_t len, bool to_ram)
{
	return edu_dma_at(edu, 0, iova, len, to_ram);
}
