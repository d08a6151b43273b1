import { describe, expect, it } from 'vitest';
import {
  IommufdHandle,
  SyscallError,
  VFIO_API_VERSION,
  VFIO_NOIOMMU_IOMMU,
  VFIO_TYPE1v2_IOMMU,
  VFIO_UPDATE_VADDR,
  VfioContainerHandle,
  VfioDeviceHandle,
  VfioGroupHandle,
} from '@vfiosim/core';
import { FN0, FN1, makeHost, twoFunctionNic, twoFunctionNicSharedGroup } from '../hot-reset/harness.js';

function thrown(body: () => unknown): unknown {
  try {
    body();
  } catch (error) {
    return error;
  }
  throw new Error('expected the call to throw');
}

describe('VfioGroupHandle and VfioContainerHandle', () => {
  it('run the container flow: status, set container, set IOMMU, device by name', () => {
    const t = makeHost(twoFunctionNic);
    const proc = t.host.spawn();
    const container = VfioContainerHandle.open(proc);
    expect(container.apiVersion()).toBe(VFIO_API_VERSION);
    expect(container.checkExtension(VFIO_TYPE1v2_IOMMU)).toBe(true);
    expect(container.checkExtension(VFIO_NOIOMMU_IOMMU)).toBe(false);

    const group = VfioGroupHandle.open(proc, t.groupId(FN0));
    expect(group.status()).toMatchObject({ viable: true, containerSet: false });
    group.setContainer(container);
    expect(group.status()).toMatchObject({ viable: true, containerSet: true });
    container.setIommu(VFIO_TYPE1v2_IOMMU);
    expect(container.checkExtension(VFIO_UPDATE_VADDR)).toBe(true);

    const device = group.getDevice(FN0);
    expect(device.getInfo().type).toBe('pci');
    expect(device.readConfig(0, 2)).toBe(0x8086);
    expect(t.vdev(FN0).openCount).toBe(1);
  });

  it('report a group with a sibling on a host driver as not viable, and the kernel\'s EPERM at SET_CONTAINER', () => {
    const t = makeHost(twoFunctionNicSharedGroup, { vfio: [FN0], host: [FN1] });
    const proc = t.host.spawn();
    const group = VfioGroupHandle.open(proc, `/dev/vfio/${t.groupId(FN0)}`);
    expect(group.status()).toMatchObject({ viable: false, containerSet: false });
    const container = VfioContainerHandle.open(proc);
    expect(thrown(() => group.setContainer(container))).toMatchObject({ errnoName: 'EPERM', request: 'VFIO_GROUP_SET_CONTAINER' });
    expect(group.status().containerSet).toBe(false);
  });

  it('answer the kernel\'s errnos: no such device name, EBUSY unsetting under an open device, EBADFD for a non-container', () => {
    const t = makeHost(twoFunctionNic);
    const proc = t.host.spawn();
    const container = VfioContainerHandle.open(proc);
    const group = VfioGroupHandle.open(proc, t.groupId(FN0));
    expect(thrown(() => group.setContainer(proc.eventfd(0)))).toMatchObject({ errnoName: 'EBADFD' });
    group.setContainer(container);
    container.setIommu(VFIO_TYPE1v2_IOMMU);
    expect(thrown(() => group.getDevice(FN1))).toMatchObject({ errnoName: 'ENODEV', request: 'VFIO_GROUP_GET_DEVICE_FD' });
    const device = group.getDevice(FN0);
    expect(thrown(() => group.unsetContainer())).toMatchObject({ errnoName: 'EBUSY' });
    device.close();
    group.unsetContainer();
    expect(group.status().containerSet).toBe(false);
  });

  it('take an iommufd as the container (the compatibility path) and attach the device on open', () => {
    const t = makeHost(twoFunctionNic);
    const proc = t.host.spawn();
    const group = VfioGroupHandle.open(proc, t.groupId(FN0));
    group.setContainer(IommufdHandle.open(proc));
    expect(group.status()).toMatchObject({ viable: true, containerSet: true });
    group.getDevice(FN0);
    expect(t.vdev(FN0).iommufdAttached).toBe(true);
  });

  it('refuse a second open of the group with the kernel\'s EBUSY', () => {
    const t = makeHost(twoFunctionNic);
    const proc = t.host.spawn();
    VfioGroupHandle.open(proc, t.groupId(FN0));
    const error = thrown(() => VfioGroupHandle.open(proc, t.groupId(FN0)));
    expect(error).toBeInstanceOf(SyscallError);
    expect(error).toMatchObject({ errnoName: 'EBUSY', syscall: 'open', path: `/dev/vfio/${t.groupId(FN0)}` });
  });
});

describe('IommufdHandle', () => {
  it('allocates IO address spaces with distinct ids and destroys them', () => {
    const t = makeHost(twoFunctionNic);
    const iommufd = IommufdHandle.open(t.host.spawn());
    const a = iommufd.ioasAlloc();
    const b = iommufd.ioasAlloc();
    expect(a).not.toBe(b);
    iommufd.destroy(a);
    expect(thrown(() => iommufd.destroy(a))).toMatchObject({ errnoName: 'ENOENT', request: 'IOMMU_DESTROY' });
    iommufd.destroy(b);
  });

  it('gets EBUSY destroying an IOAS, or the HWPT made for it, while a device is attached', () => {
    const t = makeHost(twoFunctionNic);
    const proc = t.host.spawn();
    const iommufd = IommufdHandle.open(proc);
    const ioas = iommufd.ioasAlloc();
    const device = VfioDeviceHandle.openCdev(proc, t.host.vfio.cdevPath(t.vdev(FN0)));
    device.bindIommufd(iommufd);
    const hwpt = device.attachPt(ioas);
    expect(thrown(() => iommufd.destroy(ioas))).toMatchObject({ errnoName: 'EBUSY' });
    expect(thrown(() => iommufd.destroy(hwpt))).toMatchObject({ errnoName: 'EBUSY' });
    device.detachPt();
    iommufd.destroy(ioas);
  });
});
