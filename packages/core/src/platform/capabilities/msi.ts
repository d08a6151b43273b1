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

/** Register extent of an MSI capability: 10, 14, 20 or 24 bytes. */
export function msiLength(address64: boolean, perVectorMask: boolean): number {
  return 10 + (address64 ? 4 : 0) + (perVectorMask ? 10 : 0);
}

export function msiCapability(params: MsiParams): CapabilityBlueprint {
  return {
    kind: 'standard',
    id: PCI_CAP_ID_MSI,
    name: 'msi',
    version: 0,
    length: msiLength(params.address64, params.perVectorMask),
    offset: params.offset,
    install(config: ConfigSpace, at: number) {
      const mmc = Math.log2(params.vectors);
      config.define(at + PCI_MSI_FLAGS, 2, {
        value: (mmc << 1) | (params.address64 ? PCI_MSI_FLAGS_64BIT : 0) | (params.perVectorMask ? PCI_MSI_FLAGS_MASKBIT : 0),
        writable: PCI_MSI_FLAGS_ENABLE | PCI_MSI_FLAGS_QSIZE,
      });
      // Message addresses are dword aligned: bits 1:0 are hard-wired to 0.
      config.define(at + PCI_MSI_ADDRESS_LO, 4, { value: 0, writable: 0xfffffffc });
      if (params.address64) config.define(at + PCI_MSI_ADDRESS_HI, 4, { value: 0, writable: 0xffffffff });
      config.define(at + (params.address64 ? PCI_MSI_DATA_64 : PCI_MSI_DATA_32), 2, { value: 0, writable: 0xffff });
      if (params.perVectorMask) {
        const implemented = params.vectors === 32 ? 0xffffffff : (1 << params.vectors) - 1;
        config.define(at + (params.address64 ? PCI_MSI_MASK_64 : PCI_MSI_MASK_32), 4, { value: 0, writable: implemented });
        config.define(at + (params.address64 ? PCI_MSI_PENDING_64 : PCI_MSI_PENDING_32), 4, { value: 0 });
      }
    },
  };
}
