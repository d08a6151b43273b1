import { errnoName, type ErrnoName } from '../errors/index.js';

/** The system calls the typed API makes on a process. */
export type SyscallName = 'open' | 'close' | 'ioctl' | 'pread' | 'pwrite' | 'mmap' | 'read' | 'eventfd';

/** Where a failed call was aimed: the fd, the ioctl by its kernel name, the path opened. */
export interface SyscallTarget {
  readonly fd?: number;
  readonly request?: string;
  readonly path?: string;
}

/**
 * A system call of the typed API that the kernel answered with -errno.
 *
 * The typed API sees only what a C program sees: the errno. The model's
 * own message for the failure stays behind the syscall boundary, exactly
 * as the kernel's reasons stay in the kernel, so the message here names
 * the call and the errno, nothing the uAPI does not say.
 */
export class SyscallError extends Error {
  /** The positive errno number (EINVAL is 22). */
  readonly errno: number;
  readonly errnoName: ErrnoName | `errno ${number}`;
  readonly syscall: SyscallName;
  readonly fd: number | undefined;
  /** The ioctl request, by its kernel name, for a failed ioctl. */
  readonly request: string | undefined;
  readonly path: string | undefined;

  constructor(syscall: SyscallName, errno: number, target: SyscallTarget = {}) {
    const positive = Math.abs(errno);
    const name = errnoName(positive) ?? (`errno ${positive}` as const);
    super(`${name}: ${describe(syscall, target)}`);
    this.name = 'SyscallError';
    this.errno = positive;
    this.errnoName = name;
    this.syscall = syscall;
    this.fd = target.fd;
    this.request = target.request;
    this.path = target.path;
  }
}

function describe(syscall: SyscallName, target: SyscallTarget): string {
  if (target.request) return `ioctl(${target.fd}, ${target.request}) failed`;
  if (target.path) return `${syscall}("${target.path}") failed`;
  return target.fd === undefined ? `${syscall} failed` : `${syscall}(${target.fd}) failed`;
}

/** A result of the raw surface (>= 0, or -errno) as a value, or a thrown SyscallError. */
export function checkSyscall(rc: number, syscall: SyscallName, target: SyscallTarget = {}): number {
  if (rc < 0) throw new SyscallError(syscall, -rc, target);
  return rc;
}
