import { SimError } from '../../errors/index.js';
import type { BarAccessSize } from '../../platform/bar-memory.js';
import { PCI_ROM_ADDRESS, PCI_ROM_ADDRESS_ENABLE } from '../../platform/pci-regs.js';
import { VFIO_PCI_ROM_REGION_INDEX } from '../../uapi/index.js';
import { vfioPciMemoryEnabled } from '../memory.js';
import type { VfioPciCoreDevice } from '../vfio-pci-core-device.js';

/** Something vfio reads and writes with MMIO-style accesses: a BAR, the ROM, legacy VGA space. */
export interface VfioPciIo {
  read(offset: bigint, size: BarAccessSize): bigint;
  write(offset: bigint, size: BarAccessSize, value: bigint): void;
}

/** The function's BAR `bar` as the host maps it. */
export function barIo(vdev: VfioPciCoreDevice, bar: number): VfioPciIo {
  const { pdev } = vdev;
  return {
    read: (offset, size) => pdev.readBar(bar, offset, size),
    write: (offset, size, value) => pdev.writeBar(bar, offset, size, value),
  };
}

/**
 * vfio_pci_core_ioread* / iowrite*: one access, refused with EIO while the
 * user has memory decode off (when `testMem`: memory BARs only).
 */
function checkMemory(vdev: VfioPciCoreDevice, testMem: boolean): void {
  if (testMem && !vfioPciMemoryEnabled(vdev)) {
    throw new SimError('IO_ERROR', `${vdev.name}: memory decode is disabled`);
  }
}

/**
 * vfio_pci_core_do_io_rw: an access of `buf.length` bytes at `offset`,
 * split into the widest naturally aligned accesses up to `maxWidth`. The
 * excluded range [xStart, xEnd) — the MSI-X table, or the part of a ROM BAR
 * past the ROM image — reads as 0xff and drops writes. The first failing
 * access fails the whole call. Returns the bytes done.
 */
export function vfioPciCoreDoIoRw(
  vdev: VfioPciCoreDevice,
  testMem: boolean,
  io: VfioPciIo,
  buf: Uint8Array,
  offset: bigint,
  xStart: bigint,
  xEnd: bigint,
  write: boolean,
  maxWidth: BarAccessSize,
): number {
  let done = 0;
  let off = offset;
  while (done < buf.length) {
    const count = BigInt(buf.length - done);
    let fillable: bigint;
    if (off < xStart) fillable = count < xStart - off ? count : xStart - off;
    else if (off >= xEnd) fillable = count;
    else fillable = 0n;

    let width: BarAccessSize | 0 = 0;
    if (fillable >= 8n && off % 8n === 0n && maxWidth >= 8) width = 8;
    else if (fillable >= 4n && off % 4n === 0n && maxWidth >= 4) width = 4;
    else if (fillable >= 2n && off % 2n === 0n && maxWidth >= 2) width = 2;
    else if (fillable) width = 1;

    let filled: number;
    if (width) {
      checkMemory(vdev, testMem);
      if (write) {
        let value = 0n;
        for (let i = width - 1; i >= 0; i--) value = (value << 8n) | BigInt(buf[done + i]!);
        io.write(off, width, value);
      } else {
        const value = io.read(off, width);
        for (let i = 0; i < width; i++) buf[done + i] = Number((value >> BigInt(8 * i)) & 0xffn);
      }
      filled = width;
    } else {
      const left = xEnd - off;
      filled = Number(count < left ? count : left);
      if (!write) buf.fill(0xff, done, done + filled);
    }
    done += filled;
    off += BigInt(filled);
  }
  return done;
}

/** Bytes of ROM images, as pci_get_rom_size walks them: each starts 0x55 0xaa and points to a "PCIR" structure with its length. */
function romImageSize(read: (offset: number) => number, limit: number): number {
  let image = 0;
  for (;;) {
    if (image + 0x1a > limit || read(image) !== 0x55 || read(image + 1) !== 0xaa) break;
    const pds = image + (read(image + 0x18) | (read(image + 0x19) << 8));
    if (pds + 0x16 > limit) break;
    if (read(pds) !== 0x50 || read(pds + 1) !== 0x43 || read(pds + 2) !== 0x49 || read(pds + 3) !== 0x52) break;
    const length = read(pds + 0x10) | (read(pds + 0x11) << 8);
    const last = (read(pds + 0x15) & 0x80) !== 0;
    image += length * 512;
    if (last || !length) break;
  }
  return Math.min(image, limit);
}

/**
 * pci_map_rom: enables the ROM BAR at the host's address, checks that an
 * image is there and returns its size, with the ROM left enabled for the
 * caller to read; null (ROM disabled again) when no valid image answers —
 * which is also what a read with memory decode off finds.
 */
export function pciMapRom(vdev: VfioPciCoreDevice): { readonly size: number; unmap(): void } | null {
  const { pdev } = vdev;
  const rom = pdev.rom;
  if (!rom || rom.address === 0n) return null;
  const saved = pdev.config.read(PCI_ROM_ADDRESS, 4);
  pdev.config.write(PCI_ROM_ADDRESS, 4, Number(rom.address & 0xfffff800n) | PCI_ROM_ADDRESS_ENABLE);
  const unmap = () => pdev.config.write(PCI_ROM_ADDRESS, 4, saved & ~PCI_ROM_ADDRESS_ENABLE);
  const size = romImageSize((offset) => Number(pdev.readRom(BigInt(offset), 1)), Number(rom.size));
  if (!size) {
    unmap();
    return null;
  }
  return { size, unmap };
}

/**
 * vfio_pci_bar_rw: a BAR or the ROM through the device file. The access is
 * clipped to the BAR; the MSI-X table is excluded (reads 0xff, writes
 * dropped) since vfio owns it; memory BARs need the user's memory decode
 * (EIO). The ROM is read in dwords at most, with the space past its image
 * reading 0xff, and ENOMEM when no ROM image answers. EINVAL for a BAR the
 * host did not assign or an offset past its end.
 */
export function vfioPciBarRw(vdev: VfioPciCoreDevice, bar: number, pos: bigint, buf: Uint8Array, write: boolean): number {
  const { pdev } = vdev;
  const isRom = bar === VFIO_PCI_ROM_REGION_INDEX;
  const resource = isRom ? pdev.rom : pdev.bars[bar];
  if (!resource || resource.address === 0n) throw new SimError('INVALID_ARGUMENT', `${vdev.name}: region ${bar} is not assigned`);
  const end = resource.size;
  if (pos >= end) throw new SimError('INVALID_ARGUMENT', `${vdev.name}: offset 0x${pos.toString(16)} is past region ${bar}`);
  const count = end - pos < BigInt(buf.length) ? Number(end - pos) : buf.length;
  const view = buf.subarray(0, count);

  if (isRom) {
    const mapped = pciMapRom(vdev);
    if (!mapped) throw new SimError('OUT_OF_MEMORY', `${vdev.name}: the ROM cannot be mapped`);
    try {
      const io: VfioPciIo = { read: (offset, size) => pdev.readRom(offset, size), write: () => undefined };
      return vfioPciCoreDoIoRw(vdev, true, io, view, pos, BigInt(mapped.size), end, false, 4);
    } finally {
      mapped.unmap();
    }
  }

  let xStart = 0n;
  let xEnd = 0n;
  if (bar === vdev.msixBar) {
    xStart = BigInt(vdev.msixOffset);
    xEnd = BigInt(vdev.msixOffset + vdev.msixSize);
  }
  const testMem = pdev.bars[bar]!.kind !== 'io';
  return vfioPciCoreDoIoRw(vdev, testMem, barIo(vdev, bar), view, pos, xStart, xEnd, write, 8);
}
