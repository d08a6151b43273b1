import type { InjectionToken } from 'tsyringe';

/**
 * DI tokens for the services a host is composed of. Every constructor
 * parameter of an injectable service names one of these with @inject, so
 * nothing depends on emitted decorator metadata (vitest's esbuild emits none).
 *
 * Tokens are symbols typed with the service they resolve to; the services
 * themselves are imported as types only, which keeps this file free of
 * import cycles.
 */
function token<T>(description: string): InjectionToken<T> {
  return Symbol.for(`vfiosim.${description}`) as InjectionToken<T>;
}

export const HOST_OPTIONS = token<import('./host/host-options.js').HostOptions>('HostOptions');
export const SYSTEM = token<import('./os/index.js').System>('System');
export const PLATFORM = token<import('./platform/index.js').Platform>('Platform');
export const IOMMU_CORE = token<import('./iommu/iommu-core.js').IommuCore>('IommuCore');
export const IOMMUFD = token<import('./iommu/iommufd/index.js').Iommufd>('Iommufd');
export const IOMMUFD_KAPI = token<import('./vfio/iommufd-kapi.js').IommufdKapi>('IommufdKapi');
export const DRIVER_CORE = token<import('./vfio/driver-core.js').DriverCore>('DriverCore');
export const VFIO_CORE = token<import('./vfio/vfio-core.js').VfioCore>('VfioCore');
export const DMA_ENGINE = token<import('./iommu/dma-engine.js').DmaEngine>('DmaEngine');
