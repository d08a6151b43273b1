export { acsCapability, acsCapabilityBits, acsLength, type AcsParams } from './acs.js';
export { aerCapability, aerLength, AER_COR_IMPLEMENTED, AER_UNCOR_IMPLEMENTED, AER_UNCOR_SEVER_DEFAULT, type AerParams } from './aer.js';
export { afCapability, type AfParams } from './af.js';
export { atsCapability, type AtsParams } from './ats.js';
export type { CapabilityBlueprint, CapabilityInfo, CapabilityKind } from './capability.js';
export {
  capabilities,
  capabilityLength,
  capabilityName,
  capabilityOffsets,
  extCapabilities,
  extCapabilityLength,
  extCapabilityOffsets,
  findCapability,
  findExtCapability,
  findNextCapability,
  findNextExtCapability,
  pcieTypeFromCode,
  type ConfigReader,
} from './layout.js';
export { msiCapability, msiRegisters, type MsiParams, type MsiRegisters, type MsiVectorCount } from './msi.js';
export { msixCapability, msixPbaLength, MSIX_MAX_TABLE_SIZE, type MsixParams } from './msix.js';
export { pasidCapability, type PasidParams } from './pasid.js';
export {
  pcieCapability,
  pcieLength,
  PCIE_TYPE_CODE,
  type PcieLink,
  type PcieLinkSpeed,
  type PcieParams,
  type PcieSlot,
  type PcieType,
} from './pcie.js';
export { installCapabilities, planCapabilities, type CapabilityPlan, type CapabilityPlanProblem } from './placement.js';
export { pmCapability, type PmParams } from './pm.js';
export { priCapability, type PriParams } from './pri.js';
export { sriovCapability, type SriovParams } from './sriov.js';
