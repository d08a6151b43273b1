import 'reflect-metadata';
import { container } from 'tsyringe';
import { describe, expect, it } from 'vitest';
import {
  DRIVER_CORE,
  DriverCore,
  HOST_OPTIONS,
  IOMMU_CORE,
  IOMMUFD_KAPI,
  IommuCore,
  SYSTEM,
  System,
  VFIO_CORE,
  VFIO_GROUP_GET_DEVICE_FD,
  VFIO_GROUP_SET_CONTAINER,
  VfioCore,
  vfioFileHasDev,
  vfioFileIsGroup,
  vfioFileIsValid,
} from '@vfiosim/core';
import { FakeIommufd, fixtureDriver, makeHost, spawnWithScratch, writeString } from './harness.js';

describe('the vfio services', () => {
  it('are built by the DI container from their tokens', () => {
    const child = container.createChildContainer();
    const system = new System();
    const iommu = new IommuCore();
    child.registerInstance(SYSTEM, system);
    child.registerInstance(IOMMU_CORE, iommu);
    child.registerInstance(IOMMUFD_KAPI, new FakeIommufd(iommu));
    child.registerInstance(HOST_OPTIONS, { plugins: [], seed: 1, noiommu: true, detectStaleTranslations: false });
    child.registerSingleton(DRIVER_CORE, DriverCore);
    child.registerSingleton(VFIO_CORE, VfioCore);
    const vfio = child.resolve(VFIO_CORE);
    expect(vfio).toBeInstanceOf(VfioCore);
    expect(vfio.drivers).toBe(child.resolve(DRIVER_CORE));
    expect(vfio.noiommu).toBe(true);
    expect(system.devfs.has('/dev/vfio/vfio')).toBe(true);
  });
});

describe('vfio files handed to other subsystems', () => {
  it('recognises group and device files, and which group holds a device', () => {
    const host = makeHost();
    const driver = fixtureDriver(host.vfio);
    host.drivers.registerPciDriver(driver);
    host.addFunction('0000:00:01.0', 1);
    host.addFunction('0000:00:02.0', 2);
    const { proc, va } = spawnWithScratch(host.system);
    const group1 = proc.open('/dev/vfio/1');
    const group2 = proc.open('/dev/vfio/2');
    const iommufd = proc.open('/dev/iommu');
    proc.mem.writeU32(va, iommufd);
    expect(proc.ioctl(group1, VFIO_GROUP_SET_CONTAINER, va)).toBe(0);
    writeString(proc, va, '0000:00:01.0');
    const deviceFd = proc.ioctl(group1, VFIO_GROUP_GET_DEVICE_FD, va);
    const cdevFd = proc.open('/dev/vfio/devices/vfio1');
    const containerFd = proc.open('/dev/vfio/vfio');
    const vdev = driver.devices.get('0000:00:01.0')!;

    expect([group1, deviceFd, cdevFd].map((fd) => vfioFileIsValid(proc.fdget(fd)))).toEqual([true, true, true]);
    expect([containerFd, iommufd].map((fd) => vfioFileIsValid(proc.fdget(fd)))).toEqual([false, false]);
    expect([group1, deviceFd, containerFd].map((fd) => vfioFileIsGroup(proc.fdget(fd)))).toEqual([true, false, false]);
    expect(vfioFileHasDev(proc.fdget(group1), vdev)).toBe(true);
    expect(vfioFileHasDev(proc.fdget(group2), vdev)).toBe(false);
    expect(vfioFileHasDev(proc.fdget(deviceFd), vdev)).toBe(false);
  });
});
