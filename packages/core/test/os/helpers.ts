import { OpenFile, SimError, type FileOperations, type MmioBacking, type System } from '@vfiosim/core';

export const PAGE = 4096n;
export const EFAULT = -14;
export const EBADF = -9;

/** Registers a device node whose file uses `ops`; counts releases. */
export function fakeDevice(system: System, path: string, ops: Omit<FileOperations, 'kind' | 'release'> = {}) {
  const state = { releases: 0, opened: [] as OpenFile[] };
  const fops: FileOperations = {
    kind: 'fake',
    ...ops,
    release: () => {
      state.releases++;
    },
  };
  system.devfs.register(path, (_proc, flags) => {
    const file = new OpenFile(fops, flags);
    state.opened.push(file);
    return file;
  });
  return state;
}

/** A BAR-like MMIO window that can be revoked, as vfio-pci does during reset. */
export class FakeBar implements MmioBacking {
  readonly bytes: Uint8Array;
  revoked = false;
  readonly accesses: string[] = [];

  constructor(size: number) {
    this.bytes = new Uint8Array(size);
  }

  read(offset: bigint, length: number): Uint8Array {
    if (this.revoked) throw new SimError('BAD_ADDRESS', 'BAR revoked (SIGBUS)');
    this.accesses.push(`r ${offset} ${length}`);
    return this.bytes.slice(Number(offset), Number(offset) + length);
  }

  write(offset: bigint, bytes: Uint8Array): void {
    if (this.revoked) throw new SimError('BAD_ADDRESS', 'BAR revoked (SIGBUS)');
    this.accesses.push(`w ${offset} ${bytes.length}`);
    this.bytes.set(bytes, Number(offset));
  }
}

export function bytes(...values: number[]): Uint8Array {
  return Uint8Array.from(values);
}

/** Narrows an mmap result to an address, failing the test on -errno. */
export function addr(result: bigint): bigint {
  if (result < 0n) throw new Error(`mmap failed with ${result}`);
  return result;
}
