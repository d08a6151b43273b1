/**
 * Fixed sizes and limits of the type1 back end, with the kernel's values.
 *
 * The model runs an x86-64 host: 4 KiB base pages, 64-bit longs, and a
 * 47-bit user address space (4-level paging), which is what access_ok()
 * checks user pointers against.
 */

export const PAGE_SHIFT = 12n;
export const PAGE_SIZE = 1n << PAGE_SHIFT;
/** PAGE_MASK as a 64-bit value: the pgsize bitmap of a container with no IOMMU domain. */
export const PAGE_MASK = BigInt.asUintN(64, ~(PAGE_SIZE - 1n));
export const U64_MAX = (1n << 64n) - 1n;

/** Default of the dma_entry_limit module parameter (U16_MAX). */
export const DMA_ENTRY_LIMIT_DEFAULT = 65535;

/**
 * The largest bitmap, in pages, one mapping may carry: bitmap_set() takes an
 * int count, so 2^31 - 1 bits; in bytes, rounded to whole u64 words, 256 MiB.
 */
export const DIRTY_BITMAP_PAGES_MAX = 0x7fffffffn;
export const DIRTY_BITMAP_SIZE_MAX = dirtyBitmapBytes(DIRTY_BITMAP_PAGES_MAX);

/** Bytes of a bitmap of `nbits` bits stored as whole u64 words (DIRTY_BITMAP_BYTES). */
export function dirtyBitmapBytes(nbits: bigint): bigint {
  return ((nbits + 63n) / 64n) * 8n;
}

/** TASK_SIZE_MAX with 4-level paging: the end of user space, one guard page short of 2^47. */
export const TASK_SIZE_MAX = (1n << 47n) - PAGE_SIZE;

/**
 * x86-64 access_ok(): the range must end at or below the last user address
 * and must not wrap. It checks the range only; whether the pages are mapped
 * is found out later, by the copy, as EFAULT.
 */
export function accessOk(addr: bigint, size: bigint): boolean {
  const end = addr + size;
  return end <= U64_MAX && end <= TASK_SIZE_MAX - 1n;
}

/**
 * __ffs() of a 64-bit word: the index of the lowest set bit. The kernel
 * leaves __ffs(0) undefined; x86-64 executes it as TZCNT, which yields 64,
 * and a following 64-bit shift by 64 is masked to a shift by 0. Callers that
 * shift by the result use `shiftRight` to get that same value.
 */
export function ffs64(word: bigint): bigint {
  if (word === 0n) return 64n;
  let n = 0n;
  while (((word >> n) & 1n) === 0n) n++;
  return n;
}

/** A u64 shifted right the way x86-64 SHR does it: the count is taken modulo 64. */
export function shiftRight(value: bigint, count: bigint): bigint {
  return value >> (count & 63n);
}
