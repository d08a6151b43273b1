import 'reflect-metadata';

export * from './errors/index.js';
export * from './uapi/index.js';
export * from './os/index.js';
export * from './platform/index.js';
export * from './vfio/index.js';
export * from './iommu/index.js';
export * from './pci-core/index.js';
export * from './host/index.js';
export * from './api/index.js';
export * from './conformance/index.js';
export * from './tokens.js';
