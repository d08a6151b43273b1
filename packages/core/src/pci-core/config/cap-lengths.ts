import type { ConfigReader } from '../../platform/capabilities/layout.js';
import { msiRegisters } from '../../platform/capabilities/msi.js';
import {
  HT_3BIT_CAP_MASK,
  HT_CAP_SIZEOF_LONG,
  HT_CAP_SIZEOF_SHORT,
  PCI_ACS_CAP,
  PCI_ACS_EC,
  PCI_ACS_EGRESS_BITS,
  PCI_AGP_SIZEOF,
  PCI_CAP_AF_SIZEOF,
  PCI_CAP_EXP_ENDPOINT_SIZEOF_V1,
  PCI_CAP_EXP_ENDPOINT_SIZEOF_V2,
  PCI_CAP_EXP_RC_ENDPOINT_SIZEOF_V1,
  PCI_CAP_EXP_RC_ENDPOINT_SIZEOF_V2,
  PCI_CAP_FLAGS,
  PCI_CAP_ID_AF,
  PCI_CAP_ID_AGP,
  PCI_CAP_ID_EXP,
  PCI_CAP_ID_HT,
  PCI_CAP_ID_MAX,
  PCI_CAP_ID_MSI,
  PCI_CAP_ID_MSIX,
  PCI_CAP_ID_PCIX,
  PCI_CAP_ID_PM,
  PCI_CAP_ID_SATA,
  PCI_CAP_ID_VNDR,
  PCI_CAP_ID_VPD,
  PCI_CAP_MSIX_SIZEOF,
  PCI_CAP_PCIX_SIZEOF_V0,
  PCI_CAP_PCIX_SIZEOF_V2,
  PCI_CAP_VC_BASE_SIZEOF,
  PCI_CAP_VC_PER_VC_SIZEOF,
  PCI_CAP_VPD_SIZEOF,
  PCI_DPA_BASE_SIZEOF,
  PCI_DPA_CAP,
  PCI_DPA_CAP_SUBSTATE_MASK,
  PCI_DVSEC_HEADER1,
  PCI_ERR_ROOT_COMMAND,
  PCI_EXP_FLAGS,
  PCI_EXP_FLAGS_TYPE,
  PCI_EXP_FLAGS_VERS,
  PCI_EXP_TYPE_RC_END,
  PCI_EXT_CAP_ARI_SIZEOF,
  PCI_EXT_CAP_ATS_SIZEOF,
  PCI_EXT_CAP_DSN_SIZEOF,
  PCI_EXT_CAP_ID_ACS,
  PCI_EXT_CAP_ID_ARI,
  PCI_EXT_CAP_ID_ATS,
  PCI_EXT_CAP_ID_DPA,
  PCI_EXT_CAP_ID_DSN,
  PCI_EXT_CAP_ID_DVSEC,
  PCI_EXT_CAP_ID_ERR,
  PCI_EXT_CAP_ID_LTR,
  PCI_EXT_CAP_ID_MAX,
  PCI_EXT_CAP_ID_MCAST,
  PCI_EXT_CAP_ID_MFVC,
  PCI_EXT_CAP_ID_PRI,
  PCI_EXT_CAP_ID_PWR,
  PCI_EXT_CAP_ID_REBAR,
  PCI_EXT_CAP_ID_SRIOV,
  PCI_EXT_CAP_ID_TPH,
  PCI_EXT_CAP_ID_VC,
  PCI_EXT_CAP_ID_VC9,
  PCI_EXT_CAP_ID_VNDR,
  PCI_EXT_CAP_LTR_SIZEOF,
  PCI_EXT_CAP_MCAST_ENDPOINT_SIZEOF,
  PCI_EXT_CAP_PRI_SIZEOF,
  PCI_EXT_CAP_PWR_SIZEOF,
  PCI_EXT_CAP_SRIOV_SIZEOF,
  PCI_MSI_FLAGS,
  PCI_PM_SIZEOF,
  PCI_REBAR_CTRL,
  PCI_REBAR_CTRL_NBAR_MASK,
  PCI_REBAR_CTRL_NBAR_SHIFT,
  PCI_SATA_REGS,
  PCI_SATA_REGS_INLINE,
  PCI_SATA_REGS_MASK,
  PCI_SATA_SIZEOF_LONG,
  PCI_SATA_SIZEOF_SHORT,
  PCI_STD_HEADER_SIZEOF,
  PCI_TPH_BASE_SIZEOF,
  PCI_TPH_CAP,
  PCI_TPH_CAP_LOC_MASK,
  PCI_TPH_CAP_ST_MASK,
  PCI_TPH_CAP_ST_SHIFT,
  PCI_TPH_LOC_CAP,
  PCI_VC_CAP1_EVCC,
  PCI_VC_CAP2_128_PHASE,
  PCI_VC_CAP2_32_PHASE,
  PCI_VC_CAP2_64_PHASE,
  PCI_VC_PORT_CAP1,
  PCI_VC_PORT_CAP2,
  PCI_VNDR_HEADER,
  PCI_X_CMD,
  pciVndrHeaderLen,
  pciXCmdVersion,
} from '../../platform/pci-regs.js';

/*
 * Which capabilities vfio-pci shows the user, and how long each one is.
 * A length of 0 hides the capability: it is unlinked from the chain the
 * user walks and its registers fall back to raw access. VARIABLE means the
 * length is read off the capability's own registers. These are vfio's own
 * tables, not what the hardware implements: vfio hides capabilities that
 * only the host may drive (SR-IOV's siblings like MR-IOV, PASID) or that
 * belong to bridges. Register offsets and sizes are pci_regs.h's, from
 * platform/pci-regs.ts.
 */

export const VARIABLE = 0xff;

/** The fake id vfio gives the standard header in its map (no real capability has id 0). */
export const PCI_CAP_ID_BASIC = 0;

/** Standard capabilities vfio exposes, by id; ids not listed (or beyond the table) are hidden. */
const capLength: ReadonlyMap<number, number> = new Map([
  [PCI_CAP_ID_BASIC, PCI_STD_HEADER_SIZEOF],
  [PCI_CAP_ID_PM, PCI_PM_SIZEOF],
  [PCI_CAP_ID_AGP, PCI_AGP_SIZEOF],
  [PCI_CAP_ID_VPD, PCI_CAP_VPD_SIZEOF],
  [PCI_CAP_ID_MSI, VARIABLE],
  [PCI_CAP_ID_PCIX, VARIABLE],
  [PCI_CAP_ID_HT, VARIABLE],
  [PCI_CAP_ID_VNDR, VARIABLE],
  [PCI_CAP_ID_EXP, VARIABLE],
  [PCI_CAP_ID_MSIX, PCI_CAP_MSIX_SIZEOF],
  [PCI_CAP_ID_SATA, VARIABLE],
  [PCI_CAP_ID_AF, PCI_CAP_AF_SIZEOF],
]);

/** Extended capabilities vfio exposes; AER is cut before the root-port-only registers. */
const extCapLength: ReadonlyMap<number, number> = new Map([
  [PCI_EXT_CAP_ID_ERR, PCI_ERR_ROOT_COMMAND],
  [PCI_EXT_CAP_ID_VC, VARIABLE],
  [PCI_EXT_CAP_ID_DSN, PCI_EXT_CAP_DSN_SIZEOF],
  [PCI_EXT_CAP_ID_PWR, PCI_EXT_CAP_PWR_SIZEOF],
  [PCI_EXT_CAP_ID_MFVC, VARIABLE],
  [PCI_EXT_CAP_ID_VC9, VARIABLE],
  [PCI_EXT_CAP_ID_VNDR, VARIABLE],
  [PCI_EXT_CAP_ID_ACS, VARIABLE],
  [PCI_EXT_CAP_ID_ARI, PCI_EXT_CAP_ARI_SIZEOF],
  [PCI_EXT_CAP_ID_ATS, PCI_EXT_CAP_ATS_SIZEOF],
  [PCI_EXT_CAP_ID_SRIOV, PCI_EXT_CAP_SRIOV_SIZEOF],
  [PCI_EXT_CAP_ID_MCAST, PCI_EXT_CAP_MCAST_ENDPOINT_SIZEOF],
  [PCI_EXT_CAP_ID_PRI, PCI_EXT_CAP_PRI_SIZEOF],
  [PCI_EXT_CAP_ID_REBAR, VARIABLE],
  [PCI_EXT_CAP_ID_DPA, VARIABLE],
  [PCI_EXT_CAP_ID_TPH, VARIABLE],
  [PCI_EXT_CAP_ID_LTR, PCI_EXT_CAP_LTR_SIZEOF],
  [PCI_EXT_CAP_ID_DVSEC, VARIABLE],
]);

/** What sizing needs besides config reads: whether the function has 4 KiB of config space. */
export interface SizingContext {
  readonly config: ConfigReader;
  /** Set when a PCIe or PCI-X 2.0 capability shows a non-empty extended space. */
  extendedCaps: boolean;
}

/** Length vfio gives standard capability `id` at `pos`; 0 hides it. */
export function vfioCapLength(ctx: SizingContext, id: number, pos: number): number {
  if (id === 0 || id > PCI_CAP_ID_MAX) return 0;
  const len = capLength.get(id) ?? 0;
  return len === VARIABLE ? variableCapLength(ctx, id, pos) : len;
}

/** Length vfio gives extended capability `id` at `pos`; 0 hides it. */
export function vfioExtCapLength(ctx: SizingContext, id: number, pos: number): number {
  if (id > PCI_EXT_CAP_ID_MAX) return 0;
  const len = extCapLength.get(id) ?? 0;
  return len === VARIABLE ? variableExtCapLength(ctx.config, id, pos) : len;
}

function noteExtendedSpace(ctx: SizingContext): void {
  if (ctx.config.size > 256) ctx.extendedCaps = ctx.config.read(256, 4) !== 0;
}

function variableCapLength(ctx: SizingContext, id: number, pos: number): number {
  const { config } = ctx;
  switch (id) {
    case PCI_CAP_ID_MSI:
      return msiRegisters(config.read(pos + PCI_MSI_FLAGS, 2)).length;
    case PCI_CAP_ID_PCIX: {
      if (pciXCmdVersion(config.read(pos + PCI_X_CMD, 2)) === 0) return PCI_CAP_PCIX_SIZEOF_V0;
      noteExtendedSpace(ctx);
      return PCI_CAP_PCIX_SIZEOF_V2;
    }
    case PCI_CAP_ID_VNDR:
      return config.read(pos + PCI_CAP_FLAGS, 1);
    case PCI_CAP_ID_EXP: {
      noteExtendedSpace(ctx);
      const flags = config.read(pos + PCI_EXP_FLAGS, 2);
      const rcEnd = (flags & PCI_EXP_FLAGS_TYPE) >> 4 === PCI_EXP_TYPE_RC_END;
      // An integrated endpoint has no link registers.
      if ((flags & PCI_EXP_FLAGS_VERS) === 1) return rcEnd ? PCI_CAP_EXP_RC_ENDPOINT_SIZEOF_V1 : PCI_CAP_EXP_ENDPOINT_SIZEOF_V1;
      return rcEnd ? PCI_CAP_EXP_RC_ENDPOINT_SIZEOF_V2 : PCI_CAP_EXP_ENDPOINT_SIZEOF_V2;
    }
    case PCI_CAP_ID_HT:
      // The capability type is the high byte of the flags.
      return config.read(pos + PCI_CAP_FLAGS + 1, 1) & HT_3BIT_CAP_MASK ? HT_CAP_SIZEOF_SHORT : HT_CAP_SIZEOF_LONG;
    case PCI_CAP_ID_SATA:
      return (config.read(pos + PCI_SATA_REGS, 1) & PCI_SATA_REGS_MASK) === PCI_SATA_REGS_INLINE
        ? PCI_SATA_SIZEOF_LONG
        : PCI_SATA_SIZEOF_SHORT;
    default:
      return 0;
  }
}

function variableExtCapLength(config: ConfigReader, id: number, pos: number): number {
  switch (id) {
    case PCI_EXT_CAP_ID_VNDR:
      return pciVndrHeaderLen(config.read(pos + PCI_VNDR_HEADER, 4));
    case PCI_EXT_CAP_ID_VC:
    case PCI_EXT_CAP_ID_VC9:
    case PCI_EXT_CAP_ID_MFVC:
      return vcCapLength(config, pos);
    case PCI_EXT_CAP_ID_ACS: {
      if (!(config.read(pos + PCI_ACS_CAP, 1) & PCI_ACS_EC)) return 8;
      const egress = config.read(pos + PCI_ACS_EGRESS_BITS, 1);
      const bits = egress ? Math.ceil(egress / 32) * 32 : 256;
      return 8 + bits / 8;
    }
    case PCI_EXT_CAP_ID_REBAR: {
      const nbar = (config.read(pos + PCI_REBAR_CTRL, 1) & PCI_REBAR_CTRL_NBAR_MASK) >> PCI_REBAR_CTRL_NBAR_SHIFT;
      return 4 + nbar * 8;
    }
    case PCI_EXT_CAP_ID_DPA:
      return PCI_DPA_BASE_SIZEOF + (config.read(pos + PCI_DPA_CAP, 1) & PCI_DPA_CAP_SUBSTATE_MASK) + 1;
    case PCI_EXT_CAP_ID_TPH: {
      const cap = config.read(pos + PCI_TPH_CAP, 4);
      if ((cap & PCI_TPH_CAP_LOC_MASK) !== PCI_TPH_LOC_CAP) return PCI_TPH_BASE_SIZEOF;
      const sts = (cap & PCI_TPH_CAP_ST_MASK) >>> PCI_TPH_CAP_ST_SHIFT;
      return PCI_TPH_BASE_SIZEOF + sts * 2 + 2;
    }
    case PCI_EXT_CAP_ID_DVSEC:
      return config.read(pos + PCI_DVSEC_HEADER1, 4) >>> 20;
    default:
      return 0;
  }
}

/**
 * Virtual Channel (and MFVC) extent: the port registers, one block per VC,
 * then the VC arbitration table when a phase count is supported. The port
 * and function arbitration tables are never writable, so their size does
 * not matter.
 */
function vcCapLength(config: ConfigReader, pos: number): number {
  const evcc = config.read(pos + PCI_VC_PORT_CAP1, 4) & PCI_VC_CAP1_EVCC;
  const cap2 = config.read(pos + PCI_VC_PORT_CAP2, 4);
  const phases = cap2 & PCI_VC_CAP2_128_PHASE ? 128 : cap2 & PCI_VC_CAP2_64_PHASE ? 64 : cap2 & PCI_VC_CAP2_32_PHASE ? 32 : 0;
  let len = PCI_CAP_VC_BASE_SIZEOF + (1 + evcc) * PCI_CAP_VC_PER_VC_SIZEOF;
  const vcArb = phases * 4;
  if (vcArb) len = Math.ceil(len / 16) * 16 + vcArb / 8;
  return len;
}
