import { SimError } from '../errors/index.js';
import { OpenFile, type FileOperations, type Process } from '../os/index.js';
import { VFIO_API_VERSION, VFIO_CHECK_EXTENSION, VFIO_GET_API_VERSION, VFIO_SET_IOMMU } from '../uapi/index.js';
import type { VfioGroup } from './group.js';
import type { VfioCore } from './vfio-core.js';
import type { VfioDevice } from './vfio-device.js';
import type { VfioIommuBackend, VfioIommuDriverOps } from './vfio-iommu-driver.js';

/**
 * struct vfio_container: one open of /dev/vfio/vfio. Groups attach to it;
 * VFIO_SET_IOMMU then picks a back end (type1, noiommu) that maps DMA for
 * every attached group. The container lives while its file is open or a
 * group is attached; the last group to leave drops the back end and
 * returns the container to the unset state.
 */
export class VfioContainer {
  /** Attached groups, newest first (list_add). */
  readonly groups: VfioGroup[] = [];
  backend: VfioIommuBackend | null = null;
  /** The attached groups are no-IOMMU groups; real and no-IOMMU groups never mix. */
  noiommu = false;

  constructor(readonly core: VfioCore) {}

  /** vfio_iommu_driver_allowed: noiommu containers use only the noiommu driver, and only they use it. */
  driverAllowed(driver: VfioIommuDriverOps): boolean {
    return this.noiommu === (driver === this.core.noiommuDriver);
  }

  /** VFIO_CHECK_EXTENSION: the set back end answers alone; otherwise the first allowed driver that says yes. */
  checkExtension(proc: Process, extension: bigint): number {
    if (this.backend) return this.backend.ioctl(proc, VFIO_CHECK_EXTENSION, extension);
    const arg = Number(BigInt.asUintN(32, extension));
    if (BigInt(arg) !== extension) return 0;
    for (const driver of this.core.iommuDrivers) {
      if (this.groups.length !== 0 && !this.driverAllowed(driver)) continue;
      const answer = driver.checkExtension(arg);
      if (answer > 0) return answer;
    }
    return 0;
  }

  /**
   * VFIO_SET_IOMMU: EINVAL without a group or with a back end already set;
   * otherwise the first driver that supports `type`, opens and takes every
   * group wins. A driver that fails is skipped; the answer is the last
   * failure, or ENODEV if no driver supported the type.
   */
  setIommu(type: bigint): number {
    if (this.groups.length === 0 || this.backend) {
      throw new SimError('INVALID_ARGUMENT', this.backend ? 'the container already has an IOMMU back end' : 'the container has no group');
    }
    let failure: unknown = new SimError('NO_SUCH_DEVICE', `no IOMMU back end supports type ${type}`);
    const arg = Number(BigInt.asUintN(32, type));
    for (const driver of this.core.iommuDrivers) {
      if (!this.driverAllowed(driver)) continue;
      if (BigInt(arg) !== type || driver.checkExtension(arg) <= 0) continue;
      let backend: VfioIommuBackend;
      try {
        backend = driver.open(arg);
      } catch (error) {
        if (!(error instanceof SimError)) throw error;
        failure = error;
        continue;
      }
      try {
        this.#attachAll(backend);
      } catch (error) {
        if (!(error instanceof SimError)) throw error;
        backend.release();
        failure = error;
        continue;
      }
      this.backend = backend;
      return 0;
    }
    throw failure;
  }

  /** __vfio_container_attach_groups: all groups or none. */
  #attachAll(backend: VfioIommuBackend): void {
    const attached: VfioGroup[] = [];
    try {
      for (const group of this.groups) {
        backend.attachGroup(group.iommuGroup!, group.type);
        attached.push(group);
      }
    } catch (error) {
      for (const group of attached.reverse()) backend.detachGroup(group.iommuGroup!);
      throw error;
    }
  }

  /**
   * vfio_container_attach_group (VFIO_GROUP_SET_CONTAINER): EPERM to mix
   * real and no-IOMMU groups; a real group's DMA ownership is claimed here
   * (EPERM if a host driver or another user holds it), then the back end,
   * if one is set, takes the group.
   */
  attachGroup(group: VfioGroup, proc: Process): void {
    if (group.type === 'noiommu' && !this.core.capableRawio(proc)) {
      throw new SimError('NOT_PERMITTED', `vfio group ${group.name}: no-IOMMU groups need CAP_SYS_RAWIO`);
    }
    if (this.groups.length !== 0 && this.noiommu !== (group.type === 'noiommu')) {
      throw new SimError('NOT_PERMITTED', 'a container cannot hold both no-IOMMU and IOMMU-backed groups');
    }
    const iommuGroup = group.iommuGroup!;
    if (group.type === 'iommu') this.core.iommu.claimDmaOwner(iommuGroup.id, group);
    if (this.backend) {
      try {
        this.backend.attachGroup(iommuGroup, group.type);
      } catch (error) {
        if (group.type === 'iommu') this.core.iommu.releaseDmaOwner(iommuGroup.id);
        throw error;
      }
    }
    group.container = this;
    group.containerUsers = 1;
    this.noiommu = group.type === 'noiommu';
    this.groups.unshift(group);
  }

  /** vfio_group_detach_container: the last group out drops the back end. */
  detachGroup(group: VfioGroup): void {
    const iommuGroup = group.iommuGroup!;
    this.backend?.detachGroup(iommuGroup);
    if (group.type === 'iommu') this.core.iommu.releaseDmaOwner(iommuGroup.id);
    group.container = null;
    group.containerUsers = 0;
    this.groups.splice(this.groups.indexOf(group), 1);
    if (this.backend && this.groups.length === 0) {
      this.backend.release();
      this.backend = null;
    }
  }

  /**
   * vfio_group_use_container, at a device's first open through the group:
   * EINVAL until VFIO_SET_IOMMU, EPERM for a no-IOMMU group without
   * CAP_SYS_RAWIO. The device holds the group file from here to its last
   * close, so the group stays attached while the device is open.
   */
  useForDevice(group: VfioGroup, vdev: VfioDevice, proc: Process): void {
    if (!this.backend) throw new SimError('INVALID_ARGUMENT', 'VFIO_SET_IOMMU has not been done on the container');
    if (group.type === 'noiommu' && !this.core.capableRawio(proc)) {
      throw new SimError('NOT_PERMITTED', `vfio group ${group.name}: no-IOMMU devices need CAP_SYS_RAWIO`);
    }
    group.openedFile!.get();
    group.containerUsers++;
    this.backend.registerDevice?.(vdev);
  }

  /** vfio_device_group_unuse_iommu at the device's last close; may release the group file. */
  unuseForDevice(group: VfioGroup, vdev: VfioDevice): void {
    this.backend?.unregisterDevice?.(vdev);
    group.containerUsers--;
    group.openedFile!.put();
  }

  /** The container's file was closed: it lives on while groups hold it. */
  fileClosed(): void {
    this.backend?.notifyContainerClose?.();
  }
}

/** vfio_container_from_file: the container behind a /dev/vfio/vfio file, or null. */
export function containerFromFile(file: OpenFile): VfioContainer | null {
  return file.ops === containerFileOps ? (file.privateData as VfioContainer) : null;
}

/** The file operations of /dev/vfio/vfio (vfio_fops). */
export const containerFileOps: FileOperations = Object.freeze({
  kind: 'vfio-container',
  ioctl(file: OpenFile, proc: Process, request: number, argp: bigint): number {
    const container = file.privateData as VfioContainer;
    switch (request) {
      case VFIO_GET_API_VERSION:
        return VFIO_API_VERSION;
      case VFIO_CHECK_EXTENSION:
        return container.checkExtension(proc, argp);
      case VFIO_SET_IOMMU:
        return container.setIommu(argp);
      default:
        // Without a back end every other request is EINVAL, not ENOTTY.
        if (!container.backend) throw new SimError('INVALID_ARGUMENT', `container ioctl 0x${request.toString(16)} before VFIO_SET_IOMMU`);
        return container.backend.ioctl(proc, request, argp);
    }
  },
  release(file: OpenFile): void {
    (file.privateData as VfioContainer).fileClosed();
  },
});

/** vfio_fops_open: every open of /dev/vfio/vfio is a new, empty container. */
export function openContainer(core: VfioCore, flags: number): OpenFile {
  return new OpenFile(containerFileOps, flags, new VfioContainer(core));
}
