import { DeviceTlb, Iotlb } from '../iotlb.js';
import type { IommuClientDevice, IommuDevice, IommuDomain, IommuDriver } from '../iommu-driver.js';
import { IOMMU_TEST_DEV_CACHE_DEFAULT, MOCK_DEV_CACHE_NUM } from './constants.js';
import type { MockViommu } from './mock-viommu.js';

/*
 * The mock IOMMU's hardware: one translation unit (struct
 * mock_iommu_device) with a real IOTLB, and the per-device state the
 * selftest driver keeps in struct mock_dev.
 *
 * The selftest's device "cache" (four u32 slots the vIOMMU invalidation
 * zeroes) is modelled twice over: the slots themselves, so the selftest's
 * IOMMU_TEST_OP_DEV_CHECK_CACHE answers as in the kernel, and the device's
 * real ATC, which the same invalidation empties. Slot n of the ATC holds
 * the translations whose IOVA bits 13:12 equal n (MockIommu.cacheSlot).
 *
 * Public API: MockIommu, MockDeviceState
 */

/** struct mock_dev: what the mock driver keeps per device. */
export class MockDeviceState {
  /** MOCK_FLAGS_DEVICE_* the device was created with. */
  readonly flags: number;
  /** The selftest's device cache slots (IOMMU_TEST_DEV_CACHE_DEFAULT until invalidated). */
  readonly cache: number[] = new Array<number>(MOCK_DEV_CACHE_NUM).fill(IOMMU_TEST_DEV_CACHE_DEFAULT);
  /** The vIOMMU of the nested domain the device is attached to, and its virtual id there. */
  viommu: MockViommu | null = null;
  vdevId = 0n;
  /** The domain the RID is attached to. */
  domain: IommuDomain | null = null;
  /** The PASID-1024 replace test: set by one attach, makes the next one fail. */
  pasid1024FakeError = false;

  constructor(flags: number) {
    this.flags = flags;
  }
}

/** struct mock_iommu_device: the hardware unit every mock device sits behind. */
export class MockIommu implements IommuDevice {
  readonly iotlb: Iotlb;
  readonly #atcCapacity: number;
  readonly #atcs = new Map<IommuClientDevice, DeviceTlb>();

  constructor(
    readonly name: string,
    readonly driver: IommuDriver,
    options: { readonly iotlbCapacity?: number; readonly atcCapacity?: number } = {},
  ) {
    this.iotlb = new Iotlb({ capacity: options.iotlbCapacity ?? 4096 });
    this.#atcCapacity = options.atcCapacity ?? 64;
  }

  /** The cache slot (and nested IOTLB way) a translation of `iova` lives in: IOVA bits 13:12. */
  static cacheSlot(iova: bigint): number {
    return Number((iova >> 12n) & 3n);
  }

  deviceTlb(dev: IommuClientDevice): DeviceTlb | null {
    return this.#atcs.get(dev) ?? null;
  }

  /** A device appears behind the unit; an ATS-capable one gets its ATC. */
  addDevice(dev: IommuClientDevice): void {
    if (dev.atsCapable) this.#atcs.set(dev, new DeviceTlb({ capacity: this.#atcCapacity }));
  }

  removeDevice(dev: IommuClientDevice): void {
    this.#atcs.delete(dev);
  }
}
