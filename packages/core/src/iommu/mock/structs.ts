import { aligned_u64, defineStruct, u32, type CValue } from '../../uapi/index.js';

/*
 * The mock IOMMU's structs (iommufd_test.h), declared with the same codec
 * engine as the uAPI so their layout is computed, not written down.
 *
 * Public API: iommu_test_hw_info, iommu_hwpt_selftest,
 * iommu_hwpt_invalidate_selftest, iommu_viommu_selftest,
 * iommu_viommu_invalidate_selftest, iommu_viommu_event_selftest and their
 * value types.
 */

/** IOMMU_GET_HW_INFO data of the mock (IOMMU_HW_INFO_TYPE_SELFTEST). */
export const iommu_test_hw_info = defineStruct('iommu_test_hw_info', {
  flags: u32,
  test_reg: u32,
});
export type IommuTestHwInfo = CValue<typeof iommu_test_hw_info>;

/** IOMMU_HWPT_ALLOC data of a mock nested domain (IOMMU_HWPT_DATA_SELFTEST). */
export const iommu_hwpt_selftest = defineStruct('iommu_hwpt_selftest', {
  iotlb: u32,
});
export type IommuHwptSelftest = CValue<typeof iommu_hwpt_selftest>;

/** One entry of IOMMU_HWPT_INVALIDATE on a mock nested HWPT (IOMMU_HWPT_INVALIDATE_DATA_SELFTEST). */
export const iommu_hwpt_invalidate_selftest = defineStruct('iommu_hwpt_invalidate_selftest', {
  flags: u32,
  iotlb_id: u32,
});
export type IommuHwptInvalidateSelftest = CValue<typeof iommu_hwpt_invalidate_selftest>;

/** IOMMU_VIOMMU_ALLOC data of the mock vIOMMU (IOMMU_VIOMMU_TYPE_SELFTEST): a loopback and an mmap window. */
export const iommu_viommu_selftest = defineStruct('iommu_viommu_selftest', {
  in_data: u32,
  out_data: u32,
  out_mmap_offset: aligned_u64,
  out_mmap_length: aligned_u64,
});
export type IommuViommuSelftest = CValue<typeof iommu_viommu_selftest>;

/** One entry of IOMMU_HWPT_INVALIDATE on a mock vIOMMU (IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST). */
export const iommu_viommu_invalidate_selftest = defineStruct('iommu_viommu_invalidate_selftest', {
  flags: u32,
  vdev_id: u32,
  cache_id: u32,
});
export type IommuViommuInvalidateSelftest = CValue<typeof iommu_viommu_invalidate_selftest>;

/** A mock vEVENT (IOMMU_VEVENTQ_TYPE_SELFTEST). */
export const iommu_viommu_event_selftest = defineStruct('iommu_viommu_event_selftest', {
  virt_id: u32,
});
export type IommuViommuEventSelftest = CValue<typeof iommu_viommu_event_selftest>;
