/* SPDX-License-Identifier: MIT */
/* One fault record as one line of JSON. */
#include <viommu/faultlog.h>

#include <inttypes.h>
#include <stdio.h>

int viommu_fault_record_json(const struct viommu_fault_record *rec, char *buf, size_t len)
{
	char access[5];
	char pasid[16];
	unsigned n = 0;

	if (!rec || (!buf && len))
		return -1;
	if (rec->access & VIOMMU_ACCESS_READ)
		access[n++] = 'r';
	if (rec->access & VIOMMU_ACCESS_WRITE)
		access[n++] = 'w';
	if (rec->access & VIOMMU_ACCESS_EXEC)
		access[n++] = 'x';
	if (rec->access & VIOMMU_ACCESS_PRIV)
		access[n++] = 'p';
	access[n] = 0;
	if (rec->pasid == VIOMMU_NO_PASID)
		snprintf(pasid, sizeof(pasid), "null");
	else
		snprintf(pasid, sizeof(pasid), "%" PRIu32, rec->pasid);
	return snprintf(buf, len,
			"{\"seq\":%" PRIu64 ",\"rid\":\"%04x:%02x:%02x.%x\",\"segment\":%u,\"bus\":%u,\"dev\":%u,"
			"\"fn\":%u,\"pasid\":%s,\"addr\":\"0x%" PRIx64 "\",\"access\":\"%s\",\"reason\":\"%s\","
			"\"reason_code\":%u,\"stage\":%" PRIu32 ",\"level\":%" PRIu32 ",\"entry_addr\":\"0x%" PRIx64
			"\",\"entry\":\"0x%" PRIx64 "\"}\n",
			rec->seq, rec->rid.segment, rec->rid.bus, rec->rid.devfn >> 3, rec->rid.devfn & 7,
			rec->rid.segment, rec->rid.bus, rec->rid.devfn >> 3, rec->rid.devfn & 7, pasid, rec->addr,
			access, viommu_fault_reason_name(rec->reason), (unsigned)rec->reason, rec->stage, rec->level,
			rec->entry_addr, rec->entry);
}
