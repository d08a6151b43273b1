import { describe, expect, it } from 'vitest';
import {
  IOMMU_HWPT_DATA_SELFTEST, copyStructFromUser, iommuCopyStructFromFullUserArray, iommuCopyStructFromUser,
  iommuCopyStructToUser, iommu_hwpt_selftest, iommu_viommu_invalidate_selftest, iommu_viommu_selftest,
} from '@vfiosim/core';
import { WindowUserMemory, simError } from './helpers.js';

const UPTR = 0x1000n;

describe('iommu user-data helpers', () => {
  it('zero-extends a short user struct and accepts a long one only if its tail is zero (E2BIG)', () => {
    const mem = new WindowUserMemory(UPTR, 64);
    mem.copyToUser(UPTR, Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8));
    expect([...copyStructFromUser(mem, UPTR, 8, 3)]).toEqual([1, 2, 3, 0, 0, 0, 0, 0]);
    expect(simError(() => copyStructFromUser(mem, UPTR, 4, 8)).errnoName).toBe('E2BIG');
    expect([...copyStructFromUser(mem, UPTR + 8n, 4, 12)]).toEqual([0, 0, 0, 0]);
    expect(simError(() => copyStructFromUser(mem, UPTR + 60n, 4, 8)).errnoName).toBe('EFAULT');
  });

  it('checks data type and length before copying driver data', () => {
    const mem = new WindowUserMemory(UPTR, 64);
    mem.copyToUser(UPTR, iommu_hwpt_selftest.encodeNew({ iotlb: 0x55 }));
    const data = { type: IOMMU_HWPT_DATA_SELFTEST, mem, uptr: UPTR, len: 4 };
    expect(iommuCopyStructFromUser(iommu_hwpt_selftest, data, IOMMU_HWPT_DATA_SELFTEST, 'iotlb')).toEqual({ iotlb: 0x55 });
    expect(simError(() => iommuCopyStructFromUser(iommu_hwpt_selftest, data, 1, 'iotlb')).errnoName).toBe('EINVAL');
    expect(simError(() => iommuCopyStructFromUser(iommu_hwpt_selftest, { ...data, len: 8 }, IOMMU_HWPT_DATA_SELFTEST, 'iotlb')).errnoName).toBe('EINVAL');
  });

  it('copies a whole array entry by entry, each through copy_struct_from_user', () => {
    const mem = new WindowUserMemory(UPTR, 64);
    mem.copyToUser(UPTR, Uint8Array.of(1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4));
    const array = { type: 7, mem, uptr: UPTR, entryLen: 4, entryNum: 2, handled: 0 };
    expect(iommuCopyStructFromFullUserArray(iommu_viommu_invalidate_selftest, array, 7)).toEqual([
      { flags: 1, vdev_id: 0, cache_id: 0 }, { flags: 2, vdev_id: 0, cache_id: 0 },
    ]);
    expect(simError(() => iommuCopyStructFromFullUserArray(iommu_viommu_invalidate_selftest, { ...array, entryLen: 13, entryNum: 1 }, 7)).errnoName).toBe('E2BIG');
    expect(simError(() => iommuCopyStructFromFullUserArray(iommu_viommu_invalidate_selftest, { ...array, entryNum: 0 }, 7)).errnoName).toBe('EINVAL');
    expect(simError(() => iommuCopyStructFromFullUserArray(iommu_viommu_invalidate_selftest, array, 8)).errnoName).toBe('EINVAL');
  });

  it('writes back no more than the user struct holds', () => {
    const mem = new WindowUserMemory(UPTR, 64);
    mem.bytes.fill(0xff);
    const value = { in_data: 1, out_data: 2, out_mmap_offset: 3n, out_mmap_length: 4n };
    iommuCopyStructToUser({ type: 9, mem, uptr: UPTR, len: 8 }, iommu_viommu_selftest, value, 9, 'out_data');
    expect([...mem.bytes.subarray(0, 12)]).toEqual([1, 0, 0, 0, 2, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]);
    expect(simError(() => iommuCopyStructToUser({ type: 9, mem, uptr: UPTR, len: 4 }, iommu_viommu_selftest, value, 9, 'out_data')).errnoName).toBe('EINVAL');
    expect(simError(() => iommuCopyStructToUser({ type: 8, mem, uptr: UPTR, len: 8 }, iommu_viommu_selftest, value, 9, 'out_data')).errnoName).toBe('EINVAL');
  });

  it('lays the mock structs out as iommufd_test.h does', () => {
    expect(iommu_hwpt_selftest.size).toBe(4);
    expect(iommu_viommu_invalidate_selftest.size).toBe(12);
    expect(iommu_viommu_selftest.size).toBe(24);
    expect(iommu_viommu_selftest.offsetOf('out_mmap_offset')).toBe(8);
  });
});
