import type { ConfigSpace } from '../config-space.js';
import {
  PCI_CAP_ID_MSIX,
  PCI_CAP_MSIX_SIZEOF,
  PCI_MSIX_FLAGS,
  PCI_MSIX_FLAGS_ENABLE,
  PCI_MSIX_FLAGS_MASKALL,
  PCI_MSIX_PBA,
  PCI_MSIX_TABLE,
} from '../pci-regs.js';
import type { CapabilityBlueprint } from './capability.js';

export interface MsixParams {
  /** Number of table entries, 1-2048. */
  readonly tableSize: number;
  readonly tableBar: number;
  /** Byte offset of the table in its BAR; QWORD aligned. */
  readonly tableOffset: number;
  readonly pbaBar: number;
  /** Byte offset of the Pending Bit Array in its BAR; QWORD aligned. */
  readonly pbaOffset: number;
  readonly offset?: number;
}

export const MSIX_MAX_TABLE_SIZE = 2048;

/** Bytes of the Pending Bit Array: one bit per entry, in QWORDs. */
export function msixPbaLength(tableSize: number): number {
  return Math.ceil(tableSize / 64) * 8;
}

export function msixCapability(params: MsixParams): CapabilityBlueprint {
  return {
    kind: 'standard',
    id: PCI_CAP_ID_MSIX,
    name: 'msix',
    version: 0,
    length: PCI_CAP_MSIX_SIZEOF,
    offset: params.offset,
    install(config: ConfigSpace, at: number) {
      config.define(at + PCI_MSIX_FLAGS, 2, {
        value: params.tableSize - 1,
        writable: PCI_MSIX_FLAGS_MASKALL | PCI_MSIX_FLAGS_ENABLE,
      });
      config.define(at + PCI_MSIX_TABLE, 4, { value: (params.tableOffset | params.tableBar) >>> 0 });
      config.define(at + PCI_MSIX_PBA, 4, { value: (params.pbaOffset | params.pbaBar) >>> 0 });
    },
  };
}
