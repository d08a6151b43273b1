import { describe, expect, it } from 'vitest';
import {
  IOMMU_IOAS_ALLOC,
  IOMMU_IOAS_MAP,
  IOMMU_IOAS_MAP_FIXED_IOVA,
  IOMMU_IOAS_MAP_READABLE,
  IOMMU_IOAS_MAP_WRITEABLE,
  IOMMU_IOAS_UNMAP,
  VFIO_DMA_UNMAP_FLAG_ALL,
  VFIO_SET_IOMMU,
  VFIO_TYPE1v2_IOMMU,
  iommu_ioas_alloc,
  iommu_ioas_map,
  iommu_ioas_unmap,
} from '@vfiosim/core';
import { NIC0, NIC1, PAGE, Vmm, dmaHost } from './harness.js';

/*
 * Pin accounting of both back ends, through the fds a VMM holds: mapping
 * pins the frames behind the user memory once, unmapping unpins them, the
 * process letting go of its memory does not free a pinned frame (the
 * device keeps reaching it), and once every fd is closed no frame is
 * pinned, in whatever order the fds go.
 */

const IOVA = 0x100_0000n;
const PAGES = 8n;
const SIZE = PAGE * PAGES;
const IOAS_RW = IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE;

/** A type1 container holding NIC0's group (and NIC1's with `both`), the device fds open. */
function type1Vm(both = false) {
  const host = dmaHost();
  const vmm = new Vmm(host);
  const container = vmm.open('/dev/vfio/vfio');
  const bdfs = both ? [NIC0, NIC1] : [NIC0];
  const groups = bdfs.map((bdf) => vmm.open(vmm.groupPath(bdf)));
  groups.forEach((group, i) => {
    expect(vmm.setContainer(group, container)).toBe(0);
    if (i === 0) expect(vmm.proc.ioctl(container, VFIO_SET_IOMMU, BigInt(VFIO_TYPE1v2_IOMMU))).toBe(0);
  });
  const devices = bdfs.map((bdf, i) => vmm.deviceFd(groups[i]!, bdf));
  return { host, vmm, container, groups, devices };
}

/** A device cdev bound to /dev/iommu and attached to an IOAS (an automatic paging domain). */
function iommufdVm() {
  const host = dmaHost();
  const vmm = new Vmm(host);
  const iommufd = vmm.open('/dev/iommu');
  const { fd: device } = vmm.bindCdev(NIC0, iommufd);
  const ioas = vmm.ioctl(iommufd, IOMMU_IOAS_ALLOC, iommu_ioas_alloc, { size: iommu_ioas_alloc.size });
  expect(ioas.rc).toBe(0);
  const ioasId = ioas.out.out_ioas_id;
  expect(vmm.attachPt(device, ioasId)).toBe(0);
  const map = (va: bigint, iova = IOVA, length = SIZE) =>
    vmm.ioctl(iommufd, IOMMU_IOAS_MAP, iommu_ioas_map, {
      size: iommu_ioas_map.size, flags: IOAS_RW | IOMMU_IOAS_MAP_FIXED_IOVA, ioas_id: ioasId, user_va: va, length, iova,
    }).rc;
  const unmap = (iova = IOVA, length = SIZE) =>
    vmm.ioctl(iommufd, IOMMU_IOAS_UNMAP, iommu_ioas_unmap, { size: iommu_ioas_unmap.size, ioas_id: ioasId, iova, length });
  return { host, vmm, iommufd, device, ioasId, map, unmap };
}

describe('pinning by the type1 container', () => {
  it('pins each frame once however many domains map it, and unmapping unpins them', () => {
    const { host, vmm, container } = type1Vm(true);
    const va = vmm.mmap(SIZE);
    expect(vmm.mapDma(container, va, IOVA, SIZE)).toBe(0);
    expect(host.iommu.groupIdOf(vmm.fn(NIC0))).not.toBe(host.iommu.groupIdOf(vmm.fn(NIC1)));
    expect(host.system.physMem.pinnedFrames).toBe(Number(PAGES));
    expect(vmm.unmapDma(container, IOVA, SIZE)).toEqual({ rc: 0, size: SIZE });
    expect(host.system.physMem.pinnedFrames).toBe(0);
  });

  it('keeps pinned frames alive after the process munmaps its memory: the device still reaches them, unmap frees them', () => {
    const { host, vmm, container } = type1Vm();
    const nic = vmm.fn(NIC0);
    const va = vmm.mmap(SIZE);
    vmm.write(va + PAGE * 3n, Uint8Array.of(0x5a));
    expect(vmm.mapDma(container, va, IOVA, SIZE)).toBe(0);
    const allocated = host.system.physMem.allocatedFrames;
    expect(vmm.proc.munmap(va, SIZE)).toBe(0);
    expect(host.system.physMem.allocatedFrames).toBe(allocated);
    expect(host.system.physMem.pinnedFrames).toBe(Number(PAGES));
    expect(host.dma.dmaRead(nic, IOVA + PAGE * 3n, 1)).toEqual(Uint8Array.of(0x5a));
    host.dma.dmaWrite(nic, IOVA, Uint8Array.of(7));
    expect(host.system.physMem.strayAccesses).toBe(0);
    expect(vmm.unmapDma(container, 0n, 0n, VFIO_DMA_UNMAP_FLAG_ALL)).toEqual({ rc: 0, size: SIZE });
    expect(host.system.physMem.pinnedFrames).toBe(0);
    expect(host.system.physMem.allocatedFrames).toBe(allocated - Number(PAGES));
  });

  it.each([
    ['container, groups, devices', (c: number, g: number[], d: number[]) => [c, ...g, ...d]],
    ['devices, groups, container', (c: number, g: number[], d: number[]) => [...d, ...g, c]],
    ['groups, container, devices', (c: number, g: number[], d: number[]) => [...g, c, ...d]],
  ])('keeps the pins until the last group leaves, however the fds close (%s); the container fd holds none', (_order, order) => {
    const { host, vmm, container, groups, devices } = type1Vm(true);
    const va = vmm.mmap(SIZE);
    expect(vmm.mapDma(container, va, IOVA, SIZE)).toBe(0);
    // A device fd holds its group file; the last group file released detaches the last group and drops the back end.
    const open = new Set([...groups, ...devices]);
    for (const fd of order(container, groups, devices)) {
      expect(vmm.proc.close(fd)).toBe(0);
      open.delete(fd);
      expect(host.system.physMem.pinnedFrames).toBe(open.size > 0 ? Number(PAGES) : 0);
    }
    expect(host.system.physMem.pinnedFrames).toBe(0);
  });

  it('leaves no frame pinned when the VMM exits with everything open', () => {
    const { host, vmm, container } = type1Vm(true);
    expect(vmm.mapDma(container, vmm.mmap(SIZE), IOVA, SIZE)).toBe(0);
    vmm.proc.exit();
    expect(host.system.physMem.pinnedFrames).toBe(0);
  });
});

describe('pinning by iommufd', () => {
  it('pins on IOAS_MAP once a domain is attached and unpins on IOAS_UNMAP', () => {
    const { host, vmm, map, unmap } = iommufdVm();
    const va = vmm.mmap(SIZE);
    expect(map(va)).toBe(0);
    expect(host.system.physMem.pinnedFrames).toBe(Number(PAGES));
    expect(unmap().rc).toBe(0);
    expect(host.system.physMem.pinnedFrames).toBe(0);
  });

  it('keeps pinned frames alive after the process munmaps its memory: the device still reaches them', () => {
    const { host, vmm, map, unmap } = iommufdVm();
    const nic = vmm.fn(NIC0);
    const va = vmm.mmap(SIZE);
    vmm.write(va + PAGE, Uint8Array.of(0x6b));
    expect(map(va)).toBe(0);
    expect(vmm.proc.munmap(va, SIZE)).toBe(0);
    expect(host.system.physMem.pinnedFrames).toBe(Number(PAGES));
    expect(host.dma.dmaRead(nic, IOVA + PAGE, 1)).toEqual(Uint8Array.of(0x6b));
    expect(host.system.physMem.strayAccesses).toBe(0);
    const allocated = host.system.physMem.allocatedFrames;
    expect(unmap().rc).toBe(0);
    expect(host.system.physMem.allocatedFrames).toBe(allocated - Number(PAGES));
  });

  it.each([
    ['iommufd, then device', (i: number, d: number) => [i, d]],
    ['device, then iommufd', (i: number, d: number) => [d, i]],
  ])('keeps the pins while the device is attached, however the fds close (%s)', (_order, order) => {
    const { host, vmm, iommufd, device, map } = iommufdVm();
    expect(map(vmm.mmap(SIZE))).toBe(0);
    // The bound device holds the context; its unbind removes the IOAS's only domain, which unpins.
    let attached = true;
    for (const fd of order(iommufd, device)) {
      expect(vmm.proc.close(fd)).toBe(0);
      if (fd === device) attached = false;
      expect(host.system.physMem.pinnedFrames).toBe(attached ? Number(PAGES) : 0);
    }
  });

  it('leaves no frame pinned after the compat container (/dev/iommu as a container) is closed with its group and device', () => {
    const host = dmaHost();
    const vmm = new Vmm(host);
    const iommufd = vmm.open('/dev/iommu');
    const group = vmm.open(vmm.groupPath(NIC0));
    expect(vmm.setContainer(group, iommufd)).toBe(0);
    expect(vmm.proc.ioctl(iommufd, VFIO_SET_IOMMU, BigInt(VFIO_TYPE1v2_IOMMU))).toBe(0);
    const device = vmm.deviceFd(group, NIC0);
    const va = vmm.mmap(SIZE);
    expect(vmm.mapDma(iommufd, va, IOVA, SIZE)).toBe(0);
    expect(host.system.physMem.pinnedFrames).toBe(Number(PAGES));
    host.dma.dmaWrite(vmm.fn(NIC0), IOVA + 8n, Uint8Array.of(0x7c));
    expect(vmm.read(va + 8n, 1)).toEqual(Uint8Array.of(0x7c));
    for (const fd of [iommufd, group]) {
      expect(vmm.proc.close(fd)).toBe(0);
      expect(host.system.physMem.pinnedFrames).toBe(Number(PAGES));
    }
    expect(vmm.proc.close(device)).toBe(0);
    expect(host.system.physMem.pinnedFrames).toBe(0);
  });
});
