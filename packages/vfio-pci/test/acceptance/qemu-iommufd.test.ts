import { describe, expect, it } from 'vitest';
import {
  IOMMU_HW_CAP_DIRTY_TRACKING,
  IOMMU_HW_INFO_TYPE_SELFTEST,
  IOMMU_HWPT_ALLOC_DIRTY_TRACKING,
  MAP_ANONYMOUS,
  MAP_SHARED,
  MOCK_APERTURE_LAST,
  MOCK_APERTURE_START,
  PCI_COMMAND,
  PCI_COMMAND_MASTER,
  PCI_COMMAND_MEMORY,
  PROT_READ,
  PROT_WRITE,
  VFIO_DEVICE_FLAGS_PCI,
  VFIO_PCI_HOT_RESET_FLAG_DEV_ID,
  VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED,
  vfio_device_info,
  type Host,
} from '@vfiosim/core';
import { DUAL_BDFS, NIC_BDF, dualPortNoFlrHost, nicHost } from './hosts.js';
import { Sysfs } from './libvfio/vfio-pci-device.js';
import { QemuIommufd } from './qemu/iommufd.js';
import { Syscalls } from './qemu/trace.js';
import { QemuVfioPci } from './qemu/vfio-pci.js';
import { User } from './user.js';

/*
 * `-object iommufd,id=iommufd0 -device vfio-pci,host=...,iommufd=iommufd0`:
 * hw/vfio/iommufd.c's iommufd_cdev_attach, then the same PCI realize as on
 * the legacy container, ioctl by ioctl. Guest RAM at GPA 16 MiB, inside the
 * mock IOMMU's aperture.
 */

const GUEST_RAM_GPA = 16n << 20n;
const GUEST_RAM_SIZE = 64n << 20n;
/** sizeof(VendorCaps): QEMU hands GET_HW_INFO room for the largest vendor struct it knows. */
const VENDOR_CAPS_SIZE = 40;

interface Attached {
  fd: number;
  devid: number;
  dev: QemuVfioPci;
}

/**
 * iommufd_cdev_attach for one device: cdev, bind, the address space's IOAS
 * (made by the first device, with its automatic HWPT and the listener's
 * mappings), DEVICE_GET_INFO, the host IOMMU device's GET_HW_INFO; then
 * the PCI realize.
 */
function attachDevice(host: Host, be: QemuIommufd, bdf: string, ram: bigint): Attached {
  const { sys } = be;
  const fd = sys.open(new Sysfs(host).cdevPath(bdf));
  expect(fd).toBeGreaterThanOrEqual(0);
  const devid = be.bind(fd);
  if (!be.ioasId) {
    be.allocIoas();
    be.autodomainsGet(fd, devid);
    be.getInfoIovaRange();
    expect(be.mapDma(GUEST_RAM_GPA, GUEST_RAM_SIZE, ram)).toBe(0);
  } else {
    be.autodomainsGet(fd, devid);
  }
  const info = sys.ioctl(fd, 'VFIO_DEVICE_GET_INFO', vfio_device_info, { argsz: vfio_device_info.size });
  expect(info.rc).toBe(0);
  be.getDeviceInfo(devid, VENDOR_CAPS_SIZE);
  const dev = new QemuVfioPci(sys, fd);
  dev.info = info.out;
  dev.realize();
  return { fd, devid, dev };
}

function guestRam(sys: Syscalls): bigint {
  const ram = sys.proc.mmap(GUEST_RAM_SIZE, { prot: PROT_READ | PROT_WRITE, flags: MAP_SHARED | MAP_ANONYMOUS });
  expect(ram > 0n).toBe(true);
  return ram;
}

describe('QEMU vfio-pci realize on the iommufd back end', () => {
  it('binds, makes the IOAS and an automatic HWPT with dirty tracking, reads the IOVA ranges, maps RAM, then realizes', () => {
    const host = nicHost();
    const sys = new Syscalls(new User(host.spawn()));
    const ram = guestRam(sys);
    const be = new QemuIommufd(sys);
    const { fd, devid, dev } = attachDevice(host, be, NIC_BDF, ram);

    expect(sys.log.slice(0, 13)).toEqual([
      'open(/dev/vfio/devices/vfio0)=3',
      'open(/dev/iommu)=4',
      'VFIO_DEVICE_BIND_IOMMUFD=0',
      'IOMMU_IOAS_ALLOC=0',
      'IOMMU_GET_HW_INFO=0',
      'IOMMU_HWPT_ALLOC=0',
      'VFIO_DEVICE_ATTACH_IOMMUFD_PT=0',
      'IOMMU_IOAS_IOVA_RANGES=-90',
      'IOMMU_IOAS_IOVA_RANGES=0',
      'IOMMU_IOAS_MAP=0',
      'VFIO_DEVICE_GET_INFO=0',
      'IOMMU_GET_HW_INFO=0',
      'VFIO_DEVICE_GET_REGION_INFO=0',
    ]);
    expect(devid).toBeGreaterThan(0);
    expect(be.hwpts).toEqual([{ id: be.hwpts[0]!.id, flags: IOMMU_HWPT_ALLOC_DIRTY_TRACKING }]);
    expect(be.ranges).toEqual([{ start: MOCK_APERTURE_START, last: MOCK_APERTURE_LAST }]);
    expect(be.pgsizes).toBe(0x1000n);
    const hw = be.getDeviceInfo(devid, VENDOR_CAPS_SIZE);
    expect(hw.type).toBe(IOMMU_HW_INFO_TYPE_SELFTEST);
    expect(hw.caps & BigInt(IOMMU_HW_CAP_DIRTY_TRACKING)).toBe(BigInt(IOMMU_HW_CAP_DIRTY_TRACKING));
    expect(dev.info.flags & VFIO_DEVICE_FLAGS_PCI).toBeTruthy();
    expect(dev.msix).toMatchObject({ tableBar: 4, entries: 64, noresize: false });

    // Once the guest driver sets Bus Master, the device reaches guest RAM through the HWPT.
    const fn = host.platform.get(NIC_BDF);
    expect(sys.pwrite(fd, new Uint8Array([PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, 0]), dev.configOffset + BigInt(PCI_COMMAND))).toBe(2);
    host.dma.dmaWrite(fn, GUEST_RAM_GPA + 0x3000n, new Uint8Array([0xde, 0xad]));
    expect([...sys.user.read(ram + 0x3000n, 2)]).toEqual([0xde, 0xad]);
    expect(fd).toBe(3);
  });

  it('tears down as iommufd_cdev_detach does: detach, HWPT, listener unmap in halves, IOAS, device, iommufd', () => {
    const host = nicHost();
    const sys = new Syscalls(new User(host.spawn()));
    const ram = guestRam(sys);
    const be = new QemuIommufd(sys);
    const { fd, dev } = attachDevice(host, be, NIC_BDF, ram);
    const groupId = new Sysfs(host).iommuGroup(NIC_BDF);

    // vfio_exitfn: interrupts off, BARs unmapped.
    dev.disableInterrupts();
    dev.barsExit();
    sys.mark();
    expect(be.detach(fd)).toBe(0);
    expect(be.freeId(be.hwpts[0]!.id)).toBe(0);
    const half = 1n << 63n;
    expect(be.unmapDma(0n, half)).toEqual({ rc: 0, length: GUEST_RAM_SIZE });
    // Nothing left in the upper half: ENOENT (QEMU counts it as done), and a
    // failed iommufd command writes nothing back.
    expect(be.unmapDma(half, half)).toEqual({ rc: 0, length: half });
    expect(be.freeId(be.ioasId)).toBe(0);
    expect(sys.close(fd)).toBe(0);
    expect(host.iommu.dmaOwnerClaimed(groupId)).toBe(false);
    expect(sys.close(be.fd)).toBe(0);
    expect(sys.log).toEqual([
      'VFIO_DEVICE_DETACH_IOMMUFD_PT=0',
      'IOMMU_DESTROY=0',
      'IOMMU_IOAS_UNMAP=0',
      'IOMMU_IOAS_UNMAP=-2',
      'IOMMU_DESTROY=0',
      'close=0',
      'close=0',
    ]);
  });

  it('keeps the device open, and its group claimed, while a BAR mapping holds the file after close()', () => {
    const host = nicHost();
    const sys = new Syscalls(new User(host.spawn()));
    const be = new QemuIommufd(sys);
    const { fd, dev } = attachDevice(host, be, NIC_BDF, guestRam(sys));
    const groupId = new Sysfs(host).iommuGroup(NIC_BDF);
    expect(sys.close(fd)).toBe(0);
    expect(host.iommu.dmaOwnerClaimed(groupId)).toBe(true);
    // The mapping still reaches the device, as a VMA's vm_file keeps it.
    expect(sys.user.proc.mem.write(dev.bars[0]!.mmap!, new Uint8Array(4))).toBe(0);
    dev.barsExit();
    expect(host.iommu.dmaOwnerClaimed(groupId)).toBe(false);
  });

  it('puts the second function of a group on the HWPT the first made, and hot-resets both with the empty fd array', () => {
    const host = dualPortNoFlrHost();
    const sys = new Syscalls(new User(host.spawn()));
    const ram = guestRam(sys);
    const be = new QemuIommufd(sys);
    const first = attachDevice(host, be, DUAL_BDFS[0], ram);
    sys.mark();
    const second = attachDevice(host, be, DUAL_BDFS[1], ram);
    expect(sys.log.slice(0, 4)).toEqual([
      'open(/dev/vfio/devices/vfio1)=8',
      'VFIO_DEVICE_BIND_IOMMUFD=0',
      // iommufd_cdev_autodomains_get: the existing HWPT is compatible.
      'VFIO_DEVICE_ATTACH_IOMMUFD_PT=0',
      'VFIO_DEVICE_GET_INFO=0',
    ]);
    expect(be.hwpts).toHaveLength(1);
    // Neither function can reset alone.
    expect(first.dev.info.flags).toBe(VFIO_DEVICE_FLAGS_PCI);
    expect(second.dev.info.flags).toBe(VFIO_DEVICE_FLAGS_PCI);

    const { rc, info, devices } = first.dev.getHotResetInfo();
    expect(rc).toBe(0);
    expect(info.flags).toBe(VFIO_PCI_HOT_RESET_FLAG_DEV_ID | VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED);
    expect(devices.map((d) => [d.segment, d.bus, d.devfn, d.devid])).toEqual([
      [0, 0x0a, 0, first.devid],
      [0, 0x0a, 1, second.devid],
    ]);

    const fns = DUAL_BDFS.map((bdf) => host.platform.get(bdf));
    const before = fns.map((fn) => fn.resetCount);
    expect(first.dev.hotReset([])).toBe(0);
    expect(fns.map((fn) => fn.resetCount)).toEqual(before.map((n) => n + 1));
    expect(fns.map((fn) => fn.lastReset)).toEqual(['bus', 'bus']);
  });
});
