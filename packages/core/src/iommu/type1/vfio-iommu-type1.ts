import { SimError, fail } from '../../errors/index.js';
import type { Frame, Process } from '../../os/index.js';
import type { UserMemory } from '../../uapi/index.js';
import {
  VFIO_DMA_CC_IOMMU,
  VFIO_DMA_MAP_FLAG_READ,
  VFIO_DMA_MAP_FLAG_VADDR,
  VFIO_DMA_MAP_FLAG_WRITE,
  VFIO_DMA_UNMAP_FLAG_ALL,
  VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP,
  VFIO_DMA_UNMAP_FLAG_VADDR,
  VFIO_TYPE1_IOMMU,
  VFIO_TYPE1v2_IOMMU,
  VFIO_UNMAP_ALL,
  VFIO_UPDATE_VADDR,
} from '../../uapi/index.js';
import type { IommuGroupHandle } from '../../vfio/iommu-group-kapi.js';
import type { VfioDevice } from '../../vfio/vfio-device.js';
import type { VfioGroupType, VfioIommuBackend, VfioIommuDriverOps } from '../../vfio/vfio-iommu-driver.js';
import type { IommuCore } from '../iommu-core.js';
import { IOMMU_CACHE, IOMMU_READ, IOMMU_WRITE, type IommuDomain } from '../iommu-driver.js';
import { iommuMap, iommuUnmap } from '../iommu-map.js';
import { DirtyBitmap, copyBitsToUser, type UserBitmapTarget } from './dirty-bitmap.js';
import { DmaTree } from './dma-tree.js';
import { IovaList, reservedConflicts, type IovaRange } from './iova-list.js';
import { DMA_ENTRY_LIMIT_DEFAULT, PAGE_MASK, PAGE_SHIFT, PAGE_SIZE, U64_MAX, ffs64 } from './type1-limits.js';
import { VfioDma } from './vfio-dma.js';
import { dispatchType1Ioctl } from './type1-ioctl.js';

/** Module parameters of vfio_iommu_type1, per driver instance. */
export interface Type1Options {
  /** dma_entry_limit: mappings one container may hold (default 65535); MAP_DMA past it is ENOSPC. */
  readonly dmaEntryLimit?: number;
  /** allow_unsafe_interrupts: attach groups whose MSIs are not isolated (otherwise EPERM). */
  readonly allowUnsafeInterrupts?: boolean;
  /**
   * iommu_group_has_isolated_msi(): whether interrupt remapping (VT-d IR,
   * AMD-Vi, a GICv3 ITS) keeps the group's MSIs from reaching other
   * devices' vectors. The platform decides; by default every group has it,
   * as on any server with interrupt remapping enabled.
   */
  readonly hasIsolatedMsi?: (group: IommuGroupHandle) => boolean;
}

/** struct vfio_iommu_group: an attached group and whether it has proved it reports its own DMA writes. */
interface GroupEntry {
  readonly group: IommuGroupHandle;
  /**
   * The group dirties memory only through pinPages/dmaRw, which type1 sees.
   * A group behind an IOMMU starts out false (its devices can write any
   * mapped page) and becomes true once one of its devices pins pages.
   */
  pinnedPageDirtyScope: boolean;
}

/** struct vfio_domain: one IOMMU domain and the groups attached to it. */
interface Type1Domain {
  readonly domain: IommuDomain;
  readonly groups: GroupEntry[];
  readonly enforceCacheCoherency: boolean;
}

/** MAP_DMA's arguments, decoded. */
export interface DmaMapArgs {
  readonly flags: number;
  readonly vaddr: bigint;
  readonly iova: bigint;
  readonly size: bigint;
}

/** UNMAP_DMA's arguments, decoded. */
export interface DmaUnmapArgs {
  readonly flags: number;
  readonly iova: bigint;
  readonly size: bigint;
}

/** struct vfio_bitmap: where the dirty bits of a range go in user memory. */
export interface UserDirtyBitmap {
  readonly pgsize: bigint;
  readonly size: bigint;
  readonly data: bigint;
}

/** A read-only view of one mapping, for tests and the typed API. */
export interface Type1Mapping {
  readonly iova: bigint;
  readonly size: bigint;
  readonly vaddr: bigint;
  /** IOMMU_READ | IOMMU_WRITE. */
  readonly prot: number;
  readonly vaddrInvalid: boolean;
  readonly iommuMapped: boolean;
  /** Pages pinned for the IOMMU mapping. */
  readonly pinnedPages: number;
  /** IOVAs of pages emulated devices hold pinned, with their pin counts. */
  readonly externalPins: ReadonlyMap<bigint, number>;
}

/** Largest page run handed to pinUserPages at once, like the kernel's GUP batch (one page of page pointers). */
const PIN_BATCH = 512;

/**
 * One type1 container back end (struct vfio_iommu): the user's DMA mappings,
 * the IOMMU domains of the attached groups, and the emulated devices that
 * pin pages through it. drivers/vfio/vfio_iommu_type1.c as of Linux 6.19,
 * including the 6.19 overflow rules (a mapping may end at the top of the
 * IOVA space; a range that wraps is EOVERFLOW).
 *
 * Every method throws SimError with the kernel's errno and, where the
 * kernel does not document partial progress, leaves the state as it was.
 *
 * Live update of vaddr follows the kernel since 6.3: VFIO_DMA_UNMAP_FLAG_VADDR
 * only marks mappings; their pages stay pinned and mapped, so device DMA
 * carries on. Anything that would need the vaddr meanwhile is refused with
 * EBUSY rather than made to wait: invalidation itself while an emulated
 * group is attached, attaching a group, and vfio_pin_pages/vfio_dma_rw (the
 * 5.12-6.2 kernels blocked these on a wait queue until the vaddr came back;
 * commit "vfio/type1: revert 'block on invalid vaddr'" removed that).
 */
export class VfioIommuType1 implements VfioIommuBackend {
  readonly #iommuCore: IommuCore;
  readonly #allowUnsafeInterrupts: boolean;
  readonly #hasIsolatedMsi: (group: IommuGroupHandle) => boolean;
  /** list_add() puts new domains first; "the first domain" is the newest, as in the kernel. */
  readonly #domains: Type1Domain[] = [];
  #iovaList = new IovaList();
  readonly #dmas = new DmaTree();
  /** Devices registered for dma_unmap notification (those whose ops have dmaUnmap). */
  readonly #devices: VfioDevice[] = [];
  readonly #emulatedGroups: GroupEntry[] = [];
  #dmaAvail: number;
  #vaddrInvalidCount = 0;
  #pgsizeBitmap = PAGE_MASK;
  /** Groups that may dirty memory behind type1's back; while any exists, mapped pages report as all dirty. */
  #numNonPinnedGroups = 0;
  #dirtyPageTracking = false;

  constructor(
    readonly driver: VfioIommuDriverOps,
    /** VFIO_TYPE1v2_IOMMU semantics (strict unmap, pinning, dirty tracking) rather than the original type1. */
    readonly v2: boolean,
    iommuCore: IommuCore,
    options: Type1Options = {},
  ) {
    this.#iommuCore = iommuCore;
    this.#allowUnsafeInterrupts = options.allowUnsafeInterrupts ?? false;
    this.#hasIsolatedMsi = options.hasIsolatedMsi ?? (() => true);
    this.#dmaAvail = options.dmaEntryLimit ?? DMA_ENTRY_LIMIT_DEFAULT;
  }

  // ------------------------------------------------------------ views

  /** Mappings that may still be created (the VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL count). */
  get dmaAvail(): number {
    return this.#dmaAvail;
  }

  /** The page sizes reported as iova_pgsizes: the intersection of the domains' page sizes. */
  get pgsizeBitmap(): bigint {
    return this.#pgsizeBitmap;
  }

  get dirtyPageTracking(): boolean {
    return this.#dirtyPageTracking;
  }

  /** Mappings whose vaddr is currently invalidated. */
  get vaddrInvalidCount(): number {
    return this.#vaddrInvalidCount;
  }

  /** The usable IOVA ranges reported in the IOVA range capability (inclusive ends). */
  get iovaRanges(): readonly IovaRange[] {
    return this.#iovaList.ranges.map((r) => ({ ...r }));
  }

  /** The IOMMU domains in use, newest first. */
  get domains(): readonly IommuDomain[] {
    return this.#domains.map((d) => d.domain);
  }

  /** The domain a group is attached to (vfio_iommu_type1_group_iommu_domain); ENODEV if none. */
  groupIommuDomain(group: IommuGroupHandle): IommuDomain {
    const d = this.#domains.find((x) => x.groups.some((g) => g.group.id === group.id));
    if (!d) fail('NO_DEVICE', `IOMMU group ${group.id} has no domain in this container`);
    return d.domain;
  }

  mappings(): Type1Mapping[] {
    return this.#dmas.list().map((dma) => ({
      iova: dma.iova,
      size: dma.size,
      vaddr: dma.vaddr,
      prot: dma.prot,
      vaddrInvalid: dma.vaddrInvalid,
      iommuMapped: dma.iommuMapped,
      pinnedPages: dma.pinned.length,
      externalPins: new Map([...dma.pfnList.values()].map((p) => [p.iova, p.refCount])),
    }));
  }

  /** The smallest page size the container maps with; MAP/UNMAP/dirty granularity. */
  get #pgsize(): bigint {
    return 1n << ffs64(this.#pgsizeBitmap);
  }

  // ------------------------------------------------------------ container ioctls

  /** The container fd's ioctls once this back end is set; returns the result, throws SimError for -errno. */
  ioctl(proc: Process, request: number, argp: bigint): number {
    return dispatchType1Ioctl(this, proc, request, argp);
  }

  /** VFIO_CHECK_EXTENSION asked of this container. */
  checkExtension(extension: bigint): number {
    switch (extension) {
      case BigInt(VFIO_TYPE1_IOMMU):
      case BigInt(VFIO_TYPE1v2_IOMMU):
      case BigInt(VFIO_UNMAP_ALL):
        return 1;
      case BigInt(VFIO_UPDATE_VADDR):
        // Emulated devices translate through the vaddr, so live update is off while one is attached.
        return this.#emulatedGroups.length === 0 ? 1 : 0;
      case BigInt(VFIO_DMA_CC_IOMMU):
        return this.#domains.every((d) => d.enforceCacheCoherency) ? 1 : 0;
      default:
        return 0;
    }
  }

  /** vfio_dma_do_map(): VFIO_IOMMU_MAP_DMA after the ioctl layer checked argsz and flags. */
  mapDma(proc: Process, map: DmaMapArgs): void {
    const { iova, vaddr, size } = map;
    const setVaddr = (map.flags & VFIO_DMA_MAP_FLAG_VADDR) !== 0;
    if (size === 0n) fail('INVALID_ARGUMENT', 'MAP_DMA: size is 0');
    if (iova + size - 1n > U64_MAX || vaddr + size - 1n > U64_MAX) {
      fail('OVERFLOW', `MAP_DMA: [0x${iova.toString(16)}, +0x${size.toString(16)}) or its vaddr wraps`);
    }
    let prot = 0;
    if (map.flags & VFIO_DMA_MAP_FLAG_WRITE) prot |= IOMMU_WRITE;
    if (map.flags & VFIO_DMA_MAP_FLAG_READ) prot |= IOMMU_READ;
    if ((prot !== 0) === setVaddr) {
      fail('INVALID_ARGUMENT', setVaddr
        ? 'MAP_DMA: FLAG_VADDR cannot be combined with READ or WRITE'
        : 'MAP_DMA: neither READ nor WRITE');
    }
    const mask = this.#pgsize - 1n;
    if (((size | iova | vaddr) & mask) !== 0n) {
      fail('INVALID_ARGUMENT', `MAP_DMA: iova, vaddr and size must be ${this.#pgsize}-byte aligned`);
    }

    const existing = this.#dmas.find(iova, size);
    if (setVaddr) {
      if (!existing) fail('NOT_FOUND', `MAP_DMA(VADDR): no mapping at 0x${iova.toString(16)}`);
      if (!existing.vaddrInvalid || existing.iova !== iova || existing.size !== size) {
        fail('INVALID_ARGUMENT', 'MAP_DMA(VADDR): the range must be exactly one mapping whose vaddr was invalidated');
      }
      this.#changeDmaOwner(existing, proc);
      existing.vaddr = vaddr;
      existing.vaddrInvalid = false;
      this.#vaddrInvalidCount--;
      return;
    }
    if (existing) fail('EXISTS', `MAP_DMA: [0x${iova.toString(16)}, +0x${size.toString(16)}) overlaps a mapping`);
    if (this.#dmaAvail === 0) fail('LIMIT_REACHED', 'MAP_DMA: the container holds dma_entry_limit mappings');
    if (!this.#iovaList.contains(iova, iova + size - 1n)) {
      fail('INVALID_ARGUMENT', `MAP_DMA: [0x${iova.toString(16)}, +0x${size.toString(16)}) is outside the usable IOVA ranges`);
    }

    const dma = new VfioDma(iova, vaddr, prot, proc, proc.mm);
    dma.size = size;
    if (this.#domains.length > 0) this.#pinMapDma(dma);
    if (this.#dirtyPageTracking) {
      try {
        dma.bitmap = DirtyBitmap.forPages(size >> ffs64(this.#pgsize));
      } catch (error) {
        this.#unmapUnpin(dma);
        throw error;
      }
    }
    this.#dmas.insert(dma);
    this.#dmaAvail--;
  }

  /**
   * vfio_dma_do_unmap(): VFIO_IOMMU_UNMAP_DMA after the ioctl layer checked
   * argsz, flags and the user bitmap. Returns the bytes unmapped (or whose
   * vaddr was invalidated), the value written back to `size`.
   *
   * Partial progress the kernel allows: when copying dirty bits to the user
   * faults, the mappings already reported stay unmapped.
   */
  unmapDma(unmap: DmaUnmapArgs, bitmap: UserDirtyBitmap | null, mem: UserMemory): bigint {
    const unmapAll = (unmap.flags & VFIO_DMA_UNMAP_FLAG_ALL) !== 0;
    const invalidateVaddr = (unmap.flags & VFIO_DMA_UNMAP_FLAG_VADDR) !== 0;
    const getDirty = (unmap.flags & VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP) !== 0;
    const { iova } = unmap;
    if (invalidateVaddr && this.#emulatedGroups.length > 0) {
      fail('BUSY', 'UNMAP_DMA(VADDR): an emulated device translates through the vaddr');
    }
    const pgsize = this.#pgsize;
    if ((iova & (pgsize - 1n)) !== 0n) fail('INVALID_ARGUMENT', `UNMAP_DMA: iova is not ${pgsize}-byte aligned`);
    let last: bigint;
    if (unmapAll) {
      if (iova !== 0n || unmap.size !== 0n) fail('INVALID_ARGUMENT', 'UNMAP_DMA(ALL): iova and size must be 0');
      last = U64_MAX;
    } else {
      if (unmap.size === 0n || (unmap.size & (pgsize - 1n)) !== 0n) {
        fail('INVALID_ARGUMENT', `UNMAP_DMA: size must be a non-zero multiple of ${pgsize}`);
      }
      last = iova + unmap.size - 1n;
      if (last > U64_MAX) fail('OVERFLOW', 'UNMAP_DMA: the range wraps');
    }
    if (getDirty && (!this.#dirtyPageTracking || bitmap!.pgsize !== pgsize)) {
      fail('INVALID_ARGUMENT', 'UNMAP_DMA(GET_DIRTY_BITMAP): dirty tracking is off or the bitmap page size is not the minimum');
    }

    let unmapped = 0n;
    let lastNotified: VfioDma | null = null;
    let retries = 0;
    again: for (;;) {
      if (this.v2 && !unmapAll) this.#rejectBisection(iova, last, 'UNMAP_DMA');
      const targets = this.#dmas.inRange(iova, last);
      for (let i = 0; i < targets.length; i++) {
        const dma = targets[i]!;
        // The original type1 unmaps nothing from a range that starts inside a mapping.
        if (!this.v2 && iova > dma.iova) break;
        if (invalidateVaddr) {
          if (dma.vaddrInvalid) {
            for (let j = 0; j < i; j++) targets[j]!.vaddrInvalid = false;
            this.#vaddrInvalidCount -= i;
            fail('INVALID_ARGUMENT', `UNMAP_DMA(VADDR): the vaddr of 0x${dma.iova.toString(16)} is already invalid`);
          }
          dma.vaddrInvalid = true;
          this.#vaddrInvalidCount++;
          unmapped += dma.size;
          continue;
        }
        if (dma.pfnList.size > 0) {
          // Devices must drop their pins when told; one that keeps pinning would hang the kernel (BUG_ON).
          if (lastNotified === dma) {
            if (++retries > 10) throw new Error(`type1: emulated devices keep pages of 0x${dma.iova.toString(16)} pinned after dma_unmap`);
          } else {
            lastNotified = dma;
            retries = 0;
          }
          this.#notifyDmaUnmap(dma);
          continue again;
        }
        if (getDirty) this.#reportDirty({ mem, data: bitmap!.data, baseIova: iova, pgshift: ffs64(pgsize) }, dma);
        unmapped += dma.size;
        this.#removeDma(dma);
      }
      return unmapped;
    }
  }

  /** VFIO_IOMMU_DIRTY_PAGES_FLAG_START: allocate a bitmap per mapping, with the pages emulated devices hold pinned already dirty. */
  startDirtyTracking(): void {
    if (this.#dirtyPageTracking) return;
    const pgsize = this.#pgsize;
    const pgshift = ffs64(pgsize);
    const bitmaps = this.#dmas.list().map((dma) => DirtyBitmap.forPages(dma.size / pgsize));
    this.#dmas.list().forEach((dma, i) => {
      dma.bitmap = bitmaps[i]!;
      this.#populateFromPins(dma, pgshift);
    });
    this.#dirtyPageTracking = true;
  }

  /** VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP. */
  stopDirtyTracking(): void {
    if (!this.#dirtyPageTracking) return;
    this.#dirtyPageTracking = false;
    for (const dma of this.#dmas.list()) dma.bitmap = null;
  }

  /**
   * VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP after the ioctl layer checked the
   * range and the user bitmap: the range must cover whole mappings; each
   * mapping's bits are copied, then reset to the pages still pinned.
   */
  getDirtyBitmap(mem: UserMemory, iova: bigint, size: bigint, bitmap: UserDirtyBitmap): void {
    const pgsize = this.#pgsize;
    if (bitmap.pgsize !== pgsize) fail('INVALID_ARGUMENT', `GET_BITMAP: pgsize must be ${pgsize}`);
    if ((iova & (pgsize - 1n)) !== 0n) fail('INVALID_ARGUMENT', `GET_BITMAP: iova is not ${pgsize}-byte aligned`);
    if ((size & (pgsize - 1n)) !== 0n) fail('INVALID_ARGUMENT', `GET_BITMAP: size is not a multiple of ${pgsize}`);
    if (!this.#dirtyPageTracking) fail('INVALID_ARGUMENT', 'GET_BITMAP: dirty tracking is not started');
    const last = iova + size - 1n;
    this.#rejectBisection(iova, last, 'GET_BITMAP');
    const pgshift = ffs64(pgsize);
    const target: UserBitmapTarget = { mem, data: bitmap.data, baseIova: iova, pgshift };
    for (const dma of this.#dmas.inRange(iova, last)) {
      this.#reportDirty(target, dma);
      dma.bitmap!.clear();
      this.#populateFromPins(dma, pgshift);
    }
  }

  // ------------------------------------------------------------ groups

  /**
   * vfio_iommu_type1_attach_group(). An IOMMU-backed group gets a domain of
   * its own unless an existing domain of the same driver and coherency
   * accepts it; a new domain is filled with every existing mapping (replay)
   * before it is used, and narrows the usable IOVA ranges to its aperture
   * minus the group's reserved regions.
   */
  attachGroup(group: IommuGroupHandle, type: VfioGroupType): void {
    if (this.#vaddrInvalidCount > 0) fail('BUSY', 'attach: mappings have an invalidated vaddr');
    if (this.#findGroup(group)) fail('INVALID_ARGUMENT', `attach: IOMMU group ${group.id} is already attached`);
    if (type === 'emulated') {
      // It cannot write memory except through pinPages/dmaRw, which type1 sees.
      this.#emulatedGroups.unshift({ group, pinnedPageDirtyScope: true });
      return;
    }

    // The group's first device stands for the group when asking its IOMMU driver for a domain.
    const first = this.#iommuCore.group(group.id)?.devices[0];
    if (!first) fail('IO_ERROR', `attach: IOMMU group ${group.id} has no device to allocate a domain for`);
    const domain = this.#iommuCore.pagingDomainAlloc(first);
    try {
      this.#iommuCore.attachGroup(group.id, domain);
    } catch (error) {
      domain.free();
      throw error;
    }
    const detachAndFree = (error: unknown): never => {
      this.#iommuCore.detachGroup(group.id, domain);
      domain.free();
      throw error;
    };

    let iovaCopy: IovaList;
    try {
      if (this.#iovaList.apertureConflicts(this.#dmas, domain.apertureStart, domain.apertureEnd)) {
        fail('INVALID_ARGUMENT', `attach: the aperture of group ${group.id} conflicts with the IOVA ranges or mappings in use`);
      }
      const regions = this.#iommuCore.resvRegions(group.id);
      if (reservedConflicts(this.#dmas, regions)) {
        fail('INVALID_ARGUMENT', `attach: a reserved region of group ${group.id} overlaps an existing mapping`);
      }
      iovaCopy = this.#iovaList.copy();
      iovaCopy.resize(domain.apertureStart, domain.apertureEnd);
      iovaCopy.excludeReserved(regions);
      if (!this.#allowUnsafeInterrupts && !this.#hasIsolatedMsi(group)) {
        fail('NOT_PERMITTED', `attach: group ${group.id} has no interrupt remapping (allow_unsafe_interrupts is off)`);
      }
    } catch (error) {
      return detachAndFree(error);
    }

    const enforceCacheCoherency = domain.enforceCacheCoherency?.() ?? false;
    const entry: GroupEntry = { group, pinnedPageDirtyScope: false };
    for (const d of this.#domains) {
      if (d.domain.driver !== domain.driver || d.enforceCacheCoherency !== enforceCacheCoherency) continue;
      this.#iommuCore.detachGroup(group.id, domain);
      try {
        this.#iommuCore.attachGroup(group.id, d.domain);
        d.groups.unshift(entry);
        domain.free();
        this.#attachDone(iovaCopy);
        return;
      } catch {
        // The existing domain does not take this group (another IOMMU instance): keep the new one.
      }
      try {
        this.#iommuCore.attachGroup(group.id, domain);
      } catch (error) {
        domain.free();
        throw error;
      }
    }

    try {
      this.#replay(domain);
    } catch (error) {
      return detachAndFree(error);
    }
    this.#domains.unshift({ domain, groups: [entry], enforceCacheCoherency });
    this.#updatePgsizeBitmap();
    this.#attachDone(iovaCopy);
  }

  /**
   * vfio_iommu_type1_detach_group(). The last IOMMU-backed group takes every
   * mapping with it (the container may no longer touch memory) unless
   * emulated groups remain, which keep the mappings but no pinned pages.
   */
  detachGroup(group: IommuGroupHandle): void {
    let updateDirtyScope = false;
    const emulatedIndex = this.#emulatedGroups.findIndex((g) => g.group.id === group.id);
    if (emulatedIndex >= 0) {
      updateDirtyScope = !this.#emulatedGroups[emulatedIndex]!.pinnedPageDirtyScope;
      this.#emulatedGroups.splice(emulatedIndex, 1);
      if (this.#emulatedGroups.length === 0 && this.#domains.length === 0) this.#unmapUnpinAll();
    } else {
      const iovaCopy = this.#iovaList.copy();
      for (const d of this.#domains) {
        const index = d.groups.findIndex((g) => g.group.id === group.id);
        if (index < 0) continue;
        this.#iommuCore.detachGroup(group.id, d.domain);
        updateDirtyScope = !d.groups[index]!.pinnedPageDirtyScope;
        d.groups.splice(index, 1);
        if (d.groups.length === 0) {
          if (this.#domains.length === 1) {
            if (this.#emulatedGroups.length === 0) this.#unmapUnpinAll();
            else for (const dma of this.#dmas.list()) this.#unmapUnpin(dma);
          }
          d.domain.free();
          this.#domains.splice(this.#domains.indexOf(d), 1);
          iovaCopy.expandTo(this.#domains.map((x) => x.domain));
          this.#updatePgsizeBitmap();
        }
        break;
      }
      const regions = this.#domains.flatMap((d) => d.groups.flatMap((g) => this.#iommuCore.resvRegions(g.group.id)));
      const refreshed = iovaCopy.refreshed(regions);
      if (refreshed) this.#iovaList = refreshed;
    }
    if (updateDirtyScope) {
      this.#numNonPinnedGroups--;
      if (this.#dirtyPageTracking) {
        const pgshift = ffs64(this.#pgsize);
        for (const dma of this.#dmas.list()) dma.bitmap!.set(0, Number(dma.size >> pgshift));
      }
    }
  }

  /** vfio_iommu_type1_release(): the container lets go of everything; no page stays pinned. */
  release(): void {
    this.#emulatedGroups.length = 0;
    this.#unmapUnpinAll();
    for (const d of this.#domains) {
      for (const g of d.groups) this.#iommuCore.detachGroup(g.group.id, d.domain);
      d.domain.free();
    }
    this.#domains.length = 0;
    this.#iovaList = new IovaList();
  }

  registerDevice(vdev: VfioDevice): void {
    if (!vdev.ops.dmaUnmap) return;
    this.#devices.unshift(vdev);
  }

  unregisterDevice(vdev: VfioDevice): void {
    if (!vdev.ops.dmaUnmap) return;
    const index = this.#devices.indexOf(vdev);
    if (index >= 0) this.#devices.splice(index, 1);
  }

  // ------------------------------------------------------------ emulated devices

  /**
   * vfio_iommu_type1_pin_pages(): pins `npage` pages from `iova` for an
   * emulated device and returns their frames, all or nothing. `prot` is
   * IOMMU_READ/IOMMU_WRITE and must be allowed by every mapping touched.
   * While dirty tracking runs, a newly pinned page is reported dirty.
   */
  pinPages(group: IommuGroupHandle, iova: bigint, npage: number, prot: number): Frame[] {
    if (!Number.isInteger(npage) || npage <= 0) fail('INVALID_ARGUMENT', `pin_pages: ${npage} pages`);
    if (!this.v2) fail('NOT_IN_THIS_VERSION', 'pin_pages: only type1 v2 containers pin for emulated devices');
    if (iova + BigInt(npage) * PAGE_SIZE - 1n > U64_MAX) fail('OVERFLOW', 'pin_pages: the range wraps');
    if (this.#vaddrInvalidCount > 0) fail('BUSY', 'pin_pages: mappings have an invalidated vaddr');
    if (this.#devices.length === 0) fail('INVALID_ARGUMENT', 'pin_pages: no device registered for dma_unmap');

    const frames: Frame[] = [];
    try {
      for (let i = 0; i < npage; i++) {
        const pageIova = iova + PAGE_SIZE * BigInt(i);
        const dma = this.#dmas.find(pageIova, PAGE_SIZE);
        if (!dma) fail('INVALID_ARGUMENT', `pin_pages: 0x${pageIova.toString(16)} is not mapped`);
        if ((dma.prot & prot) !== prot) fail('NOT_PERMITTED', `pin_pages: the mapping at 0x${pageIova.toString(16)} lacks the access asked for`);
        const vpfn = dma.pfnList.get(pageIova);
        if (vpfn) {
          vpfn.refCount++;
          frames.push(vpfn.frame);
          continue;
        }
        const frame = this.#pinExternal(dma, pageIova);
        dma.pfnList.set(pageIova, { iova: pageIova, frame, refCount: 1 });
        frames.push(frame);
        if (this.#dirtyPageTracking) dma.bitmap!.set(Number((pageIova - dma.iova) >> ffs64(this.#pgsize)), 1);
      }
    } catch (error) {
      for (let j = 0; j < frames.length; j++) {
        const pageIova = iova + PAGE_SIZE * BigInt(j);
        const dma = this.#dmas.find(pageIova, PAGE_SIZE);
        if (dma) this.#unpinExternal(dma, pageIova);
      }
      throw error;
    }
    const entry = this.#findGroup(group);
    if (entry && !entry.pinnedPageDirtyScope) {
      entry.pinnedPageDirtyScope = true;
      this.#numNonPinnedGroups--;
    }
    return frames;
  }

  /**
   * vfio_iommu_type1_unpin_pages(): drops one pin of each page; stops at the
   * first IOVA that is no longer mapped. Calls the kernel would WARN about
   * (v1 container, no pages, a wrapping range) do nothing.
   */
  unpinPages(iova: bigint, npage: number): void {
    if (!this.v2 || !Number.isInteger(npage) || npage <= 0) return;
    if (iova + BigInt(npage) * PAGE_SIZE - 1n > U64_MAX) return;
    for (let i = 0; i < npage; i++) {
      const pageIova = iova + PAGE_SIZE * BigInt(i);
      const dma = this.#dmas.find(pageIova, PAGE_SIZE);
      if (!dma) break;
      this.#unpinExternal(dma, pageIova);
    }
  }

  /**
   * vfio_iommu_type1_dma_rw(): the CPU copies to or from the user memory
   * behind an IOVA range on a device's behalf, through the mapping owner's
   * address space (as a kernel thread adopting that mm would). A read needs
   * a readable mapping, a write one that is readable and writable; a write
   * while dirty tracking runs marks the pages dirty.
   */
  dmaRw(iova: bigint, data: Uint8Array, write: boolean): void {
    if (this.#vaddrInvalidCount > 0) fail('BUSY', 'dma_rw: mappings have an invalidated vaddr');
    let done = 0;
    let at = iova;
    while (done < data.length) {
      const dma = this.#dmas.find(at, 1n);
      if (!dma) fail('INVALID_ARGUMENT', `dma_rw: 0x${at.toString(16)} is not mapped`);
      if ((write && !(dma.prot & IOMMU_WRITE)) || !(dma.prot & IOMMU_READ)) {
        fail('NOT_PERMITTED', `dma_rw: the mapping at 0x${dma.iova.toString(16)} does not allow this access`);
      }
      const offset = at - dma.iova;
      const left = dma.size - offset;
      const count = BigInt(data.length - done) < left ? data.length - done : Number(left);
      const vaddr = dma.vaddr + offset;
      const mm = dma.mm;
      if (!mm.mmget()) fail('NOT_PERMITTED', 'dma_rw: the address space of the mapping is gone');
      try {
        if (write) mm.copyToUser(vaddr, data.subarray(done, done + count));
        else data.set(mm.copyFromUser(vaddr, count), done);
      } catch (error) {
        if (error instanceof SimError) fail('BAD_ADDRESS', `dma_rw: the user memory behind 0x${at.toString(16)} faults`);
        throw error;
      } finally {
        mm.mmput();
      }
      if (write && this.#dirtyPageTracking) {
        const pgshift = ffs64(this.#pgsize);
        const first = Number(offset >> pgshift);
        dma.bitmap!.set(first, Number((offset + BigInt(count) - 1n) >> pgshift) - first + 1);
      }
      done += count;
      at += BigInt(count);
    }
  }

  // ------------------------------------------------------------ internals

  #findGroup(group: IommuGroupHandle): GroupEntry | undefined {
    for (const d of this.#domains) {
      const entry = d.groups.find((g) => g.group.id === group.id);
      if (entry) return entry;
    }
    return this.#emulatedGroups.find((g) => g.group.id === group.id);
  }

  #attachDone(iovaCopy: IovaList): void {
    this.#iovaList = iovaCopy;
    // Until it pins pages, a group behind an IOMMU may write any mapped page unseen.
    this.#numNonPinnedGroups++;
  }

  /** Type1 v2 (and GET_BITMAP) refuse a range that cuts a mapping in two: EINVAL. */
  #rejectBisection(iova: bigint, last: bigint, what: string): void {
    const first = this.#dmas.find(iova, 1n);
    if (first && first.iova !== iova) fail('INVALID_ARGUMENT', `${what}: 0x${iova.toString(16)} is inside a mapping`);
    const end = this.#dmas.find(last, 1n);
    if (end && end.last !== last) fail('INVALID_ARGUMENT', `${what}: the range ends inside a mapping`);
  }

  /** vfio_update_pgsize_bitmap(): sizes every domain supports, never below the CPU page size. */
  #updatePgsizeBitmap(): void {
    let bitmap = U64_MAX;
    for (const d of this.#domains) bitmap &= d.domain.pgsizeBitmap;
    if ((bitmap & ~PAGE_MASK) !== 0n) bitmap = (bitmap & PAGE_MASK) | PAGE_SIZE;
    this.#pgsizeBitmap = bitmap;
  }

  /** vfio_change_dma_owner(): a vaddr update from a new address space (after exec) moves the mapping to it. */
  #changeDmaOwner(dma: VfioDma, proc: Process): void {
    if (proc.mm === dma.mm) return;
    dma.task = proc;
    dma.mm = proc.mm;
  }

  /** Pins the mapping's pages from its address space, in batches so that a bad vaddr fails fast. */
  #pinUser(dma: VfioDma, vaddr: bigint, npages: number): Frame[] {
    const write = (dma.prot & IOMMU_WRITE) !== 0;
    const frames: Frame[] = [];
    try {
      for (let done = 0; done < npages; done += PIN_BATCH) {
        const batch = Math.min(PIN_BATCH, npages - done);
        frames.push(...dma.mm.pinUserPages(vaddr + BigInt(done) * PAGE_SIZE, batch, write));
      }
    } catch (error) {
      for (const frame of frames) frame.unpin();
      throw error;
    }
    return frames;
  }

  /**
   * vfio_pin_map_dma(): pin every page and map the physically contiguous
   * runs into every domain. Any failure unmaps and unpins what was done.
   */
  #pinMapDma(dma: VfioDma): void {
    const frames = this.#pinUser(dma, dma.vaddr, Number(dma.size >> PAGE_SHIFT));
    dma.pinned = frames;
    try {
      this.#mapRuns(dma, this.#domains.map((d) => d.domain));
    } catch (error) {
      dma.pinned = [];
      for (const frame of frames) frame.unpin();
      throw error;
    }
    dma.iommuMapped = true;
  }

  /** Maps the mapping's pinned pages into `domains`, run by run; on failure, unmaps what it mapped. */
  #mapRuns(dma: VfioDma, domains: readonly IommuDomain[]): void {
    const done: { domain: IommuDomain; iova: bigint; size: bigint }[] = [];
    try {
      for (const run of physicalRuns(dma.pinned)) {
        const iova = dma.iova + BigInt(run.index) * PAGE_SIZE;
        const size = BigInt(run.count) * PAGE_SIZE;
        for (const domain of domains) {
          iommuMap(domain, iova, run.pa, size, dma.prot | IOMMU_CACHE);
          done.push({ domain, iova, size });
        }
      }
    } catch (error) {
      for (const m of done.reverse()) iommuUnmap(m.domain, m.iova, m.size);
      throw error;
    }
  }

  /**
   * vfio_iommu_replay(): make a new domain translate every existing mapping.
   * Mappings already pinned (there is another domain) are mapped from their
   * pinned pages; the others (only emulated groups so far) are pinned now,
   * from the address space that mapped them.
   */
  #replay(domain: IommuDomain): void {
    const newlyPinned: VfioDma[] = [];
    const mapped: VfioDma[] = [];
    try {
      for (const dma of this.#dmas.list()) {
        if (!dma.iommuMapped) {
          dma.pinned = this.#pinUser(dma, dma.vaddr, Number(dma.size >> PAGE_SHIFT));
          newlyPinned.push(dma);
        }
        this.#mapRuns(dma, [domain]);
        mapped.push(dma);
      }
    } catch (error) {
      for (const dma of mapped) iommuUnmap(domain, dma.iova, dma.size);
      for (const dma of newlyPinned) {
        for (const frame of dma.pinned) frame.unpin();
        dma.pinned = [];
      }
      throw error;
    }
    for (const dma of this.#dmas.list()) dma.iommuMapped = true;
  }

  /** vfio_unmap_unpin(): unmap from every domain and unpin; emulated-device pins are untouched. */
  #unmapUnpin(dma: VfioDma): void {
    if (dma.size === 0n || this.#domains.length === 0) return;
    if (dma.iommuMapped) for (const d of this.#domains) iommuUnmap(d.domain, dma.iova, dma.size);
    for (const frame of dma.pinned) frame.unpin();
    dma.pinned = [];
    dma.iommuMapped = false;
  }

  /** vfio_remove_dma(). */
  #removeDma(dma: VfioDma): void {
    this.#unmapUnpin(dma);
    this.#dmas.remove(dma);
    dma.bitmap = null;
    if (dma.vaddrInvalid) this.#vaddrInvalidCount--;
    this.#dmaAvail++;
  }

  /**
   * vfio_iommu_unmap_unpin_all(). Emulated devices are gone by the time this
   * runs (they hold their group, which holds the container); pins one left
   * behind would make the kernel WARN and leak the pages, the model drops
   * them so that the frame accounting closes.
   */
  #unmapUnpinAll(): void {
    for (const dma of this.#dmas.list()) {
      for (const vpfn of dma.pfnList.values()) for (let i = 0; i < vpfn.refCount; i++) vpfn.frame.unpin();
      dma.pfnList.clear();
      this.#removeDma(dma);
    }
  }

  /** vfio_notify_dma_unmap(): every registered device must unpin what it holds in the mapping. */
  #notifyDmaUnmap(dma: VfioDma): void {
    for (const vdev of [...this.#devices]) vdev.ops.dmaUnmap!(vdev, dma.iova, dma.size);
  }

  /** vfio_pin_page_external(): one more pin of the page behind an IOVA, through the mapping's address space. */
  #pinExternal(dma: VfioDma, iova: bigint): Frame {
    const mm = dma.mm;
    if (!mm.mmget()) fail('NO_DEVICE', 'pin_pages: the address space of the mapping is gone');
    try {
      const vaddr = dma.vaddr + (iova - dma.iova);
      return mm.pinUserPages(vaddr & PAGE_MASK, 1, (dma.prot & IOMMU_WRITE) !== 0)[0]!;
    } finally {
      mm.mmput();
    }
  }

  #unpinExternal(dma: VfioDma, iova: bigint): void {
    const vpfn = dma.pfnList.get(iova);
    if (!vpfn) return;
    if (--vpfn.refCount === 0) {
      vpfn.frame.unpin();
      dma.pfnList.delete(iova);
    }
  }

  /** vfio_dma_populate_bitmap(): pages emulated devices hold pinned count as dirty. */
  #populateFromPins(dma: VfioDma, pgshift: bigint): void {
    for (const vpfn of dma.pfnList.values()) dma.bitmap!.set(Number((vpfn.iova - dma.iova) >> pgshift), 1);
  }

  /**
   * update_user_bitmap(): while a group that may write unseen is attached,
   * every page of an IOMMU-mapped mapping is reported dirty.
   */
  #reportDirty(target: UserBitmapTarget, dma: VfioDma): void {
    const bitmap = dma.bitmap!;
    if (this.#numNonPinnedGroups > 0 && dma.iommuMapped) bitmap.set(0, bitmap.nbits);
    copyBitsToUser(target, bitmap, dma.iova);
  }
}

/** Physically contiguous runs of a page array: first page index, page count and start address. */
function* physicalRuns(frames: readonly Frame[]): Generator<{ index: number; count: number; pa: bigint }> {
  let start = 0;
  while (start < frames.length) {
    let end = start + 1;
    while (end < frames.length && frames[end]!.pa === frames[start]!.pa + BigInt(end - start) * PAGE_SIZE) end++;
    yield { index: start, count: end - start, pa: frames[start]!.pa };
    start = end;
  }
}
