import type { ConfigSpace } from '../config-space.js';
import {
  PCI_CAP_ID_PM,
  PCI_PM_CAP_D1,
  PCI_PM_CAP_D2,
  PCI_PM_CAP_PME_D3cold,
  PCI_PM_CAP_PME_SHIFT,
  PCI_PM_CTRL,
  PCI_PM_CTRL_NO_SOFT_RESET,
  PCI_PM_CTRL_PME_ENABLE,
  PCI_PM_CTRL_PME_STATUS,
  PCI_PM_CTRL_STATE_MASK,
  PCI_PM_PMC,
  PCI_PM_SIZEOF,
} from '../pci-regs.js';
import type { CapabilityBlueprint } from './capability.js';

export interface PmParams {
  /** D1 and D2 support; D0 and D3hot are mandatory. */
  readonly d1: boolean;
  readonly d2: boolean;
  /**
   * PCI_PM_CTRL_NO_SOFT_RESET: the function keeps its state across D3hot->D0.
   * When clear, that transition is an internal reset (Linux's "pm" reset method).
   */
  readonly noSoftReset: boolean;
  /** PME_Support as the 5-bit field of PMC (bit 0 = D0 ... bit 4 = D3cold). */
  readonly pmeSupport: number;
  readonly offset?: number;
}

/** PCI Power Management Interface Specification 1.2 (PMC version 3). */
export function pmCapability(params: PmParams): CapabilityBlueprint {
  return {
    kind: 'standard',
    id: PCI_CAP_ID_PM,
    name: 'pm',
    version: 0,
    length: PCI_PM_SIZEOF,
    offset: params.offset,
    install(config: ConfigSpace, at: number) {
      const pme = (params.pmeSupport & 0x1f) << PCI_PM_CAP_PME_SHIFT;
      config.define(at + PCI_PM_PMC, 2, {
        value: 3 | (params.d1 ? PCI_PM_CAP_D1 : 0) | (params.d2 ? PCI_PM_CAP_D2 : 0) | pme,
      });
      // PME context survives resets only when the function can signal PME from D3cold.
      const pmeBits = pme ? PCI_PM_CTRL_PME_ENABLE | PCI_PM_CTRL_PME_STATUS : 0;
      config.define(at + PCI_PM_CTRL, 2, {
        value: params.noSoftReset ? PCI_PM_CTRL_NO_SOFT_RESET : 0,
        writable: PCI_PM_CTRL_STATE_MASK | (pme ? PCI_PM_CTRL_PME_ENABLE : 0),
        rw1c: pme ? PCI_PM_CTRL_PME_STATUS : 0,
        sticky: pme & PCI_PM_CAP_PME_D3cold ? pmeBits : 0,
      });
    },
  };
}
