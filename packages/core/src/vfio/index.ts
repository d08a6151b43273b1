export { AuxiliaryDevice, auxiliaryMatchId, type AuxiliaryDeviceId } from './auxiliary-device.js';
export { CapChain } from './cap-chain.js';
export { VfioContainer, containerFileOps, containerFromFile } from './container.js';
export { DevSet } from './dev-set.js';
export { VFIO_PIN_PAGES_MAX_ENTRIES, vfioDmaRw, vfioPinPages, vfioUnpinPages } from './dma-access.js';
export { vfioCheckFeature } from './device-feature.js';
export { VfioDeviceFile, deviceFileFromFile, deviceFileOps } from './device-file.js';
export { DriverCore, type AuxiliaryDriver, type DeviceDriver, type PciDriver } from './driver-core.js';
export { VfioGroup, groupFileOps, groupFromFile } from './group.js';
export { Ida } from './ida.js';
export type { IommuGroupHandle } from './iommu-group-kapi.js';
export type { IommufdAccessHandle, IommufdAccessOps, IommufdDeviceHandle, IommufdKapi } from './iommufd-kapi.js';
export { VfioIommufdGlue, emulatedIommufdOps, physicalIommufdOps } from './iommufd-glue.js';
export { KernelLog, type KernelMessage } from './kernel-log.js';
export { KernelModule } from './kernel-module.js';
export * from './migration-fsm.js';
export { createNoiommuDriver } from './noiommu-driver.js';
export {
  PCI_ANY_ID,
  PCI_DEVICE_ID_ANY,
  pciIdMatches,
  pciMatchDevice,
  type PciBusDevice,
  type PciDeviceId,
} from './pci-device-id.js';
export {
  VFIO_CONTAINER_PATH,
  VFIO_UNREGISTER_REQUEST_INTERVAL_NS,
  VfioCore,
  type VfioRegisterOptions,
} from './vfio-core.js';
export { VfioDevice, iommuClientOf, type BusDevice, type VfioInterfaces } from './vfio-device.js';
export { VFIO_IRQ_SET_MINSZ, vfioSetIrqsValidateAndPrepare, type IrqSetHeader } from './set-irqs.js';
export { vfioFileHasDev, vfioFileIsGroup, vfioFileIsValid } from './vfio-file.js';
export type { IommufdCtxHandle, VfioDeviceOps, VfioLogOps, VfioMigrationOps } from './vfio-device-ops.js';
export type { VfioGroupType, VfioIommuBackend, VfioIommuDriverOps } from './vfio-iommu-driver.js';
