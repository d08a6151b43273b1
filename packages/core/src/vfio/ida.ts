import { SimError } from '../errors/index.js';

/**
 * An ID allocator that hands out the lowest free number (the kernel's IDA),
 * so freed minors are reused first: vfio0, vfio1, then vfio0 again after
 * the first device goes away.
 */
export class Ida {
  readonly #used = new Set<number>();

  /** @param max the largest id (ida_alloc_max; MINORMASK for char-device minors). */
  constructor(readonly max: number) {}

  /** ida_alloc_max: the lowest free id no greater than max, or ENOSPC. `taken` rules out ids used elsewhere. */
  alloc(taken?: (id: number) => boolean): number {
    for (let id = 0; id <= this.max; id++) {
      if (!this.#used.has(id) && !taken?.(id)) {
        this.#used.add(id);
        return id;
      }
    }
    throw new SimError('IDS_EXHAUSTED', `all ids up to ${this.max} are in use`);
  }

  free(id: number): void {
    if (!this.#used.delete(id)) throw new RangeError(`id ${id} was not allocated`);
  }
}
