export * from './pci-regs.js';
export {
  bdfDevfn,
  bdfEquals,
  bdfFromDevfn,
  bdfProblem,
  compareBdf,
  formatBdf,
  formatBus,
  makeBdf,
  parseBdf,
  pciDevfn,
  pciFunc,
  pciSlot,
  requesterId,
  sortByBdf,
  PCI_MAX_BUS,
  PCI_MAX_DEVICE,
  PCI_MAX_DOMAIN,
  PCI_MAX_FUNCTION,
  type Bdf,
} from './bdf.js';
export {
  ConfigSpace,
  writtenField,
  type ConfigAccessSize,
  type ConfigWrite,
  type ConfigWriteWatcher,
  type RegisterDefinition,
} from './config-space.js';
export * from './capabilities/index.js';
export {
  barFlags,
  barRegisterCount,
  barSizeProblem,
  defineBarRegisters,
  defineRomRegister,
  romSizeProblem,
  MAX_BAR_SIZE,
  MAX_ROM_SIZE,
  MIN_BAR_SIZE,
  MIN_ROM_SIZE,
  type BarKind,
  type BarSpec,
} from './bars.js';
export { PlainBarMemory, type BarAccessSize, type BarHandler } from './bar-memory.js';
export { MsixTable, type MsixEntry } from './msix-table.js';
export {
  pciIntxAsserted,
  pciOnInterrupt,
  pciSetIntxLevel,
  pciSignalMsi,
  type InterruptListener,
  type MsiMessage,
} from './interrupts.js';
export { buildRomImage } from './rom-image.js';
export type {
  BridgeKind,
  ExtendedCapabilitySpecs,
  FunctionSpec,
  PlatformResets,
  StandardCapabilitySpecs,
  VfTemplate,
} from './function-spec.js';
export { buildConfigSpace, capabilityBlueprints, configSpaceSize, type ConfigBlueprint } from './function-config.js';
export {
  isPciFunction,
  PciFunction,
  type PciBar,
  type PciRom,
  type PowerState,
  type ResetEvent,
  type ResetKind,
  type ResetListener,
  type VirtfnIdentity,
} from './pci-function.js';
export {
  functionsBelow,
  PciBus,
  PciSlot,
  secondaryBusReset,
  Topology,
  walkBus,
  type FunctionListener,
} from './topology.js';
export { IommuGroup, IommuGroups, pciAcsEnabled, pciAcsPathEnabled, REQ_ACS_FLAGS } from './iommu-groups.js';
export {
  busResetRoute,
  hotResetScope,
  pciResetBus,
  pciResetFunction,
  performResetMethod,
  probeResetMethod,
  resetMethods,
  resetMethodScope,
  PCI_RESET_METHODS,
  type BusResetRoute,
  type HotResetScope,
  type ResetMethod,
} from './reset-scope.js';
export { enumeratePlatform } from './enumerate.js';
export { formatIssuePath, planHost, type IssuePath, type PlanProblem, type PlannedFunction, type PlatformPlan } from './host-plan.js';
export {
  buildPlatform,
  hostDescriptionSchema,
  type HostDescription,
  type ParsedBridge,
  type ParsedDevice,
  type ParsedHostDescription,
} from './host-description.js';
export { Platform } from './platform.js';
export { iommuGroupListing, lspciTree, resetScopeTable } from './describe.js';
