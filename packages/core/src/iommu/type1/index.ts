// The legacy container's type1 back end (drivers/vfio/vfio_iommu_type1.c).
export { TYPE1_DRIVER_NAME, type1IommuDriver } from './type1-driver.js';
export {
  VfioIommuType1,
  type DmaMapArgs,
  type DmaUnmapArgs,
  type Type1Mapping,
  type Type1Options,
  type UserDirtyBitmap,
} from './vfio-iommu-type1.js';
export type { IovaRange } from './iova-list.js';
export {
  DIRTY_BITMAP_PAGES_MAX,
  DIRTY_BITMAP_SIZE_MAX,
  DMA_ENTRY_LIMIT_DEFAULT,
} from './type1-limits.js';
