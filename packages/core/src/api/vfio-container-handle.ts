import type { Process } from '../os/index.js';
import { VFIO_CONTAINER_PATH } from '../vfio/index.js';
import { FdHandle } from './fd-handle.js';
import { fdSchema, parseInput, u32Schema } from './input.js';
import { checkSyscall } from './syscall-error.js';

/**
 * An open /dev/vfio/vfio: the legacy container that groups are attached to
 * and whose IOMMU back end (type1, noiommu) is chosen with SET_IOMMU. DMA
 * mapping on it comes with the DMA layer's typed API.
 */
export class VfioContainerHandle extends FdHandle {
  private constructor(proc: Process, fd: number) {
    super(proc, fd);
  }

  /** open("/dev/vfio/vfio", O_RDWR). */
  static open(proc: Process): VfioContainerHandle {
    return new VfioContainerHandle(proc, checkSyscall(proc.open(VFIO_CONTAINER_PATH), 'open', { path: VFIO_CONTAINER_PATH }));
  }

  /** Takes over an fd of this kind the process already holds (passed over a socket, say). */
  static fromFd(proc: Process, fd: number): VfioContainerHandle {
    return new VfioContainerHandle(proc, parseInput(fdSchema, fd, 'fd'));
  }

  /** VFIO_GET_API_VERSION (VFIO_API_VERSION, 0, on every kernel with this uAPI). */
  apiVersion(): number {
    return this.ioctlValue('VFIO_GET_API_VERSION');
  }

  /**
   * VFIO_CHECK_EXTENSION: whether the container (its back end once set,
   * every registered back end before) supports the extension, such as
   * VFIO_TYPE1v2_IOMMU or VFIO_UPDATE_VADDR. The kernel answers 0 or 1.
   */
  checkExtension(extension: number): boolean {
    return this.ioctlValue('VFIO_CHECK_EXTENSION', parseInput(u32Schema, extension, 'extension')) > 0;
  }

  /** VFIO_SET_IOMMU: picks the back end; needs a group attached first (EINVAL otherwise). */
  setIommu(type: number): void {
    this.ioctlValue('VFIO_SET_IOMMU', parseInput(u32Schema, type, 'type'));
  }
}
