import { describe, expect, it } from 'vitest';
import { EFD_NONBLOCK, VFIO_DEVICE_PCI_HOT_RESET, VFIO_NOIOMMU_IOMMU } from '@vfiosim/core';
import {
  FN0,
  FN1,
  Vmm,
  makeHost,
  noIommuDevice,
  rootBusDevice,
  twoFunctionNic,
  twoFunctionNicInSlot,
  twoFunctionNicSharedGroup,
  type TestHost,
} from './harness.js';

const EBADF = -9;
const EFAULT = -14;
const EBUSY = -16;
const ENODEV = -19;
const EINVAL = -22;

/** Reset counts of both functions, to show what a call did or did not reset. */
function resets(t: TestHost): number[] {
  return [FN0, FN1].map((bdf) => t.fn(bdf).resetCount);
}

describe('VFIO_DEVICE_PCI_HOT_RESET with group fds (devices opened through their groups)', () => {
  it('resets both functions by a bus reset when one VMM passes both groups', () => {
    const t = makeHost(twoFunctionNic);
    const vmm = new Vmm(t.host);
    const { devices, groups } = vmm.openGroups(t, [FN0, FN1]);
    const before = resets(t);
    expect(vmm.hotReset(devices[0]!, groups)).toBe(0);
    expect(resets(t)).toEqual(before.map((n) => n + 1));
    expect(t.fn(FN0).lastReset).toBe('bus');
    expect(t.fn(FN1).lastReset).toBe('bus');
  });

  it('accepts the groups in any order and from the second function too', () => {
    const t = makeHost(twoFunctionNic);
    const vmm = new Vmm(t.host);
    const { devices, groups } = vmm.openGroups(t, [FN0, FN1]);
    expect(vmm.hotReset(devices[1]!, [groups[1]!, groups[0]!])).toBe(0);
    expect(t.fn(FN0).lastReset).toBe('bus');
  });

  it('resets through the hot-plug slot when the function sits in one', () => {
    const t = makeHost(twoFunctionNicInSlot);
    const vmm = new Vmm(t.host);
    const { devices, groups } = vmm.openGroups(t, [FN0, FN1]);
    expect(vmm.hotReset(devices[0]!, groups)).toBe(0);
    expect(t.fn(FN0).lastReset).toBe('slot');
    expect(t.fn(FN1).lastReset).toBe('slot');
  });

  it('counts a sibling that is not opened as owned when its group file is passed', () => {
    const t = makeHost(twoFunctionNic);
    const vmm = new Vmm(t.host);
    const { devices, groups } = vmm.openGroups(t, [FN0]);
    const sibling = vmm.ok(vmm.proc.open(`/dev/vfio/${t.vdev(FN1).group!.name}`), 'open sibling group');
    expect(t.vdev(FN1).openCount).toBe(0);
    expect(vmm.hotReset(devices[0]!, [groups[0]!, sibling])).toBe(0);
    expect(t.fn(FN1).lastReset).toBe('bus');
  });

  it('refuses with EINVAL and resets nothing when the sibling\'s group is not passed', () => {
    const t = makeHost(twoFunctionNic);
    const vmm = new Vmm(t.host);
    const { devices, groups } = vmm.openGroups(t, [FN0]);
    const before = resets(t);
    expect(vmm.hotReset(devices[0]!, groups)).toBe(EINVAL);
    expect(resets(t)).toEqual(before);
  });

  it('refuses both VMMs when each owns one function of the device, and resets nothing', () => {
    const t = makeHost(twoFunctionNic);
    const a = new Vmm(t.host);
    const b = new Vmm(t.host);
    const openA = a.openGroups(t, [FN0]);
    const openB = b.openGroups(t, [FN1]);
    // A group file is open in one process only: A cannot borrow B's group.
    expect(a.proc.open(`/dev/vfio/${t.vdev(FN1).group!.name}`)).toBe(EBUSY);
    const before = resets(t);
    expect(a.hotReset(openA.devices[0]!, openA.groups)).toBe(EINVAL);
    expect(b.hotReset(openB.devices[0]!, openB.groups)).toBe(EINVAL);
    expect(resets(t)).toEqual(before);
  });

  it('accepts a group file another process handed over (SCM_RIGHTS): holding it is the proof', () => {
    const t = makeHost(twoFunctionNic);
    const a = new Vmm(t.host);
    const b = new Vmm(t.host);
    const openA = a.openGroups(t, [FN0]);
    const openB = b.openGroups(t, [FN1]);
    const passed = b.proc.sendFd(a.proc, openB.groups[0]!);
    expect(a.hotReset(openA.devices[0]!, [openA.groups[0]!, passed])).toBe(0);
    expect(t.fn(FN1).lastReset).toBe('bus');
  });

  it('checks flags before anything else: EINVAL for flags != 0 even where ENODEV would follow', () => {
    const t = makeHost(rootBusDevice, { vfio: ['0000:00:02.0'] });
    const vmm = new Vmm(t.host);
    const { devices, groups } = vmm.openGroups(t, ['0000:00:02.0']);
    expect(vmm.hotReset(devices[0]!, groups, { flags: 1 })).toBe(EINVAL);
    expect(vmm.hotReset(devices[0]!, groups)).toBe(ENODEV);
  });

  it('rejects argsz below the header with EINVAL and an unreadable header with EFAULT', () => {
    const t = makeHost(twoFunctionNic);
    const vmm = new Vmm(t.host);
    const { devices, groups } = vmm.openGroups(t, [FN0, FN1]);
    expect(vmm.hotReset(devices[0]!, groups, { argsz: 11 })).toBe(EINVAL);
    expect(vmm.proc.ioctl(devices[0]!, VFIO_DEVICE_PCI_HOT_RESET, 0x10n)).toBe(EFAULT);
  });

  it('rejects the empty array from a group-opened device with EINVAL, before the ENODEV check', () => {
    const t = makeHost(rootBusDevice, { vfio: ['0000:00:02.0'] });
    const vmm = new Vmm(t.host);
    const { devices } = vmm.openGroups(t, ['0000:00:02.0']);
    expect(vmm.hotReset(devices[0]!, [])).toBe(EINVAL);
  });

  it('rejects more fds than affected functions with EINVAL, before reading them', () => {
    const t = makeHost(twoFunctionNic);
    const vmm = new Vmm(t.host);
    const { devices, groups } = vmm.openGroups(t, [FN0, FN1]);
    expect(vmm.hotReset(devices[0]!, [...groups, groups[0]!])).toBe(EINVAL);
    expect(vmm.hotReset(devices[0]!, [-1, -1, -1])).toBe(EINVAL);
    expect(vmm.hotReset(devices[0]!, [-1, -1])).toBe(EBADF);
  });

  it('does not hold argsz against the fd array: the fds are read past it', () => {
    const t = makeHost(twoFunctionNic);
    const vmm = new Vmm(t.host);
    const { devices, groups } = vmm.openGroups(t, [FN0, FN1]);
    expect(vmm.hotReset(devices[0]!, groups, { argsz: 12 })).toBe(0);
  });

  it('answers EFAULT when the fd array runs off the mapping', () => {
    const t = makeHost(twoFunctionNic);
    const vmm = new Vmm(t.host);
    const { devices } = vmm.openGroups(t, [FN0, FN1]);
    const header = new Uint8Array(12);
    new DataView(header.buffer).setUint32(0, 20, true);
    new DataView(header.buffer).setUint32(8, 2, true);
    const argp = vmm.write(16 * 4096 - 12, header);
    expect(vmm.proc.ioctl(devices[0]!, VFIO_DEVICE_PCI_HOT_RESET, argp)).toBe(EFAULT);
  });

  it('answers EBADF for a closed fd and EINVAL for a file that is not a group, whichever comes first', () => {
    const t = makeHost(twoFunctionNic);
    const vmm = new Vmm(t.host);
    const { devices, groups } = vmm.openGroups(t, [FN0, FN1]);
    const efd = vmm.ok(vmm.proc.eventfd(0, EFD_NONBLOCK), 'eventfd');
    expect(vmm.hotReset(devices[0]!, [groups[0]!, 999])).toBe(EBADF);
    expect(vmm.hotReset(devices[0]!, [efd, 999])).toBe(EINVAL);
    expect(vmm.hotReset(devices[0]!, [999, efd])).toBe(EBADF);
  });

  it('does not take device fds as proof: the merged uAPI accepts group fds only', () => {
    const t = makeHost(twoFunctionNic);
    const vmm = new Vmm(t.host);
    const { devices } = vmm.openGroups(t, [FN0, FN1]);
    const before = resets(t);
    expect(vmm.hotReset(devices[0]!, devices)).toBe(EINVAL);
    expect(resets(t)).toEqual(before);
  });

  it('refuses when the sibling is bound to a host driver, even with every group passed', () => {
    const t = makeHost(twoFunctionNic, { vfio: [FN0], host: [FN1] });
    const vmm = new Vmm(t.host);
    const { devices, groups } = vmm.openGroups(t, [FN0]);
    const before = resets(t);
    expect(vmm.hotReset(devices[0]!, groups)).toBe(EINVAL);
    expect(resets(t)).toEqual(before);
  });

  it('resets a noiommu device through its noiommu group fd, but not with the empty array', () => {
    const t = makeHost(noIommuDevice, { vfio: [FN0] }, { noiommu: true });
    const vmm = new Vmm(t.host);
    const { devices, groups } = vmm.openGroups(t, [FN0], VFIO_NOIOMMU_IOMMU);
    const before = t.fn(FN0).resetCount;
    expect(vmm.hotReset(devices[0]!, [])).toBe(EINVAL);
    expect(t.fn(FN0).resetCount).toBe(before);
    expect(vmm.hotReset(devices[0]!, groups)).toBe(0);
    expect(t.fn(FN0).resetCount).toBe(before + 1);
  });
});

describe('VFIO_DEVICE_PCI_HOT_RESET with the empty array (devices opened through their cdevs)', () => {
  it('resets both functions when both are bound to the caller\'s iommufd', () => {
    const t = makeHost(twoFunctionNic);
    const vmm = new Vmm(t.host);
    const iommufd = vmm.openIommufd();
    const a = vmm.openCdev(t, FN0, iommufd);
    vmm.openCdev(t, FN1, iommufd);
    const before = resets(t);
    expect(vmm.hotReset(a.fd)).toBe(0);
    expect(resets(t)).toEqual(before.map((n) => n + 1));
    expect(t.fn(FN1).lastReset).toBe('bus');
  });

  it('rejects a non-empty array from a cdev-opened device with EINVAL', () => {
    const t = makeHost(twoFunctionNic);
    const vmm = new Vmm(t.host);
    const iommufd = vmm.openIommufd();
    const a = vmm.openCdev(t, FN0, iommufd);
    const b = vmm.openCdev(t, FN1, iommufd);
    expect(vmm.hotReset(a.fd, [a.fd, b.fd])).toBe(EINVAL);
    expect(vmm.hotReset(a.fd, [iommufd])).toBe(EINVAL);
  });

  it('refuses both VMMs when each binds one function to its own iommufd, and resets nothing', () => {
    const t = makeHost(twoFunctionNic);
    const a = new Vmm(t.host);
    const b = new Vmm(t.host);
    const devA = a.openCdev(t, FN0, a.openIommufd());
    const devB = b.openCdev(t, FN1, b.openIommufd());
    const before = resets(t);
    expect(a.hotReset(devA.fd)).toBe(EINVAL);
    expect(b.hotReset(devB.fd)).toBe(EINVAL);
    expect(resets(t)).toEqual(before);
  });

  it('refuses one VMM whose functions are bound to two different iommufd contexts', () => {
    const t = makeHost(twoFunctionNic);
    const vmm = new Vmm(t.host);
    const a = vmm.openCdev(t, FN0, vmm.openIommufd());
    vmm.openCdev(t, FN1, vmm.openIommufd());
    expect(vmm.hotReset(a.fd)).toBe(EINVAL);
  });

  it('refuses when the sibling is in its own group and not opened at all', () => {
    const t = makeHost(twoFunctionNic);
    const vmm = new Vmm(t.host);
    const a = vmm.openCdev(t, FN0, vmm.openIommufd());
    const before = resets(t);
    expect(vmm.hotReset(a.fd)).toBe(EINVAL);
    expect(resets(t)).toEqual(before);
  });

  it('resets an unopened sibling whose IOMMU group the caller\'s context owns', () => {
    const t = makeHost(twoFunctionNicSharedGroup);
    const vmm = new Vmm(t.host);
    const a = vmm.openCdev(t, FN0, vmm.openIommufd());
    const before = resets(t);
    expect(vmm.hotReset(a.fd)).toBe(0);
    expect(resets(t)).toEqual(before.map((n) => n + 1));
  });

  it('refuses when the sibling is bound to a host driver', () => {
    const t = makeHost(twoFunctionNic, { vfio: [FN0], host: [FN1] });
    const vmm = new Vmm(t.host);
    const a = vmm.openCdev(t, FN0, vmm.openIommufd());
    expect(vmm.hotReset(a.fd)).toBe(EINVAL);
  });

  it('answers ENODEV for a root-bus function only after the proof shape was checked', () => {
    const t = makeHost(rootBusDevice, { vfio: ['0000:00:02.0'] });
    const vmm = new Vmm(t.host);
    const a = vmm.openCdev(t, '0000:00:02.0', vmm.openIommufd());
    expect(vmm.hotReset(a.fd, [a.fd])).toBe(EINVAL);
    expect(vmm.hotReset(a.fd)).toBe(ENODEV);
  });
});
