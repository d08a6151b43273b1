import { describe, expect, it } from 'vitest';
import {
  EFD_CLOEXEC,
  EFD_NONBLOCK,
  EFD_SEMAPHORE,
  EPOLLERR,
  EPOLLHUP,
  EPOLLIN,
  EPOLLOUT,
  Errno,
  O_NONBLOCK,
  SimError,
  System,
  eventfdCtxFdget,
} from '@vfiosim/core';
import { PAGE } from './helpers.js';

function u64(value: bigint): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, value, true);
  return out;
}

function readCounter(proc: ReturnType<System['spawn']>, fd: number): bigint | number {
  const buf = new Uint8Array(8);
  const rc = proc.read(fd, buf);
  return rc < 0 ? rc : new DataView(buf.buffer).getBigUint64(0, true);
}

describe('eventfd', () => {
  it('returns the whole counter on read and resets it; a zero counter answers EAGAIN', () => {
    const proc = new System().spawn();
    const fd = proc.eventfd(3);
    expect(proc.write(fd, u64(4n))).toBe(8);
    expect(readCounter(proc, fd)).toBe(7n);
    expect(readCounter(proc, fd)).toBe(-Errno.EAGAIN);
  });

  it('answers EAGAIN on a zero counter even without EFD_NONBLOCK (reads never block in the model)', () => {
    const proc = new System().spawn();
    const blocking = proc.eventfd(0);
    const nonblocking = proc.eventfd(0, EFD_NONBLOCK);
    expect(proc.fdget(nonblocking).flags & O_NONBLOCK).toBe(O_NONBLOCK);
    expect(readCounter(proc, blocking)).toBe(-Errno.EAGAIN);
    expect(readCounter(proc, nonblocking)).toBe(-Errno.EAGAIN);
  });

  it('hands out one at a time in semaphore mode', () => {
    const proc = new System().spawn();
    const fd = proc.eventfd(2, EFD_SEMAPHORE);
    expect(readCounter(proc, fd)).toBe(1n);
    expect(readCounter(proc, fd)).toBe(1n);
    expect(readCounter(proc, fd)).toBe(-Errno.EAGAIN);
  });

  it('answers EINVAL for a buffer shorter than 8 bytes, and reads 8 from a longer one', () => {
    const proc = new System().spawn();
    const fd = proc.eventfd(1);
    expect(proc.read(fd, new Uint8Array(7))).toBe(-Errno.EINVAL);
    expect(proc.write(fd, new Uint8Array(4))).toBe(-Errno.EINVAL);
    expect(eventfdCtxFdget(proc, fd).count).toBe(1n);
    expect(proc.read(fd, new Uint8Array(16))).toBe(8);
    expect(proc.write(fd, new Uint8Array(16))).toBe(8);
  });

  it('refuses a write of 0xffffffffffffffff with EINVAL and one that would overflow with EAGAIN', () => {
    const proc = new System().spawn();
    const fd = proc.eventfd(0);
    expect(proc.write(fd, u64(0xffffffffffffffffn))).toBe(-Errno.EINVAL);
    expect(proc.write(fd, u64(0xfffffffffffffffen))).toBe(8);
    expect(proc.write(fd, u64(1n))).toBe(-Errno.EAGAIN);
    expect(readCounter(proc, fd)).toBe(0xfffffffffffffffen);
  });

  it('lets the kernel signal saturate at 0xffffffffffffffff, which poll reports as EPOLLERR', () => {
    const proc = new System().spawn();
    const fd = proc.eventfd(0);
    const ctx = eventfdCtxFdget(proc, fd);
    expect(ctx.poll()).toBe(EPOLLOUT);
    ctx.signal();
    expect(ctx.poll()).toBe(EPOLLIN | EPOLLOUT);
    ctx.signal(0xfffffffffffffff0n);
    ctx.signal(0x100n);
    expect(ctx.count).toBe(0xffffffffffffffffn);
    expect(ctx.poll()).toBe(EPOLLIN | EPOLLERR);
    expect(ctx.signalCount).toBe(3);
    expect(readCounter(proc, fd)).toBe(0xffffffffffffffffn);
  });

  it('rejects unknown flags with EINVAL and truncates the initial value to 32 bits', () => {
    const proc = new System().spawn();
    expect(proc.eventfd(0, 0x2)).toBe(-Errno.EINVAL);
    const fd = proc.eventfd(0x100000005n, EFD_CLOEXEC);
    expect(proc.files.isCloexec(fd)).toBe(true);
    expect(eventfdCtxFdget(proc, fd).count).toBe(5n);
  });

  it('is a stream with no ioctl and no mmap: ESPIPE, ENOTTY, ENODEV', () => {
    const proc = new System().spawn();
    const fd = proc.eventfd(1);
    expect(proc.pread(fd, new Uint8Array(8), 0)).toBe(-Errno.ESPIPE);
    expect(proc.ioctl(fd, 0x3b6e, 0)).toBe(-Errno.ENOTTY);
    expect(proc.mmap(PAGE, { fd })).toBe(-BigInt(Errno.ENODEV));
  });

  it('looks a ctx up by fd as the kernel does: EBADF for a closed fd, EINVAL for another kind of file', () => {
    const proc = new System().spawn();
    const errnoOf = (fd: number) => {
      try {
        eventfdCtxFdget(proc, fd);
        return 0;
      } catch (error) {
        return (error as SimError).errnoName;
      }
    };
    expect(errnoOf(5)).toBe('EBADF');
    expect(errnoOf(proc.memfdCreate('m'))).toBe('EINVAL');
  });

  it('keeps a ctx taken by the kernel usable after userspace closes the fd, and wakes EPOLLHUP on release', () => {
    const system = new System();
    const proc = system.spawn();
    const fd = proc.eventfd(0);
    const ctx = eventfdCtxFdget(proc, fd);
    const keys: number[] = [];
    ctx.waitQueue.addWakeFunction((key) => keys.push(key));
    proc.close(fd);
    ctx.signal();
    expect(ctx.count).toBe(1n);
    expect(keys).toEqual([EPOLLHUP, EPOLLIN]);
  });

  it('runs wake functions on a user write, as irqfd-style consumers need', () => {
    const proc = new System().spawn();
    const fd = proc.eventfd(0);
    const ctx = eventfdCtxFdget(proc, fd);
    const seen: bigint[] = [];
    const remove = ctx.waitQueue.addWakeFunction(() => seen.push(ctx.consume()));
    proc.write(fd, u64(2n));
    remove();
    proc.write(fd, u64(3n));
    expect(seen).toEqual([2n]);
    expect(ctx.count).toBe(3n);
  });

  it('treats a kernel signal nested in another eventfd wakeup as a model bug', () => {
    const proc = new System().spawn();
    const outer = eventfdCtxFdget(proc, proc.eventfd(0));
    const inner = eventfdCtxFdget(proc, proc.eventfd(0));
    outer.waitQueue.addWakeFunction(() => inner.signal());
    expect(() => outer.signal()).toThrow(/defer/);
    expect(() => inner.signal()).not.toThrow();
  });

  it('lets kernel code wait for a signal on the ctx wait queue', async () => {
    const proc = new System().spawn();
    const ctx = eventfdCtxFdget(proc, proc.eventfd(0));
    let done = false;
    const wait = ctx.waitQueue.waitEvent(() => ctx.count > 0n).then((met) => {
      done = met;
    });
    await Promise.resolve();
    expect(done).toBe(false);
    ctx.signal();
    await wait;
    expect(done).toBe(true);
  });
});
