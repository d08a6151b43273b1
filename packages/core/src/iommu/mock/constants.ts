/*
 * The mock IOMMU's ABI, with the values of the kernel's
 * drivers/iommu/iommufd/iommufd_test.h (the header the iommufd selftests
 * and the selftest driver share). The "should not be equal to any defined
 * value" types sit outside every enum of linux/iommufd.h on purpose.
 *
 * Public API: the constants below, under their kernel names.
 */

/** IOMMU_GET_HW_INFO type of the mock (struct iommu_test_hw_info). */
export const IOMMU_HW_INFO_TYPE_SELFTEST = 0xfeedbeef;
/** iommu_test_hw_info.test_reg as the mock reports it. */
export const IOMMU_HW_INFO_SELFTEST_REGVAL = 0xdeadbeef;

/** IOMMU_HWPT_ALLOC data_type of a mock nested domain (struct iommu_hwpt_selftest). */
export const IOMMU_HWPT_DATA_SELFTEST = 0xdead;
/** The iotlb value the selftests seed a nested domain with. */
export const IOMMU_TEST_IOTLB_DEFAULT = 0xbadbeef;
/** What every mock device cache slot holds until invalidated. */
export const IOMMU_TEST_DEV_CACHE_DEFAULT = 0xbaddad;

/** IOMMU_HWPT_INVALIDATE data_type for a mock nested HWPT (struct iommu_hwpt_invalidate_selftest). */
export const IOMMU_HWPT_INVALIDATE_DATA_SELFTEST = 0xdeadbeef;
/** A data_type the mock refuses, for negative tests. */
export const IOMMU_HWPT_INVALIDATE_DATA_SELFTEST_INVALID = 0xdadbeef;
/** Invalidation flag: every entry, ignoring iotlb_id / cache_id. */
export const IOMMU_TEST_INVALIDATE_FLAG_ALL = 1 << 0;

export const IOMMU_VIOMMU_TYPE_SELFTEST = 0xdeadbeef;
/** IOMMU_HWPT_INVALIDATE data_type for a mock vIOMMU (struct iommu_viommu_invalidate_selftest). */
export const IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST = 0xdeadbeef;
export const IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST_INVALID = 0xdadbeef;

export const IOMMU_VEVENTQ_TYPE_SELFTEST = 0xbeefbeef;
export const IOMMU_HW_QUEUE_TYPE_SELFTEST = 0xdeadbeef;
export const IOMMU_TEST_HW_QUEUE_MAX = 2;

/** The mock paging domain's aperture: IOVA 16 MiB up to 2 GiB - 1. */
export const MOCK_APERTURE_START = 1n << 24n;
export const MOCK_APERTURE_LAST = (1n << 31n) - 1n;

/** Mock device flags (IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS dev_flags). */
export const MOCK_FLAGS_DEVICE_NO_DIRTY = 1 << 0;
export const MOCK_FLAGS_DEVICE_HUGE_IOVA = 1 << 1;
export const MOCK_FLAGS_DEVICE_PASID = 1 << 2;

export const MOCK_NESTED_DOMAIN_IOTLB_ID_MAX = 3;
export const MOCK_NESTED_DOMAIN_IOTLB_NUM = 4;
export const MOCK_DEV_CACHE_ID_MAX = 3;
export const MOCK_DEV_CACHE_NUM = 4;

/** PASID width of a mock device created with MOCK_FLAGS_DEVICE_PASID. */
export const MOCK_PASID_WIDTH = 20;
/** The PASID the selftests reserve for the replace-failure test (set_dev_pasid fails every second time). */
export const IOMMU_TEST_PASID_RESERVED = 1024;
