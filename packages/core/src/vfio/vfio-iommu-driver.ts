import type { Frame, Process } from '../os/index.js';
import type { IommuGroupHandle } from './iommu-group-kapi.js';
import type { VfioDevice } from './vfio-device.js';

/**
 * enum vfio_group_type: a group behind IOMMU hardware, the software group of
 * an emulated device (registered with registerEmulatedIommuDev; it reaches
 * memory only through pinPages/dmaRw), or the software group of a physical
 * device without an IOMMU in noiommu mode (only the noiommu back end takes
 * those).
 */
export type VfioGroupType = 'iommu' | 'emulated' | 'noiommu';

/**
 * A back end for the legacy container (/dev/vfio/vfio), the kernel's
 * struct vfio_iommu_driver_ops: type1 v2 and noiommu register one each.
 *
 * VFIO_CHECK_EXTENSION on a container with no back end asks every allowed
 * driver's checkExtension (newest registration first) and answers with the
 * first positive result. VFIO_SET_IOMMU(type) walks the same list and opens
 * the first driver whose checkExtension(type) is positive, whose open(type)
 * succeeds and which accepts every group of the container; a driver that
 * fails is skipped and its errno kept for the answer.
 */
export interface VfioIommuDriverOps {
  readonly name: string;
  /** ops->ioctl(NULL, VFIO_CHECK_EXTENSION, extension): 0 = not supported. */
  checkExtension(extension: number): number;
  /** ops->open(type): a back end instance; throws (EINVAL, EPERM, ...) to refuse. */
  open(type: number): VfioIommuBackend;
}

/** One container's back end instance (the kernel's iommu_data with its driver). */
export interface VfioIommuBackend {
  readonly driver: VfioIommuDriverOps;
  /**
   * Every container ioctl the core does not answer itself, and
   * VFIO_CHECK_EXTENSION once the back end is set (`argp` is then the
   * extension number, not a pointer). Returns >= 0 or throws.
   */
  ioctl(proc: Process, request: number, argp: bigint): number;
  /** ops->attach_group: the group joins the container; throw to refuse (nothing attached). */
  attachGroup(group: IommuGroupHandle, type: VfioGroupType): void;
  detachGroup(group: IommuGroupHandle): void;
  /**
   * Emulated devices pin by IOVA (vfio_pin_pages): `prot` is IOMMU_READ |
   * IOMMU_WRITE as the device will access the pages; returns the pinned
   * frames (struct page *), one per page, all or nothing.
   */
  pinPages?(group: IommuGroupHandle, iova: bigint, npage: number, prot: number): Frame[];
  unpinPages?(iova: bigint, npage: number): void;
  /** CPU access to IOVA-addressed user memory for emulated devices (vfio_dma_rw). */
  dmaRw?(iova: bigint, data: Uint8Array, write: boolean): void;
  /** A device of an attached group was opened (first open) / closed (last close). */
  registerDevice?(vdev: VfioDevice): void;
  unregisterDevice?(vdev: VfioDevice): void;
  /** ops->notify(VFIO_IOMMU_CONTAINER_CLOSE): the container's file was closed while groups keep it alive. */
  notifyContainerClose?(): void;
  /** Last group left the container: the back end is dropped. */
  release(): void;
}
