import type { ConfigAccessSize } from '../../platform/config-space.js';
import { PCI_CAP_FLAGS, PCI_CAP_LIST_ID, PCI_CAP_LIST_NEXT, PCI_CFG_SPACE_SIZE, PCI_STD_HEADER_SIZEOF } from '../../platform/pci-regs.js';
import type { VfioPciCoreDevice } from '../vfio-pci-core-device.js';
import { fullMask, gatherBits, PermBits, scatterBits } from './perm-bits.js';

/*
 * The access functions perm tables are built from (vfio_default_config_read
 * and friends). Values are little-endian numbers of 1, 2 or 4 bytes; the
 * function's own registers are reached with config cycles, the way
 * pci_user_read_config_* reaches them.
 */

/** A config read cycle to the function. */
export function physRead(vdev: VfioPciCoreDevice, pos: number, count: number): number {
  return vdev.pdev.config.read(pos, count as ConfigAccessSize);
}

/** A config write cycle to the function. */
export function physWrite(vdev: VfioPciCoreDevice, pos: number, count: number, value: number): void {
  vdev.pdev.config.write(pos, count as ConfigAccessSize, value >>> 0);
}

/** The shadow's bytes at `pos`. */
export function shadowRead(vdev: VfioPciCoreDevice, pos: number, count: number): number {
  return gatherBits(vdev.vconfig, pos, count);
}

export function shadowWrite(vdev: VfioPciCoreDevice, pos: number, count: number, value: number): void {
  scatterBits(vdev.vconfig, pos, count, value);
}

/** Virtual bits from the shadow, the rest from the function (read the function only when some bit is not virtual). */
export const defaultRead = (vdev: VfioPciCoreDevice, pos: number, count: number, perm: PermBits, offset: number): number => {
  const shadow = shadowRead(vdev, pos, count);
  const virt = perm.virtBits(offset, count);
  if (virt === fullMask(count)) return shadow;
  const phys = physRead(vdev, pos, count);
  return ((phys & ~virt) | (shadow & virt)) >>> 0;
};

/**
 * Writable bits only: the virtual ones into the shadow, the others into the
 * function with a read-modify-write that keeps its non-writable bits. A
 * chunk with no writable bit is dropped without touching the function.
 */
export const defaultWrite = (vdev: VfioPciCoreDevice, pos: number, count: number, perm: PermBits, offset: number, value: number): void => {
  const write = perm.writeBits(offset, count);
  if (!write) return;
  const virt = perm.virtBits(offset, count);
  const toShadow = write & virt;
  if (toShadow) {
    const shadow = shadowRead(vdev, pos, count);
    shadowWrite(vdev, pos, count, (shadow & ~toShadow) | (value & toShadow));
  }
  const toDevice = (write & ~virt) >>> 0;
  if (toDevice) {
    const phys = physRead(vdev, pos, count);
    physWrite(vdev, pos, count, (phys & ~toDevice) | (value & toDevice));
  }
};

/**
 * Straight from the function, except the bytes that chain capabilities:
 * the id and next pointer of a standard capability and the whole header
 * dword of an extended one come from the shadow, where hidden
 * capabilities have been unlinked.
 */
export const directRead = (vdev: VfioPciCoreDevice, pos: number, count: number, _perm: PermBits, offset: number): number => {
  const phys = physRead(vdev, pos, count);
  let shadowBytes = 0;
  if (pos >= PCI_CFG_SPACE_SIZE) {
    if (offset < 4) shadowBytes = fullMask(count);
  } else if (pos >= PCI_STD_HEADER_SIZEOF) {
    if (offset === PCI_CAP_LIST_ID && count > 1) shadowBytes = fullMask(Math.min(PCI_CAP_FLAGS, count));
    else if (offset === PCI_CAP_LIST_NEXT) shadowBytes = 0xff;
  }
  if (!shadowBytes) return phys;
  return ((phys & ~shadowBytes) | (shadowRead(vdev, pos, count) & shadowBytes)) >>> 0;
};

/** The function's own bytes, unfiltered (gaps between capabilities; vendor-specific capabilities). */
export const rawRead = (vdev: VfioPciCoreDevice, pos: number, count: number): number => physRead(vdev, pos, count);

export const rawWrite = (vdev: VfioPciCoreDevice, pos: number, count: number, _perm: PermBits, _offset: number, value: number): void =>
  physWrite(vdev, pos, count, value);

/** The shadow only; the function is never touched (capabilities that exist only in the shadow). */
export const virtRead = (vdev: VfioPciCoreDevice, pos: number, count: number): number => shadowRead(vdev, pos, count);

export const virtWrite = (vdev: VfioPciCoreDevice, pos: number, count: number, _perm: PermBits, _offset: number, value: number): void =>
  shadowWrite(vdev, pos, count, value);
