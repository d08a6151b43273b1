import type { UserMemory } from '../uapi/index.js';
import type { DeviceTlb, Iotlb } from './iotlb.js';

/*
 * The contract an IOMMU driver package implements: the model of one kind of
 * IOMMU hardware (VT-d, SMMUv3, the mock) together with its Linux driver's
 * ops tables, kept apart the way include/linux/iommu.h and
 * include/linux/iommufd.h keep them:
 *
 *   IommuDriver      struct iommu_ops           (one per driver)
 *   IommuDevice      struct iommu_device        (one per hardware unit; owns the IOTLB)
 *   IommuDomain      struct iommu_domain + iommu_domain_ops
 *   IommuDirtyOps    struct iommu_dirty_ops     (optional table on a paging domain)
 *   IommuViommu      struct iommufd_viommu_ops  (driver side of a vIOMMU)
 *
 * Exactly one driver answers for a device (the one whose hardware sits above
 * it), so these are ops tables, not hooks. Other plugins observe or extend
 * invalidation through ./invalidation-hooks.ts.
 *
 * Every op reports failure by throwing SimError with the errno the kernel
 * driver returns; a failed op leaves no trace.
 *
 * Public API of this file (stable; iommufd, type1 and driver packages build on it):
 *   types    IommuDriver, IommuDevice, IommuDomain, IommuDomainKind, IommuDirtyOps,
 *            IommuViommu, IommuViommuServices, IommuClientDevice, IommuHwInfo,
 *            IommuUserData, IommuUserDataArray, IommuIotlbGather, IommuResvRegion,
 *            IommuCap, IommuTranslation, IommuFaultReason
 *   values   IOMMU_READ, IOMMU_WRITE, IOMMU_CACHE, IOMMU_NO_PASID, createTranslation(), createIotlbGather(), iotlbGatherAdd()
 */

/** Mapping permission bits (include/linux/iommu.h IOMMU_READ / IOMMU_WRITE). */
export const IOMMU_READ = 1;
export const IOMMU_WRITE = 2;
/** IOMMU_CACHE: the mapping is cache coherent (snooped); type1 and iommufd set it on every user mapping. */
export const IOMMU_CACHE = 4;

/** The PASID value the kernel uses for "no PASID" (RID) attachments. */
export const IOMMU_NO_PASID = 0;

/** A device as the IOMMU layer sees it: its requester id and, with PASID, its PASID width. */
export interface IommuClientDevice {
  readonly name: string;
  /** Requester id (bus << 8 | devfn) the hardware tags its DMA with. */
  readonly rid: number;
  /** log2 of the PASIDs the device can emit (0: no PASID support). */
  readonly maxPasidLog2: number;
  /** The device has an ATS capability and caches translations in its own device TLB. */
  readonly atsCapable: boolean;
  /**
   * Subscribes to the device's resets (any kind: FLR, PM, bus, slot...);
   * returns the unsubscribe. A device without resets of its own (an
   * emulated one, a test stand-in) leaves it out.
   */
  onReset?(listener: () => void): () => void;
}

/** enum iommu_cap, the capabilities iommufd and type1 ask about. */
export type IommuCap = 'cacheCoherency' | 'dirtyTracking' | 'noexec' | 'deferredFlush';

/** The driver's answer to IOMMU_GET_HW_INFO (the hw_info op): its info struct and IOMMU_HW_INFO_TYPE_*. */
export interface IommuHwInfo {
  readonly type: number;
  readonly data: Uint8Array;
}

/** A reserved IOVA range (struct iommu_resv_region) that userspace may not map, e.g. an MSI window. */
export interface IommuResvRegion {
  readonly start: bigint;
  readonly length: bigint;
  readonly type: 'direct' | 'reserved' | 'msi' | 'swMsi';
}

/**
 * struct iommu_ops: one IOMMU driver. A driver object is registered once
 * with IommuCore; the core asks every registered driver, in registration
 * order, to probe a device, and the first that returns a hardware unit
 * translates for it.
 */
export interface IommuDriver {
  readonly name: string;
  /** probe_device: the hardware unit that translates for `dev`, or null when this driver's hardware does not sit above it. */
  probeDevice(dev: IommuClientDevice): IommuDevice | null;
  /** release_device: the device is going away. */
  releaseDevice?(dev: IommuClientDevice): void;
  /** capable: device_iommu_capable(); unknown capabilities are false. */
  capable(dev: IommuClientDevice, cap: IommuCap): boolean;
  /**
   * hw_info: IOMMU_GET_HW_INFO. `type` is the IOMMU_HW_INFO_TYPE_* the user
   * asked for (IOMMU_HW_INFO_TYPE_DEFAULT when the user left the choice to
   * the driver); a type the driver does not report is EOPNOTSUPP.
   */
  hwInfo?(dev: IommuClientDevice, type: number): IommuHwInfo;
  /** The always-attachable domain that blocks all DMA (ops->blocked_domain); what a user-owned group sits on between attachments. */
  readonly blockedDomain: IommuDomain;
  /** ops->identity_domain, if the hardware can pass DMA through untranslated. */
  readonly identityDomain?: IommuDomain;
  /**
   * The domain a group sits on while the kernel owns it (the default domain).
   * Absent: the identity domain if there is one, otherwise the blocked domain.
   */
  readonly defaultDomain?: IommuDomain;
  /** ops->user_pasid_table: a nested domain attached to the RID translates every PASID (the guest owns the PASID table). */
  readonly userPasidTable?: boolean;
  /**
   * domain_alloc_paging_flags: a paging domain for IOMMU_HWPT_ALLOC (with
   * IOMMU_HWPT_ALLOC_* `flags` and optional driver data), for an automatic
   * iommufd domain, or for type1 (flags 0, no data).
   */
  domainAllocPaging(dev: IommuClientDevice, flags: number, userData: IommuUserData | null): IommuDomain;
  /** domain_alloc_nested: a stage-1 domain over a nesting-parent paging domain. */
  domainAllocNested?(dev: IommuClientDevice, parent: IommuDomain, flags: number, userData: IommuUserData): IommuDomain;
  /**
   * get_viommu_size + viommu_init folded into one call: a vIOMMU of
   * IOMMU_VIOMMU_TYPE_* `type` over a nesting parent. An unsupported type is
   * EOPNOTSUPP. `services` are the iommufd core facilities viommu_init may use.
   */
  viommuAlloc?(
    dev: IommuClientDevice,
    parent: IommuDomain,
    type: number,
    userData: IommuUserData | null,
    services: IommuViommuServices,
  ): IommuViommu;
  /** get_resv_regions: ranges the IOVA space of this device must keep free. */
  getResvRegions?(dev: IommuClientDevice): readonly IommuResvRegion[];
}

/**
 * struct iommu_device: one hardware IOMMU unit. It owns the unit's IOTLB and
 * knows the device TLBs (ATCs) of the ATS-capable devices behind it, since
 * it is the unit that must invalidate them. The DMA engine looks here for
 * the caches to fill and use.
 */
export interface IommuDevice {
  readonly name: string;
  readonly driver: IommuDriver;
  readonly iotlb: Iotlb;
  /** The ATC of `dev`, or null when the device does not cache translations. */
  deviceTlb(dev: IommuClientDevice): DeviceTlb | null;
}

/** enum iommu_domain type, reduced to what decides a DMA's fate. */
export type IommuDomainKind = 'paging' | 'nested' | 'blocked' | 'identity';

/** Why the hardware refused a DMA. */
export type IommuFaultReason =
  /** No translation for the address (unmapped IOVA). */
  | 'not-present'
  /** A translation exists but does not allow the access. */
  | 'permission'
  /** The device sits on a blocking domain. */
  | 'blocked'
  /** The DMA carried a PASID with no domain attached for it. */
  | 'no-pasid-domain'
  /** Nested: stage 2 has no translation for a stage-1 table or for the stage-1 output. */
  | 'stage2-not-present'
  /** Nested: stage 2 refuses the access to a stage-1 table or to the stage-1 output. */
  | 'stage2-permission';

/**
 * The result of one translation (a table walk), written into a caller-owned
 * object so the DMA hot path allocates nothing per walk. `pa` is the output
 * address of the start of the page that contains the IOVA, `pageSize` that
 * page's size (a 2 MiB block, a 4 KiB page...).
 */
export interface IommuTranslation {
  pa: bigint;
  pageSize: bigint;
  /** IOMMU_READ | IOMMU_WRITE granted by every level (and by both stages when nested). */
  perm: number;
  fault: IommuFaultReason | null;
  /** The address whose translation failed: the IOVA, or for a stage-2 fault the IPA. */
  faultAddr: bigint;
  /** Cache tag of the stage 2 the result depends on (its own tag for a single-stage domain). */
  s2Tag: number;
}

/** A fresh, reusable translation result. */
export function createTranslation(): IommuTranslation {
  return { pa: 0n, pageSize: 0n, perm: 0, fault: null, faultAddr: 0n, s2Tag: 0 };
}

/**
 * struct iommu_iotlb_gather: the IOVA range an unmap cleared, handed to
 * iotlb_sync. Starts empty as iommu_iotlb_gather_init leaves it (start =
 * ULONG_MAX, end = 0); unmap_pages widens it with iotlbGatherAdd().
 */
export interface IommuIotlbGather {
  start: bigint;
  /** Inclusive. */
  end: bigint;
}

/** An empty gather (iommu_iotlb_gather_init). */
export function createIotlbGather(): IommuIotlbGather {
  return { start: (1n << 64n) - 1n, end: 0n };
}

/** iommu_iotlb_gather_add_range: widens `gather` to cover [iova, iova + size). */
export function iotlbGatherAdd(gather: IommuIotlbGather, iova: bigint, size: bigint): void {
  const end = iova + size - 1n;
  if (gather.start > iova) gather.start = iova;
  if (gather.end < end) gather.end = end;
}

/**
 * struct iommu_domain with its iommu_domain_ops: the translation a device
 * (or one of its PASIDs) is attached to.
 */
export interface IommuDomain {
  readonly kind: IommuDomainKind;
  /** domain->owner: the driver that allocated the domain; a device may only attach to its own driver's domains. */
  readonly driver: IommuDriver;
  /** Hardware cache tag (domain id / ASID / VMID) the IOTLB entries of this domain carry. */
  readonly tag: number;
  /** Page sizes the domain maps with, as a bitmap (bit n = 2^n bytes). 0n for domains without a host page table. */
  readonly pgsizeBitmap: bigint;
  /** Inclusive IOVA aperture (domain->geometry). */
  readonly apertureStart: bigint;
  readonly apertureEnd: bigint;
  /** For a nested domain: its stage-2 parent; otherwise null. */
  readonly parent: IommuDomain | null;
  /** Present on paging domains allocated with IOMMU_HWPT_ALLOC_DIRTY_TRACKING (domain->dirty_ops). */
  readonly dirtyOps: IommuDirtyOps | null;
  /** attach_dev: `dev`'s RID now translates through this domain; `old` is the domain it leaves. */
  attachDev(dev: IommuClientDevice, old: IommuDomain | null): void;
  /** set_dev_pasid: `dev`'s `pasid` now translates through this domain. */
  setDevPasid?(dev: IommuClientDevice, pasid: number, old: IommuDomain | null): void;
  /** map_pages: maps `pgcount` pages of `pgsize`; returns the bytes mapped before any failure. */
  mapPages?(iova: bigint, pa: bigint, pgsize: bigint, pgcount: bigint, prot: number): bigint;
  /** unmap_pages: returns the bytes unmapped (0n at a hole); widens `gather` to what it cleared. */
  unmapPages?(iova: bigint, pgsize: bigint, pgcount: bigint, gather: IommuIotlbGather): bigint;
  /** iotlb_sync: flushes the IOTLB (and device TLBs) for what `gather` covers. */
  iotlbSync?(gather: IommuIotlbGather): void;
  /** flush_iotlb_all. */
  flushIotlbAll?(): void;
  /** iova_to_phys: the physical address mapped at `iova`, or null. */
  iovaToPhys?(iova: bigint): bigint | null;
  /** enforce_cache_coherency: true if the domain can force snooping for all its mappings. */
  enforceCacheCoherency?(): boolean;
  /** cache_invalidate_user: IOMMU_HWPT_INVALIDATE on a nested domain; sets `array.handled`, also when it throws. */
  cacheInvalidateUser?(array: IommuUserDataArray): void;
  /**
   * The hardware table walk the DMA engine uses on an IOTLB miss. `access`
   * is IOMMU_READ or IOMMU_WRITE; a write walk may set a dirty bit.
   */
  translate(iova: bigint, pasid: number | null, access: number, out: IommuTranslation): void;
  /** free. */
  free(): void;
}

/** struct iommu_dirty_ops. */
export interface IommuDirtyOps {
  setDirtyTracking(enable: boolean): void;
  /**
   * read_and_clear_dirty: reports every dirty page in [iova, iova + size)
   * through `record`; clears the dirty bits unless `noClear`
   * (IOMMU_DIRTY_NO_CLEAR). `record` null is iommufd clearing stale bits
   * before it turns tracking on (a dirty bitmap with no bitmap). The caller
   * flushes the IOTLB afterwards, or writes through cached translations
   * would not set the bits again.
   */
  readAndClearDirty(iova: bigint, size: bigint, noClear: boolean, record: ((iova: bigint, length: bigint) => void) | null): void;
}

/** struct iommu_user_data: a driver-typed blob from userspace. */
export interface IommuUserData {
  readonly type: number;
  readonly mem: UserMemory;
  readonly uptr: bigint;
  readonly len: number;
}

/**
 * struct iommu_user_data_array: the entries of IOMMU_HWPT_INVALIDATE. The
 * driver copies entry by entry and reports in `handled` how many it
 * completed, which the core writes back as entry_num even on failure.
 */
export interface IommuUserDataArray {
  readonly type: number;
  readonly mem: UserMemory;
  readonly uptr: bigint;
  readonly entryLen: number;
  readonly entryNum: number;
  handled: number;
}

/** iommufd core facilities a driver's viommu_init may use. */
export interface IommuViommuServices {
  /**
   * iommufd_viommu_alloc_mmap: exposes `length` bytes of physical memory at
   * `pa` to userspace through mmap of the iommufd file; returns the mmap
   * offset. Absent when the caller offers no mmap (the driver then answers
   * EOPNOTSUPP where it needs one).
   */
  allocMmap?(pa: bigint, length: bigint): bigint;
  destroyMmap?(offset: bigint): void;
}

/** The driver part of a vIOMMU (struct iommufd_viommu_ops). */
export interface IommuViommu {
  readonly type: number;
  /** The nesting parent the vIOMMU was created over. */
  readonly parent: IommuDomain;
  /** alloc_domain_nested: IOMMU_HWPT_ALLOC with a viommu as pt_id. */
  allocDomainNested?(dev: IommuClientDevice, flags: number, userData: IommuUserData): IommuDomain;
  /** cache_invalidate: IOMMU_HWPT_INVALIDATE with a viommu id; sets `array.handled`, also when it throws. */
  cacheInvalidate?(array: IommuUserDataArray): void;
  /** IOMMU_VDEVICE_ALLOC: the guest's id (vSID, vRID) for a device behind this vIOMMU. */
  vdeviceInit?(dev: IommuClientDevice, virtId: bigint): void;
  vdeviceDestroy?(dev: IommuClientDevice, virtId: bigint): void;
  /** destroy. */
  destroy(): void;
}
