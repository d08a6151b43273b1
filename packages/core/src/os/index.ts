export * from './constants.js';
export {
  MAX_LFS_FILESIZE,
  MMAP_BASE,
  MMAP_MIN_ADDR,
  PAGE_SHIFT,
  PAGE_SIZE,
  TASK_SIZE,
  TASK_UNMAPPED_BASE,
} from './page.js';
export { Frame, PhysicalMemory, type PhysicalMemoryOptions } from './phys-mem.js';
export { MemoryObject, type MemoryObjectKind } from './memory-object.js';
export { AddressSpace, type MmioBacking, type Vma, type VmaBacking, type VmaSpec } from './address-space.js';
export { OpenFile, type FileOperations, type MmapRequest, type MmapTarget } from './file.js';
export { FdTable } from './fd-table.js';
export { ProcessMemory } from './process-memory.js';
export { Process, type MmapOptions } from './process.js';
export { EventfdCtx, createEventfdFile, eventfdCtxFdget, eventfdCtxFileget, eventfdFileOps } from './eventfd.js';
export { createMemfdFile, memfdFileOps, memfdObject } from './memfd.js';
export { VirtualClock, type Timer } from './clock.js';
export { WaitQueue, type WakeFunction } from './wait-queue.js';
export { DeviceNodes, type DeviceOpener } from './devfs.js';
export { System, type SystemOptions } from './system.js';
