import { fail } from '../../errors/index.js';
import type { Process } from '../../os/index.js';
import {
  VFIO_DMA_MAP_FLAG_READ,
  VFIO_DMA_MAP_FLAG_VADDR,
  VFIO_DMA_MAP_FLAG_WRITE,
  VFIO_DMA_UNMAP_FLAG_ALL,
  VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP,
  VFIO_DMA_UNMAP_FLAG_VADDR,
  VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP,
  VFIO_IOMMU_DIRTY_PAGES_FLAG_START,
  VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP,
  VFIO_IOMMU_INFO_CAPS,
  VFIO_IOMMU_INFO_PGSIZES,
  VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE,
  VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION,
  VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL,
  ioctlTable,
  offsetofEnd,
  readVfioArgsz,
  rejectUnknownFlags,
  vfio_bitmap,
  vfio_iommu_type1_dirty_bitmap,
  vfio_iommu_type1_dirty_bitmap_get,
  vfio_iommu_type1_dma_map,
  vfio_iommu_type1_dma_unmap,
  vfio_iommu_type1_info,
  vfio_iommu_type1_info_cap_iova_range,
  vfio_iommu_type1_info_cap_migration,
  vfio_iommu_type1_info_dma_avail,
  vfio_iova_range,
  writeBack,
  type UserMemory,
} from '../../uapi/index.js';
import { CapChain } from '../../vfio/cap-chain.js';
import { verifyBitmapSize } from './dirty-bitmap.js';
import { DIRTY_BITMAP_SIZE_MAX, U64_MAX, accessOk, ffs64, shiftRight } from './type1-limits.js';
import type { UserDirtyBitmap, VfioIommuType1 } from './vfio-iommu-type1.js';

/** One container ioctl in flight: the back end and the calling process. */
interface Type1Call {
  readonly iommu: VfioIommuType1;
  readonly proc: Process;
}

const MAP_FLAGS = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE | VFIO_DMA_MAP_FLAG_VADDR;
const UNMAP_FLAGS = VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP | VFIO_DMA_UNMAP_FLAG_VADDR | VFIO_DMA_UNMAP_FLAG_ALL;
const DIRTY_FLAGS =
  VFIO_IOMMU_DIRTY_PAGES_FLAG_START | VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP | VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP;

const INFO_MINSZ = offsetofEnd(vfio_iommu_type1_info, 'iova_pgsizes');
const MAP_MINSZ = offsetofEnd(vfio_iommu_type1_dma_map, 'size');
const UNMAP_MINSZ = offsetofEnd(vfio_iommu_type1_dma_unmap, 'size');
const DIRTY_MINSZ = offsetofEnd(vfio_iommu_type1_dirty_bitmap, 'flags');

/**
 * vfio_iommu_type1_ioctl(): the container fd's requests once type1 is set.
 * VFIO_CHECK_EXTENSION is answered by the back end itself; the vfio core
 * passes every request it does not handle here. Anything else is ENOTTY.
 */
const table = ioctlTable<Type1Call>('vfio-iommu-type1')
  .raw('VFIO_CHECK_EXTENSION', ({ iommu }, call) => iommu.checkExtension(call.argp))
  .vfio('VFIO_IOMMU_GET_INFO', vfio_iommu_type1_info, INFO_MINSZ, ({ iommu }, info, call) => {
    getInfo(iommu, call.mem, call.argp, info.argsz);
    return 0;
  })
  .vfio('VFIO_IOMMU_MAP_DMA', vfio_iommu_type1_dma_map, MAP_MINSZ, ({ iommu, proc }, map) => {
    rejectUnknownFlags(map.flags, MAP_FLAGS, 'VFIO_IOMMU_MAP_DMA');
    iommu.mapDma(proc, map);
    return 0;
  })
  .vfio('VFIO_IOMMU_UNMAP_DMA', vfio_iommu_type1_dma_unmap, UNMAP_MINSZ, ({ iommu }, unmap, call) => {
    rejectUnknownFlags(unmap.flags, UNMAP_FLAGS, 'VFIO_IOMMU_UNMAP_DMA');
    const getDirty = (unmap.flags & VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP) !== 0;
    if (getDirty && (unmap.flags & (VFIO_DMA_UNMAP_FLAG_ALL | VFIO_DMA_UNMAP_FLAG_VADDR)) !== 0) {
      fail('INVALID_ARGUMENT', 'VFIO_IOMMU_UNMAP_DMA: GET_DIRTY_BITMAP cannot be combined with ALL or VADDR');
    }
    let bitmap: UserDirtyBitmap | null = null;
    if (getDirty) {
      if (unmap.argsz < UNMAP_MINSZ + vfio_bitmap.size) {
        fail('ARG_TOO_SHORT', `VFIO_IOMMU_UNMAP_DMA: argsz ${unmap.argsz} leaves no room for struct vfio_bitmap`);
      }
      bitmap = readUserBitmap(call.mem, call.argp + BigInt(UNMAP_MINSZ), unmap.size);
    }
    const unmapped = iommu.unmapDma(unmap, bitmap, call.mem);
    writeBack(call.mem, call.argp, vfio_iommu_type1_dma_unmap, { ...unmap, size: unmapped }, UNMAP_MINSZ);
    return 0;
  })
  // Raw, because a type1 v1 container answers EACCES before the argument is even read.
  .raw('VFIO_IOMMU_DIRTY_PAGES', ({ iommu }, call) => {
    if (!iommu.v2) fail('NOT_IN_THIS_VERSION', 'VFIO_IOMMU_DIRTY_PAGES: only type1 v2 containers track dirty pages');
    dirtyPages(iommu, call.mem, call.argp);
    return 0;
  });

export function dispatchType1Ioctl(iommu: VfioIommuType1, proc: Process, request: number, argp: bigint): number {
  return table.ioctl({ iommu, proc }, proc.mm, request, argp);
}

/**
 * vfio_iommu_type1_get_info(). The capability chain (migration, DMA
 * mappings available, then the IOVA ranges when the container has any) is
 * copied only when argsz covers it; otherwise argsz is raised to the size
 * needed, with VFIO_IOMMU_INFO_CAPS set and cap_offset 0. The struct itself
 * goes back cut to argsz.
 */
function getInfo(iommu: VfioIommuType1, mem: UserMemory, argp: bigint, argsz: number): void {
  const infoSize = vfio_iommu_type1_info.size;
  const pgsize = 1n << ffs64(iommu.pgsizeBitmap);
  const caps = new CapChain(infoSize);
  caps.add(vfio_iommu_type1_info_cap_migration.encodeNew({
    header: { id: VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION, version: 1 },
    flags: 0,
    pgsize_bitmap: pgsize,
    max_dirty_bitmap_size: DIRTY_BITMAP_SIZE_MAX,
  }));
  caps.add(vfio_iommu_type1_info_dma_avail.encodeNew({
    header: { id: VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL, version: 1 },
    avail: iommu.dmaAvail,
  }));
  const ranges = iommu.iovaRanges;
  if (ranges.length > 0) {
    const cap = vfio_iommu_type1_info_cap_iova_range;
    const bytes = new Uint8Array(cap.size + ranges.length * vfio_iova_range.size);
    cap.encode({ header: { id: VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, version: 1, next: 0 }, nr_iovas: ranges.length, reserved: 0 }, bytes);
    ranges.forEach((r, i) => vfio_iova_range.encode(r, bytes, cap.size + i * vfio_iova_range.size));
    caps.add(bytes);
  }

  // CAPS is always set: the migration and DMA-avail capabilities exist in every container.
  const info = { argsz, flags: VFIO_IOMMU_INFO_PGSIZES | VFIO_IOMMU_INFO_CAPS, iova_pgsizes: iommu.pgsizeBitmap, cap_offset: 0, pad: 0 };
  if (argsz < infoSize + caps.size) {
    info.argsz = infoSize + caps.size;
  } else {
    mem.copyToUser(argp + BigInt(infoSize), caps.bytes());
    info.cap_offset = infoSize;
  }
  writeBack(mem, argp, vfio_iommu_type1_info, info, Math.min(argsz, infoSize));
}

/**
 * The struct vfio_bitmap that follows an unmap or a GET_BITMAP range: its
 * data pointer must pass access_ok (EINVAL, not EFAULT) and its size must
 * hold one bit per page of `rangeSize` at its own page size.
 */
function readUserBitmap(mem: UserMemory, at: bigint, rangeSize: bigint): UserDirtyBitmap {
  const bitmap = vfio_bitmap.decode(mem.copyFromUser(at, vfio_bitmap.size));
  if (!accessOk(bitmap.data, bitmap.size)) fail('INVALID_ARGUMENT', 'dirty bitmap: data is not a user address range');
  verifyBitmapSize(shiftRight(rangeSize, ffs64(bitmap.pgsize)), bitmap.size);
  return bitmap;
}

/** vfio_iommu_type1_dirty_pages(): exactly one of START, STOP and GET_BITMAP. */
function dirtyPages(iommu: VfioIommuType1, mem: UserMemory, argp: bigint): void {
  const { value: dirty, userSize: argsz } = readVfioArgsz(mem, argp, vfio_iommu_type1_dirty_bitmap, DIRTY_MINSZ);
  rejectUnknownFlags(dirty.flags, DIRTY_FLAGS, 'VFIO_IOMMU_DIRTY_PAGES');
  switch (dirty.flags) {
    case VFIO_IOMMU_DIRTY_PAGES_FLAG_START:
      iommu.startDirtyTracking();
      return;
    case VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP:
      iommu.stopDirtyTracking();
      return;
    case VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP: {
      const rangeCodec = vfio_iommu_type1_dirty_bitmap_get;
      if (argsz - DIRTY_MINSZ < rangeCodec.size) {
        fail('ARG_TOO_SHORT', `VFIO_IOMMU_DIRTY_PAGES: argsz ${argsz} leaves no room for the range`);
      }
      const range = rangeCodec.decode(mem.copyFromUser(argp + BigInt(DIRTY_MINSZ), rangeCodec.size));
      if (range.size === 0n) fail('INVALID_ARGUMENT', 'VFIO_IOMMU_DIRTY_PAGES: size is 0');
      if (range.iova + range.size - 1n > U64_MAX) fail('OVERFLOW', 'VFIO_IOMMU_DIRTY_PAGES: the range wraps');
      if (!accessOk(range.bitmap.data, range.bitmap.size)) {
        fail('INVALID_ARGUMENT', 'VFIO_IOMMU_DIRTY_PAGES: bitmap data is not a user address range');
      }
      verifyBitmapSize(shiftRight(range.size, ffs64(range.bitmap.pgsize)), range.bitmap.size);
      iommu.getDirtyBitmap(mem, range.iova, range.size, range.bitmap);
      return;
    }
    default:
      fail('INVALID_ARGUMENT', 'VFIO_IOMMU_DIRTY_PAGES: exactly one of START, STOP and GET_BITMAP must be set');
  }
}
