/*
 * vfio-pci-core: the PCI bus driver of vfio that vfio-pci and the vendor
 * variant drivers are built on (drivers/vfio/pci/vfio_pci_core.c and its
 * config, interrupt and region files). This is its public header, what
 * include/linux/vfio_pci_core.h is to a variant driver.
 */
export {
  VfioPciCoreDevice,
  defaultVfioPciCoreParams,
  type VfioPciCoreDeviceOptions,
  type VfioPciCoreParams,
  type VfioPciVfToken,
} from './vfio-pci-core-device.js';
export {
  createVfioPciCoreHooks,
  type ConfigAccessContext,
  type ConfigWriteContext,
  type DeviceContext,
  type FeatureContext,
  type IoctlContext,
  type ResetContext,
  type VfioPciCoreHooks,
} from './hooks.js';
export { checkVendorInfo, type VfioPciVendorInfo, type VirtualExtCapability } from './vendor-info.js';
export {
  vfioPciCoreAerErrDetected,
  vfioPciCoreClose,
  vfioPciCoreMatch,
  vfioPciCoreMatchTokenUuid,
  vfioPciCoreOpenDevice,
  vfioPciCoreOps,
  vfioPciCoreRegisterDevice,
  vfioPciCoreRequest,
  vfioPciCoreUnregisterDevice,
} from './ops.js';
export { vfioPciCoreCloseDevice, vfioPciCoreDisable, vfioPciCoreEnable, vfioPciCoreFinishEnable } from './enable.js';
export { vfioPciCoreIoctl } from './ioctl.js';
export { vfioPciCoreIoctlFeature } from './features.js';
export { vfioPciCoreRead, vfioPciCoreWrite, vfioPciRw } from './regions/rw.js';
export { vfioPciCoreMmap } from './regions/mmap.js';
export {
  vfioPciCoreRegisterDevRegion,
  vfioRegionSparseMmapCap,
  type VfioPciRegion,
  type VfioPciRegionOps,
} from './regions/dev-region.js';
export { vfioPciCoreDoIoRw, type VfioPciIo } from './regions/bar-rw.js';
export { vfioPciConfigRw, vfioPciCoreRangeIntersectRange } from './config/config-rw.js';
export { vfioPciMemoryEnabled } from './memory.js';
export { vfioPciTryResetFunction } from './reset.js';
export * from './hot-reset/index.js';
export {
  VFIO_PCI_OFFSET_MASK,
  VFIO_PCI_OFFSET_SHIFT,
  vfioPciIndexToOffset,
  vfioPciOffsetToIndex,
} from './offsets.js';
