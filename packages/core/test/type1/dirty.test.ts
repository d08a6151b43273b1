import { describe, expect, it } from 'vitest';
import {
  IOMMU_READ,
  IOMMU_WRITE,
  VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP,
  VFIO_IOMMU_DIRTY_PAGES,
  VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP,
  VFIO_IOMMU_DIRTY_PAGES_FLAG_START,
  VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP,
  VFIO_TYPE1_IOMMU,
  type VfioDevice,
} from '@vfiosim/core';
import { EACCES, EFAULT, EINVAL, EOVERFLOW, Host, PAGE } from './harness.js';

const START = VFIO_IOMMU_DIRTY_PAGES_FLAG_START;
const STOP = VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP;
const GET = VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP;

function registerEmulated(host: Host): void {
  host.backend.registerDevice({ ops: { name: 'emu', dmaUnmap: () => {} } } as unknown as VfioDevice);
}

/** Mappings A = [0x100000, +3 pages) and B = [0x103000, +2 pages), a bitmap buffer of 4 words. */
function tracked(kind: 'emulated' | 'iommu') {
  const host = new Host();
  if (kind === 'emulated') expect(host.attachEmulated(9)).toBe(0);
  else expect(host.attach(1).rc).toBe(0);
  const va = host.mmap(PAGE * 5n);
  expect(host.map(va, 0x100000n, PAGE * 3n)).toBe(0);
  expect(host.map(va + PAGE * 3n, 0x103000n, PAGE * 2n)).toBe(0);
  const data = host.mmap(PAGE);
  expect(host.dirty(START)).toBe(0);
  return { host, va, data, bitmap: { pgsize: PAGE, size: 32n, data } };
}

describe('VFIO_IOMMU_DIRTY_PAGES', () => {
  it('answers EACCES on a type1 v1 container before reading the argument', () => {
    const host = new Host({ type: VFIO_TYPE1_IOMMU });
    expect(host.ioctl(VFIO_IOMMU_DIRTY_PAGES, new Uint8Array(), 0x10n).rc).toBe(EACCES);
  });

  it('rejects no flag, two flags, unknown flags and argsz below 8 with EINVAL', () => {
    const { host } = tracked('emulated');
    expect(host.dirty(0)).toBe(EINVAL);
    expect(host.dirty(START | STOP)).toBe(EINVAL);
    expect(host.dirty(8)).toBe(EINVAL);
    expect(host.dirty(START, 7)).toBe(EINVAL);
    expect(host.ioctl(VFIO_IOMMU_DIRTY_PAGES, new Uint8Array(), 0x10n).rc).toBe(EFAULT);
  });

  it('starts and stops idempotently; GET_BITMAP needs tracking started (EINVAL)', () => {
    const { host, bitmap } = tracked('emulated');
    expect(host.dirty(START)).toBe(0);
    expect(host.dirty(STOP)).toBe(0);
    expect(host.dirty(STOP)).toBe(0);
    expect(host.backend.dirtyPageTracking).toBe(false);
    expect(host.getBitmap(0x100000n, PAGE * 5n, bitmap)).toBe(EINVAL);
  });

  it('reports what emulated devices pinned or wrote, then only what stays pinned', () => {
    const { host, data, bitmap } = tracked('emulated');
    registerEmulated(host);
    host.backend.pinPages({ id: 9 }, 0x101000n, 1, IOMMU_READ | IOMMU_WRITE);
    host.backend.dmaRw(0x103ffen, new Uint8Array(4), true);
    expect(host.getBitmap(0x100000n, PAGE * 5n, bitmap)).toBe(0);
    // Page 1 pinned; pages 3 and 4 written (bit 3 + 1 = B's first and second page).
    expect(host.readU64s(data, 1)).toEqual([0b11010n]);
    host.proc.mem.write(data, new Uint8Array(8));
    expect(host.getBitmap(0x100000n, PAGE * 5n, bitmap)).toBe(0);
    expect(host.readU64s(data, 1)).toEqual([0b10n]);
  });

  it('marks the pages pinned before START dirty', () => {
    const host = new Host();
    expect(host.attachEmulated(9)).toBe(0);
    registerEmulated(host);
    const va = host.mmap(PAGE * 2n);
    expect(host.map(va, 0x100000n, PAGE * 2n)).toBe(0);
    host.backend.pinPages({ id: 9 }, 0x101000n, 1, IOMMU_READ);
    expect(host.dirty(START)).toBe(0);
    const data = host.mmap(PAGE);
    expect(host.getBitmap(0x100000n, PAGE * 2n, { pgsize: PAGE, size: 8n, data })).toBe(0);
    expect(host.readU64s(data, 1)).toEqual([0b10n]);
  });

  it('reports every mapped page dirty while an IOMMU-backed group has not proved it pins what it writes', () => {
    const { host, data, bitmap } = tracked('iommu');
    expect(host.getBitmap(0x100000n, PAGE * 5n, bitmap)).toBe(0);
    expect(host.readU64s(data, 1)).toEqual([0b11111n]);
    registerEmulated(host);
    host.backend.pinPages({ id: 1 }, 0x104000n, 1, IOMMU_READ);
    host.proc.mem.write(data, new Uint8Array(8));
    expect(host.getBitmap(0x100000n, PAGE * 5n, bitmap)).toBe(0);
    expect(host.readU64s(data, 1)).toEqual([0b10000n]);
  });

  it('keeps the bits of a mapping that does not start on a word boundary of the user bitmap next to the ones before it', () => {
    const { host, data } = tracked('iommu');
    // Bits 0-2 (A) and 3-4 (B): B is shifted by 3 and ORed onto the word A wrote.
    host.proc.mem.write(data, new Uint8Array(8));
    expect(host.getBitmap(0x100000n, PAGE * 5n, { pgsize: PAGE, size: 8n, data })).toBe(0);
    expect(host.readU64s(data, 1)).toEqual([0x1fn]);
    // Reporting B alone puts it at bit 0.
    host.proc.mem.write(data, new Uint8Array(8));
    expect(host.getBitmap(0x103000n, PAGE * 2n, { pgsize: PAGE, size: 8n, data })).toBe(0);
    expect(host.readU64s(data, 1)).toEqual([0b11n]);
  });

  it.each([
    ['a bitmap page size other than the minimum', 0x100000n, PAGE * 5n, { pgsize: PAGE * 2n, size: 8n }, EINVAL],
    ['an unaligned iova', 0x100800n, PAGE * 4n, { pgsize: PAGE, size: 8n }, EINVAL],
    ['size 0', 0x100000n, 0n, { pgsize: PAGE, size: 8n }, EINVAL],
    ['a range that wraps', (1n << 64n) - PAGE, PAGE * 2n, { pgsize: PAGE, size: 8n }, EOVERFLOW],
    ['a bitmap smaller than one bit per page in whole words', 0x100000n, PAGE * 65n, { pgsize: PAGE, size: 8n }, EINVAL],
    ['a bitmap larger than max_dirty_bitmap_size', 0x100000n, PAGE * 5n, { pgsize: PAGE, size: (1n << 28n) + 8n }, EINVAL],
    ['a range cutting a mapping', 0x101000n, PAGE * 4n, { pgsize: PAGE, size: 8n }, EINVAL],
  ])('rejects %s', (_what, iova, size, bm, errno) => {
    const { host, data } = tracked('iommu');
    expect(host.getBitmap(iova, size, { ...bm, data })).toBe(errno);
  });

  it('refuses a bitmap pointer outside user space with EINVAL and an unmapped one with EFAULT', () => {
    const { host } = tracked('iommu');
    expect(host.getBitmap(0x100000n, PAGE * 5n, { pgsize: PAGE, size: 8n, data: 0x8000_0000_0000n })).toBe(EINVAL);
    expect(host.getBitmap(0x100000n, PAGE * 5n, { pgsize: PAGE, size: 8n, data: 0x1000n })).toBe(EFAULT);
  });

  it('rejects an argsz that leaves no room for the range with EINVAL', () => {
    const { host, bitmap } = tracked('iommu');
    expect(host.getBitmap(0x100000n, PAGE * 5n, bitmap, 47)).toBe(EINVAL);
    expect(host.getBitmap(0x100000n, PAGE * 5n, bitmap, 48, GET)).toBe(0);
  });
});

describe('VFIO_IOMMU_UNMAP_DMA with GET_DIRTY_BITMAP', () => {
  const GET_DIRTY = VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP;

  it('copies the dirty bits of the mappings it removes', () => {
    const { host, data, bitmap } = tracked('emulated');
    host.backend.dmaRw(0x104000n, new Uint8Array(1), true);
    expect(host.unmapDirty(0x100000n, PAGE * 5n, bitmap, GET_DIRTY)).toEqual({ rc: 0, size: PAGE * 5n });
    expect(host.readU64s(data, 1)).toEqual([0b10000n]);
    expect(host.backend.mappings()).toEqual([]);
  });

  it('needs tracking started, the minimum page size and room for struct vfio_bitmap (EINVAL)', () => {
    const { host, bitmap } = tracked('emulated');
    expect(host.unmapDirty(0x100000n, PAGE * 5n, bitmap, GET_DIRTY, 47).rc).toBe(EINVAL);
    expect(host.unmapDirty(0x100000n, PAGE * 5n, { ...bitmap, pgsize: PAGE * 2n }, GET_DIRTY).rc).toBe(EINVAL);
    expect(host.dirty(STOP)).toBe(0);
    expect(host.unmapDirty(0x100000n, PAGE * 5n, bitmap, GET_DIRTY).rc).toBe(EINVAL);
    expect(host.backend.mappings()).toHaveLength(2);
  });

  it('keeps the mappings already reported unmapped when the bitmap copy faults (EFAULT)', () => {
    const { host } = tracked('emulated');
    const bitmap = { pgsize: PAGE, size: 8n, data: 0x1000n };
    expect(host.unmapDirty(0x100000n, PAGE * 5n, bitmap, GET_DIRTY).rc).toBe(EFAULT);
    expect(host.backend.mappings()).toHaveLength(2);
  });
});
