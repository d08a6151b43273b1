import type { Frame, OpenFile } from '../os/index.js';
import type { IommuClientDevice } from '../iommu/iommu-driver.js';
import type { IommufdCtxHandle } from './vfio-device-ops.js';

/**
 * What the vfio core calls on iommufd (drivers/vfio/iommufd.c and group.c
 * calling into drivers/iommu/iommufd/). The iommufd layer provides one
 * implementation; vfio depends only on this shape, so vfio and iommufd can
 * be read and tested apart. Every method throws a SimError with the errno of
 * the kernel function named on it.
 */
export interface IommufdKapi {
  /** The iommufd context behind an open /dev/iommu file, or null if the file is something else. */
  ctxFromFile(file: OpenFile): IommufdCtxHandle | null;
  /** Takes a reference that keeps the context alive while a device or group uses it. */
  ctxGet(ictx: IommufdCtxHandle): void;
  ctxPut(ictx: IommufdCtxHandle): void;
  /** iommufd_device_bind: claims DMA ownership of the device (EPERM if another owner holds its group); returns the device object. */
  deviceBind(ictx: IommufdCtxHandle, dev: IommuClientDevice, groupId: number): IommufdDeviceHandle;
  deviceUnbind(idev: IommufdDeviceHandle): void;
  /** Attach or replace: returns the pt_id actually attached (an IOAS id yields an auto-domain HWPT id). */
  deviceAttach(idev: IommufdDeviceHandle, pasid: number | null, ptId: number): number;
  deviceReplace(idev: IommufdDeviceHandle, pasid: number | null, ptId: number): number;
  deviceDetach(idev: IommufdDeviceHandle, pasid: number | null): void;
  /** Whether a device of this IOMMU group is bound to the context (hot reset ownership). */
  ctxHasGroup(ictx: IommufdCtxHandle, groupId: number): boolean;
  /** The device id of `dev` in `ictx`, or null if it is not bound there. */
  deviceIdInCtx(ictx: IommufdCtxHandle, dev: IommuClientDevice): number | null;

  // --- the VFIO container compatibility the group path uses (iommufd/vfio_compat.c)

  /** iommufd_vfio_compat_ioas_create: VFIO_GROUP_SET_CONTAINER with an iommufd makes (or reuses) the compat IOAS. */
  vfioCompatIoasCreate(ictx: IommufdCtxHandle): void;
  /** iommufd_vfio_compat_set_no_iommu: the context serves noiommu groups; EINVAL if it already has a compat IOAS. */
  vfioCompatSetNoIommu(ictx: IommufdCtxHandle): void;
  /** iommufd_vfio_compat_ioas_get_id: the compat IOAS id; ENODEV if there is none. */
  vfioCompatIoasGetId(ictx: IommufdCtxHandle): number;

  // --- emulated devices reach memory through an access object (iommufd_access)

  /** iommufd_access_create: returns the access with the device id userspace sees. */
  accessCreate(ictx: IommufdCtxHandle, ops: IommufdAccessOps): IommufdAccessHandle;
  accessDestroy(access: IommufdAccessHandle): void;
  /** iommufd_access_attach / _replace: the access now reads and pins through IOAS `ioasId`. */
  accessAttach(access: IommufdAccessHandle, ioasId: number): void;
  accessReplace(access: IommufdAccessHandle, ioasId: number): void;
  accessDetach(access: IommufdAccessHandle): void;
  /**
   * iommufd_access_pin_pages: the frames behind [iova, iova + length), one
   * per page (`write` is IOMMUFD_ACCESS_RW_WRITE). EINVAL for no bytes or a
   * range an unmap is taking away or not page aligned, EOVERFLOW if it
   * wraps, ENOENT if the access is detached or the range has a hole, EPERM
   * if a mapping does not allow the access.
   */
  accessPinPages(access: IommufdAccessHandle, iova: bigint, length: bigint, write: boolean): Frame[];
  /** iommufd_access_unpin_pages: the exact range of an earlier pin. */
  accessUnpinPages(access: IommufdAccessHandle, iova: bigint, length: bigint): void;
  /** iommufd_access_rw: the CPU copies to (`write`) or from the memory behind the IOVAs; errors as for pinning. */
  accessRw(access: IommufdAccessHandle, iova: bigint, data: Uint8Array, write: boolean): void;
}

export interface IommufdDeviceHandle {
  readonly devId: number;
  readonly ictx: IommufdCtxHandle;
}

export interface IommufdAccessHandle {
  readonly devId: number;
  readonly ictx: IommufdCtxHandle;
}

/** struct iommufd_access_ops for vfio's emulated devices: pins must go before an unmap completes. */
export interface IommufdAccessOps {
  readonly needsPinPages: boolean;
  unmap(iova: bigint, length: bigint): void;
}
