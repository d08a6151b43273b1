export * from './constants.js';
export * from './structs.js';
export { MockDeviceState, MockIommu } from './mock-iommu.js';
export { MockBlockedDomain, MockDomain, MockNestedDomain, MockPagingDomain, type MockDomainDriver } from './mock-domains.js';
export { MockViommu, type MockViommuDriver } from './mock-viommu.js';
export { MockIommuDriver, createMockIommuDriver, type MockIommuDriverOptions } from './mock-driver.js';
export { mockIommu, type MockIommuPluginOptions } from './plugin.js';
