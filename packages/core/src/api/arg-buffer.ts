import type { AddressSpace, Process } from '../os/index.js';
import { checkSyscall } from './syscall-error.js';

const PAGE = 0x1000;
const DEFAULT_SIZE = 16 * PAGE;

interface Area {
  readonly mm: AddressSpace;
  readonly va: bigint;
  readonly size: number;
}

const areas = new WeakMap<Process, Area>();

/**
 * Where the typed API puts ioctl arguments: an anonymous mapping in the
 * calling process, since every pointer the kernel is handed (argp, the
 * pointers inside a struct) must be an address in that process's memory.
 * One area per process, made on first use, grown when an argument does not
 * fit, and made again after exec() replaced the address space.
 *
 * Calls are synchronous, so one area serves every handle of the process:
 * an argument lives only for the duration of the call that wrote it.
 */
export class ArgBuffer {
  private constructor(
    readonly proc: Process,
    readonly va: bigint,
    readonly size: number,
  ) {}

  /** The process's argument area, at least `size` bytes long. */
  static of(proc: Process, size = 0): ArgBuffer {
    let area = areas.get(proc);
    if (area && (area.mm !== proc.mm || area.size < size)) {
      if (area.mm === proc.mm) proc.munmap(area.va, area.size);
      area = undefined;
    }
    if (!area) {
      const length = Math.max(DEFAULT_SIZE, Math.ceil(size / PAGE) * PAGE);
      const va = proc.mmap(length);
      if (va < 0n) checkSyscall(Number(va), 'mmap');
      area = { mm: proc.mm, va, size: length };
      areas.set(proc, area);
    }
    return new ArgBuffer(proc, area.va, area.size);
  }

  /** Writes `bytes` at `offset` in the area; returns their user address. */
  put(bytes: Uint8Array, offset = 0): bigint {
    const va = this.va + BigInt(offset);
    const rc = this.proc.mem.write(va, bytes);
    if (rc < 0) throw new Error(`the typed API's argument area at 0x${va.toString(16)} is not writable (${rc})`);
    return va;
  }

  /** Reads back `length` bytes at `offset`, as the kernel left them. */
  get(length: number, offset = 0): Uint8Array {
    const bytes = this.proc.mem.read(this.va + BigInt(offset), length);
    if (typeof bytes === 'number') throw new Error(`the typed API's argument area is not readable (${bytes})`);
    return bytes;
  }
}
