import { O_LARGEFILE, O_RDWR } from './constants.js';
import { OpenFile, type FileOperations, type MmapTarget } from './file.js';
import { MemoryObject } from './memory-object.js';
import type { Process } from './process.js';
import type { PhysicalMemory } from './phys-mem.js';

/**
 * A memfd: a tmpfs file with no name in any directory. The file holds one
 * reference on its memory object and every mapping another, so the memory
 * lives until the last fd is closed and the last mapping is gone. Writes
 * past the end grow the file; reads stop at the end; holes read as zeros
 * without allocating.
 */
export const memfdFileOps: FileOperations = Object.freeze({
  kind: 'memfd',
  regular: true,
  pread(file: OpenFile, _proc: Process, length: number, offset: bigint): Uint8Array {
    const object = objectOf(file);
    if (offset >= object.size) return new Uint8Array(0);
    const available = object.size - offset;
    return object.read(offset, available < BigInt(length) ? Number(available) : length);
  },
  pwrite(file: OpenFile, _proc: Process, data: Uint8Array, offset: bigint): number {
    const object = objectOf(file);
    const end = offset + BigInt(data.length);
    if (end > object.size) object.resize(end);
    object.write(offset, data);
    return data.length;
  },
  mmap(file: OpenFile, _proc: Process, offset: bigint): MmapTarget {
    return { kind: 'ram', object: objectOf(file), offset };
  },
  truncate(file: OpenFile, _proc: Process, size: bigint): void {
    objectOf(file).resize(size);
  },
  release(file: OpenFile): void {
    objectOf(file).put();
  },
});

/** A new memfd file of size 0 (not yet in any fd table). */
export function createMemfdFile(physMem: PhysicalMemory, name: string): OpenFile {
  const object = new MemoryObject(physMem, 'shmem', 0n, `memfd:${name}`);
  return new OpenFile(memfdFileOps, O_RDWR | O_LARGEFILE, object);
}

/**
 * The memory behind a memfd, for kernel users that take a file rather than
 * a mapping (IOMMU_IOAS_MAP_FILE); null for any other kind of file, so the
 * caller answers with its own errno.
 */
export function memfdObject(file: OpenFile): MemoryObject | null {
  return file.ops === memfdFileOps ? (file.privateData as MemoryObject) : null;
}

function objectOf(file: OpenFile): MemoryObject {
  return file.privateData as MemoryObject;
}
