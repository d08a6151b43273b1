import { describe, expect, it } from 'vitest';
import {
  _IO, IOMMUFD_CMD_BASE, IOMMUFD_TYPE, IOMMU_DESTROY, IOMMU_GET_HW_INFO, IOMMU_HWPT_ALLOC, IOMMU_HWPT_INVALIDATE,
  IOMMU_IOAS_ALLOC, IOMMU_IOAS_ALLOW_IOVAS, IOMMU_IOAS_COPY, IOMMU_IOAS_IOVA_RANGES, IOMMU_IOAS_MAP, IOMMU_IOAS_MAP_FILE,
  IOMMU_IOAS_UNMAP, IOMMU_OPTION, IOMMU_VDEVICE_ALLOC, IOMMU_VFIO_IOAS, IOMMU_VIOMMU_ALLOC, iommu_destroy, iommu_hw_info,
  iommu_hwpt_alloc, iommu_hwpt_invalidate, iommu_ioas_alloc, iommu_ioas_allow_iovas, iommu_ioas_copy,
  iommu_ioas_iova_ranges, iommu_ioas_map, iommu_ioas_map_file, iommu_ioas_unmap, iommu_option, iommu_vdevice_alloc,
  iommu_vfio_ioas, iommu_viommu_alloc, ioctlMinSizes, type StructCodec,
} from '@vfiosim/core';
import { err, IommufdFixture } from './fixture.js';

/** The cmd_length selftest: size below the minimum, a non-zero tail, and a zero tail that changes nothing. */
function checkLength<T>(f: IommufdFixture, name: string, request: number, codec: StructCodec<T>): void {
  const min = (ioctlMinSizes.iommufd as Record<string, { min_size: number }>)[name]!.min_size;
  const bytes = new Uint8Array(codec.size + 1);
  bytes[codec.size] = 0xff;
  const place = (size: number, tail: number): number => {
    bytes.set([size & 0xff, (size >> 8) & 0xff, 0, 0], 0);
    bytes[codec.size] = tail;
    f.proc.mm.copyToUser(f.scratch, bytes);
    return f.proc.ioctl(f.fd, request, f.scratch);
  };
  expect(place(min - 1, 0xff), `${name} short`).toBe(err('EINVAL'));
  expect(place(codec.size + 1, 0xff), `${name} tail`).toBe(err('E2BIG'));
  bytes.fill(0, 4, codec.size);
  const exact = place(codec.size, 0xff);
  bytes.fill(0, 4, codec.size);
  expect(place(codec.size + 1, 0), `${name} zero tail`).toBe(exact);
}

describe('iommufd command dispatch', () => {
  it('answers an unknown id with ENOENT, a bad pointer with EFAULT and an unknown command with ENOTTY', () => {
    const f = new IommufdFixture();
    expect(f.ioctl(IOMMU_DESTROY, iommu_destroy, { id: 0 }).rc).toBe(err('ENOENT'));
    expect(f.proc.ioctl(f.fd, IOMMU_DESTROY, 0n)).toBe(err('EFAULT'));
    expect(f.proc.ioctl(f.fd, _IO(IOMMUFD_TYPE, IOMMUFD_CMD_BASE - 1), f.scratch)).toBe(err('ENOTTY'));
  });

  it('reads the size word before deciding a number in the command range is unknown', () => {
    const f = new IommufdFixture();
    const wrongType = _IO(IOMMUFD_TYPE + 1, IOMMUFD_CMD_BASE);
    expect(f.proc.ioctl(f.fd, wrongType, 0n)).toBe(err('EFAULT'));
    expect(f.proc.ioctl(f.fd, wrongType, f.scratch)).toBe(err('ENOTTY'));
    const pastLast = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_BASE + 0x15);
    expect(f.proc.ioctl(f.fd, pastLast, 0n)).toBe(err('ENOTTY'));
  });

  it('checks every command size: EINVAL below the minimum, E2BIG for a non-zero tail, a zero tail accepted', () => {
    const f = new IommufdFixture();
    checkLength(f, 'IOMMU_DESTROY', IOMMU_DESTROY, iommu_destroy);
    checkLength(f, 'IOMMU_GET_HW_INFO', IOMMU_GET_HW_INFO, iommu_hw_info);
    checkLength(f, 'IOMMU_HWPT_ALLOC', IOMMU_HWPT_ALLOC, iommu_hwpt_alloc);
    checkLength(f, 'IOMMU_HWPT_INVALIDATE', IOMMU_HWPT_INVALIDATE, iommu_hwpt_invalidate);
    checkLength(f, 'IOMMU_IOAS_ALLOC', IOMMU_IOAS_ALLOC, iommu_ioas_alloc);
    checkLength(f, 'IOMMU_IOAS_IOVA_RANGES', IOMMU_IOAS_IOVA_RANGES, iommu_ioas_iova_ranges);
    checkLength(f, 'IOMMU_IOAS_ALLOW_IOVAS', IOMMU_IOAS_ALLOW_IOVAS, iommu_ioas_allow_iovas);
    checkLength(f, 'IOMMU_IOAS_MAP', IOMMU_IOAS_MAP, iommu_ioas_map);
    checkLength(f, 'IOMMU_IOAS_MAP_FILE', IOMMU_IOAS_MAP_FILE, iommu_ioas_map_file);
    checkLength(f, 'IOMMU_IOAS_COPY', IOMMU_IOAS_COPY, iommu_ioas_copy);
    checkLength(f, 'IOMMU_IOAS_UNMAP', IOMMU_IOAS_UNMAP, iommu_ioas_unmap);
    checkLength(f, 'IOMMU_OPTION', IOMMU_OPTION, iommu_option);
    checkLength(f, 'IOMMU_VFIO_IOAS', IOMMU_VFIO_IOAS, iommu_vfio_ioas);
    checkLength(f, 'IOMMU_VIOMMU_ALLOC', IOMMU_VIOMMU_ALLOC, iommu_viommu_alloc);
    checkLength(f, 'IOMMU_VDEVICE_ALLOC', IOMMU_VDEVICE_ALLOC, iommu_vdevice_alloc);
  });

  it('runs a longer command whose tail is zero and refuses it once the tail is not (cmd_ex_fail)', () => {
    const f = new IommufdFixture();
    const bytes = new Uint8Array(16);
    bytes[0] = 16;
    f.proc.mm.copyToUser(f.scratch, bytes);
    expect(f.proc.ioctl(f.fd, IOMMU_DESTROY, f.scratch)).toBe(err('ENOENT'));
    bytes[8] = 1;
    f.proc.mm.copyToUser(f.scratch, bytes);
    expect(f.proc.ioctl(f.fd, IOMMU_DESTROY, f.scratch)).toBe(err('E2BIG'));
    bytes[0] = 8;
    f.proc.mm.copyToUser(f.scratch, bytes);
    expect(f.proc.ioctl(f.fd, IOMMU_DESTROY, f.scratch)).toBe(err('ENOENT'));
    bytes[0] = 7;
    f.proc.mm.copyToUser(f.scratch, bytes);
    expect(f.proc.ioctl(f.fd, IOMMU_DESTROY, f.scratch)).toBe(err('EINVAL'));
  });
});

describe('iommufd object ids', () => {
  it('hands out ids from 1 and reuses the lowest freed one', () => {
    const f = new IommufdFixture();
    expect([f.ioasAlloc(), f.ioasAlloc(), f.ioasAlloc()]).toEqual([1, 2, 3]);
    expect(f.ioctl(IOMMU_DESTROY, iommu_destroy, { id: 2 }).rc).toBe(0);
    expect(f.ioasAlloc()).toBe(2);
    expect(f.ioasAlloc()).toBe(4);
  });

  it('destroys an object once and then answers ENOENT for its id', () => {
    const f = new IommufdFixture();
    const id = f.ioasAlloc();
    expect(f.ioctl(IOMMU_DESTROY, iommu_destroy, { id }).rc).toBe(0);
    expect(f.ioctl(IOMMU_DESTROY, iommu_destroy, { id }).rc).toBe(err('ENOENT'));
  });

  it('refuses to destroy a bound device with EBUSY and an IOAS a HWPT uses', () => {
    const f = new IommufdFixture();
    const ioas = f.ioasAlloc();
    const { idev } = f.bindDevice();
    f.iommufd.deviceAttach(idev, null, ioas);
    expect(f.ioctl(IOMMU_DESTROY, iommu_destroy, { id: idev.devId }).rc).toBe(err('EBUSY'));
    expect(f.ioctl(IOMMU_DESTROY, iommu_destroy, { id: ioas }).rc).toBe(err('EBUSY'));
    expect(f.ictx.objects.find(ioas)).toBeDefined();
  });

  it('answers ENOENT for an id of the wrong object type', () => {
    const f = new IommufdFixture();
    const ioas = f.ioasAlloc();
    const { rc } = f.ioctl(IOMMU_GET_HW_INFO, iommu_hw_info, { dev_id: ioas });
    expect(rc).toBe(err('ENOENT'));
  });
});
