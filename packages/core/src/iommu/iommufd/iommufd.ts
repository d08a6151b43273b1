import { inject, injectable } from 'tsyringe';
import { OpenFile, type Frame, type System } from '../../os/index.js';
import { IOMMU_CORE, SYSTEM } from '../../tokens.js';
import type { IommufdAccessHandle, IommufdAccessOps, IommufdDeviceHandle, IommufdKapi } from '../../vfio/iommufd-kapi.js';
import type { IommufdCtxHandle } from '../../vfio/vfio-device-ops.js';
import type { IommuCore } from '../iommu-core.js';
import { IOMMU_NO_PASID, type IommuClientDevice } from '../iommu-driver.js';
import {
  accessAttach, accessCreate, accessDestroy, accessDetach, accessPinPages, accessReplace, accessRw, accessUnpinPages, IommufdAccess,
} from './access.js';
import { deviceAttach, deviceBind, deviceDetach, deviceReplace, deviceUnbind, IommufdDevice } from './device.js';
import { IommufdCtx, iommufdFileOps } from './iommufd-ctx.js';
import { compatIoasCreate, compatSetNoIommu, getCompatIoas } from './vfio-compat.js';

/** Where /dev/iommu appears (the misc device's nodename). */
export const IOMMUFD_DEVICE_PATH = '/dev/iommu';

function ctxOf(handle: IommufdCtxHandle): IommufdCtx {
  if (!(handle instanceof IommufdCtx)) throw new Error('iommufd: the handle is not an iommufd context');
  return handle;
}

function deviceOf(handle: IommufdDeviceHandle): IommufdDevice {
  if (!(handle instanceof IommufdDevice)) throw new Error('iommufd: the handle is not an iommufd device');
  return handle;
}

function accessOf(handle: IommufdAccessHandle): IommufdAccess {
  if (!(handle instanceof IommufdAccess)) throw new Error('iommufd: the handle is not an iommufd access');
  return handle;
}

/**
 * The iommufd module: registers /dev/iommu when constructed (module init),
 * gives every open its own context, and is what the vfio core calls to
 * bind, attach and detach devices (IommufdKapi).
 */
@injectable()
export class Iommufd implements IommufdKapi {
  #nextCtxId = 1;

  constructor(
    @inject(SYSTEM) readonly system: System,
    @inject(IOMMU_CORE) readonly iommuCore: IommuCore,
  ) {
    system.devfs.register(IOMMUFD_DEVICE_PATH, (_proc, flags) => this.open(flags));
  }

  /** iommufd_fops_open(): a fresh context in a new open file. */
  open(flags: number): OpenFile {
    const ictx = new IommufdCtx(this.#nextCtxId++, this);
    const file = new OpenFile(iommufdFileOps, flags, ictx);
    ictx.file = file;
    return file;
  }

  // ------------------------------------------------------------ IommufdKapi

  ctxFromFile(file: OpenFile): IommufdCtx | null {
    return file.ops === iommufdFileOps ? (file.privateData as IommufdCtx) : null;
  }

  ctxGet(ictx: IommufdCtxHandle): void {
    ctxOf(ictx).file.get();
  }

  ctxPut(ictx: IommufdCtxHandle): void {
    ctxOf(ictx).file.put();
  }

  deviceBind(ictx: IommufdCtxHandle, dev: IommuClientDevice, groupId: number): IommufdDevice {
    return deviceBind(ctxOf(ictx), dev, groupId);
  }

  deviceUnbind(idev: IommufdDeviceHandle): void {
    deviceUnbind(deviceOf(idev));
  }

  deviceAttach(idev: IommufdDeviceHandle, pasid: number | null, ptId: number): number {
    return deviceAttach(deviceOf(idev), pasid ?? IOMMU_NO_PASID, ptId);
  }

  deviceReplace(idev: IommufdDeviceHandle, pasid: number | null, ptId: number): number {
    return deviceReplace(deviceOf(idev), pasid ?? IOMMU_NO_PASID, ptId);
  }

  deviceDetach(idev: IommufdDeviceHandle, pasid: number | null): void {
    deviceDetach(deviceOf(idev), pasid ?? IOMMU_NO_PASID);
  }

  ctxHasGroup(ictx: IommufdCtxHandle, groupId: number): boolean {
    return ctxOf(ictx).hasGroup(groupId);
  }

  deviceIdInCtx(ictx: IommufdCtxHandle, dev: IommuClientDevice): number | null {
    const found = ctxOf(ictx).objects.live().find((object) => object instanceof IommufdDevice && object.dev === dev);
    return found ? found.id : null;
  }

  vfioCompatIoasCreate(ictx: IommufdCtxHandle): void {
    compatIoasCreate(ctxOf(ictx));
  }

  vfioCompatSetNoIommu(ictx: IommufdCtxHandle): void {
    compatSetNoIommu(ctxOf(ictx));
  }

  vfioCompatIoasGetId(ictx: IommufdCtxHandle): number {
    return getCompatIoas(ctxOf(ictx)).id;
  }

  accessCreate(ictx: IommufdCtxHandle, ops: IommufdAccessOps): IommufdAccess {
    return accessCreate(ctxOf(ictx), ops);
  }

  accessDestroy(access: IommufdAccessHandle): void {
    accessDestroy(accessOf(access));
  }

  accessAttach(access: IommufdAccessHandle, ioasId: number): void {
    accessAttach(accessOf(access), ioasId);
  }

  accessReplace(access: IommufdAccessHandle, ioasId: number): void {
    accessReplace(accessOf(access), ioasId);
  }

  accessDetach(access: IommufdAccessHandle): void {
    accessDetach(accessOf(access));
  }

  accessPinPages(access: IommufdAccessHandle, iova: bigint, length: bigint, write: boolean): Frame[] {
    return accessPinPages(accessOf(access), iova, length, write);
  }

  accessUnpinPages(access: IommufdAccessHandle, iova: bigint, length: bigint): void {
    accessUnpinPages(accessOf(access), iova, length);
  }

  accessRw(access: IommufdAccessHandle, iova: bigint, data: Uint8Array, write: boolean): void {
    accessRw(accessOf(access), iova, data, write);
  }
}
