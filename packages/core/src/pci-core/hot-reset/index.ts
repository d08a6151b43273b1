// PCI hot reset for vfio-pci-core: dev_sets, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, VFIO_DEVICE_PCI_HOT_RESET, reset on last close.
export { vfioPciAssignDevSet, vfioPciDevSetId } from './dev-set-id.js';
export {
  vfioPciDevSetHotReset,
  vfioPciDevSetNeedsReset,
  vfioPciDevSetResettable,
  vfioPciDevSetTryReset,
} from './dev-set-reset.js';
export { pciFunctionGroupId, vfioPciFillDevs, type HotResetInfo } from './fill-devs.js';
export { vfioPciIoctlGetPciHotResetInfo, vfioPciIoctlPciHotReset } from './ioctls.js';
export { hotResetOwns, vfioIommufdDevIdStatus, type DevIdStatus, type HotResetProof } from './ownership.js';
export { pciResetBusWithState, type PciResetHandlers } from './pci-reset-bus.js';
