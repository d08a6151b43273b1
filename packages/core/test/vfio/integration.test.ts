import { describe, expect, it } from 'vitest';
import {
  DriverCore,
  Errno,
  IOMMU_IOAS_ALLOC,
  IommuCore,
  Iommufd,
  System,
  VFIO_DEVICE_ATTACH_IOMMUFD_PT,
  VFIO_DEVICE_BIND_IOMMUFD,
  VFIO_DEVICE_DETACH_IOMMUFD_PT,
  VFIO_GROUP_GET_DEVICE_FD,
  VFIO_GROUP_SET_CONTAINER,
  VFIO_SET_IOMMU,
  VFIO_TYPE1v2_IOMMU,
  VfioCore,
  createMockIommuDriver,
  iommu_ioas_alloc,
  type1IommuDriver,
  vfio_device_attach_iommufd_pt,
  vfio_device_bind_iommufd,
  vfio_device_detach_iommufd_pt,
} from '@vfiosim/core';
import { fixtureDriver, hostDriver, pciFunction, spawnWithScratch, writeString } from './harness.js';

/** The vfio core with the real iommufd and type1 back end instead of the test doubles. */
function realHost() {
  const system = new System();
  const iommu = new IommuCore();
  iommu.registerDriver(createMockIommuDriver({ physMem: system.physMem }));
  const drivers = new DriverCore(iommu);
  const iommufd = new Iommufd(system, iommu);
  const vfio = new VfioCore(system, drivers, iommu, iommufd, { noiommu: false });
  vfio.registerIommuDriver(type1IommuDriver(iommu));
  const driver = fixtureDriver(vfio);
  drivers.registerPciDriver(driver);
  const add = (name: string, group: number, ids = {}) => {
    const fn = pciFunction(name, ids);
    iommu.probeDevice(fn, group);
    drivers.addPciDevice(fn);
    return fn;
  };
  return { system, iommu, drivers, vfio, driver, add };
}

describe('the vfio core with the real iommufd and type1', () => {
  it('binds a cdev to iommufd, attaches it to an IOAS and detaches it', () => {
    const host = realHost();
    const fn = host.add('0000:00:01.0', 3);
    const { proc, va } = spawnWithScratch(host.system);
    const iommufd = proc.open('/dev/iommu');
    proc.mem.write(va, iommu_ioas_alloc.encodeNew({ size: iommu_ioas_alloc.size }));
    expect(proc.ioctl(iommufd, IOMMU_IOAS_ALLOC, va)).toBe(0);
    const ioasId = proc.mem.readU32(va + 8n);

    const fd = proc.open('/dev/vfio/devices/vfio0');
    proc.mem.write(va, vfio_device_bind_iommufd.encodeNew({ argsz: 24, iommufd }));
    expect(proc.ioctl(fd, VFIO_DEVICE_BIND_IOMMUFD, va)).toBe(0);
    expect(proc.mem.readU32(va + 12n)).toBeGreaterThan(0);
    expect(host.iommu.dmaOwnerClaimed(3)).toBe(true);

    proc.mem.write(va, vfio_device_attach_iommufd_pt.encodeNew({ argsz: 16, pt_id: ioasId }));
    expect(proc.ioctl(fd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, va)).toBe(0);
    expect(proc.mem.readU32(va + 8n)).not.toBe(ioasId);
    proc.mem.write(va, vfio_device_attach_iommufd_pt.encodeNew({ argsz: 16, pt_id: 0xdead }));
    expect(proc.ioctl(fd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, va)).toBe(-Errno.ENOENT);
    proc.mem.write(va, vfio_device_detach_iommufd_pt.encodeNew({ argsz: 8 }));
    expect(proc.ioctl(fd, VFIO_DEVICE_DETACH_IOMMUFD_PT, va)).toBe(0);

    expect(proc.close(fd)).toBe(0);
    expect(host.iommu.dmaOwnerClaimed(3)).toBe(false);
    expect(host.driver.devices.get(fn.name)!.events).toEqual(['open', 'close']);
  });

  it('refuses the bind with EPERM when a host driver holds the group', () => {
    const host = realHost();
    host.drivers.registerPciDriver(hostDriver('e1000e', [{ vendor: 0x8086, device: 0x10d3 }]));
    host.add('0000:00:01.0', 3);
    host.add('0000:00:01.1', 3, { deviceId: 0x10d3 });
    const { proc, va } = spawnWithScratch(host.system);
    const iommufd = proc.open('/dev/iommu');
    const fd = proc.open('/dev/vfio/devices/vfio0');
    proc.mem.write(va, vfio_device_bind_iommufd.encodeNew({ argsz: 24, iommufd }));
    expect(proc.ioctl(fd, VFIO_DEVICE_BIND_IOMMUFD, va)).toBe(-Errno.EPERM);
  });

  it('opens a device through a type1 container', () => {
    const host = realHost();
    const fn = host.add('0000:00:01.0', 3);
    const { proc, va } = spawnWithScratch(host.system);
    const groupFd = proc.open('/dev/vfio/3');
    const containerFd = proc.open('/dev/vfio/vfio');
    proc.mem.writeU32(va, containerFd);
    expect(proc.ioctl(groupFd, VFIO_GROUP_SET_CONTAINER, va)).toBe(0);
    expect(proc.ioctl(containerFd, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU)).toBe(0);
    writeString(proc, va, fn.name);
    const deviceFd = proc.ioctl(groupFd, VFIO_GROUP_GET_DEVICE_FD, va);
    expect(deviceFd).toBeGreaterThanOrEqual(0);
    expect(host.driver.devices.get(fn.name)!.events).toEqual(['open']);
  });

  it('opens a device through the iommufd VFIO compatibility path', () => {
    const host = realHost();
    const fn = host.add('0000:00:01.0', 3);
    const { proc, va } = spawnWithScratch(host.system);
    const groupFd = proc.open('/dev/vfio/3');
    const iommufd = proc.open('/dev/iommu');
    proc.mem.writeU32(va, iommufd);
    expect(proc.ioctl(groupFd, VFIO_GROUP_SET_CONTAINER, va)).toBe(0);
    writeString(proc, va, fn.name);
    const deviceFd = proc.ioctl(groupFd, VFIO_GROUP_GET_DEVICE_FD, va);
    expect(deviceFd).toBeGreaterThanOrEqual(0);
    expect(host.driver.devices.get(fn.name)!.iommufdAttached).toBe(true);
    expect(proc.close(deviceFd)).toBe(0);
    expect(host.driver.devices.get(fn.name)!.iommufdAttached).toBe(false);
  });
});
