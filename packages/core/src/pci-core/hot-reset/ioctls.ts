import { SimError } from '../../errors/index.js';
import type { OpenFile, Process } from '../../os/index.js';
import { hotResetScope } from '../../platform/reset-scope.js';
import {
  offsetofEnd,
  readVfioArgsz,
  s32,
  vfio_pci_dependent_device,
  vfio_pci_hot_reset,
  vfio_pci_hot_reset_info,
  writeBack,
} from '../../uapi/index.js';
import { groupFromFile, type VfioGroup } from '../../vfio/group.js';
import type { VfioPciCoreDevice } from '../vfio-pci-core-device.js';
import { vfioPciDevSetHotReset } from './dev-set-reset.js';
import { vfioPciFillDevs } from './fill-devs.js';
import type { HotResetProof } from './ownership.js';

const INFO_MINSZ = offsetofEnd(vfio_pci_hot_reset_info, 'count');
const RESET_MINSZ = offsetofEnd(vfio_pci_hot_reset, 'count');
const DEPENDENT_SIZE = vfio_pci_dependent_device.size;
const FD_SIZE = s32.size;

/**
 * VFIO_DEVICE_GET_PCI_HOT_RESET_INFO (vfio_pci_ioctl_get_pci_hot_reset_info),
 * in the kernel's order:
 *
 * 1. the header (argsz, flags, count): EFAULT if unreadable, EINVAL if
 *    argsz is below it;
 * 2. ENODEV when the function has neither a slot reset nor a bus reset;
 * 3. ENOSPC when argsz cannot hold one entry per affected function: the
 *    header goes back with that count and flags 0 (EFAULT instead if it
 *    cannot be written);
 * 4. the entries (EPERM on the group path for a function without an IOMMU
 *    group), written after the header, then the header with count and
 *    flags. The caller's argsz is left as it was.
 */
export function vfioPciIoctlGetPciHotResetInfo(vdev: VfioPciCoreDevice, proc: Process, argp: bigint): number {
  const { value: hdr } = readVfioArgsz(proc.mm, argp, vfio_pci_hot_reset_info, INFO_MINSZ);
  const scope = hotResetScope(vdev.pdev);
  if (!scope) throw new SimError('NO_DEVICE', `${vdev.name} can be reset neither by slot nor by bus`);
  const count = scope.functions.length;
  if (count > Math.floor((hdr.argsz - INFO_MINSZ) / DEPENDENT_SIZE)) {
    writeBack(proc.mm, argp, vfio_pci_hot_reset_info, { argsz: hdr.argsz, flags: 0, count }, INFO_MINSZ);
    throw new SimError('BUFFER_TOO_SMALL', `argsz ${hdr.argsz} cannot hold the ${count} devices the hot reset affects`);
  }
  const info = vfioPciFillDevs(vdev, scope.functions);
  const entries = new Uint8Array(count * DEPENDENT_SIZE);
  info.devices.forEach((device, i) => vfio_pci_dependent_device.encode(device, entries, i * DEPENDENT_SIZE));
  proc.mm.copyToUser(argp + BigInt(INFO_MINSZ), entries);
  writeBack(proc.mm, argp, vfio_pci_hot_reset_info, { argsz: hdr.argsz, flags: info.flags, count }, INFO_MINSZ);
  return 0;
}

/**
 * The group files of the array (vfio_pci_ioctl_pci_hot_reset_groups): the
 * fds are read as one block (EFAULT), then taken in order, each held for
 * the reset; the first fd that is not open is EBADF and the first file that
 * is not a vfio group (a device fd included) is EINVAL.
 */
function groupProof(proc: Process, argp: bigint, count: number, held: OpenFile[]): HotResetProof {
  const raw = proc.mm.copyFromUser(argp + BigInt(RESET_MINSZ), count * FD_SIZE);
  const groups: VfioGroup[] = [];
  for (let i = 0; i < count; i++) {
    const fd = s32.read(raw, i * FD_SIZE);
    const file = proc.fdget(fd);
    const group = groupFromFile(file);
    if (!group) throw new SimError('WRONG_FILE_TYPE', `group_fds[${i}] (fd ${fd}) is a ${file.ops.kind} file, not a vfio group`);
    held.push(file.get());
    groups.push(group);
  }
  return { kind: 'groups', groups };
}

/**
 * VFIO_DEVICE_PCI_HOT_RESET (vfio_pci_ioctl_pci_hot_reset), in the kernel's
 * order:
 *
 * 1. the header: EFAULT, then EINVAL for a short argsz or any flag;
 * 2. EINVAL when the proof does not fit how the device was opened: a
 *    group-opened device must pass group fds, a cdev-opened one an empty
 *    array;
 * 3. ENODEV without a slot or bus reset;
 * 4. group path: EINVAL for more fds than affected functions, then the fds
 *    themselves (EFAULT, EBADF, EINVAL); argsz is not checked against them;
 * 5. the dev_set reset: EINVAL if a function it reaches is not a vfio
 *    device of the set or a device of the set is not covered by the proof.
 *    A cdev caller's proof is its iommufd context; a device without one
 *    (emulated, no-IOMMU) proves nothing.
 */
export function vfioPciIoctlPciHotReset(vdev: VfioPciCoreDevice, proc: Process, argp: bigint): number {
  const { value: hdr } = readVfioArgsz(proc.mm, argp, vfio_pci_hot_reset, RESET_MINSZ);
  if (hdr.flags !== 0) throw new SimError('UNKNOWN_FLAGS', `VFIO_DEVICE_PCI_HOT_RESET: flags 0x${(hdr.flags >>> 0).toString(16)} must be 0`);
  if ((hdr.count !== 0) === vdev.cdevOpened) {
    throw new SimError(
      'INVALID_ARGUMENT',
      vdev.cdevOpened
        ? `${vdev.name} is opened through its cdev: the proof is its iommufd, the array must be empty`
        : `${vdev.name} is opened through its group: group fds must prove ownership`,
    );
  }
  const scope = hotResetScope(vdev.pdev);
  if (!scope) throw new SimError('NO_DEVICE', `${vdev.name} can be reset neither by slot nor by bus`);
  if (hdr.count === 0) {
    vfioPciDevSetHotReset(vdev.devSet!, { kind: 'iommufd', ictx: vdev.iommufdDevice?.ictx ?? null });
    return 0;
  }
  if (hdr.count > scope.functions.length) {
    throw new SimError('INVALID_ARGUMENT', `${hdr.count} group fds for a reset that affects ${scope.functions.length} devices`);
  }
  const held: OpenFile[] = [];
  try {
    vfioPciDevSetHotReset(vdev.devSet!, groupProof(proc, argp, hdr.count, held));
  } finally {
    for (const file of held.reverse()) file.put();
  }
  return 0;
}
