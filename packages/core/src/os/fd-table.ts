import { SimError } from '../errors/index.js';
import { DEFAULT_NOFILE } from './constants.js';
import type { OpenFile } from './file.js';

interface Slot {
  file: OpenFile | null;
  cloexec: boolean;
}

/**
 * A process's file descriptor table: fd → open file, with the per-fd
 * close-on-exec flag. New fds take the lowest free number. Each installed
 * fd owns one reference on its file.
 *
 * Allocation is two-step like the kernel's get_unused_fd_flags/fd_install:
 * reserve() claims the number (so EMFILE is answered before the file is
 * created), install() fills it, unreserve() gives it back if creating the
 * file failed. A reserved fd is not yet visible to get().
 */
export class FdTable {
  readonly limit: number;
  readonly #slots = new Map<number, Slot>();

  constructor(limit = DEFAULT_NOFILE) {
    this.limit = limit;
  }

  /** Claims the lowest free fd; EMFILE when every fd below the limit is taken. */
  reserve(cloexec: boolean): number {
    for (let fd = 0; fd < this.limit; fd++) {
      if (!this.#slots.has(fd)) {
        this.#slots.set(fd, { file: null, cloexec });
        return fd;
      }
    }
    throw new SimError('TOO_MANY_FILES', `all ${this.limit} file descriptors are in use`);
  }

  /** Fills a reserved fd; the table takes over the caller's reference. */
  install(fd: number, file: OpenFile): void {
    const slot = this.#slots.get(fd);
    if (!slot || slot.file) throw new Error(`fd ${fd} was not reserved`);
    slot.file = file;
  }

  unreserve(fd: number): void {
    const slot = this.#slots.get(fd);
    if (!slot || slot.file) throw new Error(`fd ${fd} was not reserved`);
    this.#slots.delete(fd);
  }

  /** reserve + install; the table takes over the caller's reference only on success. */
  add(file: OpenFile, cloexec: boolean): number {
    const fd = this.reserve(cloexec);
    this.install(fd, file);
    return fd;
  }

  /** The open file behind fd (a borrowed reference), or EBADF. */
  get(fd: number): OpenFile {
    const file = Number.isInteger(fd) ? this.#slots.get(fd)?.file : undefined;
    if (!file) throw new SimError('BAD_FD', `fd ${fd} is not open`);
    return file;
  }

  isCloexec(fd: number): boolean {
    this.get(fd);
    return this.#slots.get(fd)!.cloexec;
  }

  setCloexec(fd: number, cloexec: boolean): void {
    this.get(fd);
    this.#slots.get(fd)!.cloexec = cloexec;
  }

  /** Removes fd and drops its reference, which may release the file. */
  close(fd: number): void {
    const file = this.get(fd);
    this.#slots.delete(fd);
    file.put();
  }

  /** The open fds, ascending. */
  fds(): number[] {
    return [...this.#slots.entries()]
      .filter(([, slot]) => slot.file !== null)
      .map(([fd]) => fd)
      .sort((a, b) => a - b);
  }

  /** do_close_on_exec: closes every fd marked close-on-exec, lowest first. */
  closeOnExec(): void {
    for (const fd of this.fds()) if (this.#slots.get(fd)!.cloexec) this.close(fd);
  }

  closeAll(): void {
    for (const fd of this.fds()) this.close(fd);
  }
}
