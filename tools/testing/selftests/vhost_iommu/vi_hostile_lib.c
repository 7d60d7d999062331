// SPDX-License-Identifier: GPL-2.0
/*
 * Helpers of the programs that drive a mock VM: a mock "VM" on the iommufd
 * selftest mock, the vhost-iommu binding ioctls, and fail-nth fault injection (see
 * Documentation/fault-injection/fault-injection.rst, "fail-nth").
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>

#include "vi_hostile_lib.h"

#define ARRAY_SIZE(a)	(sizeof(a) / sizeof((a)[0]))
#include "../../../../drivers/iommu/iommufd/iommufd_test.h"

int vi_mock_viommu(struct vi_mock *m, uint32_t vsid)
{
	struct iommu_ioas_alloc ioas = { .size = sizeof(ioas) };
	struct iommu_test_cmd mock = {
		.size = sizeof(mock),
		.op = IOMMU_TEST_OP_MOCK_DOMAIN,
	};
	struct iommu_hwpt_alloc parent = {
		.size = sizeof(parent),
		.flags = IOMMU_HWPT_ALLOC_NEST_PARENT,
	};
	struct iommu_viommu_alloc viommu = {
		.size = sizeof(viommu),
		.type = IOMMU_VIOMMU_TYPE_SELFTEST,
	};
	struct iommu_vdevice_alloc vdev = {
		.size = sizeof(vdev),
		.virt_id = vsid,
	};

	memset(m, 0, sizeof(*m));
	m->fault_fd = -1;
	m->vsid = vsid;
	m->iommufd = open("/dev/iommu", O_RDWR | O_CLOEXEC);
	if (m->iommufd < 0)
		return -errno;
	if (ioctl(m->iommufd, IOMMU_IOAS_ALLOC, &ioas))
		return -errno;
	m->ioas_id = ioas.out_ioas_id;
	mock.id = m->ioas_id;
	if (ioctl(m->iommufd, IOMMU_TEST_CMD, &mock))
		return -errno;
	m->idev_id = mock.mock_domain.out_idev_id;
	m->stdev_id = mock.mock_domain.out_stdev_id;
	parent.dev_id = m->idev_id;
	parent.pt_id = m->ioas_id;
	if (ioctl(m->iommufd, IOMMU_HWPT_ALLOC, &parent))
		return -errno;
	m->parent_id = parent.out_hwpt_id;
	viommu.dev_id = m->idev_id;
	viommu.hwpt_id = m->parent_id;
	if (ioctl(m->iommufd, IOMMU_VIOMMU_ALLOC, &viommu))
		return -errno;
	m->viommu_id = viommu.out_viommu_id;
	vdev.viommu_id = m->viommu_id;
	vdev.dev_id = m->idev_id;
	if (ioctl(m->iommufd, IOMMU_VDEVICE_ALLOC, &vdev))
		return -errno;
	m->vdevice_id = vdev.out_vdevice_id;
	return 0;
}

int vi_mock_fault_attach(int iommufd, uint32_t viommu_id, uint32_t dev_id,
			 uint32_t stdev_id, uint32_t *fault_id, int *fault_fd,
			 uint32_t *nested_id)
{
	struct iommu_fault_alloc fault = { .size = sizeof(fault) };
	struct iommu_hwpt_selftest data = {
		.iotlb = IOMMU_TEST_IOTLB_DEFAULT,
	};
	struct iommu_hwpt_alloc nested = {
		.size = sizeof(nested),
		.flags = IOMMU_HWPT_FAULT_ID_VALID,
		.data_type = IOMMU_HWPT_DATA_SELFTEST,
		.data_len = sizeof(data),
		.data_uptr = (uintptr_t)&data,
	};
	struct iommu_test_cmd replace = {
		.size = sizeof(replace),
		.op = IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE,
	};

	if (ioctl(iommufd, IOMMU_FAULT_QUEUE_ALLOC, &fault))
		return -errno;
	/* The caller owns the fd from here, whatever fails next */
	*fault_fd = fault.out_fault_fd;
	if (fault_id)
		*fault_id = fault.out_fault_id;
	nested.dev_id = dev_id;
	nested.pt_id = viommu_id;
	nested.fault_id = fault.out_fault_id;
	if (ioctl(iommufd, IOMMU_HWPT_ALLOC, &nested))
		return -errno;
	if (nested_id)
		*nested_id = nested.out_hwpt_id;
	replace.id = stdev_id;
	replace.mock_domain_replace.pt_id = nested.out_hwpt_id;
	if (ioctl(iommufd, IOMMU_TEST_CMD, &replace))
		return -errno;
	return 0;
}

int vi_mock_setup(struct vi_mock *m, uint32_t vsid)
{
	int ret = vi_mock_viommu(m, vsid);

	if (ret)
		return ret;
	return vi_mock_fault_attach(m->iommufd, m->viommu_id, m->idev_id,
				    m->stdev_id, &m->fault_id, &m->fault_fd,
				    &m->nested_id);
}

void vi_mock_close(struct vi_mock *m)
{
	if (m->fault_fd >= 0)
		close(m->fault_fd);
	if (m->iommufd >= 0)
		close(m->iommufd);
	m->fault_fd = -1;
	m->iommufd = -1;
}

int vi_mock_trigger(struct vi_mock *m, uint32_t grpid, uint64_t addr)
{
	struct iommu_test_cmd cmd = {
		.size = sizeof(cmd),
		.op = IOMMU_TEST_OP_TRIGGER_IOPF,
		.trigger_iopf = {
			.dev_id = m->idev_id,
			.pasid = 0,
			.grpid = grpid,
			.perm = IOMMU_PGFAULT_PERM_READ,
			.addr = addr,
		},
	};

	return ioctl(m->iommufd, IOMMU_TEST_CMD, &cmd) ? -errno : 0;
}

int vi_mock_responses(struct vi_mock *m)
{
	struct iommu_test_cmd cmd = {
		.size = sizeof(cmd),
		.op = IOMMU_TEST_OP_IOPF_RESPONSE,
		.iopf_response = { .dev_id = m->idev_id },
	};

	if (ioctl(m->iommufd, IOMMU_TEST_CMD, &cmd))
		return -errno;
	return cmd.iopf_response.out_count;
}

int vi_mock_log(int iommufd, uint32_t viommu_id, uint32_t *entries,
		uint32_t *calls)
{
	struct iommu_test_virtio_inv_record recs[MOCK_VIRTIO_LOG_MAX];
	struct iommu_test_cmd cmd = {
		.size = sizeof(cmd),
		.op = IOMMU_TEST_OP_VIOMMU_VIRTIO_LOG,
		.id = viommu_id,
		.virtio_log = {
			.uptr = (uintptr_t)recs,
			.max = MOCK_VIRTIO_LOG_MAX,
		},
	};

	if (ioctl(iommufd, IOMMU_TEST_CMD, &cmd))
		return -errno;
	*entries = cmd.virtio_log.out_num + cmd.virtio_log.out_lost;
	*calls = cmd.virtio_log.out_calls;
	return 0;
}

int vi_destroy(int iommufd, uint32_t id)
{
	struct iommu_destroy cmd = { .size = sizeof(cmd), .id = id };

	return ioctl(iommufd, IOMMU_DESTROY, &cmd) ? -errno : 0;
}

int vi_set_iommufd(int fd, int iommufd)
{
	struct vhost_iommu_iommufd cmd = { .fd = iommufd };

	return ioctl(fd, VHOST_IOMMU_SET_IOMMUFD, &cmd) ? -errno : 0;
}

int vi_set_domain(int fd, uint32_t flags, uint32_t domain, uint32_t viommu_id)
{
	struct vhost_iommu_domain cmd = {
		.flags = flags,
		.domain = domain,
		.viommu_id = viommu_id,
	};

	return ioctl(fd, VHOST_IOMMU_SET_DOMAIN, &cmd) ? -errno : 0;
}

int vi_set_endpoint(int fd, uint32_t flags, uint32_t endpoint, uint32_t domain,
		    uint32_t dev_id, uint32_t vdev_id)
{
	struct vhost_iommu_endpoint cmd = {
		.flags = flags,
		.endpoint = endpoint,
		.domain = domain,
		.dev_id = dev_id,
		.vdev_id = vdev_id,
	};

	return ioctl(fd, VHOST_IOMMU_SET_ENDPOINT, &cmd) ? -errno : 0;
}

int vi_set_fault_queue(int fd, int fault_fd)
{
	struct vhost_iommu_fault_queue cmd = { .fd = fault_fd };

	return ioctl(fd, VHOST_IOMMU_SET_FAULT_QUEUE, &cmd) ? -errno : 0;
}

int vi_bind_mock(struct vi_dev *d, struct vi_mock *m, uint32_t domain,
		 uint32_t endpoint, bool faults)
{
	int ret;

	ret = vi_set_iommufd(d->fd, m->iommufd);
	if (!ret)
		ret = vi_set_domain(d->fd, 0, domain, m->viommu_id);
	if (!ret)
		ret = vi_set_endpoint(d->fd, 0, endpoint, domain, m->idev_id,
				      m->vsid);
	if (!ret && faults)
		ret = vi_set_fault_queue(d->fd, m->fault_fd);
	return ret;
}

int vi_worker_tid(void)
{
	char path[300], comm[32];
	struct dirent *de;
	int tid = -1;
	DIR *dir;

	dir = opendir("/proc/self/task");
	if (!dir)
		return -1;
	while (tid < 0 && (de = readdir(dir))) {
		FILE *f;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/comm",
			 de->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (fgets(comm, sizeof(comm), f) && !strncmp(comm, "vhost-", 6))
			tid = atoi(de->d_name);
		fclose(f);
	}
	closedir(dir);
	return tid;
}

int vi_write_file(const char *path, const char *val)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t ret;

	if (fd < 0)
		return -errno;
	ret = write(fd, val, strlen(val));
	close(fd);
	return ret < 0 ? -errno : 0;
}

long vi_read_long(const char *path)
{
	char buf[32] = "";
	ssize_t ret;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ret = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (ret <= 0)
		return -EIO;
	return strtol(buf, NULL, 10);
}

int vi_fault_setup(void)
{
	static const char * const files[][2] = {
		{ "/sys/kernel/debug/failslab/ignore-gfp-wait", "N" },
		{ "/sys/kernel/debug/fail_page_alloc/ignore-gfp-wait", "N" },
		{ "/sys/kernel/debug/fail_page_alloc/ignore-gfp-highmem", "N" },
		{ "/sys/kernel/debug/failslab/verbose", "0" },
		{ "/sys/kernel/debug/fail_page_alloc/verbose", "0" },
	};
	int ret;

	for (unsigned int i = 0; i < ARRAY_SIZE(files); i++) {
		ret = vi_write_file(files[i][0], files[i][1]);
		if (ret)
			return ret;
	}
	return 0;
}

int vi_fail_nth_open(int tid)
{
	char path[64];
	int fd;

	if (tid)
		snprintf(path, sizeof(path), "/proc/self/task/%d/fail-nth", tid);
	else
		snprintf(path, sizeof(path), "/proc/thread-self/fail-nth");
	fd = open(path, O_RDWR | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

int vi_fail_nth_set(int fd, unsigned int nth)
{
	char val[16];
	int len;

	len = snprintf(val, sizeof(val), "%u", nth);
	return pwrite(fd, val, len, 0) == len ? 0 : -errno;
}

bool vi_fail_nth_fired(int fd)
{
	char buf[16] = "";
	ssize_t ret;

	ret = pread(fd, buf, sizeof(buf) - 1, 0);
	vi_fail_nth_set(fd, 0);
	return ret > 0 && strtol(buf, NULL, 10) == 0;
}
