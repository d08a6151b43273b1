import type { ConfigSpace } from '../config-space.js';
import {
  PCI_CAP_ID_MSI,
  PCI_MSI_ADDRESS_HI,
  PCI_MSI_ADDRESS_LO,
  PCI_MSI_DATA_32,
  PCI_MSI_DATA_64,
  PCI_MSI_FLAGS,
  PCI_MSI_FLAGS_64BIT,
  PCI_MSI_FLAGS_ENABLE,
  PCI_MSI_FLAGS_MASKBIT,
  PCI_MSI_FLAGS_QSIZE,
  PCI_MSI_MASK_32,
  PCI_MSI_MASK_64,
  PCI_MSI_PENDING_32,
  PCI_MSI_PENDING_64,
} from '../pci-regs.js';
import type { CapabilityBlueprint } from './capability.js';

export type MsiVectorCount = 1 | 2 | 4 | 8 | 16 | 32;

export interface MsiParams {
  /** Multiple Message Capable, as a vector count. */
  readonly vectors: MsiVectorCount;
  readonly address64: boolean;
  readonly perVectorMask: boolean;
  readonly offset?: number;
}

/**
 * Where an MSI capability keeps its registers, as its Message Control
 * decides: a 64-bit capability has Message Upper Address, which moves
 * Message Data, Mask Bits and Pending Bits up by 4; Mask and Pending Bits
 * exist only with per-vector masking. Offsets are from the capability's
 * start; `length` is its extent (10, 14, 20 or 24 bytes).
 */
export interface MsiRegisters {
  readonly address64: boolean;
  readonly data: number;
  /** Mask Bits, or null without per-vector masking. */
  readonly mask: number | null;
  /** Pending Bits, or null without per-vector masking. */
  readonly pending: number | null;
  readonly length: number;
}

export function msiRegisters(flags: number): MsiRegisters {
  const address64 = (flags & PCI_MSI_FLAGS_64BIT) !== 0;
  const maskbit = (flags & PCI_MSI_FLAGS_MASKBIT) !== 0;
  return {
    address64,
    data: address64 ? PCI_MSI_DATA_64 : PCI_MSI_DATA_32,
    mask: maskbit ? (address64 ? PCI_MSI_MASK_64 : PCI_MSI_MASK_32) : null,
    pending: maskbit ? (address64 ? PCI_MSI_PENDING_64 : PCI_MSI_PENDING_32) : null,
    length: 10 + (address64 ? 4 : 0) + (maskbit ? 10 : 0),
  };
}

export function msiCapability(params: MsiParams): CapabilityBlueprint {
  const mmc = Math.log2(params.vectors);
  const flags = (mmc << 1) | (params.address64 ? PCI_MSI_FLAGS_64BIT : 0) | (params.perVectorMask ? PCI_MSI_FLAGS_MASKBIT : 0);
  const regs = msiRegisters(flags);
  return {
    kind: 'standard',
    id: PCI_CAP_ID_MSI,
    name: 'msi',
    version: 0,
    length: regs.length,
    offset: params.offset,
    install(config: ConfigSpace, at: number) {
      config.define(at + PCI_MSI_FLAGS, 2, { value: flags, writable: PCI_MSI_FLAGS_ENABLE | PCI_MSI_FLAGS_QSIZE });
      // Message addresses are dword aligned: bits 1:0 are hard-wired to 0.
      config.define(at + PCI_MSI_ADDRESS_LO, 4, { value: 0, writable: 0xfffffffc });
      if (regs.address64) config.define(at + PCI_MSI_ADDRESS_HI, 4, { value: 0, writable: 0xffffffff });
      config.define(at + regs.data, 2, { value: 0, writable: 0xffff });
      if (regs.mask !== null && regs.pending !== null) {
        const implemented = params.vectors === 32 ? 0xffffffff : (1 << params.vectors) - 1;
        config.define(at + regs.mask, 4, { value: 0, writable: implemented });
        config.define(at + regs.pending, 4, { value: 0 });
      }
    },
  };
}
