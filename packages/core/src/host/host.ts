import { inject, injectable } from 'tsyringe';
import type { DmaEngine } from '../iommu/dma-engine.js';
import type { IommuCore } from '../iommu/iommu-core.js';
import type { Iommufd } from '../iommu/iommufd/index.js';
import type { Process, System, VirtualClock } from '../os/index.js';
import type { Platform } from '../platform/index.js';
import { DMA_ENGINE, DRIVER_CORE, HOST_OPTIONS, IOMMU_CORE, IOMMUFD, PLATFORM, SYSTEM, VFIO_CORE } from '../tokens.js';
import type { DriverCore } from '../vfio/driver-core.js';
import type { VfioCore } from '../vfio/vfio-core.js';
import type { HostOptions } from './host-options.js';

/**
 * One simulated machine: the OS (processes, memory, device nodes), the PCI
 * hardware, the IOMMU, and the kernel modules loaded on it. Built by
 * createHost; plugins receive it in apply().
 */
@injectable()
export class Host {
  constructor(
    @inject(HOST_OPTIONS) readonly options: HostOptions,
    @inject(SYSTEM) readonly system: System,
    @inject(PLATFORM) readonly platform: Platform,
    @inject(IOMMU_CORE) readonly iommu: IommuCore,
    @inject(DMA_ENGINE) readonly dma: DmaEngine,
    @inject(IOMMUFD) readonly iommufd: Iommufd,
    @inject(DRIVER_CORE) readonly drivers: DriverCore,
    @inject(VFIO_CORE) readonly vfio: VfioCore,
  ) {}

  get clock(): VirtualClock {
    return this.system.clock;
  }

  /** A new process: an empty fd table and address space. */
  spawn(): Process {
    return this.system.spawn();
  }
}
