import { PCI_CFG_SPACE_SIZE, PCI_STD_HEADER_SIZEOF } from '../../platform/pci-regs.js';
import type { VfioPciCoreDevice } from '../vfio-pci-core-device.js';
import { PCI_CAP_ID_BASIC } from './cap-lengths.js';

/*
 * The config map gives, for every byte of config space, the capability it
 * belongs to: PCI_CAP_ID_BASIC (0) for the standard header, a capability
 * id for exposed capabilities, or one of these markers. Extended ids are
 * stored in the same byte; every id vfio exposes is below the markers.
 */

/** Not part of any exposed capability: raw access to the function (gaps, hidden capabilities' bodies). */
export const PCI_CAP_ID_INVALID = 0xff;
/** Exists only in the shadow: a capability a variant driver declared. */
export const PCI_CAP_ID_INVALID_VIRT = 0xfe;
/** The placeholder header left where a hidden capability opened the extended list. */
export const PCI_CAP_ID_FIRST_HIDDEN = 0xfd;

/**
 * Start of the capability `pos` belongs to: walk back while the map shows
 * the same id, not below the start of the capability area.
 */
export function findCapStart(vdev: VfioPciCoreDevice, pos: number): number {
  const map = vdev.configMap;
  const cap = map[pos];
  if (cap === PCI_CAP_ID_BASIC && pos < PCI_STD_HEADER_SIZEOF) return 0;
  const base = pos >= PCI_CFG_SPACE_SIZE ? PCI_CFG_SPACE_SIZE : PCI_STD_HEADER_SIZEOF;
  let start = pos;
  while (start - 1 >= base && map[start - 1] === cap) start--;
  return start;
}

/** Bytes from `pos` to the end of its dword that belong to the same capability (at least 1). */
export function capRemainingDword(vdev: VfioPciCoreDevice, pos: number): number {
  const map = vdev.configMap;
  const cap = map[pos];
  let i = 1;
  while ((pos + i) % 4 && map[pos + i] === cap) i++;
  return i;
}
