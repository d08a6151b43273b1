import { SimError } from '../../errors/index.js';
import type { VfioGroup } from '../../vfio/group.js';
import type { VfioDevice } from '../../vfio/vfio-device.js';
import type { IommufdCtxHandle } from '../../vfio/vfio-device-ops.js';

/**
 * How the caller of VFIO_DEVICE_PCI_HOT_RESET proves it owns every device
 * the reset reaches (include/uapi/linux/vfio.h):
 *
 * - `groups`: a device opened through its group passes the group files it
 *   holds; each device of the dev_set must be in one of them, opened or not
 *   (vfio_dev_in_groups). A group file can be open in one process only, so
 *   holding it is the proof.
 * - `iommufd`: a device opened through its cdev passes an empty array; the
 *   proof is the iommufd context the calling device is bound to
 *   (vfio_iommufd_device_ictx). null when the caller has none (an emulated
 *   or no-IOMMU device), which proves nothing.
 *
 * Device fds are not a proof: the series that added the cdev path proposed
 * them and the merged kernel dropped them, so an array holding a device fd
 * fails as "not a group file".
 */
export type HotResetProof =
  | { readonly kind: 'groups'; readonly groups: readonly VfioGroup[] }
  | { readonly kind: 'iommufd'; readonly ictx: IommufdCtxHandle | null };

/**
 * How a device stands in an iommufd context (vfio_iommufd_get_dev_id):
 * its device id when bound there; `owned` when it is not bound but a device
 * of its IOMMU group is (the group is that context's, so no other owner can
 * hold the device); `not-owned` otherwise.
 */
export type DevIdStatus = number | 'owned' | 'not-owned';

export function vfioIommufdDevIdStatus(vdev: VfioDevice, ictx: IommufdCtxHandle): DevIdStatus {
  try {
    return vdev.vfio!.iommufdGlue.getDevId(vdev, ictx);
  } catch (error) {
    if (!(error instanceof SimError)) throw error;
    return error.errnoName === 'ENOENT' ? 'owned' : 'not-owned';
  }
}

/**
 * vfio_file_has_dev over the group files: the device's vfio group is one of
 * them. A device registered without the group interface is in none.
 */
function inGroups(vdev: VfioDevice, groups: readonly VfioGroup[]): boolean {
  return vdev.group !== null && groups.includes(vdev.group);
}

/** Whether `proof` covers `vdev` (the ownership test of vfio_pci_dev_set_hot_reset). */
export function hotResetOwns(vdev: VfioDevice, proof: HotResetProof): boolean {
  if (proof.kind === 'groups') return inGroups(vdev, proof.groups);
  if (!proof.ictx) return false;
  return vfioIommufdDevIdStatus(vdev, proof.ictx) !== 'not-owned';
}
