import type { AddressSpace, Frame, Process } from '../../os/index.js';
import type { DirtyBitmap } from './dirty-bitmap.js';
import { PAGE_SHIFT } from './type1-limits.js';

/**
 * A page an emulated device pinned through the container (struct vfio_pfn):
 * vfio_pin_pages() on an IOVA pins the page behind the mapping's vaddr once
 * and counts further pins of the same IOVA.
 */
export interface VfioPfn {
  readonly iova: bigint;
  readonly frame: Frame;
  refCount: number;
}

/**
 * One user mapping of the container (struct vfio_dma): an IOVA range backed
 * by the user memory at `vaddr` of the process that mapped it.
 *
 * While the container has an IOMMU domain the pages are pinned and mapped in
 * every domain (`iommuMapped`). The kernel finds the pinned pages again by
 * asking the first domain for iova_to_phys; the model keeps the frames it
 * pinned instead, one per page, which names the same pages.
 */
export class VfioDma {
  /** Set once the mapping is complete; only complete mappings are in the tree. */
  size = 0n;
  iommuMapped = false;
  /** VFIO_DMA_UNMAP_FLAG_VADDR was applied and no VFIO_DMA_MAP_FLAG_VADDR has followed yet. */
  vaddrInvalid = false;
  /** Pages pinned for the IOMMU mapping, page n of the mapping at index n. */
  pinned: Frame[] = [];
  /** Pages emulated devices pinned, by IOVA. */
  readonly pfnList = new Map<bigint, VfioPfn>();
  bitmap: DirtyBitmap | null = null;

  constructor(
    readonly iova: bigint,
    public vaddr: bigint,
    readonly prot: number,
    /** The process (task group leader) that owns the pinned pages. */
    public task: Process,
    /** The address space `vaddr` is in; it changes only with a vaddr update after exec(). */
    public mm: AddressSpace,
  ) {}

  /** The last IOVA of the mapping (inclusive), which cannot overflow even for a mapping that ends at 2^64. */
  get last(): bigint {
    return this.iova + this.size - 1n;
  }

  pageIndex(iova: bigint): number {
    return Number((iova - this.iova) >> PAGE_SHIFT);
  }
}
