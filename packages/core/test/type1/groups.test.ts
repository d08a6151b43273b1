import { describe, expect, it } from 'vitest';
import { SimError } from '@vfiosim/core';
import { EBUSY, EINVAL, EIO, EPERM, Host, PAGE } from './harness.js';

const TWO_IOMMUS = [
  { name: 'iommu0', devices: ['0000:01:00.0', '0000:02:00.0'] },
  { name: 'iommu1', devices: ['0000:03:00.0'], pgsizeBitmap: 0x201000n, apertureEnd: 0xffffffffn },
];

function mappedHost(iommus = TWO_IOMMUS) {
  const host = new Host({ iommus });
  const { dev, rc } = host.attach(1);
  expect(rc).toBe(0);
  const va = host.mmap(PAGE * 4n);
  const data = host.fill(va, 4 * 4096, 4);
  expect(host.map(va, 0x100000n, PAGE * 4n)).toBe(0);
  return { host, dev, va, data };
}

describe('attaching groups', () => {
  it('puts a second group of the same IOMMU driver into the existing domain', () => {
    const { host, data } = mappedHost();
    const { dev: dev2, rc } = host.attach(2, '0000:02:00.0');
    expect(rc).toBe(0);
    expect(host.iommus[0]!.liveDomains).toHaveLength(1);
    expect(host.backend.domains).toHaveLength(1);
    expect(host.dma.dmaRead(dev2, 0x100000n, 4 * 4096)).toEqual(data);
    expect(host.system.physMem.pinnedFrames).toBe(4);
  });

  it('gives a group of another IOMMU its own domain, replays the mappings into it and narrows page sizes and ranges', () => {
    const { host, data } = mappedHost();
    const { dev: dev3, rc } = host.attach(3, '0000:03:00.0');
    expect(rc).toBe(0);
    expect(host.backend.domains).toHaveLength(2);
    expect(host.dma.dmaRead(dev3, 0x100000n, 4 * 4096)).toEqual(data);
    expect(host.backend.pgsizeBitmap).toBe(0x201000n);
    expect(host.backend.iovaRanges).toEqual([{ start: 0n, end: 0xffffffffn }]);
    expect(host.system.physMem.pinnedFrames).toBe(4);
  });

  it('widens page sizes and ranges again when that group leaves', () => {
    const { host } = mappedHost();
    expect(host.attach(3, '0000:03:00.0').rc).toBe(0);
    host.backend.detachGroup({ id: 3 });
    expect(host.backend.pgsizeBitmap).toBe(0x40201000n);
    expect(host.backend.iovaRanges).toEqual([{ start: 0n, end: (1n << 48n) - 1n }]);
    expect(host.iommus[1]!.liveDomains).toEqual([]);
    expect(host.backend.mappings()).toHaveLength(1);
  });

  it('pins and maps, on the first IOMMU-backed group, what was mapped while only emulated groups were attached', () => {
    const host = new Host();
    expect(host.attachEmulated(9)).toBe(0);
    const va = host.mmap(PAGE * 2n);
    const data = host.fill(va, 8192, 2);
    expect(host.map(va, 0x100000n, PAGE * 2n)).toBe(0);
    expect(host.system.physMem.pinnedFrames).toBe(0);
    const { dev, rc } = host.attach(1);
    expect(rc).toBe(0);
    expect(host.system.physMem.pinnedFrames).toBe(2);
    expect(host.dma.dmaRead(dev, 0x100000n, 8192)).toEqual(data);
    expect(host.backend.mappings()[0]!.iommuMapped).toBe(true);
  });

  it('refuses a group whose aperture would cut off an existing mapping with EINVAL, leaving no trace', () => {
    const host = new Host({ iommus: TWO_IOMMUS });
    expect(host.attach(1).rc).toBe(0);
    const va = host.mmap(PAGE);
    expect(host.map(va, 0x1_0000_0000n, PAGE)).toBe(0);
    const before = host.snapshot();
    expect(host.attach(3, '0000:03:00.0').rc).toBe(EINVAL);
    expect(host.snapshot()).toEqual(before);
    expect(host.iommus[1]!.liveDomains).toEqual([]);
    expect(host.core.group(3)!.domain).toBe(host.core.group(3)!.blockingDomain);
  });

  it('refuses a group with a reserved region over an existing mapping with EINVAL', () => {
    const host = new Host({
      iommus: [
        { name: 'iommu0', devices: ['0000:01:00.0'] },
        { name: 'iommu1', devices: ['0000:03:00.0'], resvRegions: [{ start: 0xfee00000n, length: 0x100000n, type: 'msi' }] },
      ],
    });
    expect(host.attach(1).rc).toBe(0);
    const va = host.mmap(PAGE);
    expect(host.map(va, 0xfee00000n, PAGE)).toBe(0);
    const before = host.snapshot();
    expect(host.attach(3, '0000:03:00.0').rc).toBe(EINVAL);
    expect(host.snapshot()).toEqual(before);
  });

  it('refuses a group without isolated MSIs with EPERM unless allow_unsafe_interrupts is set', () => {
    const strict = new Host({ options: { hasIsolatedMsi: () => false } });
    expect(strict.attach(1).rc).toBe(EPERM);
    expect(strict.iommus[0]!.liveDomains).toEqual([]);
    const lax = new Host({ options: { hasIsolatedMsi: () => false, allowUnsafeInterrupts: true } });
    expect(lax.attach(1).rc).toBe(0);
  });

  it('refuses a group attached twice with EINVAL', () => {
    const { host } = mappedHost();
    const before = host.snapshot();
    expect(host.attach(1).rc).toBe(EINVAL);
    expect(host.attachEmulated(1)).toBe(EINVAL);
    expect(host.snapshot()).toEqual(before);
  });

  it('passes on the IOMMU driver refusing a domain', () => {
    const host = new Host();
    host.iommus[0]!.allocError = new SimError('BUSY', 'no domain ids left');
    expect(host.attach(1).rc).toBe(EBUSY);
    expect(host.snapshot().domains).toBe(0);
  });

  it('undoes a replay that fails half way: the new domain is freed and nothing more stays pinned', () => {
    const host = new Host();
    expect(host.attachEmulated(9)).toBe(0);
    const va = host.mmap(PAGE * 4n);
    expect(host.map(va, 0x100000n, PAGE * 2n)).toBe(0);
    expect(host.map(va + PAGE * 2n, 0x200000n, PAGE * 2n)).toBe(0);
    const iommu = host.iommus[0]!;
    const alloc = iommu.domainAllocPaging.bind(iommu);
    iommu.domainAllocPaging = () => {
      const domain = alloc();
      (domain as unknown as { failAfterPages: number }).failAfterPages = 3;
      return domain;
    };
    const before = host.snapshot();
    expect(host.attach(1).rc).toBe(EIO);
    expect(host.snapshot()).toEqual(before);
    expect(iommu.liveDomains).toEqual([]);
    expect(iommu.domains[0]!.pages.size).toBe(0);
  });
});

describe('detaching groups', () => {
  it('the last IOMMU-backed group takes every mapping with it', () => {
    const { host } = mappedHost();
    host.backend.detachGroup({ id: 1 });
    expect(host.backend.mappings()).toEqual([]);
    expect(host.backend.dmaAvail).toBe(65535);
    expect(host.system.physMem.pinnedFrames).toBe(0);
    expect(host.iommus[0]!.liveDomains).toEqual([]);
    expect(host.backend.pgsizeBitmap).toBe(0xfffffffffffff000n);
  });

  it('with an emulated group left, keeps the mappings but unpins them', () => {
    const { host } = mappedHost();
    expect(host.attachEmulated(9)).toBe(0);
    host.backend.detachGroup({ id: 1 });
    expect(host.backend.mappings()).toEqual([expect.objectContaining({ iova: 0x100000n, iommuMapped: false, pinnedPages: 0 })]);
    expect(host.system.physMem.pinnedFrames).toBe(0);
    expect(host.backend.iovaRanges).toEqual([{ start: 0n, end: (1n << 64n) - 1n }]);
    host.backend.detachGroup({ id: 9 });
    expect(host.backend.mappings()).toEqual([]);
  });
});
