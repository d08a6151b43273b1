import { describe, expect, it } from 'vitest';
import {
  Errno,
  IOMMU_IOAS_ALLOC,
  IOMMU_IOAS_MAP,
  IOMMU_IOAS_MAP_FIXED_IOVA,
  IOMMU_IOAS_MAP_READABLE,
  IOMMU_IOAS_MAP_WRITEABLE,
  IOMMU_IOAS_UNMAP,
  IOMMU_READ,
  IOMMU_WRITE,
  VFIO_CHECK_EXTENSION,
  VFIO_DMA_MAP_FLAG_READ,
  VFIO_DMA_UNMAP_FLAG_VADDR,
  VFIO_PIN_PAGES_MAX_ENTRIES,
  VFIO_SET_IOMMU,
  VFIO_TYPE1v2_IOMMU,
  VFIO_UPDATE_VADDR,
  iommu_ioas_alloc,
  iommu_ioas_map,
  iommu_ioas_unmap,
} from '@vfiosim/core';
import { EmulatedDevice, PAGE, Vmm, dmaHost } from './harness.js';

/*
 * An emulated device reaches guest memory through vfioPinPages and
 * vfioDmaRw, whichever back end its VMM chose: a type1 container, a device
 * cdev bound to /dev/iommu (an iommufd access object), or /dev/iommu used
 * as a container. The VMM side is raw syscalls; the device side is what its
 * kernel driver calls.
 */

const IOVA = 0x100_0000n;
const SIZE = PAGE * 8n;
const RW = IOMMU_READ | IOMMU_WRITE;

function mdevHost() {
  const host = dmaHost();
  const emu = new EmulatedDevice(host);
  const vmm = new Vmm(host);
  const ram = vmm.mmap(SIZE);
  vmm.write(ram + PAGE, Uint8Array.of(0x11, 0x22));
  return { host, emu, vmm, ram };
}

/** The mdev's group in a type1 container, the device open, guest RAM mapped. */
function type1Mdev() {
  const t = mdevHost();
  const container = t.vmm.open('/dev/vfio/vfio');
  const group = t.vmm.open(t.vmm.groupPath(t.emu.name));
  expect(t.vmm.setContainer(group, container)).toBe(0);
  expect(t.vmm.proc.ioctl(container, VFIO_SET_IOMMU, BigInt(VFIO_TYPE1v2_IOMMU))).toBe(0);
  const device = t.vmm.deviceFd(group, t.emu.name);
  expect(t.vmm.mapDma(container, t.ram, IOVA, SIZE)).toBe(0);
  return { ...t, container, group, device };
}

describe('an emulated device in a type1 container', () => {
  it('pins and reads guest memory by IOVA; nothing is pinned until it pins; UNMAP_DMA makes it unpin first', () => {
    const { host, emu, vmm, container, ram } = type1Mdev();
    expect(host.system.physMem.pinnedFrames).toBe(0);
    expect(emu.pin(IOVA + PAGE, 2, RW)).toBe(2);
    expect(host.system.physMem.pinnedFrames).toBe(2);
    const out = new Uint8Array(2);
    expect(emu.rw(IOVA + PAGE, out, false)).toBe(0);
    expect(out).toEqual(Uint8Array.of(0x11, 0x22));
    expect(emu.rw(IOVA + PAGE * 7n, Uint8Array.of(0x33), true)).toBe(0);
    expect(vmm.read(ram + PAGE * 7n, 1)).toEqual(Uint8Array.of(0x33));
    expect(vmm.unmapDma(container, IOVA, SIZE)).toEqual({ rc: 0, size: SIZE });
    expect(emu.unmaps).toEqual([[IOVA, SIZE]]);
    expect(host.system.physMem.pinnedFrames).toBe(0);
    expect(emu.pin(IOVA, 1, RW)).toBe(-Errno.EINVAL);
  });

  it('turns live update off: UPDATE_VADDR is not offered and VFIO_DMA_UNMAP_FLAG_VADDR is EBUSY', () => {
    const { emu, vmm, container } = type1Mdev();
    expect(vmm.proc.ioctl(container, VFIO_CHECK_EXTENSION, BigInt(VFIO_UPDATE_VADDR))).toBe(0);
    expect(vmm.unmapDma(container, IOVA, SIZE, VFIO_DMA_UNMAP_FLAG_VADDR).rc).toBe(-Errno.EBUSY);
    expect(emu.rw(IOVA, new Uint8Array(1), false)).toBe(0);
  });

  it('refuses no pages (EINVAL), more than a page of pfns (E2BIG), an access the mapping lacks (EPERM) and a closed device (EINVAL)', () => {
    const { host, emu, vmm, container, device, ram } = type1Mdev();
    expect(vmm.mapDma(container, ram, 0x200_0000n, PAGE, VFIO_DMA_MAP_FLAG_READ)).toBe(0);
    expect(emu.pin(IOVA, 0, RW)).toBe(-Errno.EINVAL);
    expect(emu.pin(IOVA, VFIO_PIN_PAGES_MAX_ENTRIES + 1, RW)).toBe(-Errno.E2BIG);
    expect(emu.pin(0x200_0000n, 1, RW)).toBe(-Errno.EPERM);
    expect(emu.rw(0x200_0000n, Uint8Array.of(1), true)).toBe(-Errno.EPERM);
    expect(emu.rw(IOVA, new Uint8Array(0), false)).toBe(-Errno.EINVAL);
    expect(host.system.physMem.pinnedFrames).toBe(0);
    expect(vmm.proc.close(device)).toBe(0);
    expect(emu.pin(IOVA, 1, RW)).toBe(-Errno.EINVAL);
    expect(emu.rw(IOVA, new Uint8Array(1), false)).toBe(-Errno.EINVAL);
  });
});

describe('an emulated device bound to iommufd (its access object)', () => {
  function cdevMdev() {
    const t = mdevHost();
    const iommufd = t.vmm.open('/dev/iommu');
    const { fd: device } = t.vmm.bindCdev(t.emu.name, iommufd);
    const ioas = t.vmm.ioctl(iommufd, IOMMU_IOAS_ALLOC, iommu_ioas_alloc, { size: iommu_ioas_alloc.size }).out.out_ioas_id;
    expect(t.vmm.ioctl(iommufd, IOMMU_IOAS_MAP, iommu_ioas_map, {
      size: iommu_ioas_map.size,
      flags: IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_FIXED_IOVA,
      ioas_id: ioas, user_va: t.ram, length: SIZE, iova: IOVA,
    }).rc).toBe(0);
    return { ...t, iommufd, device, ioas };
  }

  it('pins and reads through the IOAS once attached (ENOENT before), and IOAS_UNMAP makes it unpin first', () => {
    const { host, emu, vmm, iommufd, device, ioas } = cdevMdev();
    expect(emu.pin(IOVA, 1, RW)).toBe(-Errno.ENOENT);
    expect(vmm.attachPt(device, ioas)).toBe(0);
    expect(emu.pin(IOVA + PAGE + 0x10n, 2, RW)).toBe(2);
    expect(host.system.physMem.pinnedFrames).toBe(2);
    const out = new Uint8Array(2);
    expect(emu.rw(IOVA + PAGE, out, false)).toBe(0);
    expect(out).toEqual(Uint8Array.of(0x11, 0x22));
    const unmap = vmm.ioctl(iommufd, IOMMU_IOAS_UNMAP, iommu_ioas_unmap, { size: iommu_ioas_unmap.size, ioas_id: ioas, iova: IOVA, length: SIZE });
    expect(unmap.rc).toBe(0);
    expect(unmap.out.length).toBe(SIZE);
    expect(emu.unmaps).toEqual([[IOVA, SIZE]]);
    expect(host.system.physMem.pinnedFrames).toBe(0);
  });

  it('leaves nothing pinned once the device and /dev/iommu are closed', () => {
    const { host, emu, vmm, iommufd, device, ioas } = cdevMdev();
    expect(vmm.attachPt(device, ioas)).toBe(0);
    expect(emu.pin(IOVA, 4, RW)).toBe(4);
    expect(vmm.proc.close(iommufd)).toBe(0);
    expect(host.system.physMem.pinnedFrames).toBe(4);
    expect(vmm.proc.close(device)).toBe(0);
    expect(emu.unmaps).toEqual([[0n, (1n << 64n) - 1n]]);
    expect(host.system.physMem.pinnedFrames).toBe(0);
  });
});

describe('an emulated device behind /dev/iommu used as a container', () => {
  it('pins through the compat IOAS, and VFIO_IOMMU_UNMAP_DMA makes it unpin first', () => {
    const { host, emu, vmm, ram } = mdevHost();
    const iommufd = vmm.open('/dev/iommu');
    const group = vmm.open(vmm.groupPath(emu.name));
    expect(vmm.setContainer(group, iommufd)).toBe(0);
    expect(vmm.proc.ioctl(iommufd, VFIO_SET_IOMMU, BigInt(VFIO_TYPE1v2_IOMMU))).toBe(0);
    vmm.deviceFd(group, emu.name);
    expect(vmm.mapDma(iommufd, ram, IOVA, SIZE)).toBe(0);
    expect(emu.pin(IOVA + PAGE, 1, RW)).toBe(1);
    expect(host.system.physMem.pinnedFrames).toBe(1);
    const out = new Uint8Array(1);
    expect(emu.rw(IOVA + PAGE + 1n, out, false)).toBe(0);
    expect(out).toEqual(Uint8Array.of(0x22));
    expect(vmm.unmapDma(iommufd, IOVA, SIZE)).toEqual({ rc: 0, size: SIZE });
    expect(emu.unmaps).toEqual([[IOVA, SIZE]]);
    expect(host.system.physMem.pinnedFrames).toBe(0);
  });
});
