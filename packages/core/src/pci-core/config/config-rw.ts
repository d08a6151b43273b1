import { SimError } from '../../errors/index.js';
import { PCI_CAP_ID_MAX, PCI_CAP_ID_MSI, PCI_CFG_SPACE_SIZE, PCI_EXT_CAP_ID_MAX } from '../../platform/pci-regs.js';
import type { VfioPciCoreDevice } from '../vfio-pci-core-device.js';
import { rawRead, rawWrite, virtRead, virtWrite } from './access.js';
import { PCI_CAP_ID_BASIC } from './cap-lengths.js';
import { capPerms, directReadOnly, ecapPerms } from './capabilities.js';
import { capRemainingDword, findCapStart, PCI_CAP_ID_FIRST_HIDDEN, PCI_CAP_ID_INVALID, PCI_CAP_ID_INVALID_VIRT } from './config-map.js';
import { basicPerms } from './header.js';
import { gatherBits, PermBits, scatterBits } from './perm-bits.js';

/** Gaps between capabilities and the bodies of hidden ones: the function's bytes, unfiltered (some devices keep registers there). */
const unassignedPerms = new PermBits(0, rawRead, rawWrite);
/** Shadow-only bytes without a table of their own. */
const virtPerms = new PermBits(0, virtRead, virtWrite);
const headerPerms = basicPerms();

/** The permissions that govern the chunk at `pos`, and where its capability starts. */
function permsAt(vdev: VfioPciCoreDevice, pos: number): { perm: PermBits; capStart: number } {
  const capId = vdev.configMap[pos]!;
  if (capId === PCI_CAP_ID_INVALID) return { perm: unassignedPerms, capStart: pos };
  if (capId === PCI_CAP_ID_INVALID_VIRT) {
    const capStart = findCapStart(vdev, pos);
    return { perm: vdev.virtualCapPerms.get(capStart) ?? virtPerms, capStart };
  }
  if (capId === PCI_CAP_ID_FIRST_HIDDEN) return { perm: directReadOnly, capStart: PCI_CFG_SPACE_SIZE };
  if (pos >= PCI_CFG_SPACE_SIZE) {
    const perm = capId > PCI_EXT_CAP_ID_MAX ? directReadOnly : (ecapPerms.get(capId) ?? directReadOnly);
    return { perm, capStart: findCapStart(vdev, pos) };
  }
  if (capId === PCI_CAP_ID_BASIC) return { perm: headerPerms, capStart: 0 };
  const perm = capId === PCI_CAP_ID_MSI ? vdev.msiPerm! : capId > PCI_CAP_ID_MAX ? directReadOnly : (capPerms.get(capId) ?? directReadOnly);
  return { perm, capStart: findCapStart(vdev, pos) };
}

/**
 * One chunk of a config access (vfio_config_do_rw): the access is cut at
 * the end of the dword and at the end of the capability, then to the
 * largest naturally aligned size that fits. Returns the chunk's length.
 */
function configChunk(vdev: VfioPciCoreDevice, buf: Uint8Array, at: number, pos: number, remaining: number, write: boolean): number {
  const size = vdev.pdev.cfgSize;
  if (pos < 0 || pos >= size || pos + remaining > size) {
    throw new SimError('BAD_ADDRESS', `${vdev.name}: config access of ${remaining} bytes at 0x${pos.toString(16)} is outside ${size} bytes of config space`);
  }
  const fits = Math.min(remaining, capRemainingDword(vdev, pos));
  const count = fits >= 4 && pos % 4 === 0 ? 4 : fits >= 2 && pos % 2 === 0 ? 2 : 1;
  const { perm, capStart } = permsAt(vdev, pos);
  const offset = pos - capStart;
  const hooks = vdev.hooks;

  if (write) {
    const value = gatherBits(buf, at, count);
    const intercept = hooks.configWrite.get(pos & ~3);
    if (intercept?.isUsed() && intercept.call({ vdev, offset: pos, size: count as 1 | 2 | 4, value }) === true) return count;
    perm.write?.(vdev, pos, count, perm, offset, value);
    return count;
  }

  let value = perm.read ? perm.read(vdev, pos, count, perm, offset) : 0;
  if (hooks.configRead.isUsed()) value = hooks.configRead.call(value, { vdev, offset: pos, size: count as 1 | 2 | 4 }) >>> 0;
  scatterBits(buf, at, count, value);
  return count;
}

/**
 * vfio_pci_config_rw: a read or write of the config region at `pos`,
 * chunk by chunk. The first failing chunk fails the whole access (what the
 * earlier chunks did stays done, as in the kernel). For a read, `buf`
 * receives the bytes; for a write it holds them. Returns the byte count.
 */
export function vfioPciConfigRw(vdev: VfioPciCoreDevice, buf: Uint8Array, pos: number, write: boolean): number {
  let done = 0;
  while (done < buf.length) done += configChunk(vdev, buf, done, pos + done, buf.length - done, write);
  return done;
}

/**
 * vfio_pci_core_range_intersect_range: how a user access [bufStart,
 * bufStart + bufCount) overlaps a register [regStart, regStart + regCount);
 * null when it does not. Variant drivers use it to find the part of a
 * config or region access that hits a register they emulate.
 */
export function vfioPciCoreRangeIntersectRange(
  bufStart: number,
  bufCount: number,
  regStart: number,
  regCount: number,
): { bufOffset: number; count: number; registerOffset: number } | null {
  if (bufStart <= regStart && bufStart + bufCount > regStart) {
    return { bufOffset: regStart - bufStart, count: Math.min(regCount, bufStart + bufCount - regStart), registerOffset: 0 };
  }
  if (bufStart > regStart && bufStart < regStart + regCount) {
    return { bufOffset: 0, count: Math.min(bufCount, regStart + regCount - bufStart), registerOffset: bufStart - regStart };
  }
  return null;
}
