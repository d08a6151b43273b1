import { SimError } from '../../errors/index.js';
import type { Frame } from '../../os/index.js';
import { PAGE_SIZE } from './limits.js';

/** A page pinned for DMA: its frame and physical address, and the way to give the pin back. */
export interface PinnedPage {
  readonly frame: Frame;
  readonly pa: bigint;
  unpin(): void;
}

/**
 * Where the memory behind an IOAS mapping comes from (the kernel's
 * iopt_address_type): a range of a process's address space, or a range of a
 * file such as a memfd. Page `index` is counted from `base`, which is page
 * aligned (the kernel rounds uptr and the file start down and keeps the
 * remainder as the area's page offset).
 */
export interface PageSource {
  readonly kind: 'user' | 'file';
  /** The page-aligned user VA or file offset of page 0. */
  readonly base: bigint;
  /**
   * Pins `npages` consecutive pages from page `index` and returns them in
   * order. Throws the SimError the kernel's pin path answers with (EFAULT for
   * an unmapped or read-only user range, EINVAL for a file that cannot be
   * pinned) and leaves nothing pinned when it does.
   */
  pin(index: number, npages: number, write: boolean): PinnedPage[];
  /** The last area and list let go of the pages: drop what the source holds (a file reference). */
  release?(): void;
}

interface PinSlot {
  readonly page: PinnedPage;
  holders: number;
}

/**
 * struct iopt_pages: one user VA range or file range that one or more areas
 * map (IOMMU_IOAS_COPY makes areas in several IOASes share it). Pinning is
 * lazy, as in the kernel: pages are pinned when an area is first filled into
 * a domain, and each page stays pinned while any area that covers it is
 * filled into a domain. The last holder to let go unpins it.
 */
export class IoptPages {
  #refs = 1;
  readonly #pins = new Map<number, PinSlot>();
  /** In-kernel accesses holding page ranges (iopt_pages::access_itree), by "first:last", with their user counts. */
  readonly #accesses = new Map<string, { users: number }>();

  constructor(
    readonly source: PageSource,
    readonly npages: number,
    readonly writable: boolean,
  ) {}

  get refs(): number {
    return this.#refs;
  }

  /** Number of pages currently pinned (iopt_pages::npinned). */
  get npinned(): number {
    return this.#pins.size;
  }

  get(): void {
    this.#refs++;
  }

  put(): void {
    if (this.#refs <= 0) throw new Error('iopt_pages: reference count underflow');
    this.#refs--;
    if (this.#refs !== 0) return;
    if (this.#pins.size !== 0) throw new Error('iopt_pages: freed with pages still pinned');
    this.source.release?.();
  }

  /**
   * Takes a hold on pages [first, last], pinning the ones no one holds yet.
   * All or nothing: if a pin fails, the pins taken by this call are dropped
   * and the error propagates.
   */
  acquire(first: number, last: number): void {
    const pinnedNow: number[] = [];
    try {
      let index = first;
      while (index <= last) {
        if (this.#pins.has(index)) {
          index++;
          continue;
        }
        let end = index;
        while (end + 1 <= last && !this.#pins.has(end + 1)) end++;
        const pages = this.source.pin(index, end - index + 1, this.writable);
        pages.forEach((page, i) => {
          this.#pins.set(index + i, { page, holders: 0 });
          pinnedNow.push(index + i);
        });
        index = end + 1;
      }
    } catch (error) {
      for (const index of pinnedNow) {
        this.#pins.get(index)!.page.unpin();
        this.#pins.delete(index);
      }
      throw error;
    }
    for (let index = first; index <= last; index++) this.#pins.get(index)!.holders++;
  }

  /** Drops a hold taken by acquire(); pages nobody holds any more are unpinned. */
  release(first: number, last: number): void {
    for (let index = first; index <= last; index++) {
      const slot = this.#pins.get(index);
      if (!slot) throw new Error(`iopt_pages: page ${index} released but not pinned`);
      slot.holders--;
      if (slot.holders === 0) {
        slot.page.unpin();
        this.#pins.delete(index);
      }
    }
  }

  /** Physical address of a held page. */
  pa(index: number): bigint {
    const slot = this.#pins.get(index);
    if (!slot) throw new Error(`iopt_pages: page ${index} is not pinned`);
    return slot.page.pa;
  }

  /**
   * iopt_pages_add_access(): an in-kernel access takes pages [first, last]
   * and gets their frames. The same range taken again only counts one more
   * user; a new range holds its pages like a domain does (pinning the ones
   * no one holds yet), so they stay pinned whatever the domains do. EPERM
   * for a write access to memory that was mapped read-only.
   */
  addAccess(first: number, last: number, write: boolean): Frame[] {
    if (write && !this.writable) throw new SimError('NOT_PERMITTED', 'a write access to pages mapped read-only');
    const key = `${first}:${last}`;
    const existing = this.#accesses.get(key);
    if (existing) {
      existing.users++;
    } else {
      this.acquire(first, last);
      this.#accesses.set(key, { users: 1 });
    }
    const frames: Frame[] = [];
    for (let index = first; index <= last; index++) frames.push(this.#pins.get(index)!.page.frame);
    return frames;
  }

  /**
   * iopt_pages_remove_access(): undoes addAccess for exactly the same range
   * (the kernel WARNs at any other range, a driver bug); the last user of a
   * range lets go of its pages.
   */
  removeAccess(first: number, last: number): void {
    const key = `${first}:${last}`;
    const access = this.#accesses.get(key);
    if (!access) throw new Error(`iopt_pages: no access holds pages ${first}..${last}`);
    if (--access.users !== 0) return;
    this.#accesses.delete(key);
    this.release(first, last);
  }

  /**
   * iopt_pages_rw_access(): the CPU copies to or from the memory behind
   * bytes [startByte, startByte + data.length) of the pages. A page someone
   * holds is reached through its pinned frame; any other is pinned from the
   * source for the copy and let go again (the kernel's copy through the
   * source mm or its slow path, which reach the same pages). EPERM for a
   * write to memory mapped read-only; a source that cannot supply a page
   * answers with its own error (EFAULT for user memory that is gone).
   */
  rw(startByte: bigint, data: Uint8Array, write: boolean): void {
    if (write && !this.writable) throw new SimError('NOT_PERMITTED', 'a write to pages mapped read-only');
    let done = 0;
    while (done < data.length) {
      const byte = startByte + BigInt(done);
      const index = Number(byte / PAGE_SIZE);
      const offset = Number(byte % PAGE_SIZE);
      const count = Math.min(data.length - done, Number(PAGE_SIZE) - offset);
      const held = this.#pins.get(index);
      const page = held ? held.page : this.source.pin(index, 1, write)[0]!;
      try {
        if (write) page.frame.data.set(data.subarray(done, done + count), offset);
        else data.set(page.frame.data.subarray(offset, offset + count), done);
      } finally {
        if (!held) page.unpin();
      }
      done += count;
    }
  }
}
