import { SimError, syscall } from '../errors/index.js';
import { AddressSpace, type VmaBacking } from './address-space.js';
import {
  EFD_CLOEXEC,
  EFD_NONBLOCK,
  EFD_SEMAPHORE,
  FIOCLEX,
  FIONBIO,
  FIONCLEX,
  LEGACY_MAP_MASK,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_FIXED_NOREPLACE,
  MAP_HUGETLB,
  MAP_PRIVATE,
  MAP_SHARED,
  MAP_SHARED_VALIDATE,
  MAP_TYPE,
  MFD_ALLOW_SEALING,
  MFD_CLOEXEC,
  MFD_EXEC,
  MFD_HUGE_MASK,
  MFD_HUGE_SHIFT,
  MFD_HUGETLB,
  MFD_NAME_MAX_LEN,
  MFD_NOEXEC_SEAL,
  O_CLOEXEC,
  O_NONBLOCK,
  O_RDWR,
  PROT_READ,
  PROT_WRITE,
} from './constants.js';
import { createEventfdFile } from './eventfd.js';
import { FdTable } from './fd-table.js';
import type { OpenFile } from './file.js';
import { createMemfdFile } from './memfd.js';
import { MemoryObject } from './memory-object.js';
import { MAX_LFS_FILESIZE, pageAlignUp, pageOffset, toLoff, toU64 } from './page.js';
import { ProcessMemory } from './process-memory.js';
import type { System } from './system.js';

/** Options of mmap beyond the length; each maps to an mmap(2) argument. */
export interface MmapOptions {
  /** The file to map. Without it (and without explicit flags) the mapping is private anonymous memory. */
  readonly fd?: number;
  /** Byte offset into the file; must be page aligned. */
  readonly offset?: bigint | number;
  /** The address wanted: a hint, or the exact address with `fixed`. */
  readonly addr?: bigint;
  /** PROT_* bits; default PROT_READ | PROT_WRITE. */
  readonly prot?: number;
  /** MAP_FIXED_NOREPLACE: map exactly at addr, EEXIST if anything is there. */
  readonly fixed?: boolean;
  /**
   * Raw MAP_* flags, replacing the defaults (MAP_SHARED with an fd,
   * MAP_PRIVATE | MAP_ANONYMOUS without); `fixed` still adds
   * MAP_FIXED_NOREPLACE. Use it for MAP_FIXED (replace), MAP_PRIVATE file
   * mappings, shared anonymous memory or MAP_SHARED_VALIDATE.
   */
  readonly flags?: number;
}

const MFD_ALL_FLAGS = MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_HUGETLB | MFD_NOEXEC_SEAL | MFD_EXEC;
const EFD_FLAGS_SET = EFD_CLOEXEC | EFD_NONBLOCK | EFD_SEMAPHORE;
/** Largest count one read or write moves (INT_MAX rounded down to a page). */
const MAX_RW_COUNT = 0x7ffff000;
const U64_MAX = (1n << 64n) - 1n;

/**
 * A simulated process: an fd table and an address space, and the system
 * calls a VMM makes. The syscall methods never throw for a caller's
 * mistake: they return >= 0, or -errno (mmap: the address, or a negative
 * bigint). Calling one on an exited process is a harness bug and throws.
 *
 * The kernel-side helpers (fdget, installFd, files, mm) throw SimError,
 * for drivers to use inside their file operations.
 */
export class Process {
  readonly pid: number;
  readonly system: System;
  readonly files: FdTable;
  /** The process's own view of its memory (loads and stores). */
  readonly mem: ProcessMemory;
  #mm: AddressSpace;
  #alive = true;
  readonly #onExit: (proc: Process) => void;

  /** Processes come from System.spawn(). */
  constructor(system: System, pid: number, onExit: (proc: Process) => void) {
    this.system = system;
    this.pid = pid;
    this.#onExit = onExit;
    this.files = new FdTable();
    this.#mm = new AddressSpace(system.physMem);
    this.mem = new ProcessMemory(() => this.#mm);
  }

  /** The kernel's view of the address space (current->mm); exec replaces it. */
  get mm(): AddressSpace {
    return this.#mm;
  }

  get alive(): boolean {
    return this.#alive;
  }

  // ---- kernel-side helpers -------------------------------------------

  /** fdget: the open file behind fd, borrowed for the call (take .get() to keep it); EBADF. */
  fdget(fd: number): OpenFile {
    return this.files.get(fd);
  }

  /**
   * Installs a file in the lowest free fd and returns it; the table takes
   * over one reference. EMFILE leaves the reference with the caller.
   */
  installFd(file: OpenFile, flags = 0): number {
    return this.files.add(file, (flags & O_CLOEXEC) !== 0);
  }

  // ---- system calls ---------------------------------------------------

  /** open(2) of a device node; O_CLOEXEC marks the fd, the rest goes to the file. */
  open(path: string, flags = O_RDWR): number {
    return this.#syscall(() => {
      const fd = this.files.reserve((flags & O_CLOEXEC) !== 0);
      let file: OpenFile;
      try {
        file = this.system.devfs.open(this, path, flags & ~O_CLOEXEC);
      } catch (error) {
        this.files.unreserve(fd);
        throw error;
      }
      this.files.install(fd, file);
      return fd;
    });
  }

  close(fd: number): number {
    return this.#syscall(() => {
      this.files.close(fd);
      return 0;
    });
  }

  /** dup(2): the lowest free fd names the same open file, without close-on-exec. */
  dup(fd: number): number {
    return this.#syscall(() => this.#share(this.files.get(fd), this, false));
  }

  /**
   * ioctl(2). FIOCLEX, FIONCLEX and FIONBIO are answered by the VFS for
   * every file; any other request goes to the file's ioctl op (ENOTTY
   * without one). `argp` is passed as the unsigned long the kernel sees.
   */
  ioctl(fd: number, request: number, argp: bigint | number = 0n): number {
    return this.#syscall(() => {
      const file = this.files.get(fd);
      const cmd = request >>> 0;
      const arg = toU64(argp);
      switch (cmd) {
        case FIOCLEX:
          this.files.setCloexec(fd, true);
          return 0;
        case FIONCLEX:
          this.files.setCloexec(fd, false);
          return 0;
        case FIONBIO: {
          const on = new DataView(this.#mm.copyFromUser(arg, 4).buffer).getInt32(0, true) !== 0;
          file.flags = on ? file.flags | O_NONBLOCK : file.flags & ~O_NONBLOCK;
          return 0;
        }
      }
      if (!file.ops.ioctl) throw new SimError('UNKNOWN_IOCTL', `${file.ops.kind} has no ioctl 0x${cmd.toString(16)}`);
      return file.ops.ioctl(file, this, cmd, arg);
    });
  }

  /** read(2) into buf; returns the count read. */
  read(fd: number, buf: Uint8Array): number {
    return this.#syscall(() => {
      const file = this.files.get(fd);
      if (!file.readable) throw new SimError('WRONG_ACCESS_MODE', `fd ${fd} is not open for reading`);
      const count = Math.min(buf.length, MAX_RW_COUNT);
      let data: Uint8Array;
      if (file.ops.read) {
        data = file.ops.read(file, this, count);
      } else if (file.ops.pread) {
        verifyArea(file.pos, count);
        data = file.ops.pread(file, this, count, file.pos);
        file.pos += BigInt(data.length);
      } else {
        throw new SimError('INVALID_ARGUMENT', `${file.ops.kind} cannot be read`);
      }
      return copyOut(buf, data, file);
    });
  }

  /** write(2) of data; returns the count written. */
  write(fd: number, data: Uint8Array): number {
    return this.#syscall(() => {
      const file = this.files.get(fd);
      if (!file.writable) throw new SimError('WRONG_ACCESS_MODE', `fd ${fd} is not open for writing`);
      const bytes = data.subarray(0, MAX_RW_COUNT);
      if (file.ops.write) return file.ops.write(file, this, bytes);
      if (file.ops.pwrite) {
        verifyArea(file.pos, bytes.length);
        const written = file.ops.pwrite(file, this, bytes, file.pos);
        file.pos += BigInt(written);
        return written;
      }
      throw new SimError('INVALID_ARGUMENT', `${file.ops.kind} cannot be written`);
    });
  }

  /** pread(2) into buf at offset; returns the count read. */
  pread(fd: number, buf: Uint8Array, offset: bigint | number): number {
    return this.#syscall(() => {
      const pos = toLoff(offset);
      if (pos < 0n) throw new SimError('INVALID_ARGUMENT', `negative offset ${pos}`);
      const file = this.files.get(fd);
      if (!file.ops.pread) throw new SimError('NOT_SEEKABLE', `${file.ops.kind} has no file position`);
      if (!file.readable) throw new SimError('WRONG_ACCESS_MODE', `fd ${fd} is not open for reading`);
      const count = Math.min(buf.length, MAX_RW_COUNT);
      verifyArea(pos, count);
      return copyOut(buf, file.ops.pread(file, this, count, pos), file);
    });
  }

  /** pwrite(2) of data at offset; returns the count written. */
  pwrite(fd: number, data: Uint8Array, offset: bigint | number): number {
    return this.#syscall(() => {
      const pos = toLoff(offset);
      if (pos < 0n) throw new SimError('INVALID_ARGUMENT', `negative offset ${pos}`);
      const file = this.files.get(fd);
      if (!file.ops.pwrite) throw new SimError('NOT_SEEKABLE', `${file.ops.kind} has no file position`);
      if (!file.writable) throw new SimError('WRONG_ACCESS_MODE', `fd ${fd} is not open for writing`);
      const bytes = data.subarray(0, MAX_RW_COUNT);
      verifyArea(pos, bytes.length);
      return file.ops.pwrite(file, this, bytes, pos);
    });
  }

  /**
   * mmap(2): returns the mapping's address, or a negative bigint -errno.
   * The checks run in the kernel's order: offset alignment, the fd, the
   * length, the address (ENOMEM/EINVAL/EPERM, then EEXIST for
   * MAP_FIXED_NOREPLACE), then the file's access mode and mmap op. The
   * driver's mmap runs before anything under a MAP_FIXED range is
   * replaced, so a refusal leaves the old mappings in place.
   */
  mmap(length: bigint | number, options: MmapOptions = {}): bigint {
    this.#assertAlive();
    try {
      return this.#mmap(length, options);
    } catch (error) {
      if (error instanceof SimError) return -BigInt(error.errno);
      throw error;
    }
  }

  /** munmap(2): page-aligned addr; the length is rounded up to pages. Unmapping a hole succeeds. */
  munmap(addr: bigint, length: bigint | number): number {
    return this.#syscall(() => {
      this.#mm.munmap(toU64(addr), toU64(length));
      return 0;
    });
  }

  /**
   * memfd_create(2): an anonymous tmpfs file of size 0. MFD_HUGETLB answers
   * ENOSYS, as a kernel built without hugetlbfs does: huge pages are not
   * modelled.
   */
  memfdCreate(name: string, flags = 0): number {
    return this.#syscall(() => {
      const bits = flags >>> 0;
      const allowed = bits & MFD_HUGETLB ? MFD_ALL_FLAGS | (MFD_HUGE_MASK << MFD_HUGE_SHIFT) : MFD_ALL_FLAGS;
      if (bits & ~allowed) throw new SimError('UNKNOWN_FLAGS', `memfd_create flags 0x${bits.toString(16)}`);
      if (bits & MFD_EXEC && bits & MFD_NOEXEC_SEAL) {
        throw new SimError('INVALID_ARGUMENT', 'MFD_EXEC and MFD_NOEXEC_SEAL together');
      }
      if (new TextEncoder().encode(name).length > MFD_NAME_MAX_LEN) {
        throw new SimError('INVALID_ARGUMENT', `memfd name longer than ${MFD_NAME_MAX_LEN} bytes`);
      }
      const fd = this.files.reserve((bits & MFD_CLOEXEC) !== 0);
      if (bits & MFD_HUGETLB) {
        this.files.unreserve(fd);
        throw new SimError('NOT_IMPLEMENTED', 'hugetlbfs is not modelled');
      }
      this.files.install(fd, createMemfdFile(this.system.physMem, name));
      return fd;
    });
  }

  /** ftruncate(2): regular files opened for writing only (EINVAL otherwise). */
  ftruncate(fd: number, size: bigint | number): number {
    return this.#syscall(() => {
      const length = toLoff(size);
      if (length < 0n) throw new SimError('INVALID_ARGUMENT', `negative size ${length}`);
      const file = this.files.get(fd);
      if (!file.ops.truncate || !file.writable) {
        throw new SimError('INVALID_ARGUMENT', `${file.ops.kind} fd ${fd} cannot be truncated`);
      }
      file.ops.truncate(file, this, length);
      return 0;
    });
  }

  /** eventfd2(2): the initial value is the syscall's unsigned int (truncated to 32 bits). */
  eventfd(initval: number | bigint = 0, flags = 0): number {
    return this.#syscall(() => {
      if (flags & ~EFD_FLAGS_SET) throw new SimError('UNKNOWN_FLAGS', `eventfd flags 0x${(flags >>> 0).toString(16)}`);
      const fd = this.files.reserve((flags & EFD_CLOEXEC) !== 0);
      this.files.install(fd, createEventfdFile(toU64(initval) & 0xffffffffn, flags, this.system.clock));
      return fd;
    });
  }

  /**
   * execve(2) of a new image: the address space is replaced by an empty one
   * (the old one dies with its last user; frames pinned from it stay
   * pinned by whoever pinned them), then close-on-exec fds are closed.
   */
  exec(): number {
    return this.#syscall(() => {
      const old = this.#mm;
      this.#mm = new AddressSpace(this.system.physMem);
      old.mmput();
      this.files.closeOnExec();
      return 0;
    });
  }

  /** exit(2): drops the address space, then closes every fd, then leaves the process table. */
  exit(): void {
    this.#assertAlive();
    this.#mm.mmput();
    this.files.closeAll();
    this.#alive = false;
    this.#onExit(this);
  }

  /**
   * Passes fd to another process over a unix socket (SCM_RIGHTS): the
   * receiver gets the same open file in its lowest free fd, returned here.
   * O_CLOEXEC in flags stands for MSG_CMSG_CLOEXEC.
   */
  sendFd(to: Process, fd: number, flags = 0): number {
    to.#assertAlive();
    return this.#syscall(() => this.#share(this.files.get(fd), to, (flags & O_CLOEXEC) !== 0));
  }

  #share(file: OpenFile, into: Process, cloexec: boolean): number {
    file.get();
    try {
      return into.files.add(file, cloexec);
    } catch (error) {
      file.put();
      throw error;
    }
  }

  #mmap(length: bigint | number, options: MmapOptions): bigint {
    const len = toU64(length);
    const offset = toU64(options.offset ?? 0);
    const prot = options.prot ?? PROT_READ | PROT_WRITE;
    let flags = options.flags ?? (options.fd === undefined ? MAP_PRIVATE | MAP_ANONYMOUS : MAP_SHARED);
    if (options.fixed) flags |= MAP_FIXED_NOREPLACE;
    if (pageOffset(offset) !== 0n) throw new SimError('INVALID_ARGUMENT', `mmap offset 0x${offset.toString(16)} is not page aligned`);

    let file: OpenFile | null = null;
    if (!(flags & MAP_ANONYMOUS)) {
      file = this.files.get(options.fd ?? -1);
      if (flags & MAP_HUGETLB) throw new SimError('INVALID_ARGUMENT', 'MAP_HUGETLB on a file that is not on hugetlbfs');
    } else if (flags & MAP_HUGETLB) {
      throw new SimError('OUT_OF_MEMORY', 'no huge pages are reserved (nr_hugepages is 0)');
    }

    if (len === 0n) throw new SimError('INVALID_ARGUMENT', 'mmap of zero length');
    if (flags & MAP_FIXED_NOREPLACE) flags |= MAP_FIXED;
    const size = pageAlignUp(len);
    if (size === 0n) throw new SimError('OUT_OF_MEMORY', `mmap length 0x${len.toString(16)} overflows`);
    const mm = this.#mm;
    const start = mm.getUnmappedArea(size, toU64(options.addr ?? 0n), (flags & MAP_FIXED) !== 0);
    if (flags & MAP_FIXED_NOREPLACE && mm.intersects(start, size)) {
      throw new SimError('MAPPING_EXISTS', `0x${start.toString(16)}+0x${size.toString(16)} overlaps a mapping (MAP_FIXED_NOREPLACE)`);
    }

    const shared = file ? checkFileMapping(file, size, offset, prot, flags) : checkAnonMapping(flags);
    let backing: VmaBacking;
    let backingOffset = 0n;
    let anon: MemoryObject | null = null;
    if (file) {
      const target = file.ops.mmap!(file, this, offset, size, { prot, shared, flags });
      backing = target.kind === 'ram' ? { kind: 'ram', object: target.object } : { kind: 'mmio', mmio: target.mmio };
      backingOffset = target.offset ?? offset;
    } else {
      anon = new MemoryObject(this.system.physMem, shared ? 'shmem' : 'anon', size);
      backing = { kind: 'ram', object: anon };
    }
    try {
      if (flags & MAP_FIXED && !(flags & MAP_FIXED_NOREPLACE)) mm.munmap(start, size);
      mm.map({ start, length: size, prot, backing, offset: backingOffset, shared, file });
    } finally {
      anon?.put();
    }
    return start;
  }

  #syscall(body: () => number): number {
    this.#assertAlive();
    return syscall(body);
  }

  #assertAlive(): void {
    if (!this.#alive) throw new Error(`process ${this.pid} has exited`);
  }
}

/**
 * The file-mapping checks of do_mmap: the offset range (file_mmap_ok), the
 * mapping type, the access mode the file was opened with, and an mmap op.
 * Returns whether the mapping is shared.
 */
function checkFileMapping(file: OpenFile, size: bigint, offset: bigint, prot: number, flags: number): boolean {
  const max = file.ops.regular ? MAX_LFS_FILESIZE : U64_MAX;
  if (size > max || offset >> 12n > (max - size) >> 12n) {
    throw new SimError('OVERFLOW', `offset 0x${offset.toString(16)} + 0x${size.toString(16)} is past the largest ${file.ops.kind} offset`);
  }
  let shared = false;
  switch (flags & MAP_TYPE) {
    case MAP_SHARED:
    case MAP_SHARED_VALIDATE: {
      // MAP_SHARED ignores flags it does not know; only MAP_SHARED_VALIDATE refuses them.
      const checked = (flags & MAP_TYPE) === MAP_SHARED ? flags & LEGACY_MAP_MASK : flags;
      if (checked & ~LEGACY_MAP_MASK) {
        throw new SimError('UNSUPPORTED_FLAGS', `MAP_SHARED_VALIDATE with flags 0x${(checked & ~LEGACY_MAP_MASK).toString(16)}`);
      }
      if (prot & PROT_WRITE && !file.writable) throw new SimError('ACCESS_DENIED', 'shared writable mapping of a file not open for writing');
      shared = true;
      break;
    }
    case MAP_PRIVATE:
      break;
    default:
      throw new SimError('INVALID_ARGUMENT', `mapping type 0x${(flags & MAP_TYPE).toString(16)}`);
  }
  if (!file.readable) throw new SimError('ACCESS_DENIED', 'mapping a file not open for reading');
  if (!file.ops.mmap) throw new SimError('NO_DEVICE', `${file.ops.kind} cannot be mapped`);
  return shared;
}

function checkAnonMapping(flags: number): boolean {
  switch (flags & MAP_TYPE) {
    case MAP_SHARED:
      return true;
    case MAP_PRIVATE:
      return false;
    default:
      throw new SimError('INVALID_ARGUMENT', `anonymous mapping type 0x${(flags & MAP_TYPE).toString(16)}`);
  }
}

/** rw_verify_area: pos + count must not overflow loff_t. */
function verifyArea(pos: bigint, count: number): void {
  if (pos + BigInt(count) > MAX_LFS_FILESIZE) throw new SimError('INVALID_ARGUMENT', `offset ${pos} + ${count} overflows`);
}

function copyOut(buf: Uint8Array, data: Uint8Array, file: OpenFile): number {
  if (data.length > buf.length) throw new Error(`${file.ops.kind} read returned ${data.length} bytes for a ${buf.length}-byte buffer`);
  buf.set(data);
  return data.length;
}
