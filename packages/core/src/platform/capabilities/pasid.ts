import type { ConfigSpace } from '../config-space.js';
import {
  PCI_EXT_CAP_ID_PASID,
  PCI_EXT_CAP_PASID_SIZEOF,
  PCI_PASID_CAP,
  PCI_PASID_CAP_EXEC,
  PCI_PASID_CAP_PRIV,
  PCI_PASID_CTRL,
  PCI_PASID_CTRL_ENABLE,
  PCI_PASID_CTRL_EXEC,
  PCI_PASID_CTRL_PRIV,
} from '../pci-regs.js';
import type { CapabilityBlueprint } from './capability.js';

export interface PasidParams {
  /** Max PASID Width in bits, 1-20. */
  readonly width: number;
  readonly exec: boolean;
  readonly privileged: boolean;
  readonly offset?: number;
}

export function pasidCapability(params: PasidParams): CapabilityBlueprint {
  return {
    kind: 'extended',
    id: PCI_EXT_CAP_ID_PASID,
    name: 'pasid',
    version: 1,
    length: PCI_EXT_CAP_PASID_SIZEOF,
    offset: params.offset,
    install(config: ConfigSpace, at: number) {
      config.define(at + PCI_PASID_CAP, 2, {
        value: (params.exec ? PCI_PASID_CAP_EXEC : 0) | (params.privileged ? PCI_PASID_CAP_PRIV : 0) | ((params.width & 0x1f) << 8),
      });
      config.define(at + PCI_PASID_CTRL, 2, {
        value: 0,
        writable: PCI_PASID_CTRL_ENABLE | (params.exec ? PCI_PASID_CTRL_EXEC : 0) | (params.privileged ? PCI_PASID_CTRL_PRIV : 0),
      });
    },
  };
}
