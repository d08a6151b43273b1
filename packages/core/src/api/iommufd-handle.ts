import { IOMMUFD_DEVICE_PATH } from '../iommu/iommufd/iommufd.js';
import type { Process } from '../os/index.js';
import { iommu_destroy, iommu_ioas_alloc } from '../uapi/index.js';
import { FdHandle } from './fd-handle.js';
import { fdSchema, parseInput, u32Schema } from './input.js';
import { checkSyscall } from './syscall-error.js';

/**
 * An open /dev/iommu: the iommufd context a VMM binds device cdevs to and
 * allocates its IO address spaces in. The rest of iommufd (mapping, HWPTs,
 * vIOMMUs) comes with the DMA layer's typed API.
 */
export class IommufdHandle extends FdHandle {
  private constructor(proc: Process, fd: number) {
    super(proc, fd);
  }

  /** open("/dev/iommu", O_RDWR). */
  static open(proc: Process): IommufdHandle {
    return new IommufdHandle(proc, checkSyscall(proc.open(IOMMUFD_DEVICE_PATH), 'open', { path: IOMMUFD_DEVICE_PATH }));
  }

  /** Takes over an fd of this kind the process already holds (passed over a socket, say). */
  static fromFd(proc: Process, fd: number): IommufdHandle {
    return new IommufdHandle(proc, parseInput(fdSchema, fd, 'fd'));
  }

  /** IOMMU_IOAS_ALLOC: a new, empty IO address space; its object id. */
  ioasAlloc(): number {
    return this.ioctlStruct('IOMMU_IOAS_ALLOC', iommu_ioas_alloc, { size: iommu_ioas_alloc.size }).value.out_ioas_id;
  }

  /** IOMMU_DESTROY of any object by id (the kernel answers EBUSY while it is in use, ENOENT for no such id). */
  destroy(id: number): void {
    const objectId = parseInput(u32Schema, id, 'id');
    this.ioctlStruct('IOMMU_DESTROY', iommu_destroy, { size: iommu_destroy.size, id: objectId });
  }
}
