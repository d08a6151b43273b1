import { SimError } from '../errors/index.js';
import { PAGE, PAGE_SIZE } from './page.js';
import type { Frame, PhysicalMemory } from './phys-mem.js';

/**
 * 'anon': private anonymous memory. A read of a page never written sees the
 *   shared zero page, so it allocates nothing.
 * 'shmem': a memfd or a shared anonymous mapping (tmpfs). Any fault, read
 *   or write, allocates the page in the object's page cache.
 */
export type MemoryObjectKind = 'anon' | 'shmem';

/**
 * Pageable memory that mappings and files share: the anon_vma or shmem
 * inode of Linux, reduced to what DMA cares about. Pages are indexed by
 * page number within the object and populated, zero-filled, on first touch.
 *
 * References come from every mapping (VMA) and open file that uses the
 * object; when the last one goes, the object drops its frames. Frames
 * pinned for DMA outlive it (see Frame).
 */
export class MemoryObject {
  readonly kind: MemoryObjectKind;
  readonly name: string;
  readonly #physMem: PhysicalMemory;
  readonly #pages = new Map<bigint, Frame>();
  readonly #shadows = new Set<MemoryObject>();
  #size: bigint;
  #refs = 1;

  /** Starts with one reference, owned by the creator. */
  constructor(physMem: PhysicalMemory, kind: MemoryObjectKind, size: bigint, name = '') {
    this.#physMem = physMem;
    this.kind = kind;
    this.#size = size;
    this.name = name;
  }

  /** Size in bytes (a file's i_size; a mapping's length for anonymous memory). */
  get size(): bigint {
    return this.#size;
  }

  /** Pages addressable: the size rounded up, since the page holding EOF is mappable. */
  get pageCount(): bigint {
    return (this.#size + PAGE - 1n) / PAGE;
  }

  get refs(): number {
    return this.#refs;
  }

  /** Pages with a frame behind them. */
  get residentPages(): number {
    return this.#pages.size;
  }

  get freed(): boolean {
    return this.#refs === 0;
  }

  get(): this {
    if (this.#refs === 0) throw new Error(`memory object ${this.#label()}: get after free`);
    this.#refs++;
    return this;
  }

  put(): void {
    if (this.#refs === 0) throw new Error(`memory object ${this.#label()}: put after free`);
    if (--this.#refs === 0) {
      for (const frame of this.#pages.values()) frame.put();
      this.#pages.clear();
    }
  }

  /** The frame at a page index if one is resident; never allocates. */
  lookup(index: bigint): Frame | undefined {
    return this.#pages.get(index);
  }

  /**
   * The frame at a page index, allocating a zero-filled one on first touch.
   * A page past the end is a SIGBUS, reported to the kernel as EFAULT.
   */
  fault(index: bigint): Frame {
    const present = this.#pages.get(index);
    if (present) return present;
    if (index < 0n || index >= this.pageCount) {
      throw new SimError('BAD_ADDRESS', `page ${index} is beyond the end of ${this.#label()} (SIGBUS)`);
    }
    const frame = this.#physMem.allocate();
    this.#pages.set(index, frame);
    return frame;
  }

  /** Reads bytes at a byte offset as a file read does: holes read as zeros without allocating. */
  read(offset: bigint, length: number): Uint8Array {
    const out = new Uint8Array(length);
    let done = 0;
    while (done < length) {
      const at = offset + BigInt(done);
      const inPage = Number(at % PAGE);
      const chunk = Math.min(length - done, PAGE_SIZE - inPage);
      const frame = this.#pages.get(at / PAGE);
      if (frame) out.set(frame.data.subarray(inPage, inPage + chunk), done);
      done += chunk;
    }
    return out;
  }

  /**
   * Writes bytes at a byte offset within the current size, allocating the
   * pages touched. Every page is faulted in before any byte is written, so
   * an allocation failure leaves the contents as they were.
   */
  write(offset: bigint, bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    const end = offset + BigInt(bytes.length);
    if (offset < 0n || end > this.#size) {
      throw new Error(`memory object ${this.#label()}: write [${offset}, ${end}) outside size ${this.#size}`);
    }
    const frames: Frame[] = [];
    for (let index = offset / PAGE; index * PAGE < end; index++) frames.push(this.fault(index));
    let done = 0;
    for (const frame of frames) {
      const at = offset + BigInt(done);
      const inPage = Number(at % PAGE);
      const chunk = Math.min(bytes.length - done, PAGE_SIZE - inPage);
      frame.data.set(bytes.subarray(done, done + chunk), inPage);
      done += chunk;
    }
  }

  /**
   * Sets the size as ftruncate does. Shrinking drops the pages past the new
   * end and zeroes the tail of the page that now holds EOF, so growing again
   * reads zeros there; pinned frames stay alive with their pinner.
   */
  resize(size: bigint): void {
    if (size < this.#size) {
      const keep = (size + PAGE - 1n) / PAGE;
      const end = this.pageCount;
      this.discard(keep, end);
      for (const copies of this.#shadows) copies.discard(keep, end);
      const tail = Number(size % PAGE);
      if (tail !== 0) this.#pages.get(size / PAGE)?.data.fill(0, tail);
    }
    this.#size = size;
  }

  /**
   * Registers the private copies a MAP_PRIVATE mapping made of this
   * object's pages. Truncation discards them with the originals, as the
   * kernel zaps COWed pages past the new EOF, so a later regrow does not
   * resurrect stale copies.
   */
  addShadow(copies: MemoryObject): void {
    this.#shadows.add(copies);
  }

  removeShadow(copies: MemoryObject): void {
    this.#shadows.delete(copies);
  }

  /** Drops the frames of pages [from, to): the zap of an unmapped private range. */
  discard(from: bigint, to: bigint): void {
    if (to - from < BigInt(this.#pages.size)) {
      for (let index = from; index < to; index++) this.#drop(index);
    } else {
      for (const index of [...this.#pages.keys()]) if (index >= from && index < to) this.#drop(index);
    }
  }

  #drop(index: bigint): void {
    const frame = this.#pages.get(index);
    if (frame) {
      this.#pages.delete(index);
      frame.put();
    }
  }

  #label(): string {
    return this.name ? `'${this.name}'` : `(${this.kind})`;
  }
}
