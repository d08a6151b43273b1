import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  Errno,
  IOMMU_IOAS_ALLOC,
  VFIO_DEVICE_ATTACH_IOMMUFD_PT,
  VFIO_DEVICE_BIND_IOMMUFD,
  VFIO_DEVICE_DETACH_IOMMUFD_PT,
  VFIO_DEVICE_GET_INFO,
  iommu_ioas_alloc,
  vfio_device_attach_iommufd_pt,
  vfio_device_bind_iommufd,
  vfio_device_detach_iommufd_pt,
  vfio_device_info,
  type Host,
} from '@vfiosim/core';
import { NIC_BDF, nicHost } from './hosts.js';
import { Sysfs } from './libvfio/vfio-pci-device.js';
import { User } from './user.js';

/*
 * tools/testing/selftests/vfio/vfio_iommufd_setup_test.c: FIXTURE(vfio_cdev)
 * opens the device cdev and /dev/iommu; each case binds, attaches and
 * detaches. Upstream only asserts "!= 0" for the failures; the kernel's
 * exact errno is asserted here.
 */

const UINT32_MAX = 0xffffffff;

describe('vfio_iommufd_setup_test: FIXTURE(vfio_cdev)', () => {
  let host: Host;
  let user: User;
  let cdevFd: number;
  let iommufd: number;

  const bind = (fd: number, ictx: number) =>
    user.ioctl(fd, VFIO_DEVICE_BIND_IOMMUFD, vfio_device_bind_iommufd, { argsz: vfio_device_bind_iommufd.size, iommufd: ictx }).rc;
  const getInfo = (fd: number) => user.ioctl(fd, VFIO_DEVICE_GET_INFO, vfio_device_info, { argsz: vfio_device_info.size }).rc;
  const ioasAlloc = () => user.ioctl(iommufd, IOMMU_IOAS_ALLOC, iommu_ioas_alloc, { size: iommu_ioas_alloc.size });
  const attach = (fd: number, ptId: number) =>
    user.ioctl(fd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, vfio_device_attach_iommufd_pt, { argsz: vfio_device_attach_iommufd_pt.size, pt_id: ptId });
  const detach = (fd: number) =>
    user.ioctl(fd, VFIO_DEVICE_DETACH_IOMMUFD_PT, vfio_device_detach_iommufd_pt, { argsz: vfio_device_detach_iommufd_pt.size }).rc;

  beforeEach(() => {
    host = nicHost();
    user = new User(host.spawn());
    cdevFd = user.proc.open(new Sysfs(host).cdevPath(NIC_BDF));
    expect(cdevFd).toBeGreaterThanOrEqual(0);
    iommufd = user.proc.open('/dev/iommu');
    expect(iommufd).toBeGreaterThanOrEqual(0);
  });

  afterEach(() => {
    expect(user.proc.close(cdevFd)).toBe(0);
    expect(user.proc.close(iommufd)).toBe(0);
  });

  it('bind: binds, and GET_INFO then answers', () => {
    expect(bind(cdevFd, iommufd)).toBe(0);
    expect(getInfo(cdevFd)).toBe(0);
  });

  it('get_info_without_bind_fails: EINVAL until access is granted by the bind', () => {
    expect(getInfo(cdevFd)).toBe(-Errno.EINVAL);
  });

  it('bind_bad_iommufd_fails: a negative iommufd is EINVAL before any fd lookup', () => {
    expect(bind(cdevFd, -2)).toBe(-Errno.EINVAL);
    // The failed bind left nothing behind: a good one still works.
    expect(bind(cdevFd, iommufd)).toBe(0);
  });

  it('repeated_bind_fails: the second bind of one file is EINVAL', () => {
    expect(bind(cdevFd, iommufd)).toBe(0);
    expect(bind(cdevFd, iommufd)).toBe(-Errno.EINVAL);
    expect(getInfo(cdevFd)).toBe(0);
  });

  it('attach_detatch_pt: attaches to a new IOAS and detaches', () => {
    expect(bind(cdevFd, iommufd)).toBe(0);
    const alloc = ioasAlloc();
    expect(alloc.rc).toBe(0);
    const attached = attach(cdevFd, alloc.out.out_ioas_id);
    expect(attached.rc).toBe(0);
    // The kernel writes back the id of the HWPT it made for the IOAS.
    expect(attached.out.pt_id).not.toBe(alloc.out.out_ioas_id);
    expect(detach(cdevFd)).toBe(0);
  });

  it('attach_invalid_pt_fails: an id no object has is ENOENT', () => {
    expect(bind(cdevFd, iommufd)).toBe(0);
    const attached = attach(cdevFd, UINT32_MAX);
    expect(attached.rc).toBe(-Errno.ENOENT);
    expect(attached.out.pt_id).toBe(UINT32_MAX);
  });

  it('a bind to an fd that is not an iommufd is EBADFD, to a closed fd EBADF', () => {
    const eventfd = user.proc.eventfd(0);
    expect(bind(cdevFd, eventfd)).toBe(-Errno.EBADFD);
    expect(bind(cdevFd, 999)).toBe(-Errno.EBADF);
    expect(bind(cdevFd, iommufd)).toBe(0);
  });
});
