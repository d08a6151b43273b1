import { SimError } from '../../errors/index.js';
import type { PciFunction } from '../../platform/pci-function.js';
import {
  VFIO_PCI_DEVID_NOT_OWNED,
  VFIO_PCI_DEVID_OWNED,
  VFIO_PCI_HOT_RESET_FLAG_DEV_ID,
  VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED,
  type vfio_pci_dependent_device,
} from '../../uapi/index.js';
import type { VfioDevice } from '../../vfio/vfio-device.js';
import { vfioIommufdDevIdStatus } from './ownership.js';

/**
 * What VFIO_DEVICE_GET_PCI_HOT_RESET_INFO reports: its flags and one entry
 * per affected function. group_id and devid share storage (a union), so
 * each entry carries the one value under both names.
 */
export interface HotResetInfo {
  readonly flags: number;
  readonly devices: readonly vfio_pci_dependent_device[];
}

/** The IOMMU group of any function, as iommu_group_get(&pdev->dev) sees it; null without one. */
export function pciFunctionGroupId(vdev: VfioDevice, fn: PciFunction): number | null {
  return vdev.vfio!.iommu.groupIdOf(fn);
}

/**
 * vfio_pci_fill_devs over the functions a hot reset of `vdev` reaches, in
 * the order the walk visits them. Every entry carries segment, bus and
 * devfn; the rest depends on how the calling device was opened:
 *
 * - through its group: the IOMMU group id of each function, and EPERM as
 *   soon as one has none (a function no IOMMU isolates cannot be reset on a
 *   user's behalf);
 * - through its cdev: VFIO_PCI_HOT_RESET_FLAG_DEV_ID, and per function its
 *   device id in the caller's iommufd context, VFIO_PCI_DEVID_OWNED when
 *   only its group is the context's, VFIO_PCI_DEVID_NOT_OWNED when it is
 *   not a vfio device of the caller's dev_set or the context does not own
 *   it. VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED stays set only if no entry is
 *   NOT_OWNED: a reset with an empty array would then pass.
 */
export function vfioPciFillDevs(vdev: VfioDevice, functions: readonly PciFunction[]): HotResetInfo {
  const devIdMode = vdev.cdevOpened;
  let flags = devIdMode ? VFIO_PCI_HOT_RESET_FLAG_DEV_ID | VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED : 0;
  const devices: vfio_pci_dependent_device[] = [];
  const ictx = vdev.iommufdDevice?.ictx ?? null;
  for (const fn of functions) {
    const where = { segment: fn.bdf.domain, bus: fn.bdf.bus, devfn: (fn.bdf.device << 3) | fn.bdf.function };
    if (devIdMode) {
      const member = vdev.vfio!.findDeviceInDevSet(vdev.devSet!, fn);
      const status = member && ictx ? vfioIommufdDevIdStatus(member, ictx) : 'not-owned';
      const devid = status === 'owned' ? VFIO_PCI_DEVID_OWNED : status === 'not-owned' ? VFIO_PCI_DEVID_NOT_OWNED : status;
      if (status === 'not-owned') flags &= ~VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED;
      devices.push({ group_id: devid, devid, ...where });
    } else {
      const groupId = pciFunctionGroupId(vdev, fn);
      if (groupId === null) throw new SimError('NOT_PERMITTED', `${fn.name} is in no IOMMU group: it cannot be reset for a user`);
      devices.push({ group_id: groupId, devid: groupId, ...where });
    }
  }
  return { flags, devices };
}
