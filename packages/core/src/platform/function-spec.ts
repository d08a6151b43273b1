import type { Bdf } from './bdf.js';
import type { BarSpec } from './bars.js';
import type { AcsParams } from './capabilities/acs.js';
import type { AerParams } from './capabilities/aer.js';
import type { AfParams } from './capabilities/af.js';
import type { AtsParams } from './capabilities/ats.js';
import type { MsiParams } from './capabilities/msi.js';
import type { MsixParams } from './capabilities/msix.js';
import type { PasidParams } from './capabilities/pasid.js';
import type { PcieParams } from './capabilities/pcie.js';
import type { PmParams } from './capabilities/pm.js';
import type { PriParams } from './capabilities/pri.js';
import type { SriovParams } from './capabilities/sriov.js';

/** The kinds of PCI-to-PCI bridge the platform builds. */
export type BridgeKind = 'root-port' | 'upstream-port' | 'downstream-port' | 'pcie-to-pci' | 'pci-bridge';

export interface StandardCapabilitySpecs {
  readonly pm?: PmParams;
  readonly msi?: MsiParams;
  readonly pcie?: PcieParams;
  readonly msix?: MsixParams;
  readonly af?: AfParams;
}

export interface ExtendedCapabilitySpecs {
  readonly aer?: AerParams;
  readonly acs?: AcsParams;
  readonly ats?: AtsParams;
  readonly pasid?: PasidParams;
  readonly pri?: PriParams;
  readonly sriov?: SriovParams;
}

/** Resets the platform provides outside the PCI spec. */
export interface PlatformResets {
  /** Firmware implements _RST for the function (Linux's "acpi" method). */
  readonly acpi: boolean;
  /** The kernel has a device-specific reset quirk for the function ("device_specific"). */
  readonly deviceSpecific: boolean;
}

/** The identity and capabilities every VF of a PF shares. */
export interface VfTemplate {
  readonly label: string | null;
  readonly classCode: number;
  readonly revision: number;
  readonly subsystemVendorId: number;
  readonly subsystemId: number;
  readonly capabilities: StandardCapabilitySpecs;
  readonly extendedCapabilities: ExtendedCapabilitySpecs;
  readonly resets: PlatformResets;
}

/**
 * Everything needed to build one function's hardware: the validated,
 * defaulted form of a host description entry.
 */
export interface FunctionSpec {
  readonly bdf: Bdf;
  readonly label: string | null;
  readonly vendorId: number;
  readonly deviceId: number;
  readonly revision: number;
  /** 24-bit class code: base class, subclass, programming interface. */
  readonly classCode: number;
  readonly subsystemVendorId: number;
  readonly subsystemId: number;
  /** Interrupt Pin: 0 none, 1-4 INTA-INTD. */
  readonly interruptPin: number;
  /** Header Type bit 7. */
  readonly multifunction: boolean;
  readonly bridge: BridgeKind | null;
  readonly bars: readonly BarSpec[];
  readonly romSize: bigint | null;
  readonly capabilities: StandardCapabilitySpecs;
  readonly extendedCapabilities: ExtendedCapabilitySpecs;
  readonly resets: PlatformResets;
  /** No IOMMU translates this function's DMA (vfio's noiommu mode is its only way in). */
  readonly noIommu: boolean;
  /** For an SR-IOV PF: what its VFs look like. */
  readonly vf: VfTemplate | null;
}
