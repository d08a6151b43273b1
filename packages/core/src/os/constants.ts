/**
 * Flag values of the syscalls the model implements, with their Linux
 * x86-64 numbers (asm-generic/fcntl.h, mman-common.h, linux/mman.h,
 * linux/eventfd.h, linux/memfd.h, asm-generic/ioctls.h, uapi/linux/eventpoll.h).
 */

export const O_RDONLY = 0o0;
export const O_WRONLY = 0o1;
export const O_RDWR = 0o2;
export const O_ACCMODE = 0o3;
export const O_NONBLOCK = 0o4000;
export const O_LARGEFILE = 0o100000;
export const O_CLOEXEC = 0o2000000;

export const PROT_NONE = 0x0;
export const PROT_READ = 0x1;
export const PROT_WRITE = 0x2;
export const PROT_EXEC = 0x4;

export const MAP_SHARED = 0x01;
export const MAP_PRIVATE = 0x02;
export const MAP_SHARED_VALIDATE = 0x03;
export const MAP_TYPE = 0x0f;
export const MAP_FIXED = 0x10;
export const MAP_ANONYMOUS = 0x20;
export const MAP_GROWSDOWN = 0x0100;
export const MAP_DENYWRITE = 0x0800;
export const MAP_EXECUTABLE = 0x1000;
export const MAP_LOCKED = 0x2000;
export const MAP_NORESERVE = 0x4000;
export const MAP_POPULATE = 0x8000;
export const MAP_NONBLOCK = 0x10000;
export const MAP_STACK = 0x20000;
export const MAP_HUGETLB = 0x40000;
export const MAP_SYNC = 0x80000;
export const MAP_FIXED_NOREPLACE = 0x100000;
export const MAP_UNINITIALIZED = 0x4000000;
/**
 * The flags MAP_SHARED has always accepted (and silently ignored when
 * meaningless); MAP_SHARED_VALIDATE refuses anything outside this set.
 */
export const LEGACY_MAP_MASK =
  MAP_SHARED | MAP_PRIVATE | MAP_FIXED | MAP_ANONYMOUS | MAP_DENYWRITE | MAP_EXECUTABLE |
  MAP_UNINITIALIZED | MAP_GROWSDOWN | MAP_LOCKED | MAP_NORESERVE | MAP_POPULATE | MAP_NONBLOCK |
  MAP_STACK | MAP_HUGETLB;

export const EFD_SEMAPHORE = 0x1;
export const EFD_CLOEXEC = O_CLOEXEC;
export const EFD_NONBLOCK = O_NONBLOCK;

export const MFD_CLOEXEC = 0x1;
export const MFD_ALLOW_SEALING = 0x2;
export const MFD_HUGETLB = 0x4;
export const MFD_NOEXEC_SEAL = 0x8;
export const MFD_EXEC = 0x10;
export const MFD_HUGE_SHIFT = 26;
export const MFD_HUGE_MASK = 0x3f;
/** NAME_MAX less the "memfd:" prefix the kernel adds. */
export const MFD_NAME_MAX_LEN = 249;

/** Generic ioctls the VFS answers itself, before a driver sees the request. */
export const FIONBIO = 0x5421;
export const FIONCLEX = 0x5450;
export const FIOCLEX = 0x5451;

export const EPOLLIN = 0x001;
export const EPOLLOUT = 0x004;
export const EPOLLERR = 0x008;
export const EPOLLHUP = 0x010;

/** RLIMIT_NOFILE soft limit a login shell starts with. */
export const DEFAULT_NOFILE = 1024;
