import type { VfioSimPlugin } from '../../host/plugin.js';
import type { IommuClientDevice } from '../iommu-driver.js';
import { createMockIommuDriver } from './mock-driver.js';

export interface MockIommuPluginOptions {
  /** Which devices sit behind the mock IOMMU; all of them by default. */
  readonly claims?: (dev: IommuClientDevice) => boolean;
}

/**
 * The reference mock IOMMU as a plugin, so a host can be composed with it
 * exactly as with a vendor IOMMU package: `plugins: [mockIommu(), vfioPci()]`.
 */
export function mockIommu(options: MockIommuPluginOptions = {}): VfioSimPlugin {
  return {
    name: 'mock-iommu',
    apply(host) {
      host.iommu.registerDriver(createMockIommuDriver({ physMem: host.system.physMem, claims: options.claims }));
    },
  };
}
