import { fail } from '../../errors/index.js';
import type { UserMemory } from '../../uapi/index.js';
import { DIRTY_BITMAP_PAGES_MAX, DIRTY_BITMAP_SIZE_MAX, dirtyBitmapBytes } from './type1-limits.js';

/**
 * The dirty bitmap of one mapping while dirty tracking runs: bit n stands for
 * page n of the mapping at the container's smallest page size. Bits are kept
 * as the kernel's unsigned long array is laid out in memory on x86-64 (u64
 * words, little-endian), so a byte range of it is exactly what userspace
 * receives.
 *
 * Like the kernel's, the buffer has one spare u64 past the mapping's own
 * bits: reporting a mapping that does not start on a word boundary of the
 * user's bitmap shifts the bits up by that offset first.
 */
export class DirtyBitmap {
  readonly bytes: Uint8Array;

  constructor(readonly nbits: number) {
    this.bytes = new Uint8Array(Number(dirtyBitmapBytes(BigInt(nbits))) + 8);
  }

  /** vfio_dma_bitmap_alloc(): EINVAL past the largest bitmap bitmap_set() can address. */
  static forPages(npages: bigint): DirtyBitmap {
    if (npages > DIRTY_BITMAP_PAGES_MAX) {
      fail('INVALID_ARGUMENT', `a dirty bitmap of ${npages} pages exceeds the limit of ${DIRTY_BITMAP_PAGES_MAX}`);
    }
    return new DirtyBitmap(Number(npages));
  }

  set(start: number, count: number): void {
    for (let bit = start; bit < start + count; bit++) this.bytes[bit >> 3]! |= 1 << (bit & 7);
  }

  test(bit: number): boolean {
    return (this.bytes[bit >> 3]! & (1 << (bit & 7))) !== 0;
  }

  clear(): void {
    this.bytes.fill(0);
  }

  /**
   * bitmap_shift_left(map, map, shift, nbits + shift): every bit moves up by
   * `shift`; the bits below `shift` become zero and nothing past
   * nbits + shift survives.
   */
  shiftLeft(shift: number): void {
    if (shift === 0) return;
    for (let bit = this.nbits - 1; bit >= 0; bit--) {
      const to = bit + shift;
      if (this.test(bit)) this.bytes[to >> 3]! |= 1 << (to & 7);
      else this.bytes[to >> 3]! &= ~(1 << (to & 7));
    }
    for (let bit = 0; bit < shift; bit++) this.bytes[bit >> 3]! &= ~(1 << (bit & 7));
  }

  /**
   * bitmap_or() over the first `shift` bits: the kernel ORs whole longs, so
   * all 64 bits of the user's word land in the first word, not only the
   * `shift` bits the mappings before this one reported.
   */
  orFirstWord(word: Uint8Array): void {
    for (let i = 0; i < 8; i++) this.bytes[i]! |= word[i]!;
  }
}

/**
 * verify_bitmap_size(): the user's bitmap must be non-empty, no larger than
 * the migration capability's max_dirty_bitmap_size, and large enough for
 * `npages` bits rounded up to whole u64 words.
 */
export function verifyBitmapSize(npages: bigint, bitmapSize: bigint): void {
  if (npages === 0n || bitmapSize === 0n || bitmapSize > DIRTY_BITMAP_SIZE_MAX || bitmapSize < dirtyBitmapBytes(npages)) {
    fail('INVALID_ARGUMENT', `a ${bitmapSize}-byte dirty bitmap does not fit ${npages} pages`);
  }
}

/** Where one mapping's bits go in a user bitmap whose bit 0 stands for `baseIova`. */
export interface UserBitmapTarget {
  readonly mem: UserMemory;
  /** The user address of the bitmap (vfio_bitmap.data). */
  readonly data: bigint;
  readonly baseIova: bigint;
  readonly pgshift: bigint;
}

/**
 * update_user_bitmap()'s copy: the mapping's bits are placed at their offset
 * from the base IOVA. When that offset is not word-aligned the user's word
 * at the start is read back and ORed in, so the bits of a mapping reported
 * just before survive; the copy then writes whole words. An unreadable or
 * unwritable user bitmap is EFAULT, after the bits have been shifted.
 */
export function copyBitsToUser(target: UserBitmapTarget, bitmap: DirtyBitmap, iova: bigint): void {
  const bitOffset = (iova - target.baseIova) >> target.pgshift;
  const copyOffset = (bitOffset / 64n) * 8n;
  const shift = Number(bitOffset % 64n);
  const address = target.data + copyOffset;
  if (shift !== 0) {
    bitmap.shiftLeft(shift);
    bitmap.orFirstWord(target.mem.copyFromUser(address, 8));
  }
  const length = Number(dirtyBitmapBytes(BigInt(bitmap.nbits + shift)));
  target.mem.copyToUser(address, bitmap.bytes.subarray(0, length));
}
