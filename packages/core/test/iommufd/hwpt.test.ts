import { describe, expect, it } from 'vitest';
import {
  IOMMU_DESTROY, IOMMU_HWPT_ALLOC, IOMMU_HWPT_ALLOC_DIRTY_TRACKING, IOMMU_HWPT_ALLOC_NEST_PARENT,
  IOMMU_HWPT_ALLOC_PASID, IOMMU_HWPT_DATA_NONE, IOMMU_HWPT_DATA_SELFTEST, IOMMU_HWPT_FAULT_ID_VALID,
  IOMMU_HWPT_GET_DIRTY_BITMAP, IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR, IOMMU_HWPT_INVALIDATE,
  IOMMU_HWPT_INVALIDATE_DATA_SELFTEST, IOMMU_HWPT_INVALIDATE_DATA_SELFTEST_INVALID, IOMMU_HWPT_SET_DIRTY_TRACKING,
  IOMMU_HWPT_DIRTY_TRACKING_ENABLE, IOMMU_TEST_INVALIDATE_FLAG_ALL, IOMMU_TEST_IOTLB_DEFAULT, IOMMU_WRITE,
  MOCK_APERTURE_START, MOCK_FLAGS_DEVICE_NO_DIRTY, MOCK_NESTED_DOMAIN_IOTLB_ID_MAX, createTranslation,
  iommu_destroy, iommu_hwpt_alloc, iommu_hwpt_get_dirty_bitmap, iommu_hwpt_invalidate, iommu_hwpt_invalidate_selftest,
  iommu_hwpt_selftest, iommu_hwpt_set_dirty_tracking, type HwptNested, type HwptPaging, type MockNestedDomain,
} from '@vfiosim/core';
import { err, IommufdFixture, PAGE_SIZE, readOnlyCopy } from './fixture.js';

const DATA = 0x2000n;

function alloc(f: IommufdFixture, args: Partial<iommu_hwpt_alloc>, data?: Uint8Array) {
  if (data) f.proc.mm.copyToUser(f.scratch + DATA, data);
  return f.ioctl(IOMMU_HWPT_ALLOC, iommu_hwpt_alloc, {
    ...(data ? { data_uptr: f.scratch + DATA, data_len: data.length, data_type: IOMMU_HWPT_DATA_SELFTEST } : {}),
    ...args,
  });
}

const selftestData = (): Uint8Array => iommu_hwpt_selftest.encodeNew({ iotlb: IOMMU_TEST_IOTLB_DEFAULT });

/** Device attached to an IOAS with one page mapped: the selftest's iommufd_ioas mock_domain variant. */
function setup(f: IommufdFixture, flags = 0) {
  const ioas = f.ioasAlloc();
  const device = f.bindDevice(flags);
  const autoHwpt = f.iommufd.deviceAttach(device.idev, null, ioas);
  expect(f.map(ioas, f.buffer, PAGE_SIZE, MOCK_APERTURE_START).rc).toBe(0);
  return { ioas, ...device, autoHwpt };
}

function invalidate(f: IommufdFixture, hwptId: number, entries: { flags: number; iotlb_id: number }[], opts: Partial<iommu_hwpt_invalidate> = {}) {
  const at = f.scratch + DATA;
  entries.forEach((e, i) => f.proc.mm.copyToUser(at + BigInt(i * 8), iommu_hwpt_invalidate_selftest.encodeNew(e)));
  const { rc, out } = f.ioctl(IOMMU_HWPT_INVALIDATE, iommu_hwpt_invalidate, {
    hwpt_id: hwptId,
    data_uptr: at,
    data_type: IOMMU_HWPT_INVALIDATE_DATA_SELFTEST,
    entry_len: iommu_hwpt_invalidate_selftest.size,
    entry_num: entries.length,
    ...opts,
  });
  return { rc, num: out.entry_num };
}

describe('IOMMU_HWPT_ALLOC of a paging HWPT', () => {
  it('checks reserved, data, device and pt ids in the kernel order, leaving nothing behind', () => {
    const f = new IommufdFixture();
    const { ioas, idev } = setup(f);
    const before = f.ictx.objects.live().length;
    expect(alloc(f, { dev_id: idev.devId, pt_id: ioas, __reserved: 1 }).rc).toBe(err('EOPNOTSUPP'));
    expect(alloc(f, { dev_id: idev.devId, pt_id: ioas, data_type: IOMMU_HWPT_DATA_NONE, data_len: 4 }).rc).toBe(err('EINVAL'));
    expect(alloc(f, { dev_id: idev.devId, pt_id: ioas, data_type: IOMMU_HWPT_DATA_SELFTEST }).rc).toBe(err('EINVAL'));
    expect(alloc(f, { dev_id: ioas, pt_id: idev.devId }).rc).toBe(err('ENOENT'));
    expect(alloc(f, { dev_id: idev.devId, pt_id: idev.devId }).rc).toBe(err('EINVAL'));
    expect(alloc(f, { dev_id: idev.devId, pt_id: 77 }).rc).toBe(err('EINVAL'));
    expect(alloc(f, { dev_id: idev.devId, pt_id: ioas, flags: 1 << 31 }).rc).toBe(err('EOPNOTSUPP'));
    expect(alloc(f, { dev_id: idev.devId, pt_id: ioas, flags: IOMMU_HWPT_FAULT_ID_VALID | IOMMU_HWPT_ALLOC_NEST_PARENT }).rc).toBe(err('EOPNOTSUPP'));
    expect(alloc(f, { dev_id: idev.devId, pt_id: ioas, flags: IOMMU_HWPT_FAULT_ID_VALID, fault_id: 1 }).rc).toBe(err('ENOENT'));
    expect(f.ictx.objects.live().length).toBe(before);
    expect(f.ictx.objects.get(ioas).users).toBe(2);
  });

  it('refuses dirty tracking for a device whose IOMMU cannot track (EOPNOTSUPP)', () => {
    const f = new IommufdFixture();
    const { ioas, idev } = setup(f, MOCK_FLAGS_DEVICE_NO_DIRTY);
    expect(alloc(f, { dev_id: idev.devId, pt_id: ioas, flags: IOMMU_HWPT_ALLOC_DIRTY_TRACKING }).rc).toBe(err('EOPNOTSUPP'));
  });

  it('allocates a domain filled with the IOAS mappings, not automatic, destroyable when unused', () => {
    const f = new IommufdFixture();
    const { ioas, idev } = setup(f);
    const { rc, out } = alloc(f, { dev_id: idev.devId, pt_id: ioas, flags: IOMMU_HWPT_ALLOC_NEST_PARENT });
    expect(rc).toBe(0);
    const hwpt = f.ictx.objects.get<HwptPaging>(out.out_hwpt_id, 'hwpt_paging');
    expect([hwpt.autoDomain, hwpt.nestParent]).toEqual([false, true]);
    expect(hwpt.hwDomain.iovaToPhys!(MOCK_APERTURE_START)).toBe(f.proc.mm.translate(f.buffer));
    expect(f.ioctl(IOMMU_DESTROY, iommu_destroy, { id: ioas }).rc).toBe(err('EBUSY'));
    expect(f.ioctl(IOMMU_DESTROY, iommu_destroy, { id: out.out_hwpt_id }).rc).toBe(0);
  });

  it('takes driver data for a paging domain and hands the driver its errors (EFAULT for a bad pointer)', () => {
    const f = new IommufdFixture();
    const { ioas, idev } = setup(f);
    expect(alloc(f, { dev_id: idev.devId, pt_id: ioas }, selftestData()).rc).toBe(0);
    expect(alloc(f, { dev_id: idev.devId, pt_id: ioas, data_uptr: 8n }, selftestData()).rc).toBe(err('EFAULT'));
  });

  it('frees the new HWPT when out_hwpt_id cannot be written back (EFAULT)', () => {
    const f = new IommufdFixture();
    const { ioas, idev } = setup(f);
    const before = f.ictx.objects.live().length;
    const arg = iommu_hwpt_alloc.encodeNew({ size: iommu_hwpt_alloc.size, dev_id: idev.devId, pt_id: ioas });
    expect(f.proc.ioctl(f.fd, IOMMU_HWPT_ALLOC, readOnlyCopy(f, arg))).toBe(err('EFAULT'));
    expect(f.ictx.objects.live().length).toBe(before);
    expect(f.ictx.objects.get(ioas).users).toBe(2);
  });
});

describe('nested HWPTs and IOMMU_HWPT_INVALIDATE (alloc_hwpt_nested)', () => {
  function parents(f: IommufdFixture, ioas: number, devId: number) {
    const parent = alloc(f, { dev_id: devId, pt_id: ioas, flags: IOMMU_HWPT_ALLOC_NEST_PARENT }).out.out_hwpt_id;
    const notParent = alloc(f, { dev_id: devId, pt_id: ioas }).out.out_hwpt_id;
    return { parent, notParent };
  }

  it('refuses bad nested requests with the kernel errno, and a nested HWPT as a parent', () => {
    const f = new IommufdFixture();
    const { ioas, idev, autoHwpt } = setup(f);
    const { parent, notParent } = parents(f, ioas, idev.devId);
    const dev = idev.devId;
    const before = f.ictx.objects.live().length;
    expect(alloc(f, { dev_id: dev, pt_id: parent, data_type: IOMMU_HWPT_DATA_NONE }, selftestData()).rc).toBe(err('EINVAL'));
    expect(alloc(f, { dev_id: dev, pt_id: parent, data_type: IOMMU_HWPT_DATA_SELFTEST + 1 }, selftestData()).rc).toBe(err('EOPNOTSUPP'));
    expect(alloc(f, { dev_id: dev, pt_id: parent }, selftestData().subarray(0, 3)).rc).toBe(err('EINVAL'));
    expect(alloc(f, { dev_id: dev, pt_id: parent, data_uptr: 0n }, selftestData()).rc).toBe(err('EFAULT'));
    expect(alloc(f, { dev_id: dev, pt_id: parent, flags: IOMMU_HWPT_ALLOC_NEST_PARENT }, selftestData()).rc).toBe(err('EOPNOTSUPP'));
    expect(alloc(f, { dev_id: dev, pt_id: notParent }, selftestData()).rc).toBe(err('EINVAL'));
    expect(alloc(f, { dev_id: dev, pt_id: autoHwpt }, selftestData()).rc).toBe(err('EINVAL'));
    expect(alloc(f, { dev_id: dev, pt_id: parent, data_type: IOMMU_HWPT_DATA_NONE, data_len: 0 }).rc).toBe(err('EOPNOTSUPP'));
    expect(f.ictx.objects.live().length).toBe(before);
    const nested = alloc(f, { dev_id: dev, pt_id: parent }, selftestData());
    expect(nested.rc).toBe(0);
    expect(alloc(f, { dev_id: dev, pt_id: nested.out.out_hwpt_id }, selftestData()).rc).toBe(err('EINVAL'));
    expect(f.ioctl(IOMMU_DESTROY, iommu_destroy, { id: parent }).rc).toBe(err('EBUSY'));
  });

  it('reports how many entries were handled on success and on failure, 0 when the core refuses', () => {
    const f = new IommufdFixture();
    const { ioas, idev } = setup(f);
    const { parent } = parents(f, ioas, idev.devId);
    const nested = alloc(f, { dev_id: idev.devId, pt_id: parent }, selftestData()).out.out_hwpt_id;
    const iotlb = () => [...(f.ictx.objects.get<HwptNested>(nested, 'hwpt_nested').hwDomain as MockNestedDomain).iotlb];
    const ok = { flags: 0, iotlb_id: 0 };

    expect(invalidate(f, parent, [ok])).toEqual({ rc: err('EINVAL'), num: 0 });
    expect(invalidate(f, ioas, [ok])).toEqual({ rc: err('EINVAL'), num: 0 });
    expect(invalidate(f, 99, [ok])).toEqual({ rc: err('ENOENT'), num: 0 });
    expect(invalidate(f, nested, [])).toEqual({ rc: 0, num: 0 });
    expect(invalidate(f, nested, [], { data_uptr: 0n, entry_len: 0 })).toEqual({ rc: 0, num: 0 });
    expect(invalidate(f, nested, [ok], { data_type: IOMMU_HWPT_INVALIDATE_DATA_SELFTEST_INVALID })).toEqual({ rc: err('EINVAL'), num: 0 });
    expect(invalidate(f, nested, [ok], { entry_len: 1 })).toEqual({ rc: err('EINVAL'), num: 0 });
    expect(invalidate(f, nested, [{ flags: 0xffffffff, iotlb_id: 0 }])).toEqual({ rc: err('EOPNOTSUPP'), num: 0 });
    expect(invalidate(f, nested, [ok], { data_uptr: 0n })).toEqual({ rc: err('EINVAL'), num: 0 });
    expect(invalidate(f, nested, [ok], { entry_len: 0 })).toEqual({ rc: err('EINVAL'), num: 0 });
    expect(invalidate(f, nested, [ok], { __reserved: 1 })).toEqual({ rc: err('EOPNOTSUPP'), num: 0 });
    expect(invalidate(f, nested, [{ flags: 0, iotlb_id: MOCK_NESTED_DOMAIN_IOTLB_ID_MAX + 1 }])).toEqual({ rc: err('EINVAL'), num: 0 });
    expect(iotlb()).toEqual(new Array(4).fill(IOMMU_TEST_IOTLB_DEFAULT));

    expect(invalidate(f, nested, [ok, { flags: 0xffffffff, iotlb_id: 1 }])).toEqual({ rc: err('EOPNOTSUPP'), num: 1 });
    expect(iotlb()).toEqual([0, IOMMU_TEST_IOTLB_DEFAULT, IOMMU_TEST_IOTLB_DEFAULT, IOMMU_TEST_IOTLB_DEFAULT]);
    expect(invalidate(f, nested, [{ flags: 0, iotlb_id: 2 }, { flags: 0, iotlb_id: 3 }])).toEqual({ rc: 0, num: 2 });
    expect(invalidate(f, nested, [{ flags: IOMMU_TEST_INVALIDATE_FLAG_ALL, iotlb_id: 0 }])).toEqual({ rc: 0, num: 1 });
    expect(iotlb()).toEqual([0, 0, 0, 0]);
  });

  it('writes entry_num back even when it must then answer EFAULT', () => {
    const f = new IommufdFixture();
    const { ioas, idev } = setup(f);
    const { parent } = parents(f, ioas, idev.devId);
    const arg = iommu_hwpt_invalidate.encodeNew({ size: iommu_hwpt_invalidate.size, hwpt_id: parent, entry_num: 0 });
    expect(f.proc.ioctl(f.fd, IOMMU_HWPT_INVALIDATE, readOnlyCopy(f, arg))).toBe(err('EFAULT'));
  });

  it('runs the invalidation hooks around the driver with the handled count', () => {
    const f = new IommufdFixture();
    const { ioas, idev } = setup(f);
    const { parent } = parents(f, ioas, idev.devId);
    const nested = alloc(f, { dev_id: idev.devId, pt_id: parent }, selftestData()).out.out_hwpt_id;
    const seen: string[] = [];
    f.core.invalidationHooks.beforeInvalidate.tap('test', (ctx) => seen.push(`before ${ctx.array.entryNum}`));
    f.core.invalidationHooks.afterInvalidate.tap('test', (ctx) => seen.push(`after ${ctx.handled} ${ctx.error?.errnoName ?? 'ok'}`));
    invalidate(f, nested, [{ flags: 0, iotlb_id: 0 }, { flags: 0xffffffff, iotlb_id: 1 }]);
    invalidate(f, parent, [{ flags: 0, iotlb_id: 0 }]);
    expect(seen).toEqual(['before 2', 'after 1 EOPNOTSUPP']);
  });

  it('replaces a device between nested HWPTs and keeps each busy while attached', () => {
    const f = new IommufdFixture();
    const { ioas, idev, groupId } = setup(f);
    const { parent } = parents(f, ioas, idev.devId);
    const n0 = alloc(f, { dev_id: idev.devId, pt_id: parent }, selftestData()).out.out_hwpt_id;
    const n1 = alloc(f, { dev_id: idev.devId, pt_id: parent }, selftestData()).out.out_hwpt_id;
    expect(f.iommufd.deviceReplace(idev, null, n0)).toBe(n0);
    expect(f.ioctl(IOMMU_DESTROY, iommu_destroy, { id: n0 }).rc).toBe(err('EBUSY'));
    expect(f.iommufd.deviceReplace(idev, null, n1)).toBe(n1);
    expect(f.ioctl(IOMMU_DESTROY, iommu_destroy, { id: n0 }).rc).toBe(0);
    expect(f.core.group(groupId)!.domain).toBe(f.ictx.objects.get<HwptNested>(n1, 'hwpt_nested').domain);
    f.iommufd.deviceReplace(idev, null, parent);
    expect(f.ioctl(IOMMU_DESTROY, iommu_destroy, { id: n1 }).rc).toBe(0);
    f.iommufd.deviceReplace(idev, null, ioas);
    expect(f.ioctl(IOMMU_DESTROY, iommu_destroy, { id: parent }).rc).toBe(0);
  });
});

describe('dirty tracking', () => {
  function dirtySetup(f: IommufdFixture) {
    const { ioas, idev } = setup(f);
    const { out } = alloc(f, { dev_id: idev.devId, pt_id: ioas, flags: IOMMU_HWPT_ALLOC_DIRTY_TRACKING });
    f.iommufd.deviceReplace(idev, null, out.out_hwpt_id);
    expect(f.map(ioas, f.buffer, PAGE_SIZE * 4n, MOCK_APERTURE_START + PAGE_SIZE).rc).toBe(0);
    return { ioas, hwpt: out.out_hwpt_id, domain: f.ictx.objects.get<HwptPaging>(out.out_hwpt_id, 'hwpt_paging').hwDomain };
  }

  function bitmap(f: IommufdFixture, hwpt: number, args: Partial<iommu_hwpt_get_dirty_bitmap> = {}) {
    const data = f.scratch + DATA;
    f.proc.mm.copyToUser(data, new Uint8Array(8));
    const { rc } = f.ioctl(IOMMU_HWPT_GET_DIRTY_BITMAP, iommu_hwpt_get_dirty_bitmap, {
      hwpt_id: hwpt, iova: MOCK_APERTURE_START, length: PAGE_SIZE * 8n, page_size: PAGE_SIZE, data, ...args,
    });
    return { rc, bits: f.proc.mm.copyFromUser(data, 1)[0]! };
  }

  function write(domain: import('@vfiosim/core').IommuDomain, iova: bigint): void {
    domain.translate(iova, null, IOMMU_WRITE, createTranslation());
  }

  it('reports pages written while tracking, clears them unless NO_CLEAR, and stops at the first hole', () => {
    const f = new IommufdFixture();
    const { hwpt, domain } = dirtySetup(f);
    expect(f.ioctl(IOMMU_HWPT_SET_DIRTY_TRACKING, iommu_hwpt_set_dirty_tracking, { hwpt_id: hwpt, flags: IOMMU_HWPT_DIRTY_TRACKING_ENABLE }).rc).toBe(0);
    write(domain, MOCK_APERTURE_START);
    write(domain, MOCK_APERTURE_START + 2n * PAGE_SIZE);
    expect(bitmap(f, hwpt, { flags: IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR })).toEqual({ rc: 0, bits: 0b101 });
    expect(bitmap(f, hwpt)).toEqual({ rc: 0, bits: 0b101 });
    expect(bitmap(f, hwpt)).toEqual({ rc: 0, bits: 0 });
    write(domain, MOCK_APERTURE_START + 4n * PAGE_SIZE);
    expect(bitmap(f, hwpt, { iova: MOCK_APERTURE_START - PAGE_SIZE * 16n, length: PAGE_SIZE * 24n })).toEqual({ rc: 0, bits: 0 });
    expect(bitmap(f, hwpt)).toEqual({ rc: 0, bits: 0b10000 });
  });

  it('checks flags, the HWPT type, alignment, page size and wrapping', () => {
    const f = new IommufdFixture();
    const { hwpt } = dirtySetup(f);
    const setTracking = (args: Partial<iommu_hwpt_set_dirty_tracking>) => f.ioctl(IOMMU_HWPT_SET_DIRTY_TRACKING, iommu_hwpt_set_dirty_tracking, args).rc;
    expect(setTracking({ hwpt_id: hwpt, flags: 2 })).toBe(err('EOPNOTSUPP'));
    expect(setTracking({ hwpt_id: 99 })).toBe(err('ENOENT'));
    expect(bitmap(f, hwpt, { flags: 2 }).rc).toBe(err('EOPNOTSUPP'));
    expect(bitmap(f, hwpt, { __reserved: 1 }).rc).toBe(err('EOPNOTSUPP'));
    expect(bitmap(f, hwpt, { iova: MOCK_APERTURE_START + 1n }).rc).toBe(err('EINVAL'));
    expect(bitmap(f, hwpt, { page_size: 0n }).rc).toBe(err('EINVAL'));
    expect(bitmap(f, hwpt, { page_size: PAGE_SIZE * 16n }).rc).toBe(err('EINVAL'));
    expect(bitmap(f, hwpt, { iova: (1n << 64n) - PAGE_SIZE, length: PAGE_SIZE * 2n }).rc).toBe(err('EOVERFLOW'));
    expect(bitmap(f, hwpt, { data: 0n }).rc).toBe(0);
  });

  it('answers EOPNOTSUPP on a HWPT allocated without dirty tracking', () => {
    const f = new IommufdFixture();
    const { autoHwpt } = setup(f);
    expect(f.ioctl(IOMMU_HWPT_SET_DIRTY_TRACKING, iommu_hwpt_set_dirty_tracking, { hwpt_id: autoHwpt, flags: 1 }).rc).toBe(err('EOPNOTSUPP'));
    expect(bitmap(f, autoHwpt).rc).toBe(err('EOPNOTSUPP'));
  });
});

describe('PASID attachment', () => {
  it('attaches PASID-compatible HWPTs to a PASID and refuses the others (EINVAL), twice is EBUSY', () => {
    const f = new IommufdFixture();
    const { ioas, idev } = setup(f, 1 << 2);
    const compat = alloc(f, { dev_id: idev.devId, pt_id: ioas, flags: IOMMU_HWPT_ALLOC_PASID }).out.out_hwpt_id;
    const plain = alloc(f, { dev_id: idev.devId, pt_id: ioas }).out.out_hwpt_id;
    expect(() => f.iommufd.deviceAttach(idev, 100, plain)).toThrow(/EINVAL/);
    expect(() => f.iommufd.deviceAttach(idev, 100, ioas)).toThrow(/EINVAL/);
    f.iommufd.deviceReplace(idev, null, compat);
    expect(f.iommufd.deviceAttach(idev, 100, compat)).toBe(compat);
    expect(() => f.iommufd.deviceAttach(idev, 100, compat)).toThrow(/EBUSY/);
    expect(() => f.iommufd.deviceReplace(idev, null, plain)).toThrow(/EINVAL/);
    expect(() => f.iommufd.deviceReplace(idev, 200, compat)).toThrow(/EINVAL/);
    f.iommufd.deviceDetach(idev, 100);
    expect(f.iommufd.deviceReplace(idev, null, plain)).toBe(plain);
  });
});
