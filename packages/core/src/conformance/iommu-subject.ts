import type { ErrnoName } from '../errors/index.js';
import type { Host, VfioSimPlugin } from '../host/index.js';
import type { IommuDomain } from '../iommu/iommu-driver.js';
import type { HostDescription } from '../platform/index.js';
import type { ConformanceGuest } from './guest-ram.js';
import type { Stage1Format, Stage1Table } from './stage1.js';

/*
 * What the IOMMU driver suite must be told about a driver: everything that
 * is the driver's own (its info struct, its nested data and invalidation
 * entries, its stage-1 format), and the host to run it on. The rest is the
 * kernel's and the suite knows it.
 *
 * Public API: IommuDriverSubject, NestedHwptSubject, InvalidationSubject,
 * InvalidationEntryCopy, InvalidationEntryContext, Stage1Context
 */

/** Where a nested HWPT's stage 1 lives, for building the driver's data. */
export interface Stage1Context {
  readonly host: Host;
  readonly guest: ConformanceGuest;
  readonly stage1: Stage1Table;
}

export interface NestedHwptSubject {
  /**
   * How a VMM allocates the driver's nested HWPTs: over the NEST_PARENT
   * paging HWPT (ops->domain_alloc_nested: VT-d, the selftest mock), or
   * through the vIOMMU (viommu_ops->alloc_domain_nested: arm-smmu-v3, which
   * has no other way). 'viommu' needs `IommuDriverSubject.viommu`.
   */
  readonly via: 'parent' | 'viommu';
  /** IOMMU_HWPT_DATA_* of the driver. */
  readonly dataType: number;
  /** The IOMMU_HWPT_ALLOC data (the driver's uAPI struct) for a nested HWPT whose stage 1 is `ctx.stage1`. */
  data(ctx: Stage1Context): Uint8Array;
  /**
   * For a driver whose nested data carries no stage-1 pointer (the
   * selftest mock): points the new nested domain at the table model-side,
   * as the selftest pokes its mock. Drivers whose data names the table
   * (VT-d pgtbl_addr, an SMMUv3 STE) leave it out.
   */
  attachStage1?(ctx: Stage1Context & { readonly domain: IommuDomain }): void;
  /**
   * The errno for a data_type the driver does not know. VT-d and the
   * selftest driver check the type before anything else (EOPNOTSUPP, the
   * default); a driver that leaves the check to iommu_copy_struct_from_user()
   * answers EINVAL.
   */
  readonly unknownTypeErrno?: 'EOPNOTSUPP' | 'EINVAL';
}

/** Values a driver's invalidation entries may need. */
export interface InvalidationEntryContext {
  /** The vDEVICE id the suite gave the device on the vIOMMU, or null without a vIOMMU. */
  readonly virtId: bigint | null;
}

/**
 * Which include/linux/iommu.h helper the driver reads its entries with; the
 * helper, not the driver, decides the entry_len rules:
 *
 * - 'array': iommu_copy_struct_from_user_array(), one entry at a time (VT-d,
 *   the mock's nested HWPT). entry_len must lie in [minEntryLen, entryLen]
 *   (minEntryLen is offsetofend of the struct's first-version last member),
 *   else EINVAL before that entry is handled.
 * - 'fullArray': iommu_copy_struct_from_full_user_array(), the whole array
 *   before any entry runs (arm-smmu-v3, the mock vIOMMU). Entries go through
 *   copy_struct_from_user(): a short entry reads zero-extended, a long one
 *   must be zero past entryLen (E2BIG).
 */
export type InvalidationEntryCopy =
  | { readonly helper: 'array'; readonly minEntryLen: number }
  | { readonly helper: 'fullArray' };

export interface InvalidationSubject {
  /** Where the requests go: the nested HWPT (cache_invalidate_user) or the vIOMMU (cache_invalidate). */
  readonly target: 'hwpt' | 'viommu';
  /** IOMMU_HWPT_INVALIDATE_DATA_* / IOMMU_VIOMMU_INVALIDATE_DATA_* of the driver. */
  readonly dataType: number;
  /** sizeof the driver's entry struct. */
  readonly entryLen: number;
  readonly copy: InvalidationEntryCopy;
  /** Entries that together drop everything this target caches for the device (one or more). */
  invalidateAll(ctx: InvalidationEntryContext): readonly Uint8Array[];
  /** An entry the driver refuses, and the errno it refuses it with (unknown flag bits: EOPNOTSUPP in VT-d and the mock). */
  refused(ctx: InvalidationEntryContext): { readonly entry: Uint8Array; readonly errno: ErrnoName };
  /**
   * What an empty array of this data type answers. The uAPI documents
   * success (entry_num 0 probes the data type; the default); arm-smmu-v3
   * answers EINVAL because the full-array copy refuses an empty array.
   */
  readonly emptyArrayErrno?: ErrnoName;
}

export interface IommuDriverSubject {
  /**
   * Fresh plugins for one host: the IOMMU driver's, and a vfio driver that
   * binds the device under test (vfio-pci, or any vfio-pci-core driver).
   * Called once per case.
   */
  plugins(): readonly VfioSimPlugin[];
  /** A host whose device `bdf` sits behind this IOMMU and is bound to the vfio driver (`driver` in its description). */
  readonly description: HostDescription;
  readonly bdf: string;
  /** IOMMU_GET_HW_INFO: the driver's IOMMU_HW_INFO_TYPE_* and sizeof its info struct. */
  readonly hwInfo: { readonly type: number; readonly length: number };
  /** The driver's vIOMMU (IOMMU_VIOMMU_ALLOC), if it has one. */
  readonly viommu?: {
    readonly type: number;
    /** The virtual id the suite gives the device (IOMMU_VDEVICE_ALLOC); 1 by default. */
    readonly virtId?: bigint;
  };
  readonly nested: NestedHwptSubject;
  readonly stage1: Stage1Format;
  /**
   * The driver's invalidation data types, each checked against the
   * IOMMU_HWPT_INVALIDATE contract. Together their invalidateAll entries
   * must drop every cached translation of the device: the caches case
   * issues all of them (an IOTLB flush on the HWPT and an ATC flush on the
   * vIOMMU, for a driver that splits the two).
   */
  readonly invalidations: readonly InvalidationSubject[];
}
