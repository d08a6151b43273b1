export { Errno, errnoName, type ErrnoName } from './errno.js';
export { errorCatalog, type ErrorCode } from './catalog.js';
export { SimError, fail, syscall } from './sim-error.js';
