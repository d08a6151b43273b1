import type { Process } from '../os/index.js';
import type { DeepPartial, StructCodec } from '../uapi/index.js';
import { setupOk } from './expect.js';

/*
 * The conformance suites act as a VMM does: a process, a scratch area in its
 * memory for ioctl arguments and the buffers they point at, and raw
 * ioctl()/pread()/pwrite() on its file descriptors. Nothing here reaches
 * into the kernel model; what the kernel wrote back is read from the
 * process's memory.
 *
 * Public API: UserSpace
 */

const PAGE = 4096n;
/** Bytes of scratch: the ioctl struct at the start, data buffers after it. */
const SCRATCH_SIZE = 16n * PAGE;

export class UserSpace {
  /** Start of the scratch area; ioctl structs are placed here. */
  readonly scratch: bigint;

  constructor(readonly proc: Process) {
    this.scratch = proc.mmap(SCRATCH_SIZE);
    setupOk(this.scratch, 'mmap of the scratch area');
  }

  /** Address of byte `offset` of the scratch area (data buffers live at 0x1000 and up). */
  at(offset: number): bigint {
    return this.scratch + BigInt(offset);
  }

  write(addr: bigint, bytes: Uint8Array): void {
    this.proc.mm.copyToUser(addr, bytes);
  }

  read(addr: bigint, length: number): Uint8Array {
    return this.proc.mm.copyFromUser(addr, length);
  }

  /**
   * Writes `size` bytes of `value` (default the whole struct) at the start
   * of the scratch area, issues the ioctl and returns its result with the
   * struct as the kernel left it. `tail` more bytes after the struct are
   * zeroed first and returned in `bytes` (capability chains, flexible data).
   */
  ioctl<T>(
    fd: number,
    request: number,
    codec: StructCodec<T>,
    value: DeepPartial<NoInfer<T>>,
    options: { readonly size?: number; readonly tail?: number } = {},
  ): { rc: number; out: T; bytes: Uint8Array } {
    const size = options.size ?? codec.size;
    const span = Math.max(size, codec.size) + (options.tail ?? 0);
    const arg = new Uint8Array(span);
    arg.set(codec.encodeNew(value).subarray(0, Math.min(size, codec.size)));
    this.write(this.scratch, arg);
    const rc = this.proc.ioctl(fd, request, this.scratch);
    const bytes = this.read(this.scratch, span);
    const whole = new Uint8Array(codec.size);
    whole.set(bytes.subarray(0, Math.min(size, codec.size)));
    return { rc, out: codec.decode(whole), bytes };
  }

  /** An address with nothing mapped behind it: a page mapped and unmapped again. */
  unmappedAddress(): bigint {
    const addr = this.proc.mmap(PAGE);
    setupOk(addr, 'mmap of a page to unmap');
    setupOk(this.proc.munmap(addr, PAGE), 'munmap of that page');
    return addr;
  }
}
