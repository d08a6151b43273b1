import { SimError } from '../errors/index.js';
import { OpenFile, type FileOperations, type Process } from '../os/index.js';
import {
  VFIO_GROUP_FLAGS_CONTAINER_SET,
  VFIO_GROUP_FLAGS_VIABLE,
  ioctlMinSizes,
  ioctlTable,
  s32,
  vfio_group_status,
  writeBack,
} from '../uapi/index.js';
import { containerFromFile, type VfioContainer } from './container.js';
import { openGroupDeviceFile } from './device-file.js';
import type { IommuGroupHandle } from './iommu-group-kapi.js';
import type { VfioCore } from './vfio-core.js';
import type { VfioDevice } from './vfio-device.js';
import type { IommufdCtxHandle } from './vfio-device-ops.js';
import type { VfioGroupType } from './vfio-iommu-driver.js';

/** strndup_user's bound for the VFIO_GROUP_GET_DEVICE_FD name: one page, NUL included. */
const DEVICE_NAME_MAX = 4096;

/**
 * struct vfio_group: the devices vfio drivers registered in one IOMMU group,
 * and the /dev/vfio/<id> (or noiommu-<id>) file that hands them out. One
 * process at a time has the group open; it attaches the group to a
 * container (or an iommufd for compatibility), then takes device fds by
 * name.
 */
export class VfioGroup {
  /** Devices by registration, newest first (the kernel's list_add). */
  readonly devices: VfioDevice[] = [];
  /** Registered devices keeping the group (group->drivers); the group is removed when it drops to 0. */
  drivers = 1;
  /** The IOMMU group; null once the last device is gone and the group is only a stale open file. */
  iommuGroup: IommuGroupHandle | null;
  container: VfioContainer | null = null;
  /** 1 for the attachment itself plus 1 per device opened through the container. */
  containerUsers = 0;
  /** The iommufd context set with VFIO_GROUP_SET_CONTAINER for compatibility, with a reference. */
  iommufd: IommufdCtxHandle | null = null;
  /** The one open file of the group (group->opened_file). */
  openedFile: OpenFile | null = null;
  /** Device cdev files bound to iommufd: the group file cannot be opened meanwhile. */
  cdevDeviceOpenCount = 0;

  /** The IOMMU group id, kept for the name after the group lost its IOMMU group. */
  readonly id: number;

  constructor(
    readonly core: VfioCore,
    iommuGroup: IommuGroupHandle,
    readonly type: VfioGroupType,
  ) {
    this.iommuGroup = iommuGroup;
    this.id = iommuGroup.id;
  }

  /** "<id>", or "noiommu-<id>" for a no-IOMMU group: the name under /dev/vfio. */
  get name(): string {
    return this.type === 'noiommu' ? `noiommu-${this.id}` : `${this.id}`;
  }

  get devPath(): string {
    return `/dev/vfio/${this.name}`;
  }

  /** vfio_group_has_iommu: a container or an iommufd is set. */
  get hasIommu(): boolean {
    return this.container !== null || this.iommufd !== null;
  }

  /** vfio_group_fops_open. */
  open(proc: Process, flags: number): OpenFile {
    if (this.type === 'noiommu' && !this.core.capableRawio(proc)) {
      throw new SimError('NOT_PERMITTED', `vfio group ${this.name}: no-IOMMU groups need CAP_SYS_RAWIO`);
    }
    if (this.cdevDeviceOpenCount !== 0) {
      throw new SimError('BUSY', `vfio group ${this.name}: a device of the group is bound to iommufd through its cdev`);
    }
    if (this.openedFile) throw new SimError('BUSY', `vfio group ${this.name} is already open`);
    const file = new OpenFile(groupFileOps, flags, this);
    this.openedFile = file;
    return file;
  }

  /** vfio_device_block_group: a cdev bind keeps the group file closed; EBUSY while it is open. */
  blockForCdev(): void {
    if (this.openedFile) throw new SimError('BUSY', `vfio group ${this.name} is open; its devices cannot be bound through their cdev`);
    this.cdevDeviceOpenCount++;
  }

  unblockForCdev(): void {
    this.cdevDeviceOpenCount--;
  }

  /** Drops the container or iommufd the group uses (group release and UNSET_CONTAINER share it). */
  detachIommu(): void {
    if (this.container) this.container.detachGroup(this);
    if (this.iommufd) {
      this.core.iommufd.ctxPut(this.iommufd);
      this.iommufd = null;
    }
  }
}

/** vfio_group_from_file: the group behind a /dev/vfio/<group> file, or null. */
export function groupFromFile(file: OpenFile): VfioGroup | null {
  return file.ops === groupFileOps ? (file.privateData as VfioGroup) : null;
}

function groupOf(file: OpenFile): VfioGroup {
  return file.privateData as VfioGroup;
}

interface GroupCall {
  readonly group: VfioGroup;
  readonly proc: Process;
}

const STATUS_MINSZ = ioctlMinSizes.vfio.VFIO_GROUP_GET_STATUS.min_size;

const groupIoctls = ioctlTable<GroupCall>('vfio group')
  .vfio('VFIO_GROUP_GET_STATUS', vfio_group_status, STATUS_MINSZ, ({ group, proc }, status, call) => {
    if (!group.iommuGroup) throw new SimError('NO_SUCH_DEVICE', `vfio group ${group.name} has no devices left`);
    let flags = 0;
    // The container path claims the group at SET_CONTAINER; iommufd claims
    // each device at GET_DEVICE_FD, so a group with an iommufd can read
    // VIABLE here and still fail there.
    if (group.hasIommu) flags = VFIO_GROUP_FLAGS_CONTAINER_SET | VFIO_GROUP_FLAGS_VIABLE;
    else if (!group.core.groupDmaOwnerClaimed(group)) flags = VFIO_GROUP_FLAGS_VIABLE;
    writeBack(proc.mm, call.argp, vfio_group_status, { ...status, flags }, STATUS_MINSZ);
    return 0;
  })
  .raw('VFIO_GROUP_SET_CONTAINER', ({ group, proc }, call) => {
    const fd = s32.read(proc.mm.copyFromUser(call.argp, 4), 0);
    const file = proc.fdget(fd);
    if (group.hasIommu) throw new SimError('INVALID_ARGUMENT', `vfio group ${group.name} already has a container`);
    if (!group.iommuGroup) throw new SimError('NO_SUCH_DEVICE', `vfio group ${group.name} has no devices left`);
    const container = containerFromFile(file);
    if (container) {
      container.attachGroup(group, proc);
      return 0;
    }
    const ictx = group.core.iommufd.ctxFromFile(file);
    if (ictx) {
      if (group.type === 'noiommu') group.core.iommufd.vfioCompatSetNoIommu(ictx);
      else group.core.iommufd.vfioCompatIoasCreate(ictx);
      group.core.iommufd.ctxGet(ictx);
      group.iommufd = ictx;
      return 0;
    }
    throw new SimError('FILE_NOT_RECOGNIZED', `fd ${fd} is neither a vfio container nor an iommufd`);
  })
  .raw('VFIO_GROUP_UNSET_CONTAINER', ({ group }) => {
    if (!group.hasIommu) throw new SimError('INVALID_ARGUMENT', `vfio group ${group.name} has no container`);
    if (group.container && group.containerUsers !== 1) {
      throw new SimError('BUSY', `vfio group ${group.name}: devices opened through the container are still open`);
    }
    group.detachIommu();
    return 0;
  })
  .raw('VFIO_GROUP_GET_DEVICE_FD', ({ group, proc }, call) => {
    const name = readUserString(proc, call.argp, DEVICE_NAME_MAX);
    const device = group.core.groupDeviceByName(group, name);
    let fd: number;
    try {
      fd = proc.files.reserve(true);
    } catch (error) {
      group.core.putRegistration(device);
      throw error;
    }
    let file: OpenFile;
    try {
      file = openGroupDeviceFile(device, group, proc);
    } catch (error) {
      proc.files.unreserve(fd);
      group.core.putRegistration(device);
      throw error;
    }
    proc.files.install(fd, file);
    return fd;
  });

/**
 * strndup_user(arg, PAGE_SIZE): the NUL-terminated string at `addr`; EFAULT
 * if a byte before the NUL is unreadable, EINVAL if no NUL comes within
 * `max` bytes.
 */
function readUserString(proc: Process, addr: bigint, max: number): string {
  const bytes: number[] = [];
  for (let i = 0; i < max; i++) {
    const byte = proc.mm.copyFromUser(addr + BigInt(i), 1)[0]!;
    if (byte === 0) return new TextDecoder('latin1').decode(Uint8Array.from(bytes));
    bytes.push(byte);
  }
  throw new SimError('INVALID_ARGUMENT', `device name at 0x${addr.toString(16)} is not terminated within ${max} bytes`);
}

/** The file operations of /dev/vfio/<group> (vfio_group_fops). */
export const groupFileOps: FileOperations = Object.freeze({
  kind: 'vfio-group',
  ioctl(file: OpenFile, proc: Process, request: number, argp: bigint): number {
    return groupIoctls.ioctl({ group: groupOf(file), proc }, proc.mm, request, argp);
  },
  release(file: OpenFile): void {
    const group = groupOf(file);
    group.detachIommu();
    group.openedFile = null;
  },
});
