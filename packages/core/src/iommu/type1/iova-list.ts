import { fail } from '../../errors/index.js';
import type { DmaTree } from './dma-tree.js';
import type { IommuResvRegion } from '../iommu-driver.js';

/** One usable IOVA range, inclusive at both ends (struct vfio_iova). */
export interface IovaRange {
  start: bigint;
  end: bigint;
}

/**
 * The container's usable IOVA ranges (iommu->iova_list), sorted: the
 * intersection of the attached domains' apertures, minus every attached
 * group's reserved regions. Empty until the first IOMMU-backed group is
 * attached, and then MAP_DMA accepts any IOVA (a container of emulated
 * devices only has no aperture).
 *
 * Updates work on a copy that replaces the list only once the attach or
 * detach has succeeded, so a failed attach leaves the list as it was.
 */
export class IovaList {
  constructor(readonly ranges: IovaRange[] = []) {}

  copy(): IovaList {
    return new IovaList(this.ranges.map((r) => ({ ...r })));
  }

  /** vfio_iommu_iova_dma_valid(): [start, end] lies inside one range (or there is no list yet). */
  contains(start: bigint, end: bigint): boolean {
    if (this.ranges.length === 0) return true;
    return this.ranges.some((r) => start >= r.start && end <= r.end);
  }

  /**
   * vfio_iommu_aper_conflict(): a new aperture conflicts if it misses the
   * current ranges entirely or would cut off an existing mapping.
   */
  apertureConflicts(dmas: DmaTree, start: bigint, end: bigint): boolean {
    if (this.ranges.length === 0) return false;
    const first = this.ranges[0]!;
    const last = this.ranges[this.ranges.length - 1]!;
    if (start > last.end || end < first.start) return true;
    if (start > first.start && dmas.find(first.start, start - first.start)) return true;
    if (end < last.end && dmas.find(end + 1n, last.end - end)) return true;
    return false;
  }

  /** vfio_iommu_aper_resize(): narrow the ranges to [start, end]; on an empty list, start one. */
  resize(start: bigint, end: bigint): void {
    if (this.ranges.length === 0) {
      this.ranges.push({ start, end });
      return;
    }
    while (this.ranges.length > 0) {
      const node = this.ranges[0]!;
      if (start < node.start) break;
      if (start < node.end) {
        node.start = start;
        break;
      }
      this.ranges.shift();
    }
    for (let i = 0; i < this.ranges.length; ) {
      const node = this.ranges[i]!;
      if (end > node.end) {
        i++;
      } else if (end > node.start) {
        node.end = end;
        i++;
      } else {
        this.ranges.splice(i, 1);
      }
    }
  }

  /**
   * vfio_iommu_resv_exclude(): cut every reserved region out of the ranges.
   * Nothing left is EINVAL. (The kernel skips relaxable direct regions,
   * which the model's IOMMU drivers do not report.)
   */
  excludeReserved(regions: readonly IommuResvRegion[]): void {
    for (const resv of regions) {
      const start = resv.start;
      const end = resv.start + resv.length - 1n;
      for (let i = 0; i < this.ranges.length; ) {
        const node = this.ranges[i]!;
        if (start > node.end || end < node.start) {
          i++;
          continue;
        }
        const pieces: IovaRange[] = [];
        if (start > node.start) pieces.push({ start: node.start, end: start - 1n });
        if (end < node.end) pieces.push({ start: end + 1n, end: node.end });
        this.ranges.splice(i, 1, ...pieces);
        i += pieces.length;
      }
    }
    if (this.ranges.length === 0) fail('INVALID_ARGUMENT', 'the reserved regions leave no usable IOVA range');
  }

  /**
   * vfio_iommu_aper_expand(): after a domain went away, widen the outer ends
   * to the intersection of the apertures that remain (the whole IOVA space
   * when none remains).
   */
  expandTo(apertures: readonly { readonly apertureStart: bigint; readonly apertureEnd: bigint }[]): void {
    if (this.ranges.length === 0) return;
    let start = 0n;
    let end = (1n << 64n) - 1n;
    for (const a of apertures) {
      if (a.apertureStart > start) start = a.apertureStart;
      if (a.apertureEnd < end) end = a.apertureEnd;
    }
    this.ranges[0]!.start = start;
    this.ranges[this.ranges.length - 1]!.end = end;
  }

  /**
   * vfio_iommu_resv_refresh(): rebuild from the outer ends, excluding the
   * reserved regions of the groups still attached. Fails (and the caller
   * keeps the old list) when the list is empty or nothing usable is left.
   */
  refreshed(regions: readonly IommuResvRegion[]): IovaList | null {
    if (this.ranges.length === 0) return null;
    const next = new IovaList();
    next.resize(this.ranges[0]!.start, this.ranges[this.ranges.length - 1]!.end);
    try {
      next.excludeReserved(regions);
    } catch {
      return null;
    }
    return next;
  }
}

/** vfio_iommu_resv_conflict(): an existing mapping overlaps a reserved region of the group being attached. */
export function reservedConflicts(dmas: DmaTree, regions: readonly IommuResvRegion[]): boolean {
  return regions.some((r) => r.length > 0n && dmas.find(r.start, r.length) !== undefined);
}
