import { SimError } from '../../errors/index.js';
import type { IommuTranslation } from '../iommu-driver.js';
import {
  IO_PGTABLE_IAS, IO_PGTABLE_LEVELS, IO_PGTABLE_PGSIZES, PTE_DIRTY, PTE_PRESENT,
  isLeaf, leafPageSize, levelIndex, levelShift, makeLeafPte, makeTablePte, pteAddress,
} from './pte.js';
import type { TableMemory } from './table-memory.js';
import { walkTable } from './walk.js';

/*
 * A generic multi-level IO page table kept in memory the way hardware reads
 * it (drivers/iommu/io-pgtable-arm.c and the x86 second-level tables play
 * this role in the kernel). The IOMMU driver owns it; the hardware walks it
 * on IOTLB misses (walk.ts); nothing here flushes a cache: after changing
 * the table the driver invalidates, or the hardware keeps using what it
 * cached.
 *
 * map/unmap follow the io-pgtable ops the kernel's iommu_map()/iommu_unmap()
 * drive: map_pages maps whole pages of one size and refuses to overwrite a
 * present entry (EEXIST); unmap_pages clears whole leaves, and a request
 * that lands inside a larger block clears the whole block and reports its
 * size (the x86/AMD behaviour; the caller sees more unmapped than asked).
 *
 * Public API: IoPageTable (root, mapPages, unmapPages, iovaToPhys, walk,
 * readAndClearDirty, free)
 */

function pageLevel(pgsize: bigint): number {
  for (let level = 1; level < IO_PGTABLE_LEVELS; level++) {
    if (leafPageSize(level) === pgsize) return level;
  }
  return -1;
}

export class IoPageTable {
  /** Host- (or guest-) physical address of the level-0 table. */
  readonly root: bigint;
  readonly #mem: TableMemory;
  #freed = false;

  /** Allocates an empty table in `mem`, or adopts the existing one at `root`. */
  constructor(mem: TableMemory, root?: bigint) {
    this.#mem = mem;
    this.root = root ?? mem.allocTable();
  }

  /**
   * Maps `pgcount` pages of `pgsize` (4 KiB, 2 MiB or 1 GiB) from `iova` to
   * `pa` with IOMMU_READ/IOMMU_WRITE `prot`. Returns the bytes mapped. If a
   * page is already mapped nothing is left mapped by this call and EEXIST
   * is thrown.
   */
  mapPages(iova: bigint, pa: bigint, pgsize: bigint, pgcount: bigint, prot: number): bigint {
    this.#checkLive();
    const level = pageLevel(pgsize);
    if (level < 0 || (IO_PGTABLE_PGSIZES & pgsize) === 0n) {
      throw new SimError('INVALID_ARGUMENT', `io-pgtable: page size 0x${pgsize.toString(16)} is not 4K, 2M or 1G`);
    }
    const end = iova + pgsize * pgcount;
    if (iova % pgsize !== 0n || pa % pgsize !== 0n || pgcount < 1n || iova < 0n || end > 1n << IO_PGTABLE_IAS) {
      throw new SimError('INVALID_ARGUMENT', `io-pgtable: cannot map ${pgcount} x 0x${pgsize.toString(16)} at iova 0x${iova.toString(16)} -> 0x${pa.toString(16)}`);
    }
    let mapped = 0n;
    try {
      for (let i = 0n; i < pgcount; i++) {
        this.#mapOne(iova + i * pgsize, pa + i * pgsize, level, prot);
        mapped += pgsize;
      }
    } catch (error) {
      if (mapped > 0n) this.unmapPages(iova, pgsize, mapped / pgsize);
      throw error;
    }
    return mapped;
  }

  /**
   * Unmaps `pgcount` pages of `pgsize` from `iova`; stops at the first
   * address with nothing mapped. Returns the bytes cleared, which exceeds
   * the request when it lands inside a larger block; `cleared` hears of
   * every range cleared (what the IOTLB must forget).
   */
  unmapPages(iova: bigint, pgsize: bigint, pgcount: bigint, cleared?: (iova: bigint, size: bigint) => void): bigint {
    this.#checkLive();
    const level = pageLevel(pgsize);
    if (level < 0) throw new SimError('INVALID_ARGUMENT', `io-pgtable: page size 0x${pgsize.toString(16)} is not 4K, 2M or 1G`);
    const end = iova + pgsize * pgcount;
    let cursor = iova;
    let unmapped = 0n;
    while (cursor < end) {
      const size = this.#unmapOne(cursor, level);
      if (size === 0n) break;
      const base = cursor - (cursor % size);
      cleared?.(base, size);
      unmapped += size;
      cursor = base + size;
    }
    return unmapped;
  }

  /** The physical address `iova` translates to, or null. */
  iovaToPhys(iova: bigint): bigint | null {
    this.#checkLive();
    const out: IommuTranslation = { pa: 0n, pageSize: 0n, perm: 0, fault: null, faultAddr: 0n, s2Tag: 0 };
    walkTable(this.#mem, this.root, iova, false, out);
    return out.fault === null ? out.pa + (iova & (out.pageSize - 1n)) : null;
  }

  /** The hardware walk for `iova` (see walk.ts). */
  walk(iova: bigint, setDirty: boolean, out: IommuTranslation): void {
    walkTable(this.#mem, this.root, iova, setDirty, out);
  }

  /**
   * Reports every leaf in [iova, iova + size) whose dirty bit is set, with
   * its IOVA and size (to `record`, if given), and clears the bit unless
   * `noClear`.
   */
  readAndClearDirty(iova: bigint, size: bigint, noClear: boolean, record: ((iova: bigint, length: bigint) => void) | null): void {
    this.#checkLive();
    this.#forEachLeaf(this.root, 0, 0n, iova, iova + size - 1n, (entryAddr, pte, base, leafSize) => {
      if ((pte & PTE_DIRTY) === 0n) return;
      record?.(base, leafSize);
      if (!noClear) this.#mem.writeU64(entryAddr, pte & ~PTE_DIRTY);
    });
  }

  /** Frees every table, the root included. */
  free(): void {
    this.#checkLive();
    this.#freeTable(this.root, 0);
    this.#freed = true;
  }

  #checkLive(): void {
    if (this.#freed) throw new Error('io-pgtable: used after free');
  }

  #mapOne(iova: bigint, pa: bigint, targetLevel: number, prot: number): void {
    let table = this.root;
    for (let level = 0; level < targetLevel; level++) {
      const entryAddr = table + levelIndex(iova, level) * 8n;
      const pte = this.#mem.readU64(entryAddr);
      if ((pte & PTE_PRESENT) === 0n) {
        const next = this.#mem.allocTable();
        this.#mem.writeU64(entryAddr, makeTablePte(next));
        table = next;
      } else if (isLeaf(pte, level)) {
        throw new SimError('EXISTS', `io-pgtable: iova 0x${iova.toString(16)} lies in a mapped ${leafPageSize(level)!.toString(16)}-byte block`);
      } else {
        table = pteAddress(pte);
      }
    }
    const entryAddr = table + levelIndex(iova, targetLevel) * 8n;
    if ((this.#mem.readU64(entryAddr) & PTE_PRESENT) !== 0n) {
      throw new SimError('EXISTS', `io-pgtable: iova 0x${iova.toString(16)} is already mapped`);
    }
    this.#mem.writeU64(entryAddr, makeLeafPte(pa, prot, targetLevel));
  }

  /** Clears what maps `iova` at or above `targetLevel`; returns the size cleared (0n: nothing mapped). */
  #unmapOne(iova: bigint, targetLevel: number): bigint {
    let table = this.root;
    for (let level = 0; level <= targetLevel; level++) {
      const entryAddr = table + levelIndex(iova, level) * 8n;
      const pte = this.#mem.readU64(entryAddr);
      if ((pte & PTE_PRESENT) === 0n) return 0n;
      if (isLeaf(pte, level)) {
        this.#mem.writeU64(entryAddr, 0n);
        return leafPageSize(level)!;
      }
      if (level === targetLevel) {
        // A table where a leaf of the requested size would sit: everything under it goes.
        this.#mem.writeU64(entryAddr, 0n);
        this.#freeTable(pteAddress(pte), level + 1);
        return 1n << levelShift(level);
      }
      table = pteAddress(pte);
    }
    return 0n;
  }

  #freeTable(table: bigint, level: number): void {
    if (level < IO_PGTABLE_LEVELS - 1) {
      for (let i = 0n; i < 512n; i++) {
        const pte = this.#mem.readU64(table + i * 8n);
        if ((pte & PTE_PRESENT) !== 0n && !isLeaf(pte, level)) this.#freeTable(pteAddress(pte), level + 1);
      }
    }
    this.#mem.freeTable(table);
  }

  #forEachLeaf(
    table: bigint,
    level: number,
    tableBase: bigint,
    first: bigint,
    last: bigint,
    visit: (entryAddr: bigint, pte: bigint, base: bigint, size: bigint) => void,
  ): void {
    const span = 1n << levelShift(level);
    const lo = first > tableBase ? (first - tableBase) / span : 0n;
    const hiAddr = last - tableBase;
    const hi = hiAddr / span > 511n ? 511n : hiAddr / span;
    for (let i = lo; i <= hi; i++) {
      const entryAddr = table + i * 8n;
      const pte = this.#mem.readU64(entryAddr);
      if ((pte & PTE_PRESENT) === 0n) continue;
      const base = tableBase + i * span;
      if (isLeaf(pte, level)) visit(entryAddr, pte, base, span);
      else this.#forEachLeaf(pteAddress(pte), level + 1, base, first, last, visit);
    }
  }
}
