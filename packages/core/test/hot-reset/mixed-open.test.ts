import { describe, expect, it } from 'vitest';
import {
  O_RDWR,
  VFIO_GROUP_GET_DEVICE_FD,
  VFIO_GROUP_SET_CONTAINER,
  VFIO_PCI_HOT_RESET_FLAG_DEV_ID,
  VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED,
  s32,
} from '@vfiosim/core';
import { FN0, FN1, Vmm, location, makeHost, twoFunctionNic, type TestHost } from './harness.js';

/*
 * One VMM, one iommufd, the two functions of a device opened two ways:
 * function 0 through its cdev, function 1 through its group with the
 * iommufd as the group's container (the iommufd compat path). A device
 * opened that way is still bound to the context (it has an iommufd device
 * id), so the kernel's empty-array proof, which asks each device of the
 * dev_set for its id in the caller's context (vfio_iommufd_get_dev_id),
 * counts it as owned. The group-fd proof cannot cover the cdev-opened
 * function: its group cannot be opened while the cdev is bound.
 */

const EBUSY = -16;
const EINVAL = -22;

function openMixed(t: TestHost) {
  const vmm = new Vmm(t.host);
  const iommufd = vmm.openIommufd();
  const cdev = vmm.openCdev(t, FN0, iommufd);
  const group = vmm.ok(vmm.proc.open(`/dev/vfio/${t.vdev(FN1).group!.name}`, O_RDWR), 'open group of fn 1');
  const container = new Uint8Array(4);
  s32.write(container, 0, iommufd);
  vmm.ok(vmm.proc.ioctl(group, VFIO_GROUP_SET_CONTAINER, vmm.write(0, container)), 'SET_CONTAINER iommufd');
  const name = vmm.write(0, new TextEncoder().encode(`${FN1}\0`));
  const groupDevice = vmm.ok(vmm.proc.ioctl(group, VFIO_GROUP_GET_DEVICE_FD, name), 'GET_DEVICE_FD fn 1');
  return { vmm, cdev, group, groupDevice };
}

describe('a hot reset across a cdev-opened and a group-opened function on one iommufd', () => {
  it('counts the group-opened sibling as owned by the empty array, and resets both functions', () => {
    const t = makeHost(twoFunctionNic);
    const { vmm, cdev } = openMixed(t);
    const before = [FN0, FN1].map((bdf) => t.fn(bdf).resetCount);
    expect(vmm.hotReset(cdev.fd)).toBe(0);
    expect([FN0, FN1].map((bdf) => t.fn(bdf).resetCount)).toEqual(before.map((n) => n + 1));
    expect(t.fn(FN1).lastReset).toBe('bus');
  });

  it('reports the group-opened sibling by the device id its bind got, with DEV_ID_OWNED', () => {
    const t = makeHost(twoFunctionNic);
    const { vmm, cdev } = openMixed(t);
    const siblingDevId = t.vdev(FN1).iommufdDevice!.devId;
    expect(siblingDevId).toBeGreaterThan(0);
    expect(siblingDevId).not.toBe(cdev.devid);
    const info = vmm.hotResetInfo(cdev.fd);
    expect(info.rc).toBe(0);
    expect(info.header.flags).toBe(VFIO_PCI_HOT_RESET_FLAG_DEV_ID | VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED);
    expect(info.devices).toEqual([
      { ...location(0), devid: cdev.devid, group_id: cdev.devid },
      { ...location(1), devid: siblingDevId, group_id: siblingDevId },
    ]);
  });

  it('refuses the group-opened function\'s group-fd proof, since the cdev-opened function\'s group cannot be held', () => {
    const t = makeHost(twoFunctionNic);
    const { vmm, group, groupDevice } = openMixed(t);
    expect(vmm.proc.open(`/dev/vfio/${t.vdev(FN0).group!.name}`, O_RDWR)).toBe(EBUSY);
    const before = [FN0, FN1].map((bdf) => t.fn(bdf).resetCount);
    expect(vmm.hotReset(groupDevice, [group])).toBe(EINVAL);
    expect(vmm.hotReset(groupDevice)).toBe(EINVAL);
    expect([FN0, FN1].map((bdf) => t.fn(bdf).resetCount)).toEqual(before);
  });
});
