import { SimError } from '../../errors/index.js';
import {
  iommu_vdevice_alloc,
  iommu_viommu_alloc,
  type iommu_hw_queue_alloc,
  IOMMU_HW_QUEUE_TYPE_DEFAULT,
  IOMMU_VIOMMU_TYPE_DEFAULT,
  respondIommufd,
  type StructIoctlCall,
} from '../../uapi/index.js';
import type { IommuDevice, IommuViommu } from '../iommu-driver.js';
import type { IommufdDevice } from './device.js';
import type { HwptPaging } from './hw-pagetable.js';
import type { IommufdUcmd } from './iommufd-ctx.js';
import { addNoOverflow } from './limits.js';
import { IommufdObject } from './object.js';

/**
 * struct iommufd_viommu: the driver's model of one guest-visible IOMMU
 * instance, over a nesting-parent paging HWPT (whose IOAS holds guest
 * physical memory). It pins that HWPT; nested HWPTs made through it and
 * its vDEVICEs pin it.
 */
export class IommufdViommu extends IommufdObject {
  readonly type = 'viommu' as const;
  ops: IommuViommu | null = null;
  /** vDEVICEs by virtual id (iommufd_viommu::vdevs). */
  readonly vdevs = new Map<bigint, IommufdVdevice>();

  constructor(
    readonly hwpt: HwptPaging,
    readonly iommu: IommuDevice,
  ) {
    super();
    hwpt.users++;
  }

  get driverViommu(): IommuViommu {
    if (!this.ops) throw new Error(`iommufd: vIOMMU ${this.id} has no driver part`);
    return this.ops;
  }

  destroy(): void {
    this.ops?.destroy();
    this.hwpt.users--;
  }
}

/**
 * struct iommufd_vdevice: a device as the guest names it behind a vIOMMU
 * (a virtual StreamID or RID). One per device, and one per virtual id per
 * vIOMMU. Unbinding the device destroys it.
 */
export class IommufdVdevice extends IommufdObject {
  readonly type = 'vdevice' as const;
  initialized = false;

  constructor(
    readonly viommu: IommufdViommu,
    readonly idev: IommufdDevice,
    readonly virtId: bigint,
  ) {
    super();
    viommu.users++;
    idev.vdev = this;
  }

  destroy(): void {
    if (this.initialized) this.viommu.driverViommu.vdeviceDestroy?.(this.idev.dev, this.virtId);
    if (this.viommu.vdevs.get(this.virtId) === this) this.viommu.vdevs.delete(this.virtId);
    this.viommu.users--;
    this.idev.vdev = null;
  }
}

/**
 * IOMMU_VIOMMU_ALLOC: a vIOMMU of `type` from the device's driver over a
 * NEST_PARENT paging HWPT. EOPNOTSUPP for flags, for the DEFAULT type and
 * for a driver without vIOMMU support; the type itself is the driver's to
 * refuse.
 */
export function viommuAlloc(u: IommufdUcmd, cmd: iommu_viommu_alloc, call: StructIoctlCall): number {
  if (cmd.flags || cmd.type === IOMMU_VIOMMU_TYPE_DEFAULT) {
    throw new SimError('NOT_SUPPORTED', `IOMMU_VIOMMU_ALLOC flags 0x${cmd.flags.toString(16)} type ${cmd.type} not supported`);
  }
  const { objects } = u.ictx;
  const idev = objects.get<IommufdDevice>(cmd.dev_id, 'device');
  const alloc = idev.driver.viommuAlloc?.bind(idev.driver);
  if (!alloc) throw new SimError('NOT_SUPPORTED', `${idev.driver.name} has no vIOMMU`);
  const hwpt = objects.get<HwptPaging>(cmd.hwpt_id, 'hwpt_paging');
  if (!hwpt.nestParent) throw new SimError('INVALID_ARGUMENT', `HWPT ${hwpt.id} was not allocated as a nesting parent`);

  const viommu = objects.alloc(new IommufdViommu(hwpt, idev.iommu));
  try {
    const data = cmd.data_len ? { type: cmd.type, mem: call.mem, uptr: cmd.data_uptr, len: cmd.data_len } : null;
    viommu.ops = alloc(idev.dev, hwpt.hwDomain, cmd.type, data, {});
    cmd.out_viommu_id = viommu.id;
    respondIommufd(call.mem, call.argp, iommu_viommu_alloc, cmd, call.userSize);
  } catch (error) {
    objects.abortAndDestroy(viommu);
    throw error;
  }
  objects.finalize(viommu);
  return 0;
}

/**
 * IOMMU_VDEVICE_ALLOC: names `dev_id` as `virt_id` behind a vIOMMU of the
 * same IOMMU (EINVAL otherwise). EEXIST if the device already has a
 * vDEVICE or the id is taken in that vIOMMU.
 */
export function vdeviceAlloc(u: IommufdUcmd, cmd: iommu_vdevice_alloc, call: StructIoctlCall): number {
  const { objects } = u.ictx;
  const viommu = objects.get<IommufdViommu>(cmd.viommu_id, 'viommu');
  const idev = objects.get<IommufdDevice>(cmd.dev_id, 'device');
  if (viommu.iommu !== idev.iommu) throw new SimError('INVALID_ARGUMENT', `${idev.dev.name} is not behind the IOMMU of vIOMMU ${viommu.id}`);
  if (idev.destroying) throw new SimError('NOT_FOUND', `device ${idev.id} is being unbound`);
  if (idev.vdev) throw new SimError('EXISTS', `device ${idev.id} already has vDEVICE ${idev.vdev.id}`);

  const vdev = objects.alloc(new IommufdVdevice(viommu, idev, cmd.virt_id));
  try {
    if (viommu.vdevs.has(cmd.virt_id)) throw new SimError('EXISTS', `virtual id 0x${cmd.virt_id.toString(16)} is taken in vIOMMU ${viommu.id}`);
    viommu.vdevs.set(cmd.virt_id, vdev);
    viommu.driverViommu.vdeviceInit?.(idev.dev, cmd.virt_id);
    vdev.initialized = true;
    cmd.out_vdevice_id = vdev.id;
    respondIommufd(call.mem, call.argp, iommu_vdevice_alloc, cmd, call.userSize);
  } catch (error) {
    objects.abortAndDestroy(vdev);
    throw error;
  }
  objects.finalize(vdev);
  return 0;
}

/**
 * IOMMU_HW_QUEUE_ALLOC: no driver of the model exposes hardware-accelerated
 * queues (the driver contract has no get_hw_queue_size), so after the
 * kernel's argument checks and the vIOMMU lookup the answer is EOPNOTSUPP,
 * as the kernel gives for such a vIOMMU.
 */
export function hwQueueAlloc(u: IommufdUcmd, cmd: iommu_hw_queue_alloc): number {
  if (cmd.flags || cmd.type === IOMMU_HW_QUEUE_TYPE_DEFAULT) {
    throw new SimError('NOT_SUPPORTED', `IOMMU_HW_QUEUE_ALLOC flags 0x${cmd.flags.toString(16)} type ${cmd.type} not supported`);
  }
  if (cmd.length === 0n) throw new SimError('INVALID_ARGUMENT', 'IOMMU_HW_QUEUE_ALLOC of zero length');
  if (addNoOverflow(cmd.nesting_parent_iova, cmd.length - 1n) === null) throw new SimError('OVERFLOW', 'queue range wraps');
  const viommu = u.ictx.objects.get<IommufdViommu>(cmd.viommu_id, 'viommu');
  throw new SimError('NOT_SUPPORTED', `vIOMMU ${viommu.id} has no hardware queues`);
}
