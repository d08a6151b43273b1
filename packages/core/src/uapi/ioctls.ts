import { uapiFacts } from './facts.js';

/** Every ioctl request the facts know, by kernel name. */
export type IoctlName = keyof typeof uapiFacts.ioctls;

/*
 * Every VFIO and iommufd request number, from the ABI facts. All are _IO()
 * numbers (no size or direction bits): VFIO and iommufd carry the struct size
 * inside the struct instead. VFIO reuses numbers between file types, so
 * VFIO_IOMMU_GET_INFO == VFIO_DEVICE_GET_PCI_HOT_RESET_INFO ==
 * VFIO_IOMMU_SPAPR_TCE_GET_INFO; which one a number means depends on the fd.
 */
export const {
  IOMMU_DESTROY, IOMMU_IOAS_ALLOC, IOMMU_IOAS_IOVA_RANGES, IOMMU_IOAS_ALLOW_IOVAS, IOMMU_IOAS_MAP,
  IOMMU_IOAS_MAP_FILE, IOMMU_IOAS_COPY, IOMMU_IOAS_UNMAP, IOMMU_OPTION, IOMMU_VFIO_IOAS,
  IOMMU_HWPT_ALLOC, IOMMU_GET_HW_INFO, IOMMU_HWPT_SET_DIRTY_TRACKING, IOMMU_HWPT_GET_DIRTY_BITMAP,
  IOMMU_HWPT_INVALIDATE, IOMMU_FAULT_QUEUE_ALLOC, IOMMU_VIOMMU_ALLOC, IOMMU_VDEVICE_ALLOC,
  IOMMU_IOAS_CHANGE_PROCESS, IOMMU_VEVENTQ_ALLOC, IOMMU_HW_QUEUE_ALLOC, VFIO_GET_API_VERSION,
  VFIO_CHECK_EXTENSION, VFIO_SET_IOMMU, VFIO_GROUP_GET_STATUS, VFIO_GROUP_SET_CONTAINER,
  VFIO_GROUP_UNSET_CONTAINER, VFIO_GROUP_GET_DEVICE_FD, VFIO_DEVICE_GET_INFO,
  VFIO_DEVICE_GET_REGION_INFO, VFIO_DEVICE_GET_IRQ_INFO, VFIO_DEVICE_SET_IRQS, VFIO_DEVICE_RESET,
  VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, VFIO_DEVICE_PCI_HOT_RESET, VFIO_DEVICE_QUERY_GFX_PLANE,
  VFIO_DEVICE_GET_GFX_DMABUF, VFIO_DEVICE_IOEVENTFD, VFIO_DEVICE_FEATURE, VFIO_DEVICE_BIND_IOMMUFD,
  VFIO_DEVICE_ATTACH_IOMMUFD_PT, VFIO_DEVICE_DETACH_IOMMUFD_PT, VFIO_MIG_GET_PRECOPY_INFO,
  VFIO_IOMMU_GET_INFO, VFIO_IOMMU_MAP_DMA, VFIO_IOMMU_UNMAP_DMA, VFIO_IOMMU_ENABLE,
  VFIO_IOMMU_DISABLE, VFIO_IOMMU_DIRTY_PAGES, VFIO_IOMMU_SPAPR_TCE_GET_INFO, VFIO_EEH_PE_OP,
  VFIO_IOMMU_SPAPR_REGISTER_MEMORY, VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY,
  VFIO_IOMMU_SPAPR_TCE_CREATE, VFIO_IOMMU_SPAPR_TCE_REMOVE,
} = uapiFacts.ioctls;

const IOC_NRBITS = 8;
const IOC_TYPEBITS = 8;
const IOC_NRMASK = (1 << IOC_NRBITS) - 1;
const IOC_TYPEMASK = (1 << IOC_TYPEBITS) - 1;

/** _IO(type, nr): a request with no direction and no size, as every VFIO and iommufd ioctl is. */
export function _IO(type: number, nr: number): number {
  return ((type & IOC_TYPEMASK) << IOC_NRBITS) | (nr & IOC_NRMASK);
}

/** The command number within the type (the low 8 bits). */
export function _IOC_NR(request: number): number {
  return request & IOC_NRMASK;
}

/** The ioctl type, the "magic" byte (';' for VFIO and iommufd). */
export function _IOC_TYPE(request: number): number {
  return (request >>> IOC_NRBITS) & IOC_TYPEMASK;
}
