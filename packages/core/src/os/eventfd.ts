import { SimError } from '../errors/index.js';
import type { VirtualClock } from './clock.js';
import { EFD_SEMAPHORE, EPOLLERR, EPOLLHUP, EPOLLIN, EPOLLOUT, O_NONBLOCK, O_RDWR } from './constants.js';
import { OpenFile, type FileOperations } from './file.js';
import type { Process } from './process.js';
import { WaitQueue } from './wait-queue.js';

const ULLONG_MAX = (1n << 64n) - 1n;

/**
 * Set while a kernel signal runs its wake functions. Linux refuses (WARNs
 * and drops) an eventfd_signal nested inside another one's wakeup, because
 * chained wake handlers can recurse without bound; the model throws so the
 * layer that did it defers the signal instead.
 */
let signalling = false;

/**
 * The eventfd counter (struct eventfd_ctx). It outlives its file: a driver
 * that took it with eventfdCtxFdget keeps signalling it after userspace
 * closes the fd, as the kernel's separately refcounted ctx allows.
 */
export class EventfdCtx {
  readonly semaphore: boolean;
  /** Readers, pollers and wake functions (irqfd, virqfd) hang here. */
  readonly waitQueue: WaitQueue;
  #count: bigint;
  #signalCount = 0;

  constructor(initval: bigint, semaphore: boolean, clock?: VirtualClock) {
    this.#count = initval;
    this.semaphore = semaphore;
    this.waitQueue = new WaitQueue(clock);
  }

  get count(): bigint {
    return this.#count;
  }

  /** How many times the kernel side signalled (interrupts delivered), for tests. */
  get signalCount(): number {
    return this.#signalCount;
  }

  /**
   * eventfd_signal: the kernel adds to the counter, saturating at
   * ULLONG_MAX (which poll reports as EPOLLERR) rather than blocking, since
   * interrupt delivery cannot sleep. Wakes readers with EPOLLIN.
   */
  signal(n = 1n): void {
    if (n < 0n) throw new RangeError(`eventfd signal of ${n}`);
    if (signalling) throw new Error('eventfd signalled from inside another eventfd wakeup; defer it');
    this.#signalCount++;
    this.#count = ULLONG_MAX - this.#count < n ? ULLONG_MAX : this.#count + n;
    signalling = true;
    try {
      this.waitQueue.wakeUp(EPOLLIN);
    } finally {
      signalling = false;
    }
  }

  /** eventfd_ctx_do_read: takes 1 in semaphore mode, else the whole count. */
  consume(): bigint {
    const taken = this.semaphore ? 1n : this.#count;
    this.#count -= taken;
    return taken;
  }

  /** The poll mask: readable when non-zero, error at ULLONG_MAX, writable below ULLONG_MAX - 1. */
  poll(): number {
    let mask = 0;
    if (this.#count > 0n) mask |= EPOLLIN;
    if (this.#count === ULLONG_MAX) mask |= EPOLLERR;
    if (ULLONG_MAX - 1n > this.#count) mask |= EPOLLOUT;
    return mask;
  }

  /** A write(2) of `value`: added only if the counter stays below ULLONG_MAX. */
  add(value: bigint): boolean {
    if (ULLONG_MAX - this.#count <= value) return false;
    this.#count += value;
    this.waitQueue.wakeUp(EPOLLIN);
    return true;
  }
}

/**
 * eventfd's file operations. Reads never block: the model has no threads
 * to park, and a blocking read that waited for a later signal would stall
 * the one deterministic caller forever. A read of a zero counter answers
 * EAGAIN whether or not EFD_NONBLOCK was given (as does a write that would
 * overflow); wait on ctx.waitQueue to block in kernel-side code instead.
 * No pread (the file is a stream: ESPIPE), no ioctl, no mmap.
 */
export const eventfdFileOps: FileOperations = Object.freeze({
  kind: 'eventfd',
  read(file: OpenFile, _proc: Process, length: number): Uint8Array {
    const ctx = file.privateData as EventfdCtx;
    if (length < 8) throw new SimError('INVALID_ARGUMENT', `eventfd read of ${length} bytes; 8 are needed`);
    if (ctx.count === 0n) throw new SimError('WOULD_BLOCK', 'eventfd counter is zero');
    const out = new Uint8Array(8);
    new DataView(out.buffer).setBigUint64(0, ctx.consume(), true);
    ctx.waitQueue.wakeUp(EPOLLOUT);
    return out;
  },
  write(file: OpenFile, _proc: Process, data: Uint8Array): number {
    const ctx = file.privateData as EventfdCtx;
    if (data.length < 8) throw new SimError('INVALID_ARGUMENT', `eventfd write of ${data.length} bytes; 8 are needed`);
    const value = new DataView(data.buffer, data.byteOffset, 8).getBigUint64(0, true);
    if (value === ULLONG_MAX) throw new SimError('INVALID_ARGUMENT', 'eventfd write of 0xffffffffffffffff');
    if (!ctx.add(value)) throw new SimError('WOULD_BLOCK', 'eventfd counter would overflow');
    return 8;
  },
  release(file: OpenFile): void {
    (file.privateData as EventfdCtx).waitQueue.wakeUp(EPOLLHUP);
  },
});

/** A new eventfd file (not yet in any fd table), as do_eventfd builds it. */
export function createEventfdFile(initval: bigint, flags: number, clock?: VirtualClock): OpenFile {
  const ctx = new EventfdCtx(initval, (flags & EFD_SEMAPHORE) !== 0, clock);
  return new OpenFile(eventfdFileOps, O_RDWR | (flags & O_NONBLOCK), ctx);
}

/** eventfd_ctx_fileget: the ctx behind an eventfd file; EINVAL for any other file. */
export function eventfdCtxFileget(file: OpenFile): EventfdCtx {
  if (file.ops !== eventfdFileOps) throw new SimError('WRONG_FILE_TYPE', `a ${file.ops.kind} file is not an eventfd`);
  return file.privateData as EventfdCtx;
}

/** eventfd_ctx_fdget: EBADF for a closed fd, EINVAL for an fd that is not an eventfd. */
export function eventfdCtxFdget(proc: Process, fd: number): EventfdCtx {
  return eventfdCtxFileget(proc.fdget(fd));
}
