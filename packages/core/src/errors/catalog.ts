import type { ErrnoName } from './errno.js';

interface CatalogEntry {
  readonly errno: ErrnoName;
  readonly doc: string;
}

/**
 * Every error the model throws, by code. The errno is what the syscall
 * boundary returns (negated); the doc says when the code is used. docs/errors.md
 * lists the same codes and a test keeps the two in step.
 *
 * Codes are grouped by layer. Add a code here (and to docs/errors.md) rather
 * than throwing an ad-hoc error.
 */
export const errorCatalog = Object.freeze({
  // uapi: argument decoding, shared by every ioctl
  ARG_TOO_SHORT: { errno: 'EINVAL', doc: 'argsz or size is below the minimum struct size the ioctl accepts.' },
  ARG_TAIL_NONZERO: { errno: 'E2BIG', doc: 'A struct longer than the kernel knows has non-zero bytes past the known size.' },
  UNKNOWN_FLAGS: { errno: 'EINVAL', doc: 'flags has bits the ioctl does not define (ioctls that answer EINVAL).' },
  UNSUPPORTED_FLAGS: { errno: 'EOPNOTSUPP', doc: 'flags or an option names something this ioctl does not support (ioctls that answer EOPNOTSUPP).' },
  RESERVED_NONZERO: { errno: 'EOPNOTSUPP', doc: 'A reserved field is non-zero where the kernel answers EOPNOTSUPP.' },
  RESERVED_NONZERO_INVAL: { errno: 'EINVAL', doc: 'A reserved field is non-zero where the kernel answers EINVAL.' },
  UNKNOWN_IOCTL: { errno: 'ENOTTY', doc: 'The request number is not an ioctl of this file.' },
  INVALID_ARGUMENT: { errno: 'EINVAL', doc: 'An argument value is out of range or inconsistent with the others.' },
  BUFFER_TOO_SMALL: { errno: 'ENOSPC', doc: 'The caller\'s buffer cannot hold the answer; the needed size was written back.' },

  // os: the simulated process and its memory
  BAD_ADDRESS: { errno: 'EFAULT', doc: 'A user pointer (argp, a pointer inside a struct, a buffer) is not in a mapped range with the needed access.' },
  BAD_FD: { errno: 'EBADF', doc: 'The file descriptor is not open in the calling process.' },
  NO_SUCH_FILE: { errno: 'ENOENT', doc: 'No device node or file at that path.' },
  MAPPING_EXISTS: { errno: 'EEXIST', doc: 'A fixed mapping request overlaps an existing mapping.' },
  OUT_OF_MEMORY: { errno: 'ENOMEM', doc: 'No address space or memory left for the request.' },
  TOO_MANY_FILES: { errno: 'EMFILE', doc: 'The process fd table is full.' },
  NOT_SEEKABLE: { errno: 'ESPIPE', doc: 'pread/pwrite on a file with no position.' },
  WOULD_BLOCK: { errno: 'EAGAIN', doc: 'A non-blocking read found nothing to return.' },
  WRONG_FILE_TYPE: { errno: 'EINVAL', doc: 'An fd passed as an argument refers to a file of the wrong kind.' },
  WRONG_ACCESS_MODE: { errno: 'EBADF', doc: 'The fd is open, but not for the access (read or write) the call needs.' },
  ACCESS_DENIED: { errno: 'EACCES', doc: 'The file was not opened with the access the mapping needs (a shared writable map of a read-only fd).' },

  // platform: topology and host descriptions (thrown at build time, not by syscalls)
  INVALID_HOST_DESCRIPTION: { errno: 'EINVAL', doc: 'A host description failed validation; the message names the offending path.' },
  INVALID_BDF: { errno: 'EINVAL', doc: 'A PCI address does not parse as dddd:bb:dd.f with device 0-31 and function 0-7.' },
  NO_SUCH_DEVICE: { errno: 'ENODEV', doc: 'No PCI function, vfio device or object of that name or id.' },

  // composition: plugins and the DI container
  PLUGIN_DEPENDENCY_MISSING: { errno: 'EINVAL', doc: 'A plugin names a dependency that is not in the host\'s plugin list (or comes after it).' },
  PLUGIN_DUPLICATE: { errno: 'EEXIST', doc: 'Two plugins with the same name were given to one host.' },
  PLUGIN_INVALID: { errno: 'EINVAL', doc: 'A plugin object is malformed (no name, dependsOn not a list of names, register or apply not a function) or depends on itself.' },
  HOOK_TAP_FAILED: { errno: 'EIO', doc: 'A plugin\'s tap threw a non-model error; the message names the plugin and hook.' },

  // generic kernel answers used by more than one layer
  BUSY: { errno: 'EBUSY', doc: 'The object is in use (open, attached, referenced) and cannot take this operation now.' },
  NOT_PERMITTED: { errno: 'EPERM', doc: 'The caller does not have the ownership or privilege the operation needs.' },
  NOT_SUPPORTED: { errno: 'EOPNOTSUPP', doc: 'The device, driver or IOMMU does not support the operation.' },
  NO_DEVICE: { errno: 'ENODEV', doc: 'The operation needs a device or method that is not present.' },
  EXISTS: { errno: 'EEXIST', doc: 'The thing to create already exists (overlapping mapping, duplicate registration).' },
  NOT_FOUND: { errno: 'ENOENT', doc: 'An id or key given by the caller names nothing.' },
  IO_ERROR: { errno: 'EIO', doc: 'The modelled hardware reported an error.' },
  OUT_OF_RANGE: { errno: 'ERANGE', doc: 'A value lies outside the range the object accepts.' },
  OVERFLOW: { errno: 'EOVERFLOW', doc: 'A computed address or size wraps around or does not fit its field.' },
  NOT_IMPLEMENTED: { errno: 'ENOSYS', doc: 'The operation exists in the kernel but is not provided by this object.' },

  // iommu: device DMA refused by the IOMMU hardware
  IOMMU_FAULT: { errno: 'EIO', doc: 'A device DMA was refused by the IOMMU (unmapped IOVA, missing permission, blocked domain); nothing was transferred and the fault is in the DMA fault log.' },
  LIMIT_REACHED: { errno: 'ENOSPC', doc: 'A per-object limit is reached (the type1 dma_entry_limit on the mappings of one container).' },
  NOT_IN_THIS_VERSION: { errno: 'EACCES', doc: 'The object was opened at an interface version that lacks the operation (a type1 v1 container asked to pin pages or track dirty pages).' },

  // vfio: files passed between subsystems, id allocators
  FILE_NOT_RECOGNIZED: { errno: 'EBADFD', doc: 'An fd passed in an ioctl is open but is not a file the ioctl takes (an eventfd as iommufd, a group fd as container).' },
  IDS_EXHAUSTED: { errno: 'ENOSPC', doc: 'An id allocator (vfio device minors, group ids) has no free id left.' },
  TOO_MANY_ENTRIES: { errno: 'E2BIG', doc: 'A request lists more entries than the kernel takes in one call (DMA logging ranges).' },
  MODULE_IN_USE: { errno: 'EAGAIN', doc: 'A driver module cannot be unloaded while something holds a reference on it, such as an open vfio device (delete_module answers EWOULDBLOCK).' },

  // iommufd: IOVA space management
  NO_IOVA_SPACE: { errno: 'ENOSPC', doc: 'No free IOVA range of the needed length and alignment is left in the IOAS for an automatic mapping.' },
  ADDRESS_IN_USE: { errno: 'EADDRINUSE', doc: 'An IOVA range that must become reserved or allowed (or meet a larger alignment) collides with existing mappings or reservations.' },
  IOVA_RANGES_TRUNCATED: { errno: 'EMSGSIZE', doc: 'IOMMU_IOAS_IOVA_RANGES found more ranges than the user array holds; the ones that fit and the full count were written back.' },
  ACCESS_UNMAP_DEADLOCK: { errno: 'EDEADLK', doc: 'An unmap told the in-kernel accesses (emulated devices) to drop their pins in an area a hundred times and they kept them; the areas unmapped before it stay unmapped (iommufd answers EDEADLOCK, the same number).' },
  // vfio-pci-core: device operations the driver has no handler for
  NO_HANDLER: { errno: 'ENOTTY', doc: 'The device has no handler for the operation: an interrupt action its index lacks, a device feature it does not know, no reset method that works for the function.' },

  // api: the typed API above the system calls
  INVALID_API_INPUT: { errno: 'EINVAL', doc: 'The typed API refused a value before making any system call: it cannot be put in the uAPI struct (wrong type, outside the field\'s range); the message names the field. What the kernel itself refuses comes back as a SyscallError instead.' },
} satisfies Record<string, CatalogEntry>);

export type ErrorCode = keyof typeof errorCatalog;
