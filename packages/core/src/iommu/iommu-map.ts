import { SimError } from '../errors/index.js';
import { createIotlbGather, type IommuDomain } from './iommu-driver.js';

/*
 * iommu_map() / iommu_unmap() / iommu_iova_to_phys(): the core side of
 * changing a paging domain, the calls type1 and iommufd make. The core
 * splits a range into the largest pages the domain supports that fit the
 * alignment of both addresses (iommu_pgsize), calls the driver's
 * map_pages/unmap_pages, unwinds a failed map so it leaves nothing mapped,
 * and after an unmap runs the driver's iotlb_sync so the IOTLB (and the
 * device TLBs) forget what was unmapped.
 *
 * Public API: iommuPgsize(), iommuMap(), iommuUnmap(), iommuIovaToPhys()
 */

function lowestBit(x: bigint): bigint {
  return x & -x;
}

function highestBit(x: bigint): bigint {
  let bit = 1n;
  while (x >> 1n) {
    x >>= 1n;
    bit <<= 1n;
  }
  return bit;
}

/**
 * iommu_pgsize: the page size to use at `iova`/`pa` for up to `size`
 * bytes, and how many such pages to map before a larger size could take
 * over.
 */
export function iommuPgsize(pgsizeBitmap: bigint, iova: bigint, pa: bigint, size: bigint): { pgsize: bigint; count: bigint } {
  const addrMerge = iova | pa;
  // Page sizes no larger than what is left.
  let pgsizes = pgsizeBitmap & ((highestBit(size) << 1n) - 1n);
  // ...and no larger than the alignment of both addresses.
  if (addrMerge !== 0n) pgsizes &= (lowestBit(addrMerge) << 1n) - 1n;
  if (pgsizes === 0n) throw new Error('iommu_pgsize: no page size fits (caller checked alignment)');
  const pgsize = highestBit(pgsizes);
  let span = size;
  const bigger = pgsizeBitmap & ~((pgsize << 1n) - 1n);
  if (bigger !== 0n) {
    const next = lowestBit(bigger);
    // The larger size is usable further on only if both addresses share its alignment;
    // then stop where it could start, if a whole one would fit.
    if (((iova ^ pa) & (next - 1n)) === 0n) {
      const offset = next - (addrMerge & (next - 1n));
      if (offset + next <= size) span = offset;
    }
  }
  return { pgsize, count: span / pgsize };
}

function checkPaging(domain: IommuDomain, op: string): bigint {
  if (domain.kind !== 'paging') throw new SimError('INVALID_ARGUMENT', `${op} on a ${domain.kind} domain`);
  if (domain.pgsizeBitmap === 0n) throw new SimError('NO_DEVICE', `${op}: the domain has no page sizes`);
  return lowestBit(domain.pgsizeBitmap);
}

/**
 * iommu_map: maps [iova, iova + size) to [pa, ...) with IOMMU_READ/WRITE
 * `prot`. EINVAL unless iova, pa and size are aligned to the smallest page
 * size. A failure leaves nothing of the range mapped.
 */
export function iommuMap(domain: IommuDomain, iova: bigint, pa: bigint, size: bigint, prot: number): void {
  const minPage = checkPaging(domain, 'iommu_map');
  if (!domain.mapPages) throw new SimError('NO_DEVICE', 'iommu_map: the domain cannot map');
  if (((iova | pa | size) & (minPage - 1n)) !== 0n) {
    throw new SimError('INVALID_ARGUMENT', `iommu_map: iova 0x${iova.toString(16)}, pa 0x${pa.toString(16)}, size 0x${size.toString(16)} not aligned to 0x${minPage.toString(16)}`);
  }
  let done = 0n;
  try {
    while (done < size) {
      const { pgsize, count } = iommuPgsize(domain.pgsizeBitmap, iova + done, pa + done, size - done);
      done += domain.mapPages(iova + done, pa + done, pgsize, count, prot);
    }
  } catch (error) {
    if (done > 0n) iommuUnmap(domain, iova, done);
    throw error;
  }
}

/**
 * iommu_unmap: unmaps from `iova` up to `size` bytes, stopping at the first
 * hole, then syncs the IOTLB. Returns the bytes unmapped (which may exceed
 * `size` when the range ends inside a larger page); 0n for a misaligned
 * request, as the kernel answers (with a log message) rather than failing.
 */
export function iommuUnmap(domain: IommuDomain, iova: bigint, size: bigint): bigint {
  const minPage = checkPaging(domain, 'iommu_unmap');
  if (!domain.unmapPages) return 0n;
  if (((iova | size) & (minPage - 1n)) !== 0n) return 0n;
  const gather = createIotlbGather();
  let unmapped = 0n;
  while (unmapped < size) {
    const { pgsize, count } = iommuPgsize(domain.pgsizeBitmap, iova + unmapped, iova + unmapped, size - unmapped);
    const cleared = domain.unmapPages(iova + unmapped, pgsize, count, gather);
    if (cleared === 0n) break;
    unmapped += cleared;
  }
  domain.iotlbSync?.(gather);
  return unmapped;
}

/** iommu_iova_to_phys: identity maps 1:1, a blocking domain maps nothing (0n), as does an unmapped IOVA. */
export function iommuIovaToPhys(domain: IommuDomain, iova: bigint): bigint {
  if (domain.kind === 'identity') return iova;
  if (domain.kind === 'blocked' || !domain.iovaToPhys) return 0n;
  return domain.iovaToPhys(iova) ?? 0n;
}
