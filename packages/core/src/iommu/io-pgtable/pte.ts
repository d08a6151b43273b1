import { IOMMU_READ, IOMMU_WRITE } from '../iommu-driver.js';

/*
 * The entry format of the generic IO page table: a 4-level radix tree with a
 * 4 KiB granule and 48-bit input addresses, shaped like x86-64 and ARM LPAE
 * tables. Every entry is a little-endian 64-bit word:
 *
 *   bit 0      P   present
 *   bit 1      R   read allowed
 *   bit 2      W   write allowed
 *   bit 6      D   dirty (leaf entries; set by the hardware on a write while
 *                  dirty tracking is on)
 *   bit 7      PS  leaf at level 1 or 2: a 1 GiB or 2 MiB block
 *   bits 51:12     output address (next table, page or block)
 *
 * Level 0 is the root (IOVA bits 47:39), level 3 maps 4 KiB pages (bits
 * 20:12). Level-3 entries are always leaves; PS is ignored there. A table
 * entry's R/W bits limit everything below it (permissions are the AND of
 * every level on the way), so table entries are written with R|W.
 *
 * Public API: PTE_*, PAGE_4K, BLOCK_2M, BLOCK_1G, IO_PGTABLE_PGSIZES,
 * IO_PGTABLE_LEVELS, IO_PGTABLE_IAS, levelShift(), levelIndex(),
 * leafPageSize(), pteAddress(), ptePerm(), makeLeafPte(), makeTablePte()
 */

export const PTE_PRESENT = 1n << 0n;
export const PTE_READ = 1n << 1n;
export const PTE_WRITE = 1n << 2n;
export const PTE_DIRTY = 1n << 6n;
export const PTE_BLOCK = 1n << 7n;
export const PTE_ADDR_MASK = ((1n << 52n) - 1n) & ~0xfffn;

export const IO_PGTABLE_LEVELS = 4;
/** Input address size in bits. */
export const IO_PGTABLE_IAS = 48n;

export const PAGE_4K = 1n << 12n;
export const BLOCK_2M = 1n << 21n;
export const BLOCK_1G = 1n << 30n;
/** Page sizes the format can map, as a pgsize bitmap. */
export const IO_PGTABLE_PGSIZES = PAGE_4K | BLOCK_2M | BLOCK_1G;

const SHIFTS = [39n, 30n, 21n, 12n] as const;

/** log2 of the size an entry at `level` covers. */
export function levelShift(level: number): bigint {
  return SHIFTS[level]!;
}

/** Index of the entry for `iova` in a table at `level`. */
export function levelIndex(iova: bigint, level: number): bigint {
  return (iova >> SHIFTS[level]!) & 511n;
}

/** The size a leaf at `level` maps (null where the format has no leaves: the root). */
export function leafPageSize(level: number): bigint | null {
  return level === 0 ? null : 1n << SHIFTS[level]!;
}

export function pteAddress(pte: bigint): bigint {
  return pte & PTE_ADDR_MASK;
}

/** The IOMMU_READ / IOMMU_WRITE bits an entry grants. */
export function ptePerm(pte: bigint): number {
  return ((pte & PTE_READ) !== 0n ? IOMMU_READ : 0) | ((pte & PTE_WRITE) !== 0n ? IOMMU_WRITE : 0);
}

export function isLeaf(pte: bigint, level: number): boolean {
  return level === IO_PGTABLE_LEVELS - 1 || (level > 0 && (pte & PTE_BLOCK) !== 0n);
}

/** A page (level 3) or block (level 1/2) entry mapping `pa` with IOMMU_READ/IOMMU_WRITE `prot`. */
export function makeLeafPte(pa: bigint, prot: number, level: number): bigint {
  let pte = PTE_PRESENT | (pa & PTE_ADDR_MASK);
  if (prot & IOMMU_READ) pte |= PTE_READ;
  if (prot & IOMMU_WRITE) pte |= PTE_WRITE;
  if (level < IO_PGTABLE_LEVELS - 1) pte |= PTE_BLOCK;
  return pte;
}

/** A table entry pointing at the next-level table at `addr`. */
export function makeTablePte(addr: bigint): bigint {
  return PTE_PRESENT | PTE_READ | PTE_WRITE | (addr & PTE_ADDR_MASK);
}
