import {
  IOMMU_READ,
  IOMMU_WRITE,
  Iotlb,
  SimError,
  type IommuClientDevice,
  type IommuDevice,
  type IommuDomain,
  type IommuDriver,
  type IommuIotlbGather,
  type IommuResvRegion,
  type IommuTranslation,
} from '@vfiosim/core';

const PAGE = 4096n;

export interface FakeIommuOptions {
  readonly name: string;
  /** Devices (by name) this IOMMU translates for. */
  readonly devices: readonly string[];
  readonly pgsizeBitmap?: bigint;
  readonly apertureStart?: bigint;
  readonly apertureEnd?: bigint;
  readonly resvRegions?: readonly IommuResvRegion[];
  readonly coherent?: boolean;
}

let nextTag = 1;

/**
 * A minimal IOMMU for the type1 tests: a flat page table per paging domain,
 * an IOTLB flushed by iotlb_sync, and knobs for what type1 reacts to (page
 * sizes, aperture, reserved regions, cache coherency, a map that fails).
 */
export class FakePagingDomain implements IommuDomain {
  readonly kind = 'paging' as const;
  readonly parent = null;
  readonly dirtyOps = null;
  readonly tag = nextTag++;
  readonly pages = new Map<bigint, { pa: bigint; perm: number; prot: number }>();
  /** mapPages fails with EIO once this many more pages have been mapped. */
  failAfterPages: number | null = null;
  freed = false;

  constructor(readonly driver: FakeIommu) {}

  get pgsizeBitmap(): bigint {
    return this.driver.options.pgsizeBitmap ?? 0x40201000n;
  }

  get apertureStart(): bigint {
    return this.driver.options.apertureStart ?? 0n;
  }

  get apertureEnd(): bigint {
    return this.driver.options.apertureEnd ?? (1n << 48n) - 1n;
  }

  attachDev(): void {}

  mapPages(iova: bigint, pa: bigint, pgsize: bigint, pgcount: bigint, prot: number): bigint {
    const npages = (pgsize * pgcount) / PAGE;
    for (let i = 0n; i < npages; i++) {
      if (this.pages.has(iova + i * PAGE)) throw new SimError('EXISTS', `fake iommu: 0x${(iova + i * PAGE).toString(16)} is mapped`);
    }
    for (let i = 0n; i < npages; i++) {
      if (this.failAfterPages !== null && this.failAfterPages-- <= 0) {
        if (i > 0n) return i * PAGE;
        throw new SimError('IO_ERROR', 'fake iommu: map failure injected');
      }
      this.pages.set(iova + i * PAGE, { pa: pa + i * PAGE, perm: prot & (IOMMU_READ | IOMMU_WRITE), prot });
    }
    return npages * PAGE;
  }

  unmapPages(iova: bigint, pgsize: bigint, pgcount: bigint, gather: IommuIotlbGather): bigint {
    const npages = (pgsize * pgcount) / PAGE;
    let done = 0n;
    while (done < npages && this.pages.delete(iova + done * PAGE)) done++;
    if (done > 0n) {
      if (gather.start < 0n || iova < gather.start) gather.start = iova;
      const end = iova + done * PAGE - 1n;
      if (end > gather.end) gather.end = end;
    }
    return done * PAGE;
  }

  iotlbSync(): void {
    this.driver.unit.iotlb.invalidateTag(this.tag);
  }

  iovaToPhys(iova: bigint): bigint | null {
    const page = this.pages.get(iova & ~(PAGE - 1n));
    return page ? page.pa + (iova & (PAGE - 1n)) : null;
  }

  enforceCacheCoherency(): boolean {
    return this.driver.options.coherent ?? true;
  }

  translate(iova: bigint, _pasid: number | null, _access: number, out: IommuTranslation): void {
    const page = this.pages.get(iova & ~(PAGE - 1n));
    out.s2Tag = this.tag;
    if (!page) {
      out.fault = 'not-present';
      out.faultAddr = iova;
      return;
    }
    out.fault = null;
    out.pa = page.pa;
    out.pageSize = PAGE;
    out.perm = page.perm;
  }

  free(): void {
    this.freed = true;
  }
}

class BlockedDomain implements IommuDomain {
  readonly kind = 'blocked' as const;
  readonly tag = 0;
  readonly pgsizeBitmap = 0n;
  readonly apertureStart = 0n;
  readonly apertureEnd = 0n;
  readonly parent = null;
  readonly dirtyOps = null;

  constructor(readonly driver: IommuDriver) {}

  attachDev(): void {}

  translate(iova: bigint, _pasid: number | null, _access: number, out: IommuTranslation): void {
    out.fault = 'blocked';
    out.faultAddr = iova;
  }

  free(): void {}
}

export class FakeIommu implements IommuDriver {
  readonly name: string;
  readonly blockedDomain: IommuDomain;
  readonly unit: IommuDevice;
  readonly domains: FakePagingDomain[] = [];
  /** Set to make the next domainAllocPaging throw this. */
  allocError: SimError | null = null;

  constructor(readonly options: FakeIommuOptions) {
    this.name = options.name;
    this.blockedDomain = new BlockedDomain(this);
    this.unit = { name: `${options.name}-unit`, driver: this, iotlb: new Iotlb(), deviceTlb: () => null };
  }

  probeDevice(dev: IommuClientDevice): IommuDevice | null {
    return this.options.devices.includes(dev.name) ? this.unit : null;
  }

  capable(): boolean {
    return true;
  }

  domainAllocPaging(): IommuDomain {
    if (this.allocError) throw this.allocError;
    const domain = new FakePagingDomain(this);
    this.domains.push(domain);
    return domain;
  }

  getResvRegions(): readonly IommuResvRegion[] {
    return this.options.resvRegions ?? [];
  }

  /** Domains allocated and not yet freed. */
  get liveDomains(): FakePagingDomain[] {
    return this.domains.filter((d) => !d.freed);
  }
}

export function clientDevice(name: string, rid: number): IommuClientDevice {
  return { name, rid, maxPasidLog2: 0, atsCapable: false };
}
