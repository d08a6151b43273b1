import { describe, expect, it } from 'vitest';
import {
  IOMMU_DESTROY, IOMMU_GET_HW_INFO, IOMMU_HW_CAP_DIRTY_TRACKING, IOMMU_HW_INFO_FLAG_INPUT_TYPE,
  IOMMU_HW_INFO_SELFTEST_REGVAL, IOMMU_HW_INFO_TYPE_INTEL_VTD, IOMMU_HW_INFO_TYPE_SELFTEST, MOCK_APERTURE_START,
  MOCK_FLAGS_DEVICE_NO_DIRTY, MOCK_FLAGS_DEVICE_PASID, iommu_destroy, iommu_hw_info, iommu_test_hw_info,
  type HwptPaging, type IommufdIoas,
} from '@vfiosim/core';
import { err, IommufdFixture, PAGE_SIZE, readOnlyCopy } from './fixture.js';

function hwInfo(f: IommufdFixture, devId: number, dataLen: number, extra: Partial<iommu_hw_info> = {}) {
  const data = f.scratch + 0x1000n;
  f.proc.mm.copyToUser(data, new Uint8Array(32).fill(0xaa));
  const result = f.ioctl(IOMMU_GET_HW_INFO, iommu_hw_info, { dev_id: devId, data_len: dataLen, data_uptr: data, ...extra });
  return { ...result, data: f.proc.mm.copyFromUser(data, 32) };
}

describe('binding a device (iommufd_device_bind / unbind)', () => {
  it('claims the group for the context: another context gets EPERM until the first unbinds', () => {
    const f = new IommufdFixture();
    const { dev, groupId, idev } = f.bindDevice();
    const otherFile = f.iommufd.open(2);
    const other = f.iommufd.ctxFromFile(otherFile)!;
    expect(() => f.iommufd.deviceBind(other, dev, groupId)).toThrow(/EPERM/);
    expect(other.objects.empty).toBe(true);
    expect(f.core.dmaOwner(groupId)).toBe(f.ictx);
    f.iommufd.deviceUnbind(idev);
    expect(f.core.dmaOwnerClaimed(groupId)).toBe(false);
    expect(f.iommufd.deviceBind(other, dev, groupId).devId).toBe(1);
  });

  it('refuses a device no IOMMU translates for with EINVAL and leaves no object', () => {
    const f = new IommufdFixture();
    const stray = f.mock.createDevice();
    expect(() => f.iommufd.deviceBind(f.ictx, stray, 9)).toThrow(/EINVAL/);
    expect(f.ictx.objects.empty).toBe(true);
  });

  it('keeps the context alive while a device is bound, after the fd is closed', () => {
    const f = new IommufdFixture();
    const { idev } = f.bindDevice();
    const file = f.proc.fdget(f.fd);
    expect(f.proc.close(f.fd)).toBe(0);
    expect(file.released).toBe(false);
    f.iommufd.deviceUnbind(idev);
    expect(file.released).toBe(true);
  });

  it('answers the hot-reset questions: which groups and devices are bound here', () => {
    const f = new IommufdFixture();
    const { dev, groupId, idev } = f.bindDevice();
    expect(f.iommufd.ctxHasGroup(f.ictx, groupId)).toBe(true);
    expect(f.iommufd.ctxHasGroup(f.ictx, groupId + 1)).toBe(false);
    expect(f.iommufd.deviceIdInCtx(f.ictx, dev)).toBe(idev.devId);
    const memfd = f.proc.memfdCreate('not-iommufd');
    expect(f.iommufd.ctxFromFile(f.proc.fdget(memfd))).toBeNull();
  });
});

describe('attaching devices (iommufd_device_attach / replace / detach)', () => {
  it('creates one automatic domain per IOAS and shares it with the next device', () => {
    const f = new IommufdFixture();
    const ioas = f.ioasAlloc();
    const a = f.bindDevice();
    const b = f.bindDevice();
    const hwpt = f.iommufd.deviceAttach(a.idev, null, ioas);
    expect(f.iommufd.deviceAttach(b.idev, null, ioas)).toBe(hwpt);
    const paging = f.ictx.objects.get<HwptPaging>(hwpt, 'hwpt_paging');
    expect(paging.autoDomain).toBe(true);
    expect(f.core.group(a.groupId)!.domain).toBe(paging.domain);
    expect(f.core.group(b.groupId)!.domain).toBe(paging.domain);
    expect(f.ioctl(IOMMU_DESTROY, iommu_destroy, { id: hwpt }).rc).toBe(err('EBUSY'));
    f.iommufd.deviceDetach(a.idev, null);
    expect(f.ictx.objects.find(hwpt)).toBe(paging);
    f.iommufd.deviceDetach(b.idev, null);
    expect(f.ictx.objects.find(hwpt)).toBeUndefined();
    expect(f.core.group(a.groupId)!.domain).toBe(f.mock.blockedDomain);
  });

  it('skips an automatic domain of another IOMMU (EINVAL from attach) and allocates one of its own', () => {
    const f = new IommufdFixture();
    const ioas = f.ioasAlloc();
    const a = f.bindDevice();
    const b = f.bindDevice(0, { other: true });
    const first = f.iommufd.deviceAttach(a.idev, null, ioas);
    const second = f.iommufd.deviceAttach(b.idev, null, ioas);
    expect(second).not.toBe(first);
    expect(f.ictx.objects.get<IommufdIoas>(ioas, 'ioas').hwptList.map((h) => h.id)).toEqual([first, second]);
  });

  it('attaches a device straight to a HWPT id and refuses ids that are not IOAS or HWPT', () => {
    const f = new IommufdFixture();
    const ioas = f.ioasAlloc();
    const a = f.bindDevice();
    const b = f.bindDevice();
    const hwpt = f.iommufd.deviceAttach(a.idev, null, ioas);
    expect(f.iommufd.deviceAttach(b.idev, null, hwpt)).toBe(hwpt);
    const c = f.bindDevice();
    expect(() => f.iommufd.deviceAttach(c.idev, null, c.idev.devId)).toThrow(/EINVAL/);
    expect(() => f.iommufd.deviceAttach(c.idev, null, 99)).toThrow(/ENOENT/);
    expect(c.idev.users).toBe(2);
  });

  it('refuses a second attach of the same device with EBUSY and a second HWPT for the group with EINVAL', () => {
    const f = new IommufdFixture();
    const ioas1 = f.ioasAlloc();
    const ioas2 = f.ioasAlloc();
    const a = f.bindDevice();
    const sibling = f.bindDevice(0, { groupId: a.groupId });
    const hwpt = f.iommufd.deviceAttach(a.idev, null, ioas1);
    expect(() => f.iommufd.deviceAttach(a.idev, null, ioas1)).toThrow(/EBUSY/);
    const other = f.bindDevice();
    const otherHwpt = f.iommufd.deviceAttach(other.idev, null, ioas2);
    expect(() => f.iommufd.deviceAttach(sibling.idev, null, otherHwpt)).toThrow(/EINVAL/);
    expect(f.iommufd.deviceAttach(sibling.idev, null, hwpt)).toBe(hwpt);
    expect(f.ictx.objects.get<HwptPaging>(hwpt, 'hwpt_paging').users).toBe(3);
  });

  it('replaces the domain of an attached device and frees the old automatic domain; unattached replace is EINVAL', () => {
    const f = new IommufdFixture();
    const ioas1 = f.ioasAlloc();
    const ioas2 = f.ioasAlloc();
    const { idev, groupId } = f.bindDevice();
    expect(() => f.iommufd.deviceReplace(idev, null, ioas1)).toThrow(/EINVAL/);
    const old = f.iommufd.deviceAttach(idev, null, ioas1);
    expect(f.ictx.objects.get<IommufdIoas>(ioas1, 'ioas').iopt.reserved).not.toEqual([]);
    const next = f.iommufd.deviceReplace(idev, null, ioas2);
    expect(next).not.toBe(old);
    expect(f.ictx.objects.find(old)).toBeUndefined();
    expect(f.core.group(groupId)!.domain).toBe(f.ictx.objects.get<HwptPaging>(next, 'hwpt_paging').domain);
    expect(f.iommufd.deviceReplace(idev, null, next)).toBe(next);
  });

  it('refuses to attach when a mapping lies outside the domain aperture (EADDRINUSE), leaving it unattached', () => {
    const f = new IommufdFixture();
    const ioas = f.ioasAlloc();
    expect(f.map(ioas, f.buffer, PAGE_SIZE, 0x1000n).rc).toBe(0);
    const { idev, groupId } = f.bindDevice();
    expect(() => f.iommufd.deviceAttach(idev, null, ioas)).toThrow(/EADDRINUSE/);
    expect(f.core.group(groupId)!.domain).toBe(f.mock.blockedDomain);
    expect(f.ictx.objects.live().map((o) => o.type)).toEqual(['ioas', 'device']);
  });
});

describe('IOMMU_GET_HW_INFO', () => {
  it('copies the driver info cut or zero-extended to data_len and reports the full length', () => {
    const f = new IommufdFixture();
    const { idev } = f.bindDevice();
    const exact = hwInfo(f, idev.devId, iommu_test_hw_info.size);
    expect(exact.rc).toBe(0);
    expect(exact.out.data_len).toBe(8);
    expect(exact.out.out_data_type).toBe(IOMMU_HW_INFO_TYPE_SELFTEST);
    expect(iommu_test_hw_info.decode(exact.data).test_reg).toBe(IOMMU_HW_INFO_SELFTEST_REGVAL);
    const larger = hwInfo(f, idev.devId, 16);
    expect(larger.out.data_len).toBe(8);
    expect([...larger.data.subarray(8, 16)]).toEqual(new Array(8).fill(0));
    expect(larger.data[16]).toBe(0xaa);
    const smaller = hwInfo(f, idev.devId, 4);
    expect(smaller.out.data_len).toBe(8);
    expect([...smaller.data.subarray(0, 4)]).toEqual([0, 0, 0, 0]);
    expect(smaller.data[4]).toBe(0xaa);
    const none = f.ioctl(IOMMU_GET_HW_INFO, iommu_hw_info, { dev_id: idev.devId, data_len: 0, data_uptr: 0n });
    expect([none.rc, none.out.data_len]).toEqual([0, 8]);
  });

  it('reports dirty-tracking capability and the PASID width of the device', () => {
    const f = new IommufdFixture();
    const plain = f.bindDevice();
    const pasid = f.bindDevice(MOCK_FLAGS_DEVICE_PASID | MOCK_FLAGS_DEVICE_NO_DIRTY);
    const a = hwInfo(f, plain.idev.devId, 8).out;
    expect([a.out_capabilities, a.out_max_pasid_log2]).toEqual([BigInt(IOMMU_HW_CAP_DIRTY_TRACKING), 0]);
    const b = hwInfo(f, pasid.idev.devId, 8).out;
    expect([b.out_capabilities, b.out_max_pasid_log2]).toEqual([0n, 20]);
  });

  it('takes a requested type with IOMMU_HW_INFO_FLAG_INPUT_TYPE and refuses one the driver lacks (EOPNOTSUPP)', () => {
    const f = new IommufdFixture();
    const { idev } = f.bindDevice();
    expect(hwInfo(f, idev.devId, 8, { flags: IOMMU_HW_INFO_FLAG_INPUT_TYPE, in_data_type: IOMMU_HW_INFO_TYPE_SELFTEST }).rc).toBe(0);
    expect(hwInfo(f, idev.devId, 8, { flags: IOMMU_HW_INFO_FLAG_INPUT_TYPE, in_data_type: IOMMU_HW_INFO_TYPE_INTEL_VTD }).rc).toBe(err('EOPNOTSUPP'));
    expect(hwInfo(f, idev.devId, 8, { in_data_type: IOMMU_HW_INFO_TYPE_INTEL_VTD }).rc).toBe(0);
  });

  it('answers ENODEV when a driver with a hw_info op reports no type of its own', () => {
    const f = new IommufdFixture();
    const { idev } = f.bindDevice();
    Object.assign(f.mock, { hwInfo: () => ({ type: 0, data: new Uint8Array(0) }) });
    const result = hwInfo(f, idev.devId, 8);
    expect(result.rc).toBe(err('ENODEV'));
    expect(result.data[0]).toBe(0xaa);
  });

  it('rejects unknown flags and __reserved bytes (EOPNOTSUPP), unknown devices (ENOENT) and bad buffers (EFAULT)', () => {
    const f = new IommufdFixture();
    const { idev } = f.bindDevice();
    expect(hwInfo(f, idev.devId, 8, { flags: 2 }).rc).toBe(err('EOPNOTSUPP'));
    expect(hwInfo(f, idev.devId, 8, { __reserved: [0, 1, 0] }).rc).toBe(err('EOPNOTSUPP'));
    expect(hwInfo(f, idev.devId + 1, 8).rc).toBe(err('ENOENT'));
    expect(f.ioctl(IOMMU_GET_HW_INFO, iommu_hw_info, { dev_id: idev.devId, data_len: 8, data_uptr: 0n }).rc).toBe(err('EFAULT'));
    const arg = iommu_hw_info.encodeNew({ size: iommu_hw_info.size, dev_id: idev.devId });
    expect(f.proc.ioctl(f.fd, IOMMU_GET_HW_INFO, readOnlyCopy(f, arg))).toBe(err('EFAULT'));
  });
});

describe('pinning across domains', () => {
  it('pins each page once however many domains map it, and unpins when the last domain leaves', () => {
    const f = new IommufdFixture();
    const ioas = f.ioasAlloc();
    expect(f.map(ioas, f.buffer, PAGE_SIZE * 4n, MOCK_APERTURE_START).rc).toBe(0);
    const a = f.bindDevice();
    const b = f.bindDevice(0, { other: true });
    f.iommufd.deviceAttach(a.idev, null, ioas);
    f.iommufd.deviceAttach(b.idev, null, ioas);
    expect(f.system.physMem.pinnedFrames).toBe(4);
    const pa = f.proc.mm.translate(f.buffer)!;
    for (const { groupId } of [a, b]) expect(f.core.group(groupId)!.domain.iovaToPhys!(MOCK_APERTURE_START)).toBe(pa);
    f.iommufd.deviceDetach(a.idev, null);
    expect(f.system.physMem.pinnedFrames).toBe(4);
    f.iommufd.deviceDetach(b.idev, null);
    expect(f.system.physMem.pinnedFrames).toBe(0);
  });

  it('keeps pinned frames alive after the process unmaps its memory', () => {
    const f = new IommufdFixture();
    const ioas = f.ioasAlloc();
    const { idev, groupId } = f.bindDevice();
    f.iommufd.deviceAttach(idev, null, ioas);
    expect(f.map(ioas, f.buffer, PAGE_SIZE, MOCK_APERTURE_START).rc).toBe(0);
    f.proc.mem.write(f.buffer, new Uint8Array([0x5a]));
    const pa = f.core.group(groupId)!.domain.iovaToPhys!(MOCK_APERTURE_START)!;
    expect(f.proc.munmap(f.buffer, PAGE_SIZE)).toBe(0);
    expect(f.system.physMem.read(pa, 1)[0]).toBe(0x5a);
    expect(f.system.physMem.pinnedFrames).toBe(1);
  });
});
