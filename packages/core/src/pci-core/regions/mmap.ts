import { SimError } from '../../errors/index.js';
import { PAGE_SIZE, type MmapRequest, type MmapTarget, type MmioBacking } from '../../os/index.js';
import type { BarAccessSize } from '../../platform/bar-memory.js';
import { VFIO_PCI_NUM_REGIONS, VFIO_PCI_ROM_REGION_INDEX, VFIO_REGION_INFO_FLAG_MMAP } from '../../uapi/index.js';
import { vfioPciMmapAccessible } from '../memory.js';
import { vfioPciOffsetToIndex, vfioPciRegionOffset } from '../offsets.js';
import type { VfioPciCoreDevice } from '../vfio-pci-core-device.js';
import { barLength } from './region-info.js';

const PAGE = BigInt(PAGE_SIZE);

/**
 * vfio_pci_probe_mmaps, at first open: a memory BAR can be mapped when it
 * spans at least a page, or when it starts on a page boundary (the host
 * then keeps the rest of that page free). I/O BARs never can.
 */
export function vfioPciProbeMmaps(vdev: VfioPciCoreDevice): void {
  for (let i = 0; i < 6; i++) {
    const bar = vdev.pdev.bars[i];
    vdev.barMmapSupported[i] = !!bar && bar.kind !== 'io' && bar.size > 0n && (bar.size >= PAGE || bar.address % PAGE === 0n);
  }
}

/**
 * The device memory behind a BAR mapping. Every access first asks whether
 * mappings are live (memory decode on, not in low power, no reset
 * running): when not, it faults — SIGBUS, reported as EFAULT — as the
 * kernel's fault handler refuses to map revoked BAR pages. Bytes of the
 * last page beyond a small BAR read as all-ones and ignore writes.
 */
function barBacking(vdev: VfioPciCoreDevice, bar: number): MmioBacking {
  const { pdev } = vdev;
  const size = barLength(vdev, bar);
  const check = (offset: bigint) => {
    if (!vfioPciMmapAccessible(vdev)) {
      throw new SimError('BAD_ADDRESS', `${vdev.name}: BAR ${bar} offset 0x${offset.toString(16)} is not accessible now (SIGBUS)`);
    }
  };
  const widthAt = (offset: bigint, left: number): BarAccessSize => {
    for (const width of [8, 4, 2] as const) if (left >= width && offset % BigInt(width) === 0n) return width;
    return 1;
  };
  return {
    read(offset: bigint, length: number): Uint8Array {
      check(offset);
      const out = new Uint8Array(length);
      for (let done = 0; done < length; ) {
        const at = offset + BigInt(done);
        if (at >= size) {
          out.fill(0xff, done);
          break;
        }
        const width = widthAt(at, Math.min(length - done, Number(size - at)));
        const value = pdev.readBar(bar, at, width);
        for (let i = 0; i < width; i++) out[done + i] = Number((value >> BigInt(8 * i)) & 0xffn);
        done += width;
      }
      return out;
    },
    write(offset: bigint, bytes: Uint8Array): void {
      check(offset);
      for (let done = 0; done < bytes.length; ) {
        const at = offset + BigInt(done);
        if (at >= size) break;
        const width = widthAt(at, Math.min(bytes.length - done, Number(size - at)));
        let value = 0n;
        for (let i = width - 1; i >= 0; i--) value = (value << 8n) | BigInt(bytes[done + i]!);
        pdev.writeBar(bar, at, width, value);
        done += width;
      }
    },
  };
}

/**
 * vfio_pci_core_mmap. EINVAL for: a region index past the last, a private
 * mapping, a device region without an mmap op or the MMAP flag, the ROM,
 * config and VGA regions, a BAR that cannot be mapped, or a range past the
 * page-rounded BAR.
 */
export function vfioPciCoreMmap(vdev: VfioPciCoreDevice, offset: bigint, length: bigint, request: MmapRequest): MmapTarget {
  const index = vfioPciOffsetToIndex(offset);
  if (index >= VFIO_PCI_NUM_REGIONS + vdev.regions.length) throw new SimError('INVALID_ARGUMENT', `${vdev.name} has no region ${index}`);
  if (!request.shared) throw new SimError('INVALID_ARGUMENT', `${vdev.name}: region mappings must be shared`);
  const pos = vfioPciRegionOffset(offset);
  if (index >= VFIO_PCI_NUM_REGIONS) {
    const region = vdev.regions[index - VFIO_PCI_NUM_REGIONS]!;
    if (region.ops.mmap && region.flags & VFIO_REGION_INFO_FLAG_MMAP) return region.ops.mmap(vdev, region, pos, length, request);
    throw new SimError('INVALID_ARGUMENT', `${vdev.name}: region ${index} cannot be mapped`);
  }
  if (index >= VFIO_PCI_ROM_REGION_INDEX) throw new SimError('INVALID_ARGUMENT', `${vdev.name}: region ${index} cannot be mapped`);
  if (!vdev.barMmapSupported[index]) throw new SimError('INVALID_ARGUMENT', `${vdev.name}: BAR ${index} cannot be mapped`);
  const physLen = ((barLength(vdev, index) + PAGE - 1n) / PAGE) * PAGE;
  if (pos + length > physLen) {
    throw new SimError('INVALID_ARGUMENT', `${vdev.name}: 0x${length.toString(16)} bytes at 0x${pos.toString(16)} go past BAR ${index}`);
  }
  return { kind: 'mmio', mmio: barBacking(vdev, index), offset: pos };
}
