import {
  IommuCore, PhysicalMemory, SimError, createMockIommuDriver,
  type IommuClientDevice, type MockIommuDriver, type UserMemory,
} from '@vfiosim/core';

/**
 * A process's memory for driver-data tests: one readable and writable
 * window [base, base + size); anything else is EFAULT, as copy_from_user
 * answers for an unmapped address.
 */
export class WindowUserMemory implements UserMemory {
  readonly bytes: Uint8Array;

  constructor(readonly base: bigint, size: number) {
    this.bytes = new Uint8Array(size);
  }

  #offset(addr: bigint, length: number): number {
    const offset = addr - this.base;
    if (offset < 0n || offset + BigInt(length) > BigInt(this.bytes.length)) {
      throw new SimError('BAD_ADDRESS', `0x${addr.toString(16)}+${length} is not mapped`);
    }
    return Number(offset);
  }

  copyFromUser(addr: bigint, length: number): Uint8Array {
    const offset = this.#offset(addr, length);
    return this.bytes.slice(offset, offset + length);
  }

  copyToUser(addr: bigint, bytes: Uint8Array): void {
    this.bytes.set(bytes, this.#offset(addr, bytes.length));
  }
}

export interface MockHost {
  readonly physMem: PhysicalMemory;
  readonly core: IommuCore;
  readonly mock: MockIommuDriver;
  /** A new mock device, probed into its own IOMMU group `groupId`. */
  device(groupId: number, flags?: number, options?: { atsCapable?: boolean }): IommuClientDevice;
}

/** Host RAM, an IommuCore with the mock driver registered. */
export function mockHost(options: { iotlbCapacity?: number } = {}): MockHost {
  const physMem = new PhysicalMemory();
  const core = new IommuCore();
  const mock = createMockIommuDriver({ physMem, iotlbCapacity: options.iotlbCapacity });
  core.registerDriver(mock);
  return {
    physMem,
    core,
    mock,
    device(groupId, flags = 0, deviceOptions = {}) {
      const dev = mock.createDevice(flags, deviceOptions);
      core.probeDevice(dev, groupId);
      return dev;
    },
  };
}

/** Runs `body` and returns the SimError it throws (failing the test if it does not). */
export function simError(body: () => unknown): SimError {
  try {
    body();
  } catch (error) {
    if (error instanceof SimError) return error;
    throw error;
  }
  throw new Error('expected a SimError, nothing was thrown');
}
