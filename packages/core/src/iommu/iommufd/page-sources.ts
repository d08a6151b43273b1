import { SimError } from '../../errors/index.js';
import { memfdObject, type AddressSpace, type OpenFile } from '../../os/index.js';
import type { PageSource, PinnedPage } from './iopt-pages.js';
import { PAGE_SIZE } from './limits.js';

/**
 * IOPT_ADDRESS_USER: pages of the address space that issued the map. The
 * source keeps the mm it was created in (the kernel's mmgrab of
 * pages->source_mm), so pinning later, when a domain is first attached,
 * still reads that process's memory, and fails with EFAULT once the
 * process has exited and its mappings are gone.
 */
export function userPageSource(mm: AddressSpace, base: bigint): PageSource {
  return {
    kind: 'user',
    base,
    pin(index: number, npages: number, write: boolean): PinnedPage[] {
      if (mm.released) throw new SimError('BAD_ADDRESS', 'the process that mapped these pages has exited');
      return mm.pinUserPages(base + BigInt(index) * PAGE_SIZE, npages, write).map((frame) => ({
        frame,
        pa: frame.pa,
        unpin: () => frame.unpin(),
      }));
    },
  };
}

/**
 * IOPT_ADDRESS_FILE: pages of a file from offset `base`, pinned through
 * memfd_pin_folios(), which takes only shmem (memfd) and hugetlbfs files
 * and stops at end of file, both with EINVAL. The source holds a reference
 * on the file for as long as any area maps it.
 */
export function filePageSource(file: OpenFile, base: bigint): PageSource {
  file.get();
  return {
    kind: 'file',
    base,
    pin(index: number, npages: number): PinnedPage[] {
      const object = memfdObject(file);
      if (!object) throw new SimError('INVALID_ARGUMENT', `a ${file.ops.kind} file cannot be pinned for DMA (not shmem or hugetlbfs)`);
      const first = base / PAGE_SIZE + BigInt(index);
      const last = first + BigInt(npages) - 1n;
      if (last >= object.pageCount) {
        throw new SimError('INVALID_ARGUMENT', `page ${last} is beyond the end of ${object.name}`);
      }
      const pinned: PinnedPage[] = [];
      try {
        for (let page = first; page <= last; page++) {
          const frame = object.fault(page);
          frame.pin();
          pinned.push({ frame, pa: frame.pa, unpin: () => frame.unpin() });
        }
      } catch (error) {
        for (const page of pinned) page.unpin();
        throw error;
      }
      return pinned;
    },
    release(): void {
      file.put();
    },
  };
}
