import { writtenField, type ConfigSpace } from '../config-space.js';
import {
  PCI_EXT_CAP_ID_PRI,
  PCI_EXT_CAP_PRI_SIZEOF,
  PCI_PRI_ALLOC_REQ,
  PCI_PRI_CTRL,
  PCI_PRI_CTRL_ENABLE,
  PCI_PRI_MAX_REQ,
  PCI_PRI_STATUS,
  PCI_PRI_STATUS_PASID,
  PCI_PRI_STATUS_RF,
  PCI_PRI_STATUS_STOPPED,
  PCI_PRI_STATUS_UPRGI,
} from '../pci-regs.js';
import type { CapabilityBlueprint } from './capability.js';

export interface PriParams {
  /** Outstanding Page Request Capacity. */
  readonly outstandingRequests: number;
  /** PRG Response PASID Required. */
  readonly pasidRequired: boolean;
  readonly offset?: number;
}

/**
 * Page Request Interface. Stopped reads 1 while PRI is disabled (no
 * requests can be outstanding in the model) and 0 once enabled.
 */
export function priCapability(params: PriParams): CapabilityBlueprint {
  return {
    kind: 'extended',
    id: PCI_EXT_CAP_ID_PRI,
    name: 'pri',
    version: 1,
    length: PCI_EXT_CAP_PRI_SIZEOF,
    offset: params.offset,
    install(config: ConfigSpace, at: number) {
      config.define(at + PCI_PRI_CTRL, 2, { value: 0, writable: PCI_PRI_CTRL_ENABLE });
      config.define(at + PCI_PRI_STATUS, 2, {
        value: PCI_PRI_STATUS_STOPPED | (params.pasidRequired ? PCI_PRI_STATUS_PASID : 0),
        rw1c: PCI_PRI_STATUS_RF | PCI_PRI_STATUS_UPRGI,
      });
      config.define(at + PCI_PRI_MAX_REQ, 4, { value: params.outstandingRequests >>> 0 });
      config.define(at + PCI_PRI_ALLOC_REQ, 4, { value: 0, writable: 0xffffffff });
      config.watch(at + PCI_PRI_CTRL, 2, (write) => {
        if (!writtenField(write, at + PCI_PRI_CTRL, 2)) return;
        const enabled = (config.hwRead(at + PCI_PRI_CTRL, 2) & PCI_PRI_CTRL_ENABLE) !== 0;
        config.hwUpdate(at + PCI_PRI_STATUS, 2, PCI_PRI_STATUS_STOPPED, enabled ? 0 : PCI_PRI_STATUS_STOPPED);
      });
    },
  };
}
