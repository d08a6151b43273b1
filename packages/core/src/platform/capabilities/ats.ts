import type { ConfigSpace } from '../config-space.js';
import {
  PCI_ATS_CAP,
  PCI_ATS_CAP_PAGE_ALIGNED,
  PCI_ATS_CAP_QDEP_MASK,
  PCI_ATS_CTRL,
  PCI_ATS_CTRL_ENABLE,
  PCI_ATS_CTRL_STU_MASK,
  PCI_EXT_CAP_ATS_SIZEOF,
  PCI_EXT_CAP_ID_ATS,
} from '../pci-regs.js';
import type { CapabilityBlueprint } from './capability.js';

export interface AtsParams {
  /** Invalidate Queue Depth, 0-31 (0 means 32). */
  readonly invalidateQueueDepth: number;
  /** Page Aligned Request: the device only requests page-aligned translations. */
  readonly pageAligned: boolean;
  readonly offset?: number;
}

export function atsCapability(params: AtsParams): CapabilityBlueprint {
  return {
    kind: 'extended',
    id: PCI_EXT_CAP_ID_ATS,
    name: 'ats',
    version: 1,
    length: PCI_EXT_CAP_ATS_SIZEOF,
    offset: params.offset,
    install(config: ConfigSpace, at: number) {
      config.define(at + PCI_ATS_CAP, 2, {
        value: (params.invalidateQueueDepth & PCI_ATS_CAP_QDEP_MASK) | (params.pageAligned ? PCI_ATS_CAP_PAGE_ALIGNED : 0),
      });
      config.define(at + PCI_ATS_CTRL, 2, { value: 0, writable: PCI_ATS_CTRL_ENABLE | PCI_ATS_CTRL_STU_MASK });
    },
  };
}
