import { expect } from 'vitest';
import {
  Errno,
  IOMMU_IOAS_ALLOC,
  IOMMU_IOAS_IOVA_RANGES,
  IOMMU_IOAS_MAP,
  IOMMU_IOAS_MAP_FIXED_IOVA,
  IOMMU_IOAS_MAP_READABLE,
  IOMMU_IOAS_MAP_WRITEABLE,
  IOMMU_IOAS_UNMAP,
  VFIO_API_VERSION,
  VFIO_DMA_MAP_FLAG_READ,
  VFIO_DMA_MAP_FLAG_WRITE,
  VFIO_DMA_UNMAP_FLAG_ALL,
  VFIO_GET_API_VERSION,
  VFIO_IOMMU_GET_INFO,
  VFIO_IOMMU_INFO_CAPS,
  VFIO_IOMMU_MAP_DMA,
  VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE,
  VFIO_IOMMU_UNMAP_DMA,
  VFIO_TYPE1_IOMMU,
  VFIO_TYPE1v2_IOMMU,
  iommu_ioas_alloc,
  iommu_ioas_iova_ranges,
  iommu_ioas_map,
  iommu_ioas_unmap,
  iommu_iova_range,
  vfio_info_cap_header,
  vfio_iommu_type1_dma_map,
  vfio_iommu_type1_dma_unmap,
  vfio_iommu_type1_info,
  vfio_iommu_type1_info_cap_iova_range,
  vfio_iova_range,
} from '@vfiosim/core';
import { ioctlAssert, type User } from '../user.js';

/*
 * The IOMMU half of the VFIO selftest library (lib/iommu.c): one of five
 * ways to give a device an IO address space, and DMA map/unmap through it.
 */

export const MODE_VFIO_TYPE1_IOMMU = 'vfio_type1_iommu';
export const MODE_VFIO_TYPE1V2_IOMMU = 'vfio_type1v2_iommu';
export const MODE_IOMMUFD_COMPAT_TYPE1 = 'iommufd_compat_type1';
export const MODE_IOMMUFD_COMPAT_TYPE1V2 = 'iommufd_compat_type1v2';
export const MODE_IOMMUFD = 'iommufd';

export interface IommuMode {
  readonly name: string;
  /** The container to open (/dev/vfio/vfio, or /dev/iommu as a compat container); none for native iommufd. */
  readonly containerPath?: string;
  readonly iommuType?: number;
}

/** FIXTURE_VARIANT_ADD_ALL_IOMMU_MODES, in the library's order. */
export const IOMMU_MODES: readonly IommuMode[] = [
  { name: MODE_VFIO_TYPE1_IOMMU, containerPath: '/dev/vfio/vfio', iommuType: VFIO_TYPE1_IOMMU },
  { name: MODE_VFIO_TYPE1V2_IOMMU, containerPath: '/dev/vfio/vfio', iommuType: VFIO_TYPE1v2_IOMMU },
  { name: MODE_IOMMUFD_COMPAT_TYPE1, containerPath: '/dev/iommu', iommuType: VFIO_TYPE1_IOMMU },
  { name: MODE_IOMMUFD_COMPAT_TYPE1V2, containerPath: '/dev/iommu', iommuType: VFIO_TYPE1v2_IOMMU },
  { name: MODE_IOMMUFD },
];

export const DEFAULT_IOMMU_MODE = MODE_IOMMUFD;

export function lookupIommuMode(name: string = DEFAULT_IOMMU_MODE): IommuMode {
  const mode = IOMMU_MODES.find((m) => m.name === name);
  if (!mode) throw new Error(`Unrecognized IOMMU mode: ${name}`);
  return mode;
}

/** struct dma_region: a user buffer mapped at an IOVA. */
export interface DmaRegion {
  vaddr: bigint;
  iova: bigint;
  size: bigint;
}

/** An inclusive IOVA range, as iommufd reports it. */
export interface IovaRange {
  readonly start: bigint;
  readonly last: bigint;
}

export const INVALID_IOVA = (1n << 64n) - 1n;
const U64_MAX = (1n << 64n) - 1n;

/** struct iommu. */
export class Iommu {
  readonly mode: IommuMode;
  readonly user: User;
  containerFd = 0;
  iommufd = 0;
  ioasId = 0;
  readonly dmaRegions: DmaRegion[] = [];

  /** iommu_init. */
  constructor(user: User, modeName?: string) {
    this.user = user;
    this.mode = lookupIommuMode(modeName);
    const { proc } = user;
    if (this.mode.containerPath) {
      this.containerFd = proc.open(this.mode.containerPath);
      expect(this.containerFd, `open(${this.mode.containerPath})`).toBeGreaterThanOrEqual(0);
      const version = proc.ioctl(this.containerFd, VFIO_GET_API_VERSION);
      expect(version, 'Unsupported version').toBe(VFIO_API_VERSION);
    } else {
      // As the library does, require a positive fd so "iommufd != 0" means iommufd mode.
      this.iommufd = proc.open('/dev/iommu');
      expect(this.iommufd).toBeGreaterThan(0);
      this.ioasId = this.#ioasAlloc();
    }
  }

  #ioasAlloc(): number {
    const { rc, out } = this.user.ioctl(this.iommufd, IOMMU_IOAS_ALLOC, iommu_ioas_alloc, { size: iommu_ioas_alloc.size });
    ioctlAssert(rc, 'IOMMU_IOAS_ALLOC');
    return out.out_ioas_id;
  }

  /** __iommu_map: 0 or -errno; a mapped region is remembered for hva2iova. */
  tryMap(region: DmaRegion): number {
    const rc = this.iommufd ? this.#iommufdMap(region) : this.#vfioMap(region);
    if (rc) return rc;
    this.dmaRegions.unshift(region);
    return 0;
  }

  /** iommu_map. */
  map(region: DmaRegion): void {
    ioctlAssert(this.tryMap(region), 'iommu_map');
  }

  #vfioMap(region: DmaRegion): number {
    return this.user.ioctl(this.containerFd, VFIO_IOMMU_MAP_DMA, vfio_iommu_type1_dma_map, {
      argsz: vfio_iommu_type1_dma_map.size,
      flags: VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
      vaddr: region.vaddr,
      iova: region.iova,
      size: region.size,
    }).rc;
  }

  #iommufdMap(region: DmaRegion): number {
    return this.user.ioctl(this.iommufd, IOMMU_IOAS_MAP, iommu_ioas_map, {
      size: iommu_ioas_map.size,
      flags: IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_FIXED_IOVA,
      user_va: region.vaddr,
      iova: region.iova,
      length: region.size,
      ioas_id: this.ioasId,
    }).rc;
  }

  /** __iommu_unmap: 0 or -errno, and how much the kernel says it unmapped. */
  tryUnmap(region: DmaRegion): { rc: number; unmapped: bigint } {
    const result = this.iommufd
      ? this.#iommufdUnmap(region.iova, region.size)
      : this.#vfioUnmap(region.iova, region.size, 0);
    if (result.rc === 0) this.#forget(region);
    return result;
  }

  /** iommu_unmap. */
  unmap(region: DmaRegion): void {
    ioctlAssert(this.tryUnmap(region).rc, 'iommu_unmap');
  }

  /** __iommu_unmap_all: iommufd's whole-space unmap or type1's VFIO_DMA_UNMAP_FLAG_ALL. */
  tryUnmapAll(): { rc: number; unmapped: bigint } {
    const result = this.iommufd ? this.#iommufdUnmap(0n, U64_MAX) : this.#vfioUnmap(0n, 0n, VFIO_DMA_UNMAP_FLAG_ALL);
    if (result.rc === 0) this.dmaRegions.length = 0;
    return result;
  }

  #vfioUnmap(iova: bigint, size: bigint, flags: number): { rc: number; unmapped: bigint } {
    const { rc, out } = this.user.ioctl(this.containerFd, VFIO_IOMMU_UNMAP_DMA, vfio_iommu_type1_dma_unmap, {
      argsz: vfio_iommu_type1_dma_unmap.size,
      iova,
      size,
      flags,
    });
    return { rc, unmapped: out.size };
  }

  #iommufdUnmap(iova: bigint, length: bigint): { rc: number; unmapped: bigint } {
    const { rc, out } = this.user.ioctl(this.iommufd, IOMMU_IOAS_UNMAP, iommu_ioas_unmap, {
      size: iommu_ioas_unmap.size,
      iova,
      length,
      ioas_id: this.ioasId,
    });
    return { rc, unmapped: out.length };
  }

  #forget(region: DmaRegion): void {
    const at = this.dmaRegions.indexOf(region);
    if (at >= 0) this.dmaRegions.splice(at, 1);
  }

  /** __iommu_hva2iova. */
  hva2iovaOrInvalid(vaddr: bigint): bigint {
    for (const region of this.dmaRegions) {
      if (vaddr >= region.vaddr && vaddr < region.vaddr + region.size) return region.iova + (vaddr - region.vaddr);
    }
    return INVALID_IOVA;
  }

  /** iommu_hva2iova. */
  hva2iova(vaddr: bigint): bigint {
    const iova = this.hva2iovaOrInvalid(vaddr);
    expect(iova, `0x${vaddr.toString(16)} is not mapped into the IOMMU`).not.toBe(INVALID_IOVA);
    return iova;
  }

  /**
   * vfio_iommu_get_info: VFIO_IOMMU_GET_INFO with argsz = sizeof, then again
   * with the argsz the kernel asked for, as the library reallocs. Returns the
   * second answer's buffer.
   */
  getInfo(): { info: vfio_iommu_type1_info; bytes: Uint8Array } {
    const first = this.user.ioctl(this.containerFd, VFIO_IOMMU_GET_INFO, vfio_iommu_type1_info, { argsz: vfio_iommu_type1_info.size });
    ioctlAssert(first.rc, 'VFIO_IOMMU_GET_INFO');
    expect(first.out.argsz).toBeGreaterThanOrEqual(vfio_iommu_type1_info.size);
    const second = this.user.ioctl(
      this.containerFd,
      VFIO_IOMMU_GET_INFO,
      vfio_iommu_type1_info,
      { argsz: first.out.argsz },
      first.out.argsz,
    );
    ioctlAssert(second.rc, 'VFIO_IOMMU_GET_INFO');
    expect(second.out.argsz).toBeGreaterThanOrEqual(vfio_iommu_type1_info.size);
    return { info: second.out, bytes: second.bytes };
  }

  /** vfio_iommu_info_cap_hdr: walks the chain (checking it for cycles) to the capability `capId`. */
  static findCap(info: vfio_iommu_type1_info, bytes: Uint8Array, capId: number): number | null {
    if (!(info.flags & VFIO_IOMMU_INFO_CAPS)) return null;
    let offset = info.cap_offset;
    if (offset) expect(offset).toBeGreaterThanOrEqual(vfio_iommu_type1_info.size);
    const maxDepth = Math.floor((info.argsz - vfio_iommu_type1_info.size) / vfio_info_cap_header.size);
    let depth = 0;
    while (offset) {
      expect(offset).toBeLessThan(info.argsz);
      expect(info.argsz - offset).toBeGreaterThanOrEqual(vfio_info_cap_header.size);
      const header = vfio_info_cap_header.decode(bytes, offset);
      depth++;
      expect(depth, 'Capability chain contains a cycle').toBeLessThanOrEqual(maxDepth);
      if (header.id === capId) return offset;
      offset = header.next;
    }
    return null;
  }

  /** iommu_iova_ranges: sorted, checked for sanity and overlap. */
  iovaRanges(): IovaRange[] {
    const ranges = this.iommufd ? this.#iommufdIovaRanges() : this.#vfioIovaRanges();
    expect(ranges.length).toBeGreaterThan(0);
    ranges.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
    expect(ranges[0]!.start).toBeLessThan(ranges[0]!.last);
    for (let i = 1; i < ranges.length; i++) {
      expect(ranges[i]!.start).toBeLessThan(ranges[i]!.last);
      expect(ranges[i - 1]!.last).toBeLessThan(ranges[i]!.start);
    }
    return ranges;
  }

  #vfioIovaRanges(): IovaRange[] {
    const { info, bytes } = this.getInfo();
    const at = Iommu.findCap(info, bytes, VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE);
    expect(at, 'no IOVA range capability').not.toBeNull();
    const cap = vfio_iommu_type1_info_cap_iova_range.decode(bytes, at!);
    expect(cap.nr_iovas).toBeGreaterThan(0);
    const first = at! + vfio_iommu_type1_info_cap_iova_range.size;
    return Array.from({ length: cap.nr_iovas }, (_, i) => {
      const range = vfio_iova_range.decode(bytes, first + i * vfio_iova_range.size);
      return { start: range.start, last: range.end };
    });
  }

  #iommufdIovaRanges(): IovaRange[] {
    const query = this.user.ioctl(this.iommufd, IOMMU_IOAS_IOVA_RANGES, iommu_ioas_iova_ranges, {
      size: iommu_ioas_iova_ranges.size,
      ioas_id: this.ioasId,
    });
    expect(query.rc).toBe(-Errno.EMSGSIZE);
    expect(query.out.num_iovas).toBeGreaterThan(0);
    const array = this.user.alloc(query.out.num_iovas * iommu_iova_range.size);
    const again = this.user.ioctl(this.iommufd, IOMMU_IOAS_IOVA_RANGES, iommu_ioas_iova_ranges, {
      ...query.out,
      allowed_iovas: array,
    });
    ioctlAssert(again.rc, 'IOMMU_IOAS_IOVA_RANGES');
    const bytes = this.user.read(array, again.out.num_iovas * iommu_iova_range.size);
    return Array.from({ length: again.out.num_iovas }, (_, i) => iommu_iova_range.decode(bytes, i * iommu_iova_range.size));
  }

  /** iommu_cleanup. */
  cleanup(): void {
    expect(this.user.proc.close(this.iommufd || this.containerFd)).toBe(0);
  }
}

/** struct iova_allocator: hands out size-aligned IOVAs from the usable ranges, in order. */
export class IovaAllocator {
  readonly #ranges: IovaRange[];
  #index = 0;
  #offset = 0n;

  constructor(iommu: Iommu) {
    this.#ranges = iommu.iovaRanges();
  }

  /** iova_allocator_alloc: size must be a power of two. */
  alloc(size: bigint): bigint {
    expect(size > 0n && (size & (size - 1n)) === 0n, `size 0x${size.toString(16)} is not a power of two`).toBe(true);
    for (;;) {
      expect(this.#index, 'IOVA allocator out of space').toBeLessThan(this.#ranges.length);
      const range = this.#ranges[this.#index]!;
      let iova = range.start + this.#offset;
      let last = iova + size - 1n;
      if (last > U64_MAX || last > range.last) {
        this.#nextRange();
        continue;
      }
      iova = last & ~(size - 1n);
      last = iova + size - 1n;
      if (last > U64_MAX || last > range.last) {
        this.#nextRange();
        continue;
      }
      if (last === range.last) this.#nextRange();
      else this.#offset = last - range.start + 1n;
      return iova;
    }
  }

  #nextRange(): void {
    this.#index++;
    this.#offset = 0n;
  }
}
