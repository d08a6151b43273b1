import { SimError } from '../errors/index.js';
import { VFIO_CHECK_EXTENSION, VFIO_NOIOMMU_IOMMU } from '../uapi/index.js';
import type { VfioIommuBackend, VfioIommuDriverOps } from './vfio-iommu-driver.js';

/**
 * The "vfio-noiommu" container back end (vfio_noiommu_ops): it translates
 * nothing and maps nothing. It exists so that a no-IOMMU group can complete
 * the container protocol (SET_IOMMU with VFIO_NOIOMMU_IOMMU) and hand out
 * device fds; every DMA ioctl is ENOTTY. It reports the extension only while
 * enable_unsafe_noiommu_mode is on.
 */
export function createNoiommuDriver(noiommuEnabled: () => boolean): VfioIommuDriverOps {
  const checkExtension = (extension: number): number => (noiommuEnabled() && extension === VFIO_NOIOMMU_IOMMU ? 1 : 0);
  const driver: VfioIommuDriverOps = {
    name: 'vfio-noiommu',
    checkExtension,
    open(type: number): VfioIommuBackend {
      if (type !== VFIO_NOIOMMU_IOMMU) throw new SimError('INVALID_ARGUMENT', `vfio-noiommu cannot open IOMMU type ${type}`);
      return {
        driver,
        ioctl(_proc, request, argp) {
          if (request === VFIO_CHECK_EXTENSION) return argp === BigInt(VFIO_NOIOMMU_IOMMU) ? checkExtension(VFIO_NOIOMMU_IOMMU) : 0;
          throw new SimError('UNKNOWN_IOCTL', `vfio-noiommu has no ioctl 0x${request.toString(16)}`);
        },
        attachGroup() {},
        detachGroup() {},
        release() {},
      };
    },
  };
  return driver;
}
