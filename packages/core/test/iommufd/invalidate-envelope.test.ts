import { describe, expect, it } from 'vitest';
import {
  IOMMU_HWPT_ALLOC,
  IOMMU_HWPT_ALLOC_NEST_PARENT,
  IOMMU_HWPT_DATA_SELFTEST,
  IOMMU_HWPT_INVALIDATE,
  IOMMU_HWPT_INVALIDATE_DATA_SELFTEST,
  IOMMU_TEST_IOTLB_DEFAULT,
  IOMMU_VDEVICE_ALLOC,
  IOMMU_VIOMMU_ALLOC,
  IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST,
  IOMMU_VIOMMU_TYPE_SELFTEST,
  IOMMU_TEST_DEV_CACHE_DEFAULT,
  iommu_hwpt_alloc,
  iommu_hwpt_invalidate,
  iommu_hwpt_invalidate_selftest,
  iommu_hwpt_selftest,
  iommu_vdevice_alloc,
  iommu_viommu_alloc,
  iommu_viommu_invalidate_selftest,
  type HwptNested,
  type MockNestedDomain,
  type StructCodec,
} from '@vfiosim/core';
import { err, IommufdFixture, PAGE_SIZE } from './fixture.js';

/*
 * IOMMU_HWPT_INVALIDATE's entry array as the driver reads it. The core
 * only checks the envelope; how entries are read is the driver's choice,
 * and the mock shows both of the kernel's helpers: its nested HWPT reads
 * entry by entry (iommu_copy_struct_from_user_array: an entry_len below
 * the first version of the struct or above the driver's is EINVAL, an
 * unreadable entry EFAULT after the ones before it were handled), its
 * vIOMMU copies the whole array first (iommu_copy_struct_from_full_user_
 * array: copy_struct_from_user's size rules, and any unreadable entry
 * fails the lot). entry_num always reports what was handled.
 */

/** A device on a nesting parent, with a nested HWPT and a vIOMMU (vDEVICE 0x99) over it. */
function setup() {
  const f = new IommufdFixture();
  const ioas = f.ioasAlloc();
  const { idev, dev } = f.bindDevice();
  f.iommufd.deviceAttach(idev, null, ioas);
  const parent = f.ioctl(IOMMU_HWPT_ALLOC, iommu_hwpt_alloc, { dev_id: idev.devId, pt_id: ioas, flags: IOMMU_HWPT_ALLOC_NEST_PARENT }).out.out_hwpt_id;
  const data = f.scratch + 0x2000n;
  f.proc.mm.copyToUser(data, iommu_hwpt_selftest.encodeNew({ iotlb: IOMMU_TEST_IOTLB_DEFAULT }));
  const nested = f.ioctl(IOMMU_HWPT_ALLOC, iommu_hwpt_alloc, {
    dev_id: idev.devId, pt_id: parent, data_type: IOMMU_HWPT_DATA_SELFTEST, data_len: iommu_hwpt_selftest.size, data_uptr: data,
  }).out.out_hwpt_id;
  const viommu = f.ioctl(IOMMU_VIOMMU_ALLOC, iommu_viommu_alloc, { dev_id: idev.devId, hwpt_id: parent, type: IOMMU_VIOMMU_TYPE_SELFTEST }).out.out_viommu_id;
  expect(f.ioctl(IOMMU_VDEVICE_ALLOC, iommu_vdevice_alloc, { viommu_id: viommu, dev_id: idev.devId, virt_id: 0x99n }).rc).toBe(0);
  const iotlb = () => [...(f.ictx.objects.get<HwptNested>(nested, 'hwpt_nested').hwDomain as MockNestedDomain).iotlb];
  const devCache = () => [...f.mock.mockDevice(dev).cache];
  return { f, nested, viommu, iotlb, devCache };
}

/**
 * Places `entries` (each `entryLen` bytes, zero-extended) so that the array
 * ends where a mapped page ends and an unmapped one begins: `readable`
 * entries fit, the rest cannot be read.
 */
function arrayAtPageEnd<T>(f: IommufdFixture, codec: StructCodec<T>, entries: T[], entryLen: number, readable = entries.length): bigint {
  const page = f.proc.mmap(PAGE_SIZE * 2n);
  expect(f.proc.munmap(page + PAGE_SIZE, PAGE_SIZE)).toBe(0);
  const at = page + PAGE_SIZE - BigInt(readable * entryLen);
  entries.slice(0, readable).forEach((e, i) => {
    const bytes = new Uint8Array(entryLen);
    bytes.set(codec.encodeNew(e as never).subarray(0, Math.min(entryLen, codec.size)));
    f.proc.mm.copyToUser(at + BigInt(i * entryLen), bytes);
  });
  return at;
}

function invalidate(f: IommufdFixture, id: number, dataType: number, uptr: bigint, entryLen: number, entryNum: number) {
  const { rc, out } = f.ioctl(IOMMU_HWPT_INVALIDATE, iommu_hwpt_invalidate, {
    hwpt_id: id, data_uptr: uptr, data_type: dataType, entry_len: entryLen, entry_num: entryNum,
  });
  return { rc, num: out.entry_num };
}

describe('IOMMU_HWPT_INVALIDATE entries (nested HWPT)', () => {
  const entry = (iotlbId: number) => ({ flags: 0, iotlb_id: iotlbId });
  const size = iommu_hwpt_invalidate_selftest.size;

  it('refuses an entry_len larger than the driver struct with EINVAL, even with a zero tail, handling nothing', () => {
    const { f, nested, iotlb } = setup();
    const at = arrayAtPageEnd(f, iommu_hwpt_invalidate_selftest, [entry(0)], size + 8);
    expect(invalidate(f, nested, IOMMU_HWPT_INVALIDATE_DATA_SELFTEST, at, size + 8, 1)).toEqual({ rc: err('EINVAL'), num: 0 });
    expect(iotlb()).toEqual(new Array(4).fill(IOMMU_TEST_IOTLB_DEFAULT));
  });

  it('answers EFAULT at the first entry it cannot read and reports the entries before it as handled', () => {
    const { f, nested, iotlb } = setup();
    const at = arrayAtPageEnd(f, iommu_hwpt_invalidate_selftest, [entry(1), entry(2), entry(3)], size, 1);
    expect(invalidate(f, nested, IOMMU_HWPT_INVALIDATE_DATA_SELFTEST, at, size, 3)).toEqual({ rc: err('EFAULT'), num: 1 });
    expect(iotlb()).toEqual([IOMMU_TEST_IOTLB_DEFAULT, 0, IOMMU_TEST_IOTLB_DEFAULT, IOMMU_TEST_IOTLB_DEFAULT]);
    expect(invalidate(f, nested, IOMMU_HWPT_INVALIDATE_DATA_SELFTEST, 0x1000n, size, 1)).toEqual({ rc: err('EFAULT'), num: 0 });
  });
});

describe('IOMMU_HWPT_INVALIDATE entries (vIOMMU)', () => {
  // The mock vIOMMU copies the whole array first (iommu_copy_struct_from_full_user_array),
  // each entry with copy_struct_from_user's size rules, before it handles any.
  const entry = (cacheId: number) => ({ flags: 0, vdev_id: 0x99, cache_id: cacheId });
  const size = iommu_viommu_invalidate_selftest.size;

  it('takes a longer entry_len whose tail is zero, and refuses a non-zero tail with E2BIG, handling nothing', () => {
    const { f, viommu, devCache } = setup();
    const at = arrayAtPageEnd(f, iommu_viommu_invalidate_selftest, [entry(0)], size + 4);
    expect(invalidate(f, viommu, IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST, at, size + 4, 1)).toEqual({ rc: 0, num: 1 });
    expect(devCache()).toEqual([0, IOMMU_TEST_DEV_CACHE_DEFAULT, IOMMU_TEST_DEV_CACHE_DEFAULT, IOMMU_TEST_DEV_CACHE_DEFAULT]);
    const tail = arrayAtPageEnd(f, iommu_viommu_invalidate_selftest, [entry(1)], size + 4);
    f.proc.mm.copyToUser(tail + BigInt(size), Uint8Array.of(1));
    expect(invalidate(f, viommu, IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST, tail, size + 4, 1)).toEqual({ rc: err('E2BIG'), num: 0 });
    expect(devCache()[1]).toBe(IOMMU_TEST_DEV_CACHE_DEFAULT);
  });

  it('takes a shorter entry_len and reads the missing fields as zero', () => {
    const { f, viommu, devCache } = setup();
    const at = arrayAtPageEnd(f, iommu_viommu_invalidate_selftest, [entry(3)], 8);
    expect(invalidate(f, viommu, IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST, at, 8, 1)).toEqual({ rc: 0, num: 1 });
    expect(devCache()).toEqual([0, IOMMU_TEST_DEV_CACHE_DEFAULT, IOMMU_TEST_DEV_CACHE_DEFAULT, IOMMU_TEST_DEV_CACHE_DEFAULT]);
  });

  it('answers EFAULT with nothing handled when any entry cannot be read', () => {
    const { f, viommu, devCache } = setup();
    const at = arrayAtPageEnd(f, iommu_viommu_invalidate_selftest, [entry(2), entry(3)], size, 1);
    expect(invalidate(f, viommu, IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST, at, size, 2)).toEqual({ rc: err('EFAULT'), num: 0 });
    expect(devCache()).toEqual(new Array(4).fill(IOMMU_TEST_DEV_CACHE_DEFAULT));
  });
});
