// IOMMU hardware side: the driver contract, the core, the caches, the page tables, the DMA engine.
export * from './iommu-driver.js';
export * from './iommu-core.js';
export * from './iommu-map.js';
export * from './iotlb.js';
export * from './io-pgtable/index.js';
export * from './dma-engine.js';
export * from './invalidation-hooks.js';
export * from './user-data.js';
export * from './mock/index.js';
export * from './type1/index.js';
export * from './iommufd/index.js';
