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
 *   invalidateTagWhere, invalidateWhere, entries, size, generation), DeviceTlb
 *   (lookup, insert, invalidateAll, invalidateRange, invalidateWhere, entries,
 *   size, generation)
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

/**
 * IOVAs below 2^53 are exact as numbers, so the page maps key them by
 * number: a number-keyed lookup needs no BigInt arithmetic and hashes
 * faster. Pages at or above it (a full 64-bit IOVA) are keyed by the bigint.
 */
const EXACT_LIMIT = 2 ** 53;
const EXACT_LIMIT_N = 1n << 53n;

type PageKey = number | bigint;

function pageKey(base: bigint): PageKey {
  return base < EXACT_LIMIT_N ? Number(base) : base;
}

/** The record the cache keeps: the public entry plus its key and size in number form. */
interface Slot extends IotlbEntry {
  readonly key: PageKey;
  readonly size: number;
}

interface TagBucket {
  /** Page sizes present under this tag, so a lookup probes only those (an array: iterating it allocates nothing). */
  readonly sizes: number[];
  readonly byPasid: Map<number, Map<PageKey, Slot>>;
  /** Entries per stage-2 tag other than this tag, so a stage-2 invalidation visits only the tags built on it. */
  readonly foreignS2: Map<number, number>;
}

/**
 * A tagged translation cache with a fixed capacity and first-in-first-out
 * replacement (deterministic, so a test that fills the cache knows which
 * entry went). A lookup of an IOVA below 2^53 allocates nothing.
 * Invalidations visit only the entries of the tags concerned.
 */
export class Iotlb {
  readonly #capacity: number;
  readonly #tags = new Map<number, TagBucket>();
  /** Insertion order for replacement; a Map keeps it and deletes in O(1). */
  readonly #order = new Map<Slot, true>();
  // The last (tag, pasid) looked up, its page map and the entry it last
  // found: a device doing DMA asks for the same pair, often the same page,
  // over and over. Any insert or removal forgets them, so they never answer
  // differently from a full lookup.
  #lastTag = 0;
  #lastPasid = 0;
  #lastPages: Map<PageKey, Slot> | null = null;
  #lastSizes: number[] = [];
  #lastHit: Slot | null = null;
  #generation = 0;

  constructor(options: { readonly capacity?: number } = {}) {
    const capacity = options.capacity ?? 4096;
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`IOTLB capacity must be a positive integer, got ${capacity}`);
    this.#capacity = capacity;
  }

  get size(): number {
    return this.#order.size;
  }

  /**
   * Changes whenever an entry is added or removed: while it stays the same,
   * every lookup answers as it did before, so a caller may keep what a
   * lookup returned instead of asking again.
   */
  get generation(): number {
    return this.#generation;
  }

  /** The entry translating `iova` for (tag, pasid), if cached. `pasid` null = DMA without PASID. */
  lookup(tag: number, pasid: number | null, iova: bigint): IotlbEntry | undefined {
    const pasidKey = pasid ?? NO_PASID_KEY;
    // Rounding only ever moves a bigint of 2^53 or more to a number of 2^53 or more, so `n < EXACT_LIMIT` is exact.
    const n = Number(iova);
    const hit = this.#lastHit;
    if (hit !== null && hit.tag === tag && hit.pasid === pasidKey && n >= (hit.key as number) && n - (hit.key as number) < hit.size) {
      return hit;
    }
    let pages = this.#lastPages;
    let sizes = this.#lastSizes;
    if (pages === null || this.#lastTag !== tag || this.#lastPasid !== pasidKey) {
      const bucket = this.#tags.get(tag);
      if (bucket === undefined) return undefined;
      pages = bucket.byPasid.get(pasidKey) ?? null;
      if (pages === null) return undefined;
      sizes = bucket.sizes;
      this.#lastTag = tag;
      this.#lastPasid = pasidKey;
      this.#lastPages = pages;
      this.#lastSizes = sizes;
    }
    if (n < EXACT_LIMIT) {
      for (let i = 0; i < sizes.length; i++) {
        const size = sizes[i]!;
        // Page sizes are powers of two, so the quotient is exact and floor() gives the page.
        const entry = pages.get(Math.floor(n / size) * size);
        if (entry !== undefined && entry.size === size) {
          // Only an entry of the first size probed: for another IOVA of its page a full lookup finds it before any other size.
          if (i === 0) this.#lastHit = entry;
          return entry;
        }
      }
      return undefined;
    }
    for (let i = 0; i < sizes.length; i++) {
      const size = sizes[i]!;
      const entry = pages.get(pageKey(iova - (iova % BigInt(size))));
      if (entry !== undefined && entry.size === size) return entry;
    }
    return undefined;
  }

  /**
   * Caches a translation (replacing one for the same page) and returns the
   * entry. The oldest entry is evicted when the cache is full.
   */
  insert(tag: number, s2Tag: number, pasid: number | null, iova: bigint, pa: bigint, pageSize: bigint, perm: number): IotlbEntry {
    const base = iova - (iova % pageSize);
    const key = pageKey(base);
    const size = Number(pageSize);
    const entry: Slot = { tag, s2Tag, pasid: pasid ?? NO_PASID_KEY, iova: base, pa, pageSize, perm, dirty: false, key, size };
    this.#forget();
    let bucket = this.#tags.get(tag);
    if (!bucket) {
      bucket = { sizes: [], byPasid: new Map(), foreignS2: new Map() };
      this.#tags.set(tag, bucket);
    }
    let pages = bucket.byPasid.get(entry.pasid);
    if (!pages) {
      pages = new Map();
      bucket.byPasid.set(entry.pasid, pages);
    }
    const old = pages.get(key);
    if (old) this.#remove(old);
    // #remove drops the page map and bucket it empties: put them back for the new entry.
    if (!this.#tags.has(tag)) this.#tags.set(tag, bucket);
    if (!bucket.byPasid.has(entry.pasid)) bucket.byPasid.set(entry.pasid, pages);
    pages.set(key, entry);
    if (!bucket.sizes.includes(size)) bucket.sizes.push(size);
    if (s2Tag !== tag) bucket.foreignS2.set(s2Tag, (bucket.foreignS2.get(s2Tag) ?? 0) + 1);
    this.#order.set(entry, true);
    if (this.#order.size > this.#capacity) {
      const oldest = this.#order.keys().next().value as Slot;
      this.#remove(oldest);
    }
    return entry;
  }

  invalidateAll(): void {
    this.#forget();
    this.#tags.clear();
    this.#order.clear();
  }

  /** Drops every entry of domain `tag`, and every nested entry built on `tag` as its stage 2. */
  invalidateTag(tag: number): void {
    const bucket = this.#tags.get(tag);
    if (bucket) {
      this.#forget();
      for (const pages of bucket.byPasid.values()) {
        for (const entry of pages.values()) this.#order.delete(entry);
      }
      this.#tags.delete(tag);
    }
    this.invalidateStage2(tag);
  }

  /** Drops the nested (two-stage) entries whose stage 2 is `s2Tag`, keeping that domain's own entries. */
  invalidateStage2(s2Tag: number): void {
    for (const [tag, bucket] of this.#tags) {
      if (tag === s2Tag || !bucket.foreignS2.has(s2Tag)) continue;
      this.#dropFrom(bucket, IOTLB_ANY_PASID, (e) => e.s2Tag === s2Tag);
    }
  }

  /** Drops the entries of (tag, pasid); `pasid` null = the entries made without a PASID. */
  invalidatePasid(tag: number, pasid: number | null): void {
    const bucket = this.#tags.get(tag);
    if (bucket) this.#dropFrom(bucket, pasid ?? NO_PASID_KEY, null);
  }

  /**
   * Drops the entries of `tag` whose page overlaps [iova, iova + size), for
   * `pasid` (null = without PASID) or for every PASID with IOTLB_ANY_PASID.
   * A block entry is dropped whole when any part of it is in range.
   */
  invalidateRange(tag: number, pasid: number | null, iova: bigint, size: bigint): void {
    const bucket = this.#tags.get(tag);
    if (!bucket) return;
    const last = iova + size - 1n;
    this.#dropFrom(bucket, pasid ?? NO_PASID_KEY, (e) => e.iova <= last && e.iova + e.pageSize - 1n >= iova);
  }

  /**
   * Drops the entries of `tag` (every PASID) that `match` accepts, or all of
   * them without `match`; nested entries built on `tag` stay (invalidateTag
   * drops those too). For drivers with their own invalidation granularity.
   */
  invalidateTagWhere(tag: number, match?: (entry: IotlbEntry) => boolean): void {
    const bucket = this.#tags.get(tag);
    if (bucket) this.#dropFrom(bucket, IOTLB_ANY_PASID, match ?? null);
  }

  /** Drops every entry `match` accepts, across all tags (drivers with their own invalidation granularity use this). */
  invalidateWhere(match: (entry: IotlbEntry) => boolean): void {
    // Deleting the entry being visited is safe in a Map iteration: no copy needed.
    for (const entry of this.#order.keys()) {
      if (match(entry)) this.#remove(entry);
    }
  }

  /** The cached entries, oldest first. */
  entries(): IterableIterator<IotlbEntry> {
    return this.#order.keys();
  }

  /** Drops the entries of `bucket` under `pasid` (IOTLB_ANY_PASID: all) that `match` accepts (null: all). */
  #dropFrom(bucket: TagBucket, pasid: number, match: ((entry: IotlbEntry) => boolean) | null): void {
    if (pasid === IOTLB_ANY_PASID) {
      for (const pages of bucket.byPasid.values()) this.#dropPages(pages, match);
    } else {
      const pages = bucket.byPasid.get(pasid);
      if (pages) this.#dropPages(pages, match);
    }
  }

  #dropPages(pages: Map<PageKey, Slot>, match: ((entry: IotlbEntry) => boolean) | null): void {
    for (const entry of pages.values()) {
      if (match === null || match(entry)) this.#remove(entry);
    }
  }

  #forget(): void {
    this.#generation++;
    this.#lastPages = null;
    this.#lastHit = null;
  }

  #remove(entry: Slot): void {
    this.#forget();
    this.#order.delete(entry);
    const bucket = this.#tags.get(entry.tag);
    const pages = bucket?.byPasid.get(entry.pasid);
    if (pages?.get(entry.key) === entry) {
      pages.delete(entry.key);
      if (entry.s2Tag !== entry.tag) {
        const left = bucket!.foreignS2.get(entry.s2Tag)! - 1;
        if (left === 0) bucket!.foreignS2.delete(entry.s2Tag);
        else bucket!.foreignS2.set(entry.s2Tag, left);
      }
      if (pages.size === 0) {
        bucket!.byPasid.delete(entry.pasid);
        if (bucket!.byPasid.size === 0) this.#tags.delete(entry.tag);
      }
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

  /** See Iotlb.generation. */
  get generation(): number {
    return this.#cache.generation;
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
