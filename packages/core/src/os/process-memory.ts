import { Errno, SimError } from '../errors/index.js';
import type { AddressSpace } from './address-space.js';

/**
 * The process's own loads and stores to its memory, as a program would do
 * them: the same mappings and permissions the kernel's copy routines see.
 * Like the syscalls, these never throw for a bad address: they answer with
 * -errno (-EFAULT, or -ENOMEM if host RAM runs out on first touch).
 *
 * read returns the bytes or -errno. readU32 returns the value (always
 * >= 0) or -errno; readU64 returns the value or a negative bigint -errno.
 * Writes return 0 or -errno. Multi-byte values are little-endian (x86-64).
 */
export class ProcessMemory {
  readonly #mm: () => AddressSpace;

  /** Takes a getter because exec replaces the address space. */
  constructor(mm: () => AddressSpace) {
    this.#mm = mm;
  }

  read(va: bigint, length: number): Uint8Array | number {
    // A negative length is a size_t past the top of the address space.
    if (length < 0) return -Errno.EFAULT;
    try {
      return this.#mm().copyFromUser(va, length);
    } catch (error) {
      return negErrno(error);
    }
  }

  write(va: bigint, bytes: Uint8Array): number {
    try {
      this.#mm().copyToUser(va, bytes);
      return 0;
    } catch (error) {
      return negErrno(error);
    }
  }

  readU32(va: bigint): number {
    const bytes = this.read(va, 4);
    if (typeof bytes === 'number') return bytes;
    return new DataView(bytes.buffer, bytes.byteOffset, 4).getUint32(0, true);
  }

  readU64(va: bigint): bigint {
    const bytes = this.read(va, 8);
    if (typeof bytes === 'number') return BigInt(bytes);
    return new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  }

  writeU32(va: bigint, value: number): number {
    const bytes = new Uint8Array(4);
    new DataView(bytes.buffer).setUint32(0, value >>> 0, true);
    return this.write(va, bytes);
  }

  writeU64(va: bigint, value: bigint): number {
    const bytes = new Uint8Array(8);
    new DataView(bytes.buffer).setBigUint64(0, BigInt.asUintN(64, value), true);
    return this.write(va, bytes);
  }
}

function negErrno(error: unknown): number {
  if (error instanceof SimError) return -error.errno;
  throw error;
}
