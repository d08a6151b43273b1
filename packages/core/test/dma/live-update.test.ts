import { describe, expect, it } from 'vitest';
import {
  Errno,
  FIONCLEX,
  VFIO_CHECK_EXTENSION,
  VFIO_DMA_MAP_FLAG_VADDR,
  VFIO_DMA_UNMAP_FLAG_ALL,
  VFIO_DMA_UNMAP_FLAG_VADDR,
  VFIO_IOMMU_GET_INFO,
  VFIO_IOMMU_INFO_CAPS,
  VFIO_SET_IOMMU,
  VFIO_TYPE1v2_IOMMU,
  VFIO_UPDATE_VADDR,
  syscall,
  vfio_iommu_type1_info,
  type VfioIommuType1,
} from '@vfiosim/core';
import { NIC0, NIC1, PAGE, Vmm, dmaHost } from './harness.js';

/*
 * CPR (QEMU's cpr-exec live update) against a type1 container, through the
 * syscall surface only: the VMM keeps guest RAM in a memfd, invalidates the
 * vaddr of every DMA mapping, exec()s its new binary (the vfio fds and the
 * memfd survive), maps the memfd again wherever the new image likes, and
 * hands each mapping its new vaddr. The device does DMA all the while.
 *
 * Since Linux 6.3 ("vfio/type1: revert 'block on invalid vaddr'",
 * "exclude mdevs from VFIO_UPDATE_VADDR"), nothing in the kernel waits for
 * the new vaddr: whatever would need it is refused with EBUSY instead.
 */

const RAM = PAGE * 16n;
// Inside the mock IOMMU's aperture (16 MiB .. 2 GiB), which bounds the container's IOVA ranges.
const LOW = { iova: 0x100_0000n, offset: 0n, size: PAGE * 8n };
const HIGH = { iova: 0x4000_0000n, offset: PAGE * 8n, size: PAGE * 8n };

/** QEMU's start-up: container, group, type1v2, device fd, guest RAM in a memfd, one DMA mapping per RAM section. */
function bootVm() {
  const host = dmaHost();
  const vmm = new Vmm(host);
  const container = vmm.open('/dev/vfio/vfio');
  const group = vmm.open(vmm.groupPath(NIC0));
  expect(vmm.setContainer(group, container)).toBe(0);
  expect(vmm.proc.ioctl(container, VFIO_CHECK_EXTENSION, BigInt(VFIO_TYPE1v2_IOMMU))).toBe(1);
  expect(vmm.proc.ioctl(container, VFIO_SET_IOMMU, BigInt(VFIO_TYPE1v2_IOMMU))).toBe(0);
  // vfio_get_iommu_info(): the first call learns the size of the capability chain.
  const info = vmm.ioctl(container, VFIO_IOMMU_GET_INFO, vfio_iommu_type1_info, { argsz: vfio_iommu_type1_info.size });
  expect(info.rc).toBe(0);
  expect(info.out.flags & VFIO_IOMMU_INFO_CAPS).toBe(VFIO_IOMMU_INFO_CAPS);
  expect(info.out.argsz).toBeGreaterThan(vfio_iommu_type1_info.size);
  const device = vmm.deviceFd(group, NIC0);
  const ram = vmm.guestRam(RAM);
  for (const s of [LOW, HIGH]) expect(vmm.mapDma(container, ram.va + s.offset, s.iova, s.size)).toBe(0);
  const nic = vmm.fn(NIC0);
  const backend = host.vfio.devices.find((d) => d.dev === (nic as unknown))!.group!.container!.backend as VfioIommuType1;
  return { host, vmm, container, group, device, ram, nic, backend };
}

describe('live update of a type1 container across exec() (VFIO_UPDATE_VADDR)', () => {
  it('keeps device DMA right through invalidate, exec, re-map of the memfd and vaddr update, and unpins everything at the end', () => {
    const { host, vmm, container, group, device, ram, nic, backend } = bootVm();
    expect(vmm.proc.ioctl(container, VFIO_CHECK_EXTENSION, BigInt(VFIO_UPDATE_VADDR))).toBe(1);
    const pinned = host.system.physMem.pinnedFrames;
    expect(pinned).toBe(16);

    // Before: the guest writes, the device reads it back through the IOMMU.
    vmm.write(ram.va + 0x10n, Uint8Array.of(0xa1, 0xa2));
    expect(host.dma.dmaRead(nic, LOW.iova + 0x10n, 2)).toEqual(Uint8Array.of(0xa1, 0xa2));

    // Old QEMU, before exec: every vaddr invalidated at once; size reports both mappings.
    expect(vmm.unmapDma(container, 0n, 0n, VFIO_DMA_UNMAP_FLAG_VADDR | VFIO_DMA_UNMAP_FLAG_ALL)).toEqual({ rc: 0, size: RAM });
    expect(backend.vaddrInvalidCount).toBe(2);
    host.dma.dmaWrite(nic, HIGH.iova + 0x20n, Uint8Array.of(0xb1));

    // GET_DEVICE_FD hands out a close-on-exec fd; QEMU clears FD_CLOEXEC on every fd it carries across.
    expect(vmm.proc.files.isCloexec(device)).toBe(true);
    expect(vmm.proc.ioctl(device, FIONCLEX)).toBe(0);
    expect(vmm.proc.exec()).toBe(0);
    vmm.newScratch();

    // The gap: the old address space is gone, the mappings are not.
    expect(host.system.physMem.pinnedFrames).toBe(pinned);
    host.dma.dmaWrite(nic, LOW.iova + 0x30n, Uint8Array.of(0xc1));
    expect(host.dma.dmaRead(nic, LOW.iova + 0x10n, 2)).toEqual(Uint8Array.of(0xa1, 0xa2));
    expect(host.dma.faultLog).toEqual([]);
    // Kernel-side users that would translate by vaddr are refused, not made to wait.
    expect(syscall(() => (backend.dmaRw(LOW.iova, new Uint8Array(1), false), 0))).toBe(-Errno.EBUSY);

    // New QEMU: the inherited memfd mapped at another address, each mapping told its new vaddr.
    const va2 = vmm.mmap(RAM, { fd: ram.memfd, addr: 0x7f00_0000_0000n });
    expect(va2).not.toBe(ram.va);
    for (const s of [LOW, HIGH]) {
      expect(vmm.mapDma(container, va2 + s.offset, s.iova, s.size, VFIO_DMA_MAP_FLAG_VADDR)).toBe(0);
    }
    expect(backend.vaddrInvalidCount).toBe(0);
    expect(host.system.physMem.pinnedFrames).toBe(pinned);

    // What the device wrote before and during the gap is in guest RAM at the new address...
    expect(vmm.read(va2 + HIGH.offset + 0x20n, 1)).toEqual(Uint8Array.of(0xb1));
    expect(vmm.read(va2 + 0x30n, 1)).toEqual(Uint8Array.of(0xc1));
    // ...what the new image writes reaches the device, and kernel reads go through the new mm.
    vmm.write(va2 + HIGH.offset + 0x40n, Uint8Array.of(0xd1));
    expect(host.dma.dmaRead(nic, HIGH.iova + 0x40n, 1)).toEqual(Uint8Array.of(0xd1));
    const viaContainer = new Uint8Array(1);
    backend.dmaRw(HIGH.iova + 0x40n, viaContainer, false);
    expect(viaContainer).toEqual(Uint8Array.of(0xd1));
    backend.dmaRw(LOW.iova + 0x50n, Uint8Array.of(0xe1), true);
    expect(vmm.read(va2 + 0x50n, 1)).toEqual(Uint8Array.of(0xe1));

    // Shutdown: the new image closes its fds (and the memfd); no frame stays pinned.
    for (const fd of [device, group, container, ram.memfd]) expect(vmm.proc.close(fd)).toBe(0);
    expect(host.system.physMem.pinnedFrames).toBe(0);
  });

  it('refuses a group joining the container while a vaddr is invalid (EBUSY), and takes it once the vaddr is back', () => {
    const { vmm, container, ram } = bootVm();
    const group1 = vmm.open(vmm.groupPath(NIC1));
    expect(vmm.unmapDma(container, LOW.iova, LOW.size, VFIO_DMA_UNMAP_FLAG_VADDR)).toEqual({ rc: 0, size: LOW.size });
    expect(vmm.setContainer(group1, container)).toBe(-Errno.EBUSY);
    expect(vmm.mapDma(container, ram.va + LOW.offset, LOW.iova, LOW.size, VFIO_DMA_MAP_FLAG_VADDR)).toBe(0);
    expect(vmm.setContainer(group1, container)).toBe(0);
  });

  it('answers the vaddr rules through the container fd: ENOENT, EINVAL for a mapping not invalidated, EINVAL for twice invalid', () => {
    const { host, vmm, container, ram, nic } = bootVm();
    expect(vmm.mapDma(container, ram.va, 0x2000_0000n, PAGE, VFIO_DMA_MAP_FLAG_VADDR)).toBe(-Errno.ENOENT);
    expect(vmm.mapDma(container, ram.va, LOW.iova, LOW.size, VFIO_DMA_MAP_FLAG_VADDR)).toBe(-Errno.EINVAL);
    expect(vmm.unmapDma(container, HIGH.iova, HIGH.size, VFIO_DMA_UNMAP_FLAG_VADDR).rc).toBe(0);
    // The second invalidation reaches HIGH again: all or nothing, LOW stays valid and nothing is written back.
    expect(vmm.unmapDma(container, 0n, 0n, VFIO_DMA_UNMAP_FLAG_VADDR | VFIO_DMA_UNMAP_FLAG_ALL)).toEqual({ rc: -Errno.EINVAL, size: 0n });
    expect(vmm.mapDma(container, ram.va + LOW.offset, LOW.iova, LOW.size, VFIO_DMA_MAP_FLAG_VADDR)).toBe(-Errno.EINVAL);
    // A real unmap of a mapping whose vaddr is invalid is allowed; the device then faults there.
    expect(vmm.unmapDma(container, HIGH.iova, HIGH.size)).toEqual({ rc: 0, size: HIGH.size });
    expect(host.dma.tryDmaRead(nic, HIGH.iova, new Uint8Array(1))?.reason).toBe('not-present');
    expect(host.system.physMem.pinnedFrames).toBe(8);
  });
});
