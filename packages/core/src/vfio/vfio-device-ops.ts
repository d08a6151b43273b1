import type { MmapRequest, MmapTarget, OpenFile, Process } from '../os/index.js';
import type { VfioDevice } from './vfio-device.js';

/**
 * The driver side of a vfio device (the kernel's struct vfio_device_ops).
 * Exactly one ops table answers for a device; a variant driver spreads
 * vfio-pci-core's table and overrides the entries that differ, as
 * drivers/vfio/pci/mlx5/main.c does in C.
 *
 * Every method may throw a SimError; the vfio core turns it into -errno.
 */
export interface VfioDeviceOps<D extends VfioDevice = VfioDevice> {
  readonly name: string;
  /** Driver-private initialisation when the vfio_device is allocated. */
  init?(vdev: D): void;
  /** Last reference to the vfio_device dropped. */
  release?(vdev: D): void;
  /** Binds the device to an iommufd context; returns the device id iommufd assigned. */
  bindIommufd?(vdev: D, ictx: IommufdCtxHandle): number;
  unbindIommufd?(vdev: D): void;
  /** Attaches to an IOAS or HWPT; returns the id actually attached (an IOAS attach auto-creates a HWPT). */
  attachIoas?(vdev: D, ptId: number): number;
  detachIoas?(vdev: D): void;
  pasidAttachIoas?(vdev: D, pasid: number, ptId: number): number;
  pasidDetachIoas?(vdev: D, pasid: number): void;
  /** First open of the device across all its fds (dev_set lock held). */
  openDevice?(vdev: D): void;
  /** Last close of the device. */
  closeDevice?(vdev: D): void;
  read?(vdev: D, proc: Process, length: number, offset: bigint): Uint8Array;
  write?(vdev: D, proc: Process, data: Uint8Array, offset: bigint): number;
  ioctl?(vdev: D, proc: Process, request: number, argp: bigint): number;
  mmap?(vdev: D, proc: Process, offset: bigint, length: bigint, request: MmapRequest): MmapTarget;
  /** Unregister is waiting: ask userspace to release the device (the REQ irq). */
  request?(vdev: D, count: number): void;
  /**
   * VFIO_GROUP_GET_DEVICE_FD name match; without it the name must equal the
   * device name. Throwing aborts the lookup with that errno (vfio-pci's
   * "vf_token=" checks answer EACCES or EINVAL this way).
   */
  match?(vdev: D, name: string): boolean;
  /**
   * VF token check for VFIO_DEVICE_BIND_IOMMUFD: `uuid` is the 16 bytes
   * userspace passed with VFIO_DEVICE_BIND_FLAG_TOKEN, or null without the
   * flag. Throw to refuse. Without this op the flag is EINVAL.
   */
  matchTokenUuid?(vdev: D, uuid: Uint8Array | null): void;
  /** A container unmapped IOVA this device may have pinned. */
  dmaUnmap?(vdev: D, iova: bigint, length: bigint): void;
  /** VFIO_DEVICE_FEATURE for feature ids the core does not handle itself. */
  deviceFeature?(vdev: D, proc: Process, flags: number, argp: bigint, argsz: number): number;
}

/** Migration v2 driver ops (struct vfio_migration_ops); optional per device. */
export interface VfioMigrationOps<D extends VfioDevice = VfioDevice> {
  /** Moves one FSM arc; returns the data file for arcs that open a stream, else null. */
  migrationSetState(vdev: D, newState: number): OpenFile | null;
  migrationGetState(vdev: D): number;
  migrationGetDataSize(vdev: D): bigint;
}

/** Device dirty-page logging ops (struct vfio_log_ops); optional per device. */
export interface VfioLogOps<D extends VfioDevice = VfioDevice> {
  logStart(vdev: D, ranges: readonly { iova: bigint; length: bigint }[], pageSize: bigint): bigint;
  logStop(vdev: D): void;
  /** Sets a bit per dirty page of [iova, iova + length) in `dirty` and clears the device's record. */
  logReadAndClear(vdev: D, iova: bigint, length: bigint, setDirty: (iova: bigint) => void): void;
}

/**
 * What vfio sees of an iommufd context. The iommufd layer implements it;
 * vfio holds it opaque, as the kernel holds struct iommufd_ctx *.
 */
export interface IommufdCtxHandle {
  readonly id: number;
}
