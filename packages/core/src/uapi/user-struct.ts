import { SimError } from '../errors/index.js';
import { offsetofEnd, u32, type StructCodec } from './codec.js';
import type { UserMemory } from './user-memory.js';

/** A struct read from user memory, and the size the user declared for it. */
export interface UserStruct<T> {
  readonly value: T;
  /** iommufd's leading `size`, or VFIO's leading `argsz`, as the user wrote it. */
  readonly userSize: number;
}

/**
 * The tail check walks user memory one page at a time. Mappings are
 * page-granular, so a chunk is either wholly readable or not, and the first
 * non-zero byte or the first unmapped page is met in the same order as the
 * kernel's word-by-word check_zeroed_user() meets it (E2BIG vs EFAULT).
 */
const PAGE_SIZE = 4096n;

/** Guards against a table or handler passing a minimum the struct cannot have. */
export function checkMinSize(codec: StructCodec<unknown>, minSize: number): void {
  if (!Number.isInteger(minSize) || minSize < 4 || minSize > codec.size) {
    throw new RangeError(`${codec.cName}: minimum size ${minSize} must lie between 4 and ${codec.size}`);
  }
}

function checkZeroedTail(mem: UserMemory, addr: bigint, length: number, what: string): void {
  let cursor = addr;
  let left = BigInt(length);
  while (left > 0n) {
    const toPageEnd = PAGE_SIZE - (cursor % PAGE_SIZE);
    const chunk = left < toPageEnd ? left : toPageEnd;
    const bytes = mem.copyFromUser(cursor, Number(chunk));
    const nonZero = bytes.findIndex((b) => b !== 0);
    if (nonZero >= 0) {
      throw new SimError('ARG_TAIL_NONZERO', `${what}: byte ${nonZero} past the known size is not zero`);
    }
    cursor += chunk;
    left -= chunk;
  }
}

/**
 * The iommufd size rule (iommufd_fops_ioctl + copy_struct_from_user), also
 * used by VFIO_DEVICE_BIND_IOMMUFD. The leading u32 is read first, so a bad
 * argp is EFAULT before anything else; a size below `minSize` (offsetofend of
 * the last field the ioctl cannot do without) is EINVAL; bytes the user
 * supplies past the kernel's struct must be zero (E2BIG), checked before the
 * struct itself is copied; fields the user's shorter struct lacks read as zero.
 */
export function readIommufdStruct<T>(
  mem: UserMemory,
  argp: bigint,
  codec: StructCodec<T>,
  minSize: number,
): UserStruct<T> {
  checkMinSize(codec, minSize);
  const userSize = u32.read(mem.copyFromUser(argp, 4), 0);
  if (userSize < minSize) {
    throw new SimError('ARG_TOO_SHORT', `${codec.name}: size ${userSize} is below the minimum ${minSize}`);
  }
  if (userSize > codec.size) {
    checkZeroedTail(mem, argp + BigInt(codec.size), userSize - codec.size, `${codec.name} (size ${userSize})`);
  }
  const bytes = new Uint8Array(codec.size);
  bytes.set(mem.copyFromUser(argp, Math.min(userSize, codec.size)));
  return { value: codec.decode(bytes), userSize };
}

/**
 * iommufd_ucmd_respond(): the whole command struct goes back, cut to the
 * size the user declared, so an older, shorter struct is never overrun.
 */
export function respondIommufd<T>(mem: UserMemory, argp: bigint, codec: StructCodec<T>, value: T, userSize: number): void {
  writeBack(mem, argp, codec, value, Math.min(userSize, codec.size));
}

/**
 * The VFIO argsz rule: copy the first `minSize` bytes (offsetofend of the
 * last field the ioctl needs; EFAULT if they are not readable), then reject
 * argsz < minSize with EINVAL. Fields past `minSize` are not read and decode
 * as zero; a larger argsz is not an error (it sizes capability chains and
 * trailing arrays, which the handler reads itself).
 */
export function readVfioArgsz<T>(
  mem: UserMemory,
  argp: bigint,
  codec: StructCodec<T>,
  minSize: number,
): UserStruct<T> {
  checkMinSize(codec, minSize);
  const bytes = new Uint8Array(codec.size);
  bytes.set(mem.copyFromUser(argp, minSize));
  const argsz = u32.read(bytes, 0);
  if (argsz < minSize) {
    throw new SimError('ARG_TOO_SHORT', `${codec.name}: argsz ${argsz} is below the minimum ${minSize}`);
  }
  return { value: codec.decode(bytes), userSize: argsz };
}

/**
 * Copies bytes [from, to) of the user's struct over `value`, for fields a
 * flag makes meaningful after the first copy (VFIO_DEVICE_ATTACH_PASID makes
 * `pasid` part of the struct); the caller checks argsz >= to first.
 */
export function readVfioExtension<T>(
  mem: UserMemory,
  argp: bigint,
  codec: StructCodec<T>,
  value: T,
  from: number,
  to: number,
): T {
  if (!Number.isInteger(from) || !Number.isInteger(to) || from < 0 || to <= from || to > codec.size) {
    throw new RangeError(`${codec.cName}: cannot extend with bytes [${from}, ${to})`);
  }
  const bytes = codec.encodeNew();
  codec.encode(value, bytes);
  bytes.set(mem.copyFromUser(argp + BigInt(from), to - from), from);
  return codec.decode(bytes);
}

/**
 * Rejects flag bits outside `allowed`. Most VFIO ioctls answer EINVAL
 * (UNKNOWN_FLAGS); iommufd answers EOPNOTSUPP for flags it does not
 * support (UNSUPPORTED_FLAGS). Which one, and when, is the ioctl's choice.
 */
export function rejectUnknownFlags(
  flags: number,
  allowed: number,
  what: string,
  code: 'UNKNOWN_FLAGS' | 'UNSUPPORTED_FLAGS' = 'UNKNOWN_FLAGS',
): void {
  const unknown = (flags & ~allowed) >>> 0;
  if (unknown !== 0) {
    throw new SimError(code, `${what}: flags 0x${(flags >>> 0).toString(16)} has unknown bits 0x${unknown.toString(16)}`);
  }
}

/**
 * Copies the first `length` bytes of the encoded struct to the user. Most
 * VFIO ioctls copy back only their minsz (vfio_pci_ioctl_get_info,
 * get_region_info, get_irq_info), never argsz, so a newer field the
 * user did not ask for is not written.
 */
export function writeBack<T>(mem: UserMemory, argp: bigint, codec: StructCodec<T>, value: T, length: number): void {
  if (!Number.isInteger(length) || length < 0 || length > codec.size) {
    throw new RangeError(`${codec.cName}: cannot write back ${length} bytes`);
  }
  const bytes = codec.encodeNew();
  codec.encode(value, bytes);
  mem.copyToUser(argp, bytes.subarray(0, length));
}

/** Copies one field to its place in the user's struct (copy_to_user(&arg->pt_id, ...)). */
export function writeBackField<T, K extends keyof T & string>(
  mem: UserMemory,
  argp: bigint,
  codec: StructCodec<T>,
  field: K,
  value: T[K],
): void {
  const offset = codec.offsetOf(field);
  const end = offsetofEnd(codec, field);
  const bytes = new Uint8Array(codec.size);
  codec.writeField(bytes, field, value);
  mem.copyToUser(argp + BigInt(offset), bytes.subarray(offset, end));
}
