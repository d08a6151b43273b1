/**
 * What vfio holds of a struct iommu_group, and hands to container back ends:
 * the group's id, the N of /dev/vfio/N. Hardware groups are the IOMMU core's
 * (IommuCore, keyed by this id); software groups of noiommu and emulated
 * devices take ids from the same number space.
 */
export interface IommuGroupHandle {
  readonly id: number;
}
