import { describe, expect, it } from 'vitest';
import {
  Errno,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_PRIVATE,
  MAP_SHARED,
  MMAP_BASE,
  MMAP_MIN_ADDR,
  OpenFile,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
  SimError,
  System,
  TASK_SIZE,
} from '@vfiosim/core';
import { EFAULT, FakeBar, PAGE, addr, bytes, fakeDevice } from './helpers.js';

function thrown(fn: () => unknown): SimError {
  try {
    fn();
  } catch (error) {
    if (error instanceof SimError) return error;
    throw error;
  }
  throw new Error('expected a SimError');
}

describe('mmap placement', () => {
  it('places mappings top-down, each just below mmap_base or the previous one', () => {
    const proc = new System().spawn();
    const first = proc.mmap(2n * PAGE);
    const second = proc.mmap(PAGE);
    expect(first).toBe(MMAP_BASE - 2n * PAGE);
    expect(second).toBe(first - PAGE);
  });

  it('rounds the length up to whole pages', () => {
    const proc = new System().spawn();
    const va = addr(proc.mmap(1));
    expect(proc.mm.findVma(va)?.length).toBe(PAGE);
  });

  it('takes a free hint address and ignores an occupied one', () => {
    const proc = new System().spawn();
    const hint = 0x10000000n;
    expect(proc.mmap(PAGE, { addr: hint + 5n })).toBe(hint);
    const other = proc.mmap(PAGE, { addr: hint });
    expect(other).not.toBe(hint);
    expect(other).toBeGreaterThan(0n);
  });

  it('maps at a fixed address and answers EEXIST when a fixed mapping overlaps any part of another', () => {
    const proc = new System().spawn();
    const at = 0x40000000n;
    expect(proc.mmap(4n * PAGE, { addr: at, fixed: true })).toBe(at);
    expect(proc.mmap(PAGE, { addr: at + 3n * PAGE, fixed: true })).toBe(-BigInt(Errno.EEXIST));
    expect(proc.mmap(2n * PAGE, { addr: at - PAGE, fixed: true })).toBe(-BigInt(Errno.EEXIST));
    expect(proc.mmap(PAGE, { addr: at + 4n * PAGE, fixed: true })).toBe(at + 4n * PAGE);
    expect(proc.mm.vmas).toHaveLength(2);
  });

  it('lets MAP_FIXED replace what was mapped there', () => {
    const proc = new System().spawn();
    const at = 0x40000000n;
    proc.mmap(2n * PAGE, { addr: at, fixed: true });
    proc.mem.write(at, bytes(7));
    expect(proc.mmap(PAGE, { addr: at, flags: MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, prot: PROT_READ })).toBe(at);
    expect(proc.mem.read(at, 1)).toEqual(bytes(0));
    expect(proc.mem.write(at, bytes(1))).toBe(EFAULT);
    expect(proc.mem.write(at + PAGE, bytes(1))).toBe(0);
  });

  it('rejects bad fixed addresses as get_unmapped_area does', () => {
    const proc = new System().spawn();
    expect(proc.mmap(PAGE, { addr: 0x40000010n, fixed: true })).toBe(-BigInt(Errno.EINVAL));
    expect(proc.mmap(PAGE, { addr: MMAP_MIN_ADDR - PAGE, fixed: true })).toBe(-BigInt(Errno.EPERM));
    expect(proc.mmap(2n * PAGE, { addr: TASK_SIZE - PAGE, fixed: true })).toBe(-BigInt(Errno.ENOMEM));
  });

  it('rejects a zero length with EINVAL, an overflowing length with ENOMEM, an unaligned offset with EINVAL', () => {
    const proc = new System().spawn();
    expect(proc.mmap(0)).toBe(-BigInt(Errno.EINVAL));
    expect(proc.mmap(-1)).toBe(-BigInt(Errno.ENOMEM));
    expect(proc.mmap(TASK_SIZE + PAGE)).toBe(-BigInt(Errno.ENOMEM));
    expect(proc.mmap(PAGE, { offset: 100 })).toBe(-BigInt(Errno.EINVAL));
    expect(proc.mm.vmas).toHaveLength(0);
  });

  it('answers EINVAL for a mapping type that is neither shared nor private', () => {
    const proc = new System().spawn();
    expect(proc.mmap(PAGE, { flags: MAP_ANONYMOUS | 0x4 })).toBe(-BigInt(Errno.EINVAL));
  });

  it('answers ENOMEM for anonymous MAP_HUGETLB: no huge pages are reserved', () => {
    const proc = new System().spawn();
    expect(proc.mmap(2n << 20n, { flags: MAP_PRIVATE | MAP_ANONYMOUS | 0x40000 })).toBe(-BigInt(Errno.ENOMEM));
  });
});

describe('munmap', () => {
  it('splits a mapping in three when the middle is unmapped, keeping the outer contents', () => {
    const proc = new System().spawn();
    const va = addr(proc.mmap(3n * PAGE));
    proc.mem.write(va, bytes(1));
    proc.mem.write(va + PAGE, bytes(2));
    proc.mem.write(va + 2n * PAGE, bytes(3));
    expect(proc.munmap(va + PAGE, PAGE)).toBe(0);
    expect(proc.mm.vmas.map((v) => [v.start, v.length])).toEqual([
      [va, PAGE],
      [va + 2n * PAGE, PAGE],
    ]);
    expect(proc.mem.read(va, 1)).toEqual(bytes(1));
    expect(proc.mem.read(va + PAGE, 1)).toBe(EFAULT);
    expect(proc.mem.read(va + 2n * PAGE, 1)).toEqual(bytes(3));
    expect(proc.system.physMem.allocatedFrames).toBe(2);
  });

  it('unmaps across several mappings and succeeds on a hole', () => {
    const proc = new System().spawn();
    const at = 0x50000000n;
    proc.mmap(PAGE, { addr: at, fixed: true });
    proc.mmap(PAGE, { addr: at + 2n * PAGE, fixed: true });
    expect(proc.munmap(at, 3n * PAGE)).toBe(0);
    expect(proc.mm.vmas).toHaveLength(0);
    expect(proc.munmap(at, PAGE)).toBe(0);
  });

  it('rejects an unaligned address, a zero length and a range past user space with EINVAL', () => {
    const proc = new System().spawn();
    const va = addr(proc.mmap(PAGE));
    expect(proc.munmap(va + 1n, PAGE)).toBe(-Errno.EINVAL);
    expect(proc.munmap(va, 0)).toBe(-Errno.EINVAL);
    expect(proc.munmap(va, TASK_SIZE)).toBe(-Errno.EINVAL);
    expect(proc.mm.vmas).toHaveLength(1);
  });

  it('rounds the length up to pages', () => {
    const proc = new System().spawn();
    const va = addr(proc.mmap(2n * PAGE));
    expect(proc.munmap(va, 1)).toBe(0);
    expect(proc.mm.vmas.map((v) => v.start)).toEqual([va + PAGE]);
  });
});

describe('first-touch allocation', () => {
  it('costs no frames to map 1 TiB, none to read it, one per page written, and frees them on munmap', () => {
    const system = new System();
    const proc = system.spawn();
    const va = addr(proc.mmap(1n << 40n));
    expect(system.physMem.allocatedFrames).toBe(0);
    expect(proc.mem.read(va + (1n << 39n), 16)).toEqual(new Uint8Array(16));
    expect(system.physMem.allocatedFrames).toBe(0);
    proc.mem.write(va + (1n << 39n), bytes(1));
    proc.mem.write(va + (1n << 40n) - 1n, bytes(2));
    expect(system.physMem.allocatedFrames).toBe(2);
    expect(proc.mem.read(va + (1n << 40n) - 1n, 1)).toEqual(bytes(2));
    proc.munmap(va, 1n << 40n);
    expect(system.physMem.allocatedFrames).toBe(0);
  });

  it('allocates on a read of shared anonymous memory, which lives in the page cache', () => {
    const system = new System();
    const proc = system.spawn();
    const va = addr(proc.mmap(PAGE, { flags: MAP_SHARED | MAP_ANONYMOUS }));
    proc.mem.read(va, 1);
    expect(system.physMem.allocatedFrames).toBe(1);
  });
});

describe('user copies', () => {
  it('copies across mapping boundaries', () => {
    const proc = new System().spawn();
    const at = 0x60000000n;
    proc.mmap(PAGE, { addr: at, fixed: true });
    proc.mmap(PAGE, { addr: at + PAGE, fixed: true });
    proc.mm.copyToUser(at + PAGE - 2n, bytes(1, 2, 3, 4));
    expect(proc.mm.copyFromUser(at + PAGE - 2n, 4)).toEqual(bytes(1, 2, 3, 4));
  });

  it('throws BAD_ADDRESS for any unmapped byte, and a failed copyToUser writes nothing', () => {
    const proc = new System().spawn();
    const at = 0x60000000n;
    proc.mmap(PAGE, { addr: at, fixed: true });
    expect(thrown(() => proc.mm.copyFromUser(at + PAGE - 1n, 2)).code).toBe('BAD_ADDRESS');
    expect(thrown(() => proc.mm.copyToUser(at + PAGE - 2n, bytes(9, 9, 9))).code).toBe('BAD_ADDRESS');
    expect(proc.mm.copyFromUser(at + PAGE - 2n, 2)).toEqual(bytes(0, 0));
    expect(proc.system.physMem.allocatedFrames).toBe(0);
    expect(thrown(() => proc.mm.copyFromUser(0n, 1)).errnoName).toBe('EFAULT');
    expect(thrown(() => proc.mm.copyFromUser(TASK_SIZE - 1n, 2)).errnoName).toBe('EFAULT');
  });

  it('accepts an empty copy at any address', () => {
    const proc = new System().spawn();
    expect(proc.mm.copyFromUser(0n, 0)).toEqual(new Uint8Array(0));
    expect(() => proc.mm.copyToUser(0n, new Uint8Array(0))).not.toThrow();
  });

  it('answers EFAULT for a read running off the mappings however long, and for a negative length', () => {
    const proc = new System().spawn();
    const va = addr(proc.mmap(PAGE));
    expect(proc.mem.read(va, Number.MAX_SAFE_INTEGER)).toBe(EFAULT);
    expect(thrown(() => proc.mm.copyFromUser(va, 2 ** 40)).errnoName).toBe('EFAULT');
    expect(proc.mem.read(va, -1)).toBe(EFAULT);
    expect(proc.mem.read(va, Number(PAGE))).toEqual(new Uint8Array(Number(PAGE)));
  });

  it('enforces protections the x86 way: PROT_NONE unreadable, read-only unwritable, write-only readable', () => {
    const proc = new System().spawn();
    const none = addr(proc.mmap(PAGE, { prot: PROT_NONE }));
    const ro = addr(proc.mmap(PAGE, { prot: PROT_READ }));
    const wo = addr(proc.mmap(PAGE, { prot: PROT_WRITE }));
    expect(proc.mem.read(none, 1)).toBe(EFAULT);
    expect(proc.mem.read(ro, 1)).toEqual(bytes(0));
    expect(proc.mem.write(ro, bytes(1))).toBe(EFAULT);
    expect(proc.mem.write(wo, bytes(5))).toBe(0);
    expect(proc.mem.read(wo, 1)).toEqual(bytes(5));
  });

  it('offers little-endian u32/u64 accessors that answer -EFAULT on a bad pointer', () => {
    const proc = new System().spawn();
    const va = addr(proc.mmap(PAGE));
    expect(proc.mem.writeU32(va, 0x11223344)).toBe(0);
    expect(proc.mem.read(va, 4)).toEqual(bytes(0x44, 0x33, 0x22, 0x11));
    expect(proc.mem.writeU64(va + 8n, 0xfffffffffffffffen)).toBe(0);
    expect(proc.mem.readU32(va)).toBe(0x11223344);
    expect(proc.mem.readU64(va + 8n)).toBe(0xfffffffffffffffen);
    expect(proc.mem.readU32(va + PAGE)).toBe(EFAULT);
    expect(proc.mem.readU64(va + PAGE)).toBe(BigInt(EFAULT));
    expect(proc.mem.writeU32(va + PAGE - 2n, 1)).toBe(EFAULT);
    expect(proc.mem.writeU64(va + PAGE, 1n)).toBe(EFAULT);
  });
});

describe('pinUserPages', () => {
  it('faults in and pins each page, and translate follows the mapping', () => {
    const system = new System();
    const proc = system.spawn();
    const va = addr(proc.mmap(2n * PAGE));
    expect(proc.mm.translate(va)).toBeUndefined();
    const frames = proc.mm.pinUserPages(va + 5n, 2, true);
    expect(frames).toHaveLength(2);
    expect(system.physMem.pinnedFrames).toBe(2);
    expect(proc.mm.lookupFrame(va + PAGE)).toBe(frames[1]);
    expect(proc.mm.translate(va + 0x123n)).toBe(frames[0].pa + 0x123n);
    frames[0].data[0] = 0x77;
    expect(proc.mem.read(va, 1)).toEqual(bytes(0x77));
  });

  it('allocates a real page for a read pin of untouched anonymous memory, shared with later writes', () => {
    const proc = new System().spawn();
    const va = addr(proc.mmap(PAGE));
    const [frame] = proc.mm.pinUserPages(va, 1, false);
    proc.mem.write(va, bytes(3));
    expect(frame.data[0]).toBe(3);
  });

  it('fails with EFAULT and pins nothing if any page is unmapped, lacks the permission or is device memory', () => {
    const system = new System();
    const proc = system.spawn();
    const at = 0x70000000n;
    proc.mmap(PAGE, { addr: at, fixed: true });
    expect(thrown(() => proc.mm.pinUserPages(at, 2, false)).errnoName).toBe('EFAULT');
    const ro = addr(proc.mmap(PAGE, { prot: PROT_READ }));
    expect(thrown(() => proc.mm.pinUserPages(ro, 1, true)).errnoName).toBe('EFAULT');
    const wo = addr(proc.mmap(PAGE, { prot: PROT_WRITE }));
    expect(thrown(() => proc.mm.pinUserPages(wo, 1, false)).errnoName).toBe('EFAULT');
    const bar = new FakeBar(0x1000);
    fakeDevice(system, '/dev/bar', { mmap: () => ({ kind: 'mmio', mmio: bar }) });
    const barVa = addr(proc.mmap(PAGE, { fd: proc.open('/dev/bar') }));
    expect(thrown(() => proc.mm.pinUserPages(barVa, 1, false)).errnoName).toBe('EFAULT');
    expect(system.physMem.pinnedFrames).toBe(0);
    expect(system.physMem.allocatedFrames).toBe(0);
  });

  it('returns nothing for zero pages', () => {
    const proc = new System().spawn();
    expect(proc.mm.pinUserPages(0n, 0, true)).toEqual([]);
  });

  it('keeps pinned frames through munmap and process exit; the last unpin frees them', () => {
    const system = new System();
    const proc = system.spawn();
    const va = addr(proc.mmap(2n * PAGE));
    proc.mem.write(va, bytes(0xab));
    const pinned = proc.mm.pinUserPages(va, 2, true);
    proc.munmap(va, PAGE);
    expect(proc.mem.read(va, 1)).toBe(EFAULT);
    expect(pinned[0].live).toBe(true);
    expect(pinned[0].data[0]).toBe(0xab);
    proc.exit();
    expect(system.physMem.allocatedFrames).toBe(2);
    expect(system.physMem.pinnedFrames).toBe(2);
    for (const frame of pinned) frame.unpin();
    expect(system.physMem.allocatedFrames).toBe(0);
  });
});

describe('address space lifetime', () => {
  it('keeps the mappings while a kernel user holds the mm after exit, and tears them down on its mmput', () => {
    const system = new System();
    const proc = system.spawn();
    const mm = proc.mm;
    const va = addr(proc.mmap(PAGE));
    proc.mem.write(va, bytes(4));
    expect(mm.mmget()).toBe(true);
    proc.exit();
    expect(mm.released).toBe(false);
    expect(mm.copyFromUser(va, 1)).toEqual(bytes(4));
    mm.mmput();
    expect(mm.released).toBe(true);
    expect(mm.mmget()).toBe(false);
    expect(system.physMem.allocatedFrames).toBe(0);
  });
});

describe('device memory mappings', () => {
  it('routes accesses to the MMIO backing at the offset the driver chose, and faults as EFAULT once revoked', () => {
    const system = new System();
    const proc = system.spawn();
    const bar = new FakeBar(0x2000);
    const seen: bigint[] = [];
    fakeDevice(system, '/dev/bar', {
      mmap: (_file, _proc, offset) => {
        seen.push(offset);
        return { kind: 'mmio', mmio: bar, offset: offset & 0xffffn };
      },
    });
    const fd = proc.open('/dev/bar');
    const va = addr(proc.mmap(PAGE, { fd, offset: (5n << 40n) | 0x1000n }));
    expect(seen).toEqual([(5n << 40n) | 0x1000n]);
    expect(proc.mem.writeU32(va + 8n, 0xdeadbeef)).toBe(0);
    expect(bar.bytes[0x1008]).toBe(0xef);
    expect(proc.mem.readU32(va + 8n)).toBe(0xdeadbeef);
    expect(proc.mm.translate(va)).toBeUndefined();
    bar.revoked = true;
    expect(proc.mem.readU32(va + 8n)).toBe(EFAULT);
    expect(proc.mem.writeU32(va, 1)).toBe(EFAULT);
  });
});

describe('private file mappings', () => {
  it('copy on write: the mapping sees file data until it writes, and its writes never reach the file', () => {
    const system = new System();
    const proc = system.spawn();
    const fd = proc.memfdCreate('guest');
    proc.pwrite(fd, bytes(1, 2), 0);
    const va = addr(proc.mmap(PAGE, { fd, flags: MAP_PRIVATE }));
    expect(proc.mem.read(va, 2)).toEqual(bytes(1, 2));
    proc.pwrite(fd, bytes(5), 1);
    expect(proc.mem.read(va, 2)).toEqual(bytes(1, 5));
    proc.mem.write(va, bytes(9));
    const buf = new Uint8Array(2);
    proc.pread(fd, buf, 0);
    expect(buf).toEqual(bytes(1, 5));
    expect(proc.mem.read(va, 2)).toEqual(bytes(9, 5));
  });

  it('breaks COW for a write pin, so DMA into the pinned page stays private', () => {
    const system = new System();
    const proc = system.spawn();
    const fd = proc.memfdCreate('guest');
    proc.ftruncate(fd, PAGE);
    const va = addr(proc.mmap(PAGE, { fd, flags: MAP_PRIVATE }));
    const [frame] = proc.mm.pinUserPages(va, 1, true);
    frame.data[0] = 0x42;
    expect(proc.mem.read(va, 1)).toEqual(bytes(0x42));
    const buf = new Uint8Array(1);
    proc.pread(fd, buf, 0);
    expect(buf).toEqual(bytes(0));
    frame.unpin();
  });

  it('drops private copies past a truncation, so regrowing the file shows zeros', () => {
    const proc = new System().spawn();
    const fd = proc.memfdCreate('guest');
    proc.ftruncate(fd, 2n * PAGE);
    const va = addr(proc.mmap(2n * PAGE, { fd, flags: MAP_PRIVATE }));
    proc.mem.write(va + PAGE, bytes(8));
    proc.ftruncate(fd, PAGE);
    expect(proc.mem.read(va + PAGE, 1)).toBe(EFAULT);
    proc.ftruncate(fd, 2n * PAGE);
    expect(proc.mem.read(va + PAGE, 1)).toEqual(bytes(0));
  });
});

describe('map', () => {
  it('refuses to install a mapping over another with MAPPING_EXISTS', () => {
    const proc = new System().spawn();
    const va = addr(proc.mmap(PAGE));
    const dev = new OpenFile({ kind: 'x' }, 0);
    const error = thrown(() =>
      proc.mm.map({ start: va, length: PAGE, prot: PROT_READ, backing: { kind: 'mmio', mmio: new FakeBar(4096) }, offset: 0n, shared: true, file: dev }),
    );
    expect(error.code).toBe('MAPPING_EXISTS');
    expect(dev.refs).toBe(1);
  });
});
