import { SimError } from '../errors/index.js';
import type { IommuCore } from '../iommu/iommu-core.js';
import type { VfioDeviceFile } from './device-file.js';
import type { IommufdKapi } from './iommufd-kapi.js';
import { iommuClientOf, type VfioDevice } from './vfio-device.js';
import type { IommufdCtxHandle, VfioDeviceOps } from './vfio-device-ops.js';

/**
 * drivers/vfio/iommufd.c: how a vfio device meets iommufd. The "physical"
 * ops bind the struct device itself (its IOMMU group's DMA ownership moves
 * to the context); the "emulated" ops give an mdev-style device an access
 * object that pins and reads IOVAs through an IOAS instead. Drivers put one
 * set into their ops table (physicalIommufdOps / emulatedIommufdOps).
 */
export class VfioIommufdGlue {
  constructor(
    private readonly iommufd: IommufdKapi,
    private readonly iommu: IommuCore,
  ) {}

  /** A device that the group registered as no-IOMMU: the glue does nothing for it. */
  #noiommu(vdev: VfioDevice): boolean {
    return vdev.group?.type === 'noiommu';
  }

  /** vfio_iommufd_device_has_compat_ioas. */
  hasCompatIoas(ictx: IommufdCtxHandle): boolean {
    try {
      this.iommufd.vfioCompatIoasGetId(ictx);
      return true;
    } catch (error) {
      if (error instanceof SimError) return false;
      throw error;
    }
  }

  /** vfio_df_iommufd_bind: the driver's bind_iommufd; a no-IOMMU device opens without one. */
  dfBind(df: VfioDeviceFile): void {
    const vdev = df.device;
    if (this.#noiommu(vdev)) return;
    df.devid = vdev.ops.bindIommufd!(vdev, df.iommufd!);
  }

  /** vfio_df_iommufd_unbind. */
  dfUnbind(df: VfioDeviceFile): void {
    const vdev = df.device;
    if (this.#noiommu(vdev)) return;
    vdev.ops.unbindIommufd?.(vdev);
  }

  /**
   * vfio_iommufd_compat_attach_ioas: a device opened through a group with an
   * iommufd attaches to the context's compat IOAS (ENODEV if there is none).
   */
  compatAttachIoas(vdev: VfioDevice, ictx: IommufdCtxHandle): void {
    if (this.#noiommu(vdev)) return;
    const ioasId = this.iommufd.vfioCompatIoasGetId(ictx);
    vdev.ops.attachIoas!(vdev, ioasId);
  }

  /**
   * vfio_iommufd_get_dev_id, for hot reset: the device's id in `ictx`; if the
   * device is not bound there but its IOMMU group is owned by `ictx`, ENOENT;
   * otherwise ENODEV.
   */
  getDevId(vdev: VfioDevice, ictx: IommufdCtxHandle): number {
    if (vdev.iommufdDevice && vdev.iommufdDevice.ictx === ictx) return vdev.iommufdDevice.devId;
    const client = iommuClientOf(vdev.dev);
    const groupId = client ? this.iommu.groupIdOf(client) : null;
    if (groupId === null) throw new SimError('NO_SUCH_DEVICE', `${vdev.name} has no IOMMU group`);
    if (this.iommufd.ctxHasGroup(ictx, groupId)) throw new SimError('NOT_FOUND', `${vdev.name} is owned by the context but not bound`);
    throw new SimError('NO_SUCH_DEVICE', `${vdev.name} is not owned by the context`);
  }

  // ------------------------------------------------------------ physical devices

  /** vfio_iommufd_physical_bind: iommufd_device_bind on the device; returns its device id. */
  physicalBind(vdev: VfioDevice, ictx: IommufdCtxHandle): number {
    const dev = iommuClientOf(vdev.dev);
    const groupId = dev ? this.iommu.groupIdOf(dev) : null;
    if (!dev || groupId === null) throw new SimError('NO_SUCH_DEVICE', `${vdev.name} is not behind an IOMMU`);
    const idev = this.iommufd.deviceBind(ictx, dev, groupId);
    vdev.iommufdDevice = idev;
    vdev.pasids.clear();
    return idev.devId;
  }

  /** vfio_iommufd_physical_unbind: detaches every PASID, then the RID, then unbinds. */
  physicalUnbind(vdev: VfioDevice): void {
    const idev = vdev.iommufdDevice;
    if (!idev) return;
    for (const pasid of [...vdev.pasids].sort((a, b) => a - b)) {
      this.iommufd.deviceDetach(idev, pasid);
      vdev.pasids.delete(pasid);
    }
    if (vdev.iommufdAttached) {
      this.iommufd.deviceDetach(idev, null);
      vdev.iommufdAttached = false;
    }
    this.iommufd.deviceUnbind(idev);
    vdev.iommufdDevice = null;
  }

  /** vfio_iommufd_physical_attach_ioas: attach, or replace once attached; returns the pt_id in effect. */
  physicalAttachIoas(vdev: VfioDevice, ptId: number): number {
    const idev = this.#idev(vdev);
    const attached = vdev.iommufdAttached ? this.iommufd.deviceReplace(idev, null, ptId) : this.iommufd.deviceAttach(idev, null, ptId);
    vdev.iommufdAttached = true;
    return attached;
  }

  /** vfio_iommufd_physical_detach_ioas: nothing to do when not attached. */
  physicalDetachIoas(vdev: VfioDevice): void {
    if (!vdev.iommufdDevice || !vdev.iommufdAttached) return;
    this.iommufd.deviceDetach(vdev.iommufdDevice, null);
    vdev.iommufdAttached = false;
  }

  /** vfio_iommufd_physical_pasid_attach_ioas: replace if the PASID is attached, else attach. */
  physicalPasidAttachIoas(vdev: VfioDevice, pasid: number, ptId: number): number {
    const idev = this.#idev(vdev);
    if (vdev.pasids.has(pasid)) return this.iommufd.deviceReplace(idev, pasid, ptId);
    const attached = this.iommufd.deviceAttach(idev, pasid, ptId);
    vdev.pasids.add(pasid);
    return attached;
  }

  /** vfio_iommufd_physical_pasid_detach_ioas: a PASID that is not attached is ignored. */
  physicalPasidDetachIoas(vdev: VfioDevice, pasid: number): void {
    if (!vdev.iommufdDevice || !vdev.pasids.has(pasid)) return;
    this.iommufd.deviceDetach(vdev.iommufdDevice, pasid);
    vdev.pasids.delete(pasid);
  }

  #idev(vdev: VfioDevice) {
    if (!vdev.iommufdDevice) throw new SimError('INVALID_ARGUMENT', `${vdev.name} is not bound to iommufd`);
    return vdev.iommufdDevice;
  }

  // ------------------------------------------------------------ emulated devices

  /** vfio_iommufd_emulated_bind: an access object whose unmaps reach the driver's dma_unmap. */
  emulatedBind(vdev: VfioDevice, ictx: IommufdCtxHandle): number {
    const access = this.iommufd.accessCreate(ictx, {
      needsPinPages: true,
      unmap: (iova, length) => vdev.ops.dmaUnmap?.(vdev, iova, length),
    });
    vdev.iommufdAccess = access;
    return access.devId;
  }

  /** vfio_iommufd_emulated_unbind. */
  emulatedUnbind(vdev: VfioDevice): void {
    if (!vdev.iommufdAccess) return;
    this.iommufd.accessDestroy(vdev.iommufdAccess);
    vdev.iommufdAttached = false;
    vdev.iommufdAccess = null;
  }

  /** vfio_iommufd_emulated_attach_ioas: the access reads through IOAS `ptId` (replacing any earlier one). */
  emulatedAttachIoas(vdev: VfioDevice, ptId: number): number {
    const access = vdev.iommufdAccess;
    if (!access) throw new SimError('INVALID_ARGUMENT', `${vdev.name} is not bound to iommufd`);
    if (vdev.iommufdAttached) this.iommufd.accessReplace(access, ptId);
    else this.iommufd.accessAttach(access, ptId);
    vdev.iommufdAttached = true;
    return ptId;
  }

  /** vfio_iommufd_emulated_detach_ioas. */
  emulatedDetachIoas(vdev: VfioDevice): void {
    if (!vdev.iommufdAccess || !vdev.iommufdAttached) return;
    this.iommufd.accessDetach(vdev.iommufdAccess);
    vdev.iommufdAttached = false;
  }
}

type IommufdOps = Required<Pick<VfioDeviceOps, 'bindIommufd' | 'unbindIommufd' | 'attachIoas' | 'detachIoas'>>;

/** The vfio_iommufd_physical_* entries of a driver's ops table (what vfio-pci uses). */
export function physicalIommufdOps(glue: VfioIommufdGlue): IommufdOps & Required<Pick<VfioDeviceOps, 'pasidAttachIoas' | 'pasidDetachIoas'>> {
  return {
    bindIommufd: (vdev, ictx) => glue.physicalBind(vdev, ictx),
    unbindIommufd: (vdev) => glue.physicalUnbind(vdev),
    attachIoas: (vdev, ptId) => glue.physicalAttachIoas(vdev, ptId),
    detachIoas: (vdev) => glue.physicalDetachIoas(vdev),
    pasidAttachIoas: (vdev, pasid, ptId) => glue.physicalPasidAttachIoas(vdev, pasid, ptId),
    pasidDetachIoas: (vdev, pasid) => glue.physicalPasidDetachIoas(vdev, pasid),
  };
}

/** The vfio_iommufd_emulated_* entries of an emulated (mdev-style) driver's ops table. */
export function emulatedIommufdOps(glue: VfioIommufdGlue): IommufdOps {
  return {
    bindIommufd: (vdev, ictx) => glue.emulatedBind(vdev, ictx),
    unbindIommufd: (vdev) => glue.emulatedUnbind(vdev),
    attachIoas: (vdev, ptId) => glue.emulatedAttachIoas(vdev, ptId),
    detachIoas: (vdev) => glue.emulatedDetachIoas(vdev),
  };
}
