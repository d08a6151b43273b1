/*
 * The typed API: what a VMM written in TypeScript uses instead of raw
 * ioctls. Each handle owns one fd of one process and makes the same system
 * calls a C VMM makes (structs encoded into the process's memory, then
 * proc.ioctl, proc.pread, proc.mmap), so it can never reach anything the
 * uAPI does not offer; it only spares the caller the encoding, the argsz
 * dance and the capability chain walk. The kernel's refusals arrive as
 * SyscallError with the errno; values that cannot be encoded at all are
 * refused before any call (SimError INVALID_API_INPUT).
 */
export { ArgBuffer } from './arg-buffer.js';
export { FdHandle, type StructAnswer } from './fd-handle.js';
export { parseInfoCaps, type VfioInfoCap } from './info-caps.js';
export { IommufdHandle } from './iommufd-handle.js';
export { SyscallError, checkSyscall, type SyscallName, type SyscallTarget } from './syscall-error.js';
export { VfioContainerHandle } from './vfio-container-handle.js';
export {
  VfioDeviceHandle,
  type FeatureProbe,
  type IrqAction,
  type SetIrqsRequest,
  type VfioDeviceInfo,
  type VfioDeviceType,
  type VfioIrqInfo,
  type VfioRegionInfo,
} from './vfio-device-handle.js';
export { VfioGroupHandle, type VfioGroupStatus } from './vfio-group-handle.js';
