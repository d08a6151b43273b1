/*
 * The machine constants iommufd's arithmetic depends on, for the x86-64
 * kernel the model follows: 4 KiB pages, 64-bit unsigned long, and
 * transparent huge pages enabled (so automatic IOVA alignment may grow to a
 * PMD, 2 MiB).
 */

export const PAGE_SHIFT = 12n;
export const PAGE_SIZE = 1n << PAGE_SHIFT;
/** Largest alignment iopt_alloc_iova() asks for when THP is built in (HPAGE_SIZE). */
export const HPAGE_SIZE = 2n * 1024n * 1024n;
export const ULONG_MAX = (1n << 64n) - 1n;
/** size_t is unsigned long on LP64. */
export const SIZE_MAX = ULONG_MAX;
export const U64_MAX = ULONG_MAX;
export const U32_MAX = 0xffff_ffff;

/** Wraps a value the way a C unsigned 64-bit expression does. */
export function u64(value: bigint): bigint {
  return BigInt.asUintN(64, value);
}

/** The kernel's check_add_overflow for u64 operands: null when a + b does not fit. */
export function addNoOverflow(a: bigint, b: bigint): bigint | null {
  const sum = a + b;
  return sum > U64_MAX ? null : sum;
}

export function alignDown(value: bigint, align: bigint): bigint {
  return value - (value % align);
}

/** Lowest set bit of a non-zero value, as a value (1 << __ffs(x)). */
export function lowestBit(value: bigint): bigint {
  return value & -value;
}

/** roundup_pow_of_two(): the smallest power of two >= value (value > 0). */
export function roundupPowOfTwo(value: bigint): bigint {
  let p = 1n;
  while (p < value) p <<= 1n;
  return p;
}
