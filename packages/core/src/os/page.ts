/**
 * Page geometry and the user address-space limits of x86-64 with 4-level
 * paging, the machine the model's processes run on.
 */
export const PAGE_SHIFT = 12;
export const PAGE_SIZE = 4096;

/** TASK_SIZE_MAX: the first address above user space (one guard page below 2^47). */
export const TASK_SIZE = 0x7ffffffff000n;
/** vm.mmap_min_addr as distributions ship it; unprivileged fixed maps below it fail with EPERM. */
export const MMAP_MIN_ADDR = 0x10000n;
/**
 * mmap_base with address-space randomization off (what `setarch -R` shows):
 * the top-down allocator hands out addresses just below it, deterministically.
 */
export const MMAP_BASE = 0x7ffff7fff000n;
/** TASK_UNMAPPED_BASE: where the bottom-up fallback starts when top-down finds no gap. */
export const TASK_UNMAPPED_BASE = 0x2aaaaaaab000n;

/** Largest file size and offset a regular file takes (loff_t is signed). */
export const MAX_LFS_FILESIZE = (1n << 63n) - 1n;

export const PAGE = 4096n;
const OFFSET_MASK = PAGE - 1n;
const U64_MASK = (1n << 64n) - 1n;

/**
 * The value a C `unsigned long` argument would hold: negative numbers wrap
 * as two's complement, exactly as the syscall ABI passes them.
 */
export function toU64(value: bigint | number): bigint {
  if (typeof value === 'number' && !Number.isInteger(value)) {
    throw new TypeError(`not an integer: ${value}`);
  }
  return BigInt(value) & U64_MASK;
}

/** A u64 read as the signed loff_t the kernel sees for file offsets. */
export function toLoff(value: bigint | number): bigint {
  return BigInt.asIntN(64, toU64(value));
}

export function pageOffset(addr: bigint): bigint {
  return addr & OFFSET_MASK;
}

export function pageAlignDown(addr: bigint): bigint {
  return addr & ~OFFSET_MASK;
}

/** PAGE_ALIGN on a u64: wraps to 0 for lengths within a page of 2^64, as in C. */
export function pageAlignUp(addr: bigint): bigint {
  return (addr + OFFSET_MASK) & ~OFFSET_MASK & U64_MASK;
}
