import type { VfioDma } from './vfio-dma.js';

/**
 * The container's mappings ordered by IOVA (the kernel's dma_list rb-tree).
 * Mappings never overlap, so ordering by start orders by end too. A sorted
 * array with binary search does the lookups in O(log n); inserts and removes
 * are O(n), which the mapping limit (65535 by default) keeps small.
 *
 * All ranges are handled through inclusive ends so that a mapping reaching
 * the top of the 64-bit IOVA space compares correctly.
 */
export class DmaTree {
  readonly #dmas: VfioDma[] = [];

  get size(): number {
    return this.#dmas.length;
  }

  /** The mappings in IOVA order; a copy, so callers may remove while iterating. */
  list(): VfioDma[] {
    return [...this.#dmas];
  }

  /** vfio_find_dma(): some mapping that overlaps [start, start + size), or undefined; `size` must not be 0. */
  find(start: bigint, size: bigint): VfioDma | undefined {
    const last = start + size - 1n;
    let lo = 0;
    let hi = this.#dmas.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const dma = this.#dmas[mid]!;
      if (last < dma.iova) hi = mid - 1;
      else if (start > dma.last) lo = mid + 1;
      else return dma;
    }
    return undefined;
  }

  /** vfio_find_dma_first_node(): index of the lowest mapping that overlaps [start, last], or -1. */
  firstIndex(start: bigint, last: bigint): number {
    let lo = 0;
    let hi = this.#dmas.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.#dmas[mid]!.last < start) lo = mid + 1;
      else hi = mid;
    }
    const dma = this.#dmas[lo];
    return dma && dma.iova <= last ? lo : -1;
  }

  at(index: number): VfioDma | undefined {
    return this.#dmas[index];
  }

  /** The mappings that overlap [start, last], in IOVA order. */
  inRange(start: bigint, last: bigint): VfioDma[] {
    const out: VfioDma[] = [];
    const first = this.firstIndex(start, last);
    if (first < 0) return out;
    for (let i = first; i < this.#dmas.length && this.#dmas[i]!.iova <= last; i++) out.push(this.#dmas[i]!);
    return out;
  }

  insert(dma: VfioDma): void {
    let lo = 0;
    let hi = this.#dmas.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.#dmas[mid]!.iova < dma.iova) lo = mid + 1;
      else hi = mid;
    }
    this.#dmas.splice(lo, 0, dma);
  }

  remove(dma: VfioDma): void {
    const index = this.#dmas.indexOf(dma);
    if (index >= 0) this.#dmas.splice(index, 1);
  }
}
