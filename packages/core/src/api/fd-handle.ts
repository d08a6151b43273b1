import { Errno } from '../errors/index.js';
import type { Process } from '../os/index.js';
import { uapiFacts, type DeepPartial, type IoctlName, type StructCodec } from '../uapi/index.js';
import { ArgBuffer } from './arg-buffer.js';
import { checkSyscall, SyscallError, type SyscallName } from './syscall-error.js';

/** A struct ioctl's answer: the struct as the kernel left it, and the raw bytes (a capability chain follows the struct). */
export interface StructAnswer<T> {
  readonly rc: number;
  readonly value: T;
  readonly bytes: Uint8Array;
}

/**
 * An fd the typed API owns in one process, and the way every handle talks
 * to the kernel: the argument is encoded into the process's memory and
 * passed to proc.ioctl by address, exactly as a C caller does, so every
 * argsz rule and errno of the ioctl layer applies unchanged.
 *
 * After close() the handle makes no more calls: the fd number may already
 * belong to another file, so a method on a closed handle throws EBADF
 * without reaching the kernel.
 */
export abstract class FdHandle {
  #closed = false;

  protected constructor(
    readonly proc: Process,
    readonly fd: number,
  ) {}

  get closed(): boolean {
    return this.#closed;
  }

  /** close(2). A second close is a no-op. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    checkSyscall(this.proc.close(this.fd), 'close', { fd: this.fd });
  }

  /** EBADF, without a system call, once the handle is closed. */
  protected assertOpen(syscall: SyscallName, request?: string): void {
    if (this.#closed) throw new SyscallError(syscall, Errno.EBADF, { fd: this.fd, request });
  }

  /** ioctl with an integer (or no) argument. */
  protected ioctlValue(name: IoctlName, arg: number | bigint = 0n): number {
    this.assertOpen('ioctl', name);
    return checkSyscall(this.proc.ioctl(this.fd, uapiFacts.ioctls[name], arg), 'ioctl', { fd: this.fd, request: name });
  }

  /**
   * ioctl with raw argument bytes placed in the argument area; returns the
   * result and `readBack` bytes of the area afterwards.
   */
  protected ioctlBytes(name: IoctlName, arg: Uint8Array, readBack = arg.length): { rc: number; bytes: Uint8Array } {
    this.assertOpen('ioctl', name);
    const buffer = ArgBuffer.of(this.proc, Math.max(arg.length, readBack));
    const argp = buffer.put(arg);
    const rc = checkSyscall(this.proc.ioctl(this.fd, uapiFacts.ioctls[name], argp), 'ioctl', { fd: this.fd, request: name });
    return { rc, bytes: buffer.get(readBack) };
  }

  /**
   * ioctl with a struct: `value` encoded into `size` bytes (the struct's
   * size unless a longer argsz leaves room for a capability chain), the
   * struct decoded from what the kernel wrote back.
   */
  protected ioctlStruct<T>(name: IoctlName, codec: StructCodec<T>, value: NoInfer<DeepPartial<T>>, size = codec.size): StructAnswer<T> {
    const arg = new Uint8Array(Math.max(size, codec.size));
    arg.set(codec.encodeNew(value));
    const { rc, bytes } = this.ioctlBytes(name, arg);
    return { rc, value: codec.decode(bytes), bytes };
  }
}
