import type { OpenFile } from '../os/index.js';
import { deviceFileFromFile } from './device-file.js';
import { groupFromFile } from './group.js';
import type { VfioDevice } from './vfio-device.js';

/*
 * What other subsystems may ask of a file userspace hands them as "a vfio
 * file" (include/linux/vfio.h): KVM's device attributes and vfio-pci's hot
 * reset, which takes group fds as proof of ownership.
 */

/** vfio_file_is_valid: a vfio group file or a vfio device file. */
export function vfioFileIsValid(file: OpenFile): boolean {
  return groupFromFile(file) !== null || deviceFileFromFile(file) !== null;
}

/** vfio_file_is_group. */
export function vfioFileIsGroup(file: OpenFile): boolean {
  return groupFromFile(file) !== null;
}

/** vfio_file_has_dev: `file` is the group file of the group `vdev` is in. */
export function vfioFileHasDev(file: OpenFile, vdev: VfioDevice): boolean {
  const group = groupFromFile(file);
  return group !== null && group === vdev.group;
}
