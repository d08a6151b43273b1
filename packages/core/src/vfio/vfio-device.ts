import type { IommuClientDevice } from '../iommu/iommu-driver.js';
import type { WaitQueue } from '../os/index.js';
import type { DevSet } from './dev-set.js';
import type { VfioGroup } from './group.js';
import type { IommufdAccessHandle, IommufdDeviceHandle } from './iommufd-kapi.js';
import type { IommufdCtxHandle, VfioDeviceOps, VfioLogOps, VfioMigrationOps } from './vfio-device-ops.js';
import type { VfioCore } from './vfio-core.js';

/**
 * The bus device a vfio device wraps (struct device): a PCI function, an
 * auxiliary device, ... The vfio core needs only its name; which bus it is
 * on is the driver core's record. The IOMMU layers look a physical device
 * up by this same object, so a PCI function is passed as the platform's own
 * object, not a copy.
 */
export interface BusDevice {
  /** The kernel device name: a BDF for PCI ("0000:0a:00.1"), "mlx5_core.sf.1" for auxiliary. */
  readonly name: string;
}

/**
 * The device as the IOMMU core knows it: a physical function that carries
 * its requester id is its own IommuClientDevice; anything else (an
 * auxiliary device, an emulated one) has none.
 */
export function iommuClientOf(dev: BusDevice): IommuClientDevice | null {
  return 'rid' in dev && 'maxPasidLog2' in dev ? (dev as BusDevice & IommuClientDevice) : null;
}

/** Which user interfaces a registered device gets (CONFIG_VFIO_GROUP, CONFIG_VFIO_DEVICE_CDEV). */
export interface VfioInterfaces {
  /** /dev/vfio/<group>: the container path and iommufd's VFIO compatibility path. */
  readonly group: boolean;
  /** /dev/vfio/devices/vfioN: bind to iommufd directly. Never for noiommu devices. */
  readonly cdev: boolean;
}

/**
 * struct vfio_device: what the vfio core keeps for every device a vfio
 * driver registers. Bus drivers (vfio-pci-core) extend it, as
 * struct vfio_pci_core_device embeds it.
 *
 * Fields above the marker are the driver's to set before registration; the
 * rest belong to the vfio core and the iommufd glue, and drivers only read
 * them.
 */
export class VfioDevice {
  migOps: VfioMigrationOps | null = null;
  logOps: VfioLogOps | null = null;
  /** VFIO_MIGRATION_* flags the driver supports; set with migOps. */
  migrationFlags = 0;
  /** The driver may place the device in a shared dev_set (VfioCore.assignDeviceSet) before registering. */
  devSet: DevSet | null = null;

  // --- vfio core private ---
  /** The vfio core the device is registered with. */
  vfio: VfioCore | null = null;
  /** Minor number: the N of /dev/vfio/devices/vfioN; -1 until the device is initialised. */
  index = -1;
  /** Registration references: the driver's, plus one per open device file. Unregister waits for zero. */
  refcount = 0;
  /** Woken when `refcount` drops, so unregister can finish (device->comp). */
  registrationWait: WaitQueue | null = null;
  /** Device files that reached open_device (vfio_device->open_count), across group and cdev files. */
  openCount = 0;
  /** The vfio group the device is in; null for a device registered without the group interface. */
  group: VfioGroup | null = null;
  interfaces: VfioInterfaces = { group: true, cdev: true };
  /** A cdev file is bound to iommufd (device->cdev_opened); hot reset reads it. */
  cdevOpened = false;
  /** Physical devices: the iommufd device object while bound (vdev->iommufd_device). */
  iommufdDevice: IommufdDeviceHandle | null = null;
  /** Emulated devices: the iommufd access object while bound. */
  iommufdAccess: IommufdAccessHandle | null = null;
  /** The RID (no PASID) is attached to an IOAS or HWPT. */
  iommufdAttached = false;
  /** PASIDs attached through VFIO_DEVICE_ATTACH_IOMMUFD_PT (vdev->pasids). */
  readonly pasids = new Set<number>();

  constructor(
    readonly dev: BusDevice,
    readonly ops: VfioDeviceOps<any>,
  ) {}

  get name(): string {
    return this.dev.name;
  }

  /** vfio_iommufd_device_ictx: the iommufd context the device is bound to, or null. */
  get iommufdCtx(): IommufdCtxHandle | null {
    return this.iommufdDevice?.ictx ?? this.iommufdAccess?.ictx ?? null;
  }

  /** The device id iommufd gave the bound device, or 0 while unbound. */
  get iommufdDevId(): number {
    return this.iommufdDevice?.devId ?? this.iommufdAccess?.devId ?? 0;
  }
}
