import type { VfioSimPlugin } from './plugin.js';

/** Options of createHost beyond the machine description. */
export interface HostOptions {
  readonly plugins: readonly VfioSimPlugin[];
  /** Seed for every random choice the model makes (deterministic runs). */
  readonly seed: number;
  /** vfio's enable_unsafe_noiommu_mode module parameter. */
  readonly noiommu: boolean;
  /** Compare every IOMMU cache hit with a fresh walk and record stale use. */
  readonly detectStaleTranslations: boolean;
}
