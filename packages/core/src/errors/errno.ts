/**
 * Linux x86-64 errno numbers (asm-generic/errno-base.h and errno.h), the
 * values a syscall returns negated. Only names the model can produce are
 * listed; ENOIOCTLCMD and ENOTSUPP are kernel-internal and never cross the
 * syscall boundary, so they are deliberately absent.
 */
export const Errno = Object.freeze({
  EPERM: 1,
  ENOENT: 2,
  ESRCH: 3,
  EINTR: 4,
  EIO: 5,
  ENXIO: 6,
  E2BIG: 7,
  EBADF: 9,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EFAULT: 14,
  EBUSY: 16,
  EEXIST: 17,
  EXDEV: 18,
  ENODEV: 19,
  ENOTDIR: 20,
  EISDIR: 21,
  EINVAL: 22,
  ENFILE: 23,
  EMFILE: 24,
  ENOTTY: 25,
  EFBIG: 27,
  ENOSPC: 28,
  ESPIPE: 29,
  EROFS: 30,
  EPIPE: 32,
  ERANGE: 34,
  EDEADLK: 35,
  ENAMETOOLONG: 36,
  ENOSYS: 38,
  ELOOP: 40,
  ENODATA: 61,
  ETIME: 62,
  EOVERFLOW: 75,
  EBADFD: 77,
  EMSGSIZE: 90,
  EOPNOTSUPP: 95,
  EADDRINUSE: 98,
  ENOBUFS: 105,
  ETIMEDOUT: 110,
  EALREADY: 114,
  EINPROGRESS: 115,
  ECANCELED: 125,
});

export type ErrnoName = keyof typeof Errno;

const byNumber = new Map<number, ErrnoName>(
  Object.entries(Errno).map(([name, value]) => [value, name as ErrnoName]),
);

/** The errno name for a positive or negated errno number. */
export function errnoName(errno: number): ErrnoName | undefined {
  return byNumber.get(Math.abs(errno));
}
