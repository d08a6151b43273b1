import { describe, expect, it } from 'vitest';
import {
  IOMMU_READ,
  IOMMU_WRITE,
  VFIO_CHECK_EXTENSION,
  VFIO_DMA_MAP_FLAG_READ,
  VFIO_DMA_MAP_FLAG_VADDR,
  VFIO_DMA_MAP_FLAG_WRITE,
  VFIO_DMA_UNMAP_FLAG_ALL,
  VFIO_DMA_UNMAP_FLAG_VADDR,
  VFIO_UPDATE_VADDR,
  syscall,
  type VfioDevice,
} from '@vfiosim/core';
import { EBUSY, EINVAL, ENODEV, ENOENT, EPERM, Host, PAGE } from './harness.js';

const VADDR = VFIO_DMA_MAP_FLAG_VADDR;
const INVALIDATE = VFIO_DMA_UNMAP_FLAG_VADDR;

/** An emulated-device driver as type1 sees it: only its dma_unmap callback matters. */
function emulatedDevice(onUnmap: (iova: bigint, length: bigint) => void = () => {}): VfioDevice {
  return { ops: { name: 'emu', dmaUnmap: (_vdev: VfioDevice, iova: bigint, length: bigint) => onUnmap(iova, length) } } as unknown as VfioDevice;
}

/** Guest RAM in a memfd mapped into the VMM, two mappings of it in the container. */
function guest() {
  const host = new Host();
  const { dev, rc } = host.attach(1);
  expect(rc).toBe(0);
  const memfd = host.proc.memfdCreate('guest-ram');
  expect(host.proc.ftruncate(memfd, PAGE * 8n)).toBe(0);
  const va = host.mmap(PAGE * 8n, { fd: memfd });
  expect(host.map(va, 0x100000n, PAGE * 4n)).toBe(0);
  expect(host.map(va + PAGE * 4n, 0x200000n, PAGE * 4n)).toBe(0);
  return { host, dev, memfd, va };
}

describe('VFIO_DMA_UNMAP_FLAG_VADDR', () => {
  it('invalidates the vaddr of the mappings in the range, reports their size, and leaves them mapped and pinned', () => {
    const { host, dev } = guest();
    const pinned = host.system.physMem.pinnedFrames;
    expect(host.unmap(0x100000n, PAGE * 4n, INVALIDATE)).toEqual({ rc: 0, size: PAGE * 4n });
    expect(host.backend.mappings().map((m) => m.vaddrInvalid)).toEqual([true, false]);
    expect(host.system.physMem.pinnedFrames).toBe(pinned);
    host.dma.dmaWrite(dev, 0x100010n, Uint8Array.of(1, 2, 3));
    expect(host.dma.dmaRead(dev, 0x100010n, 3)).toEqual(Uint8Array.of(1, 2, 3));
  });

  it('invalidates every mapping with FLAG_ALL', () => {
    const { host } = guest();
    expect(host.unmap(0n, 0n, INVALIDATE | VFIO_DMA_UNMAP_FLAG_ALL)).toEqual({ rc: 0, size: PAGE * 8n });
    expect(host.backend.vaddrInvalidCount).toBe(2);
  });

  it('is all or nothing: a range reaching an already invalid mapping is EINVAL and revalidates what it marked', () => {
    const { host } = guest();
    expect(host.unmap(0x200000n, PAGE * 4n, INVALIDATE).rc).toBe(0);
    const before = host.snapshot();
    expect(host.unmap(0n, 0n, INVALIDATE | VFIO_DMA_UNMAP_FLAG_ALL)).toEqual({ rc: EINVAL, size: 0n });
    expect(host.snapshot()).toEqual(before);
    expect(host.backend.mappings().map((m) => m.vaddrInvalid)).toEqual([false, true]);
  });

  it('refuses to cut a mapping in two with EINVAL', () => {
    const { host } = guest();
    expect(host.unmap(0x101000n, PAGE, INVALIDATE).rc).toBe(EINVAL);
    expect(host.backend.vaddrInvalidCount).toBe(0);
  });

  it('is refused with EBUSY while an emulated group is attached, before any other check', () => {
    const { host } = guest();
    expect(host.attachEmulated(9)).toBe(0);
    expect(host.unmap(0x100800n, 0n, INVALIDATE).rc).toBe(EBUSY);
    expect(host.ioctl(VFIO_CHECK_EXTENSION, new Uint8Array(), BigInt(VFIO_UPDATE_VADDR)).rc).toBe(0);
    expect(host.backend.vaddrInvalidCount).toBe(0);
  });

  it('still allows a real unmap of an invalidated mapping', () => {
    const { host } = guest();
    expect(host.unmap(0x100000n, PAGE * 4n, INVALIDATE).rc).toBe(0);
    expect(host.unmap(0x100000n, PAGE * 4n)).toEqual({ rc: 0, size: PAGE * 4n });
    expect(host.backend.vaddrInvalidCount).toBe(0);
    expect(host.backend.dmaAvail).toBe(65534);
  });
});

describe('VFIO_DMA_MAP_FLAG_VADDR', () => {
  it('records the new vaddr of an invalidated mapping that matches iova and size exactly', () => {
    const { host } = guest();
    expect(host.unmap(0x100000n, PAGE * 4n, INVALIDATE).rc).toBe(0);
    const other = host.mmap(PAGE * 4n);
    expect(host.map(other, 0x100000n, PAGE * 4n, VADDR)).toBe(0);
    expect(host.backend.mappings()[0]).toEqual(expect.objectContaining({ vaddr: other, vaddrInvalid: false }));
    expect(host.backend.vaddrInvalidCount).toBe(0);
  });

  it.each([
    ['READ', VFIO_DMA_MAP_FLAG_READ],
    ['WRITE', VFIO_DMA_MAP_FLAG_WRITE],
  ])('refuses VADDR combined with %s with EINVAL', (_what, flag) => {
    const { host, va } = guest();
    expect(host.unmap(0x100000n, PAGE * 4n, INVALIDATE).rc).toBe(0);
    expect(host.map(va, 0x100000n, PAGE * 4n, VADDR | flag)).toBe(EINVAL);
    expect(host.backend.vaddrInvalidCount).toBe(1);
  });

  it.each([
    ['a part of the mapping', 0x100000n, PAGE * 2n],
    ['more than the mapping', 0x0ff000n, PAGE * 5n],
    ['two mappings', 0x100000n, 0x104000n],
  ])('refuses %s with EINVAL', (_what, iova, size) => {
    const { host, va } = guest();
    expect(host.unmap(0n, 0n, INVALIDATE | VFIO_DMA_UNMAP_FLAG_ALL).rc).toBe(0);
    const before = host.snapshot();
    expect(host.map(va, iova, size, VADDR)).toBe(EINVAL);
    expect(host.snapshot()).toEqual(before);
  });

  it('refuses a mapping whose vaddr is valid with EINVAL and an unmapped range with ENOENT', () => {
    const { host, va } = guest();
    expect(host.map(va, 0x100000n, PAGE * 4n, VADDR)).toBe(EINVAL);
    expect(host.map(va, 0x300000n, PAGE * 4n, VADDR)).toBe(ENOENT);
  });
});

describe('while a vaddr is invalid', () => {
  it('refuses to attach a group with EBUSY', () => {
    const { host } = guest();
    expect(host.unmap(0x100000n, PAGE * 4n, INVALIDATE).rc).toBe(0);
    const before = host.snapshot();
    expect(host.attach(2, '0000:01:00.1').rc).toBe(EBUSY);
    expect(host.attachEmulated(9)).toBe(EBUSY);
    expect(host.snapshot()).toEqual(before);
  });

  it('refuses pinPages and dmaRw with EBUSY instead of waiting, and serves them again once the vaddr is back', () => {
    const { host, va } = guest();
    host.backend.registerDevice(emulatedDevice());
    expect(host.unmap(0x100000n, PAGE * 4n, INVALIDATE).rc).toBe(0);
    expect(syscall(() => host.backend.pinPages({ id: 1 }, 0x200000n, 1, IOMMU_READ).length)).toBe(EBUSY);
    expect(syscall(() => (host.backend.dmaRw(0x200000n, new Uint8Array(4), false), 0))).toBe(EBUSY);
    expect(host.map(va, 0x100000n, PAGE * 4n, VADDR)).toBe(0);
    expect(syscall(() => host.backend.pinPages({ id: 1 }, 0x200000n, 1, IOMMU_READ | IOMMU_WRITE).length)).toBe(1);
    host.backend.unpinPages(0x200000n, 1);
  });
});

describe('live update across exec()', () => {
  it('keeps device DMA working while the VMM re-execs, re-maps guest RAM elsewhere and updates the vaddrs', () => {
    const { host, dev, memfd } = guest();
    const vmm = host.proc;
    host.dma.dmaWrite(dev, 0x100000n, Uint8Array.of(0x11));
    const pinned = host.system.physMem.pinnedFrames;

    // Old VMM: invalidate every vaddr, then exec the new image; the memfd survives (no CLOEXEC).
    expect(host.unmap(0n, 0n, INVALIDATE | VFIO_DMA_UNMAP_FLAG_ALL)).toEqual({ rc: 0, size: PAGE * 8n });
    expect(vmm.exec()).toBe(0);

    // The device keeps doing DMA in the gap; it lands in guest RAM through the pinned pages.
    host.dma.dmaWrite(dev, 0x200008n, Uint8Array.of(0x22));
    expect(host.system.physMem.pinnedFrames).toBe(pinned);

    // New VMM: guest RAM at another address, arguments in fresh memory.
    host.argp = host.mmap(PAGE * 4n);
    const va2 = host.mmap(PAGE * 8n, { fd: memfd, addr: 0x10_0000_0000n });
    expect(vmm.mem.read(va2, 1)).toEqual(Uint8Array.of(0x11));
    expect(vmm.mem.read(va2 + PAGE * 4n + 8n, 1)).toEqual(Uint8Array.of(0x22));
    expect(host.map(va2, 0x100000n, PAGE * 4n, VADDR)).toBe(0);
    expect(host.map(va2 + PAGE * 4n, 0x200000n, PAGE * 4n, VADDR)).toBe(0);
    expect(host.backend.vaddrInvalidCount).toBe(0);

    // Device and CPU agree through the new mapping; kernel-side access goes through the new mm.
    vmm.mem.write(va2 + 0x20n, Uint8Array.of(0x33));
    expect(host.dma.dmaRead(dev, 0x100020n, 1)).toEqual(Uint8Array.of(0x33));
    const viaContainer = new Uint8Array(1);
    host.backend.dmaRw(0x200008n, viaContainer, false);
    expect(viaContainer).toEqual(Uint8Array.of(0x22));

    // An emulated device may pin through the container again.
    host.backend.registerDevice(emulatedDevice());
    const [frame] = host.backend.pinPages({ id: 1 }, 0x100000n, 1, IOMMU_READ);
    expect(frame!.data[0x20]).toBe(0x33);
    host.backend.unpinPages(0x100000n, 1);

    // The new process unmaps it all, and nothing stays pinned.
    expect(host.unmap(0n, 0n, VFIO_DMA_UNMAP_FLAG_ALL)).toEqual({ rc: 0, size: PAGE * 8n });
    expect(host.system.physMem.pinnedFrames).toBe(0);
  });

  it('without a vaddr update, kernel accesses fail once the old address space is gone', () => {
    const { host } = guest();
    host.backend.registerDevice(emulatedDevice());
    expect(host.proc.exec()).toBe(0);
    expect(syscall(() => (host.backend.dmaRw(0x100000n, new Uint8Array(1), false), 0))).toBe(EPERM);
    expect(syscall(() => host.backend.pinPages({ id: 1 }, 0x100000n, 1, IOMMU_READ).length)).toBe(ENODEV);
  });

  it('moves the mapping to the new process: the old VMM can no longer reach guest RAM through it', () => {
    const { host, memfd } = guest();
    expect(host.unmap(0x100000n, PAGE * 4n, INVALIDATE).rc).toBe(0);
    const successor = host.system.spawn();
    const fd = host.proc.sendFd(successor, memfd);
    expect(fd).toBeGreaterThanOrEqual(0);
    const va = successor.mmap(PAGE * 8n, { fd });
    expect(va).toBeGreaterThan(0n);
    const old = host.proc;
    host.proc = successor;
    host.argp = host.mmap(PAGE);
    expect(host.map(va, 0x100000n, PAGE * 4n, VADDR)).toBe(0);
    old.exit();
    const out = new Uint8Array(2);
    successor.mem.write(va, Uint8Array.of(7, 8));
    host.backend.dmaRw(0x100000n, out, false);
    expect(out).toEqual(Uint8Array.of(7, 8));
    expect(syscall(() => (host.backend.dmaRw(0x200000n, out, false), 0))).toBe(EPERM);
  });
});

describe('accounting of pins', () => {
  it('pins each frame of guest RAM once and releases every pin on release()', () => {
    const { host } = guest();
    expect(host.system.physMem.pinnedFrames).toBe(8);
    host.backend.release();
    expect(host.system.physMem.pinnedFrames).toBe(0);
  });
});
