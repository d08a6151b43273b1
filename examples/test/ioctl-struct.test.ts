import { describe, expect, it } from 'vitest';
import {
  Errno,
  VFIO_DEVICE_FLAGS_PCI,
  VFIO_DEVICE_FLAGS_RESET,
  createHost,
  iommu_ioas_alloc,
  vfio_device_info,
  vfio_pci_hot_reset_info,
} from '@vfiosim/core';
import { formatFlags } from '../src/vmm/format.js';
import { SCRATCH_SIZE, errnoText, ioctlStruct } from '../src/vmm/ioctl-struct.js';
import { quote } from '../src/vmm/vmm.js';
import { benchHost, bindCdev, endpointBdf } from '../src/bench/rig.js';

describe('ioctlStruct', () => {
  it('fills an iommufd size with sizeof the struct and decodes what the kernel wrote back', () => {
    const proc = createHost().spawn();
    const iommufd = proc.open('/dev/iommu');
    const result = ioctlStruct(proc, iommufd, 'IOMMU_IOAS_ALLOC', iommu_ioas_alloc, { flags: 0 });
    expect(result.rc).toBe(0);
    expect(result.in.size).toBe(12);
    expect(result.in.out_ioas_id).toBe(0);
    expect(result.out.out_ioas_id).toBeGreaterThan(0);
  });

  it('returns the kernel\'s -errno rather than throwing', () => {
    const proc = createHost().spawn();
    const iommufd = proc.open('/dev/iommu');
    expect(ioctlStruct(proc, iommufd, 'IOMMU_IOAS_ALLOC', iommu_ioas_alloc, { flags: 1 }).rc).toBe(-Errno.EOPNOTSUPP);
    expect(ioctlStruct(proc, 99, 'IOMMU_IOAS_ALLOC', iommu_ioas_alloc, {}).rc).toBe(-Errno.EBADF);
  });

  it('counts the room after the struct in a VFIO argsz and hands back the bytes the kernel put there', () => {
    const host = benchHost(1);
    const proc = host.spawn();
    const dev = bindCdev(host, proc, endpointBdf(0));
    const result = ioctlStruct(proc, dev.fd, 'VFIO_DEVICE_GET_PCI_HOT_RESET_INFO', vfio_pci_hot_reset_info, {}, { room: 64 });
    expect(result.in.argsz).toBe(vfio_pci_hot_reset_info.size + 64);
    expect(result.rc).toBe(0);
    expect(result.out.count).toBe(1);
    expect(result.tail).toHaveLength(64);
    // The one dependent device is the endpoint itself: bus 0x10, devfn 0.
    expect([...result.tail.subarray(6, 8)]).toEqual([0x10, 0]);
  });

  it('keeps an argsz the caller gives, so the kernel\'s size checks can be exercised', () => {
    const host = benchHost(1);
    const proc = host.spawn();
    const dev = bindCdev(host, proc, endpointBdf(0));
    expect(ioctlStruct(proc, dev.fd, 'VFIO_DEVICE_GET_INFO', vfio_device_info, { argsz: 8 }).rc).toBe(-Errno.EINVAL);
    const info = ioctlStruct(proc, dev.fd, 'VFIO_DEVICE_GET_INFO', vfio_device_info, {});
    expect(info.out.flags & (VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET)).toBe(VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET);
  });

  it('refuses an argument larger than the scratch area', () => {
    const proc = createHost().spawn();
    expect(() => ioctlStruct(proc, 0, 'IOMMU_IOAS_ALLOC', iommu_ioas_alloc, {}, { room: SCRATCH_SIZE })).toThrow(RangeError);
  });
});

describe('trace formatting', () => {
  it('names errnos', () => {
    expect(errnoText(0)).toBe('0');
    expect(errnoText(3)).toBe('3');
    expect(errnoText(-Errno.EINVAL)).toBe('-EINVAL');
  });

  it('spells flag words with the header names and leaves unknown bits in hex', () => {
    expect(formatFlags(VFIO_DEVICE_FLAGS_RESET | VFIO_DEVICE_FLAGS_PCI | 0x4000, ['VFIO_DEVICE_FLAGS_RESET', 'VFIO_DEVICE_FLAGS_PCI']))
      .toBe('VFIO_DEVICE_FLAGS_RESET|VFIO_DEVICE_FLAGS_PCI|0x4000');
    expect(formatFlags(0, ['VFIO_DEVICE_FLAGS_PCI'])).toBe('0');
  });

  it('quotes bytes as strace does', () => {
    expect(quote(Uint8Array.of(0x41, 0x00, 0x22, 0x7f))).toBe('"A\\x00\\x22\\x7f"');
  });
});
