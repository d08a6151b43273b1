import type { ConfigReader } from '../../platform/capabilities/layout.js';
import {
  PCI_ACS_CAP,
  PCI_ACS_EC,
  PCI_ACS_EGRESS_BITS,
  PCI_CAP_AF_SIZEOF,
  PCI_CAP_EXP_ENDPOINT_SIZEOF_V1,
  PCI_CAP_EXP_ENDPOINT_SIZEOF_V2,
  PCI_CAP_FLAGS,
  PCI_CAP_ID_AF,
  PCI_CAP_ID_AGP,
  PCI_CAP_ID_EXP,
  PCI_CAP_ID_HT,
  PCI_CAP_ID_MSI,
  PCI_CAP_ID_MSIX,
  PCI_CAP_ID_PCIX,
  PCI_CAP_ID_PM,
  PCI_CAP_ID_SATA,
  PCI_CAP_ID_VNDR,
  PCI_CAP_ID_VPD,
  PCI_CAP_MSIX_SIZEOF,
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
  PCI_EXT_CAP_ID_DSN,
  PCI_EXT_CAP_ID_DVSEC,
  PCI_EXT_CAP_ID_ERR,
  PCI_EXT_CAP_ID_LTR,
  PCI_EXT_CAP_ID_MFVC,
  PCI_EXT_CAP_ID_PRI,
  PCI_EXT_CAP_ID_SRIOV,
  PCI_EXT_CAP_ID_VC,
  PCI_EXT_CAP_ID_VC9,
  PCI_EXT_CAP_ID_VNDR,
  PCI_EXT_CAP_LTR_SIZEOF,
  PCI_EXT_CAP_PRI_SIZEOF,
  PCI_EXT_CAP_SRIOV_SIZEOF,
  PCI_MSI_FLAGS,
  PCI_MSI_FLAGS_64BIT,
  PCI_MSI_FLAGS_MASKBIT,
  PCI_PM_SIZEOF,
} from '../../platform/pci-regs.js';

/*
 * Which capabilities vfio-pci shows the user, and how long each one is.
 * A length of 0 hides the capability: it is unlinked from the chain the
 * user walks and its registers fall back to raw access. VARIABLE means the
 * length is read off the capability's own registers. These are vfio's own
 * tables, not what the hardware implements: vfio hides capabilities that
 * only the host may drive (SR-IOV's siblings like MR-IOV, PASID) or that
 * belong to bridges.
 */

export const VARIABLE = 0xff;

/** The fake id vfio gives the standard header in its map (no real capability has id 0). */
export const PCI_CAP_ID_BASIC = 0;
/** PCI_CAP_ID_MAX of the kernel's table (Enhanced Allocation, which vfio hides). */
export const VFIO_PCI_CAP_ID_MAX = 0x14;
/** PCI_EXT_CAP_ID_MAX of the kernel's table (Physical Layer 64.0 GT/s). */
export const VFIO_PCI_EXT_CAP_ID_MAX = 0x31;

/** Power Budgeting: the platform does not build it, but vfio sizes and filters it. */
export const PCI_EXT_CAP_ID_PWR = 0x04;
/** Power Budgeting Data register (pci_regs.h PCI_PWR_DATA). */
export const PCI_PWR_DATA = 0x08;

/* Registers and sizes of capabilities the platform does not build; pci_regs.h values. */
const PCI_AGP_SIZEOF = 12;
const PCI_CAP_VPD_SIZEOF = 8;
const PCI_X_CMD = 2;
const PCI_CAP_PCIX_SIZEOF_V0 = 8;
const PCI_CAP_PCIX_SIZEOF_V2 = 24;
const HT_3BIT_CAP_MASK = 0xe0;
const HT_CAP_SIZEOF_SHORT = 24;
const HT_CAP_SIZEOF_LONG = 28;
const PCI_SATA_REGS = 4;
const PCI_SATA_REGS_MASK = 0xf;
const PCI_SATA_REGS_INLINE = 0xf;
const PCI_SATA_SIZEOF_SHORT = 8;
const PCI_SATA_SIZEOF_LONG = 16;
const PCI_EXT_CAP_PWR_SIZEOF = 16;
const PCI_EXT_CAP_MCAST_ENDPOINT_SIZEOF = 40;
const PCI_EXT_CAP_ID_MCAST = 0x12;
const PCI_EXT_CAP_ID_REBAR = 0x15;
const PCI_EXT_CAP_ID_DPA = 0x16;
const PCI_EXT_CAP_ID_TPH = 0x17;
const PCI_VC_PORT_CAP1 = 4;
const PCI_VC_CAP1_EVCC = 0x7;
const PCI_VC_PORT_CAP2 = 8;
const PCI_VC_CAP2_32_PHASE = 0x2;
const PCI_VC_CAP2_64_PHASE = 0x4;
const PCI_VC_CAP2_128_PHASE = 0x8;
const PCI_CAP_VC_BASE_SIZEOF = 0x10;
const PCI_CAP_VC_PER_VC_SIZEOF = 0x0c;
const PCI_VNDR_HEADER = 4;
const PCI_REBAR_CTRL = 8;
const PCI_REBAR_CTRL_NBAR_MASK = 0xe0;
const PCI_REBAR_CTRL_NBAR_SHIFT = 5;
const PCI_DPA_CAP = 4;
const PCI_DPA_CAP_SUBSTATE_MASK = 0x1f;
const PCI_DPA_BASE_SIZEOF = 16;
const PCI_TPH_CAP = 4;
const PCI_TPH_CAP_LOC_MASK = 0x600;
const PCI_TPH_LOC_CAP = 0x200;
const PCI_TPH_CAP_ST_MASK = 0x07ff0000;
const PCI_TPH_CAP_ST_SHIFT = 16;
const PCI_TPH_BASE_SIZEOF = 0xc;
const PCI_DVSEC_HEADER1 = 4;

/** Standard capabilities vfio exposes, by id; ids not listed (or beyond the table) are hidden. */
const capLength: ReadonlyMap<number, number> = new Map([
  [PCI_CAP_ID_BASIC, 64],
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
  if (id === 0 || id > VFIO_PCI_CAP_ID_MAX) return 0;
  const len = capLength.get(id) ?? 0;
  return len === VARIABLE ? variableCapLength(ctx, id, pos) : len;
}

/** Length vfio gives extended capability `id` at `pos`; 0 hides it. */
export function vfioExtCapLength(ctx: SizingContext, id: number, pos: number): number {
  if (id > VFIO_PCI_EXT_CAP_ID_MAX) return 0;
  const len = extCapLength.get(id) ?? 0;
  return len === VARIABLE ? variableExtCapLength(ctx.config, id, pos) : len;
}

/** The MSI capability's extent from its flags: 10, 14, 20 or 24 bytes. */
export function msiCapLength(flags: number): number {
  return 10 + (flags & PCI_MSI_FLAGS_64BIT ? 4 : 0) + (flags & PCI_MSI_FLAGS_MASKBIT ? 10 : 0);
}

function noteExtendedSpace(ctx: SizingContext): void {
  if (ctx.config.size > 256) ctx.extendedCaps = ctx.config.read(256, 4) !== 0;
}

function variableCapLength(ctx: SizingContext, id: number, pos: number): number {
  const { config } = ctx;
  switch (id) {
    case PCI_CAP_ID_MSI:
      return msiCapLength(config.read(pos + PCI_MSI_FLAGS, 2));
    case PCI_CAP_ID_PCIX: {
      const cmd = config.read(pos + PCI_X_CMD, 2);
      if (((cmd >> 12) & 3) === 0) return PCI_CAP_PCIX_SIZEOF_V0;
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
      if ((flags & PCI_EXP_FLAGS_VERS) === 1) return rcEnd ? 0x0c : PCI_CAP_EXP_ENDPOINT_SIZEOF_V1;
      return rcEnd ? 0x2c : PCI_CAP_EXP_ENDPOINT_SIZEOF_V2;
    }
    case PCI_CAP_ID_HT:
      return config.read(pos + 3, 1) & HT_3BIT_CAP_MASK ? HT_CAP_SIZEOF_SHORT : HT_CAP_SIZEOF_LONG;
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
      return config.read(pos + PCI_VNDR_HEADER, 4) >>> 20;
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
