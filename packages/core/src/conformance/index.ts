// The conformance kit: suites a driver package runs against itself, as lists of cases for any test runner.
export type { ConformanceCase } from './case.js';
export type { ConformanceGuest } from './guest-ram.js';
export { ioPgtableStage1, type Stage1Format, type Stage1Table } from './stage1.js';
export type {
  InvalidationEntryContext,
  InvalidationEntryCopy,
  InvalidationSubject,
  IommuDriverSubject,
  NestedHwptSubject,
  Stage1Context,
} from './iommu-subject.js';
export { iommuDriverConformance } from './iommu-driver.js';
export type { BoundDevice } from './bound-device.js';
export type { UserSpace } from './user-space.js';
export type { VariantDeviceRegion, VariantDeviceState, VariantDriverSubject, VariantMigration } from './variant-subject.js';
export { variantDriverConformance } from './variant-driver.js';
