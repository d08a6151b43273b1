import { describe, expect, it } from 'vitest';
import { BLOCK_2M, DeviceTlb, IOMMU_READ, IOMMU_WRITE, IOTLB_ANY_PASID, Iotlb, PAGE_4K } from '@vfiosim/core';

const RW = IOMMU_READ | IOMMU_WRITE;

describe('IOTLB', () => {
  it('finds a translation by domain tag, PASID and any IOVA inside the cached page', () => {
    const tlb = new Iotlb();
    tlb.insert(7, 7, null, 0x1234n, 0x9000n, PAGE_4K, RW);
    tlb.insert(7, 7, null, 0x40_0000n, 0x80_0000n, BLOCK_2M, IOMMU_READ);
    expect(tlb.lookup(7, null, 0x1fffn)).toMatchObject({ iova: 0x1000n, pa: 0x9000n, perm: RW });
    expect(tlb.lookup(7, null, 0x5f_ffffn)).toMatchObject({ iova: 0x40_0000n, pageSize: BLOCK_2M });
    expect(tlb.lookup(8, null, 0x1000n)).toBeUndefined();
    expect(tlb.lookup(7, 3, 0x1000n)).toBeUndefined();
    expect(tlb.lookup(7, null, 0x2000n)).toBeUndefined();
  });

  it('invalidates by tag, by PASID and by range, dropping a block when any part of it is in range', () => {
    const tlb = new Iotlb();
    tlb.insert(1, 1, null, 0x1000n, 0xa000n, PAGE_4K, RW);
    tlb.insert(1, 1, 5, 0x1000n, 0xb000n, PAGE_4K, RW);
    tlb.insert(1, 1, null, 0x20_0000n, 0xc0_0000n, BLOCK_2M, RW);
    tlb.insert(2, 2, null, 0x1000n, 0xd000n, PAGE_4K, RW);

    tlb.invalidateRange(1, null, 0x3f_f000n, PAGE_4K);
    expect(tlb.lookup(1, null, 0x20_0000n)).toBeUndefined();
    expect(tlb.lookup(1, null, 0x1000n)).toBeDefined();

    tlb.invalidatePasid(1, 5);
    expect(tlb.lookup(1, 5, 0x1000n)).toBeUndefined();
    expect(tlb.lookup(1, null, 0x1000n)).toBeDefined();

    tlb.invalidateTag(1);
    expect(tlb.lookup(1, null, 0x1000n)).toBeUndefined();
    expect(tlb.lookup(2, null, 0x1000n)).toBeDefined();
    tlb.invalidateAll();
    expect(tlb.size).toBe(0);
  });

  it('drops every combined translation built on a stage 2 when that stage 2 is invalidated', () => {
    const tlb = new Iotlb();
    tlb.insert(10, 10, null, 0x1000n, 0xa000n, PAGE_4K, RW);
    tlb.insert(11, 10, 2, 0x5000n, 0xa000n, PAGE_4K, RW);
    tlb.insert(12, 10, null, 0x7000n, 0xa000n, PAGE_4K, RW);
    tlb.invalidateStage2(10);
    expect(tlb.lookup(11, 2, 0x5000n)).toBeUndefined();
    expect(tlb.lookup(12, null, 0x7000n)).toBeUndefined();
    expect(tlb.lookup(10, null, 0x1000n)).toBeDefined();
    tlb.insert(11, 10, 2, 0x5000n, 0xa000n, PAGE_4K, RW);
    tlb.invalidateTag(10);
    expect(tlb.size).toBe(0);
  });

  it('range invalidation of every PASID leaves other domains alone', () => {
    const tlb = new Iotlb();
    tlb.insert(1, 1, 4, 0x1000n, 0xa000n, PAGE_4K, RW);
    tlb.insert(1, 1, null, 0x1000n, 0xa000n, PAGE_4K, RW);
    tlb.insert(2, 2, 4, 0x1000n, 0xa000n, PAGE_4K, RW);
    tlb.invalidateRange(1, IOTLB_ANY_PASID, 0x0n, 0x10000n);
    expect([...tlb.entries()].map((e) => e.tag)).toEqual([2]);
  });

  it('evicts the oldest entry when full', () => {
    const tlb = new Iotlb({ capacity: 2 });
    tlb.insert(1, 1, null, 0x1000n, 0xa000n, PAGE_4K, RW);
    tlb.insert(1, 1, null, 0x2000n, 0xb000n, PAGE_4K, RW);
    tlb.insert(1, 1, null, 0x3000n, 0xc000n, PAGE_4K, RW);
    expect(tlb.lookup(1, null, 0x1000n)).toBeUndefined();
    expect(tlb.lookup(1, null, 0x3000n)).toBeDefined();
    expect(tlb.size).toBe(2);
    expect(() => new Iotlb({ capacity: 0 })).toThrow(RangeError);
  });

  it('replaces the entry for the same page instead of keeping two', () => {
    const tlb = new Iotlb();
    tlb.insert(1, 1, null, 0x1000n, 0xa000n, PAGE_4K, RW);
    tlb.insert(1, 1, null, 0x1800n, 0xe000n, PAGE_4K, IOMMU_READ);
    expect(tlb.size).toBe(1);
    expect(tlb.lookup(1, null, 0x1000n)).toMatchObject({ pa: 0xe000n, perm: IOMMU_READ });
  });
});

describe('IOTLB lookups across page sizes and the whole 64-bit IOVA space', () => {
  it('answers a 4 KiB entry inside a cached block when that size was cached first, for every IOVA of it', () => {
    const tlb = new Iotlb();
    tlb.insert(1, 1, null, 0x1000n, 0xa000n, PAGE_4K, RW);
    tlb.insert(1, 1, null, 0x0n, 0x40_0000n, BLOCK_2M, RW);
    expect(tlb.lookup(1, null, 0x0n)?.pageSize).toBe(BLOCK_2M);
    expect(tlb.lookup(1, null, 0x1008n)?.pa).toBe(0xa000n);
    expect(tlb.lookup(1, null, 0x10n)?.pageSize).toBe(BLOCK_2M);
    expect(tlb.lookup(1, null, 0x1010n)?.pa).toBe(0xa000n);
  });

  it('caches and invalidates pages above 2^53 apart from their neighbours', () => {
    const tlb = new Iotlb();
    const high = 0xffff_ffff_ffff_f000n;
    tlb.insert(1, 1, null, high, 0xa000n, PAGE_4K, RW);
    tlb.insert(1, 1, null, high - PAGE_4K, 0xb000n, PAGE_4K, RW);
    tlb.insert(1, 1, null, 1n << 53n, 0xc000n, PAGE_4K, RW);
    expect(tlb.lookup(1, null, high + 0xfffn)?.pa).toBe(0xa000n);
    expect(tlb.lookup(1, null, high - 1n)?.pa).toBe(0xb000n);
    expect(tlb.lookup(1, null, (1n << 53n) + 1n)?.pa).toBe(0xc000n);
    expect(tlb.lookup(1, null, (1n << 53n) - 1n)).toBeUndefined();
    tlb.invalidateRange(1, null, high, PAGE_4K);
    expect(tlb.lookup(1, null, high)).toBeUndefined();
    expect(tlb.lookup(1, null, high - PAGE_4K)).toBeDefined();
  });

  it('forgets a translation it just answered once that is invalidated or replaced', () => {
    const tlb = new Iotlb();
    tlb.insert(1, 1, null, 0x1000n, 0xa000n, PAGE_4K, RW);
    expect(tlb.lookup(1, null, 0x1000n)?.pa).toBe(0xa000n);
    tlb.insert(1, 1, null, 0x1000n, 0xb000n, PAGE_4K, RW);
    expect(tlb.lookup(1, null, 0x1004n)?.pa).toBe(0xb000n);
    tlb.invalidateTag(1);
    expect(tlb.lookup(1, null, 0x1000n)).toBeUndefined();
    tlb.insert(1, 1, null, 0x1000n, 0xc000n, PAGE_4K, RW);
    expect(tlb.lookup(1, null, 0x1000n)?.pa).toBe(0xc000n);
    tlb.invalidateAll();
    expect(tlb.lookup(1, null, 0x1000n)).toBeUndefined();
  });

  it('invalidateTagWhere drops only the matching entries of one tag, leaving nested entries built on it', () => {
    const tlb = new Iotlb();
    tlb.insert(1, 1, null, 0x1000n, 0xa000n, PAGE_4K, RW);
    tlb.insert(1, 1, 3, 0x2000n, 0xb000n, PAGE_4K, RW);
    tlb.insert(2, 1, null, 0x1000n, 0xc000n, PAGE_4K, RW);
    tlb.invalidateTagWhere(1, (e) => e.iova === 0x2000n);
    expect(tlb.lookup(1, 3, 0x2000n)).toBeUndefined();
    expect(tlb.lookup(1, null, 0x1000n)).toBeDefined();
    tlb.invalidateTagWhere(1);
    expect([...tlb.entries()].map((e) => e.tag)).toEqual([2]);
  });
});

describe('device TLB (ATC)', () => {
  it('caches per PASID and forgets only on an ATS invalidation', () => {
    const atc = new DeviceTlb();
    atc.insert(null, 0x1000n, 0xa000n, PAGE_4K, RW);
    atc.insert(3, 0x1000n, 0xb000n, PAGE_4K, RW);
    expect(atc.lookup(3, 0x1004n)?.pa).toBe(0xb000n);
    atc.invalidateRange(null, 0x1000n, PAGE_4K);
    expect(atc.lookup(null, 0x1000n)).toBeUndefined();
    expect(atc.lookup(3, 0x1000n)).toBeDefined();
    atc.invalidateRange(IOTLB_ANY_PASID, 0x0n, 0x10000n);
    expect(atc.size).toBe(0);
  });
});
