import { describe, expect, it } from 'vitest';
import {
  DmaEngine, IOMMU_HWPT_ALLOC_DIRTY_TRACKING, IOMMU_HWPT_ALLOC_NEST_PARENT, IOMMU_HWPT_DATA_SELFTEST,
  IOMMU_HWPT_INVALIDATE_DATA_SELFTEST, IOMMU_READ, IOMMU_TEST_IOTLB_DEFAULT, IOMMU_WRITE, IoPageTable, IommuFaultError,
  MOCK_FLAGS_DEVICE_PASID, MockNestedDomain, MockPagingDomain, PAGE_4K, VirtualClock, iommuMap, iommuUnmap,
  iommu_hwpt_invalidate_selftest, iommu_hwpt_selftest, type DmaFault, type IommuClientDevice, type TableMemory,
} from '@vfiosim/core';
import { WindowUserMemory, mockHost, type MockHost } from './helpers.js';

const RW = IOMMU_READ | IOMMU_WRITE;
const IOVA = 0x100_0000n; // MOCK_APERTURE_START

/** A mock device owned by userspace, attached to a fresh paging domain. */
function pagingSetup(options: { ats?: boolean; flags?: number; detect?: boolean; domainFlags?: number } = {}) {
  const host = mockHost();
  const clock = new VirtualClock();
  const dev = host.device(1, options.flags ?? 0, { atsCapable: options.ats ?? false });
  host.core.deviceClaimDmaOwner(dev, host);
  const domain = host.core.pagingDomainAlloc(dev, options.domainFlags ?? 0) as MockPagingDomain;
  host.core.replaceGroupDomain(1, domain);
  const dma = new DmaEngine(host.core, host.physMem, { detectStaleTranslations: options.detect ?? true, now: () => clock.now });
  return { ...host, clock, dev, domain, dma };
}

function bytes(...values: number[]): Uint8Array {
  return Uint8Array.from(values);
}

describe('DMA through a paging domain', () => {
  it('writes and reads the physical frames the IOVAs are mapped to, across pages', () => {
    const { physMem, domain, dma, dev } = pagingSetup();
    const a = physMem.allocate();
    const b = physMem.allocate();
    iommuMap(domain, IOVA, b.pa, PAGE_4K, RW);
    iommuMap(domain, IOVA + PAGE_4K, a.pa, PAGE_4K, RW);
    dma.dmaWrite(dev, IOVA + 0xffen, bytes(1, 2, 3, 4));
    expect([...b.data.subarray(0xffe)]).toEqual([1, 2]);
    expect([...a.data.subarray(0, 2)]).toEqual([3, 4]);
    expect([...dma.dmaRead(dev, IOVA + 0xffdn, 5)]).toEqual([0, 1, 2, 3, 4]);
  });

  it('refuses a DMA that touches an unmapped IOVA: nothing is written and the fault is logged', () => {
    const { physMem, domain, dma, dev, clock } = pagingSetup();
    const a = physMem.allocate();
    iommuMap(domain, IOVA, a.pa, PAGE_4K, RW);
    clock.advance(5000n);
    const seen: DmaFault[] = [];
    dma.hooks.fault.tap('test', (fault) => seen.push(fault));

    let thrown: unknown;
    try {
      dma.dmaWrite(dev, IOVA + 0xff0n, new Uint8Array(0x20).fill(0xee));
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(IommuFaultError);
    expect((thrown as IommuFaultError).errnoName).toBe('EIO');
    expect((thrown as IommuFaultError).code).toBe('IOMMU_FAULT');
    // The first 16 bytes were translatable, but the access is all or nothing.
    expect(a.data.every((x) => x === 0)).toBe(true);
    expect(dma.faultLog).toEqual([{
      time: 5000n, device: dev, iova: IOVA + PAGE_4K, pasid: null, direction: 'write', reason: 'not-present', addr: IOVA + PAGE_4K,
    }]);
    expect(seen).toEqual(dma.faultLog);
    expect(dma.tryDmaRead(dev, 0x5000n, new Uint8Array(4))).toMatchObject({ reason: 'not-present', direction: 'read' });
    dma.clearFaultLog();
    expect(dma.faultLog).toEqual([]);
  });

  it('refuses a write through a read-only mapping with a permission fault', () => {
    const { physMem, domain, dma, dev } = pagingSetup();
    const a = physMem.allocate();
    iommuMap(domain, IOVA, a.pa, PAGE_4K, IOMMU_READ);
    expect(dma.tryDmaWrite(dev, IOVA, bytes(9))).toMatchObject({ reason: 'permission', iova: IOVA });
    expect(a.data[0]).toBe(0);
    expect(dma.tryDmaRead(dev, IOVA, new Uint8Array(1))).toBeNull();
  });

  it('keeps using a stale translation after a page-table change without invalidation, and the detector records it', () => {
    const { physMem, domain, dma, dev, clock } = pagingSetup({ detect: true });
    const oldFrame = physMem.allocate();
    const newFrame = physMem.allocate();
    iommuMap(domain, IOVA, oldFrame.pa, PAGE_4K, RW);
    dma.dmaRead(dev, IOVA, 4); // the IOTLB now holds IOVA -> oldFrame

    // A driver bug: the table changes, nobody flushes.
    domain.pgtable.unmapPages(IOVA, PAGE_4K, 1n);
    domain.pgtable.mapPages(IOVA, newFrame.pa, PAGE_4K, 1n, RW);
    clock.advance(77n);
    dma.dmaWrite(dev, IOVA + 8n, bytes(0xaa));
    expect(oldFrame.data[8]).toBe(0xaa);
    expect(newFrame.data[8]).toBe(0);
    expect(dma.staleLog).toEqual([{
      time: 77n,
      device: dev,
      iova: IOVA + 8n,
      pasid: null,
      direction: 'write',
      cache: 'iotlb',
      cached: { iova: IOVA, pa: oldFrame.pa, pageSize: PAGE_4K, perm: RW },
      correct: { iova: IOVA, pa: newFrame.pa, pageSize: PAGE_4K, perm: RW },
      correctFault: null,
    }]);

    // After the invalidation the fresh translation is used and nothing more is recorded.
    domain.flushIotlbAll();
    dma.clearStaleLog();
    dma.dmaWrite(dev, IOVA + 8n, bytes(0xbb));
    expect(newFrame.data[8]).toBe(0xbb);
    expect(oldFrame.data[8]).toBe(0xaa);
    expect(dma.staleLog).toEqual([]);
  });

  it('records a stale hit on an unmapped page, and is silent when switched off', () => {
    const { physMem, domain, dma, dev } = pagingSetup({ detect: false });
    const frame = physMem.allocate();
    iommuMap(domain, IOVA, frame.pa, PAGE_4K, RW);
    dma.dmaRead(dev, IOVA, 1);
    domain.pgtable.unmapPages(IOVA, PAGE_4K, 1n);
    dma.dmaWrite(dev, IOVA, bytes(1));
    expect(frame.data[0]).toBe(1);
    expect(dma.staleLog).toEqual([]);
    dma.detectStaleTranslations = true;
    dma.dmaWrite(dev, IOVA, bytes(2));
    expect(dma.staleLog).toHaveLength(1);
    expect(dma.staleLog[0]).toMatchObject({ correct: null, correctFault: 'not-present', cached: { pa: frame.pa } });
  });

  it('iommu_unmap flushes the IOTLB: the next DMA to the IOVA faults instead of reaching the old page', () => {
    const { physMem, domain, dma, dev } = pagingSetup();
    const frame = physMem.allocate();
    iommuMap(domain, IOVA, frame.pa, 2n * PAGE_4K, RW);
    dma.dmaRead(dev, IOVA, 2 * 4096);
    expect(iommuUnmap(domain, IOVA, PAGE_4K)).toBe(PAGE_4K);
    expect(dma.tryDmaWrite(dev, IOVA, bytes(5))?.reason).toBe('not-present');
    expect(frame.data[0]).toBe(0);
    expect(dma.staleLog).toEqual([]);
  });

  it('a device with an ATC keeps its stale translation after an IOTLB-only flush, until the ATS invalidation', () => {
    const { physMem, domain, dma, dev, mock } = pagingSetup({ ats: true });
    const oldFrame = physMem.allocate();
    const newFrame = physMem.allocate();
    iommuMap(domain, IOVA, oldFrame.pa, PAGE_4K, RW);
    dma.dmaRead(dev, IOVA, 1);
    domain.pgtable.unmapPages(IOVA, PAGE_4K, 1n);
    domain.pgtable.mapPages(IOVA, newFrame.pa, PAGE_4K, 1n, RW);
    mock.iommu.iotlb.invalidateAll();

    dma.dmaWrite(dev, IOVA, bytes(3));
    expect(oldFrame.data[0]).toBe(3);
    expect(dma.staleLog).toHaveLength(1);
    expect(dma.staleLog[0]!.cache).toBe('devtlb');

    mock.iommu.deviceTlb(dev)!.invalidateAll();
    dma.dmaWrite(dev, IOVA, bytes(4));
    expect(newFrame.data[0]).toBe(4);
  });

  it('lets no DMA through a blocking domain, and none on a PASID nothing is attached to', () => {
    const host = mockHost();
    const dev = host.device(1, MOCK_FLAGS_DEVICE_PASID);
    const dma = new DmaEngine(host.core, host.physMem);
    expect(dma.tryDmaRead(dev, 0x1000n, new Uint8Array(1))?.reason).toBe('blocked');
    host.core.deviceClaimDmaOwner(dev, host);
    const domain = host.core.pagingDomainAlloc(dev);
    host.core.replaceGroupDomain(1, domain);
    expect(dma.tryDmaRead(dev, IOVA, new Uint8Array(1), 7)).toMatchObject({ reason: 'no-pasid-domain', pasid: 7 });

    const frame = host.physMem.allocate();
    const pasidDomain = host.core.pagingDomainAlloc(dev);
    iommuMap(pasidDomain, IOVA, frame.pa, PAGE_4K, RW);
    host.core.attachDevicePasid(dev, 7, pasidDomain);
    dma.dmaWrite(dev, IOVA, bytes(6), 7);
    expect(frame.data[0]).toBe(6);
    expect(dma.tryDmaWrite(dev, IOVA, bytes(6))?.reason).toBe('not-present');
  });

  it('sends DMA from a device behind no IOMMU straight to physical memory', () => {
    const host = mockHost();
    const frame = host.physMem.allocate();
    const dev: IommuClientDevice = { name: '0000:00:1f.0', rid: 0xf8, maxPasidLog2: 0, atsCapable: false };
    const dma = new DmaEngine(host.core, host.physMem);
    dma.dmaWrite(dev, frame.pa + 3n, bytes(8));
    expect(frame.data[3]).toBe(8);
  });

  it('sets dirty bits for writes while dirty tracking is on, and not for reads', () => {
    const { physMem, domain, dma, dev } = pagingSetup({ domainFlags: IOMMU_HWPT_ALLOC_DIRTY_TRACKING });
    const frames = [physMem.allocate(), physMem.allocate(), physMem.allocate()];
    frames.forEach((f, i) => iommuMap(domain, IOVA + BigInt(i) * PAGE_4K, f.pa, PAGE_4K, RW));
    dma.dmaWrite(dev, IOVA, bytes(1)); // before tracking: not dirty
    domain.dirtyOps!.setDirtyTracking(true);
    dma.dmaRead(dev, IOVA + PAGE_4K, 1);
    dma.dmaWrite(dev, IOVA + 2n * PAGE_4K, bytes(1));
    // The first page's translation was cached by a write already; flush as iommufd does after clearing.
    domain.flushIotlbAll();
    dma.dmaWrite(dev, IOVA, bytes(2));
    const dirty: bigint[] = [];
    domain.dirtyOps!.readAndClearDirty(IOVA, 3n * PAGE_4K, false, (iova) => dirty.push(iova));
    expect(dirty).toEqual([IOVA, IOVA + 2n * PAGE_4K]);
  });
});

describe('translation without data movement', () => {
  it('answers the physical address through the IOTLB, sets the dirty state on a write and logs a refusal as a DMA would', () => {
    const { physMem, domain, dma, dev } = pagingSetup();
    const a = physMem.allocate();
    iommuMap(domain, IOVA, a.pa, PAGE_4K, IOMMU_READ);
    expect(dma.translate(dev, IOVA + 0x123n, IOMMU_READ)).toBe(a.pa + 0x123n);
    expect(dma.translate(dev, IOVA + 0x124n, IOMMU_READ)).toBe(a.pa + 0x124n);
    expect(dma.translate(dev, IOVA + 8n, IOMMU_WRITE)).toMatchObject({ reason: 'permission', direction: 'write', iova: IOVA + 8n });
    expect(dma.translate(dev, IOVA + PAGE_4K, IOMMU_READ)).toMatchObject({ reason: 'not-present', direction: 'read' });
    expect(dma.faultLog).toHaveLength(2);
    expect(() => dma.translate(dev, IOVA, RW)).toThrow(RangeError);
  });

  it('keeps using a cached translation after an unmap without invalidation, and the detector reports it', () => {
    const { physMem, domain, dma, dev } = pagingSetup();
    const a = physMem.allocate();
    iommuMap(domain, IOVA, a.pa, PAGE_4K, RW);
    expect(dma.translate(dev, IOVA, IOMMU_READ)).toBe(a.pa);
    domain.pgtable.unmapPages(IOVA, PAGE_4K, 1n, () => {});
    expect(dma.translate(dev, IOVA + 4n, IOMMU_READ)).toBe(a.pa + 4n);
    expect(dma.staleLog).toMatchObject([{ iova: IOVA + 4n, cache: 'iotlb', correct: null, correctFault: 'not-present' }]);
  });

  it('answers a repeated translation from the new domain once the group is attached elsewhere', () => {
    const { physMem, domain, dma, dev, core } = pagingSetup({ detect: false });
    const a = physMem.allocate();
    const b = physMem.allocate();
    iommuMap(domain, IOVA, a.pa, PAGE_4K, RW);
    expect(dma.translate(dev, IOVA + 8n, IOMMU_READ)).toBe(a.pa + 8n);
    expect(dma.translate(dev, IOVA + 9n, IOMMU_READ)).toBe(a.pa + 9n);
    const other = core.pagingDomainAlloc(dev) as MockPagingDomain;
    iommuMap(other, IOVA, b.pa, PAGE_4K, RW);
    core.replaceGroupDomain(1, other);
    expect(dma.translate(dev, IOVA + 8n, IOMMU_READ)).toBe(b.pa + 8n);
    core.replaceGroupDomain(1, core.group(1)!.blockingDomain);
    expect(dma.translate(dev, IOVA + 8n, IOMMU_READ)).toMatchObject({ reason: 'blocked' });
  });

  it('keeps a repeated translation until the IOTLB is flushed, and reports it once the detector is switched on', () => {
    const { physMem, domain, dma, dev } = pagingSetup({ detect: false });
    const oldFrame = physMem.allocate();
    const newFrame = physMem.allocate();
    iommuMap(domain, IOVA, oldFrame.pa, PAGE_4K, RW);
    expect(dma.translate(dev, IOVA, IOMMU_READ)).toBe(oldFrame.pa);
    domain.pgtable.unmapPages(IOVA, PAGE_4K, 1n);
    domain.pgtable.mapPages(IOVA, newFrame.pa, PAGE_4K, 1n, RW);
    expect(dma.translate(dev, IOVA + 4n, IOMMU_READ)).toBe(oldFrame.pa + 4n);
    expect(dma.staleLog).toEqual([]);
    dma.detectStaleTranslations = true;
    expect(dma.translate(dev, IOVA + 4n, IOMMU_READ)).toBe(oldFrame.pa + 4n);
    expect(dma.staleLog).toHaveLength(1);
    expect(dma.staleLog[0]).toMatchObject({ cache: 'iotlb', cached: { pa: oldFrame.pa }, correct: { pa: newFrame.pa } });
    dma.detectStaleTranslations = false;
    domain.flushIotlbAll();
    expect(dma.translate(dev, IOVA + 4n, IOMMU_READ)).toBe(newFrame.pa + 4n);
  });

  it('keeps a repeated ATC translation through an IOTLB flush, until the ATS invalidation', () => {
    const { physMem, domain, dma, dev, mock } = pagingSetup({ ats: true, detect: false });
    const oldFrame = physMem.allocate();
    const newFrame = physMem.allocate();
    iommuMap(domain, IOVA, oldFrame.pa, PAGE_4K, RW);
    expect(dma.translate(dev, IOVA, IOMMU_READ)).toBe(oldFrame.pa);
    expect(dma.translate(dev, IOVA, IOMMU_READ)).toBe(oldFrame.pa);
    domain.pgtable.unmapPages(IOVA, PAGE_4K, 1n);
    domain.pgtable.mapPages(IOVA, newFrame.pa, PAGE_4K, 1n, RW);
    mock.iommu.iotlb.invalidateAll();
    expect(dma.translate(dev, IOVA, IOMMU_READ)).toBe(oldFrame.pa);
    mock.iommu.deviceTlb(dev)!.invalidateAll();
    expect(dma.translate(dev, IOVA, IOMMU_READ)).toBe(newFrame.pa);
  });

  it('sets the dirty bit on the first write through a translation a read filled, and faults a write a read-only one refuses', () => {
    const { physMem, domain, dma, dev } = pagingSetup({ detect: false, domainFlags: IOMMU_HWPT_ALLOC_DIRTY_TRACKING });
    const rw = physMem.allocate();
    const ro = physMem.allocate();
    iommuMap(domain, IOVA, rw.pa, PAGE_4K, RW);
    iommuMap(domain, IOVA + PAGE_4K, ro.pa, PAGE_4K, IOMMU_READ);
    domain.dirtyOps!.setDirtyTracking(true);
    expect(dma.translate(dev, IOVA, IOMMU_READ)).toBe(rw.pa);
    expect(dma.translate(dev, IOVA, IOMMU_WRITE)).toBe(rw.pa);
    expect(dma.translate(dev, IOVA + PAGE_4K, IOMMU_READ)).toBe(ro.pa);
    expect(dma.translate(dev, IOVA + PAGE_4K, IOMMU_WRITE)).toMatchObject({ reason: 'permission' });
    const dirty: bigint[] = [];
    domain.dirtyOps!.readAndClearDirty(IOVA, 2n * PAGE_4K, false, (iova) => dirty.push(iova));
    expect(dirty).toEqual([IOVA]);
  });
});

describe('DMA through a nested domain', () => {
  /** A guest whose RAM (IPA 0x4000_0000, 32 pages) is stage 2 of a nesting parent, with a stage-1 table in that RAM. */
  function nestedSetup(host: MockHost) {
    // No ATC: these tests are about the IOTLB the HWPT invalidation reaches.
    const dev = host.device(1, 0, { atsCapable: false });
    host.core.deviceClaimDmaOwner(dev, host);
    const parent = host.core.pagingDomainAlloc(dev, IOMMU_HWPT_ALLOC_NEST_PARENT) as MockPagingDomain;
    const ramIpa = 0x4000_0000n;
    const ram = Array.from({ length: 32 }, () => host.physMem.allocate());
    ram.forEach((f, i) => iommuMap(parent, ramIpa + BigInt(i) * PAGE_4K, f.pa, PAGE_4K, RW));

    const mem = new WindowUserMemory(0x10000n, 64);
    mem.copyToUser(0x10000n, iommu_hwpt_selftest.encodeNew({ iotlb: IOMMU_TEST_IOTLB_DEFAULT }));
    const nested = host.mock.domainAllocNested(dev, parent, 0, {
      type: IOMMU_HWPT_DATA_SELFTEST, mem, uptr: 0x10000n, len: iommu_hwpt_selftest.size,
    }) as MockNestedDomain;

    // The guest's own view of its RAM: IPA-addressed, the first pages hold page tables.
    let nextTable = ramIpa;
    const guestMem: TableMemory = {
      readU64: (ipa) => host.mock.tableMemory.readU64(parent.iovaToPhys(ipa)!),
      writeU64: (ipa, v) => host.mock.tableMemory.writeU64(parent.iovaToPhys(ipa)!, v),
      allocTable: () => (nextTable += PAGE_4K) - PAGE_4K,
      freeTable: () => {},
    };
    const s1 = new IoPageTable(guestMem);
    nested.setStage1Table(s1.root);
    host.core.replaceGroupDomain(1, nested);
    const dma = new DmaEngine(host.core, host.physMem, { detectStaleTranslations: true });
    const invalidate = (entries: { flags: number; iotlb_id: number }[]) => {
      entries.forEach((e, i) => mem.copyToUser(0x10000n + BigInt(i * 8), iommu_hwpt_invalidate_selftest.encodeNew(e)));
      const array = { type: IOMMU_HWPT_INVALIDATE_DATA_SELFTEST, mem, uptr: 0x10000n, entryLen: 8, entryNum: entries.length, handled: 0 };
      nested.cacheInvalidateUser(array);
      return array.handled;
    };
    return { dev, parent, nested, ram, ramIpa, s1, dma, invalidate };
  }

  it('translates stage 1 from guest memory, then stage 2, to the host frame', () => {
    const host = mockHost();
    const { dev, ram, ramIpa, s1, dma } = nestedSetup(host);
    s1.mapPages(0x1000n, ramIpa + 20n * PAGE_4K, PAGE_4K, 1n, RW);
    dma.dmaWrite(dev, 0x1010n, bytes(0x5a));
    expect(ram[20]!.data[0x10]).toBe(0x5a);
    // An IOVA the guest did not map faults in stage 1; one it maps outside its RAM faults in stage 2.
    expect(dma.tryDmaRead(dev, 0x2000n, new Uint8Array(1))?.reason).toBe('not-present');
    s1.mapPages(0x3000n, 0x9000_0000n, PAGE_4K, 1n, RW);
    expect(dma.tryDmaRead(dev, 0x3000n, new Uint8Array(1))).toMatchObject({ reason: 'stage2-not-present', addr: 0x9000_0000n });
  });

  it('uses the stale stage-1 translation until the guest invalidates the right IOTLB way', () => {
    const host = mockHost();
    const { dev, ram, ramIpa, s1, dma, nested, invalidate } = nestedSetup(host);
    // IOVA 0x5000: bits 13:12 = 1, so the mock caches it in way 1.
    s1.mapPages(0x5000n, ramIpa + 20n * PAGE_4K, PAGE_4K, 1n, RW);
    dma.dmaRead(dev, 0x5000n, 1);
    // The guest remaps the IOVA in its table...
    s1.unmapPages(0x5000n, PAGE_4K, 1n);
    s1.mapPages(0x5000n, ramIpa + 21n * PAGE_4K, PAGE_4K, 1n, RW);
    dma.dmaWrite(dev, 0x5000n, bytes(1));
    expect(ram[20]!.data[0]).toBe(1);
    expect(dma.staleLog).toHaveLength(1);
    expect(dma.staleLog[0]).toMatchObject({ cached: { pa: ram[20]!.pa }, correct: { pa: ram[21]!.pa } });

    // ...invalidates the wrong way: still stale.
    expect(invalidate([{ flags: 0, iotlb_id: 2 }])).toBe(1);
    dma.dmaWrite(dev, 0x5000n, bytes(2));
    expect(ram[20]!.data[0]).toBe(2);
    // The right way: the walk sees the new mapping.
    expect(invalidate([{ flags: 0, iotlb_id: 1 }])).toBe(1);
    nested.checkIotlb(1, 0);
    nested.checkIotlb(0, IOMMU_TEST_IOTLB_DEFAULT);
    dma.dmaWrite(dev, 0x5000n, bytes(3));
    expect(ram[21]!.data[0]).toBe(3);
    expect(ram[20]!.data[0]).toBe(2);
  });

  it('a stage-2 unmap drops every nested translation built on it', () => {
    const host = mockHost();
    const { dev, parent, ram, ramIpa, s1, dma } = nestedSetup(host);
    s1.mapPages(0x1000n, ramIpa + 30n * PAGE_4K, PAGE_4K, 1n, RW);
    dma.dmaRead(dev, 0x1000n, 1);
    expect(iommuUnmap(parent, ramIpa + 30n * PAGE_4K, PAGE_4K)).toBe(PAGE_4K);
    expect(dma.tryDmaWrite(dev, 0x1000n, bytes(1))?.reason).toBe('stage2-not-present');
    expect(ram[30]!.data[0]).toBe(0);
    expect(dma.staleLog).toEqual([]);
  });

  it('bypasses stage 1 until the guest programs a table', () => {
    const host = mockHost();
    const { dev, ram, ramIpa, dma, nested, invalidate } = nestedSetup(host);
    nested.setStage1Table(null);
    invalidate([{ flags: 1, iotlb_id: 0 }]);
    dma.dmaWrite(dev, ramIpa + 4n * PAGE_4K, bytes(9));
    expect(ram[4]!.data[0]).toBe(9);
    expect(dma.tryDmaRead(dev, 0x1000n, new Uint8Array(1))?.reason).toBe('stage2-not-present');
  });
});
