import { describe, expect, it } from 'vitest';
import {
  Errno,
  FIOCLEX,
  FIONBIO,
  FIONCLEX,
  MAP_FIXED,
  MAP_SHARED,
  MAP_SHARED_VALIDATE,
  MAP_SYNC,
  O_CLOEXEC,
  O_NONBLOCK,
  O_RDONLY,
  O_RDWR,
  O_WRONLY,
  OpenFile,
  PROT_READ,
  SimError,
  System,
} from '@vfiosim/core';
import { EBADF, EFAULT, FakeBar, PAGE, addr, bytes, fakeDevice } from './helpers.js';

describe('file descriptors', () => {
  it('hands out the lowest free fd', () => {
    const system = new System();
    fakeDevice(system, '/dev/x');
    const proc = system.spawn();
    expect([proc.open('/dev/x'), proc.open('/dev/x'), proc.open('/dev/x')]).toEqual([0, 1, 2]);
    expect(proc.close(1)).toBe(0);
    expect(proc.open('/dev/x')).toBe(1);
    expect(proc.files.fds()).toEqual([0, 1, 2]);
  });

  it('answers EBADF for a closed or never-opened fd on every fd syscall', () => {
    const system = new System();
    fakeDevice(system, '/dev/x');
    const proc = system.spawn();
    const other = system.spawn();
    const fd = proc.open('/dev/x');
    proc.close(fd);
    const buf = new Uint8Array(8);
    expect(proc.close(fd)).toBe(EBADF);
    expect(proc.dup(fd)).toBe(EBADF);
    expect(proc.ioctl(fd, 0x3b64, 0n)).toBe(EBADF);
    expect(proc.read(fd, buf)).toBe(EBADF);
    expect(proc.write(fd, buf)).toBe(EBADF);
    expect(proc.pread(fd, buf, 0)).toBe(EBADF);
    expect(proc.pwrite(fd, buf, 0)).toBe(EBADF);
    expect(proc.ftruncate(fd, 0)).toBe(EBADF);
    expect(proc.mmap(PAGE, { fd })).toBe(BigInt(EBADF));
    expect(proc.sendFd(other, fd)).toBe(EBADF);
    expect(proc.close(-1)).toBe(EBADF);
    expect(proc.close(1.5)).toBe(EBADF);
    expect(() => proc.fdget(fd)).toThrow(SimError);
  });

  it('answers ENOENT for an unknown device node without using up an fd', () => {
    const system = new System();
    fakeDevice(system, '/dev/x');
    const proc = system.spawn();
    expect(proc.open('/dev/nope')).toBe(-Errno.ENOENT);
    expect(proc.open('/dev/x')).toBe(0);
  });

  it('answers EMFILE when the table is full, before looking the path up', () => {
    const system = new System();
    fakeDevice(system, '/dev/x');
    const proc = system.spawn();
    for (let i = 0; i < proc.files.limit; i++) expect(proc.open('/dev/x')).toBe(i);
    expect(proc.open('/dev/nope')).toBe(-Errno.EMFILE);
    expect(proc.eventfd()).toBe(-Errno.EMFILE);
    expect(proc.memfdCreate('m')).toBe(-Errno.EMFILE);
    expect(proc.dup(0)).toBe(-Errno.EMFILE);
    expect(proc.files.get(0).refs).toBe(1);
  });

  it('passes the open flags to the driver but keeps close-on-exec on the fd', () => {
    const system = new System();
    const dev = fakeDevice(system, '/dev/x');
    const proc = system.spawn();
    const fd = proc.open('/dev/x', O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    expect(dev.opened[0].flags).toBe(O_RDONLY | O_NONBLOCK);
    expect(proc.files.isCloexec(fd)).toBe(true);
  });

  it('returns the driver error from a failing open and frees the reserved fd', () => {
    const system = new System();
    system.devfs.register('/dev/busy', () => {
      throw new SimError('BUSY', 'in use');
    });
    const proc = system.spawn();
    expect(proc.open('/dev/busy')).toBe(-Errno.EBUSY);
    expect(proc.files.fds()).toEqual([]);
  });

  it('dup shares one open file, without close-on-exec; release runs after the last close', () => {
    const system = new System();
    const dev = fakeDevice(system, '/dev/x');
    const proc = system.spawn();
    const fd = proc.open('/dev/x', O_RDWR | O_CLOEXEC);
    const copy = proc.dup(fd);
    expect(copy).toBe(1);
    expect(proc.fdget(copy)).toBe(proc.fdget(fd));
    expect(proc.files.isCloexec(copy)).toBe(false);
    proc.close(fd);
    expect(dev.releases).toBe(0);
    proc.close(copy);
    expect(dev.releases).toBe(1);
  });

  it('runs release only when the last kernel reference is put as well', () => {
    const system = new System();
    const dev = fakeDevice(system, '/dev/x');
    const proc = system.spawn();
    const fd = proc.open('/dev/x');
    const held = proc.fdget(fd).get();
    proc.close(fd);
    expect(dev.releases).toBe(0);
    held.put();
    expect(dev.releases).toBe(1);
    expect(held.released).toBe(true);
    expect(() => held.put()).toThrow(/after release/);
  });

  it('installs a kernel-made file in the lowest fd', () => {
    const proc = new System().spawn();
    const file = new OpenFile({ kind: 'anon' }, O_RDWR);
    expect(proc.installFd(file, O_CLOEXEC)).toBe(0);
    expect(proc.fdget(0)).toBe(file);
    expect(proc.files.isCloexec(0)).toBe(true);
  });
});

describe('ioctl', () => {
  it('passes request and argp (as an unsigned long) to the driver and returns its answer', () => {
    const system = new System();
    const calls: [number, bigint][] = [];
    fakeDevice(system, '/dev/x', {
      ioctl: (_file, _proc, request, argp) => {
        calls.push([request, argp]);
        return 7;
      },
    });
    const proc = system.spawn();
    const fd = proc.open('/dev/x');
    expect(proc.ioctl(fd, 0x3b6f, 0x1000)).toBe(7);
    expect(proc.ioctl(fd, -1, -1)).toBe(7);
    expect(calls).toEqual([
      [0x3b6f, 0x1000n],
      [0xffffffff, 0xffffffffffffffffn],
    ]);
  });

  it('turns a SimError thrown by the driver into -errno', () => {
    const system = new System();
    fakeDevice(system, '/dev/x', {
      ioctl: () => {
        throw new SimError('ARG_TAIL_NONZERO', 'tail');
      },
    });
    const proc = system.spawn();
    expect(proc.ioctl(proc.open('/dev/x'), 1, 0)).toBe(-Errno.E2BIG);
  });

  it('answers ENOTTY for a file without an ioctl op', () => {
    const system = new System();
    fakeDevice(system, '/dev/x');
    const proc = system.spawn();
    expect(proc.ioctl(proc.open('/dev/x'), 0x3b64, 0)).toBe(-Errno.ENOTTY);
  });

  it('answers FIOCLEX, FIONCLEX and FIONBIO in the VFS for any file', () => {
    const system = new System();
    fakeDevice(system, '/dev/x');
    const proc = system.spawn();
    const fd = proc.open('/dev/x');
    expect(proc.ioctl(fd, FIOCLEX)).toBe(0);
    expect(proc.files.isCloexec(fd)).toBe(true);
    expect(proc.ioctl(fd, FIONCLEX)).toBe(0);
    expect(proc.files.isCloexec(fd)).toBe(false);
    const va = addr(proc.mmap(PAGE));
    proc.mem.writeU32(va, 1);
    expect(proc.ioctl(fd, FIONBIO, va)).toBe(0);
    expect(proc.fdget(fd).flags & O_NONBLOCK).toBe(O_NONBLOCK);
    proc.mem.writeU32(va, 0);
    expect(proc.ioctl(fd, FIONBIO, va)).toBe(0);
    expect(proc.fdget(fd).flags & O_NONBLOCK).toBe(0);
    expect(proc.ioctl(fd, FIONBIO, 0)).toBe(EFAULT);
  });
});

describe('read and write', () => {
  it('answers EINVAL when the file has neither read nor pread, and EBADF when not opened for the access', () => {
    const system = new System();
    fakeDevice(system, '/dev/x');
    fakeDevice(system, '/dev/y', { read: () => bytes(1), write: (_f, _p, data) => data.length });
    const proc = system.spawn();
    const x = proc.open('/dev/x');
    const buf = new Uint8Array(4);
    expect(proc.read(x, buf)).toBe(-Errno.EINVAL);
    expect(proc.write(x, buf)).toBe(-Errno.EINVAL);
    const readOnly = proc.open('/dev/y', O_RDONLY);
    const writeOnly = proc.open('/dev/y', O_WRONLY);
    expect(proc.write(readOnly, buf)).toBe(EBADF);
    expect(proc.read(writeOnly, buf)).toBe(EBADF);
    expect(proc.read(readOnly, buf)).toBe(1);
    expect(proc.write(writeOnly, buf)).toBe(4);
  });

  it('answers ESPIPE for pread/pwrite on a stream, EINVAL for a negative offset before looking at the fd', () => {
    const system = new System();
    fakeDevice(system, '/dev/stream', { read: () => bytes(1) });
    const proc = system.spawn();
    const fd = proc.open('/dev/stream');
    const buf = new Uint8Array(1);
    expect(proc.pread(fd, buf, 0)).toBe(-Errno.ESPIPE);
    expect(proc.pwrite(fd, buf, 0)).toBe(-Errno.ESPIPE);
    expect(proc.pread(99, buf, -1)).toBe(-Errno.EINVAL);
    expect(proc.pwrite(99, buf, -1n)).toBe(-Errno.EINVAL);
  });

  it('checks the access mode of a positional file after its pread op exists', () => {
    const system = new System();
    fakeDevice(system, '/dev/region', { pread: (_f, _p, length) => new Uint8Array(length), pwrite: (_f, _p, data) => data.length });
    const proc = system.spawn();
    const buf = new Uint8Array(4);
    expect(proc.pread(proc.open('/dev/region', O_WRONLY), buf, 0)).toBe(EBADF);
    expect(proc.pwrite(proc.open('/dev/region', O_RDONLY), buf, 0)).toBe(EBADF);
    expect(proc.pread(proc.open('/dev/region', O_RDONLY), buf, 0x7ffffffffffffffen)).toBe(-Errno.EINVAL);
  });

  it('serves read and write of a positional file at the file position, advancing it', () => {
    const system = new System();
    const offsets: bigint[] = [];
    fakeDevice(system, '/dev/region', {
      pread: (_f, _p, length, offset) => {
        offsets.push(offset);
        return new Uint8Array(length).fill(Number(offset));
      },
      pwrite: (_f, _p, data, offset) => {
        offsets.push(offset);
        return data.length;
      },
    });
    const proc = system.spawn();
    const fd = proc.open('/dev/region');
    const buf = new Uint8Array(2);
    expect(proc.read(fd, buf)).toBe(2);
    expect(proc.read(fd, buf)).toBe(2);
    expect(buf).toEqual(bytes(2, 2));
    expect(proc.write(fd, bytes(1, 2, 3))).toBe(3);
    expect(offsets).toEqual([0n, 2n, 4n]);
    expect(proc.fdget(fd).pos).toBe(7n);
  });
});

describe('mmap of files', () => {
  it('answers ENODEV for a file without an mmap op', () => {
    const system = new System();
    fakeDevice(system, '/dev/x');
    const proc = system.spawn();
    expect(proc.mmap(PAGE, { fd: proc.open('/dev/x') })).toBe(-BigInt(Errno.ENODEV));
  });

  it('answers EACCES for a shared writable map of a read-only fd and for any map of a write-only fd', () => {
    const system = new System();
    const bar = new FakeBar(0x1000);
    fakeDevice(system, '/dev/bar', { mmap: () => ({ kind: 'mmio', mmio: bar }) });
    const proc = system.spawn();
    const ro = proc.open('/dev/bar', O_RDONLY);
    expect(proc.mmap(PAGE, { fd: ro })).toBe(-BigInt(Errno.EACCES));
    expect(proc.mmap(PAGE, { fd: ro, prot: PROT_READ })).toBeGreaterThan(0n);
    expect(proc.mmap(PAGE, { fd: proc.open('/dev/bar', O_WRONLY), prot: PROT_READ })).toBe(-BigInt(Errno.EACCES));
  });

  it('ignores unknown flags with MAP_SHARED but refuses them with MAP_SHARED_VALIDATE', () => {
    const system = new System();
    const bar = new FakeBar(0x1000);
    fakeDevice(system, '/dev/bar', { mmap: () => ({ kind: 'mmio', mmio: bar }) });
    const proc = system.spawn();
    const fd = proc.open('/dev/bar');
    expect(proc.mmap(PAGE, { fd, flags: MAP_SHARED | MAP_SYNC })).toBeGreaterThan(0n);
    expect(proc.mmap(PAGE, { fd, flags: MAP_SHARED_VALIDATE | MAP_SYNC })).toBe(-BigInt(Errno.EOPNOTSUPP));
    expect(proc.mmap(PAGE, { fd, flags: MAP_SHARED_VALIDATE })).toBeGreaterThan(0n);
  });

  it('checks the address (EEXIST) before the file (ENODEV)', () => {
    const system = new System();
    fakeDevice(system, '/dev/x');
    const proc = system.spawn();
    const at = addr(proc.mmap(PAGE));
    expect(proc.mmap(PAGE, { fd: proc.open('/dev/x'), addr: at, fixed: true })).toBe(-BigInt(Errno.EEXIST));
  });

  it('answers EOVERFLOW when offset + length passes the largest file offset', () => {
    const system = new System();
    const bar = new FakeBar(0x1000);
    fakeDevice(system, '/dev/bar', { mmap: () => ({ kind: 'mmio', mmio: bar }) });
    const proc = system.spawn();
    expect(proc.mmap(2n * PAGE, { fd: proc.open('/dev/bar'), offset: -4096n })).toBe(-BigInt(Errno.EOVERFLOW));
    const memfd = proc.memfdCreate('m');
    expect(proc.mmap(PAGE, { fd: memfd, offset: 1n << 63n })).toBe(-BigInt(Errno.EOVERFLOW));
  });

  it('passes prot and sharing to the driver, whose refusal leaves a MAP_FIXED range as it was', () => {
    const system = new System();
    const requests: unknown[] = [];
    fakeDevice(system, '/dev/bar', {
      mmap: (_f, _p, _o, _l, request) => {
        requests.push(request);
        throw new SimError('INVALID_ARGUMENT', 'private BAR mapping');
      },
    });
    const proc = system.spawn();
    const at = addr(proc.mmap(PAGE));
    proc.mem.write(at, bytes(6));
    const fd = proc.open('/dev/bar');
    expect(proc.mmap(PAGE, { fd, addr: at, flags: MAP_SHARED | MAP_FIXED, prot: PROT_READ })).toBe(-BigInt(Errno.EINVAL));
    expect(requests).toEqual([{ prot: PROT_READ, shared: true, flags: MAP_SHARED | MAP_FIXED }]);
    expect(proc.mem.read(at, 1)).toEqual(bytes(6));
  });

  it('keeps the file open while mapped: release waits for the munmap after close', () => {
    const system = new System();
    const bar = new FakeBar(0x1000);
    const dev = fakeDevice(system, '/dev/bar', { mmap: () => ({ kind: 'mmio', mmio: bar }) });
    const proc = system.spawn();
    const fd = proc.open('/dev/bar');
    const va = addr(proc.mmap(2n * PAGE, { fd }));
    proc.munmap(va, PAGE);
    proc.close(fd);
    expect(dev.releases).toBe(0);
    expect(proc.mm.findVma(va + PAGE)?.file).toBe(dev.opened[0]);
    proc.munmap(va + PAGE, PAGE);
    expect(dev.releases).toBe(1);
  });
});

describe('exec', () => {
  it('keeps fds without close-on-exec, closes the others and replaces the address space', () => {
    const system = new System();
    const dev = fakeDevice(system, '/dev/x');
    const proc = system.spawn();
    const kept = proc.open('/dev/x');
    const dropped = proc.open('/dev/x', O_RDWR | O_CLOEXEC);
    const va = addr(proc.mmap(PAGE));
    proc.mem.write(va, bytes(1));
    const oldMm = proc.mm;
    expect(proc.exec()).toBe(0);
    expect(proc.files.fds()).toEqual([kept]);
    expect(proc.fdget(kept)).toBe(dev.opened[0]);
    expect(proc.read(dropped, new Uint8Array(1))).toBe(EBADF);
    expect(dev.releases).toBe(1);
    expect(proc.mm).not.toBe(oldMm);
    expect(oldMm.released).toBe(true);
    expect(proc.mm.vmas).toHaveLength(0);
    expect(proc.mem.read(va, 1)).toBe(EFAULT);
    expect(system.physMem.allocatedFrames).toBe(0);
  });

  it('leaves pages pinned from the old address space pinned', () => {
    const system = new System();
    const proc = system.spawn();
    const va = addr(proc.mmap(PAGE));
    const [frame] = proc.mm.pinUserPages(va, 1, true);
    proc.exec();
    expect(frame.live).toBe(true);
    expect(system.physMem.pinnedFrames).toBe(1);
    frame.unpin();
    expect(system.physMem.allocatedFrames).toBe(0);
  });
});

describe('exit', () => {
  it('closes every fd, drops the address space and leaves the process table; later syscalls are a harness bug', () => {
    const system = new System();
    const dev = fakeDevice(system, '/dev/x');
    const proc = system.spawn();
    proc.open('/dev/x');
    proc.open('/dev/x', O_RDWR | O_CLOEXEC);
    proc.mmap(PAGE);
    proc.mem.write(proc.mm.vmas[0].start, bytes(1));
    proc.exit();
    expect(dev.releases).toBe(2);
    expect(system.physMem.allocatedFrames).toBe(0);
    expect(system.process(proc.pid)).toBeUndefined();
    expect(proc.alive).toBe(false);
    expect(() => proc.open('/dev/x')).toThrow(/has exited/);
    expect(() => proc.mmap(PAGE)).toThrow(/has exited/);
    expect(() => proc.exit()).toThrow(/has exited/);
  });
});

describe('sendFd', () => {
  it('installs the same open file in the receiver; release runs only after both close', () => {
    const system = new System();
    const dev = fakeDevice(system, '/dev/x');
    const a = system.spawn();
    const b = system.spawn();
    b.open('/dev/x');
    const fd = a.open('/dev/x');
    const received = a.sendFd(b, fd);
    expect(received).toBe(1);
    expect(b.fdget(received)).toBe(a.fdget(fd));
    a.close(fd);
    expect(dev.releases).toBe(0);
    b.close(received);
    expect(dev.releases).toBe(1);
  });

  it('marks the received fd close-on-exec with O_CLOEXEC, and answers EMFILE when the receiver is full', () => {
    const system = new System();
    fakeDevice(system, '/dev/x');
    const a = system.spawn();
    const b = system.spawn();
    const fd = a.open('/dev/x');
    const got = a.sendFd(b, fd, O_CLOEXEC);
    expect(b.files.isCloexec(got)).toBe(true);
    for (let i = 1; i < b.files.limit; i++) b.open('/dev/x');
    expect(a.sendFd(b, fd)).toBe(-Errno.EMFILE);
    expect(a.fdget(fd).refs).toBe(2);
  });
});

describe('System', () => {
  it('numbers processes from 1 and lists the live ones', () => {
    const system = new System();
    const a = system.spawn();
    const b = system.spawn();
    expect([a.pid, b.pid]).toEqual([1, 2]);
    expect(system.processes).toEqual([a, b]);
    a.exit();
    expect(system.processes).toEqual([b]);
    expect(system.process(2)).toBe(b);
  });
});
