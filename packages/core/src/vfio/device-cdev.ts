import { SimError } from '../errors/index.js';
import type { Process } from '../os/index.js';
import {
  VFIO_DEVICE_ATTACH_PASID,
  VFIO_DEVICE_BIND_FLAG_TOKEN,
  VFIO_DEVICE_DETACH_PASID,
  ioctlMinSizes,
  readIommufdStruct,
  readVfioArgsz,
  readVfioExtension,
  rejectUnknownFlags,
  vfio_device_attach_iommufd_pt,
  vfio_device_bind_iommufd,
  vfio_device_detach_iommufd_pt,
  writeBackField,
} from '../uapi/index.js';
import { dfClose, dfOpen, type VfioDeviceFile } from './device-file.js';
import type { VfioCore } from './vfio-core.js';
import type { VfioDevice } from './vfio-device.js';
import type { IommufdCtxHandle } from './vfio-device-ops.js';

/*
 * The ioctls of a device cdev file (drivers/vfio/device_cdev.c): bind the
 * file to an iommufd context, then attach the device (or one of its PASIDs)
 * to an IOAS or HWPT of that context.
 */

/** Minimum sizes, from the ABI facts (offsetofend of the last field each form needs). */
const sizes = ioctlMinSizes.vfio;
const BIND_MINSZ = sizes.VFIO_DEVICE_BIND_IOMMUFD.min_size;
const ATTACH_MINSZ = sizes.VFIO_DEVICE_ATTACH_IOMMUFD_PT.min_size;
const ATTACH_PASID_END = sizes.VFIO_DEVICE_ATTACH_IOMMUFD_PT.with_flag_VFIO_DEVICE_ATTACH_PASID_min;
const DETACH_MINSZ = sizes.VFIO_DEVICE_DETACH_IOMMUFD_PT.min_size;
const DETACH_PASID_END = sizes.VFIO_DEVICE_DETACH_IOMMUFD_PT.with_flag_VFIO_DEVICE_DETACH_PASID_min;
const UUID_SIZE = 16;

function coreOf(device: VfioDevice): VfioCore {
  return device.vfio!;
}

/**
 * vfio_df_check_token: without a matchTokenUuid op the token flag is EINVAL;
 * with one, the op sees the 16-byte UUID (EFAULT if unreadable) or null.
 */
function checkToken(device: VfioDevice, proc: Process, flags: number, tokenUuidPtr: bigint): void {
  if (!device.ops.matchTokenUuid) {
    if (flags & VFIO_DEVICE_BIND_FLAG_TOKEN) {
      throw new SimError('INVALID_ARGUMENT', `${device.name} takes no VF token`);
    }
    return;
  }
  const uuid = flags & VFIO_DEVICE_BIND_FLAG_TOKEN ? proc.mm.copyFromUser(tokenUuidPtr, UUID_SIZE) : null;
  device.ops.matchTokenUuid(device, uuid);
}

/** iommufd_ctx_from_fd: EBADF for a closed fd, EBADFD for an open file that is not an iommufd. */
function ctxFromFd(core: VfioCore, proc: Process, fd: number): IommufdCtxHandle {
  const file = proc.fdget(fd);
  const ictx = core.iommufd.ctxFromFile(file);
  if (!ictx) throw new SimError('FILE_NOT_RECOGNIZED', `fd ${fd} is a ${file.ops.kind} file, not an iommufd`);
  core.iommufd.ctxGet(ictx);
  return ictx;
}

/**
 * VFIO_DEVICE_BIND_IOMMUFD (vfio_df_ioctl_bind_iommufd), checks in the
 * kernel's order: the size rule of copy_struct_from_user (EFAULT, EINVAL
 * below 16 bytes, E2BIG for non-zero bytes past the known struct), a
 * negative fd or unknown flags (EINVAL), a group-path file (EINVAL), the
 * group file being open (EBUSY), a second bind of this file (EINVAL), the
 * VF token, the iommufd fd (EBADF, EBADFD), then the device open itself
 * (EINVAL if the device is open through another file). out_devid is the
 * only field written back.
 */
export function bindIommufd(df: VfioDeviceFile, proc: Process, argp: bigint): number {
  const device = df.device;
  const core = coreOf(device);
  const { value: bind } = readIommufdStruct(proc.mm, argp, vfio_device_bind_iommufd, BIND_MINSZ);
  if (bind.iommufd < 0) throw new SimError('INVALID_ARGUMENT', `iommufd ${bind.iommufd} is negative`);
  rejectUnknownFlags(bind.flags, VFIO_DEVICE_BIND_FLAG_TOKEN, 'VFIO_DEVICE_BIND_IOMMUFD');
  if (df.group) throw new SimError('INVALID_ARGUMENT', `${device.name}: only a cdev file can be bound to iommufd`);
  device.group?.blockForCdev();
  try {
    if (df.accessGranted) throw new SimError('INVALID_ARGUMENT', `${device.name}: the file is already bound`);
    checkToken(device, proc, bind.flags, bind.token_uuid_ptr);
    const ictx = ctxFromFd(core, proc, bind.iommufd);
    df.iommufd = ictx;
    try {
      dfOpen(df, proc);
      try {
        writeBackField(proc.mm, argp, vfio_device_bind_iommufd, 'out_devid', df.devid);
      } catch (error) {
        dfClose(df);
        throw error;
      }
    } catch (error) {
      core.iommufd.ctxPut(ictx);
      df.iommufd = null;
      throw error;
    }
  } catch (error) {
    device.group?.unblockForCdev();
    throw error;
  }
  device.cdevOpened = true;
  df.accessGranted = true;
  return 0;
}

/** vfio_df_unbind_iommufd, at the last close of a bound cdev file. */
export function unbindIommufd(df: VfioDeviceFile): void {
  if (!df.accessGranted) return;
  const device = df.device;
  dfClose(df);
  coreOf(device).iommufd.ctxPut(df.iommufd!);
  device.cdevOpened = false;
  device.group?.unblockForCdev();
}

/**
 * VFIO_DEVICE_ATTACH_IOMMUFD_PT: EINVAL below 12 bytes or for unknown flags;
 * with VFIO_DEVICE_ATTACH_PASID, EOPNOTSUPP if the driver cannot attach
 * PASIDs and EINVAL below 16 bytes. The id actually attached (a HWPT made
 * for an IOAS) goes back in pt_id; if that write faults the attach is
 * undone with the driver's detach_ioas, as the kernel does even for a PASID.
 */
export function attachIommufdPt(df: VfioDeviceFile, proc: Process, argp: bigint): number {
  const device = df.device;
  let { value: attach, userSize } = readVfioArgsz(proc.mm, argp, vfio_device_attach_iommufd_pt, ATTACH_MINSZ);
  rejectUnknownFlags(attach.flags, VFIO_DEVICE_ATTACH_PASID, 'VFIO_DEVICE_ATTACH_IOMMUFD_PT');
  const pasid = (attach.flags & VFIO_DEVICE_ATTACH_PASID) !== 0;
  if (pasid) {
    if (!device.ops.pasidAttachIoas) throw new SimError('NOT_SUPPORTED', `${device.name} cannot attach PASIDs`);
    if (userSize < ATTACH_PASID_END) {
      throw new SimError('ARG_TOO_SHORT', `VFIO_DEVICE_ATTACH_IOMMUFD_PT with a PASID needs argsz >= ${ATTACH_PASID_END}`);
    }
    attach = readVfioExtension(proc.mm, argp, vfio_device_attach_iommufd_pt, attach, ATTACH_MINSZ, ATTACH_PASID_END);
  }
  const ptId = pasid
    ? device.ops.pasidAttachIoas!(device, attach.pasid, attach.pt_id)
    : device.ops.attachIoas!(device, attach.pt_id);
  try {
    writeBackField(proc.mm, argp, vfio_device_attach_iommufd_pt, 'pt_id', ptId);
  } catch (error) {
    device.ops.detachIoas!(device);
    throw error;
  }
  return 0;
}

/**
 * VFIO_DEVICE_DETACH_IOMMUFD_PT: EINVAL below 8 bytes or for unknown flags;
 * with VFIO_DEVICE_DETACH_PASID, EOPNOTSUPP without the driver op and EINVAL
 * below 12 bytes. Detaching what is not attached succeeds.
 */
export function detachIommufdPt(df: VfioDeviceFile, proc: Process, argp: bigint): number {
  const device = df.device;
  let { value: detach, userSize } = readVfioArgsz(proc.mm, argp, vfio_device_detach_iommufd_pt, DETACH_MINSZ);
  rejectUnknownFlags(detach.flags, VFIO_DEVICE_DETACH_PASID, 'VFIO_DEVICE_DETACH_IOMMUFD_PT');
  const pasid = (detach.flags & VFIO_DEVICE_DETACH_PASID) !== 0;
  if (pasid) {
    if (!device.ops.pasidDetachIoas) throw new SimError('NOT_SUPPORTED', `${device.name} cannot detach PASIDs`);
    if (userSize < DETACH_PASID_END) {
      throw new SimError('ARG_TOO_SHORT', `VFIO_DEVICE_DETACH_IOMMUFD_PT with a PASID needs argsz >= ${DETACH_PASID_END}`);
    }
    detach = readVfioExtension(proc.mm, argp, vfio_device_detach_iommufd_pt, detach, DETACH_MINSZ, DETACH_PASID_END);
    device.ops.pasidDetachIoas(device, detach.pasid);
  } else {
    device.ops.detachIoas!(device);
  }
  return 0;
}
