/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Shared by the programs that drive a mock VM (vhost_iommu_test, vhost_iommu_pri,
 * vhost_iommu_fuzz, vhost_iommu_hostile):
 * an iommufd selftest mock "VM" (device, vIOMMU, vDEVICE, fault queue), the
 * vhost-iommu bindings, and fault-injection helpers (fail-nth).
 */
#ifndef VI_HOSTILE_LIB_H
#define VI_HOSTILE_LIB_H

#include <stdbool.h>
#include <stdint.h>

#include "vhost_iommu_lib.h"

/* One mock "VM": its own iommufd context and objects */
struct vi_mock {
	int iommufd;
	int fault_fd;
	uint32_t ioas_id;
	uint32_t idev_id;
	uint32_t stdev_id;
	uint32_t parent_id;
	uint32_t viommu_id;
	uint32_t vdevice_id;
	uint32_t fault_id;
	uint32_t nested_id;
	uint32_t vsid;
};

/* Open /dev/iommu and build the objects; -ENOTTY without the mock */
int vi_mock_setup(struct vi_mock *m, uint32_t vsid);
/* The same up to the vDEVICE: no fault queue, the device on its IOAS */
int vi_mock_viommu(struct vi_mock *m, uint32_t vsid);
/*
 * Attach mock device @stdev_id (iommufd device @dev_id) to a new nested HWPT
 * of the vIOMMU with a new fault queue; @fault_id and @nested_id may be NULL.
 * *@fault_fd is set (and the caller's to close) once the queue exists.
 */
int vi_mock_fault_attach(int iommufd, uint32_t viommu_id, uint32_t dev_id,
			 uint32_t stdev_id, uint32_t *fault_id, int *fault_fd,
			 uint32_t *nested_id);
void vi_mock_close(struct vi_mock *m);
int vi_mock_trigger(struct vi_mock *m, uint32_t grpid, uint64_t addr);
/* Page responses the mock device got so far, or -errno */
int vi_mock_responses(struct vi_mock *m);
/* Entries handled by the vIOMMU and calls since the last read, or -errno */
int vi_mock_log(int iommufd, uint32_t viommu_id, uint32_t *entries,
		uint32_t *calls);
int vi_destroy(int iommufd, uint32_t id);

/* The v2 binding ioctls; -1 unbinds the iommufd and the fault queue */
int vi_set_iommufd(int fd, int iommufd);
/* @flags: 0 or VHOST_IOMMU_F_UNBIND */
int vi_set_domain(int fd, uint32_t flags, uint32_t domain, uint32_t viommu_id);
int vi_set_endpoint(int fd, uint32_t flags, uint32_t endpoint, uint32_t domain,
		    uint32_t dev_id, uint32_t vdev_id);
int vi_set_fault_queue(int fd, int fault_fd);
/* SET_IOMMUFD, domain @domain with endpoint @endpoint, and the fault queue */
int vi_bind_mock(struct vi_dev *d, struct vi_mock *m, uint32_t domain,
		 uint32_t endpoint, bool faults);

/* The vhost worker thread of this process ("vhost-<pid>"), or -1 */
int vi_worker_tid(void);
int vi_write_file(const char *path, const char *val);
/* The integer in a file, or -errno */
long vi_read_long(const char *path);
/* Make every allocation injectable, quietly; -errno without debugfs */
int vi_fault_setup(void);
/*
 * The fail-nth file of thread @tid (0: the calling one), kept open so that
 * arming and reading it allocates nothing; -errno on failure.
 */
int vi_fail_nth_open(int tid);
/* Arm at @nth (0 disarms) */
int vi_fail_nth_set(int fd, unsigned int nth);
/* Whether the armed fault fired (fail-nth reads 0); disarms in any case */
bool vi_fail_nth_fired(int fd);

#endif
