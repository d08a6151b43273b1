import type { Bdf } from './bdf.js';
import type { IommuGroups } from './iommu-groups.js';
import type { PciFunction } from './pci-function.js';
import type { Topology } from './topology.js';

/**
 * A host's PCI hardware after boot: the topology with its functions, and
 * the IOMMU groups Linux formed over it.
 */
export class Platform {
  readonly topology: Topology;
  readonly groups: IommuGroups;

  constructor(topology: Topology, groups: IommuGroups) {
    this.topology = topology;
    this.groups = groups;
  }

  /** Every present function in bdf order. */
  functions(): readonly PciFunction[] {
    return this.topology.functions();
  }

  /** The function at `bdf`; throws NO_SUCH_DEVICE. */
  get(bdf: Bdf | string): PciFunction {
    return this.topology.get(bdf);
  }

  find(bdf: Bdf | string): PciFunction | undefined {
    return this.topology.find(bdf);
  }
}
