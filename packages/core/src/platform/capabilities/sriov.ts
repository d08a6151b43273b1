import { defineBarRegisters, type BarSpec } from '../bars.js';
import type { ConfigSpace } from '../config-space.js';
import {
  PCI_EXT_CAP_ID_SRIOV,
  PCI_EXT_CAP_SRIOV_SIZEOF,
  PCI_SRIOV_BAR,
  PCI_SRIOV_CAP,
  PCI_SRIOV_CTRL,
  PCI_SRIOV_CTRL_ARI,
  PCI_SRIOV_CTRL_MSE,
  PCI_SRIOV_CTRL_VFE,
  PCI_SRIOV_FUNC_LINK,
  PCI_SRIOV_INITIAL_VF,
  PCI_SRIOV_NUM_VF,
  PCI_SRIOV_STATUS,
  PCI_SRIOV_SUP_PGSIZE,
  PCI_SRIOV_SYS_PGSIZE,
  PCI_SRIOV_TOTAL_VF,
  PCI_SRIOV_VF_DID,
  PCI_SRIOV_VF_OFFSET,
  PCI_SRIOV_VF_STRIDE,
  PCI_SRIOV_VFM,
} from '../pci-regs.js';
import type { CapabilityBlueprint } from './capability.js';

export interface SriovParams {
  readonly initialVfs: number;
  readonly totalVfs: number;
  /** First VF Offset: VF 0's routing ID is the PF's plus this. */
  readonly vfOffset: number;
  /** VF Stride: distance between consecutive VFs' routing IDs. */
  readonly vfStride: number;
  readonly vfDeviceId: number;
  /** Supported Page Sizes bitmap (bit n = 4 KiB << n). */
  readonly supportedPageSizes: number;
  readonly functionDependencyLink: number;
  /** Per-VF BARs, sized through the capability's VF BAR registers. */
  readonly vfBars: readonly BarSpec[];
  readonly offset?: number;
}

/**
 * Single Root I/O Virtualization. The capability only holds registers; VFs
 * come and go with VF Enable, which the topology watches.
 */
export function sriovCapability(params: SriovParams): CapabilityBlueprint {
  return {
    kind: 'extended',
    id: PCI_EXT_CAP_ID_SRIOV,
    name: 'sriov',
    version: 1,
    length: PCI_EXT_CAP_SRIOV_SIZEOF,
    offset: params.offset,
    install(config: ConfigSpace, at: number) {
      config.define(at + PCI_SRIOV_CAP, 4, { value: 0 });
      config.define(at + PCI_SRIOV_CTRL, 2, {
        value: 0,
        writable: PCI_SRIOV_CTRL_VFE | PCI_SRIOV_CTRL_MSE | PCI_SRIOV_CTRL_ARI,
      });
      config.define(at + PCI_SRIOV_STATUS, 2, { value: 0 });
      config.define(at + PCI_SRIOV_INITIAL_VF, 2, { value: params.initialVfs });
      config.define(at + PCI_SRIOV_TOTAL_VF, 2, { value: params.totalVfs });
      config.define(at + PCI_SRIOV_NUM_VF, 2, { value: 0, writable: 0xffff });
      config.define(at + PCI_SRIOV_FUNC_LINK, 1, { value: params.functionDependencyLink });
      config.define(at + PCI_SRIOV_VF_OFFSET, 2, { value: params.vfOffset });
      config.define(at + PCI_SRIOV_VF_STRIDE, 2, { value: params.vfStride });
      config.define(at + PCI_SRIOV_VF_DID, 2, { value: params.vfDeviceId });
      config.define(at + PCI_SRIOV_SUP_PGSIZE, 4, { value: params.supportedPageSizes >>> 0 });
      // System Page Size powers on as 4 KiB; only supported sizes can be selected.
      config.define(at + PCI_SRIOV_SYS_PGSIZE, 4, { value: 1, writable: params.supportedPageSizes >>> 0 });
      defineBarRegisters(config, at + PCI_SRIOV_BAR, params.vfBars);
      config.define(at + PCI_SRIOV_VFM, 4, { value: 0 });
    },
  };
}
