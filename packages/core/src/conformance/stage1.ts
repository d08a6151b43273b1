import { IoPageTable, PAGE_4K } from '../iommu/io-pgtable/index.js';
import type { ConformanceGuest } from './guest-ram.js';

/*
 * A guest's stage-1 page table, in the format of the IOMMU driver under
 * test. The suite cannot know the format (VT-d first-stage, an SMMUv3
 * context descriptor and its LPAE tables, ...), so the subject gives it a
 * Stage1Format: build an empty table in guest memory, map and unmap single
 * 4 KiB pages by editing guest memory the way a guest driver does, with no
 * invalidation (the suite decides when to invalidate).
 *
 * ioPgtableStage1 is the format of the model's generic IO page table
 * (io-pgtable/pte.ts), which the mock driver walks for stage 1; a driver
 * whose hardware reads that format can use it as is.
 *
 * Public API: Stage1Format, Stage1Table, ioPgtableStage1
 */

export interface Stage1Table {
  /** IPA of the table's root, as a nested HWPT's data or stage-1 pointer names it. */
  readonly root: bigint;
  /** Maps the 4 KiB page at `iova` to `ipa` with IOMMU_READ / IOMMU_WRITE `perm`. */
  map(iova: bigint, ipa: bigint, perm: number): void;
  /** Clears the mapping of the 4 KiB page at `iova`. */
  unmap(iova: bigint): void;
}

export interface Stage1Format {
  /** An empty stage-1 table in guest memory. */
  create(guest: ConformanceGuest): Stage1Table;
}

export const ioPgtableStage1: Stage1Format = Object.freeze({
  create(guest: ConformanceGuest): Stage1Table {
    const table = new IoPageTable(guest.tableMemory);
    return {
      root: table.root,
      map: (iova: bigint, ipa: bigint, perm: number) => {
        table.mapPages(iova, ipa, PAGE_4K, 1n, perm);
      },
      unmap: (iova: bigint) => {
        table.unmapPages(iova, PAGE_4K, 1n);
      },
    };
  },
});
