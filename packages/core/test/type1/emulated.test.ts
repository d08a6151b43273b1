import { describe, expect, it } from 'vitest';
import { IOMMU_READ, IOMMU_WRITE, VFIO_DMA_MAP_FLAG_READ, VFIO_DMA_MAP_FLAG_WRITE, VFIO_TYPE1_IOMMU, syscall, type VfioDevice } from '@vfiosim/core';
import { EACCES, EFAULT, EINVAL, EOVERFLOW, EPERM, Host, PAGE } from './harness.js';

const RW_PROT = IOMMU_READ | IOMMU_WRITE;

/** An emulated device that remembers its pins and drops them when told to (dma_unmap). */
class EmulatedDevice {
  readonly pins: { iova: bigint; npage: number }[] = [];
  readonly unmaps: [bigint, bigint][] = [];
  cooperative = true;
  readonly vdev: VfioDevice;

  constructor(readonly host: Host) {
    this.vdev = {
      ops: {
        name: 'emu',
        dmaUnmap: (_v: VfioDevice, iova: bigint, length: bigint) => {
          this.unmaps.push([iova, length]);
          if (!this.cooperative) return;
          for (const pin of this.pins.splice(0)) host.backend.unpinPages(pin.iova, pin.npage);
        },
      },
    } as unknown as VfioDevice;
    host.backend.registerDevice(this.vdev);
  }

  pin(iova: bigint, npage: number, prot = RW_PROT): number {
    return syscall(() => {
      const frames = this.host.backend.pinPages({ id: 9 }, iova, npage, prot);
      this.pins.push({ iova, npage });
      return frames.length;
    });
  }
}

/** A container of one emulated group (an mdev): mappings are not pinned until a device pins them. */
function mdevHost(type?: number) {
  const host = new Host(type === undefined ? {} : { type });
  expect(host.attachEmulated(9)).toBe(0);
  const va = host.mmap(PAGE * 8n);
  host.fill(va, 8 * 4096, 1);
  expect(host.map(va, 0x100000n, PAGE * 4n)).toBe(0);
  expect(host.map(va + PAGE * 4n, 0x104000n, PAGE * 2n, VFIO_DMA_MAP_FLAG_READ)).toBe(0);
  expect(host.map(va + PAGE * 6n, 0x106000n, PAGE * 2n, VFIO_DMA_MAP_FLAG_WRITE)).toBe(0);
  return { host, va };
}

describe('pinPages / unpinPages (vfio_pin_pages)', () => {
  it('pins the pages behind the IOVAs, counting repeated pins of a page', () => {
    const { host, va } = mdevHost();
    const emu = new EmulatedDevice(host);
    const frames = host.backend.pinPages({ id: 9 }, 0x101000n, 2, RW_PROT);
    expect(frames.map((f) => f.pa)).toEqual([host.proc.mm.translate(va + PAGE), host.proc.mm.translate(va + PAGE * 2n)]);
    expect(host.system.physMem.pinnedFrames).toBe(2);
    expect(emu.pin(0x101000n, 1)).toBe(1);
    expect(host.backend.mappings()[0]!.externalPins).toEqual(new Map([[0x101000n, 2], [0x102000n, 1]]));
    host.backend.unpinPages(0x101000n, 2);
    expect(host.backend.mappings()[0]!.externalPins).toEqual(new Map([[0x101000n, 1]]));
    host.backend.unpinPages(0x101000n, 1);
    expect(host.system.physMem.pinnedFrames).toBe(0);
  });

  it('needs a device registered for dma_unmap (EINVAL)', () => {
    const { host } = mdevHost();
    expect(syscall(() => host.backend.pinPages({ id: 9 }, 0x100000n, 1, RW_PROT).length)).toBe(EINVAL);
  });

  it('rejects zero pages with EINVAL, a v1 container with EACCES and a wrapping range with EOVERFLOW', () => {
    const { host } = mdevHost();
    new EmulatedDevice(host);
    expect(syscall(() => host.backend.pinPages({ id: 9 }, 0x100000n, 0, RW_PROT).length)).toBe(EINVAL);
    expect(syscall(() => host.backend.pinPages({ id: 9 }, (1n << 64n) - PAGE, 2, RW_PROT).length)).toBe(EOVERFLOW);
    const v1 = mdevHost(VFIO_TYPE1_IOMMU).host;
    new EmulatedDevice(v1);
    expect(syscall(() => v1.backend.pinPages({ id: 9 }, 0x100000n, 1, RW_PROT).length)).toBe(EACCES);
  });

  it('pins all or nothing: an unmapped page (EINVAL) or a mapping without the access (EPERM) undoes the earlier pins', () => {
    const { host } = mdevHost();
    const emu = new EmulatedDevice(host);
    expect(emu.pin(0x103000n, 1)).toBe(1);
    const before = host.snapshot();
    expect(emu.pin(0x106000n, 3, IOMMU_WRITE)).toBe(EINVAL);
    expect(emu.pin(0x102000n, 3)).toBe(EPERM);
    expect(host.snapshot()).toEqual(before);
    expect(emu.pin(0x104000n, 1, IOMMU_READ)).toBe(1);
  });

  it('asks the devices to unpin before unmapping a mapping they pinned', () => {
    const { host } = mdevHost();
    const emu = new EmulatedDevice(host);
    expect(emu.pin(0x100000n, 2)).toBe(2);
    expect(host.unmap(0x100000n, PAGE * 4n)).toEqual({ rc: 0, size: PAGE * 4n });
    expect(emu.unmaps).toEqual([[0x100000n, PAGE * 4n]]);
    expect(host.system.physMem.pinnedFrames).toBe(0);
  });

  it('treats a device that keeps its pins after dma_unmap as a kernel bug', () => {
    const { host } = mdevHost();
    const emu = new EmulatedDevice(host);
    expect(emu.pin(0x100000n, 1)).toBe(1);
    emu.cooperative = false;
    expect(() => host.unmap(0x100000n, PAGE * 4n)).toThrow(/pinned after dma_unmap/);
    expect(emu.unmaps).toHaveLength(11);
  });

  it('stops registering a device once it is unregistered', () => {
    const { host } = mdevHost();
    const emu = new EmulatedDevice(host);
    host.backend.unregisterDevice(emu.vdev);
    expect(emu.pin(0x100000n, 1)).toBe(EINVAL);
  });
});

describe('dmaRw (vfio_dma_rw)', () => {
  it('reads and writes user memory by IOVA, across mappings', () => {
    const { host, va } = mdevHost();
    const out = new Uint8Array(8);
    host.backend.dmaRw(0x103ffcn, out, false);
    expect(out).toEqual(host.proc.mem.read(va + 0x3ffcn, 8));
    host.backend.dmaRw(0x100010n, Uint8Array.of(9, 8, 7), true);
    expect(host.proc.mem.read(va + 0x10n, 3)).toEqual(Uint8Array.of(9, 8, 7));
  });

  it('needs READ for any access and WRITE for a write (EPERM), and a mapping (EINVAL)', () => {
    const { host } = mdevHost();
    const rw = (iova: bigint, write: boolean) => syscall(() => (host.backend.dmaRw(iova, new Uint8Array(4), write), 0));
    expect(rw(0x104000n, false)).toBe(0);
    expect(rw(0x104000n, true)).toBe(EPERM);
    expect(rw(0x106000n, true)).toBe(EPERM);
    expect(rw(0x106000n, false)).toBe(EPERM);
    expect(rw(0x200000n, false)).toBe(EINVAL);
  });

  it('answers EFAULT when the user memory behind the mapping is gone', () => {
    const { host, va } = mdevHost();
    expect(host.proc.munmap(va, PAGE)).toBe(0);
    expect(syscall(() => (host.backend.dmaRw(0x100000n, new Uint8Array(4), false), 0))).toBe(EFAULT);
  });
});
