// iommufd: /dev/iommu, its objects (IOAS, HWPT, device, vIOMMU, vDEVICE, access) and the VFIO container compatibility.
export { Iommufd, IOMMUFD_DEVICE_PATH } from './iommufd.js';
export { IommufdCtx, iommufdFileOps, commandTable as iommufdCommandTable, type IommufdAccountMode, type IommufdUcmd } from './iommufd-ctx.js';
export { IommufdObject, type IommufdObjectType } from './object.js';
export { ObjectTable } from './object-table.js';
export { IommufdIoas } from './ioas.js';
export { IoPagetable, IoptArea, type PagesSlice, type UnmapResult } from './io-pagetable.js';
export { IoptPages, type PageSource, type PinnedPage } from './iopt-pages.js';
export { IommufdHwPagetable, HwptPaging, HwptNested } from './hw-pagetable.js';
export { IommufdDevice, IommufdGroup } from './device.js';
export { IommufdViommu, IommufdVdevice } from './viommu.js';
export { IommufdAccess } from './access.js';
