import { SimError } from '../../errors/index.js';
import { IoPageTable } from '../io-pgtable/io-pgtable.js';
import type { TableMemory } from '../io-pgtable/table-memory.js';
import { walkNested } from '../io-pgtable/walk.js';
import {
  IOMMU_WRITE, createTranslation, iotlbGatherAdd,
  type IommuClientDevice, type IommuDirtyOps, type IommuDomain, type IommuDomainKind, type IommuDriver, type IommuIotlbGather,
  type IommuTranslation, type IommuUserDataArray,
} from '../iommu-driver.js';
import { IOTLB_ANY_PASID } from '../iotlb.js';
import { iommuCopyStructFromUserArray } from '../user-data.js';
import {
  IOMMU_HWPT_INVALIDATE_DATA_SELFTEST, IOMMU_TEST_INVALIDATE_FLAG_ALL, IOMMU_TEST_PASID_RESERVED,
  MOCK_APERTURE_LAST, MOCK_APERTURE_START, MOCK_FLAGS_DEVICE_NO_DIRTY, MOCK_NESTED_DOMAIN_IOTLB_ID_MAX,
  MOCK_NESTED_DOMAIN_IOTLB_NUM,
} from './constants.js';
import { MockIommu, type MockDeviceState } from './mock-iommu.js';
import type { MockViommu } from './mock-viommu.js';
import { iommu_hwpt_invalidate_selftest } from './structs.js';

/*
 * The mock driver's domains, after drivers/iommu/iommufd/selftest.c:
 *
 * - MockBlockedDomain: the static blocking domain, also the mock's default
 *   domain (mock_blocking_domain).
 * - MockPagingDomain: a paging domain (mock_iommu_domain). The selftest
 *   keeps its mappings in an xarray; this one keeps them in a real 4-level
 *   IO page table in host physical memory that the DMA engine walks, and
 *   its unmap flushes the unit's IOTLB and the attached devices' ATCs, as a
 *   hardware driver's iotlb_sync must. Aperture MOCK_APERTURE_START ..
 *   MOCK_APERTURE_LAST like the selftest's. Pages are 4 KiB (2 MiB blocks
 *   too for a MOCK_FLAGS_DEVICE_HUGE_IOVA device), where the selftest uses
 *   2 KiB pages: the generic table has a 4 KiB granule.
 * - MockNestedDomain: a nested domain (mock_iommu_domain_nested) with the
 *   selftest's four iotlb values, and real two-stage translation. The
 *   selftest ABI (struct iommu_hwpt_selftest) carries no stage-1 table
 *   pointer, so the stage-1 root is a model-side knob, setStage1Table(),
 *   the way the selftest pokes its mock through IOMMU_TEST_CMD; until it
 *   is set the domain bypasses stage 1 (IOVA = IPA).
 *
 * The nested domain's IOTLB is modelled as four ways: way n caches the
 * translations whose IOVA bits 13:12 equal n (MockIommu.cacheSlot), so the
 * selftest's invalidation of iotlb_id n drops exactly way n and a guest
 * that invalidates the wrong way keeps a stale translation.
 *
 * Public API: MockDomain, MockBlockedDomain, MockPagingDomain, MockNestedDomain,
 * MockDomainDriver
 */

/** What the domains need from the driver that made them. */
export interface MockDomainDriver {
  readonly name: string;
  readonly iommu: MockIommu;
  readonly tableMemory: TableMemory;
  mockDevice(dev: IommuClientDevice): MockDeviceState;
}

/** What every mock domain shares: mock_domain_nop_attach and the device bookkeeping the flushes need. */
export abstract class MockDomain implements IommuDomain {
  abstract readonly kind: IommuDomainKind;
  abstract readonly pgsizeBitmap: bigint;
  abstract readonly apertureStart: bigint;
  abstract readonly apertureEnd: bigint;
  abstract readonly parent: IommuDomain | null;
  abstract readonly dirtyOps: IommuDirtyOps | null;
  readonly tag: number;
  /** Devices translating through this domain (RID or PASID), with how many attachments each. */
  readonly #users = new Map<IommuClientDevice, number>();

  constructor(readonly mock: MockDomainDriver & IommuDriver, tag: number) {
    this.tag = tag;
  }

  get driver(): IommuDriver {
    return this.mock;
  }

  abstract translate(iova: bigint, pasid: number | null, access: number, out: IommuTranslation): void;
  abstract free(): void;

  /** The devices attached to this domain (RID or some PASID). */
  get devices(): IterableIterator<IommuClientDevice> {
    return this.#users.keys();
  }

  /** mock_domain_nop_attach. */
  attachDev(dev: IommuClientDevice, old: IommuDomain | null): void {
    const mdev = this.mock.mockDevice(dev);
    if (this.dirtyOps && (mdev.flags & MOCK_FLAGS_DEVICE_NO_DIRTY) !== 0) {
      throw new SimError('INVALID_ARGUMENT', `${dev.name} cannot track dirty pages`);
    }
    const viommu = this instanceof MockNestedDomain ? this.viommu : null;
    let vdevId = 0n;
    if (viommu) {
      // iommufd_viommu_get_vdev_id: the device needs a vDEVICE on the vIOMMU first.
      const id = viommu.vdevIdOf(dev);
      if (id === null) throw new SimError('NOT_FOUND', `${dev.name} has no vDEVICE on the vIOMMU`);
      vdevId = id;
    }
    mdev.viommu = viommu;
    mdev.vdevId = vdevId;
    mdev.domain = this;
    this.#moveFrom(dev, old);
  }

  /** mock_domain_set_dev_pasid_nop, with the selftest's PASID-1024 fault injection. */
  setDevPasid(dev: IommuClientDevice, pasid: number, old: IommuDomain | null): void {
    const mdev = this.mock.mockDevice(dev);
    if (pasid === IOMMU_TEST_PASID_RESERVED) {
      if (this.kind === 'blocked') {
        mdev.pasid1024FakeError = false;
      } else if (mdev.pasid1024FakeError) {
        // Every second attach of the reserved PASID fails, to prove the core rolls back a replace.
        mdev.pasid1024FakeError = false;
        throw new SimError('OUT_OF_MEMORY', `${dev.name}: injected failure for PASID ${pasid}`);
      } else {
        mdev.pasid1024FakeError = true;
      }
    }
    this.#moveFrom(dev, old);
  }

  #moveFrom(dev: IommuClientDevice, old: IommuDomain | null): void {
    if (old instanceof MockDomain) old.#release(dev);
    if (this.kind !== 'blocked') this.#users.set(dev, (this.#users.get(dev) ?? 0) + 1);
  }

  #release(dev: IommuClientDevice): void {
    const count = this.#users.get(dev);
    if (count === undefined) return;
    if (count > 1) this.#users.set(dev, count - 1);
    else this.#users.delete(dev);
  }
}

/** mock_blocking_domain: no translation; every DMA faults. */
export class MockBlockedDomain extends MockDomain {
  readonly kind = 'blocked' as const;
  readonly pgsizeBitmap = 0n;
  readonly apertureStart = 0n;
  readonly apertureEnd = 0n;
  readonly parent = null;
  readonly dirtyOps = null;

  translate(iova: bigint, _pasid: number | null, _access: number, out: IommuTranslation): void {
    out.fault = 'blocked';
    out.faultAddr = iova;
    out.perm = 0;
  }

  free(): void {
    throw new Error('the mock blocking domain is static and never freed');
  }
}

/** mock_iommu_domain: a paging domain over a real IO page table. */
export class MockPagingDomain extends MockDomain {
  readonly kind = 'paging' as const;
  readonly pgsizeBitmap: bigint;
  readonly apertureStart = MOCK_APERTURE_START;
  readonly apertureEnd = MOCK_APERTURE_LAST;
  readonly parent = null;
  readonly dirtyOps: IommuDirtyOps | null;
  /** Allocated with IOMMU_HWPT_ALLOC_NEST_PARENT. */
  readonly nestParent: boolean;
  readonly pgtable: IoPageTable;
  /** Nested domains (and vIOMMUs) built on this one as their stage 2. */
  readonly children = new Set<MockNestedDomain>();
  #dirtyTracking = false;

  constructor(mock: MockDomain['mock'], tag: number, options: { pgsizeBitmap: bigint; dirty: boolean; nestParent: boolean }) {
    super(mock, tag);
    this.pgsizeBitmap = options.pgsizeBitmap;
    this.nestParent = options.nestParent;
    this.pgtable = new IoPageTable(mock.tableMemory);
    this.dirtyOps = options.dirty
      ? {
        setDirtyTracking: (enable) => {
          this.#dirtyTracking = enable;
        },
        readAndClearDirty: (iova, size, noClear, record) => {
          // The selftest refuses a report (a bitmap to fill) while tracking is off.
          if (!this.#dirtyTracking && record) throw new SimError('INVALID_ARGUMENT', 'dirty tracking is off');
          this.pgtable.readAndClearDirty(iova, size, noClear, record);
        },
      }
      : null;
  }

  /** Whether the hardware sets dirty bits on writes now. */
  get dirtyTracking(): boolean {
    return this.#dirtyTracking;
  }

  mapPages(iova: bigint, pa: bigint, pgsize: bigint, pgcount: bigint, prot: number): bigint {
    return this.pgtable.mapPages(iova, pa, pgsize, pgcount, prot);
  }

  unmapPages(iova: bigint, pgsize: bigint, pgcount: bigint, gather: IommuIotlbGather): bigint {
    return this.pgtable.unmapPages(iova, pgsize, pgcount, (base, size) => iotlbGatherAdd(gather, base, size));
  }

  /** Flushes what the unmap cleared from the IOTLB, every nested translation built on it, and the ATCs. */
  iotlbSync(gather: IommuIotlbGather): void {
    if (gather.start > gather.end) return;
    const size = gather.end - gather.start + 1n;
    const iotlb = this.mock.iommu.iotlb;
    iotlb.invalidateRange(this.tag, IOTLB_ANY_PASID, gather.start, size);
    // A stage-2 change can alter any nested translation over it: drop them all.
    iotlb.invalidateStage2(this.tag);
    for (const dev of this.devices) this.mock.iommu.deviceTlb(dev)?.invalidateRange(IOTLB_ANY_PASID, gather.start, size);
    for (const child of this.children) {
      for (const dev of child.devices) this.mock.iommu.deviceTlb(dev)?.invalidateAll();
    }
  }

  flushIotlbAll(): void {
    this.mock.iommu.iotlb.invalidateTag(this.tag);
    for (const dev of this.devices) this.mock.iommu.deviceTlb(dev)?.invalidateAll();
    for (const child of this.children) {
      for (const dev of child.devices) this.mock.iommu.deviceTlb(dev)?.invalidateAll();
    }
  }

  iovaToPhys(iova: bigint): bigint | null {
    return this.pgtable.iovaToPhys(iova);
  }

  translate(iova: bigint, _pasid: number | null, access: number, out: IommuTranslation): void {
    this.pgtable.walk(iova, access === IOMMU_WRITE && this.#dirtyTracking, out);
    out.s2Tag = this.tag;
  }

  free(): void {
    this.flushIotlbAll();
    this.pgtable.free();
  }
}

/** mock_iommu_domain_nested: stage 1 (in guest memory) over a mock paging domain. */
export class MockNestedDomain extends MockDomain {
  readonly kind = 'nested' as const;
  readonly pgsizeBitmap = 0n;
  readonly apertureStart = 0n;
  readonly apertureEnd = 0n;
  readonly dirtyOps = null;
  /** The selftest's mock iotlb values (IOMMU_TEST_OP_MD_CHECK_IOTLB reads them). */
  readonly iotlb: number[];
  #s1Root: bigint | null = null;
  readonly #s2Scratch = createTranslation();

  constructor(
    mock: MockDomain['mock'],
    tag: number,
    readonly parent: MockPagingDomain,
    readonly viommu: MockViommu | null,
    iotlbValue: number,
  ) {
    super(mock, tag);
    this.iotlb = new Array<number>(MOCK_NESTED_DOMAIN_IOTLB_NUM).fill(iotlbValue);
    parent.children.add(this);
  }

  /** IPA of the guest's stage-1 root table, or null for stage-1 bypass. */
  get stage1Table(): bigint | null {
    return this.#s1Root;
  }

  /**
   * Points stage 1 at a guest table (an IPA), or back to bypass with null.
   * Like a guest rewriting its context entry: cached translations stay
   * until the guest invalidates.
   */
  setStage1Table(root: bigint | null): void {
    if (root !== null && (root < 0n || root % 4096n !== 0n)) {
      throw new SimError('INVALID_ARGUMENT', `stage-1 table 0x${root.toString(16)} is not 4 KiB aligned`);
    }
    this.#s1Root = root;
  }

  /** IOMMU_TEST_OP_MD_CHECK_IOTLB: EINVAL unless slot `id` holds `value`. */
  checkIotlb(id: number, value: number): void {
    if (id > MOCK_NESTED_DOMAIN_IOTLB_ID_MAX || this.iotlb[id] !== value) {
      throw new SimError('INVALID_ARGUMENT', `mock iotlb[${id}] is ${this.iotlb[id]}, not ${value}`);
    }
  }

  translate(iova: bigint, _pasid: number | null, access: number, out: IommuTranslation): void {
    const setDirty = access === IOMMU_WRITE && this.parent.dirtyTracking;
    if (this.#s1Root === null) {
      this.parent.pgtable.walk(iova, setDirty, out);
      if (out.fault !== null) out.fault = 'stage2-not-present';
    } else {
      walkNested(this.mock.tableMemory, this.#s1Root, this.parent.pgtable.root, iova, setDirty, out, this.#s2Scratch);
    }
    out.s2Tag = this.parent.tag;
  }

  /**
   * mock_domain_cache_invalidate_user: entries are read one by one; the
   * first bad one stops the walk with EOPNOTSUPP (unknown flags) or EINVAL
   * (iotlb_id beyond MOCK_NESTED_DOMAIN_IOTLB_ID_MAX, or a copy that fails
   * its size/type checks), and `handled` counts the entries before it. A
   * wrong data_type is EINVAL with nothing handled.
   */
  cacheInvalidateUser(array: IommuUserDataArray): void {
    let processed = 0;
    try {
      if (array.type !== IOMMU_HWPT_INVALIDATE_DATA_SELFTEST) {
        throw new SimError('INVALID_ARGUMENT', `data_type 0x${(array.type >>> 0).toString(16)} is not the mock's`);
      }
      for (let i = 0; i < array.entryNum; i++) {
        const inv = iommuCopyStructFromUserArray(iommu_hwpt_invalidate_selftest, array, IOMMU_HWPT_INVALIDATE_DATA_SELFTEST, i, 'iotlb_id');
        if ((inv.flags & ~IOMMU_TEST_INVALIDATE_FLAG_ALL) !== 0) {
          throw new SimError('NOT_SUPPORTED', `entry ${i}: flags 0x${(inv.flags >>> 0).toString(16)}`);
        }
        if (inv.iotlb_id > MOCK_NESTED_DOMAIN_IOTLB_ID_MAX) {
          throw new SimError('INVALID_ARGUMENT', `entry ${i}: iotlb_id ${inv.iotlb_id} is beyond ${MOCK_NESTED_DOMAIN_IOTLB_ID_MAX}`);
        }
        const iotlb = this.mock.iommu.iotlb;
        if (inv.flags & IOMMU_TEST_INVALIDATE_FLAG_ALL) {
          this.iotlb.fill(0);
          iotlb.invalidateTagWhere(this.tag);
        } else {
          this.iotlb[inv.iotlb_id] = 0;
          iotlb.invalidateTagWhere(this.tag, (e) => MockIommu.cacheSlot(e.iova) === inv.iotlb_id);
        }
        processed++;
      }
    } finally {
      array.handled = processed;
    }
  }

  free(): void {
    this.mock.iommu.iotlb.invalidateTag(this.tag);
    this.parent.children.delete(this);
  }
}
