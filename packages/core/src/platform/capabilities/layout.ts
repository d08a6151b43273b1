import type { ConfigAccessSize } from '../config-space.js';
import {
  PCI_ACS_CAP,
  PCI_ACS_EC,
  PCI_ACS_EGRESS_BITS,
  PCI_AF_LENGTH,
  PCI_CAPABILITY_LIST,
  PCI_CAP_ID_AF,
  PCI_CAP_ID_EXP,
  PCI_CAP_ID_MSI,
  PCI_CAP_ID_MSIX,
  PCI_CAP_ID_PM,
  PCI_CAP_ID_VNDR,
  PCI_CAP_FLAGS,
  PCI_CAP_ID_VPD,
  PCI_CAP_LIST_NEXT,
  PCI_CAP_MSIX_SIZEOF,
  PCI_CAP_VPD_SIZEOF,
  PCI_CFG_SPACE_EXP_SIZE,
  PCI_CFG_SPACE_SIZE,
  PCI_EXP_FLAGS,
  PCI_EXP_FLAGS_SLOT,
  PCI_EXP_FLAGS_TYPE,
  PCI_EXP_FLAGS_VERS,
  PCI_EXP_TYPE_ROOT_PORT,
  PCI_EXT_CAP_ARI_SIZEOF,
  PCI_EXT_CAP_ATS_SIZEOF,
  PCI_EXT_CAP_DSN_SIZEOF,
  PCI_EXT_CAP_ID_ACS,
  PCI_EXT_CAP_ID_ARI,
  PCI_EXT_CAP_ID_ATS,
  PCI_EXT_CAP_ID_DSN,
  PCI_EXT_CAP_ID_ERR,
  PCI_EXT_CAP_ID_LTR,
  PCI_EXT_CAP_ID_PASID,
  PCI_EXT_CAP_ID_PRI,
  PCI_EXT_CAP_ID_SRIOV,
  PCI_EXT_CAP_ID_VNDR,
  PCI_EXT_CAP_LTR_SIZEOF,
  PCI_EXT_CAP_PASID_SIZEOF,
  PCI_EXT_CAP_PRI_SIZEOF,
  PCI_EXT_CAP_SRIOV_SIZEOF,
  PCI_MSI_FLAGS,
  PCI_PM_SIZEOF,
  PCI_STATUS,
  PCI_STATUS_CAP_LIST,
  PCI_STD_HEADER_SIZEOF,
  PCI_VNDR_HEADER,
  pciExtCapId,
  pciExtCapNext,
  pciExtCapVer,
  pciVndrHeaderLen,
} from '../pci-regs.js';
import { aerLength } from './aer.js';
import { acsLength } from './acs.js';
import type { CapabilityInfo } from './capability.js';
import { msiRegisters } from './msi.js';
import { pcieLength, PCIE_TYPE_CODE, type PcieType } from './pcie.js';

/** What the layout walkers need: config reads and the config space size. */
export interface ConfigReader {
  readonly size: number;
  read(offset: number, size: ConfigAccessSize): number;
}

/** Bound on the standard list walk, as the kernel's PCI_FIND_CAP_TTL. */
const CAP_TTL = 48;
/** Bound on the extended list walk: at least 8 bytes per capability. */
const EXT_CAP_TTL = (PCI_CFG_SPACE_EXP_SIZE - PCI_CFG_SPACE_SIZE) / 8;

/**
 * Offsets of the standard capabilities in chain order, walked like the
 * kernel: only when Status has CAP_LIST, stopping at a pointer below 0x40 or
 * an id of 0xff (what an absent function reads), with the pointer's low two
 * bits ignored.
 */
export function capabilityOffsets(config: ConfigReader): number[] {
  const found: number[] = [];
  if (!(config.read(PCI_STATUS, 2) & PCI_STATUS_CAP_LIST)) return found;
  let pos = config.read(PCI_CAPABILITY_LIST, 1);
  for (let ttl = CAP_TTL; ttl > 0; ttl--) {
    if (pos < PCI_STD_HEADER_SIZEOF) break;
    pos &= ~3;
    const entry = config.read(pos, 2);
    if ((entry & 0xff) === 0xff) break;
    found.push(pos);
    pos = entry >> 8;
  }
  return found;
}

/** Offsets of the extended capabilities in chain order, starting at 0x100. */
export function extCapabilityOffsets(config: ConfigReader): number[] {
  const found: number[] = [];
  if (config.size <= PCI_CFG_SPACE_SIZE) return found;
  let pos = PCI_CFG_SPACE_SIZE;
  let header = config.read(pos, 4);
  // A header of 0 means no extended capabilities; all-ones is an absent function.
  if (header === 0 || header === 0xffffffff) return found;
  for (let ttl = EXT_CAP_TTL; ttl > 0; ttl--) {
    found.push(pos);
    pos = pciExtCapNext(header);
    if (pos < PCI_CFG_SPACE_SIZE) break;
    header = config.read(pos, 4);
    if (header === 0xffffffff) break;
  }
  return found;
}

/** pci_find_capability(): offset of the first standard capability `id`, or 0. */
export function findCapability(config: ConfigReader, id: number): number {
  for (const pos of capabilityOffsets(config)) if (config.read(pos, 1) === id) return pos;
  return 0;
}

/** pci_find_next_capability(): the next capability `id` after the one at `pos`, or 0. */
export function findNextCapability(config: ConfigReader, pos: number, id: number): number {
  const offsets = capabilityOffsets(config);
  const start = offsets.indexOf(pos);
  if (start < 0) return 0;
  for (const next of offsets.slice(start + 1)) if (config.read(next, 1) === id) return next;
  return 0;
}

/** pci_find_ext_capability(): offset of the first extended capability `id`, or 0. */
export function findExtCapability(config: ConfigReader, id: number): number {
  return findNextExtCapability(config, 0, id);
}

/** pci_find_next_ext_capability(): the next extended capability `id` after `start` (0: from the top), or 0. */
export function findNextExtCapability(config: ConfigReader, start: number, id: number): number {
  let seenStart = start === 0;
  for (const pos of extCapabilityOffsets(config)) {
    if (!seenStart) {
      seenStart = pos === start;
      continue;
    }
    if (pciExtCapId(config.read(pos, 4)) === id) return pos;
  }
  return 0;
}

/** Every standard capability with its length, in chain order. */
export function capabilities(config: ConfigReader): CapabilityInfo[] {
  return capabilityOffsets(config).map((offset) => {
    const id = config.read(offset, 1);
    return {
      kind: 'standard',
      id,
      offset,
      length: capabilityLength(config, id, offset),
      version: 0,
      next: config.read(offset + PCI_CAP_LIST_NEXT, 1),
    };
  });
}

/** Every extended capability with its length, in chain order. */
export function extCapabilities(config: ConfigReader): CapabilityInfo[] {
  return extCapabilityOffsets(config).map((offset) => {
    const header = config.read(offset, 4);
    const id = pciExtCapId(header);
    return {
      kind: 'extended',
      id,
      offset,
      length: extCapabilityLength(config, id, offset),
      version: pciExtCapVer(header),
      next: pciExtCapNext(header),
    };
  });
}

/**
 * The register extent of standard capability `id` at `offset`, derived from
 * its registers the way vfio_pci_config.c sizes variable-length capabilities
 * (MSI by its 64-bit and per-vector-mask flags, PCIe by version and type).
 * vfio-pci keeps its own table of what it exposes; this is what the
 * hardware implements. 0 for an id the model does not know.
 */
export function capabilityLength(config: ConfigReader, id: number, offset: number): number {
  switch (id) {
    case PCI_CAP_ID_PM:
      return PCI_PM_SIZEOF;
    case PCI_CAP_ID_VPD:
      return PCI_CAP_VPD_SIZEOF;
    case PCI_CAP_ID_MSI:
      return msiRegisters(config.read(offset + PCI_MSI_FLAGS, 2)).length;
    case PCI_CAP_ID_VNDR:
      return config.read(offset + PCI_CAP_FLAGS, 1);
    case PCI_CAP_ID_EXP: {
      const flags = config.read(offset + PCI_EXP_FLAGS, 2);
      const version = (flags & PCI_EXP_FLAGS_VERS) === 1 ? 1 : 2;
      const type = pcieTypeFromCode((flags & PCI_EXP_FLAGS_TYPE) >> 4);
      return type ? pcieLength(version, type, (flags & PCI_EXP_FLAGS_SLOT) !== 0) : 0;
    }
    case PCI_CAP_ID_MSIX:
      return PCI_CAP_MSIX_SIZEOF;
    case PCI_CAP_ID_AF:
      return config.read(offset + PCI_AF_LENGTH, 1);
    default:
      return 0;
  }
}

/** The register extent of extended capability `id` at `offset`; 0 for an id the model does not know. */
export function extCapabilityLength(config: ConfigReader, id: number, offset: number): number {
  switch (id) {
    case PCI_EXT_CAP_ID_ERR: {
      const exp = findCapability(config, PCI_CAP_ID_EXP);
      const type = exp ? (config.read(exp + PCI_EXP_FLAGS, 2) & PCI_EXP_FLAGS_TYPE) >> 4 : -1;
      return aerLength(type === PCI_EXP_TYPE_ROOT_PORT);
    }
    case PCI_EXT_CAP_ID_DSN:
      return PCI_EXT_CAP_DSN_SIZEOF;
    case PCI_EXT_CAP_ID_VNDR:
      return pciVndrHeaderLen(config.read(offset + PCI_VNDR_HEADER, 4));
    case PCI_EXT_CAP_ID_ACS: {
      const cap = config.read(offset + PCI_ACS_CAP, 1);
      return acsLength((cap & PCI_ACS_EC) !== 0, config.read(offset + PCI_ACS_EGRESS_BITS, 1));
    }
    case PCI_EXT_CAP_ID_ARI:
      return PCI_EXT_CAP_ARI_SIZEOF;
    case PCI_EXT_CAP_ID_ATS:
      return PCI_EXT_CAP_ATS_SIZEOF;
    case PCI_EXT_CAP_ID_SRIOV:
      return PCI_EXT_CAP_SRIOV_SIZEOF;
    case PCI_EXT_CAP_ID_PRI:
      return PCI_EXT_CAP_PRI_SIZEOF;
    case PCI_EXT_CAP_ID_LTR:
      return PCI_EXT_CAP_LTR_SIZEOF;
    case PCI_EXT_CAP_ID_PASID:
      return PCI_EXT_CAP_PASID_SIZEOF;
    default:
      return 0;
  }
}

/** The PcieType for a Device/Port Type code, or null for codes the model does not build. */
export function pcieTypeFromCode(code: number): PcieType | null {
  for (const [type, value] of Object.entries(PCIE_TYPE_CODE) as Array<[PcieType, number]>) {
    if (value === code) return type;
  }
  return null;
}

const STANDARD_NAMES: Readonly<Record<number, string>> = {
  0x01: 'Power Management',
  0x03: 'Vital Product Data',
  0x05: 'MSI',
  0x09: 'Vendor Specific',
  0x0d: 'Subsystem ID',
  0x10: 'Express',
  0x11: 'MSI-X',
  0x13: 'PCI Advanced Features',
};

const EXTENDED_NAMES: Readonly<Record<number, string>> = {
  0x01: 'Advanced Error Reporting',
  0x03: 'Device Serial Number',
  0x0b: 'Vendor Specific',
  0x0d: 'Access Control Services',
  0x0e: 'Alternative Routing-ID Interpretation',
  0x0f: 'Address Translation Service',
  0x10: 'Single Root I/O Virtualization',
  0x13: 'Page Request Interface',
  0x18: 'Latency Tolerance Reporting',
  0x1b: 'Process Address Space ID',
};

/** The name lspci gives a capability, or `[id]` when the model has none. */
export function capabilityName(info: Pick<CapabilityInfo, 'kind' | 'id'>): string {
  const table = info.kind === 'standard' ? STANDARD_NAMES : EXTENDED_NAMES;
  return table[info.id] ?? `[${info.id.toString(16).padStart(info.kind === 'standard' ? 2 : 4, '0')}]`;
}
