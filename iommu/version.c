/* SPDX-License-Identifier: MIT */
#include <viommu/common.h>

const char *viommu_version(void)
{
	return VIOMMU_VERSION_STRING;
}
