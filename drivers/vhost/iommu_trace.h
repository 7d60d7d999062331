/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * vhost-iommu tracepoints: what an operator counts (perf stat -e
 * 'vhost_iommu:*') or follows, instead of counters in the uAPI.
 */
#undef TRACE_SYSTEM
#define TRACE_SYSTEM vhost_iommu

#if !defined(_VHOST_IOMMU_TRACE_H) || defined(TRACE_HEADER_MULTI_READ)
#define _VHOST_IOMMU_TRACE_H

#include <linux/tracepoint.h>

/* One call to iommufd for the INVALIDATEs of a worker pass */
TRACE_EVENT(vhost_iommu_invalidate,
	    TP_PROTO(unsigned int vq, u32 entries, u32 handled, int err),
	    TP_ARGS(vq, entries, handled, err),
	    TP_STRUCT__entry(__field(unsigned int, vq)
			     __field(u32, entries)
			     __field(u32, handled)
			     __field(int, err)),
	    TP_fast_assign(__entry->vq = vq;
			   __entry->entries = entries;
			   __entry->handled = handled;
			   __entry->err = err;),
	    TP_printk("vq=%u entries=%u handled=%u err=%d", __entry->vq,
		      __entry->entries, __entry->handled, __entry->err)
);

/* A page-request group taken (@code -1) or answered (@code, @status) */
TRACE_EVENT(vhost_iommu_group,
	    TP_PROTO(u32 endpoint, u32 grpid, u32 nr, int code, u8 status),
	    TP_ARGS(endpoint, grpid, nr, code, status),
	    TP_STRUCT__entry(__field(u32, endpoint)
			     __field(u32, grpid)
			     __field(u32, nr)
			     __field(int, code)
			     __field(u8, status)),
	    TP_fast_assign(__entry->endpoint = endpoint;
			   __entry->grpid = grpid;
			   __entry->nr = nr;
			   __entry->code = code;
			   __entry->status = status;),
	    TP_printk("endpoint=%u group=%u nr=%u code=%d status=%u",
		      __entry->endpoint, __entry->grpid, __entry->nr,
		      __entry->code, __entry->status)
);

#endif /* _VHOST_IOMMU_TRACE_H */

#undef TRACE_INCLUDE_PATH
#define TRACE_INCLUDE_PATH .
#undef TRACE_INCLUDE_FILE
#define TRACE_INCLUDE_FILE iommu_trace
#include <trace/define_trace.h>
