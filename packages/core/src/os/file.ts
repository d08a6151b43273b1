import { O_ACCMODE, O_RDONLY, O_RDWR, O_WRONLY } from './constants.js';
import type { MmioBacking } from './address-space.js';
import type { MemoryObject } from './memory-object.js';
import type { Process } from './process.js';

/**
 * What a file's mmap op hands back: the memory the new mapping shows.
 * `offset` is where in that memory the mapping starts (default: the mmap
 * offset), which lets a driver decode a region index from the high bits of
 * the offset, as vfio-pci does, and map the BAR from its start.
 */
export type MmapTarget =
  | { readonly kind: 'ram'; readonly object: MemoryObject; readonly offset?: bigint }
  | { readonly kind: 'mmio'; readonly mmio: MmioBacking; readonly offset?: bigint };

/** The mapping being set up, as the driver's mmap op sees the VMA flags. */
export interface MmapRequest {
  /** PROT_* bits asked for. */
  readonly prot: number;
  /** MAP_SHARED (VM_SHARED): vfio-pci refuses private BAR mappings. */
  readonly shared: boolean;
  /** The MAP_* flags as given. */
  readonly flags: number;
}

/**
 * The file operations a device driver or kernel object implements (struct
 * file_operations). Each op may throw a SimError; the syscall layer turns it
 * into -errno. A missing op answers as the VFS does without one:
 * no ioctl → ENOTTY; neither read nor pread → EINVAL on read(2); no pread
 * (a stream, FMODE_PREAD unset) → ESPIPE on pread(2); no mmap → ENODEV;
 * no truncate (not a regular file) → EINVAL on ftruncate(2).
 *
 * read/write serve sequential files (eventfd); pread/pwrite serve files with
 * a position (memfd, a vfio device's regions). read(2) on a file with only
 * pread reads at the file position and advances it, as the VFS does.
 */
export interface FileOperations {
  /** 'eventfd', 'memfd', 'vfio-device', 'iommufd', ... (for messages and type checks). */
  readonly kind: string;
  /** A regular file (S_ISREG): mmap offsets are bounded by MAX_LFS_FILESIZE. */
  readonly regular?: boolean;
  ioctl?(file: OpenFile, proc: Process, request: number, argp: bigint): number;
  read?(file: OpenFile, proc: Process, length: number): Uint8Array;
  write?(file: OpenFile, proc: Process, data: Uint8Array): number;
  pread?(file: OpenFile, proc: Process, length: number, offset: bigint): Uint8Array;
  pwrite?(file: OpenFile, proc: Process, data: Uint8Array, offset: bigint): number;
  mmap?(file: OpenFile, proc: Process, offset: bigint, length: bigint, request: MmapRequest): MmapTarget;
  /** ftruncate(2) on a regular file; the size is already checked non-negative. */
  truncate?(file: OpenFile, proc: Process, size: bigint): void;
  /** The last reference (fd, mapping or kernel holder) is gone. */
  release?(file: OpenFile): void;
}

/**
 * An open file description (the kernel's struct file). Every fd that names
 * it, every mapping of it and every kernel holder (fget) owns one
 * reference; release runs when the last one is put, so a driver's release
 * waits for the last close *and* the last munmap *and* the last kernel user.
 */
export class OpenFile {
  readonly ops: FileOperations;
  /** The driver's per-open state (file->private_data). */
  privateData: unknown;
  /** O_* status flags (access mode, O_NONBLOCK); close-on-exec is per fd, not here. */
  flags: number;
  /** The file position read(2) and write(2) use on files served by pread/pwrite. */
  pos = 0n;
  #refs = 1;

  /** Starts with one reference, owned by the creator (usually handed to an fd). */
  constructor(ops: FileOperations, flags: number, privateData?: unknown) {
    this.ops = ops;
    this.flags = flags;
    this.privateData = privateData;
  }

  get refs(): number {
    return this.#refs;
  }

  get released(): boolean {
    return this.#refs === 0;
  }

  /** FMODE_READ: opened O_RDONLY or O_RDWR. */
  get readable(): boolean {
    const mode = this.flags & O_ACCMODE;
    return mode === O_RDONLY || mode === O_RDWR;
  }

  /** FMODE_WRITE: opened O_WRONLY or O_RDWR. */
  get writable(): boolean {
    const mode = this.flags & O_ACCMODE;
    return mode === O_WRONLY || mode === O_RDWR;
  }

  /** get_file / fget: one more reference. */
  get(): this {
    if (this.#refs === 0) throw new Error(`${this.ops.kind} file: get after release`);
    this.#refs++;
    return this;
  }

  /** fput: drops a reference; the last one runs release. */
  put(): void {
    if (this.#refs === 0) throw new Error(`${this.ops.kind} file: put after release`);
    if (--this.#refs === 0) this.ops.release?.(this);
  }
}
