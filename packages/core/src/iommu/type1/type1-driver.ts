import { fail } from '../../errors/index.js';
import {
  VFIO_TYPE1_IOMMU,
  VFIO_TYPE1v2_IOMMU,
  VFIO_UNMAP_ALL,
  __VFIO_RESERVED_TYPE1_NESTING_IOMMU,
} from '../../uapi/index.js';
import type { VfioIommuDriverOps } from '../../vfio/vfio-iommu-driver.js';
import type { IommuCore } from '../iommu-core.js';
import { VfioIommuType1, type Type1Options } from './vfio-iommu-type1.js';

/** The driver's name, as /sys/module and the kernel's ops table know it. */
export const TYPE1_DRIVER_NAME = 'vfio-iommu-type1';

/**
 * The type1 container driver (vfio_iommu_driver_ops_type1), for the vfio
 * core to register. `iommuCore` is the host's IOMMU core, whose domains the
 * containers map into; `options` are the module parameters.
 *
 * VFIO_CHECK_EXTENSION on a container without a back end asks the driver
 * with no instance, which answers 1 for VFIO_TYPE1_IOMMU, VFIO_TYPE1v2_IOMMU
 * and VFIO_UNMAP_ALL only: VFIO_UPDATE_VADDR and VFIO_DMA_CC_IOMMU depend on
 * the groups attached, so they are 0 until VFIO_SET_IOMMU (the instance
 * answers them then). The retired nesting type is no longer reported, so
 * VFIO_SET_IOMMU never opens it, though open() still takes it as v2.
 */
export function type1IommuDriver(iommuCore: IommuCore, options: Type1Options = {}): VfioIommuDriverOps {
  const driver: VfioIommuDriverOps = Object.freeze({
    name: TYPE1_DRIVER_NAME,
    checkExtension(extension: number): number {
      switch (extension) {
        case VFIO_TYPE1_IOMMU:
        case VFIO_TYPE1v2_IOMMU:
        case VFIO_UNMAP_ALL:
          return 1;
        default:
          return 0;
      }
    },
    open(type: number): VfioIommuType1 {
      switch (type) {
        case VFIO_TYPE1_IOMMU:
          return new VfioIommuType1(driver, false, iommuCore, options);
        case __VFIO_RESERVED_TYPE1_NESTING_IOMMU:
        case VFIO_TYPE1v2_IOMMU:
          return new VfioIommuType1(driver, true, iommuCore, options);
        default:
          return fail('INVALID_ARGUMENT', `${TYPE1_DRIVER_NAME}: IOMMU type ${type} is not type1`);
      }
    },
  });
  return driver;
}
