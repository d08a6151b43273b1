import type { BenchCase } from './measure.js';

/*
 * Plain-JavaScript yardsticks measured in the same run, so each model
 * figure can be read against what the machine does with no model at all:
 * a hash lookup (what an IOTLB hit is at heart), a 4-level radix walk over
 * typed arrays (one page-table walk), a 4 KiB copy (one page of data).
 */

export const MAP_GET = 'reference: Map.get';
export const RADIX_WALK = 'reference: 4-level typed-array walk';
export const PAGE_COPY = 'reference: 4 KiB buffer copy';

const BATCH = 1000;

/** Where results go so the engine cannot drop the work as dead code. */
export const blackhole = { value: 0 };

export function referenceCases(): BenchCase[] {
  const map = new Map<number, number>();
  for (let i = 0; i < 4096; i++) map.set(i * 4096, i);

  // Four levels of 512-entry tables, each entry the index of the next table (level 3: a frame number).
  const tables = new Uint32Array(512 * 4 * 16);
  for (let t = 0; t < 64; t++) {
    for (let e = 0; e < 512; e++) tables[t * 512 + e] = (t + 1 + (e % 3)) % 64;
  }
  // Addresses above 2^32 are doubles in JavaScript: the level index is a division, not a shift.
  const levelSize = [2 ** 39, 2 ** 30, 2 ** 21, 2 ** 12];
  const walk = (va: number): number => {
    let table = 0;
    for (let level = 0; level < 4; level++) {
      const index = Math.floor(va / levelSize[level]!) & 511;
      table = tables[table * 512 + index]!;
    }
    return table;
  };

  const src = new Uint8Array(4096).fill(0x5a);
  const dst = new Uint8Array(4096);

  return [
    {
      name: MAP_GET,
      unit: 'lookup',
      batch: BATCH,
      run: () => {
        for (let i = 0; i < BATCH; i++) blackhole.value += map.get((i & 4095) * 4096)!;
      },
    },
    {
      name: RADIX_WALK,
      unit: 'walk',
      batch: BATCH,
      run: () => {
        for (let i = 0; i < BATCH; i++) blackhole.value += walk(i * 4096 * 513);
      },
    },
    {
      name: PAGE_COPY,
      unit: 'copy',
      batch: 100,
      run: () => {
        for (let i = 0; i < 100; i++) {
          src[0] = i;
          dst.set(src);
          blackhole.value += dst[0]!;
        }
      },
    },
  ];
}
