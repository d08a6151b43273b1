import { SimError } from '../../errors/index.js';
import {
  iommu_hwpt_alloc,
  iommu_hwpt_get_dirty_bitmap,
  iommu_hwpt_invalidate,
  type iommu_hwpt_set_dirty_tracking,
  IOMMU_HWPT_ALLOC_DIRTY_TRACKING,
  IOMMU_HWPT_ALLOC_NEST_PARENT,
  IOMMU_HWPT_ALLOC_PASID,
  IOMMU_HWPT_DATA_NONE,
  IOMMU_HWPT_DIRTY_TRACKING_ENABLE,
  IOMMU_HWPT_FAULT_ID_VALID,
  IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR,
  rejectUnknownFlags,
  respondIommufd,
  type StructIoctlCall,
  type UserMemory,
} from '../../uapi/index.js';
import { runUserInvalidation } from '../invalidation-hooks.js';
import type { IommuDomain, IommuIotlbGather, IommuUserData, IommuUserDataArray } from '../iommu-driver.js';
import { hwPagetableAttach, hwPagetableDetach, type IommufdDevice } from './device.js';
import { widen } from './io-pagetable.js';
import type { IommufdIoas } from './ioas.js';
import type { IommufdCtx, IommufdUcmd } from './iommufd-ctx.js';
import { lowestBit, u64, ULONG_MAX } from './limits.js';
import { IommufdObject } from './object.js';
import type { IommufdViommu } from './viommu.js';

/**
 * struct iommufd_hw_pagetable: a user-visible iommu_domain. `pasidCompat`
 * records IOMMU_HWPT_ALLOC_PASID: only such HWPTs may be attached to a
 * PASID, or be the RID domain of a device that has PASIDs attached.
 */
export abstract class IommufdHwPagetable extends IommufdObject {
  abstract override readonly type: 'hwpt_paging' | 'hwpt_nested';
  domain: IommuDomain | null = null;
  constructor(readonly pasidCompat: boolean) {
    super();
  }

  /** The domain once allocation succeeded; every finalized HWPT has one. */
  get hwDomain(): IommuDomain {
    if (!this.domain) throw new Error(`iommufd: HWPT ${this.id} has no domain`);
    return this.domain;
  }
}

/**
 * struct iommufd_hwpt_paging: a domain whose mappings iommufd keeps equal
 * to its IOAS. An automatic one (auto_domain) was made by attaching a
 * device to the IOAS and goes away with the last device detached.
 */
export class HwptPaging extends IommufdHwPagetable {
  readonly type = 'hwpt_paging' as const;
  autoDomain = false;
  enforceCacheCoherency = false;
  /** In ioas.hwptList and filled into the IOAS's io_pagetable. */
  inIoas = false;

  constructor(
    readonly ioas: IommufdIoas,
    readonly nestParent: boolean,
    pasidCompat: boolean,
  ) {
    super(pasidCompat);
    ioas.users++;
  }

  destroy(): void {
    if (this.inIoas) {
      this.ioas.hwptList.splice(this.ioas.hwptList.indexOf(this), 1);
      this.ioas.iopt.removeDomain(this.hwDomain);
      this.inIoas = false;
    }
    this.domain?.free();
    this.ioas.users--;
  }
}

/**
 * struct iommufd_hwpt_nested: a stage-1 domain over a nesting parent,
 * created either on a NEST_PARENT paging HWPT or through a vIOMMU (whose
 * paging HWPT is then the parent).
 */
export class HwptNested extends IommufdHwPagetable {
  readonly type = 'hwpt_nested' as const;

  constructor(
    readonly parent: HwptPaging,
    readonly viommu: IommufdViommu | null,
    pasidCompat: boolean,
  ) {
    super(pasidCompat);
    if (viommu) viommu.users++;
    else parent.users++;
  }

  destroy(): void {
    this.domain?.free();
    if (this.viommu) this.viommu.users--;
    else this.parent.users--;
  }
}

/** find_hwpt_paging(): the paging HWPT whose IOAS decides what a device attached to `hwpt` can reach. */
export function findHwptPaging(hwpt: IommufdHwPagetable): HwptPaging {
  return hwpt instanceof HwptPaging ? hwpt : (hwpt as HwptNested).parent;
}

/**
 * iommufd_hwpt_paging_alloc(): a paging domain from the device's driver,
 * filled with the IOAS's mappings. With `immediateAttach` (automatic
 * domains) the device is attached before the domain is filled, as the
 * kernel does for drivers that finish a domain only at attach. The object
 * comes back allocated but not finalized.
 */
export function hwptPagingAlloc(
  ictx: IommufdCtx,
  ioas: IommufdIoas,
  idev: IommufdDevice,
  pasid: number,
  flags: number,
  immediateAttach: boolean,
  userData: IommuUserData | null,
): HwptPaging {
  const valid = IOMMU_HWPT_ALLOC_NEST_PARENT | IOMMU_HWPT_ALLOC_DIRTY_TRACKING | IOMMU_HWPT_FAULT_ID_VALID | IOMMU_HWPT_ALLOC_PASID;
  rejectUnknownFlags(flags, valid, 'IOMMU_HWPT_ALLOC flags for a paging HWPT', 'UNSUPPORTED_FLAGS');
  if ((flags & IOMMU_HWPT_ALLOC_DIRTY_TRACKING) && !idev.driver.capable(idev.dev, 'dirtyTracking')) {
    throw new SimError('NOT_SUPPORTED', `the IOMMU of ${idev.dev.name} cannot track dirty pages`);
  }
  if ((flags & IOMMU_HWPT_FAULT_ID_VALID) && (flags & IOMMU_HWPT_ALLOC_NEST_PARENT)) {
    throw new SimError('NOT_SUPPORTED', 'a nesting parent cannot take I/O page faults');
  }

  const hwpt = ictx.objects.alloc(new HwptPaging(ioas, (flags & IOMMU_HWPT_ALLOC_NEST_PARENT) !== 0, (flags & IOMMU_HWPT_ALLOC_PASID) !== 0));
  let attached = false;
  try {
    hwpt.domain = idev.driver.domainAllocPaging(idev.dev, flags & ~IOMMU_HWPT_FAULT_ID_VALID, userData);
    hwpt.enforceCacheCoherency = hwpt.domain.enforceCacheCoherency?.() ?? false;
    if (immediateAttach) {
      hwPagetableAttach(hwpt, idev, pasid);
      attached = true;
    }
    ioas.iopt.addDomain(hwpt.domain);
  } catch (error) {
    if (attached) hwPagetableDetach(idev, pasid);
    ictx.objects.abortAndDestroy(hwpt);
    throw error;
  }
  ioas.hwptList.push(hwpt);
  hwpt.inIoas = true;
  return hwpt;
}

/** iommufd_hwpt_nested_alloc(): over a NEST_PARENT paging HWPT of the same driver. */
function hwptNestedAlloc(ictx: IommufdCtx, parent: HwptPaging, idev: IommufdDevice, flags: number, userData: IommuUserData): HwptNested {
  if ((flags & ~(IOMMU_HWPT_FAULT_ID_VALID | IOMMU_HWPT_ALLOC_PASID)) || userData.len === 0 || !idev.driver.domainAllocNested) {
    throw new SimError('NOT_SUPPORTED', 'a nested HWPT needs driver data, a driver that nests and no flags but FAULT_ID_VALID and PASID');
  }
  if (parent.autoDomain || !parent.nestParent || parent.hwDomain.driver !== idev.driver) {
    throw new SimError('INVALID_ARGUMENT', `HWPT ${parent.id} cannot be a nesting parent for ${idev.dev.name}`);
  }
  const hwpt = ictx.objects.alloc(new HwptNested(parent, null, (flags & IOMMU_HWPT_ALLOC_PASID) !== 0));
  try {
    hwpt.domain = idev.driver.domainAllocNested(idev.dev, parent.hwDomain, flags & ~IOMMU_HWPT_FAULT_ID_VALID, userData);
    if (hwpt.domain.kind !== 'nested') throw new SimError('NOT_SUPPORTED', 'the driver returned a domain that is not nested');
  } catch (error) {
    ictx.objects.abortAndDestroy(hwpt);
    throw error;
  }
  return hwpt;
}

/** iommufd_viommu_alloc_hwpt_nested(): through the vIOMMU's driver op, over its nesting parent. */
function viommuAllocHwptNested(ictx: IommufdCtx, viommu: IommufdViommu, idev: IommufdDevice, flags: number, userData: IommuUserData): HwptNested {
  if (flags & ~(IOMMU_HWPT_FAULT_ID_VALID | IOMMU_HWPT_ALLOC_PASID)) {
    throw new SimError('UNSUPPORTED_FLAGS', `IOMMU_HWPT_ALLOC flags 0x${flags.toString(16)} are not supported for a vIOMMU`);
  }
  if (userData.len === 0) throw new SimError('NOT_SUPPORTED', 'a nested HWPT needs driver data');
  const ops = viommu.driverViommu;
  const alloc = ops.allocDomainNested?.bind(ops);
  if (!alloc) throw new SimError('NOT_SUPPORTED', 'the vIOMMU cannot allocate nested domains');
  const hwpt = ictx.objects.alloc(new HwptNested(viommu.hwpt, viommu, (flags & IOMMU_HWPT_ALLOC_PASID) !== 0));
  try {
    hwpt.domain = alloc(idev.dev, flags & ~IOMMU_HWPT_FAULT_ID_VALID, userData);
    if (hwpt.domain.kind !== 'nested') throw new SimError('NOT_SUPPORTED', 'the driver returned a domain that is not nested');
  } catch (error) {
    ictx.objects.abortAndDestroy(hwpt);
    throw error;
  }
  return hwpt;
}

function userData(mem: UserMemory, type: number, uptr: bigint, len: number): IommuUserData {
  return { type, mem, uptr, len };
}

/**
 * IOMMU_HWPT_ALLOC. pt_id chooses what is made: an IOAS gives a paging
 * HWPT, a paging HWPT a nested one over it, a vIOMMU a nested one through
 * it; any other id, or none, is EINVAL. The model has no fault queues, so
 * FAULT_ID_VALID always finds no fault object (ENOENT).
 */
export function hwptAlloc(u: IommufdUcmd, cmd: iommu_hwpt_alloc, call: StructIoctlCall): number {
  if (cmd.__reserved) throw new SimError('RESERVED_NONZERO', 'IOMMU_HWPT_ALLOC __reserved is not zero');
  if ((cmd.data_type === IOMMU_HWPT_DATA_NONE) !== (cmd.data_len === 0)) {
    throw new SimError('INVALID_ARGUMENT', `data_type ${cmd.data_type} and data_len ${cmd.data_len} disagree`);
  }
  const { objects } = u.ictx;
  const idev = objects.get<IommufdDevice>(cmd.dev_id, 'device');
  const pt = objects.find(cmd.pt_id);
  if (!pt) throw new SimError('INVALID_ARGUMENT', `pt_id ${cmd.pt_id} names no object`);
  const data = userData(call.mem, cmd.data_type, cmd.data_uptr, cmd.data_len);

  let hwpt: IommufdHwPagetable;
  switch (pt.type) {
    case 'ioas':
      hwpt = hwptPagingAlloc(u.ictx, pt as IommufdIoas, idev, 0, cmd.flags, false, cmd.data_len ? data : null);
      break;
    case 'hwpt_paging':
      hwpt = hwptNestedAlloc(u.ictx, pt as HwptPaging, idev, cmd.flags, data);
      break;
    case 'viommu': {
      const viommu = pt as IommufdViommu;
      if (viommu.iommu !== idev.iommu) throw new SimError('INVALID_ARGUMENT', `vIOMMU ${viommu.id} is not on the IOMMU of ${idev.dev.name}`);
      hwpt = viommuAllocHwptNested(u.ictx, viommu, idev, cmd.flags, data);
      break;
    }
    default:
      throw new SimError('INVALID_ARGUMENT', `pt_id ${cmd.pt_id} is a ${pt.type}, not an IOAS, paging HWPT or vIOMMU`);
  }

  try {
    if (cmd.flags & IOMMU_HWPT_FAULT_ID_VALID) {
      throw new SimError('NOT_FOUND', `no fault object with id ${cmd.fault_id}`);
    }
    cmd.out_hwpt_id = hwpt.id;
    respondIommufd(call.mem, call.argp, iommu_hwpt_alloc, cmd, call.userSize);
  } catch (error) {
    objects.abortAndDestroy(hwpt);
    throw error;
  }
  objects.finalize(hwpt);
  return 0;
}

/** IOMMU_HWPT_SET_DIRTY_TRACKING: on a paging HWPT allocated with IOMMU_HWPT_ALLOC_DIRTY_TRACKING. */
export function hwptSetDirtyTracking(u: IommufdUcmd, cmd: iommu_hwpt_set_dirty_tracking): number {
  rejectUnknownFlags(cmd.flags, IOMMU_HWPT_DIRTY_TRACKING_ENABLE, 'IOMMU_HWPT_SET_DIRTY_TRACKING flags', 'UNSUPPORTED_FLAGS');
  const hwpt = u.ictx.objects.get<HwptPaging>(cmd.hwpt_id, 'hwpt_paging');
  hwpt.ioas.iopt.setDirtyTracking(hwpt.hwDomain, (cmd.flags & IOMMU_HWPT_DIRTY_TRACKING_ENABLE) !== 0);
  return 0;
}

/** iommufd_check_iova_range(): the bitmap's range against the IOAS alignment and the bitmap page size. */
function checkDirtyRange(alignment: bigint, cmd: iommu_hwpt_get_dirty_bitmap): bigint {
  const last = cmd.iova + u64(cmd.length - 1n);
  if (last > ULONG_MAX) throw new SimError('OVERFLOW', 'iova + length wraps');
  const end = u64(last + 1n);
  if ((cmd.iova & (alignment - 1n)) || (end & (alignment - 1n))) {
    throw new SimError('INVALID_ARGUMENT', `range is not aligned to the IOAS alignment ${alignment}`);
  }
  if (cmd.page_size === 0n) throw new SimError('INVALID_ARGUMENT', 'page_size is zero');
  const mask = u64(cmd.page_size - 1n);
  if ((cmd.iova & mask) || (end & mask)) throw new SimError('INVALID_ARGUMENT', `range is not aligned to page_size ${cmd.page_size}`);
  return last;
}

/**
 * IOMMU_HWPT_GET_DIRTY_BITMAP: ORs one bit per dirty page_size page into
 * the user's bitmap and, unless NO_CLEAR, clears the dirty bits. As in the
 * kernel, the walk stops silently at the first unmapped IOVA, and a bitmap
 * the kernel cannot pin for writing makes the call a successful no-op:
 * iommu_read_and_clear_dirty() ignores what iova_bitmap_for_each() returns.
 */
export function hwptGetDirtyBitmap(u: IommufdUcmd, cmd: iommu_hwpt_get_dirty_bitmap, call: StructIoctlCall): number {
  if ((cmd.flags & ~IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR) || cmd.__reserved) {
    throw new SimError('UNSUPPORTED_FLAGS', 'IOMMU_HWPT_GET_DIRTY_BITMAP flags or __reserved not supported');
  }
  const hwpt = u.ictx.objects.get<HwptPaging>(cmd.hwpt_id, 'hwpt_paging');
  const { iopt } = hwpt.ioas;
  const last = checkDirtyRange(iopt.iovaAlignment, cmd);
  const ops = hwpt.hwDomain.dirtyOps;
  if (!ops) throw new SimError('NOT_SUPPORTED', 'the HWPT was not allocated with dirty tracking');

  const shift = BigInt(lowestBit(cmd.page_size).toString(2).length - 1);
  const nbits = ((last - cmd.iova) >> shift) + 1n;
  const bytes = Number(((nbits + 63n) / 64n) * 8n);
  let bitmap: Uint8Array;
  try {
    bitmap = call.mem.copyFromUser(cmd.data, bytes);
    call.mem.copyToUser(cmd.data, bitmap);
  } catch {
    return 0;
  }

  const noClear = (cmd.flags & IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR) !== 0;
  const gather: IommuIotlbGather = { start: ULONG_MAX, end: 0n };
  const record = (iova: bigint, length: bigint): void => {
    widen(gather, iova, length);
    const from = iova < cmd.iova ? cmd.iova : iova;
    const to = iova + length - 1n > last ? last : iova + length - 1n;
    for (let bit = (from - cmd.iova) >> shift; bit <= (to - cmd.iova) >> shift; bit++) {
      bitmap[Number(bit >> 3n)]! |= 1 << Number(bit & 7n);
    }
  };
  for (const chunk of iopt.contiguousAreas(cmd.iova, last)) {
    ops.readAndClearDirty(chunk.start, chunk.last - chunk.start + 1n, noClear, record);
  }
  if (!noClear) hwpt.hwDomain.iotlbSync?.(gather);
  call.mem.copyToUser(cmd.data, bitmap);
  return 0;
}

/**
 * IOMMU_HWPT_INVALIDATE: the core checks the envelope and finds the target
 * (a nested HWPT or a vIOMMU); the driver decodes the entries, data_type
 * included. entry_num always comes back as the number of entries the
 * driver handled: 0 when the call fails before reaching the driver, the
 * driver's count when the driver fails part way, and even when the
 * write-back itself faults (EFAULT then wins over the other error).
 */
export function hwptInvalidate(u: IommufdUcmd, cmd: iommu_hwpt_invalidate, call: StructIoctlCall): number {
  const array: IommuUserDataArray = {
    type: cmd.data_type,
    mem: call.mem,
    uptr: cmd.data_uptr,
    entryLen: cmd.entry_len,
    entryNum: cmd.entry_num,
    handled: 0,
  };
  let done = 0;
  let failure: unknown = null;
  try {
    if (cmd.__reserved) throw new SimError('RESERVED_NONZERO', 'IOMMU_HWPT_INVALIDATE __reserved is not zero');
    if (cmd.entry_num && (!cmd.data_uptr || !cmd.entry_len)) {
      throw new SimError('INVALID_ARGUMENT', `${cmd.entry_num} entries need a data_uptr and an entry_len`);
    }
    const target = u.ictx.objects.get(cmd.hwpt_id);
    const hooks = u.ictx.iommufd.iommuCore.invalidationHooks;
    if (target instanceof HwptNested) {
      const domain = target.hwDomain;
      if (!domain.cacheInvalidateUser) throw new SimError('NOT_SUPPORTED', `nested HWPT ${target.id} has no cache invalidation`);
      try {
        runUserInvalidation(hooks, { kind: 'hwpt', domain }, array);
      } finally {
        done = array.handled;
      }
    } else if (target.type === 'viommu') {
      const viommu = (target as IommufdViommu).driverViommu;
      if (!viommu.cacheInvalidate) throw new SimError('NOT_SUPPORTED', `vIOMMU ${target.id} has no cache invalidation`);
      try {
        runUserInvalidation(hooks, { kind: 'viommu', viommu }, array);
      } finally {
        done = array.handled;
      }
    } else {
      throw new SimError('INVALID_ARGUMENT', `object ${cmd.hwpt_id} is a ${target.type}, not a nested HWPT or a vIOMMU`);
    }
  } catch (error) {
    failure = error;
  }
  cmd.entry_num = done;
  respondIommufd(call.mem, call.argp, iommu_hwpt_invalidate, cmd, call.userSize);
  if (failure) throw failure;
  return 0;
}
