import { describe, expect, it } from 'vitest';
import {
  PROT_READ,
  VFIO_DMA_MAP_FLAG_READ,
  VFIO_DMA_MAP_FLAG_VADDR,
  VFIO_DMA_MAP_FLAG_WRITE,
  VFIO_DMA_UNMAP_FLAG_ALL,
  VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP,
  VFIO_DMA_UNMAP_FLAG_VADDR,
  VFIO_TYPE1_IOMMU,
} from '@vfiosim/core';
import { EEXIST, EFAULT, EINVAL, ENOSPC, EOVERFLOW, Host, PAGE, RW } from './harness.js';

function hostWithGroup(setup = {}) {
  const host = new Host(setup);
  const { dev, rc } = host.attach(1);
  expect(rc).toBe(0);
  return { host, dev };
}

describe('VFIO_IOMMU_MAP_DMA', () => {
  it('pins the pages behind vaddr and maps them so the device reads and writes guest memory', () => {
    const { host, dev } = hostWithGroup();
    const va = host.mmap(PAGE * 4n);
    const data = host.fill(va, 4 * 4096, 3);
    expect(host.map(va, 0x100000n, PAGE * 4n)).toBe(0);

    expect(host.dma.dmaRead(dev, 0x100000n, 4 * 4096)).toEqual(data);
    host.dma.dmaWrite(dev, 0x101ffen, Uint8Array.of(0xaa, 0xbb, 0xcc));
    expect(host.proc.mem.read(va + 0x1ffen, 3)).toEqual(Uint8Array.of(0xaa, 0xbb, 0xcc));

    expect(host.system.physMem.pinnedFrames).toBe(4);
    expect(host.backend.mappings()).toEqual([
      expect.objectContaining({ iova: 0x100000n, size: PAGE * 4n, vaddr: va, prot: 3, iommuMapped: true, pinnedPages: 4 }),
    ]);
    expect(host.backend.dmaAvail).toBe(65534);
  });

  it('maps read-only for a READ-only request: device writes fault', () => {
    const { host, dev } = hostWithGroup();
    const va = host.mmap(PAGE, { prot: PROT_READ });
    expect(host.map(va, 0x200000n, PAGE, VFIO_DMA_MAP_FLAG_READ)).toBe(0);
    expect(host.dma.dmaRead(dev, 0x200000n, 8)).toEqual(new Uint8Array(8));
    expect(host.dma.tryDmaWrite(dev, 0x200000n, Uint8Array.of(1))?.reason).toBe('permission');
  });

  it('refuses a WRITE mapping of memory the process can only read with EFAULT, pinning nothing', () => {
    const { host } = hostWithGroup();
    const va = host.mmap(PAGE * 2n, { prot: PROT_READ });
    const before = host.snapshot();
    expect(host.map(va, 0x200000n, PAGE * 2n, VFIO_DMA_MAP_FLAG_WRITE)).toBe(EFAULT);
    expect(host.snapshot()).toEqual(before);
  });

  it('refuses a vaddr range with a hole with EFAULT and leaves nothing pinned or mapped', () => {
    const { host, dev } = hostWithGroup();
    const va = host.mmap(PAGE * 3n);
    host.fill(va, 3 * 4096, 1);
    expect(host.proc.munmap(va + PAGE * 2n, PAGE)).toBe(0);
    const before = host.snapshot();
    expect(host.map(va, 0x100000n, PAGE * 3n)).toBe(EFAULT);
    expect(host.snapshot()).toEqual(before);
    expect(host.dma.tryDmaRead(dev, 0x100000n, new Uint8Array(1))?.reason).toBe('not-present');
  });

  it.each([
    ['size 0', 0x1000n, 0x100000n, 0n],
    ['an unaligned iova', 0x1000n, 0x100800n, PAGE],
    ['an unaligned vaddr', 0x1200n, 0x100000n, PAGE],
    ['an unaligned size', 0x1000n, 0x100000n, 0x1800n],
  ])('rejects %s with EINVAL', (_what, vaddrOffset, iova, size) => {
    const { host } = hostWithGroup();
    const va = host.mmap(PAGE * 4n);
    const before = host.snapshot();
    expect(host.map(va - 0x1000n + vaddrOffset, iova, size)).toBe(EINVAL);
    expect(host.snapshot()).toEqual(before);
  });

  it('rejects a request with neither READ nor WRITE with EINVAL', () => {
    const { host } = hostWithGroup();
    const va = host.mmap(PAGE);
    expect(host.map(va, 0x100000n, PAGE, 0)).toBe(EINVAL);
    expect(host.backend.mappings()).toEqual([]);
  });

  it('rejects unknown flag bits with EINVAL', () => {
    const { host } = hostWithGroup();
    const va = host.mmap(PAGE);
    expect(host.map(va, 0x100000n, PAGE, RW | 8)).toBe(EINVAL);
    expect(host.map(va, 0x100000n, PAGE, RW | 0x80000000)).toBe(EINVAL);
    expect(host.backend.mappings()).toEqual([]);
  });

  it('rejects argsz below 32 with EINVAL and takes a larger argsz', () => {
    const { host } = hostWithGroup();
    const va = host.mmap(PAGE * 2n);
    expect(host.map(va, 0x100000n, PAGE, RW, 31)).toBe(EINVAL);
    expect(host.map(va, 0x100000n, PAGE, RW, 4096)).toBe(0);
  });

  it('answers EFAULT when the argument is not readable', () => {
    const { host } = hostWithGroup();
    expect(host.ioctl(0x3b71, new Uint8Array(), 0x10n).rc).toBe(EFAULT);
  });

  it('rejects an IOVA range that wraps past 2^64 with EOVERFLOW', () => {
    const { host } = hostWithGroup();
    const va = host.mmap(PAGE * 2n);
    expect(host.map(va, (1n << 64n) - PAGE, PAGE * 2n)).toBe(EOVERFLOW);
  });

  it('rejects a vaddr range that wraps past 2^64 with EOVERFLOW before looking at the flags', () => {
    const { host } = hostWithGroup();
    expect(host.map((1n << 64n) - PAGE, 0x100000n, PAGE * 2n, 0)).toBe(EOVERFLOW);
  });

  it.each([
    ['the same range', 0x100000n, PAGE * 4n],
    ['a range inside it', 0x101000n, PAGE],
    ['a range covering it', 0x0ff000n, PAGE * 6n],
    ['a range overlapping its start', 0x0ff000n, PAGE * 2n],
    ['a range overlapping its end', 0x103000n, PAGE * 2n],
  ])('refuses %s of an existing mapping with EEXIST', (_what, iova, size) => {
    const { host } = hostWithGroup();
    const va = host.mmap(PAGE * 8n);
    expect(host.map(va, 0x100000n, PAGE * 4n)).toBe(0);
    const before = host.snapshot();
    expect(host.map(va, iova, size)).toBe(EEXIST);
    expect(host.snapshot()).toEqual(before);
  });

  it('accepts mappings that abut an existing one', () => {
    const { host } = hostWithGroup();
    const va = host.mmap(PAGE * 8n);
    expect(host.map(va, 0x100000n, PAGE * 2n)).toBe(0);
    expect(host.map(va, 0x0fe000n, PAGE * 2n)).toBe(0);
    expect(host.map(va, 0x102000n, PAGE * 2n)).toBe(0);
    expect(host.backend.mappings().map((m) => m.iova)).toEqual([0x0fe000n, 0x100000n, 0x102000n]);
  });

  it('refuses an IOVA outside the domain aperture or inside a reserved region with EINVAL', () => {
    const { host } = hostWithGroup({
      iommus: [{
        name: 'iommu0',
        devices: ['0000:01:00.0'],
        apertureEnd: 0xffffffffn,
        resvRegions: [{ start: 0xfee00000n, length: 0x100000n, type: 'msi' }],
      }],
    });
    const va = host.mmap(PAGE * 2n);
    expect(host.map(va, 0xfee00000n, PAGE)).toBe(EINVAL);
    expect(host.map(va, 0xfedff000n, PAGE * 2n)).toBe(EINVAL);
    expect(host.map(va, 0x100000000n, PAGE)).toBe(EINVAL);
    expect(host.map(va, 0xffffe000n, PAGE * 2n)).toBe(0);
  });

  it('stops at dma_entry_limit with ENOSPC and counts DMA_AVAIL down and up again', () => {
    const { host } = hostWithGroup({ options: { dmaEntryLimit: 2 } });
    const va = host.mmap(PAGE * 3n);
    expect(host.map(va, 0x100000n, PAGE)).toBe(0);
    expect(host.map(va + PAGE, 0x200000n, PAGE)).toBe(0);
    expect(host.backend.dmaAvail).toBe(0);
    const before = host.snapshot();
    expect(host.map(va + PAGE * 2n, 0x300000n, PAGE)).toBe(ENOSPC);
    expect(host.snapshot()).toEqual(before);
    expect(host.unmap(0x100000n, PAGE)).toEqual({ rc: 0, size: PAGE });
    expect(host.backend.dmaAvail).toBe(1);
    expect(host.map(va + PAGE * 2n, 0x300000n, PAGE)).toBe(0);
  });

  it('checks for an overlap before the mapping limit', () => {
    const { host } = hostWithGroup({ options: { dmaEntryLimit: 1 } });
    const va = host.mmap(PAGE);
    expect(host.map(va, 0x100000n, PAGE)).toBe(0);
    expect(host.map(va, 0x100000n, PAGE)).toBe(EEXIST);
    expect(host.map(va, 0x200000n, PAGE)).toBe(ENOSPC);
  });

  it('maps a range that ends at the top of the 64-bit IOVA space and unmaps it again', () => {
    const { host, dev } = hostWithGroup({ iommus: [{ name: 'iommu0', devices: ['0000:01:00.0'], apertureEnd: (1n << 64n) - 1n }] });
    const va = host.mmap(PAGE * 2n);
    const data = host.fill(va, 8192, 9);
    const top = (1n << 64n) - PAGE * 2n;
    expect(host.map(va, top, PAGE * 2n)).toBe(0);
    expect(host.dma.dmaRead(dev, top, 8192)).toEqual(data);
    expect(host.unmap(top, PAGE * 2n)).toEqual({ rc: 0, size: PAGE * 2n });
    expect(host.system.physMem.pinnedFrames).toBe(0);
  });

  it('keeps pinned frames alive when the process unmaps the memory, until UNMAP_DMA', () => {
    const { host, dev } = hostWithGroup();
    const va = host.mmap(PAGE * 2n);
    const data = host.fill(va, 8192, 5);
    expect(host.map(va, 0x100000n, PAGE * 2n)).toBe(0);
    const allocated = host.system.physMem.allocatedFrames;
    expect(host.proc.munmap(va, PAGE * 2n)).toBe(0);
    expect(host.system.physMem.allocatedFrames).toBe(allocated);
    expect(host.dma.dmaRead(dev, 0x100000n, 8192)).toEqual(data);
    expect(host.unmap(0x100000n, PAGE * 2n)).toEqual({ rc: 0, size: PAGE * 2n });
    expect(host.system.physMem.pinnedFrames).toBe(0);
    expect(host.system.physMem.allocatedFrames).toBe(allocated - 2);
  });

  it('does not pin or even look at vaddr while the container has no IOMMU domain', () => {
    const host = new Host();
    expect(host.attachEmulated(7)).toBe(0);
    expect(host.map(0x7000_0000_0000n, 0x100000n, PAGE * 16n)).toBe(0);
    expect(host.system.physMem.pinnedFrames).toBe(0);
    expect(host.backend.mappings()).toEqual([expect.objectContaining({ iommuMapped: false, pinnedPages: 0 })]);
  });
});

describe('VFIO_IOMMU_UNMAP_DMA', () => {
  function mapped() {
    const { host, dev } = hostWithGroup();
    const va = host.mmap(PAGE * 8n);
    expect(host.map(va, 0x100000n, PAGE * 2n)).toBe(0);
    expect(host.map(va + PAGE * 2n, 0x102000n, PAGE * 2n)).toBe(0);
    expect(host.map(va + PAGE * 4n, 0x200000n, PAGE * 4n)).toBe(0);
    return { host, dev, va };
  }

  it('unmaps one mapping, writes back the bytes unmapped and unpins its pages', () => {
    const { host, dev } = mapped();
    expect(host.unmap(0x200000n, PAGE * 4n)).toEqual({ rc: 0, size: PAGE * 4n });
    expect(host.system.physMem.pinnedFrames).toBe(4);
    expect(host.dma.tryDmaRead(dev, 0x200000n, new Uint8Array(1))?.reason).toBe('not-present');
  });

  it('unmaps every mapping a larger range covers and reports their total', () => {
    const { host } = mapped();
    expect(host.unmap(0x0f0000n, 0x20000n)).toEqual({ rc: 0, size: PAGE * 4n });
    expect(host.backend.mappings().map((m) => m.iova)).toEqual([0x200000n]);
  });

  it('succeeds with size 0 written back when nothing is mapped in the range', () => {
    const { host } = mapped();
    expect(host.unmap(0x400000n, PAGE * 16n)).toEqual({ rc: 0, size: 0n });
    expect(host.backend.mappings()).toHaveLength(3);
  });

  it.each([
    ['starts inside a mapping', 0x101000n, PAGE * 3n],
    ['ends inside a mapping', 0x100000n, PAGE * 3n],
    ['lies inside a mapping', 0x201000n, PAGE * 2n],
  ])('refuses (type1 v2) a range that %s with EINVAL, unmapping nothing', (_what, iova, size) => {
    const { host } = mapped();
    const before = host.snapshot();
    expect(host.unmap(iova, size)).toEqual({ rc: EINVAL, size });
    expect(host.snapshot()).toEqual(before);
  });

  it.each([
    ['an unaligned iova', 0x100800n, PAGE],
    ['an unaligned size', 0x100000n, 0x1800n],
    ['size 0', 0x100000n, 0n],
  ])('rejects %s with EINVAL', (_what, iova, size) => {
    const { host } = mapped();
    const before = host.snapshot();
    expect(host.unmap(iova, size).rc).toBe(EINVAL);
    expect(host.snapshot()).toEqual(before);
  });

  it('rejects a range that wraps with EOVERFLOW', () => {
    const { host } = mapped();
    expect(host.unmap((1n << 64n) - PAGE, PAGE * 2n).rc).toBe(EOVERFLOW);
  });

  it('rejects unknown flags and argsz below 24 with EINVAL', () => {
    const { host } = mapped();
    expect(host.unmap(0x100000n, PAGE * 2n, 8).rc).toBe(EINVAL);
    expect(host.unmap(0x100000n, PAGE * 2n, 0, 23).rc).toBe(EINVAL);
    expect(host.backend.mappings()).toHaveLength(3);
  });

  it('refuses GET_DIRTY_BITMAP together with ALL or VADDR with EINVAL', () => {
    const { host } = mapped();
    const bitmap = { pgsize: PAGE, size: 8n, data: host.argp + 1024n };
    expect(host.unmapDirty(0n, 0n, bitmap, VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP | VFIO_DMA_UNMAP_FLAG_ALL).rc).toBe(EINVAL);
    expect(host.unmapDirty(0x100000n, PAGE * 2n, bitmap, VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP | VFIO_DMA_UNMAP_FLAG_VADDR).rc)
      .toBe(EINVAL);
    expect(host.backend.mappings()).toHaveLength(3);
  });

  it('unmaps everything with FLAG_ALL and reports the total size', () => {
    const { host } = mapped();
    expect(host.unmap(0n, 0n, VFIO_DMA_UNMAP_FLAG_ALL)).toEqual({ rc: 0, size: PAGE * 8n });
    expect(host.backend.mappings()).toEqual([]);
    expect(host.backend.dmaAvail).toBe(65535);
    expect(host.system.physMem.pinnedFrames).toBe(0);
  });

  it('refuses FLAG_ALL with a non-zero iova or size with EINVAL', () => {
    const { host } = mapped();
    expect(host.unmap(0x100000n, 0n, VFIO_DMA_UNMAP_FLAG_ALL).rc).toBe(EINVAL);
    expect(host.unmap(0n, PAGE, VFIO_DMA_UNMAP_FLAG_ALL).rc).toBe(EINVAL);
    expect(host.backend.mappings()).toHaveLength(3);
  });

  it('leaves the size field alone when it fails', () => {
    const { host } = mapped();
    expect(host.unmap(0x101000n, PAGE * 3n)).toEqual({ rc: EINVAL, size: PAGE * 3n });
  });
});

describe('type1 (v1) unmap', () => {
  it('unmaps nothing, successfully, from a range that starts inside a mapping', () => {
    const host = new Host({ type: VFIO_TYPE1_IOMMU });
    expect(host.attach(1).rc).toBe(0);
    const va = host.mmap(PAGE * 4n);
    expect(host.map(va, 0x100000n, PAGE * 4n)).toBe(0);
    expect(host.unmap(0x101000n, PAGE)).toEqual({ rc: 0, size: 0n });
    expect(host.backend.mappings()).toHaveLength(1);
  });

  it('unmaps the whole mapping when the range covers its first page, and says so', () => {
    const host = new Host({ type: VFIO_TYPE1_IOMMU });
    expect(host.attach(1).rc).toBe(0);
    const va = host.mmap(PAGE * 4n);
    expect(host.map(va, 0x100000n, PAGE * 4n)).toBe(0);
    expect(host.unmap(0x100000n, PAGE)).toEqual({ rc: 0, size: PAGE * 4n });
    expect(host.backend.mappings()).toEqual([]);
    expect(host.system.physMem.pinnedFrames).toBe(0);
  });
});

describe('container release', () => {
  it('unmaps, unpins and frees every domain, leaving the group on its blocking domain', () => {
    const { host } = hostWithGroup();
    const va = host.mmap(PAGE * 4n);
    expect(host.map(va, 0x100000n, PAGE * 4n)).toBe(0);
    host.backend.release();
    expect(host.system.physMem.pinnedFrames).toBe(0);
    expect(host.iommus[0]!.liveDomains).toEqual([]);
    expect(host.core.group(1)!.domain).toBe(host.core.group(1)!.blockingDomain);
  });
});
