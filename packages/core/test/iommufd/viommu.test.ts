import { describe, expect, it } from 'vitest';
import {
  IOMMU_DESTROY, IOMMU_HWPT_ALLOC, IOMMU_HWPT_ALLOC_NEST_PARENT, IOMMU_HWPT_DATA_SELFTEST, IOMMU_HWPT_INVALIDATE,
  IOMMU_HW_QUEUE_ALLOC, IOMMU_HW_QUEUE_TYPE_SELFTEST, IOMMU_TEST_DEV_CACHE_DEFAULT, IOMMU_TEST_IOTLB_DEFAULT,
  IOMMU_VDEVICE_ALLOC, IOMMU_VIOMMU_ALLOC, IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST,
  IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST_INVALID, IOMMU_VIOMMU_TYPE_DEFAULT, IOMMU_VIOMMU_TYPE_SELFTEST,
  iommu_destroy, iommu_hw_queue_alloc, iommu_hwpt_alloc, iommu_hwpt_invalidate,
  iommu_hwpt_selftest, iommu_vdevice_alloc, iommu_viommu_alloc, iommu_viommu_invalidate_selftest,
} from '@vfiosim/core';
import { err, IommufdFixture, PAGE_SIZE } from './fixture.js';

/** The iommufd_viommu fixture: a device on an IOAS, a nesting parent and a vIOMMU over it. */
function setup(f: IommufdFixture) {
  const ioas = f.ioasAlloc();
  const device = f.bindDevice();
  f.iommufd.deviceAttach(device.idev, null, ioas);
  const parent = f.ioctl(IOMMU_HWPT_ALLOC, iommu_hwpt_alloc, { dev_id: device.idev.devId, pt_id: ioas, flags: IOMMU_HWPT_ALLOC_NEST_PARENT }).out.out_hwpt_id;
  const viommu = f.ioctl(IOMMU_VIOMMU_ALLOC, iommu_viommu_alloc, { dev_id: device.idev.devId, hwpt_id: parent, type: IOMMU_VIOMMU_TYPE_SELFTEST });
  expect(viommu.rc).toBe(0);
  return { ioas, parent, viommuId: viommu.out.out_viommu_id, ...device };
}

function vdevice(f: IommufdFixture, viommuId: number, devId: number, virtId: bigint) {
  return f.ioctl(IOMMU_VDEVICE_ALLOC, iommu_vdevice_alloc, { viommu_id: viommuId, dev_id: devId, virt_id: virtId });
}

describe('IOMMU_VIOMMU_ALLOC', () => {
  it('refuses flags and the DEFAULT type (EOPNOTSUPP), a wrong device (ENOENT) and a parent that is not one (EINVAL)', () => {
    const f = new IommufdFixture();
    const ioas = f.ioasAlloc();
    const { idev } = f.bindDevice();
    const auto = f.iommufd.deviceAttach(idev, null, ioas);
    const call = (args: Partial<iommu_viommu_alloc>) =>
      f.ioctl(IOMMU_VIOMMU_ALLOC, iommu_viommu_alloc, { dev_id: idev.devId, hwpt_id: auto, type: IOMMU_VIOMMU_TYPE_SELFTEST, ...args }).rc;
    expect(call({ flags: 1 })).toBe(err('EOPNOTSUPP'));
    expect(call({ type: IOMMU_VIOMMU_TYPE_DEFAULT })).toBe(err('EOPNOTSUPP'));
    expect(call({ dev_id: ioas })).toBe(err('ENOENT'));
    expect(call({ hwpt_id: ioas })).toBe(err('ENOENT'));
    expect(call({})).toBe(err('EINVAL'));
    const parent = f.ioctl(IOMMU_HWPT_ALLOC, iommu_hwpt_alloc, { dev_id: idev.devId, pt_id: ioas, flags: IOMMU_HWPT_ALLOC_NEST_PARENT }).out.out_hwpt_id;
    expect(call({ hwpt_id: parent, type: IOMMU_VIOMMU_TYPE_SELFTEST + 1 })).toBe(err('EOPNOTSUPP'));
    expect(f.ictx.objects.live().map((o) => o.type)).toEqual(['ioas', 'device', 'hwpt_paging', 'hwpt_paging']);
    expect(call({ hwpt_id: parent })).toBe(0);
    expect(f.ioctl(IOMMU_DESTROY, iommu_destroy, { id: parent }).rc).toBe(err('EBUSY'));
  });

  it('allocates nested HWPTs through the vIOMMU and keeps the vIOMMU busy while they exist', () => {
    const f = new IommufdFixture();
    const { viommuId, idev } = setup(f);
    const data = f.scratch + 0x2000n;
    f.proc.mm.copyToUser(data, iommu_hwpt_selftest.encodeNew({ iotlb: IOMMU_TEST_IOTLB_DEFAULT }));
    const nested = (args: Partial<iommu_hwpt_alloc>) =>
      f.ioctl(IOMMU_HWPT_ALLOC, iommu_hwpt_alloc, { dev_id: idev.devId, pt_id: viommuId, data_type: IOMMU_HWPT_DATA_SELFTEST, data_len: 4, data_uptr: data, ...args });
    expect(nested({ flags: 1 << 30 }).rc).toBe(err('EOPNOTSUPP'));
    const other = f.bindDevice(0, { other: true });
    expect(nested({ dev_id: other.idev.devId }).rc).toBe(err('EINVAL'));
    const { rc, out } = nested({});
    expect(rc).toBe(0);
    expect(f.ioctl(IOMMU_DESTROY, iommu_destroy, { id: viommuId }).rc).toBe(err('EBUSY'));
    expect(() => f.iommufd.deviceReplace(idev, null, out.out_hwpt_id)).toThrow(/ENOENT/);
    expect(vdevice(f, viommuId, idev.devId, 0x99n).rc).toBe(0);
    expect(f.iommufd.deviceReplace(idev, null, out.out_hwpt_id)).toBe(out.out_hwpt_id);
  });
});

describe('IOMMU_VDEVICE_ALLOC', () => {
  it('gives a device one virtual id per vIOMMU: a second vDEVICE or a taken id is EEXIST', () => {
    const f = new IommufdFixture();
    const { viommuId, idev } = setup(f);
    const second = f.bindDevice();
    expect(vdevice(f, viommuId, idev.devId, 0x99n).rc).toBe(0);
    expect(vdevice(f, viommuId, idev.devId, 0x98n).rc).toBe(err('EEXIST'));
    const before = f.ictx.objects.live().length;
    expect(vdevice(f, viommuId, second.idev.devId, 0x99n).rc).toBe(err('EEXIST'));
    expect(f.ictx.objects.live().length).toBe(before);
    expect(second.idev.vdev).toBeNull();
    expect(vdevice(f, viommuId, second.idev.devId, 0x9an).rc).toBe(0);
  });

  it('checks the vIOMMU (ENOENT), the device (ENOENT) and that both share an IOMMU (EINVAL)', () => {
    const f = new IommufdFixture();
    const { viommuId, idev, ioas } = setup(f);
    const other = f.bindDevice(0, { other: true });
    expect(vdevice(f, ioas, idev.devId, 1n).rc).toBe(err('ENOENT'));
    expect(vdevice(f, viommuId, ioas, 1n).rc).toBe(err('ENOENT'));
    expect(vdevice(f, viommuId, other.idev.devId, 1n).rc).toBe(err('EINVAL'));
  });

  it('keeps the vIOMMU busy, can be destroyed, and goes away with its device, leaving its id unusable', () => {
    const f = new IommufdFixture();
    const { viommuId, idev } = setup(f);
    const id = vdevice(f, viommuId, idev.devId, 0x99n).out.out_vdevice_id;
    expect(f.ioctl(IOMMU_DESTROY, iommu_destroy, { id: viommuId }).rc).toBe(err('EBUSY'));
    expect(f.ioctl(IOMMU_DESTROY, iommu_destroy, { id }).rc).toBe(0);
    const again = vdevice(f, viommuId, idev.devId, 0x99n).out.out_vdevice_id;
    f.iommufd.deviceDetach(idev, null);
    f.iommufd.deviceUnbind(idev);
    expect(f.ioctl(IOMMU_DESTROY, iommu_destroy, { id: again }).rc).toBe(err('ENOENT'));
    expect(f.ioasAlloc()).not.toBe(again);
    expect(f.ioctl(IOMMU_DESTROY, iommu_destroy, { id: viommuId }).rc).toBe(0);
  });
});

describe('IOMMU_HWPT_INVALIDATE on a vIOMMU', () => {
  it('lets the vIOMMU handle device-cache entries by virtual id and count them, 0 on an empty array', () => {
    const f = new IommufdFixture();
    const { viommuId, idev, dev } = setup(f);
    vdevice(f, viommuId, idev.devId, 0x99n);
    const at = f.scratch + 0x2000n;
    const send = (entries: { flags: number; vdev_id: number; cache_id: number }[], args: Partial<iommu_hwpt_invalidate> = {}) => {
      entries.forEach((e, i) => f.proc.mm.copyToUser(at + BigInt(i * 12), iommu_viommu_invalidate_selftest.encodeNew(e)));
      const { rc, out } = f.ioctl(IOMMU_HWPT_INVALIDATE, iommu_hwpt_invalidate, {
        hwpt_id: viommuId, data_uptr: at, data_type: IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST,
        entry_len: iommu_viommu_invalidate_selftest.size, entry_num: entries.length, ...args,
      });
      return { rc, num: out.entry_num };
    };
    expect(send([])).toEqual({ rc: 0, num: 0 });
    expect(send([{ flags: 0, vdev_id: 0x99, cache_id: 0 }], { data_type: IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST_INVALID })).toEqual({ rc: err('EINVAL'), num: 0 });
    expect(send([{ flags: 0, vdev_id: 0x99, cache_id: 1 }, { flags: 0, vdev_id: 0x9, cache_id: 0 }])).toEqual({ rc: err('EINVAL'), num: 1 });
    expect(f.mock.mockDevice(dev).cache).toEqual([IOMMU_TEST_DEV_CACHE_DEFAULT, 0, IOMMU_TEST_DEV_CACHE_DEFAULT, IOMMU_TEST_DEV_CACHE_DEFAULT]);
  });
});

describe('IOMMU_HW_QUEUE_ALLOC', () => {
  it('checks its arguments and the vIOMMU, then answers EOPNOTSUPP: no driver exposes hardware queues', () => {
    const f = new IommufdFixture();
    const { viommuId } = setup(f);
    const call = (args: Partial<iommu_hw_queue_alloc>) =>
      f.ioctl(IOMMU_HW_QUEUE_ALLOC, iommu_hw_queue_alloc, { viommu_id: viommuId, type: IOMMU_HW_QUEUE_TYPE_SELFTEST, length: PAGE_SIZE, ...args }).rc;
    expect(call({ flags: 1 })).toBe(err('EOPNOTSUPP'));
    expect(call({ type: 0 })).toBe(err('EOPNOTSUPP'));
    expect(call({ length: 0n })).toBe(err('EINVAL'));
    expect(call({ nesting_parent_iova: (1n << 64n) - 1n, length: 2n })).toBe(err('EOVERFLOW'));
    expect(call({ viommu_id: 99 })).toBe(err('ENOENT'));
    expect(call({})).toBe(err('EOPNOTSUPP'));
  });
});
