import { SimError } from '../errors/index.js';
import { O_RDWR, OpenFile, type FileOperations, type MmapRequest, type MmapTarget, type Process } from '../os/index.js';
import {
  VFIO_DEVICE_ATTACH_IOMMUFD_PT,
  VFIO_DEVICE_BIND_IOMMUFD,
  VFIO_DEVICE_DETACH_IOMMUFD_PT,
  VFIO_DEVICE_FEATURE,
} from '../uapi/index.js';
import { attachIommufdPt, bindIommufd, detachIommufdPt, unbindIommufd } from './device-cdev.js';
import { deviceFeatureIoctl } from './device-feature.js';
import type { VfioGroup } from './group.js';
import type { VfioCore } from './vfio-core.js';
import type { VfioDevice } from './vfio-device.js';
import type { IommufdCtxHandle } from './vfio-device-ops.js';

/**
 * struct vfio_device_file: one open file of a vfio device. A file from
 * VFIO_GROUP_GET_DEVICE_FD is born with access granted; a file opened from
 * /dev/vfio/devices/vfioN has no access until VFIO_DEVICE_BIND_IOMMUFD
 * succeeds, and every other operation is EINVAL before that.
 */
export class VfioDeviceFile {
  accessGranted = false;
  /** The device id iommufd gave this binding (valid with iommufd). */
  devid = 0;
  iommufd: IommufdCtxHandle | null = null;

  constructor(
    readonly device: VfioDevice,
    /** The group the file came from; null for a cdev file. */
    readonly group: VfioGroup | null,
  ) {}
}

/** vfio_device_from_file: the device behind a vfio device file, or null for any other file. */
export function deviceFileFromFile(file: OpenFile): VfioDeviceFile | null {
  return file.ops === deviceFileOps ? (file.privateData as VfioDeviceFile) : null;
}

function dfOf(file: OpenFile): VfioDeviceFile {
  return file.privateData as VfioDeviceFile;
}

/**
 * vfio_df_device_first_open: a reference on the driver's module (ENODEV if
 * it is going away), the IOMMU side (iommufd bind, or the group's
 * container), then the driver's open_device. A failure undoes every step
 * already taken.
 */
function firstOpen(df: VfioDeviceFile, proc: Process): void {
  const device = df.device;
  const core = coreOf(device);
  const module = core.drivers.moduleOf(device.dev);
  if (!module?.tryGet()) throw new SimError('NO_SUCH_DEVICE', `the driver of ${device.name} is going away`);
  try {
    if (df.iommufd) core.iommufdGlue.dfBind(df);
    else df.group!.container!.useForDevice(df.group!, device, proc);
    try {
      device.ops.openDevice?.(device);
    } catch (error) {
      if (df.iommufd) core.iommufdGlue.dfUnbind(df);
      else df.group!.container!.unuseForDevice(df.group!, device);
      throw error;
    }
  } catch (error) {
    module.put();
    throw error;
  }
}

/** vfio_df_device_last_close: the driver's close_device, the IOMMU side, the module reference. */
function lastClose(df: VfioDeviceFile): void {
  const device = df.device;
  const core = coreOf(device);
  device.ops.closeDevice?.(device);
  const module = core.drivers.moduleOf(device.dev);
  if (df.iommufd) core.iommufdGlue.dfUnbind(df);
  else df.group!.container!.unuseForDevice(df.group!, device);
  module!.put();
}

/**
 * vfio_df_open: only the group path may open a device more than once (EINVAL
 * for a cdev bind while the device is open anywhere); the first open runs
 * firstOpen and a failure leaves the count as it was.
 */
export function dfOpen(df: VfioDeviceFile, proc: Process): void {
  const device = df.device;
  if (device.openCount !== 0 && !df.group) {
    throw new SimError('INVALID_ARGUMENT', `${device.name} is already open; a cdev file cannot share it`);
  }
  device.openCount++;
  if (device.openCount === 1) {
    try {
      firstOpen(df, proc);
    } catch (error) {
      device.openCount--;
      throw error;
    }
  }
}

/** vfio_df_close, with the guard that keeps a close of a never-opened device from wrapping the count. */
export function dfClose(df: VfioDeviceFile): void {
  const device = df.device;
  if (device.openCount === 0) {
    coreOf(device).log.warn(device.name, 'vfio_df_close on a device that is not open');
    return;
  }
  if (device.openCount === 1) lastClose(df);
  device.openCount--;
}

/**
 * vfio_df_group_open: the group must have a container or an iommufd
 * (EINVAL). Under iommufd, a no-IOMMU device's first open needs
 * CAP_SYS_RAWIO and a context without a compat IOAS (EPERM), since the user
 * must not expect translation; an IOMMU-backed device's first open attaches
 * it to the compat IOAS.
 */
function dfGroupOpen(df: VfioDeviceFile, group: VfioGroup, proc: Process): void {
  const device = df.device;
  const core = group.core;
  if (!group.hasIommu) throw new SimError('INVALID_ARGUMENT', `vfio group ${group.name} has no container or iommufd`);
  df.iommufd = group.iommufd;
  try {
    if (df.iommufd && group.type === 'noiommu' && device.openCount === 0) {
      if (!core.capableRawio(proc) || core.iommufdGlue.hasCompatIoas(df.iommufd)) {
        throw new SimError('NOT_PERMITTED', `${device.name}: a no-IOMMU device cannot be used with an iommufd that has a compat IOAS`);
      }
    }
    dfOpen(df, proc);
    if (df.iommufd && device.openCount === 1) {
      try {
        core.iommufdGlue.compatAttachIoas(device, df.iommufd);
      } catch (error) {
        dfClose(df);
        throw error;
      }
    }
  } catch (error) {
    df.iommufd = null;
    throw error;
  }
  df.accessGranted = true;
}

/** vfio_df_group_close. */
function dfGroupClose(df: VfioDeviceFile): void {
  dfClose(df);
  df.iommufd = null;
}

/**
 * vfio_device_open_file for VFIO_GROUP_GET_DEVICE_FD: the new file is
 * O_RDWR with pread/pwrite, whatever the group file was opened with. The
 * caller holds a registration reference for it.
 */
export function openGroupDeviceFile(device: VfioDevice, group: VfioGroup, proc: Process): OpenFile {
  const df = new VfioDeviceFile(device, group);
  dfGroupOpen(df, group, proc);
  if (group.type === 'noiommu') {
    group.core.log.warn(device.name, `vfio-noiommu device opened by user (pid ${proc.pid})`);
  }
  return new OpenFile(deviceFileOps, O_RDWR, df);
}

/** vfio_device_fops_cdev_open: a file with no access; the registration reference is the file's. */
export function openCdevDeviceFile(device: VfioDevice, flags: number): OpenFile {
  const core = coreOf(device);
  if (!core.tryGetRegistration(device)) throw new SimError('NO_SUCH_DEVICE', `${device.name} is being unregistered`);
  return new OpenFile(deviceFileOps, flags, new VfioDeviceFile(device, null));
}

function requireAccess(df: VfioDeviceFile): void {
  if (!df.accessGranted) throw new SimError('INVALID_ARGUMENT', `${df.device.name}: the device file is not bound to iommufd`);
}

function coreOf(device: VfioDevice): VfioCore {
  if (!device.vfio) throw new Error(`${device.name} is not registered with a vfio core`);
  return device.vfio;
}

/** The file operations of a vfio device (vfio_device_fops). */
export const deviceFileOps: FileOperations = Object.freeze({
  kind: 'vfio-device',
  ioctl(file: OpenFile, proc: Process, request: number, argp: bigint): number {
    const df = dfOf(file);
    const device = df.device;
    if (request === VFIO_DEVICE_BIND_IOMMUFD) return bindIommufd(df, proc, argp);
    requireAccess(df);
    if (!df.group) {
      if (request === VFIO_DEVICE_ATTACH_IOMMUFD_PT) return attachIommufdPt(df, proc, argp);
      if (request === VFIO_DEVICE_DETACH_IOMMUFD_PT) return detachIommufdPt(df, proc, argp);
    }
    if (request === VFIO_DEVICE_FEATURE) return deviceFeatureIoctl(device, proc, argp);
    if (!device.ops.ioctl) throw new SimError('INVALID_ARGUMENT', `${device.name} has no ioctl op`);
    return device.ops.ioctl(device, proc, request, argp);
  },
  pread(file: OpenFile, proc: Process, length: number, offset: bigint): Uint8Array {
    const df = dfOf(file);
    requireAccess(df);
    if (!df.device.ops.read) throw new SimError('INVALID_ARGUMENT', `${df.device.name} cannot be read`);
    return df.device.ops.read(df.device, proc, length, offset);
  },
  pwrite(file: OpenFile, proc: Process, data: Uint8Array, offset: bigint): number {
    const df = dfOf(file);
    requireAccess(df);
    if (!df.device.ops.write) throw new SimError('INVALID_ARGUMENT', `${df.device.name} cannot be written`);
    return df.device.ops.write(df.device, proc, data, offset);
  },
  mmap(file: OpenFile, proc: Process, offset: bigint, length: bigint, request: MmapRequest): MmapTarget {
    const df = dfOf(file);
    requireAccess(df);
    if (!df.device.ops.mmap) throw new SimError('INVALID_ARGUMENT', `${df.device.name} cannot be mapped`);
    return df.device.ops.mmap(df.device, proc, offset, length, request);
  },
  release(file: OpenFile): void {
    const df = dfOf(file);
    if (df.group) dfGroupClose(df);
    else unbindIommufd(df);
    coreOf(df.device).putRegistration(df.device);
  },
});
