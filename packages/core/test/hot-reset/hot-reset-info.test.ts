import { describe, expect, it } from 'vitest';
import {
  VFIO_DEVICE_GET_PCI_HOT_RESET_INFO,
  VFIO_NOIOMMU_IOMMU,
  VFIO_PCI_DEVID_NOT_OWNED,
  VFIO_PCI_DEVID_OWNED,
  VFIO_PCI_HOT_RESET_FLAG_DEV_ID,
  VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED,
  vfio_pci_dependent_device,
  vfio_pci_hot_reset_info,
} from '@vfiosim/core';
import {
  FN0,
  FN1,
  Vmm,
  location,
  makeHost,
  noIommuDevice,
  rootBusDevice,
  twoFunctionNic,
  twoFunctionNicInSlot,
  twoFunctionNicSharedGroup,
} from './harness.js';

const EINVAL = -22;
const EFAULT = -14;
const ENODEV = -19;
const ENOSPC = -28;
const EPERM = -1;
const NOT_OWNED = VFIO_PCI_DEVID_NOT_OWNED >>> 0;

describe('VFIO_DEVICE_GET_PCI_HOT_RESET_INFO on a group-opened device', () => {
  it('lists both functions of the bus with their IOMMU group ids and no flags', () => {
    const t = makeHost(twoFunctionNic);
    const vmm = new Vmm(t.host);
    const { devices } = vmm.openGroups(t, [FN0]);
    expect(t.groupId(FN0)).not.toBe(t.groupId(FN1));

    const info = vmm.hotResetInfo(devices[0]!);
    expect(info.rc).toBe(0);
    expect(info.header).toEqual({ argsz: vfio_pci_hot_reset_info.size + 8 * vfio_pci_dependent_device.size, flags: 0, count: 2 });
    expect(info.devices).toEqual([
      { group_id: t.groupId(FN0), devid: t.groupId(FN0), ...location(0) },
      { group_id: t.groupId(FN1), devid: t.groupId(FN1), ...location(1) },
    ]);
  });

  it('reports the functions of a hot-plug slot the same way', () => {
    const t = makeHost(twoFunctionNicInSlot);
    const vmm = new Vmm(t.host);
    const { devices } = vmm.openGroups(t, [FN1]);
    const info = vmm.hotResetInfo(devices[0]!);
    expect(info.rc).toBe(0);
    expect(info.devices.map((d) => d.devfn)).toEqual([0, 1]);
  });

  it('lists a sibling that is bound to a host driver, since the reset reaches it all the same', () => {
    const t = makeHost(twoFunctionNic, { vfio: [FN0], host: [FN1] });
    const vmm = new Vmm(t.host);
    const { devices } = vmm.openGroups(t, [FN0]);
    const info = vmm.hotResetInfo(devices[0]!);
    expect(info.rc).toBe(0);
    expect(info.devices[1]).toEqual({ group_id: t.groupId(FN1), devid: t.groupId(FN1), ...location(1) });
  });

  it('answers ENOSPC with the count needed, flags 0 and argsz untouched when the array does not fit', () => {
    const t = makeHost(twoFunctionNic);
    const vmm = new Vmm(t.host);
    const { devices } = vmm.openGroups(t, [FN0]);
    const argsz = vfio_pci_hot_reset_info.size + vfio_pci_dependent_device.size + 7;
    const info = vmm.hotResetInfo(devices[0]!, 2, argsz);
    expect(info.rc).toBe(ENOSPC);
    expect(info.header).toEqual({ argsz, flags: 0, count: 2 });
    // Nothing past the header was written.
    expect([...vmm.read(1024 + vfio_pci_hot_reset_info.size, 8)]).toEqual(new Array(8).fill(0xee));
  });

  it('answers ENOSPC with count 2 for argsz equal to the bare header', () => {
    const t = makeHost(twoFunctionNic);
    const vmm = new Vmm(t.host);
    const { devices } = vmm.openGroups(t, [FN0]);
    const info = vmm.hotResetInfo(devices[0]!, 0, vfio_pci_hot_reset_info.size);
    expect(info.rc).toBe(ENOSPC);
    expect(info.header.count).toBe(2);
  });

  it('rejects argsz below the header with EINVAL before looking at the topology', () => {
    const t = makeHost(rootBusDevice, { vfio: ['0000:00:02.0'] });
    const vmm = new Vmm(t.host);
    const { devices } = vmm.openGroups(t, ['0000:00:02.0']);
    expect(vmm.hotResetInfo(devices[0]!, 0, 11).rc).toBe(EINVAL);
  });

  it('answers EFAULT for an unreadable argument', () => {
    const t = makeHost(twoFunctionNic);
    const vmm = new Vmm(t.host);
    const { devices } = vmm.openGroups(t, [FN0]);
    expect(vmm.proc.ioctl(devices[0]!, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, 0x10n)).toBe(EFAULT);
  });

  it('answers ENODEV for a function on the root bus, which has neither a slot nor a bus reset', () => {
    const t = makeHost(rootBusDevice, { vfio: ['0000:00:02.0'] });
    const vmm = new Vmm(t.host);
    const { devices } = vmm.openGroups(t, ['0000:00:02.0']);
    expect(vmm.hotResetInfo(devices[0]!).rc).toBe(ENODEV);
  });

  it('answers EPERM for a function no IOMMU isolates (noiommu)', () => {
    const t = makeHost(noIommuDevice, { vfio: [FN0] }, { noiommu: true });
    const vmm = new Vmm(t.host);
    const { devices } = vmm.openGroups(t, [FN0], VFIO_NOIOMMU_IOMMU);
    expect(t.vdev(FN0).group!.name).toMatch(/^noiommu-/);
    expect(vmm.hotResetInfo(devices[0]!).rc).toBe(EPERM);
  });
});

describe('VFIO_DEVICE_GET_PCI_HOT_RESET_INFO on a cdev-opened device', () => {
  it('reports device ids and DEV_ID_OWNED when both functions are bound to the caller\'s iommufd', () => {
    const t = makeHost(twoFunctionNic);
    const vmm = new Vmm(t.host);
    const iommufd = vmm.openIommufd();
    const a = vmm.openCdev(t, FN0, iommufd);
    const b = vmm.openCdev(t, FN1, iommufd);
    const info = vmm.hotResetInfo(a.fd);
    expect(info.rc).toBe(0);
    expect(info.header.flags).toBe(VFIO_PCI_HOT_RESET_FLAG_DEV_ID | VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED);
    expect(info.devices).toEqual([
      { group_id: a.devid, devid: a.devid, ...location(0) },
      { group_id: b.devid, devid: b.devid, ...location(1) },
    ]);
  });

  it('reports a sibling that is not opened at all as NOT_OWNED and clears DEV_ID_OWNED', () => {
    const t = makeHost(twoFunctionNic);
    const vmm = new Vmm(t.host);
    const a = vmm.openCdev(t, FN0, vmm.openIommufd());
    const info = vmm.hotResetInfo(a.fd);
    expect(info.rc).toBe(0);
    expect(info.header.flags).toBe(VFIO_PCI_HOT_RESET_FLAG_DEV_ID);
    expect(info.devices.map((d) => d.devid)).toEqual([a.devid, NOT_OWNED]);
  });

  it('reports a sibling bound to another process\'s iommufd as NOT_OWNED', () => {
    const t = makeHost(twoFunctionNic);
    const vmmA = new Vmm(t.host);
    const vmmB = new Vmm(t.host);
    const a = vmmA.openCdev(t, FN0, vmmA.openIommufd());
    vmmB.openCdev(t, FN1, vmmB.openIommufd());
    const info = vmmA.hotResetInfo(a.fd);
    expect(info.header.flags).toBe(VFIO_PCI_HOT_RESET_FLAG_DEV_ID);
    expect(info.devices.map((d) => d.devid)).toEqual([a.devid, NOT_OWNED]);
  });

  it('reports a sibling bound to a host driver as NOT_OWNED: it is not in the dev_set', () => {
    const t = makeHost(twoFunctionNic, { vfio: [FN0], host: [FN1] });
    const vmm = new Vmm(t.host);
    const a = vmm.openCdev(t, FN0, vmm.openIommufd());
    const info = vmm.hotResetInfo(a.fd);
    expect(info.header.flags).toBe(VFIO_PCI_HOT_RESET_FLAG_DEV_ID);
    expect(info.devices.map((d) => d.devid)).toEqual([a.devid, NOT_OWNED]);
  });

  it('reports an unopened function whose IOMMU group the context owns as OWNED', () => {
    const t = makeHost(twoFunctionNicSharedGroup);
    expect(t.groupId(FN0)).toBe(t.groupId(FN1));
    const vmm = new Vmm(t.host);
    const a = vmm.openCdev(t, FN0, vmm.openIommufd());
    const info = vmm.hotResetInfo(a.fd);
    expect(info.rc).toBe(0);
    expect(info.header.flags).toBe(VFIO_PCI_HOT_RESET_FLAG_DEV_ID | VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED);
    expect(info.devices.map((d) => d.devid)).toEqual([a.devid, VFIO_PCI_DEVID_OWNED]);
  });

  it('still answers ENOSPC with flags 0 for a cdev caller', () => {
    const t = makeHost(twoFunctionNic);
    const vmm = new Vmm(t.host);
    const a = vmm.openCdev(t, FN0, vmm.openIommufd());
    const info = vmm.hotResetInfo(a.fd, 1);
    expect(info.rc).toBe(ENOSPC);
    expect(info.header.flags).toBe(0);
    expect(info.header.count).toBe(2);
  });
});
