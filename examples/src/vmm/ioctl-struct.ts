import { errnoName, uapiFacts, type DeepPartial, type IoctlName, type Process, type StructCodec } from '@vfiosim/core';

/*
 * The typed helper a VMM-style user writes once over the raw syscall
 * surface: put a struct in the process's memory, ioctl with its address,
 * decode what the kernel left there. Everything goes through proc.ioctl,
 * so the kernel's argsz/size rules and errnos apply unchanged.
 */

/** Bytes of per-process scratch memory that ioctl arguments are staged in. */
export const SCRATCH_SIZE = 64 * 1024;

const scratchAreas = new WeakMap<Process, bigint>();

/**
 * The process's scratch area for ioctl arguments: one anonymous mapping,
 * made on first use. A VMM keeps such a buffer too, since every pointer it
 * hands the kernel must be an address in its own memory.
 */
export function scratchArea(proc: Process): bigint {
  let va = scratchAreas.get(proc);
  if (va === undefined) {
    va = proc.mmap(SCRATCH_SIZE);
    if (va < 0n) throw new Error(`mmap of the ioctl scratch area failed: ${errnoText(Number(va))}`);
    scratchAreas.set(proc, va);
  }
  return va;
}

/** The request number of an ioctl by its kernel name. */
export function ioctlRequest(name: IoctlName): number {
  return uapiFacts.ioctls[name];
}

/** "-EINVAL" for -22, "0" for 0, the number itself for other results. */
export function errnoText(rc: number): string {
  if (rc >= 0) return String(rc);
  const name = errnoName(-rc);
  return name ? `-${name}` : String(rc);
}

export interface IoctlStructOptions {
  /** Bytes placed right after the struct: a flexible array the caller fills (eventfds, group fds, invalidation entries). */
  readonly trailing?: Uint8Array;
  /** Zeroed bytes after the struct and `trailing` for the kernel to fill (capability chains, dependent-device arrays). */
  readonly room?: number;
}

export interface IoctlStructResult<T> {
  /** The syscall's answer: >= 0, or -errno. */
  readonly rc: number;
  /** The struct as the kernel left it in user memory. */
  readonly out: T;
  /** The struct as it was passed in. */
  readonly in: T;
  /** The `trailing` + `room` bytes after the struct, as the kernel left them. */
  readonly tail: Uint8Array;
}

/**
 * ioctl(fd, request, &arg) for a struct argument. `argsz` (VFIO) or `size`
 * (iommufd), when the struct starts with one and the caller leaves it out,
 * is filled in as a C caller does: sizeof the struct plus what follows it
 * for VFIO, sizeof the struct for iommufd.
 *
 * Throws only for a harness problem (the scratch area cannot hold the
 * argument); the kernel's refusals come back as a negative `rc`.
 */
export function ioctlStruct<T>(
  proc: Process,
  fd: number,
  request: IoctlName | number,
  codec: StructCodec<T>,
  value: DeepPartial<T>,
  options: IoctlStructOptions = {},
): IoctlStructResult<T> {
  const trailing = options.trailing ?? new Uint8Array(0);
  const length = codec.size + trailing.length + (options.room ?? 0);
  if (length > SCRATCH_SIZE) throw new RangeError(`${codec.name}: ${length} bytes do not fit the ${SCRATCH_SIZE}-byte scratch area`);

  const bytes = new Uint8Array(length);
  bytes.set(codec.encodeNew(withHeader(codec, value, length)));
  bytes.set(trailing, codec.size);
  const argp = scratchArea(proc);
  const written = proc.mem.write(argp, bytes);
  if (written < 0) throw new Error(`staging ${codec.name} failed: ${errnoText(written)}`);

  const rc = proc.ioctl(fd, typeof request === 'number' ? request : ioctlRequest(request), argp);
  const after = proc.mem.read(argp, length);
  if (typeof after === 'number') throw new Error(`reading back ${codec.name} failed: ${errnoText(after)}`);
  return { rc, in: codec.decode(bytes), out: codec.decode(after), tail: after.subarray(codec.size) };
}

/** Adds argsz/size when the struct leads with one and the caller did not give it. */
function withHeader<T>(codec: StructCodec<T>, value: DeepPartial<T>, length: number): DeepPartial<T> {
  const given = value as Record<string, unknown>;
  const first = codec.fields[0]?.name;
  if (first === 'argsz' && given.argsz === undefined) return { ...given, argsz: length } as unknown as DeepPartial<T>;
  if (first === 'size' && given.size === undefined) return { ...given, size: codec.size } as unknown as DeepPartial<T>;
  return value;
}
