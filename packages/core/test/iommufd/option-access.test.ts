import { describe, expect, it } from 'vitest';
import {
  IOMMU_DESTROY, IOMMU_OPTION, IOMMU_OPTION_HUGE_PAGES, IOMMU_OPTION_OP_GET, IOMMU_OPTION_OP_SET,
  IOMMU_OPTION_RLIMIT_MODE, MOCK_APERTURE_START, iommu_destroy, iommu_option, type IommufdIoas,
} from '@vfiosim/core';
import { err, IommufdFixture, PAGE_SIZE, readOnlyCopy } from './fixture.js';

function option(f: IommufdFixture, value: Partial<iommu_option>) {
  return f.ioctl(IOMMU_OPTION, iommu_option, { val64: 0xabn, ...value });
}

function iopt(f: IommufdFixture, ioas: number) {
  return f.ictx.objects.get<IommufdIoas>(ioas, 'ioas').iopt;
}

describe('IOMMU_OPTION_RLIMIT_MODE (global)', () => {
  it('reads 0 (per-user accounting) by default and switches to mm accounting while the context is empty', () => {
    const f = new IommufdFixture();
    expect(option(f, { option_id: IOMMU_OPTION_RLIMIT_MODE, op: IOMMU_OPTION_OP_GET }).out.val64).toBe(0n);
    const set = option(f, { option_id: IOMMU_OPTION_RLIMIT_MODE, op: IOMMU_OPTION_OP_SET, val64: 1n });
    expect(set).toEqual({ rc: 0, out: expect.objectContaining({ val64: 1n }) });
    expect(option(f, { option_id: IOMMU_OPTION_RLIMIT_MODE, op: IOMMU_OPTION_OP_GET }).out.val64).toBe(1n);
    expect(f.ictx.accountMode).toBe('mm');
    expect(option(f, { option_id: IOMMU_OPTION_RLIMIT_MODE, op: IOMMU_OPTION_OP_SET, val64: 0n }).rc).toBe(0);
    expect(f.ictx.accountMode).toBe('user');
  });

  it('refuses a value other than 0/1 (EINVAL), an object_id or unknown op (EOPNOTSUPP), and changes nothing', () => {
    const f = new IommufdFixture();
    expect(option(f, { option_id: IOMMU_OPTION_RLIMIT_MODE, op: IOMMU_OPTION_OP_SET, val64: 2n }).rc).toBe(err('EINVAL'));
    expect(option(f, { option_id: IOMMU_OPTION_RLIMIT_MODE, op: IOMMU_OPTION_OP_SET, val64: 1n, object_id: 1 }).rc)
      .toBe(err('EOPNOTSUPP'));
    expect(option(f, { option_id: IOMMU_OPTION_RLIMIT_MODE, op: IOMMU_OPTION_OP_GET, object_id: 1 }).rc).toBe(err('EOPNOTSUPP'));
    expect(option(f, { option_id: IOMMU_OPTION_RLIMIT_MODE, op: 2 }).rc).toBe(err('EOPNOTSUPP'));
    expect(f.ictx.accountMode).toBe('user');
  });

  it('is EBUSY once any object exists, checked before the value', () => {
    const f = new IommufdFixture();
    f.ioasAlloc();
    expect(option(f, { option_id: IOMMU_OPTION_RLIMIT_MODE, op: IOMMU_OPTION_OP_SET, val64: 1n }).rc).toBe(err('EBUSY'));
    expect(option(f, { option_id: IOMMU_OPTION_RLIMIT_MODE, op: IOMMU_OPTION_OP_SET, val64: 7n }).rc).toBe(err('EBUSY'));
    expect(option(f, { option_id: IOMMU_OPTION_RLIMIT_MODE, op: IOMMU_OPTION_OP_GET }).rc).toBe(0);
    expect(f.ictx.accountMode).toBe('user');
  });

  it('refuses an unknown option or a non-zero __reserved with EOPNOTSUPP', () => {
    const f = new IommufdFixture();
    expect(option(f, { option_id: 9, op: IOMMU_OPTION_OP_GET }).rc).toBe(err('EOPNOTSUPP'));
    expect(option(f, { option_id: IOMMU_OPTION_RLIMIT_MODE, op: IOMMU_OPTION_OP_GET, __reserved: 1 }).rc).toBe(err('EOPNOTSUPP'));
  });

  it('is EFAULT when val64 cannot be written back', () => {
    const f = new IommufdFixture();
    const ro = readOnlyCopy(f, iommu_option.encodeNew({ size: iommu_option.size, option_id: IOMMU_OPTION_RLIMIT_MODE, op: IOMMU_OPTION_OP_GET }));
    expect(f.proc.ioctl(f.fd, IOMMU_OPTION, ro)).toBe(err('EFAULT'));
  });
});

describe('IOMMU_OPTION_HUGE_PAGES (per IOAS)', () => {
  it('reads 1 by default, turns off and on again', () => {
    const f = new IommufdFixture();
    const ioas = f.ioasAlloc();
    expect(option(f, { option_id: IOMMU_OPTION_HUGE_PAGES, op: IOMMU_OPTION_OP_GET, object_id: ioas }).out.val64).toBe(1n);
    expect(option(f, { option_id: IOMMU_OPTION_HUGE_PAGES, op: IOMMU_OPTION_OP_SET, object_id: ioas, val64: 0n }).rc).toBe(0);
    expect(option(f, { option_id: IOMMU_OPTION_HUGE_PAGES, op: IOMMU_OPTION_OP_GET, object_id: ioas }).out.val64).toBe(0n);
    expect(iopt(f, ioas).iovaAlignment).toBe(PAGE_SIZE);
    expect(option(f, { option_id: IOMMU_OPTION_HUGE_PAGES, op: IOMMU_OPTION_OP_SET, object_id: ioas, val64: 1n }).rc).toBe(0);
    expect(option(f, { option_id: IOMMU_OPTION_HUGE_PAGES, op: IOMMU_OPTION_OP_GET, object_id: ioas }).out.val64).toBe(1n);
    expect(iopt(f, ioas).iovaAlignment).toBe(1n);
  });

  it('needs an IOAS id: 0, unknown or another object type is ENOENT', () => {
    const f = new IommufdFixture();
    const { idev } = f.bindDevice();
    expect(option(f, { option_id: IOMMU_OPTION_HUGE_PAGES, op: IOMMU_OPTION_OP_GET, object_id: 0 }).rc).toBe(err('ENOENT'));
    expect(option(f, { option_id: IOMMU_OPTION_HUGE_PAGES, op: IOMMU_OPTION_OP_GET, object_id: 42 }).rc).toBe(err('ENOENT'));
    expect(option(f, { option_id: IOMMU_OPTION_HUGE_PAGES, op: IOMMU_OPTION_OP_GET, object_id: idev.devId }).rc).toBe(err('ENOENT'));
  });

  it('refuses val64 2 (EINVAL) and an unknown op (EOPNOTSUPP) without a change', () => {
    const f = new IommufdFixture();
    const ioas = f.ioasAlloc();
    expect(option(f, { option_id: IOMMU_OPTION_HUGE_PAGES, op: IOMMU_OPTION_OP_SET, object_id: ioas, val64: 2n }).rc).toBe(err('EINVAL'));
    expect(option(f, { option_id: IOMMU_OPTION_HUGE_PAGES, op: 5, object_id: ioas }).rc).toBe(err('EOPNOTSUPP'));
    expect(iopt(f, ioas).largePagesDisabled).toBe(false);
  });

  it('cannot turn off while a domain holds mappings (EINVAL)', () => {
    const f = new IommufdFixture();
    const ioas = f.ioasAlloc();
    const { idev } = f.bindDevice();
    f.iommufd.deviceAttach(idev, null, ioas);
    expect(f.map(ioas, f.buffer, PAGE_SIZE, MOCK_APERTURE_START).rc).toBe(0);
    expect(option(f, { option_id: IOMMU_OPTION_HUGE_PAGES, op: IOMMU_OPTION_OP_SET, object_id: ioas, val64: 0n }).rc).toBe(err('EINVAL'));
    expect(iopt(f, ioas).largePagesDisabled).toBe(false);
  });

  it('cannot turn off when an existing sub-page area would break PAGE_SIZE alignment (EADDRINUSE)', () => {
    const f = new IommufdFixture();
    const ioas = f.ioasAlloc();
    // No domain: the IOAS has no alignment rule, so a sub-page IOVA is fine.
    expect(f.map(ioas, f.buffer + 0x800n, PAGE_SIZE, 0x10800n).rc).toBe(0);
    expect(option(f, { option_id: IOMMU_OPTION_HUGE_PAGES, op: IOMMU_OPTION_OP_SET, object_id: ioas, val64: 0n }).rc)
      .toBe(err('EADDRINUSE'));
    expect(option(f, { option_id: IOMMU_OPTION_HUGE_PAGES, op: IOMMU_OPTION_OP_GET, object_id: ioas }).out.val64).toBe(1n);
    expect(iopt(f, ioas).iovaAlignment).toBe(1n);
  });
});

describe('in-kernel accesses (iommufd_access_*)', () => {
  const noop = { needsPinPages: true, unmap: () => undefined };

  it('gets an object id, is held by its driver (IOMMU_DESTROY EBUSY) and keeps the IOAS busy while attached', () => {
    const f = new IommufdFixture();
    const ioas = f.ioasAlloc();
    const access = f.iommufd.accessCreate(f.ictx, noop);
    expect(access.devId).toBe(2);
    f.iommufd.accessAttach(access, ioas);
    expect(f.ioctl(IOMMU_DESTROY, iommu_destroy, { id: access.devId }).rc).toBe(err('EBUSY'));
    expect(f.ioctl(IOMMU_DESTROY, iommu_destroy, { id: ioas }).rc).toBe(err('EBUSY'));
    expect(iopt(f, ioas).iovaAlignment).toBe(PAGE_SIZE);
    f.iommufd.accessDestroy(access);
    expect(iopt(f, ioas).iovaAlignment).toBe(1n);
    expect(f.ioctl(IOMMU_DESTROY, iommu_destroy, { id: ioas }).rc).toBe(0);
    expect(f.ictx.objects.empty).toBe(true);
  });

  it('attach twice is EINVAL, attach to a non-IOAS is ENOENT, replace when detached is ENOENT', () => {
    const f = new IommufdFixture();
    const ioas = f.ioasAlloc();
    const access = f.iommufd.accessCreate(f.ictx, noop);
    expect(() => f.iommufd.accessReplace(access, ioas)).toThrow(/ENOENT/);
    expect(() => f.iommufd.accessAttach(access, access.devId)).toThrow(/ENOENT/);
    f.iommufd.accessAttach(access, ioas);
    expect(() => f.iommufd.accessAttach(access, ioas)).toThrow(/EINVAL/);
  });

  it('a pinning access refuses an IOAS whose areas are not page aligned (EADDRINUSE) and stays where it was', () => {
    const f = new IommufdFixture();
    const good = f.ioasAlloc();
    const bad = f.ioasAlloc();
    expect(f.map(bad, f.buffer + 0x800n, PAGE_SIZE, 0x10800n).rc).toBe(0);
    const unmaps: [bigint, bigint][] = [];
    const access = f.iommufd.accessCreate(f.ictx, { needsPinPages: true, unmap: (iova, length) => unmaps.push([iova, length]) });
    expect(() => f.iommufd.accessAttach(access, bad)).toThrow(/EADDRINUSE/);
    f.iommufd.accessAttach(access, good);
    expect(() => f.iommufd.accessReplace(access, bad)).toThrow(/EADDRINUSE/);
    expect(f.ioctl(IOMMU_DESTROY, iommu_destroy, { id: bad }).rc).toBe(0);
    expect(unmaps).toEqual([]);
    // Page alignment now applies to new mappings of the attached IOAS.
    expect(f.map(good, f.buffer, PAGE_SIZE, 0x20800n).rc).toBe(err('EINVAL'));
  });

  it('replace tells the driver to drop everything it pinned from the old IOAS', () => {
    const f = new IommufdFixture();
    const a = f.ioasAlloc();
    const b = f.ioasAlloc();
    const unmaps: [bigint, bigint][] = [];
    const access = f.iommufd.accessCreate(f.ictx, { needsPinPages: false, unmap: (iova, length) => unmaps.push([iova, length]) });
    f.iommufd.accessAttach(access, a);
    f.iommufd.accessReplace(access, a);
    expect(unmaps).toEqual([]);
    f.iommufd.accessReplace(access, b);
    expect(unmaps).toEqual([[0n, (1n << 64n) - 1n]]);
    expect(f.ioctl(IOMMU_DESTROY, iommu_destroy, { id: a }).rc).toBe(0);
    expect(f.ioctl(IOMMU_DESTROY, iommu_destroy, { id: b }).rc).toBe(err('EBUSY'));
    f.iommufd.accessDetach(access);
    expect(f.ioctl(IOMMU_DESTROY, iommu_destroy, { id: b }).rc).toBe(0);
  });

  it('holds the context open after close until the driver destroys it', () => {
    const f = new IommufdFixture();
    const access = f.iommufd.accessCreate(f.ictx, noop);
    const file = f.proc.fdget(f.fd);
    expect(f.proc.close(f.fd)).toBe(0);
    expect(file.released).toBe(false);
    f.iommufd.accessDestroy(access);
    expect(file.released).toBe(true);
  });
});
