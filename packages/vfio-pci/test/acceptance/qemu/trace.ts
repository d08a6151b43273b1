import { uapiFacts, type DeepPartial, type StructCodec } from '@vfiosim/core';
import type { User } from '../user.js';

type IoctlName = keyof typeof uapiFacts.ioctls;

/**
 * The system calls a ported VMM makes, each recorded as "NAME=result" so a
 * test can assert the exact sequence (the order QEMU issues its ioctls in)
 * next to the kernel's answer to each.
 */
export class Syscalls {
  readonly log: string[] = [];

  constructor(readonly user: User) {}

  get proc() {
    return this.user.proc;
  }

  #record<T extends number | bigint>(what: string, rc: T): T {
    this.log.push(`${what}=${rc}`);
    return rc;
  }

  open(path: string): number {
    return this.#record(`open(${path})`, this.proc.open(path));
  }

  close(fd: number): number {
    return this.#record('close', this.proc.close(fd));
  }

  /** An ioctl whose argument is a value, not a pointer (VFIO_CHECK_EXTENSION, VFIO_SET_IOMMU, ...). */
  ioctlValue(fd: number, name: IoctlName, arg: number | bigint = 0): number {
    return this.#record(name, this.proc.ioctl(fd, uapiFacts.ioctls[name], arg));
  }

  /** An ioctl on a pointer the caller laid out in user memory itself. */
  ioctlPtr(fd: number, name: IoctlName, at: bigint): number {
    return this.#record(name, this.proc.ioctl(fd, uapiFacts.ioctls[name], at));
  }

  /** An ioctl on a pointer to raw bytes; returns the result and the bytes after the call. */
  ioctlBytes(fd: number, name: IoctlName, bytes: Uint8Array): { rc: number; bytes: Uint8Array; at: bigint } {
    const at = this.user.push(bytes);
    const rc = this.#record(name, this.proc.ioctl(fd, uapiFacts.ioctls[name], at));
    return { rc, bytes: this.user.read(at, bytes.length), at };
  }

  /** An ioctl on a struct in a buffer of `bufSize` bytes (the struct, zero-extended). */
  ioctl<T>(fd: number, name: IoctlName, codec: StructCodec<T>, value: DeepPartial<T>, bufSize = codec.size) {
    const buf = new Uint8Array(Math.max(bufSize, codec.size));
    buf.set(codec.encodeNew(value));
    const { rc, bytes } = this.ioctlBytes(fd, name, buf);
    return { rc, out: codec.decode(bytes), bytes };
  }

  pread(fd: number, length: number, offset: bigint): { rc: number; bytes: Uint8Array } {
    const bytes = new Uint8Array(length);
    const rc = this.#record(`pread(${length})`, this.proc.pread(fd, bytes, offset));
    return { rc, bytes };
  }

  pwrite(fd: number, bytes: Uint8Array, offset: bigint): number {
    return this.#record(`pwrite(${bytes.length})`, this.proc.pwrite(fd, bytes, offset));
  }

  preadU32(fd: number, offset: bigint): number {
    const { rc, bytes } = this.pread(fd, 4, offset);
    if (rc !== 4) throw new Error(`pread at 0x${offset.toString(16)}: ${rc}`);
    return new DataView(bytes.buffer).getUint32(0, true);
  }

  preadU16(fd: number, offset: bigint): number {
    const { rc, bytes } = this.pread(fd, 2, offset);
    if (rc !== 2) throw new Error(`pread at 0x${offset.toString(16)}: ${rc}`);
    return new DataView(bytes.buffer).getUint16(0, true);
  }

  pwriteU32(fd: number, value: number, offset: bigint): number {
    const bytes = new Uint8Array(4);
    new DataView(bytes.buffer).setUint32(0, value >>> 0, true);
    return this.pwrite(fd, bytes, offset);
  }

  eventfd(): number {
    return this.#record('eventfd', this.proc.eventfd(0));
  }

  mmap(length: bigint, fd: number, offset: bigint, prot: number): bigint {
    return this.#record('mmap', this.proc.mmap(length, { fd, offset, prot }));
  }

  /** Clears the log (what came before is not under test). */
  mark(): void {
    this.log.length = 0;
  }
}
