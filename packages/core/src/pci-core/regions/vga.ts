import { SimError } from '../../errors/index.js';
import type { VfioPciCoreDevice } from '../vfio-pci-core-device.js';
import { vfioPciCoreDoIoRw, type VfioPciIo } from './bar-rw.js';

/** The legacy VGA region: memory 0xa0000-0xbffff and ports 0x3b0-0x3bb, 0x3c0-0x3df, at their own addresses. */
export const VFIO_PCI_VGA_REGION_SIZE = 0xc0000n;

/**
 * The platform models no legacy VGA decoding, so nothing answers these
 * cycles: reads complete as all-ones and writes vanish, as a master abort
 * does on real hardware without a VGA decoder.
 */
const unclaimedVga: VfioPciIo = { read: (_offset, size) => (1n << BigInt(size * 8)) - 1n, write: () => undefined };

/**
 * vfio_pci_vga_rw: an access within one of the three legacy windows,
 * clipped to the window's end, in dwords at most. EINVAL without the VGA
 * region or outside the windows. Legacy VGA is not a BAR, so memory decode
 * is not checked.
 */
export function vfioPciVgaRw(vdev: VfioPciCoreDevice, pos: bigint, buf: Uint8Array, write: boolean): number {
  if (!vdev.hasVga) throw new SimError('INVALID_ARGUMENT', `${vdev.name} has no VGA region`);
  let end: bigint;
  let base: bigint;
  if (pos >= 0xa0000n && pos <= 0xbffffn) [base, end] = [0xa0000n, 0xc0000n];
  else if (pos >= 0x3b0n && pos <= 0x3bbn) [base, end] = [0x3b0n, 0x3bcn];
  else if (pos >= 0x3c0n && pos <= 0x3dfn) [base, end] = [0x3c0n, 0x3e0n];
  else throw new SimError('INVALID_ARGUMENT', `${vdev.name}: VGA offset 0x${pos.toString(16)} is outside the legacy windows`);
  const count = end - pos < BigInt(buf.length) ? Number(end - pos) : buf.length;
  return vfioPciCoreDoIoRw(vdev, false, unclaimedVga, buf.subarray(0, count), pos - base, 0n, 0n, write, 4);
}
