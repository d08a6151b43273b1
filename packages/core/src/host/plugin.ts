import type { DependencyContainer } from 'tsyringe';
import type { Host } from './host.js';

/**
 * A vfiosim plugin: what a vendor package exports from its one entry point
 * (rollup/vite style: a factory returns this object).
 *
 * createHost runs every plugin's `register` (in list order, before any
 * service is resolved), then builds the host, then runs every `apply` (in
 * list order) — the place to register PCI drivers, IOMMU drivers and to tap
 * host-level hooks. A plugin listed before one of its dependencies is an
 * error, as is a missing dependency or a duplicate name.
 */
export interface VfioSimPlugin {
  readonly name: string;
  readonly dependsOn?: readonly string[];
  /** Adds providers to the host's child container. */
  register?(container: DependencyContainer): void;
  /** Wires the plugin into the built host. */
  apply?(host: Host): void;
}
