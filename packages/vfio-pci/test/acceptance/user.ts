import { expect } from 'vitest';
import type { DeepPartial, Process, StructCodec } from '@vfiosim/core';

/**
 * The C side of a ported userspace program: structs live in the process's
 * own memory (a bump-allocated arena standing for the stack and heap) and
 * every call is a raw syscall on the simulated process, so what the kernel
 * reads and writes back is exactly what a C program would see.
 */
export class User {
  readonly proc: Process;
  readonly #base: bigint;
  readonly #size: bigint;
  #next = 0n;

  constructor(proc: Process, arenaSize = 1n << 20n) {
    this.proc = proc;
    // A C program starts with stdin, stdout and stderr open; the library
    // relies on open() never returning 0. Any file will do to hold them.
    for (let fd = 0; fd < 3; fd++) expect(proc.eventfd(0)).toBe(fd);
    const base = proc.mmap(arenaSize);
    expect(base > 0n, `mmap of the arena: ${base}`).toBe(true);
    this.#base = base;
    this.#size = arenaSize;
  }

  /** malloc: `size` zeroed bytes, 8-aligned. */
  alloc(size: number): bigint {
    const aligned = (BigInt(size) + 7n) & ~7n;
    if (aligned > this.#size) throw new Error(`${size} bytes do not fit the arena`);
    // The arena is reused from the start when full: no struct outlives a few calls.
    if (this.#next + aligned > this.#size) this.#next = 0n;
    const at = this.#base + this.#next;
    this.#next += aligned;
    this.proc.mem.write(at, new Uint8Array(size));
    return at;
  }

  /** A buffer holding `bytes`. */
  push(bytes: Uint8Array): bigint {
    const at = this.alloc(bytes.length);
    expect(this.proc.mem.write(at, bytes)).toBe(0);
    return at;
  }

  /** A NUL-terminated C string. */
  string(text: string): bigint {
    const bytes = new TextEncoder().encode(text);
    const out = new Uint8Array(bytes.length + 1);
    out.set(bytes);
    return this.push(out);
  }

  /** An int in memory (for VFIO_GROUP_SET_CONTAINER's `int *`). */
  int(value: number): bigint {
    const bytes = new Uint8Array(4);
    new DataView(bytes.buffer).setInt32(0, value, true);
    return this.push(bytes);
  }

  read(at: bigint, length: number): Uint8Array {
    const bytes = this.proc.mem.read(at, length);
    if (typeof bytes === 'number') throw new Error(`read of 0x${at.toString(16)}: ${bytes}`);
    return bytes;
  }

  /**
   * ioctl(fd, request, &s) with `s` a struct of `codec` initialised as C
   * designated initialisers do (everything else zero), in a buffer of
   * `bufSize` bytes (default sizeof). Returns the ioctl result and the
   * struct as the kernel left it.
   */
  ioctl<T>(fd: number, request: number, codec: StructCodec<T>, value: DeepPartial<T>, bufSize = codec.size): Ioctl<T> {
    const buf = new Uint8Array(Math.max(bufSize, codec.size));
    buf.set(codec.encodeNew(value));
    const at = this.push(buf);
    const rc = this.proc.ioctl(fd, request, at);
    const bytes = this.read(at, buf.length);
    return { rc, out: codec.decode(bytes), bytes, at };
  }
}

export interface Ioctl<T> {
  readonly rc: number;
  /** The struct after the call. */
  readonly out: T;
  /** The whole buffer after the call (struct and anything past it). */
  readonly bytes: Uint8Array;
  readonly at: bigint;
}

/** ioctl_assert: the call must return 0. */
export function ioctlAssert(rc: number, what: string): void {
  expect(rc, `${what} returned ${rc}`).toBe(0);
}
