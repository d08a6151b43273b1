/*
 * Translation caches of the IOMMU model: the IOTLB of an IOMMU unit and the
 * device TLB (ATS translation cache, ATC) of an ATS-capable device.
 *
 * They are real caches: the DMA engine fills them on a miss and uses what
 * they hold on a hit without looking at the page tables again, so a page
 * table change that is not followed by the right invalidation leaves a stale
 * translation in use, as on hardware.
 *
 * An IOTLB entry is tagged with the domain's hardware tag (domain id, ASID),
 * the PASID (or none) and the IOVA page; a nested translation also carries
 * the tag of the stage 2 it went through (`s2Tag`), because a stage-2 change
 * must drop every combined stage-1+2 entry built on it (SMMUv3 invalidates a
 * whole VMID for that; VT-d flushes the nested domain ids of the parent).
 *
 * Public API:
 *   IotlbEntry, IOTLB_ANY_PASID, Iotlb (lookup, insert, invalidateAll,
 *   invalidateTag, invalidateStage2, invalidatePasid, invalidateRange,
 *   invalidateWhere, entries, size), DeviceTlb (lookup, insert,
 *   invalidateAll, invalidateRange, invalidateWhere, entries, size)
 */

/** One cached translation. */
export interface IotlbEntry {
  /** Domain tag the entry belongs to. */
  readonly tag: number;
  /** Tag of the stage 2 the translation went through (equals `tag` for single-stage). */
  readonly s2Tag: number;
  /** PASID the translation was made for; -1 for DMA without a PASID. */
  readonly pasid: number;
  /** IOVA of the start of the cached page (aligned to pageSize). */
  readonly iova: bigint;
  /** Output address of the start of the cached page. */
  readonly pa: bigint;
  readonly pageSize: bigint;
  /** IOMMU_READ | IOMMU_WRITE. */
  readonly perm: number;
  /** Dirty tracking: a write through this entry has already set the page's dirty bit. */
  dirty: boolean;
}

/** Matches every PASID (and DMA without one) in invalidateRange. */
export const IOTLB_ANY_PASID = -2;

/** PASID key for DMA that carries none. */
const NO_PASID_KEY = -1;

interface TagBucket {
  /** Page sizes present under this tag, so a lookup probes only those (an array: iterating it allocates nothing). */
  readonly sizes: bigint[];
  readonly byPasid: Map<number, Map<bigint, IotlbEntry>>;
}

/**
 * A tagged translation cache with a fixed capacity and first-in-first-out
 * replacement (deterministic, so a test that fills the cache knows which
 * entry went). Lookups allocate nothing beyond the BigInt arithmetic.
 */
export class Iotlb {
  readonly #capacity: number;
  readonly #tags = new Map<number, TagBucket>();
  /** Insertion order for replacement; a Map keeps it and deletes in O(1). */
  readonly #order = new Map<IotlbEntry, true>();

  constructor(options: { readonly capacity?: number } = {}) {
    const capacity = options.capacity ?? 4096;
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`IOTLB capacity must be a positive integer, got ${capacity}`);
    this.#capacity = capacity;
  }

  get size(): number {
    return this.#order.size;
  }

  /** The entry translating `iova` for (tag, pasid), if cached. `pasid` null = DMA without PASID. */
  lookup(tag: number, pasid: number | null, iova: bigint): IotlbEntry | undefined {
    const bucket = this.#tags.get(tag);
    if (!bucket) return undefined;
    const pages = bucket.byPasid.get(pasid ?? NO_PASID_KEY);
    if (!pages) return undefined;
    const sizes = bucket.sizes;
    for (let i = 0; i < sizes.length; i++) {
      const size = sizes[i]!;
      const entry = pages.get(iova - (iova % size));
      if (entry !== undefined && entry.pageSize === size) return entry;
    }
    return undefined;
  }

  /**
   * Caches a translation (replacing one for the same page) and returns the
   * entry. The oldest entry is evicted when the cache is full.
   */
  insert(tag: number, s2Tag: number, pasid: number | null, iova: bigint, pa: bigint, pageSize: bigint, perm: number): IotlbEntry {
    const base = iova - (iova % pageSize);
    const entry: IotlbEntry = { tag, s2Tag, pasid: pasid ?? NO_PASID_KEY, iova: base, pa, pageSize, perm, dirty: false };
    let bucket = this.#tags.get(tag);
    if (!bucket) {
      bucket = { sizes: [], byPasid: new Map() };
      this.#tags.set(tag, bucket);
    }
    let pages = bucket.byPasid.get(entry.pasid);
    if (!pages) {
      pages = new Map();
      bucket.byPasid.set(entry.pasid, pages);
    }
    const old = pages.get(base);
    if (old) this.#order.delete(old);
    pages.set(base, entry);
    if (!bucket.sizes.includes(pageSize)) bucket.sizes.push(pageSize);
    this.#order.set(entry, true);
    if (this.#order.size > this.#capacity) {
      const oldest = this.#order.keys().next().value as IotlbEntry;
      this.#remove(oldest);
    }
    return entry;
  }

  invalidateAll(): void {
    this.#tags.clear();
    this.#order.clear();
  }

  /** Drops every entry of domain `tag`, and every nested entry built on `tag` as its stage 2. */
  invalidateTag(tag: number): void {
    this.invalidateWhere((e) => e.tag === tag || e.s2Tag === tag);
  }

  /** Drops the nested (two-stage) entries whose stage 2 is `s2Tag`, keeping that domain's own entries. */
  invalidateStage2(s2Tag: number): void {
    this.invalidateWhere((e) => e.s2Tag === s2Tag && e.tag !== s2Tag);
  }

  /** Drops the entries of (tag, pasid); `pasid` null = the entries made without a PASID. */
  invalidatePasid(tag: number, pasid: number | null): void {
    const bucket = this.#tags.get(tag);
    const pages = bucket?.byPasid.get(pasid ?? NO_PASID_KEY);
    if (!pages) return;
    for (const entry of pages.values()) this.#order.delete(entry);
    bucket!.byPasid.delete(pasid ?? NO_PASID_KEY);
  }

  /**
   * Drops the entries of `tag` whose page overlaps [iova, iova + size), for
   * `pasid` (null = without PASID) or for every PASID with IOTLB_ANY_PASID.
   * A block entry is dropped whole when any part of it is in range.
   */
  invalidateRange(tag: number, pasid: number | null, iova: bigint, size: bigint): void {
    const last = iova + size - 1n;
    const want = pasid ?? NO_PASID_KEY;
    this.invalidateWhere((e) => e.tag === tag && (want === IOTLB_ANY_PASID || e.pasid === want)
      && e.iova <= last && e.iova + e.pageSize - 1n >= iova);
  }

  /** Drops every entry `match` accepts (drivers with their own invalidation granularity use this). */
  invalidateWhere(match: (entry: IotlbEntry) => boolean): void {
    for (const entry of [...this.#order.keys()]) {
      if (match(entry)) this.#remove(entry);
    }
  }

  /** The cached entries, oldest first. */
  entries(): IterableIterator<IotlbEntry> {
    return this.#order.keys();
  }

  #remove(entry: IotlbEntry): void {
    this.#order.delete(entry);
    const bucket = this.#tags.get(entry.tag);
    const pages = bucket?.byPasid.get(entry.pasid);
    if (pages?.get(entry.iova) === entry) {
      pages.delete(entry.iova);
      if (pages.size === 0) bucket!.byPasid.delete(entry.pasid);
      if (bucket!.byPasid.size === 0) this.#tags.delete(entry.tag);
    }
  }
}

/**
 * The translation cache of an ATS-capable device (PCIe ATC). It holds what
 * the IOMMU answered to the device's translation requests, per PASID, with
 * no domain tag: only an ATS invalidation sent to the device empties it,
 * so an IOTLB flush alone leaves the device using the old translation.
 */
export class DeviceTlb {
  static readonly #TAG = 0;
  readonly #cache: Iotlb;

  constructor(options: { readonly capacity?: number } = {}) {
    this.#cache = new Iotlb({ capacity: options.capacity ?? 64 });
  }

  get size(): number {
    return this.#cache.size;
  }

  lookup(pasid: number | null, iova: bigint): IotlbEntry | undefined {
    return this.#cache.lookup(DeviceTlb.#TAG, pasid, iova);
  }

  insert(pasid: number | null, iova: bigint, pa: bigint, pageSize: bigint, perm: number): IotlbEntry {
    return this.#cache.insert(DeviceTlb.#TAG, DeviceTlb.#TAG, pasid, iova, pa, pageSize, perm);
  }

  invalidateAll(): void {
    this.#cache.invalidateAll();
  }

  /** An ATS invalidation request for [iova, iova + size) of `pasid` (IOTLB_ANY_PASID: all). */
  invalidateRange(pasid: number | null, iova: bigint, size: bigint): void {
    this.#cache.invalidateRange(DeviceTlb.#TAG, pasid, iova, size);
  }

  invalidateWhere(match: (entry: IotlbEntry) => boolean): void {
    this.#cache.invalidateWhere(match);
  }

  entries(): IterableIterator<IotlbEntry> {
    return this.#cache.entries();
  }
}
