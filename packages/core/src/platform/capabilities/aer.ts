import type { ConfigSpace } from '../config-space.js';
import {
  PCI_ERR_CAP,
  PCI_ERR_CAP_ECRC_CHKC,
  PCI_ERR_CAP_ECRC_CHKE,
  PCI_ERR_CAP_ECRC_GENC,
  PCI_ERR_CAP_ECRC_GENE,
  PCI_ERR_CAP_FEP_MASK,
  PCI_ERR_COR_MASK,
  PCI_ERR_COR_STATUS,
  PCI_ERR_HEADER_LOG,
  PCI_ERR_ROOT_COMMAND,
  PCI_ERR_ROOT_ERR_SRC,
  PCI_ERR_ROOT_STATUS,
  PCI_ERR_UNCOR_MASK,
  PCI_ERR_UNCOR_SEVER,
  PCI_ERR_UNCOR_STATUS,
  PCI_ERR_UNC_DLP,
  PCI_ERR_UNC_FCP,
  PCI_ERR_UNC_INTN,
  PCI_ERR_UNC_MALF_TLP,
  PCI_ERR_UNC_RX_OVER,
  PCI_ERR_UNC_SURPDN,
  PCI_EXT_CAP_ID_ERR,
} from '../pci-regs.js';
import type { CapabilityBlueprint } from './capability.js';

export interface AerParams {
  /** Root Error Command/Status/Source registers (root ports). */
  readonly root: boolean;
  /** ECRC generation and checking capable. */
  readonly ecrc: boolean;
  readonly offset?: number;
}

/** Uncorrectable error bits the model implements (PCIe 3.x set, 4..25). */
export const AER_UNCOR_IMPLEMENTED = 0x03fff030;
/** Correctable error bits the model implements. */
export const AER_COR_IMPLEMENTED = 0x0000f1c1;
/** Spec power-on severity: DLP, Surprise Down, FCP, Receiver Overflow, Malformed TLP, Internal are fatal. */
export const AER_UNCOR_SEVER_DEFAULT =
  PCI_ERR_UNC_DLP | PCI_ERR_UNC_SURPDN | PCI_ERR_UNC_FCP | PCI_ERR_UNC_RX_OVER | PCI_ERR_UNC_MALF_TLP | PCI_ERR_UNC_INTN;

/** AER register extent: through the header log, plus the root registers on a root port. */
export function aerLength(root: boolean): number {
  return root ? 0x38 : 0x2c;
}

/**
 * Advanced Error Reporting. Status, mask, severity, ECRC enables and the
 * header log are sticky: hot reset, FLR and D3hot->D0 leave them as they were.
 */
export function aerCapability(params: AerParams): CapabilityBlueprint {
  return {
    kind: 'extended',
    id: PCI_EXT_CAP_ID_ERR,
    name: 'aer',
    version: 2,
    length: aerLength(params.root),
    offset: params.offset,
    install(config: ConfigSpace, at: number) {
      const unc = AER_UNCOR_IMPLEMENTED;
      const cor = AER_COR_IMPLEMENTED;
      config.define(at + PCI_ERR_UNCOR_STATUS, 4, { value: 0, rw1c: unc, sticky: unc });
      config.define(at + PCI_ERR_UNCOR_MASK, 4, { value: PCI_ERR_UNC_INTN, writable: unc, sticky: unc });
      config.define(at + PCI_ERR_UNCOR_SEVER, 4, { value: AER_UNCOR_SEVER_DEFAULT, writable: unc, sticky: unc });
      config.define(at + PCI_ERR_COR_STATUS, 4, { value: 0, rw1c: cor, sticky: cor });
      // Advisory Non-Fatal, Corrected Internal and Header Log Overflow are masked at power-on.
      config.define(at + PCI_ERR_COR_MASK, 4, { value: 0xe000, writable: cor, sticky: cor });
      const enables = params.ecrc ? PCI_ERR_CAP_ECRC_GENE | PCI_ERR_CAP_ECRC_CHKE : 0;
      config.define(at + PCI_ERR_CAP, 4, {
        value: params.ecrc ? PCI_ERR_CAP_ECRC_GENC | PCI_ERR_CAP_ECRC_CHKC : 0,
        writable: enables,
        sticky: enables | PCI_ERR_CAP_FEP_MASK,
      });
      for (let i = 0; i < 16; i += 4) config.define(at + PCI_ERR_HEADER_LOG + i, 4, { value: 0, sticky: 0xffffffff });
      if (params.root) {
        config.define(at + PCI_ERR_ROOT_COMMAND, 4, { value: 0, writable: 0x7 });
        config.define(at + PCI_ERR_ROOT_STATUS, 4, { value: 0, rw1c: 0x7f, sticky: 0x7f });
        config.define(at + PCI_ERR_ROOT_ERR_SRC, 4, { value: 0, sticky: 0xffffffff });
      }
    },
  };
}
