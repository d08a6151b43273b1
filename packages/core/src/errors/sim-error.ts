import { errorCatalog, type ErrorCode } from './catalog.js';
import { Errno, type ErrnoName } from './errno.js';

/**
 * The one error type of the model. Inside the kernel model every failure is
 * thrown as a SimError; the syscall boundary (proc.ioctl, proc.open, ...)
 * catches it and returns -errno. The typed API lets it reach the caller.
 */
export class SimError extends Error {
  readonly code: ErrorCode;
  readonly errnoName: ErrnoName;
  readonly errno: number;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    const errnoName = errorCatalog[code].errno;
    super(`${errnoName}: ${message}`, options);
    this.name = 'SimError';
    this.code = code;
    this.errnoName = errnoName;
    this.errno = Errno[errnoName];
  }
}

/** Throws a SimError; shorthand for guard clauses. */
export function fail(code: ErrorCode, message: string): never {
  throw new SimError(code, message);
}

/**
 * Runs `body` and turns a thrown SimError into -errno, the contract of every
 * syscall entry point. Anything else is a bug in the model and is rethrown.
 */
export function syscall(body: () => number): number {
  try {
    return body();
  } catch (error) {
    if (error instanceof SimError) return -error.errno;
    throw error;
  }
}
