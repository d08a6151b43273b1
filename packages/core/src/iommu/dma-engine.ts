import { SyncHook } from 'tapable';
import { SimError } from '../errors/index.js';
import type { PhysicalMemory } from '../os/phys-mem.js';
import {
  IOMMU_READ, IOMMU_WRITE, createTranslation,
  type IommuClientDevice, type IommuDomain, type IommuFaultReason, type IommuTranslation,
} from './iommu-driver.js';
import type { DeviceTranslationContext, IommuCore, TranslationMemo } from './iommu-core.js';
import type { DeviceTlb, Iotlb, IotlbEntry } from './iotlb.js';

/*
 * How a device does DMA. A device model calls dmaRead/dmaWrite with the
 * addresses it was programmed with (IOVAs) and, for PASID-tagged DMA, the
 * PASID. The engine does what the IOMMU hardware does with the request:
 *
 * 1. Find the domain the request translates through (IommuCore.domainFor):
 *    the group's domain, or the domain attached to the PASID.
 * 2. For every page the request touches, find a translation: in the device's
 *    ATC if the device caches translations (ATS), else in the IOMMU unit's
 *    IOTLB under the domain's tag, else by walking the domain's tables (the
 *    driver's translate op: a paging walk, or stage 1 over stage 2) and
 *    caching the result. A cached translation is used as it is, even if the
 *    tables changed since: only invalidation removes it.
 * 3. Check the access against the translation's permissions.
 * 4. Only if every page translated and allowed the access, move the bytes
 *    in host physical memory. A refused request moves nothing at all (no
 *    partial write): the fault is logged (device, IOVA, PASID, direction,
 *    reason, virtual time), the `fault` hook runs, and the caller gets
 *    IOMMU_FAULT (dmaRead/dmaWrite) or the fault record (tryDma*).
 *
 * A device that is behind no IOMMU does DMA to physical addresses directly.
 *
 * The stale-translation detector (per host, switchable) re-walks the tables
 * on every cache hit and records each hit whose translation differs from
 * what the tables say now: the IOVA, the device, the cached and the correct
 * translation, the virtual time. Hardware cannot tell; the model can, and
 * that is how a missing invalidation in a VMM or a driver shows up.
 *
 * translate() is step 1 to 3 alone, for one address: what a device's
 * translation request costs, and the PA a model can use without moving
 * bytes.
 *
 * Hot path: synchronous; the engine reuses its scratch objects, does its
 * page arithmetic with numbers while addresses are below 2^53, and an IOTLB
 * hit allocates at most the BigInt of the resulting physical address. The
 * device's translation context (IommuCore.translationContext) gives its
 * IOMMU, ATC and domain in one lookup, and holds a memo of the entry the
 * device's last request used: a request in the same page with the same
 * PASID, while neither the attachment nor the cache answering first has
 * changed, is answered from the memo without a cache lookup. The memo only
 * skips lookups that would return that same entry, so it serves no request
 * that needs anything more (a permission fault, a dirty-bit walk, the stale
 * detector's re-walk): those take the full path.
 *
 * Public API: DmaEngine (dmaRead, dmaWrite, tryDmaRead, tryDmaWrite, translate,
 * detectStaleTranslations, faultLog, staleLog, clearFaultLog, clearStaleLog,
 * hooks.fault), DmaEngineOptions, DmaDirection, DmaFault,
 * CachedTranslation, StaleTranslation, IommuFaultError
 */

export type DmaDirection = 'read' | 'write';

/** One refused DMA, as the IOMMU's fault recording would report it. */
export interface DmaFault {
  /** Virtual time of the request. */
  readonly time: bigint;
  readonly device: IommuClientDevice;
  readonly iova: bigint;
  readonly pasid: number | null;
  readonly direction: DmaDirection;
  readonly reason: IommuFaultReason;
  /** The address whose translation failed: the faulting IOVA, or for a stage-2 fault the IPA. */
  readonly addr: bigint;
}

/** A translation as a cache held it or as the tables give it. */
export interface CachedTranslation {
  /** IOVA and output address of the start of the page. */
  readonly iova: bigint;
  readonly pa: bigint;
  readonly pageSize: bigint;
  readonly perm: number;
}

/** One use of a cached translation that no longer matches the tables. */
export interface StaleTranslation {
  readonly time: bigint;
  readonly device: IommuClientDevice;
  readonly iova: bigint;
  readonly pasid: number | null;
  readonly direction: DmaDirection;
  /** Which cache answered: the IOMMU's IOTLB or the device's ATC. */
  readonly cache: 'iotlb' | 'devtlb';
  readonly cached: CachedTranslation;
  /** What a walk gives now, or null when the tables no longer translate the IOVA. */
  readonly correct: CachedTranslation | null;
  /** Why the walk fails now, when `correct` is null. */
  readonly correctFault: IommuFaultReason | null;
}

/** The error dmaRead/dmaWrite throw for a refused DMA: IOMMU_FAULT (EIO), with the fault record. */
export class IommuFaultError extends SimError {
  readonly fault: DmaFault;

  constructor(fault: DmaFault) {
    super('IOMMU_FAULT', `DMA ${fault.direction} by ${fault.device.name} at iova 0x${fault.iova.toString(16)}`
      + `${fault.pasid === null ? '' : ` pasid ${fault.pasid}`}: ${fault.reason} at 0x${fault.addr.toString(16)}`);
    this.name = 'IommuFaultError';
    this.fault = fault;
  }
}

export interface DmaEngineOptions {
  /** Re-walk on every cache hit and record stale translations (HostOptions.detectStaleTranslations). */
  readonly detectStaleTranslations?: boolean;
  /** The host's virtual clock; fault and stale records carry its time. */
  readonly now?: () => bigint;
}

export interface DmaEngineHooks {
  /**
   * SyncHook, sequential. Runs once for every refused DMA, after the fault
   * is in the log and before the caller learns of it; the IOMMU's fault
   * reporting (an iommufd fault queue, a vEVENTQ) taps it. Nothing of the
   * DMA follows: no bytes moved and none will.
   */
  readonly fault: SyncHook<[DmaFault]>;
}

const PAGE_SIZE = 4096;
const EXACT_LIMIT = 2 ** 53;

function directionOf(access: number): DmaDirection {
  return access === IOMMU_WRITE ? 'write' : 'read';
}

/** Offset of `iova` in its 4 KiB page, with number arithmetic when the IOVA is exact as a number. */
function pageOffset(iova: bigint): number {
  // Rounding only ever moves a bigint of 2^53 or more to a number of 2^53 or more, so the test is exact.
  const n = Number(iova);
  return n < EXACT_LIMIT ? n % PAGE_SIZE : Number(iova & 0xfffn);
}

export class DmaEngine {
  /** Switch the stale-translation detector on or off (it costs a table walk per cache hit). */
  detectStaleTranslations: boolean;
  readonly hooks: DmaEngineHooks = Object.freeze({ fault: new SyncHook<[DmaFault]>(['fault']) });
  readonly #core: IommuCore;
  readonly #physMem: PhysicalMemory;
  readonly #now: () => bigint;
  readonly #faults: DmaFault[] = [];
  readonly #stale: StaleTranslation[] = [];
  // Scratch reused by every request (the engine is synchronous, never re-entered mid-request).
  readonly #walk: IommuTranslation = createTranslation();
  readonly #check: IommuTranslation = createTranslation();
  readonly #segPa: bigint[] = [];
  readonly #segLen: number[] = [];
  readonly #fault: { reason: IommuFaultReason; addr: bigint } = { reason: 'not-present', addr: 0n };
  #lastFault: DmaFault | null = null;

  constructor(core: IommuCore, physMem: PhysicalMemory, options: DmaEngineOptions = {}) {
    this.#core = core;
    this.#physMem = physMem;
    this.detectStaleTranslations = options.detectStaleTranslations ?? false;
    this.#now = options.now ?? (() => 0n);
  }

  /** Faults since the last clearFaultLog(), oldest first. */
  get faultLog(): readonly DmaFault[] {
    return this.#faults;
  }

  /** Stale-translation uses the detector found since the last clearStaleLog(), oldest first. */
  get staleLog(): readonly StaleTranslation[] {
    return this.#stale;
  }

  clearFaultLog(): void {
    this.#faults.length = 0;
  }

  clearStaleLog(): void {
    this.#stale.length = 0;
  }

  /** Device reads `length` bytes at `iova`; throws IommuFaultError if the IOMMU refuses. */
  dmaRead(dev: IommuClientDevice, iova: bigint, length: number, pasid: number | null = null): Uint8Array {
    const out = new Uint8Array(length);
    const fault = this.tryDmaRead(dev, iova, out, pasid);
    if (fault) throw new IommuFaultError(fault);
    return out;
  }

  /** Device writes `bytes` at `iova`; throws IommuFaultError (and writes nothing) if the IOMMU refuses. */
  dmaWrite(dev: IommuClientDevice, iova: bigint, bytes: Uint8Array, pasid: number | null = null): void {
    const fault = this.tryDmaWrite(dev, iova, bytes, pasid);
    if (fault) throw new IommuFaultError(fault);
  }

  /** Reads into `dst` (its length is the DMA length); returns the fault, or null when the read happened. */
  tryDmaRead(dev: IommuClientDevice, iova: bigint, dst: Uint8Array, pasid: number | null = null): DmaFault | null {
    const segments = this.#translateRange(dev, iova, dst.length, pasid, IOMMU_READ);
    if (segments < 0) return this.#lastFault;
    let done = 0;
    for (let i = 0; i < segments; i++) {
      const len = this.#segLen[i]!;
      this.#physMem.readInto(this.#segPa[i]!, dst, done, len);
      done += len;
    }
    return null;
  }

  /** Writes `src`; returns the fault (nothing written), or null when the write happened. */
  tryDmaWrite(dev: IommuClientDevice, iova: bigint, src: Uint8Array, pasid: number | null = null): DmaFault | null {
    const segments = this.#translateRange(dev, iova, src.length, pasid, IOMMU_WRITE);
    if (segments < 0) return this.#lastFault;
    let done = 0;
    for (let i = 0; i < segments; i++) {
      const len = this.#segLen[i]!;
      this.#physMem.write(this.#segPa[i]!, src, done, len);
      done += len;
    }
    return null;
  }

  /**
   * The translation step alone of a one-byte DMA at `iova` (`access`
   * IOMMU_READ or IOMMU_WRITE): the physical address, or the fault. It goes
   * through the same ATC, IOTLB, table walk, permission check, dirty-bit
   * update, stale detector and fault log as dmaRead/dmaWrite; only no bytes
   * move.
   */
  translate(dev: IommuClientDevice, iova: bigint, access: number, pasid: number | null = null): bigint | DmaFault {
    if (access !== IOMMU_READ && access !== IOMMU_WRITE) throw new RangeError(`DMA access ${access} is neither IOMMU_READ nor IOMMU_WRITE`);
    const ctx = this.#core.translationContext(dev);
    if (ctx === null) return iova;
    const memoised = this.#fromMemo(ctx.memo, iova, pasid, access);
    if (memoised !== null) return memoised;
    const domain = pasid === null ? ctx.domain : this.#core.domainFor(dev, pasid);
    const pa = this.#translateAt(dev, ctx, domain, iova, pasid, access);
    return pa < 0n ? this.#lastFault! : pa;
  }

  /**
   * Translates every page of [iova, iova + length) into the scratch segment
   * lists; returns how many segments, or -1 after logging a fault.
   */
  #translateRange(dev: IommuClientDevice, iova: bigint, length: number, pasid: number | null, access: number): number {
    if (!Number.isInteger(length) || length < 0) throw new RangeError(`DMA length ${length} is not a byte count`);
    const ctx = this.#core.translationContext(dev);
    const domain = ctx === null ? null : pasid === null ? ctx.domain : this.#core.domainFor(dev, pasid);
    let count = 0;
    let cursor = iova;
    let left = length;
    while (left > 0) {
      const chunk = Math.min(left, PAGE_SIZE - pageOffset(cursor));
      let pa: bigint;
      if (ctx === null) {
        pa = cursor;
      } else {
        pa = this.#fromMemo(ctx.memo, cursor, pasid, access) ?? this.#translateAt(dev, ctx, domain, cursor, pasid, access);
        if (pa < 0n) return -1;
      }
      this.#segPa[count] = pa;
      this.#segLen[count] = chunk;
      count++;
      left -= chunk;
      if (left > 0) cursor += BigInt(chunk);
    }
    return count;
  }

  /**
   * The physical address of `iova` when the memo answers it exactly as the
   * full path would (same PASID and page, the answering cache unchanged, the
   * access allowed, no dirty bit to set, no stale check), else null.
   */
  #fromMemo(memo: TranslationMemo, iova: bigint, pasid: number | null, access: number): bigint | null {
    const entry = memo.entry;
    if (this.detectStaleTranslations || entry === null || memo.pasid !== pasid || memo.generation !== memo.cache!.generation) return null;
    // Rounding only ever moves a bigint of 2^53 or more to a number of 2^53 or more, and memoised pages end below 2^53.
    const offset = Number(iova) - memo.base;
    if (offset < 0 || offset >= memo.size) return null;
    if ((entry.perm & access) !== access || (access === IOMMU_WRITE && !entry.dirty)) return null;
    return iova + memo.delta;
  }

  /** Remembers `entry`, just returned by (or put in) `cache`, as the one the device's next lookup finds. */
  #memoise(memo: TranslationMemo, cache: Iotlb | DeviceTlb, entry: IotlbEntry, pasid: number | null): void {
    const size = Number(entry.pageSize);
    const base = Number(entry.iova);
    if (base + size > EXACT_LIMIT) return;
    memo.entry = entry;
    memo.pasid = pasid;
    memo.cache = cache;
    memo.generation = cache.generation;
    memo.base = base;
    memo.size = size;
    memo.delta = entry.pa - entry.iova;
  }

  /** The physical address of `iova` through `domain`, or -1n after logging the fault. */
  #translateAt(dev: IommuClientDevice, ctx: DeviceTranslationContext, domain: IommuDomain | null, iova: bigint, pasid: number | null, access: number): bigint {
    if (!domain) {
      this.#logFault(dev, iova, pasid, access, 'no-pasid-domain', iova);
      return -1n;
    }
    const pa = this.#translatePage(dev, ctx, domain, iova, pasid, access);
    if (pa < 0n) this.#logFault(dev, iova, pasid, access, this.#fault.reason, this.#fault.addr);
    return pa;
  }

  /** The physical address of `iova`, or -1n with #fault set. */
  #translatePage(dev: IommuClientDevice, ctx: DeviceTranslationContext, domain: IommuDomain, iova: bigint, pasid: number | null, access: number): bigint {
    if (domain.kind === 'identity') return iova;
    if (domain.kind === 'blocked') return this.#refuse('blocked', iova);
    const { iommu, atc, memo } = ctx;
    let entry: IotlbEntry | undefined = atc?.lookup(pasid, iova);
    if (entry) {
      this.#memoise(memo, atc!, entry, pasid);
      if (this.detectStaleTranslations) this.#checkStale(dev, domain, entry, iova, pasid, access, 'devtlb');
    } else {
      entry = iommu.iotlb.lookup(domain.tag, pasid, iova);
      if (entry) {
        if (this.detectStaleTranslations) this.#checkStale(dev, domain, entry, iova, pasid, access, 'iotlb');
      } else {
        const walk = this.#walk;
        domain.translate(iova, pasid, access, walk);
        if (walk.fault !== null) return this.#refuse(walk.fault, walk.faultAddr);
        entry = iommu.iotlb.insert(domain.tag, walk.s2Tag, pasid, iova, walk.pa, walk.pageSize, walk.perm);
        entry.dirty = access === IOMMU_WRITE && (walk.perm & IOMMU_WRITE) !== 0;
      }
      // The translation completion the device caches (the IOMMU answers an ATS request);
      // the device's next lookup finds that copy, not the IOTLB entry.
      if (atc) this.#memoise(memo, atc, atc.insert(pasid, iova, entry.pa, entry.pageSize, entry.perm), pasid);
      else this.#memoise(memo, iommu.iotlb, entry, pasid);
    }
    if ((entry.perm & access) !== access) return this.#refuse('permission', iova);
    if (access === IOMMU_WRITE && !entry.dirty) {
      // First write through a translation filled by a read: the hardware
      // walks again to set the dirty bit (dirty tracking) before writing.
      domain.translate(iova, pasid, IOMMU_WRITE, this.#walk);
      entry.dirty = true;
    }
    return entry.pa + (iova - entry.iova);
  }

  #refuse(reason: IommuFaultReason, addr: bigint): bigint {
    const fault = this.#fault;
    fault.reason = reason;
    fault.addr = addr;
    return -1n;
  }

  #logFault(dev: IommuClientDevice, iova: bigint, pasid: number | null, access: number, reason: IommuFaultReason, addr: bigint): void {
    const fault: DmaFault = { time: this.#now(), device: dev, iova, pasid, direction: directionOf(access), reason, addr };
    this.#faults.push(fault);
    this.#lastFault = fault;
    if (this.hooks.fault.isUsed()) this.hooks.fault.call(fault);
  }

  #checkStale(
    dev: IommuClientDevice,
    domain: IommuDomain,
    entry: IotlbEntry,
    iova: bigint,
    pasid: number | null,
    access: number,
    cache: 'iotlb' | 'devtlb',
  ): void {
    const fresh = this.#check;
    // A read walk: checking must not set dirty bits the DMA itself would not.
    domain.translate(iova, pasid, IOMMU_READ, fresh);
    if (fresh.fault === null
      && fresh.perm === entry.perm
      && fresh.pa + (iova & (fresh.pageSize - 1n)) === entry.pa + (iova - entry.iova)) {
      return;
    }
    this.#stale.push({
      time: this.#now(),
      device: dev,
      iova,
      pasid,
      direction: directionOf(access),
      cache,
      cached: { iova: entry.iova, pa: entry.pa, pageSize: entry.pageSize, perm: entry.perm },
      correct: fresh.fault === null
        ? { iova: iova - (iova & (fresh.pageSize - 1n)), pa: fresh.pa, pageSize: fresh.pageSize, perm: fresh.perm }
        : null,
      correctFault: fresh.fault,
    });
  }
}
