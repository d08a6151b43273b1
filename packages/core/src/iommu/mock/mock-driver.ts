import { SimError } from '../../errors/index.js';
import type { PhysicalMemory } from '../../os/phys-mem.js';
import {
  IOMMU_HWPT_ALLOC_DIRTY_TRACKING, IOMMU_HWPT_ALLOC_NEST_PARENT, IOMMU_HWPT_ALLOC_PASID, IOMMU_HWPT_DATA_NONE,
  IOMMU_HW_INFO_TYPE_DEFAULT,
} from '../../uapi/index.js';
import { BLOCK_2M, PAGE_4K } from '../io-pgtable/pte.js';
import { physTableMemory, type TableMemory } from '../io-pgtable/table-memory.js';
import type {
  IommuCap, IommuClientDevice, IommuDomain, IommuDriver, IommuHwInfo, IommuUserData, IommuViommu, IommuViommuServices,
} from '../iommu-driver.js';
import { iommuCopyStructFromUser, iommuCopyStructToUser } from '../user-data.js';
import {
  IOMMU_HWPT_DATA_SELFTEST, IOMMU_HW_INFO_SELFTEST_REGVAL, IOMMU_HW_INFO_TYPE_SELFTEST, IOMMU_VIOMMU_TYPE_SELFTEST,
  MOCK_DEV_CACHE_ID_MAX, MOCK_FLAGS_DEVICE_HUGE_IOVA, MOCK_FLAGS_DEVICE_NO_DIRTY, MOCK_FLAGS_DEVICE_PASID, MOCK_PASID_WIDTH,
} from './constants.js';
import { MockBlockedDomain, MockNestedDomain, MockPagingDomain } from './mock-domains.js';
import { MockDeviceState, MockIommu } from './mock-iommu.js';
import { MockViommu } from './mock-viommu.js';
import { iommu_hwpt_selftest, iommu_test_hw_info, iommu_viommu_selftest } from './structs.js';

/*
 * The reference mock IOMMU driver: the model of the kernel's iommufd
 * selftest driver (drivers/iommu/iommufd/selftest.c, mock_ops), and the
 * worked example of an IOMMU driver package. Its ops answer with the
 * selftest's checks, in its order, with its errnos, so the iommufd selftest
 * sequences port over; underneath, it translates for real (page tables in
 * host memory, an IOTLB, device ATCs), so DMA through it behaves like DMA
 * through hardware.
 *
 * Writing another driver follows the same shape:
 *   1. a driver object implementing IommuDriver (this class), registered
 *      with IommuCore.registerDriver() from the plugin's apply();
 *   2. one IommuDevice per hardware unit, owning the IOTLB (MockIommu);
 *   3. domain classes implementing IommuDomain: attach, map/unmap over an
 *      IoPageTable, iotlb_sync that really flushes, and the `translate`
 *      walk the DMA engine calls on a miss (mock-domains.ts);
 *   4. optionally a vIOMMU implementing IommuViommu (mock-viommu.ts);
 *   5. codecs for the driver's uAPI structs (structs.ts) read with the
 *      iommu user-data helpers (../user-data.ts).
 *
 * Which devices the mock translates for is the host's choice
 * (`claims`); the selftest's mock bus holds exactly the devices its
 * IOMMU_TEST_OP_MOCK_DOMAIN creates, which createDevice() stands for.
 *
 * Public API: MockIommuDriver, MockIommuDriverOptions, createMockIommuDriver()
 */

export interface MockIommuDriverOptions {
  /** Host RAM: page tables and the vIOMMU window are allocated here. */
  readonly physMem: PhysicalMemory;
  /** Driver name (one mock per host unless names differ). */
  readonly name?: string;
  /** Which devices the mock translates for; all by default. */
  readonly claims?: (dev: IommuClientDevice) => boolean;
  /** IOTLB entries of the unit (FIFO replacement). */
  readonly iotlbCapacity?: number;
  /** ATC entries per ATS-capable device. */
  readonly atcCapacity?: number;
}

const PAGING_FLAGS = IOMMU_HWPT_ALLOC_DIRTY_TRACKING | IOMMU_HWPT_ALLOC_NEST_PARENT | IOMMU_HWPT_ALLOC_PASID;
const DEVICE_FLAGS = MOCK_FLAGS_DEVICE_NO_DIRTY | MOCK_FLAGS_DEVICE_HUGE_IOVA | MOCK_FLAGS_DEVICE_PASID;

function hex(value: number): string {
  return `0x${(value >>> 0).toString(16)}`;
}

export class MockIommuDriver implements IommuDriver {
  readonly name: string;
  readonly physMem: PhysicalMemory;
  readonly tableMemory: TableMemory;
  /** The one mock translation unit. */
  readonly iommu: MockIommu;
  readonly blockedDomain: MockBlockedDomain;
  /** The selftest gives its mock the blocking domain as default domain. */
  get defaultDomain(): MockBlockedDomain {
    return this.blockedDomain;
  }
  /** mock_ops.user_pasid_table: a nested domain on the RID serves every PASID. */
  readonly userPasidTable = true;
  readonly #claims: (dev: IommuClientDevice) => boolean;
  readonly #devices = new Map<IommuClientDevice, MockDeviceState>();
  /** Flags registered by createDevice()/setDeviceFlags() for devices not probed yet. */
  readonly #pendingFlags = new Map<IommuClientDevice, number>();
  #nextTag = 1;
  #nextDevId = 0;

  constructor(options: MockIommuDriverOptions) {
    this.name = options.name ?? 'iommufd-mock';
    this.physMem = options.physMem;
    this.tableMemory = physTableMemory(options.physMem);
    this.#claims = options.claims ?? (() => true);
    this.iommu = new MockIommu(`${this.name}-iommu`, this, { iotlbCapacity: options.iotlbCapacity, atcCapacity: options.atcCapacity });
    this.blockedDomain = new MockBlockedDomain(this, 0);
  }

  // ------------------------------------------------------------ mock devices

  /**
   * Gives `dev` the MOCK_FLAGS_DEVICE_* it is created with (mock_dev_create);
   * unknown flags are EINVAL. Must happen before the device is probed.
   */
  setDeviceFlags(dev: IommuClientDevice, flags: number): void {
    if ((flags & ~DEVICE_FLAGS) !== 0) throw new SimError('INVALID_ARGUMENT', `mock device flags ${hex(flags)}`);
    if (this.#devices.has(dev)) throw new Error(`${dev.name} is already probed; its flags are fixed`);
    this.#pendingFlags.set(dev, flags);
  }

  /**
   * A new device on the mock bus (IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS'
   * mock_dev_create): named iommufd_mockN, PASID-capable with
   * MOCK_FLAGS_DEVICE_PASID, ATS-capable unless told otherwise. The caller
   * probes it into a group with IommuCore.probeDevice().
   */
  createDevice(flags = 0, options: { readonly atsCapable?: boolean } = {}): IommuClientDevice {
    if ((flags & ~DEVICE_FLAGS) !== 0) throw new SimError('INVALID_ARGUMENT', `mock device flags ${hex(flags)}`);
    const id = this.#nextDevId++;
    const dev: IommuClientDevice = Object.freeze({
      name: `iommufd_mock${id}`,
      rid: id,
      maxPasidLog2: flags & MOCK_FLAGS_DEVICE_PASID ? MOCK_PASID_WIDTH : 0,
      atsCapable: options.atsCapable ?? true,
    });
    this.#pendingFlags.set(dev, flags);
    return dev;
  }

  /** The selftest state of a probed device (struct mock_dev). */
  mockDevice(dev: IommuClientDevice): MockDeviceState {
    const state = this.#devices.get(dev);
    if (!state) throw new SimError('NO_DEVICE', `${dev.name} is not a mock device`);
    return state;
  }

  /** IOMMU_TEST_OP_DEV_CHECK_CACHE: EINVAL unless cache slot `cacheId` of `dev` holds `value`. */
  checkDevCache(dev: IommuClientDevice, cacheId: number, value: number): void {
    const cache = this.mockDevice(dev).cache;
    if (cacheId > MOCK_DEV_CACHE_ID_MAX || cache[cacheId] !== value) {
      throw new SimError('INVALID_ARGUMENT', `${dev.name} cache[${cacheId}] is ${cache[cacheId]}, not ${value}`);
    }
  }

  // ------------------------------------------------------------ iommu_ops

  /** mock_probe_device: every device the host lets the mock claim sits behind the one unit. */
  probeDevice(dev: IommuClientDevice): MockIommu | null {
    if (!this.#claims(dev)) return null;
    this.#devices.set(dev, new MockDeviceState(this.#pendingFlags.get(dev) ?? 0));
    this.#pendingFlags.delete(dev);
    this.iommu.addDevice(dev);
    return this.iommu;
  }

  releaseDevice(dev: IommuClientDevice): void {
    this.iommu.removeDevice(dev);
    this.#devices.delete(dev);
  }

  /** mock_domain_capable. */
  capable(dev: IommuClientDevice, cap: IommuCap): boolean {
    switch (cap) {
      case 'cacheCoherency':
        return true;
      case 'dirtyTracking':
        return (this.mockDevice(dev).flags & MOCK_FLAGS_DEVICE_NO_DIRTY) === 0;
      default:
        return false;
    }
  }

  /** mock_domain_hw_info: iommu_test_hw_info with test_reg = IOMMU_HW_INFO_SELFTEST_REGVAL. */
  hwInfo(_dev: IommuClientDevice, type: number): IommuHwInfo {
    if (type !== IOMMU_HW_INFO_TYPE_DEFAULT && type !== IOMMU_HW_INFO_TYPE_SELFTEST) {
      throw new SimError('NOT_SUPPORTED', `hw_info type ${hex(type)}`);
    }
    return { type: IOMMU_HW_INFO_TYPE_SELFTEST, data: iommu_test_hw_info.encodeNew({ flags: 0, test_reg: IOMMU_HW_INFO_SELFTEST_REGVAL }) };
  }

  /**
   * mock_domain_alloc_paging_flags: EOPNOTSUPP for flags beyond
   * DIRTY_TRACKING | NEST_PARENT | PASID, for dirty tracking on a
   * MOCK_FLAGS_DEVICE_NO_DIRTY device, and for data of another type; the
   * selftest data is read (and must pass its copy checks) but shapes nothing.
   */
  domainAllocPaging(dev: IommuClientDevice, flags: number, userData: IommuUserData | null): IommuDomain {
    const mdev = this.mockDevice(dev);
    const dirty = (flags & IOMMU_HWPT_ALLOC_DIRTY_TRACKING) !== 0;
    if ((flags & ~PAGING_FLAGS) !== 0 || (dirty && (mdev.flags & MOCK_FLAGS_DEVICE_NO_DIRTY) !== 0)) {
      throw new SimError('NOT_SUPPORTED', `mock paging domain flags ${hex(flags)} for ${dev.name}`);
    }
    if (userData && userData.type !== IOMMU_HWPT_DATA_SELFTEST && userData.type !== IOMMU_HWPT_DATA_NONE) {
      throw new SimError('NOT_SUPPORTED', `data type ${hex(userData.type)} for a mock paging domain`);
    }
    if (userData) iommuCopyStructFromUser(iommu_hwpt_selftest, userData, IOMMU_HWPT_DATA_SELFTEST, 'iotlb');
    const huge = (mdev.flags & MOCK_FLAGS_DEVICE_HUGE_IOVA) !== 0;
    return new MockPagingDomain(this, this.#nextTag++, {
      pgsizeBitmap: huge ? PAGE_4K | BLOCK_2M : PAGE_4K,
      dirty,
      nestParent: (flags & IOMMU_HWPT_ALLOC_NEST_PARENT) !== 0,
    });
  }

  /** mock_domain_alloc_nested: EOPNOTSUPP for flags other than PASID; EINVAL unless the parent is a mock paging domain. */
  domainAllocNested(_dev: IommuClientDevice, parent: IommuDomain, flags: number, userData: IommuUserData): IommuDomain {
    if ((flags & ~IOMMU_HWPT_ALLOC_PASID) !== 0) {
      throw new SimError('NOT_SUPPORTED', `mock nested domain flags ${hex(flags)}`);
    }
    if (!(parent instanceof MockPagingDomain) || parent.driver !== this) {
      throw new SimError('INVALID_ARGUMENT', 'the parent of a mock nested domain must be a mock paging domain');
    }
    return this.allocNested(parent, null, userData);
  }

  /** __mock_domain_alloc_nested: EOPNOTSUPP for another data type, then the copy's own checks. */
  allocNested(parent: MockPagingDomain, viommu: MockViommu | null, userData: IommuUserData): MockNestedDomain {
    if (userData.type !== IOMMU_HWPT_DATA_SELFTEST) {
      throw new SimError('NOT_SUPPORTED', `data type ${hex(userData.type)} for a mock nested domain`);
    }
    const cfg = iommuCopyStructFromUser(iommu_hwpt_selftest, userData, IOMMU_HWPT_DATA_SELFTEST, 'iotlb');
    return new MockNestedDomain(this, this.#nextTag++, parent, viommu, cfg.iotlb);
  }

  /**
   * mock_get_viommu_size + mock_viommu_init: EOPNOTSUPP for another vIOMMU
   * type. With user data (struct iommu_viommu_selftest) the vIOMMU opens its
   * mmap window and answers out_data = in_data with the window's offset and
   * length; a failed answer closes the window again.
   */
  viommuAlloc(
    _dev: IommuClientDevice,
    parent: IommuDomain,
    type: number,
    userData: IommuUserData | null,
    services: IommuViommuServices,
  ): IommuViommu {
    if (type !== IOMMU_VIOMMU_TYPE_SELFTEST) throw new SimError('NOT_SUPPORTED', `vIOMMU type ${hex(type)}`);
    if (!(parent instanceof MockPagingDomain) || parent.driver !== this) {
      throw new SimError('INVALID_ARGUMENT', 'the parent of a mock vIOMMU must be a mock paging domain');
    }
    const viommu = new MockViommu(this, parent, services);
    if (userData) {
      const data = iommuCopyStructFromUser(iommu_viommu_selftest, userData, IOMMU_VIOMMU_TYPE_SELFTEST, 'out_data');
      const window = viommu.openWindow(data.in_data);
      try {
        iommuCopyStructToUser(userData, iommu_viommu_selftest, {
          in_data: data.in_data,
          out_data: data.in_data,
          out_mmap_offset: window.offset,
          out_mmap_length: window.length,
        }, IOMMU_VIOMMU_TYPE_SELFTEST, 'out_data');
      } catch (error) {
        viommu.closeWindow();
        throw error;
      }
    }
    return viommu;
  }
}

/** The mock driver for a host: register it with IommuCore.registerDriver(). */
export function createMockIommuDriver(options: MockIommuDriverOptions): MockIommuDriver {
  return new MockIommuDriver(options);
}
