import { describe, expect, it } from 'vitest';
import {
  Errno,
  MFD_CLOEXEC,
  MFD_EXEC,
  MFD_HUGETLB,
  MFD_NOEXEC_SEAL,
  O_RDONLY,
  OpenFile,
  System,
  memfdObject,
} from '@vfiosim/core';
import { EFAULT, PAGE, addr, bytes } from './helpers.js';

describe('memfd', () => {
  it('shares its pages between two mappings and a second process: a write through one is seen by all', () => {
    const system = new System();
    const vmm = system.spawn();
    const helper = system.spawn();
    const fd = vmm.memfdCreate('guest-ram');
    expect(vmm.ftruncate(fd, 4n * PAGE)).toBe(0);
    const a = addr(vmm.mmap(4n * PAGE, { fd }));
    const b = addr(vmm.mmap(2n * PAGE, { fd, offset: 2n * PAGE }));
    const theirs = vmm.sendFd(helper, fd);
    const c = addr(helper.mmap(4n * PAGE, { fd: theirs }));
    expect(a).not.toBe(b);

    vmm.mem.write(a + 2n * PAGE + 10n, bytes(0x11));
    expect(vmm.mem.read(b + 10n, 1)).toEqual(bytes(0x11));
    expect(helper.mem.read(c + 2n * PAGE + 10n, 1)).toEqual(bytes(0x11));
    helper.mem.write(c + 3n * PAGE, bytes(0x22));
    expect(vmm.mem.read(b + PAGE, 1)).toEqual(bytes(0x22));
    expect(vmm.mm.translate(b + PAGE)).toBe(helper.mm.translate(c + 3n * PAGE));
    expect(system.physMem.allocatedFrames).toBe(2);
  });

  it('lives while mapped after the last close, and frees its frames with the last mapping', () => {
    const system = new System();
    const proc = system.spawn();
    const fd = proc.memfdCreate('m');
    proc.ftruncate(fd, 2n * PAGE);
    const va = addr(proc.mmap(2n * PAGE, { fd }));
    proc.close(fd);
    proc.mem.write(va, bytes(1));
    proc.mem.write(va + PAGE, bytes(2));
    proc.munmap(va, PAGE);
    expect(proc.mem.read(va + PAGE, 1)).toEqual(bytes(2));
    expect(system.physMem.allocatedFrames).toBe(2);
    proc.munmap(va + PAGE, PAGE);
    expect(system.physMem.allocatedFrames).toBe(0);
  });

  it('grows on pwrite past the end, stops pread at the end and reads holes as zeros without allocating', () => {
    const system = new System();
    const proc = system.spawn();
    const fd = proc.memfdCreate('m');
    const buf = new Uint8Array(8);
    expect(proc.pread(fd, buf, 0)).toBe(0);
    expect(proc.pwrite(fd, bytes(1, 2, 3), 3n * PAGE)).toBe(3);
    expect(memfdObject(proc.fdget(fd))?.size).toBe(3n * PAGE + 3n);
    expect(system.physMem.allocatedFrames).toBe(1);
    expect(proc.pread(fd, buf, 0)).toBe(8);
    expect(buf).toEqual(new Uint8Array(8));
    expect(system.physMem.allocatedFrames).toBe(1);
    expect(proc.pread(fd, buf, 3n * PAGE + 1n)).toBe(2);
    expect(buf.subarray(0, 2)).toEqual(bytes(2, 3));
  });

  it('reads and writes sequentially at the file position', () => {
    const proc = new System().spawn();
    const fd = proc.memfdCreate('m');
    expect(proc.write(fd, bytes(1, 2, 3, 4))).toBe(4);
    expect(proc.fdget(fd).pos).toBe(4n);
    const buf = new Uint8Array(4);
    expect(proc.read(fd, buf)).toBe(0);
    proc.fdget(fd).pos = 1n;
    expect(proc.read(fd, buf)).toBe(3);
    expect(buf.subarray(0, 3)).toEqual(bytes(2, 3, 4));
  });

  it('faults past the end of the file through a mapping (SIGBUS as EFAULT)', () => {
    const proc = new System().spawn();
    const fd = proc.memfdCreate('m');
    proc.ftruncate(fd, 100);
    const va = addr(proc.mmap(2n * PAGE, { fd }));
    expect(proc.mem.write(va + 4095n, bytes(1))).toBe(0);
    expect(proc.mem.write(va + PAGE, bytes(1))).toBe(EFAULT);
    expect(proc.mem.read(va + 4094n, 4)).toBe(EFAULT);
    expect(() => proc.mm.pinUserPages(va, 2, true)).toThrow(/SIGBUS/);
  });

  it('drops the pages past a shrink and zeroes the tail of the last page, but pinned frames live on', () => {
    const system = new System();
    const proc = system.spawn();
    const fd = proc.memfdCreate('m');
    proc.ftruncate(fd, 2n * PAGE);
    const va = addr(proc.mmap(2n * PAGE, { fd }));
    proc.mem.write(va + 10n, bytes(1, 2, 3));
    const [pinned] = proc.mm.pinUserPages(va + PAGE, 1, true);
    pinned.data[0] = 9;
    expect(proc.ftruncate(fd, 11)).toBe(0);
    expect(pinned.live).toBe(true);
    expect(proc.mem.read(va + PAGE, 1)).toBe(EFAULT);
    proc.ftruncate(fd, 2n * PAGE);
    expect(proc.mem.read(va + 10n, 3)).toEqual(bytes(1, 0, 0));
    expect(proc.mem.read(va + PAGE, 1)).toEqual(bytes(0));
    expect(pinned.data[0]).toBe(9);
    pinned.unpin();
  });

  it('refuses ftruncate with a negative size, on a file opened read-only and on a non-regular file (EINVAL)', () => {
    const system = new System();
    const proc = system.spawn();
    const fd = proc.memfdCreate('m');
    expect(proc.ftruncate(fd, -1)).toBe(-Errno.EINVAL);
    expect(proc.ftruncate(proc.eventfd(), 0)).toBe(-Errno.EINVAL);
    const ro = proc.installFd(new OpenFile(proc.fdget(fd).ops, O_RDONLY, memfdObject(proc.fdget(fd))!.get()));
    expect(proc.ftruncate(ro, 0)).toBe(-Errno.EINVAL);
  });

  it('validates memfd_create flags and the name length as the kernel does', () => {
    const proc = new System().spawn();
    expect(proc.memfdCreate('m', 0x100)).toBe(-Errno.EINVAL);
    expect(proc.memfdCreate('m', MFD_EXEC | MFD_NOEXEC_SEAL)).toBe(-Errno.EINVAL);
    expect(proc.memfdCreate('x'.repeat(250))).toBe(-Errno.EINVAL);
    expect(proc.memfdCreate('x'.repeat(249))).toBe(0);
    expect(proc.memfdCreate('huge', MFD_HUGETLB)).toBe(-Errno.ENOSYS);
    expect(proc.memfdCreate('huge', MFD_HUGETLB | (1 << 25))).toBe(-Errno.EINVAL);
    const fd = proc.memfdCreate('c', MFD_CLOEXEC);
    expect(fd).toBe(1);
    expect(proc.files.isCloexec(fd)).toBe(true);
    expect(memfdObject(proc.fdget(fd))?.name).toBe('memfd:c');
  });

  it('tells a memfd apart from other files', () => {
    const proc = new System().spawn();
    expect(memfdObject(proc.fdget(proc.eventfd()))).toBeNull();
  });
});
