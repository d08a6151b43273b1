import type { ConfigSpace } from '../config-space.js';
import { PCI_AF_CAP, PCI_AF_CAP_FLR, PCI_AF_CAP_TP, PCI_AF_CTRL, PCI_AF_LENGTH, PCI_AF_STATUS, PCI_CAP_AF_SIZEOF, PCI_CAP_ID_AF } from '../pci-regs.js';
import type { CapabilityBlueprint } from './capability.js';

export interface AfParams {
  /** FLR through PCI_AF_CTRL_FLR; Linux's af_flr method also needs Transactions Pending support. */
  readonly flr: boolean;
  readonly transactionsPending: boolean;
  readonly offset?: number;
}

/**
 * Conventional PCI Advanced Features: FLR for functions without a PCIe
 * capability. The Initiate FLR bit always reads 0, so the control register
 * has no RW bits; the function watches writes to it.
 */
export function afCapability(params: AfParams): CapabilityBlueprint {
  return {
    kind: 'standard',
    id: PCI_CAP_ID_AF,
    name: 'af',
    version: 0,
    length: PCI_CAP_AF_SIZEOF,
    offset: params.offset,
    install(config: ConfigSpace, at: number) {
      config.define(at + PCI_AF_LENGTH, 1, { value: PCI_CAP_AF_SIZEOF });
      config.define(at + PCI_AF_CAP, 1, {
        value: (params.flr ? PCI_AF_CAP_FLR : 0) | (params.transactionsPending ? PCI_AF_CAP_TP : 0),
      });
      config.define(at + PCI_AF_CTRL, 1, { value: 0 });
      config.define(at + PCI_AF_STATUS, 1, { value: 0 });
    },
  };
}
