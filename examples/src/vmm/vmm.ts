import { O_RDWR, type DeepPartial, type Host, type IoctlName, type Process, type StructCodec } from '@vfiosim/core';
import { formatFields, hex, sameValue } from './format.js';
import { errnoText, ioctlRequest, ioctlStruct, type IoctlStructOptions, type IoctlStructResult } from './ioctl-struct.js';
import type { Trace } from './trace.js';

export interface TracedIoctlOptions extends IoctlStructOptions {
  /** How the bytes after the struct read, e.g. `data=[fd 5]` (shown after the struct). */
  readonly tailText?: string;
}

/**
 * A VMM process on a host whose system calls are printed the way strace
 * prints them: `ioctl(4, NAME, {in} => {out}) = 0`. The input shown is the
 * struct header and the fields the caller set; the output, the fields the
 * kernel changed.
 */
export class Vmm {
  readonly proc: Process;

  constructor(
    readonly host: Host,
    readonly trace: Trace,
  ) {
    this.proc = host.spawn();
  }

  open(path: string, flags = O_RDWR): number {
    const fd = this.proc.open(path, flags);
    this.trace.line(`openat(AT_FDCWD, "${path}", ${flags === O_RDWR ? 'O_RDWR' : hex(flags)}) = ${errnoText(fd)}`);
    return fd;
  }

  close(fd: number): number {
    const rc = this.proc.close(fd);
    this.trace.line(`close(${fd}) = ${errnoText(rc)}`);
    return rc;
  }

  ioctl<T>(fd: number, name: IoctlName, codec: StructCodec<T>, value: DeepPartial<T>, options: TracedIoctlOptions = {}): IoctlStructResult<T> {
    const result = ioctlStruct(this.proc, fd, name, codec, value, options);
    const given = new Set(Object.keys(value as object));
    const header = codec.fields[0]?.name;
    const shownIn = codec.fields
      .map((field) => field.name)
      .filter((field, i, all) => all.indexOf(field) === i && (field === header || given.has(field)));
    const input = result.in as Record<string, unknown>;
    const output = result.out as Record<string, unknown>;
    let arg = formatFields(codec.name, input, shownIn);
    if (options.tailText) arg += `, ${options.tailText}`;
    if (result.rc >= 0) {
      const changed = codec.fields.map((field) => field.name).filter((field) => !sameValue(input[field], output[field]));
      if (changed.length > 0) arg += ` => ${formatFields(codec.name, output, changed)}`;
    }
    this.trace.line(`ioctl(${fd}, ${name}, ${arg}) = ${errnoText(result.rc)}`);
    return result;
  }

  /** An ioctl whose argument is not a pointer (VFIO_DEVICE_RESET, VFIO_SET_IOMMU). */
  ioctlValue(fd: number, name: IoctlName, arg = 0n): number {
    const rc = this.proc.ioctl(fd, ioctlRequest(name), arg);
    this.trace.line(`ioctl(${fd}, ${name}${arg === 0n ? '' : `, ${arg}`}) = ${errnoText(rc)}`);
    return rc;
  }

  /** pread of `length` bytes; the bytes, or -errno. */
  pread(fd: number, length: number, offset: bigint): Uint8Array | number {
    const buf = new Uint8Array(length);
    const rc = this.proc.pread(fd, buf, offset);
    this.trace.line(`pread64(${fd}, ${rc >= 0 ? quote(buf.subarray(0, rc)) : '0x...'}, ${length}, ${hex(offset)}) = ${errnoText(rc)}`);
    return rc >= 0 ? buf.subarray(0, rc) : rc;
  }

  pwrite(fd: number, bytes: Uint8Array, offset: bigint): number {
    const rc = this.proc.pwrite(fd, bytes, offset);
    this.trace.line(`pwrite64(${fd}, ${quote(bytes)}, ${bytes.length}, ${hex(offset)}) = ${errnoText(rc)}`);
    return rc;
  }

  eventfd(): number {
    const fd = this.proc.eventfd(0);
    this.trace.line(`eventfd2(0, 0) = ${errnoText(fd)}`);
    return fd;
  }

  /** read(2) of an eventfd's 8-byte counter; the count, or -errno (EAGAIN when nothing fired and the fd is non-blocking). */
  readEventfd(fd: number): bigint | number {
    const buf = new Uint8Array(8);
    const rc = this.proc.read(fd, buf);
    const count = new DataView(buf.buffer).getBigUint64(0, true);
    this.trace.line(`read(${fd}, ${rc >= 0 ? `[${count}]` : '0x...'}, 8) = ${errnoText(rc)}`);
    return rc >= 0 ? count : rc;
  }

  /** Anonymous memory; the address (throws if the mapping fails: a harness problem here). */
  mmap(length: number): bigint {
    const va = this.proc.mmap(length);
    this.trace.line(`mmap(NULL, ${hex(length)}, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = ${va < 0n ? errnoText(Number(va)) : hex(va)}`);
    if (va < 0n) throw new Error(`mmap failed: ${errnoText(Number(va))}`);
    return va;
  }
}

/** Bytes as strace quotes them: printable ASCII as is, the rest as \xNN. */
export function quote(bytes: Uint8Array): string {
  let text = '';
  for (const byte of bytes) {
    text += byte >= 0x20 && byte < 0x7f && byte !== 0x22 && byte !== 0x5c ? String.fromCharCode(byte) : `\\x${byte.toString(16).padStart(2, '0')}`;
  }
  return `"${text}"`;
}
