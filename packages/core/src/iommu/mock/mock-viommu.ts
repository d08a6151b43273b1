import { SimError } from '../../errors/index.js';
import type { Frame, PhysicalMemory } from '../../os/phys-mem.js';
import { IOMMU_HWPT_ALLOC_PASID, u32 } from '../../uapi/index.js';
import type {
  IommuClientDevice, IommuDomain, IommuUserData, IommuUserDataArray, IommuViommu, IommuViommuServices,
} from '../iommu-driver.js';
import { iommuCopyStructFromFullUserArray } from '../user-data.js';
import {
  IOMMU_TEST_INVALIDATE_FLAG_ALL, IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST, IOMMU_VIOMMU_TYPE_SELFTEST,
  MOCK_DEV_CACHE_ID_MAX,
} from './constants.js';
import type { MockNestedDomain, MockPagingDomain } from './mock-domains.js';
import { MockIommu } from './mock-iommu.js';
import { iommu_viommu_invalidate_selftest } from './structs.js';

/*
 * The mock vIOMMU (struct mock_viommu and mock_viommu_ops in selftest.c).
 *
 * - vDEVICEs: the guest's id for each device behind the vIOMMU. A nested
 *   domain allocated through the vIOMMU can only be attached to a device
 *   that has one (attach answers ENOENT otherwise).
 * - cache_invalidate: the selftest's device-cache invalidation. Each entry
 *   names a vDEVICE and a cache slot (or all slots); the mock zeroes the
 *   selftest's slot values and empties the matching part of the device's
 *   real ATC (slot n holds the translations with IOVA bits 13:12 = n).
 *   The whole array is copied first, then walked; the first bad entry stops
 *   the walk (EOPNOTSUPP for unknown flags, EINVAL for a cache_id beyond
 *   MOCK_DEV_CACHE_ID_MAX or an unknown vdev_id), with `handled` counting
 *   the entries before it. An empty array of the right type is a successful
 *   probe of the data type.
 * - The mmap window: created with user data, the vIOMMU allocates two
 *   physically contiguous pages, stores the user's in_data in the first
 *   word, and reports them through the iommufd mmap offset.
 *
 * Public API: MockViommu
 */

/** What the vIOMMU needs from the driver that made it. */
export interface MockViommuDriver {
  readonly iommu: MockIommu;
  readonly physMem: PhysicalMemory;
  mockDevice(dev: IommuClientDevice): { readonly cache: number[] };
  allocNested(parent: MockPagingDomain, viommu: MockViommu | null, userData: IommuUserData): MockNestedDomain;
}

export class MockViommu implements IommuViommu {
  readonly type = IOMMU_VIOMMU_TYPE_SELFTEST;
  readonly #driver: MockViommuDriver;
  readonly #vdevs = new Map<bigint, IommuClientDevice>();
  readonly #services: IommuViommuServices;
  /** The mmap window: its two frames and its iommufd mmap offset. */
  #window: { readonly frames: readonly Frame[]; readonly offset: bigint } | null = null;

  constructor(driver: MockViommuDriver, readonly parent: MockPagingDomain & IommuDomain, services: IommuViommuServices) {
    this.#driver = driver;
    this.#services = services;
  }

  /** The mmap offset of the window, or null when the vIOMMU was made without user data. */
  get mmapOffset(): bigint | null {
    return this.#window?.offset ?? null;
  }

  /**
   * Opens the mmap window (mock_viommu_init with user data): two contiguous
   * zeroed pages, `inData` in the first word. ENOMEM if two contiguous
   * frames are not to be had; EOPNOTSUPP if iommufd offered no mmap.
   */
  openWindow(inData: number): { offset: bigint; length: bigint } {
    if (!this.#services.allocMmap) throw new SimError('NOT_SUPPORTED', 'the mock vIOMMU needs an mmap window and none is offered');
    const mem = this.#driver.physMem;
    const a = mem.allocate();
    const b = mem.allocate();
    const [low, high] = a.pfn < b.pfn ? [a, b] : [b, a];
    if (high.pfn !== low.pfn + 1n) {
      a.put();
      b.put();
      throw new SimError('OUT_OF_MEMORY', 'no two contiguous pages for the mock vIOMMU window');
    }
    const word = new Uint8Array(4);
    u32.write(word, 0, inData);
    mem.write(low.pa, word);
    const length = 2n * 4096n;
    let offset: bigint;
    try {
      offset = this.#services.allocMmap(low.pa, length);
    } catch (error) {
      a.put();
      b.put();
      throw error;
    }
    this.#window = { frames: [low, high], offset };
    return { offset, length };
  }

  /** Undoes openWindow (the driver's error path when the answer cannot reach the user). */
  closeWindow(): void {
    const window = this.#window;
    if (!window) return;
    this.#services.destroyMmap?.(window.offset);
    for (const frame of window.frames) frame.put();
    this.#window = null;
  }

  /** The virtual id `dev` has on this vIOMMU, or null. */
  vdevIdOf(dev: IommuClientDevice): bigint | null {
    for (const [id, vdev] of this.#vdevs) if (vdev === dev) return id;
    return null;
  }

  /** The device behind virtual id `virtId` (iommufd_viommu_find_dev). */
  findDev(virtId: bigint): IommuClientDevice | null {
    return this.#vdevs.get(virtId) ?? null;
  }

  vdeviceInit(dev: IommuClientDevice, virtId: bigint): void {
    this.#vdevs.set(virtId, dev);
  }

  vdeviceDestroy(_dev: IommuClientDevice, virtId: bigint): void {
    this.#vdevs.delete(virtId);
  }

  /** mock_viommu_alloc_domain_nested: only IOMMU_HWPT_ALLOC_PASID is a known flag (EOPNOTSUPP). */
  allocDomainNested(_dev: IommuClientDevice, flags: number, userData: IommuUserData): IommuDomain {
    if ((flags & ~IOMMU_HWPT_ALLOC_PASID) !== 0) {
      throw new SimError('NOT_SUPPORTED', `flags 0x${(flags >>> 0).toString(16)} for a mock nested domain`);
    }
    return this.#driver.allocNested(this.parent, this, userData);
  }

  /** mock_viommu_cache_invalidate. */
  cacheInvalidate(array: IommuUserDataArray): void {
    if (array.entryNum === 0 && array.type === IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST) {
      array.handled = 0;
      return;
    }
    let done = 0;
    try {
      const cmds = iommuCopyStructFromFullUserArray(iommu_viommu_invalidate_selftest, array, IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST);
      for (const cmd of cmds) {
        if ((cmd.flags & ~IOMMU_TEST_INVALIDATE_FLAG_ALL) !== 0) {
          throw new SimError('NOT_SUPPORTED', `entry ${done}: flags 0x${(cmd.flags >>> 0).toString(16)}`);
        }
        if (cmd.cache_id > MOCK_DEV_CACHE_ID_MAX) {
          throw new SimError('INVALID_ARGUMENT', `entry ${done}: cache_id ${cmd.cache_id} is beyond ${MOCK_DEV_CACHE_ID_MAX}`);
        }
        const dev = this.findDev(BigInt(cmd.vdev_id));
        if (!dev) throw new SimError('INVALID_ARGUMENT', `entry ${done}: no vDEVICE ${cmd.vdev_id}`);
        const cache = this.#driver.mockDevice(dev).cache;
        const atc = this.#driver.iommu.deviceTlb(dev);
        if (cmd.flags & IOMMU_TEST_INVALIDATE_FLAG_ALL) {
          cache.fill(0);
          atc?.invalidateAll();
        } else {
          cache[cmd.cache_id] = 0;
          atc?.invalidateWhere((e) => MockIommu.cacheSlot(e.iova) === cmd.cache_id);
        }
        done++;
      }
    } finally {
      array.handled = done;
    }
  }

  /** mock_viommu_destroy. */
  destroy(): void {
    this.closeWindow();
    this.#vdevs.clear();
  }
}

