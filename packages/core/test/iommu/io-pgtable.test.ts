import { describe, expect, it } from 'vitest';
import {
  BLOCK_1G, BLOCK_2M, IOMMU_READ, IOMMU_WRITE, IoPageTable, PAGE_4K, PTE_BLOCK, PTE_DIRTY, PTE_PRESENT, PTE_READ,
  PTE_WRITE, PhysicalMemory, createTranslation, physReadU64, physTableMemory, walkNested,
} from '@vfiosim/core';
import { simError } from './helpers.js';

const RW = IOMMU_READ | IOMMU_WRITE;

function table() {
  const physMem = new PhysicalMemory();
  const mem = physTableMemory(physMem);
  return { physMem, mem, pt: new IoPageTable(mem) };
}

describe('generic IO page table', () => {
  it('keeps its entries in physical memory as little-endian 64-bit words', () => {
    const { physMem, pt } = table();
    pt.mapPages(0x1234_5000n, 0xabc_d000n, PAGE_4K, 1n, RW);
    // Follow the four levels by hand: indexes of IOVA 0x12345000 are 0, 0, 0x91, 0x145.
    const l0 = physReadU64(physMem, pt.root);
    expect(l0 & PTE_PRESENT).toBe(PTE_PRESENT);
    const l1 = physReadU64(physMem, (l0 & ~0xfffn));
    const l2 = physReadU64(physMem, (l1 & ~0xfffn) + 0x91n * 8n);
    const l3 = physReadU64(physMem, (l2 & ~0xfffn) + 0x145n * 8n);
    expect(l3).toBe(0xabc_d000n | PTE_PRESENT | PTE_READ | PTE_WRITE);
    const raw = physMem.read((l2 & ~0xfffn) + 0x145n * 8n, 8);
    expect([...raw]).toEqual([0x07, 0xd0, 0xbc, 0x0a, 0, 0, 0, 0]);
  });

  it('translates 4 KiB pages, 2 MiB and 1 GiB blocks with the offset inside the page', () => {
    const { pt } = table();
    pt.mapPages(0x1000n, 0x7000n, PAGE_4K, 2n, IOMMU_READ);
    pt.mapPages(0x4020_0000n, 0x8_0000_0000n, BLOCK_2M, 1n, RW);
    pt.mapPages(0x80_0000_0000n, 0x40_0000_0000n, BLOCK_1G, 1n, IOMMU_WRITE);
    const out = createTranslation();

    pt.walk(0x2abcn, false, out);
    expect(out).toMatchObject({ fault: null, pa: 0x8000n, pageSize: PAGE_4K, perm: IOMMU_READ });
    pt.walk(0x4030_1234n, false, out);
    expect(out).toMatchObject({ fault: null, pa: 0x8_0000_0000n, pageSize: BLOCK_2M, perm: RW });
    expect(pt.iovaToPhys(0x4030_1234n)).toBe(0x8_0010_1234n);
    expect(pt.iovaToPhys(0x80_1234_5678n)).toBe(0x40_1234_5678n);
    pt.walk(0x80_3fff_ffffn, false, out);
    expect(out).toMatchObject({ pageSize: BLOCK_1G, perm: IOMMU_WRITE });
  });

  it('reports an unmapped IOVA as not present, also beyond the 48-bit input range', () => {
    const { pt } = table();
    pt.mapPages(0x1000n, 0x7000n, PAGE_4K, 1n, RW);
    const out = createTranslation();
    pt.walk(0x3000n, false, out);
    expect(out).toMatchObject({ fault: 'not-present', faultAddr: 0x3000n });
    pt.walk(1n << 48n, false, out);
    expect(out.fault).toBe('not-present');
    expect(pt.iovaToPhys(0x3000n)).toBeNull();
  });

  it('refuses to map over a present page or inside a mapped block with EEXIST, leaving nothing of the call mapped', () => {
    const { pt } = table();
    pt.mapPages(0x20_0000n, 0x100_0000n, BLOCK_2M, 1n, RW);
    expect(simError(() => pt.mapPages(0x20_1000n, 0x5000n, PAGE_4K, 1n, RW)).errnoName).toBe('EEXIST');
    pt.mapPages(0x3000n, 0x9000n, PAGE_4K, 1n, RW);
    // Three pages from 0x1000: the third (0x3000) is taken, so 0x1000 and 0x2000 must not stay mapped.
    expect(simError(() => pt.mapPages(0x1000n, 0x5000n, PAGE_4K, 3n, RW)).errnoName).toBe('EEXIST');
    expect(pt.iovaToPhys(0x1000n)).toBeNull();
    expect(pt.iovaToPhys(0x2000n)).toBeNull();
    expect(pt.iovaToPhys(0x3000n)).toBe(0x9000n);
  });

  it('rejects misaligned or unsupported sizes with EINVAL', () => {
    const { pt } = table();
    expect(simError(() => pt.mapPages(0x1800n, 0x5000n, PAGE_4K, 1n, RW)).errnoName).toBe('EINVAL');
    expect(simError(() => pt.mapPages(0x20_0000n, 0x1000n, BLOCK_2M, 1n, RW)).errnoName).toBe('EINVAL');
    expect(simError(() => pt.mapPages(0x0n, 0x0n, 0x2000n, 1n, RW)).errnoName).toBe('EINVAL');
    expect(simError(() => pt.mapPages((1n << 48n) - PAGE_4K, 0x0n, PAGE_4K, 2n, RW)).errnoName).toBe('EINVAL');
  });

  it('unmaps page by page, stops at a hole, and clears a whole block when the request lands inside it', () => {
    const { pt } = table();
    pt.mapPages(0x1000n, 0x5000n, PAGE_4K, 2n, RW);
    pt.mapPages(0x40_0000n, 0x80_0000n, BLOCK_2M, 1n, RW);
    const cleared: [bigint, bigint][] = [];
    // 0x1000 and 0x2000 are mapped, 0x3000 is a hole: two pages go, the rest stays.
    expect(pt.unmapPages(0x1000n, PAGE_4K, 4n, (iova, size) => cleared.push([iova, size]))).toBe(0x2000n);
    expect(cleared).toEqual([[0x1000n, PAGE_4K], [0x2000n, PAGE_4K]]);
    expect(pt.unmapPages(0x41_0000n, PAGE_4K, 1n)).toBe(BLOCK_2M);
    expect(pt.iovaToPhys(0x40_0000n)).toBeNull();
    expect(pt.unmapPages(0x1000n, PAGE_4K, 1n)).toBe(0n);
  });

  it('unmapping a 2 MiB range over 4 KiB pages drops the whole lower table and returns its frame', () => {
    const { physMem, pt } = table();
    const before = physMem.allocatedFrames;
    pt.mapPages(0x20_0000n, 0x100_0000n, PAGE_4K, 3n, RW);
    expect(physMem.allocatedFrames).toBe(before + 3);
    expect(pt.unmapPages(0x20_0000n, BLOCK_2M, 1n)).toBe(BLOCK_2M);
    expect(physMem.allocatedFrames).toBe(before + 2);
    expect(pt.iovaToPhys(0x20_1000n)).toBeNull();
  });

  it('takes permissions as the AND of every level and marks blocks with PS', () => {
    const { physMem, pt } = table();
    pt.mapPages(0x20_0000n, 0x100_0000n, BLOCK_2M, 1n, IOMMU_READ);
    const l0 = physReadU64(physMem, pt.root);
    const l1 = physReadU64(physMem, l0 & ~0xfffn);
    const l2 = physReadU64(physMem, (l1 & ~0xfffn) + 8n);
    expect(l2 & PTE_BLOCK).toBe(PTE_BLOCK);
    expect(l2 & PTE_WRITE).toBe(0n);
  });

  it('sets the dirty bit on a write walk with dirty tracking, and reports and clears it', () => {
    const { pt } = table();
    pt.mapPages(0x1000n, 0x5000n, PAGE_4K, 4n, RW);
    pt.mapPages(0x6000n, 0x9000n, PAGE_4K, 1n, IOMMU_READ);
    const out = createTranslation();
    pt.walk(0x2000n, true, out);
    pt.walk(0x4000n, false, out);
    pt.walk(0x6000n, true, out);
    const seen: [bigint, bigint][] = [];
    pt.readAndClearDirty(0x0n, 0x10000n, true, (iova, size) => seen.push([iova, size]));
    // Only the page written with tracking on, and never a read-only one.
    expect(seen).toEqual([[0x2000n, PAGE_4K]]);
    pt.readAndClearDirty(0x0n, 0x10000n, false, null);
    seen.length = 0;
    pt.readAndClearDirty(0x0n, 0x10000n, false, (iova, size) => seen.push([iova, size]));
    expect(seen).toEqual([]);
    expect(PTE_DIRTY).toBe(1n << 6n);
  });

  it('frees every table frame it allocated', () => {
    const { physMem, pt } = table();
    const before = physMem.allocatedFrames;
    pt.mapPages(0x1000n, 0x5000n, PAGE_4K, 1n, RW);
    pt.mapPages(0x80_0000_0000n, 0x40_0000_0000n, BLOCK_1G, 1n, RW);
    pt.free();
    expect(physMem.allocatedFrames).toBe(before - 1);
  });

  it('walks a stage-1 table kept in guest memory through stage 2', () => {
    const physMem = new PhysicalMemory();
    const mem = physTableMemory(physMem);
    const s2 = new IoPageTable(mem);
    // Guest RAM: IPA 0x4000_0000.. backed by 16 host frames mapped in stage 2.
    const guestBase = 0x4000_0000n;
    const frames = Array.from({ length: 16 }, () => physMem.allocate());
    frames.forEach((f, i) => s2.mapPages(guestBase + BigInt(i) * PAGE_4K, f.pa, PAGE_4K, 1n, RW));
    // The guest builds its stage-1 table in its RAM, addressing it by IPA.
    let nextIpa = guestBase;
    const guestMem = {
      readU64: (ipa: bigint) => mem.readU64(s2.iovaToPhys(ipa)!),
      writeU64: (ipa: bigint, v: bigint) => mem.writeU64(s2.iovaToPhys(ipa)!, v),
      allocTable: () => {
        const ipa = nextIpa;
        nextIpa += PAGE_4K;
        return ipa;
      },
      freeTable: () => {},
    };
    const s1 = new IoPageTable(guestMem);
    expect(s1.root).toBe(guestBase);
    // Guest maps IOVA 0x1000 to its buffer at IPA guestBase + 0xf000 (read-only).
    s1.mapPages(0x1000n, guestBase + 0xf000n, PAGE_4K, 1n, IOMMU_READ);
    const out = createTranslation();
    const scratch = createTranslation();
    walkNested(mem, s1.root, s2.root, 0x1234n, false, out, scratch);
    expect(out).toMatchObject({ fault: null, pa: frames[15]!.pa, pageSize: PAGE_4K, perm: IOMMU_READ });

    // Stage-1 output outside guest RAM: a stage-2 fault at that IPA.
    s1.mapPages(0x2000n, 0x9000_0000n, PAGE_4K, 1n, RW);
    walkNested(mem, s1.root, s2.root, 0x2000n, false, out, scratch);
    expect(out).toMatchObject({ fault: 'stage2-not-present', faultAddr: 0x9000_0000n });

    // Not mapped by the guest: a stage-1 fault at the IOVA.
    walkNested(mem, s1.root, s2.root, 0x3000n, false, out, scratch);
    expect(out).toMatchObject({ fault: 'not-present', faultAddr: 0x3000n });

    // A stage-1 root the host never mapped: the table fetch itself faults in stage 2.
    walkNested(mem, 0x7000_0000n, s2.root, 0x1000n, false, out, scratch);
    expect(out).toMatchObject({ fault: 'stage2-not-present', faultAddr: 0x7000_0000n });
  });
});
