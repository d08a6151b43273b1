import { SimError } from '../../errors/index.js';
import {
  iommu_hw_info,
  IOMMU_HW_CAP_DIRTY_TRACKING,
  IOMMU_HW_INFO_FLAG_INPUT_TYPE,
  IOMMU_HW_INFO_TYPE_DEFAULT,
  IOMMU_HW_INFO_TYPE_NONE,
  rejectUnknownFlags,
  respondIommufd,
  type StructIoctlCall,
} from '../../uapi/index.js';
import { IOMMU_NO_PASID, type IommuClientDevice, type IommuDevice, type IommuDriver } from '../iommu-driver.js';
import type { IommufdDeviceHandle } from '../../vfio/iommufd-kapi.js';
import {
  findHwptPaging,
  HwptPaging,
  hwptPagingAlloc,
  type IommufdHwPagetable,
} from './hw-pagetable.js';
import type { IoPagetable } from './io-pagetable.js';
import type { IommufdIoas } from './ioas.js';
import type { IommufdCtx, IommufdUcmd } from './iommufd-ctx.js';
import { IommufdObject } from './object.js';
import type { IommufdVdevice } from './viommu.js';

/** What one PASID (or the RID, IOMMU_NO_PASID) of a group is attached to, and by which devices. */
interface GroupAttach {
  hwpt: IommufdHwPagetable;
  readonly devices: Map<number, IommufdDevice>;
}

/**
 * struct iommufd_group: iommufd's per-context view of an IOMMU group. A
 * group attaches as a whole, so the first device attached to a PASID
 * attaches the hardware and later devices of the group only join; each
 * device still attaches on its own because reserved regions are per device.
 */
export class IommufdGroup {
  readonly attaches = new Map<number, GroupAttach>();
  refs = 0;

  constructor(
    readonly ictx: IommufdCtx,
    readonly groupId: number,
  ) {}
}

/**
 * struct iommufd_device: a device a driver bound to the context. The
 * binding driver (vfio) holds one user until it unbinds, so IOMMU_DESTROY
 * on a device id is always EBUSY.
 */
export class IommufdDevice extends IommufdObject implements IommufdDeviceHandle {
  readonly type = 'device' as const;
  vdev: IommufdVdevice | null = null;
  /** Set once unbinding started: a vDEVICE can no longer be created for it. */
  destroying = false;

  constructor(
    readonly ictx: IommufdCtx,
    readonly dev: IommuClientDevice,
    readonly igroup: IommufdGroup,
    readonly driver: IommuDriver,
    readonly iommu: IommuDevice,
  ) {
    super();
  }

  get devId(): number {
    return this.id;
  }

  destroy(): void {
    this.ictx.iommufd.iommuCore.deviceReleaseDmaOwner(this.dev);
    this.ictx.putGroup(this.igroup);
    this.ictx.file.put();
  }
}

// ------------------------------------------------------------ reserved regions

/**
 * iopt_table_enforce_dev_resv_regions(): the device's reserved regions
 * become reserved IOVA in the IOAS it attaches to; EADDRINUSE if one is
 * already mapped or allowed. All or nothing.
 */
function enforceResvRegions(iopt: IoPagetable, idev: IommufdDevice): void {
  try {
    for (const region of idev.driver.getResvRegions?.(idev.dev) ?? []) {
      iopt.reserve(region.start, region.start + region.length - 1n, idev);
    }
  } catch (error) {
    iopt.removeReserved(idev);
    throw error;
  }
}

function removeGroupReserved(attach: GroupAttach, paging: HwptPaging): void {
  for (const dev of attach.devices.values()) paging.ioas.iopt.removeReserved(dev);
}

// ------------------------------------------------------------ attach / detach

/**
 * iommufd_hwpt_pasid_compat(): a HWPT allocated without
 * IOMMU_HWPT_ALLOC_PASID can be neither a PASID's domain nor the RID domain
 * of a group with PASIDs attached; a PASID cannot attach under a RID domain
 * that is not PASID compatible.
 */
function checkPasidCompat(hwpt: IommufdHwPagetable, idev: IommufdDevice, pasid: number): void {
  const { attaches } = idev.igroup;
  if (pasid === IOMMU_NO_PASID) {
    if (!hwpt.pasidCompat && [...attaches.keys()].some((p) => p !== IOMMU_NO_PASID)) {
      throw new SimError('INVALID_ARGUMENT', `HWPT ${hwpt.id} is not PASID compatible and PASIDs of ${idev.dev.name} are attached`);
    }
    return;
  }
  if (!hwpt.pasidCompat) throw new SimError('INVALID_ARGUMENT', `HWPT ${hwpt.id} was not allocated with IOMMU_HWPT_ALLOC_PASID`);
  const rid = attaches.get(IOMMU_NO_PASID);
  if (rid && !rid.hwpt.pasidCompat) {
    throw new SimError('INVALID_ARGUMENT', `the RID domain of ${idev.dev.name} is not PASID compatible`);
  }
}

/** iommufd_hwpt_attach_device(): the hardware attach, done for the first device of the group. */
function attachHardware(hwpt: IommufdHwPagetable, idev: IommufdDevice, pasid: number): void {
  checkPasidCompat(hwpt, idev, pasid);
  const core = idev.ictx.iommufd.iommuCore;
  if (pasid === IOMMU_NO_PASID) core.attachGroup(idev.igroup.groupId, hwpt.hwDomain);
  else core.attachDevicePasid(idev.dev, pasid, hwpt.hwDomain);
}

/**
 * iommufd_hw_pagetable_attach(): the device joins `hwpt` on `pasid`.
 * EBUSY if it is attached there already (to anything); EINVAL if its group
 * is attached there to another HWPT; the device's reserved regions must
 * fit the HWPT's IOAS. Takes a user on the HWPT.
 */
export function hwPagetableAttach(hwpt: IommufdHwPagetable, idev: IommufdDevice, pasid: number): void {
  const igroup = idev.igroup;
  const paging = findHwptPaging(hwpt);
  const attachResv = pasid === IOMMU_NO_PASID;
  const attach = igroup.attaches.get(pasid);
  if (attach?.devices.has(idev.id)) throw new SimError('BUSY', `${idev.dev.name} is already attached${pasid ? ` on PASID ${pasid}` : ''}`);
  if (attach && attach.hwpt !== hwpt) {
    throw new SimError('INVALID_ARGUMENT', `the group of ${idev.dev.name} is attached to HWPT ${attach.hwpt.id}, not ${hwpt.id}`);
  }
  if (attachResv) enforceResvRegions(paging.ioas.iopt, idev);
  if (!attach) {
    try {
      attachHardware(hwpt, idev, pasid);
    } catch (error) {
      if (attachResv) paging.ioas.iopt.removeReserved(idev);
      throw error;
    }
    igroup.attaches.set(pasid, { hwpt, devices: new Map() });
  }
  hwpt.users++;
  igroup.attaches.get(pasid)!.devices.set(idev.id, idev);
}

/**
 * iommufd_hw_pagetable_detach(): the device leaves; the last device of the
 * group detaches the hardware (back to blocking). Returns the HWPT, whose
 * user the caller still has to drop, or null if nothing was attached.
 */
export function hwPagetableDetach(idev: IommufdDevice, pasid: number): IommufdHwPagetable | null {
  const igroup = idev.igroup;
  const attach = igroup.attaches.get(pasid);
  if (!attach || !attach.devices.has(idev.id)) return null;
  const hwpt = attach.hwpt;
  attach.devices.delete(idev.id);
  if (attach.devices.size === 0) {
    const core = idev.ictx.iommufd.iommuCore;
    if (pasid === IOMMU_NO_PASID) core.detachGroup(igroup.groupId, hwpt.hwDomain);
    else core.detachDevicePasid(idev.dev, pasid, hwpt.hwDomain);
    igroup.attaches.delete(pasid);
  }
  if (pasid === IOMMU_NO_PASID) findHwptPaging(hwpt).ioas.iopt.removeReserved(idev);
  return hwpt;
}

/**
 * iommufd_hw_pagetable_put(): drops a device's user on a HWPT; an
 * automatic domain nobody else uses is destroyed with it.
 */
export function hwPagetablePut(ictx: IommufdCtx, hwpt: IommufdHwPagetable): void {
  hwpt.users--;
  if (hwpt instanceof HwptPaging && hwpt.autoDomain && hwpt.users === 1) ictx.objects.remove(hwpt.id);
}

/**
 * iommufd_device_do_replace(): the group moves from its HWPT to `hwpt` on
 * `pasid` without passing through blocking. EINVAL unless this device is
 * attached there. Returns the old HWPT (the caller drops one user on it),
 * or null when `hwpt` is already the one attached.
 */
function doReplace(idev: IommufdDevice, pasid: number, hwpt: IommufdHwPagetable): IommufdHwPagetable | null {
  const igroup = idev.igroup;
  const attach = igroup.attaches.get(pasid);
  if (!attach) throw new SimError('INVALID_ARGUMENT', `${idev.dev.name} has nothing attached to replace${pasid ? ` on PASID ${pasid}` : ''}`);
  const old = attach.hwpt;
  if (!attach.devices.has(idev.id)) throw new SimError('INVALID_ARGUMENT', `${idev.dev.name} itself is not attached`);
  if (hwpt === old) return null;

  const paging = findHwptPaging(hwpt);
  const oldPaging = findHwptPaging(old);
  const attachResv = pasid === IOMMU_NO_PASID;
  const ioasChanges = paging.ioas !== oldPaging.ioas;
  if (attachResv && ioasChanges) {
    try {
      for (const dev of attach.devices.values()) enforceResvRegions(paging.ioas.iopt, dev);
    } catch (error) {
      removeGroupReserved(attach, paging);
      throw error;
    }
  }
  try {
    checkPasidCompat(hwpt, idev, pasid);
    const core = idev.ictx.iommufd.iommuCore;
    if (pasid === IOMMU_NO_PASID) core.replaceGroupDomain(igroup.groupId, hwpt.hwDomain);
    else core.replaceDevicePasid(idev.dev, pasid, hwpt.hwDomain);
  } catch (error) {
    // The kernel's unwind drops the group's reservations in the new IOAS
    // even when it is the IOAS the group stays in.
    if (attachResv) removeGroupReserved(attach, paging);
    throw error;
  }
  if (attachResv && ioasChanges) removeGroupReserved(attach, oldPaging);
  attach.hwpt = hwpt;
  const devices = attach.devices.size;
  hwpt.users += devices;
  old.users -= devices - 1;
  return old;
}

type AttachFn = (idev: IommufdDevice, pasid: number, hwpt: IommufdHwPagetable) => IommufdHwPagetable | null;

function doAttach(idev: IommufdDevice, pasid: number, hwpt: IommufdHwPagetable): null {
  hwPagetableAttach(hwpt, idev, pasid);
  return null;
}

/**
 * iommufd_device_auto_get_domain(): attach to an IOAS. The automatic
 * domains of the IOAS are tried in order (EINVAL means incompatible, try
 * the next; other errors are final); if none fits, a new automatic domain
 * is allocated and, for attach, attached before it is filled.
 */
function autoGetDomain(idev: IommufdDevice, pasid: number, ioas: IommufdIoas, fn: AttachFn): { ptId: number; old: IommufdHwPagetable | null } {
  for (const hwpt of [...ioas.hwptList]) {
    if (!hwpt.autoDomain) continue;
    try {
      return { ptId: hwpt.id, old: fn(idev, pasid, hwpt) };
    } catch (error) {
      if (error instanceof SimError && error.errnoName === 'EINVAL') continue;
      throw error;
    }
  }
  const immediate = fn === doAttach;
  const hwpt = hwptPagingAlloc(idev.ictx, ioas, idev, pasid, 0, immediate, null);
  let old: IommufdHwPagetable | null = null;
  if (!immediate) {
    try {
      old = fn(idev, pasid, hwpt);
    } catch (error) {
      idev.ictx.objects.abortAndDestroy(hwpt);
      throw error;
    }
  }
  hwpt.autoDomain = true;
  idev.ictx.objects.finalize(hwpt);
  return { ptId: hwpt.id, old };
}

/** iommufd_device_change_pt(): the body attach and replace share. Returns the pt_id actually attached. */
function changePt(idev: IommufdDevice, pasid: number, ptId: number, fn: AttachFn): number {
  const pt = idev.ictx.objects.get(ptId);
  let result: { ptId: number; old: IommufdHwPagetable | null };
  switch (pt.type) {
    case 'hwpt_paging':
    case 'hwpt_nested':
      result = { ptId, old: fn(idev, pasid, pt as IommufdHwPagetable) };
      break;
    case 'ioas':
      result = autoGetDomain(idev, pasid, pt as IommufdIoas, fn);
      break;
    default:
      throw new SimError('INVALID_ARGUMENT', `object ${ptId} is a ${pt.type}, not an IOAS or a HWPT`);
  }
  if (result.old) hwPagetablePut(idev.ictx, result.old);
  return result.ptId;
}

/** iommufd_device_attach(): the attachment holds a user on the device until detach. */
export function deviceAttach(idev: IommufdDevice, pasid: number, ptId: number): number {
  const attached = changePt(idev, pasid, ptId, doAttach);
  idev.users++;
  return attached;
}

/** iommufd_device_replace(): a failure leaves the old attachment untouched. */
export function deviceReplace(idev: IommufdDevice, pasid: number, ptId: number): number {
  return changePt(idev, pasid, ptId, doReplace);
}

/** iommufd_device_detach(): back to blocking DMA; an automatic domain left unused goes away. */
export function deviceDetach(idev: IommufdDevice, pasid: number): void {
  const hwpt = hwPagetableDetach(idev, pasid);
  if (!hwpt) throw new Error(`iommufd: detach of ${idev.dev.name}, which is not attached`);
  hwPagetablePut(idev.ictx, hwpt);
  idev.users--;
}

// ------------------------------------------------------------ IOMMU_GET_HW_INFO

/**
 * IOMMU_GET_HW_INFO: the driver's info struct, cut to the user's data_len
 * (data_len comes back as the driver's full length, a larger user buffer
 * has its tail zeroed), the info type, the PASID width and capabilities.
 * Without IOMMU_HW_INFO_FLAG_INPUT_TYPE the driver picks its type; with it
 * a type the driver does not report is EOPNOTSUPP.
 */
export function getHwInfo(u: IommufdUcmd, cmd: iommu_hw_info, call: StructIoctlCall): number {
  rejectUnknownFlags(cmd.flags, IOMMU_HW_INFO_FLAG_INPUT_TYPE, 'IOMMU_GET_HW_INFO flags', 'UNSUPPORTED_FLAGS');
  if (cmd.__reserved.some((byte) => byte !== 0)) throw new SimError('RESERVED_NONZERO', 'IOMMU_GET_HW_INFO __reserved is not zero');
  if (!(cmd.flags & IOMMU_HW_INFO_FLAG_INPUT_TYPE)) cmd.in_data_type = IOMMU_HW_INFO_TYPE_DEFAULT;
  const idev = u.ictx.objects.get<IommufdDevice>(cmd.dev_id, 'device');

  let data: Uint8Array = new Uint8Array(0);
  if (idev.driver.hwInfo) {
    const info = idev.driver.hwInfo(idev.dev, cmd.in_data_type);
    // A driver with a hw_info op must name its own type; the kernel WARNs and answers ENODEV otherwise.
    if (info.type === IOMMU_HW_INFO_TYPE_NONE) throw new SimError('NO_DEVICE', `${idev.driver.name} reported no hw_info type`);
    cmd.out_data_type = info.type;
    data = info.data;
  } else {
    cmd.out_data_type = IOMMU_HW_INFO_TYPE_NONE;
  }
  const copyLen = Math.min(cmd.data_len, data.length);
  call.mem.copyToUser(cmd.data_uptr, data.subarray(0, copyLen));
  if (copyLen < cmd.data_len) call.mem.copyToUser(cmd.data_uptr + BigInt(copyLen), new Uint8Array(cmd.data_len - copyLen));
  cmd.data_len = data.length;
  cmd.out_capabilities = idev.driver.capable(idev.dev, 'dirtyTracking') ? BigInt(IOMMU_HW_CAP_DIRTY_TRACKING) : 0n;
  cmd.out_max_pasid_log2 = idev.dev.maxPasidLog2;
  respondIommufd(call.mem, call.argp, iommu_hw_info, cmd, call.userSize);
  return 0;
}

// ------------------------------------------------------------ bind / unbind

/**
 * iommufd_device_bind(): iommufd always maps with IOMMU_CACHE, so a device
 * whose IOMMU cannot keep DMA coherent is refused (EINVAL), which also
 * refuses a device with no IOMMU; then DMA ownership of the device's group
 * is claimed for this context (EPERM if someone else owns it).
 */
export function deviceBind(ictx: IommufdCtx, dev: IommuClientDevice, groupId: number): IommufdDevice {
  const core = ictx.iommufd.iommuCore;
  const driver = core.driverFor(dev);
  const iommu = core.iommuFor(dev);
  if (!driver || !iommu || !driver.capable(dev, 'cacheCoherency')) {
    throw new SimError('INVALID_ARGUMENT', `the IOMMU of ${dev.name} cannot enforce cache-coherent DMA`);
  }
  if (core.groupIdOf(dev) !== groupId) throw new SimError('NO_DEVICE', `${dev.name} is not in IOMMU group ${groupId}`);
  const igroup = ictx.getGroup(groupId);
  try {
    core.deviceClaimDmaOwner(dev, ictx);
  } catch (error) {
    ictx.putGroup(igroup);
    throw error;
  }
  const idev = ictx.objects.alloc(new IommufdDevice(ictx, dev, igroup, driver, iommu));
  ictx.file.get();
  idev.users++;
  ictx.objects.finalize(idev);
  return idev;
}

/**
 * iommufd_device_unbind(): the binding driver lets go. A vDEVICE still
 * naming the device is destroyed first and its id tombstoned, so a stale
 * id cannot reach a new object; the device must already be detached.
 */
export function deviceUnbind(idev: IommufdDevice): void {
  idev.destroying = true;
  if (idev.vdev) idev.ictx.objects.tombstone(idev.vdev);
  idev.ictx.objects.destroyUser(idev);
}
