import { describe, expect, it } from 'vitest';
import {
  BLOCK_2M, IOMMU_READ, IOMMU_WRITE, MOCK_FLAGS_DEVICE_HUGE_IOVA, PAGE_4K, iommuIovaToPhys, iommuMap, iommuPgsize,
  iommuUnmap, createTranslation, type MockPagingDomain,
} from '@vfiosim/core';
import { mockHost, simError } from './helpers.js';

const RW = IOMMU_READ | IOMMU_WRITE;

describe('iommu_map / iommu_unmap', () => {
  it('picks the largest page both addresses allow and stops where a larger one could start', () => {
    const bitmap = PAGE_4K | BLOCK_2M;
    expect(iommuPgsize(bitmap, 0x20_0000n, 0x40_0000n, 0x40_0000n)).toEqual({ pgsize: BLOCK_2M, count: 2n });
    // 4 KiB pages up to the next 2 MiB boundary, then blocks.
    expect(iommuPgsize(bitmap, 0x1f_f000n, 0x3f_f000n, 0x40_1000n)).toEqual({ pgsize: PAGE_4K, count: 1n });
    // Addresses that disagree modulo 2 MiB can never use a block: no early stop.
    expect(iommuPgsize(bitmap, 0x1f_f000n, 0x3f_e000n, 0x40_1000n)).toEqual({ pgsize: PAGE_4K, count: 0x401n });
  });

  it('maps with blocks where it can and unmaps through iotlb_sync', () => {
    const { core, device } = mockHost();
    const dev = device(1, MOCK_FLAGS_DEVICE_HUGE_IOVA);
    const domain = core.pagingDomainAlloc(dev) as MockPagingDomain;
    iommuMap(domain, 0x1f_f000n, 0x7f_f000n, 0x20_2000n, RW);
    expect(iommuIovaToPhys(domain, 0x30_0000n)).toBe(0x90_0000n);
    expect(iommuIovaToPhys(domain, 0x40_0fffn)).toBe(0xa0_0fffn);
    const walk = createTranslation();
    domain.translate(0x30_0000n, null, IOMMU_READ, walk);
    expect(walk.pageSize).toBe(BLOCK_2M);
    expect(iommuUnmap(domain, 0x1f_f000n, 0x20_2000n)).toBe(0x20_2000n);
    expect(iommuIovaToPhys(domain, 0x30_0000n)).toBe(0n);
  });

  it('rejects a map not aligned to the smallest page with EINVAL, and unwinds a failed map', () => {
    const { core, device } = mockHost();
    const dev = device(1);
    const domain = core.pagingDomainAlloc(dev);
    expect(simError(() => iommuMap(domain, 0x1800n, 0x1000n, PAGE_4K, RW)).errnoName).toBe('EINVAL');
    iommuMap(domain, 0x3000n, 0x9000n, PAGE_4K, RW);
    expect(simError(() => iommuMap(domain, 0x1000n, 0x5000n, 3n * PAGE_4K, RW)).errnoName).toBe('EEXIST');
    expect(iommuIovaToPhys(domain, 0x1000n)).toBe(0n);
    expect(iommuIovaToPhys(domain, 0x2000n)).toBe(0n);
    expect(iommuIovaToPhys(domain, 0x3004n)).toBe(0x9004n);
  });

  it('answers 0 for a misaligned unmap and stops at the first hole', () => {
    const { core, device } = mockHost();
    const domain = core.pagingDomainAlloc(device(1));
    iommuMap(domain, 0x1000n, 0x5000n, PAGE_4K, RW);
    iommuMap(domain, 0x3000n, 0x9000n, PAGE_4K, RW);
    expect(iommuUnmap(domain, 0x1800n, PAGE_4K)).toBe(0n);
    expect(iommuUnmap(domain, 0x1000n, 3n * PAGE_4K)).toBe(PAGE_4K);
    expect(iommuIovaToPhys(domain, 0x3000n)).toBe(0x9000n);
  });

  it('refuses to map a non-paging domain with EINVAL', () => {
    const { mock } = mockHost();
    expect(simError(() => iommuMap(mock.blockedDomain, 0x1000n, 0x1000n, PAGE_4K, RW)).errnoName).toBe('EINVAL');
    expect(iommuIovaToPhys(mock.blockedDomain, 0x1000n)).toBe(0n);
  });
});
