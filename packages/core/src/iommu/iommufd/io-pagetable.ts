import { SimError } from '../../errors/index.js';
import type { Frame } from '../../os/index.js';
import { IOMMU_READ, IOMMU_WRITE, type IommuDomain, type IommuIotlbGather } from '../iommu-driver.js';
import { iommuMap, iommuUnmap } from '../iommu-map.js';
import { intersects, spans, type IovaRange } from './interval-spans.js';
import type { IoptPages } from './iopt-pages.js';
import { addNoOverflow, HPAGE_SIZE, lowestBit, PAGE_SIZE, roundupPowOfTwo, ULONG_MAX } from './limits.js';

/** A slice of an iopt_pages that becomes one area (struct iopt_pages_list). */
export interface PagesSlice {
  readonly pages: IoptPages;
  /** Byte offset of the slice from the page-aligned start of `pages`. */
  readonly startByte: bigint;
  readonly length: bigint;
}

interface ReservedRange extends IovaRange {
  /** Who reserved it: a domain (its aperture), a device (its reserved regions). */
  readonly owner: object;
}

/**
 * struct iopt_area: IOVAs [iova, last] mapping bytes [startByte, ...) of
 * `pages`. While the IOAS has at least one domain the area is filled into
 * all of them and holds a pin on every page it covers.
 */
export class IoptArea implements IovaRange {
  filled = false;
  /** Page ranges in-kernel accesses hold in this area (iopt_area::num_accesses). */
  numAccesses = 0;
  /** Set while an unmap waits for the accesses to let go: no new access may start. */
  preventAccess = false;

  constructor(
    readonly start: bigint,
    readonly last: bigint,
    readonly pages: IoptPages,
    readonly startByte: bigint,
    readonly iommuProt: number,
  ) {}

  get length(): bigint {
    return this.last - this.start + 1n;
  }

  /** Offset of the first byte inside its page (iopt_area::page_offset). */
  get pageOffset(): bigint {
    return this.startByte % PAGE_SIZE;
  }

  get firstIndex(): number {
    return Number(this.startByte / PAGE_SIZE);
  }

  get lastIndex(): number {
    return Number((this.startByte + this.length - 1n) / PAGE_SIZE);
  }

  /** iopt_area_start_byte(): the pages offset that `iova` maps. */
  startByteAt(iova: bigint): bigint {
    return this.startByte + (iova - this.start);
  }
}

/** The result of removing a range: how much went, and the error that stopped it (the kernel keeps partial progress). */
export interface UnmapResult {
  readonly unmapped: bigint;
  readonly error: SimError | null;
}

/** An in-kernel access as the table sees it: the driver op that must drop its pins in a range (iommufd_access_ops::unmap). */
export interface IoptAccessClient {
  readonly ops: { unmap(iova: bigint, length: bigint): void };
}

/**
 * How often an unmap tells the accesses to let go of one area before it
 * gives up with EDEADLOCK: a driver that keeps its pins is a kernel bug
 * (iopt_unmap_iova_range() WARNs after 100 tries).
 */
const UNMAP_ACCESS_TRIES = 100;

/** iommu_iotlb_gather_add_range(). */
export function widen(gather: IommuIotlbGather, iova: bigint, length: bigint): void {
  const end = iova + length - 1n;
  if (iova < gather.start) gather.start = iova;
  if (end > gather.end) gather.end = end;
}

function byStart(a: IovaRange, b: IovaRange): number {
  return a.start < b.start ? -1 : a.start > b.start ? 1 : 0;
}

/**
 * struct io_pagetable: the IOVA -> memory map of one IOAS and the domains it
 * is copied into. Areas never overlap; allowed ranges restrict automatic
 * IOVA allocation; reserved ranges (domain apertures, device reserved
 * regions) can hold no area. Every method validates before it changes
 * anything, except range unmaps, which the kernel performs area by area and
 * stops at the first area that does not fit.
 */
export class IoPagetable {
  readonly #areas: IoptArea[] = [];
  #allowed: IovaRange[] = [];
  readonly #reserved: ReservedRange[] = [];
  readonly #domains: IommuDomain[] = [];
  /** The in-kernel accesses attached (iopt::access_list), with the IOVA alignment each needs. */
  readonly #accessAlignments = new Map<IoptAccessClient, bigint>();
  #disableLargePages = false;
  /** Starts at 1: a table without domains is a software table with no alignment rule. */
  #iovaAlignment = 1n;

  get iovaAlignment(): bigint {
    return this.#iovaAlignment;
  }

  get largePagesDisabled(): boolean {
    return this.#disableLargePages;
  }

  get areas(): readonly IoptArea[] {
    return this.#areas;
  }

  get allowed(): readonly IovaRange[] {
    return this.#allowed;
  }

  get reserved(): readonly IovaRange[] {
    return this.#reserved;
  }

  get domains(): readonly IommuDomain[] {
    return this.#domains;
  }

  // ------------------------------------------------------------ IOVA choice

  /**
   * iopt_alloc_iova(): the first hole, inside an allowed range (all of
   * [PAGE_SIZE, ULONG_MAX - PAGE_SIZE] when none is set), that avoids
   * reserved ranges and existing areas, aligned to the smaller of the
   * length's and the source address's natural alignment so huge pages stay
   * mappable, and keeping the source's offset inside its page.
   */
  allocIova(addr: bigint, length: bigint): bigint {
    if (length === 0n || length >= ULONG_MAX / 2n) {
      throw new SimError('OVERFLOW', `IOVA allocation of ${length} bytes would overflow its alignment`);
    }
    const pageOffset = addr % PAGE_SIZE;
    let align = roundupPowOfTwo(length);
    if (addr !== 0n && lowestBit(addr) < align) align = lowestBit(addr);
    if (align >= HPAGE_SIZE) align = HPAGE_SIZE;
    if (align < this.#iovaAlignment) {
      throw new SimError('INVALID_ARGUMENT', `the source address only allows IOVA alignment ${align}, the IOAS needs ${this.#iovaAlignment}`);
    }

    const fits = (start: bigint, last: bigint): bigint | null => {
      const up = addNoOverflow(start, align - 1n);
      if (up === null) return null;
      const candidate = (up & ~(align - 1n)) | pageOffset;
      if (candidate >= last || last - candidate < length - 1n) return null;
      return candidate;
    };

    const allowedSpans = this.#allowed.length === 0
      ? [{ start: PAGE_SIZE, last: ULONG_MAX - PAGE_SIZE, used: true }]
      : spans([this.#allowed], PAGE_SIZE, ULONG_MAX - PAGE_SIZE);
    for (const allowed of allowedSpans) {
      if (!allowed.used) continue;
      const from = fits(allowed.start, allowed.last);
      if (from === null) continue;
      for (const hole of spans([this.#reserved, this.#areas], from, allowed.last)) {
        if (hole.used) continue;
        const iova = fits(hole.start, hole.last);
        if (iova !== null) return iova;
      }
    }
    throw new SimError('NO_IOVA_SPACE', `no free IOVA range of ${length} bytes with alignment ${align}`);
  }

  /** iopt_check_iova(): a caller-chosen IOVA must be aligned, must not wrap, and must avoid reserved ranges and areas. */
  checkIova(iova: bigint, length: bigint): void {
    if (iova & (this.#iovaAlignment - 1n)) {
      throw new SimError('INVALID_ARGUMENT', `IOVA 0x${iova.toString(16)} is not aligned to ${this.#iovaAlignment}`);
    }
    const last = addNoOverflow(iova, length - 1n);
    if (last === null) throw new SimError('OVERFLOW', `IOVA range at 0x${iova.toString(16)} of ${length} bytes wraps`);
    if (this.#reserved.some((r) => intersects(r, iova, last))) {
      throw new SimError('INVALID_ARGUMENT', `IOVA range [0x${iova.toString(16)}, 0x${last.toString(16)}] crosses a reserved range`);
    }
    if (this.#areas.some((a) => intersects(a, iova, last))) {
      throw new SimError('EXISTS', `IOVA range [0x${iova.toString(16)}, 0x${last.toString(16)}] is already mapped`);
    }
  }

  // ------------------------------------------------------------ map

  /**
   * iopt_map_pages(): places the slices back to back at `fixedIova` (or at
   * an allocated IOVA when null) and fills them into every domain, pinning
   * the pages if there is a domain. Returns the IOVA. Takes its own
   * references on the slices' pages; the caller keeps (and drops) its own.
   */
  mapPages(slices: readonly PagesSlice[], length: bigint, fixedIova: bigint | null, iommuProt: number): bigint {
    if (length === 0n || (length & (this.#iovaAlignment - 1n))) {
      throw new SimError('INVALID_ARGUMENT', `length ${length} is zero or not aligned to ${this.#iovaAlignment}`);
    }
    let iova: bigint;
    if (fixedIova === null) {
      const first = slices[0]!;
      iova = this.allocIova(first.pages.source.base + first.startByte, length);
    } else {
      this.checkIova(fixedIova, length);
      iova = fixedIova;
    }

    const areas: IoptArea[] = [];
    let cursor = iova;
    for (const slice of slices) {
      if ((iommuProt & IOMMU_WRITE) && !slice.pages.writable) {
        throw new SimError('NOT_PERMITTED', 'a writable mapping of memory that was mapped read-only');
      }
      if ((slice.startByte % PAGE_SIZE) & (this.#iovaAlignment - 1n)) {
        throw new SimError('INVALID_ARGUMENT', `the source offset inside its page is not aligned to ${this.#iovaAlignment}`);
      }
      const last = addNoOverflow(cursor, slice.length - 1n);
      if (last === null || addNoOverflow(slice.startByte, slice.length - 1n) === null) {
        throw new SimError('OVERFLOW', 'area end wraps');
      }
      areas.push(new IoptArea(cursor, last, slice.pages, slice.startByte, iommuProt));
      cursor = last + 1n;
    }

    const filled: IoptArea[] = [];
    try {
      for (const area of areas) {
        this.#fillArea(area);
        filled.push(area);
      }
    } catch (error) {
      for (const area of filled) this.#unfillArea(area);
      throw error;
    }
    for (const area of areas) {
      area.pages.get();
      this.#areas.push(area);
    }
    this.#areas.sort(byStart);
    return iova;
  }

  /** iopt_get_pages(): the pages under [iova, iova + length), which must be covered by areas without a hole. */
  getPages(iova: bigint, length: bigint): PagesSlice[] {
    if (length === 0n) throw new SimError('INVALID_ARGUMENT', 'copy of zero bytes');
    const last = addNoOverflow(iova, length - 1n);
    if (last === null) throw new SimError('OVERFLOW', 'source range wraps');
    const slices: PagesSlice[] = [];
    let cursor = iova;
    for (;;) {
      const area = this.#areas.find((a) => a.start <= cursor && cursor <= a.last);
      if (!area) throw new SimError('NOT_FOUND', `IOVA 0x${cursor.toString(16)} is not mapped`);
      const end: bigint = last < area.last ? last : area.last;
      slices.push({ pages: area.pages, startByte: area.startByteAt(cursor), length: end - cursor + 1n });
      if (end === last) break;
      cursor = end + 1n;
    }
    return slices;
  }

  // ------------------------------------------------------------ unmap

  /** iopt_unmap_iova(): removes every area inside [iova, iova + length); an area that sticks out stops the walk with ENOENT. */
  unmapIova(iova: bigint, length: bigint): UnmapResult {
    if (length === 0n) return { unmapped: 0n, error: new SimError('INVALID_ARGUMENT', 'unmap of zero bytes') };
    const last = addNoOverflow(iova, length - 1n);
    if (last === null) return { unmapped: 0n, error: new SimError('OVERFLOW', 'unmap range wraps') };
    return this.unmapRange(iova, last);
  }

  /** iopt_unmap_all(): every area; only accesses that keep their pins can stop it. */
  unmapAll(): UnmapResult {
    return this.unmapRange(0n, ULONG_MAX);
  }

  /**
   * iopt_unmap_iova_range(): area by area from the lowest; splitting is not
   * allowed, so the first area not wholly inside [start, last] ends the walk
   * with ENOENT, and the areas already removed stay removed.
   */
  unmapRange(start: bigint, last: bigint): UnmapResult {
    let unmapped = 0n;
    let from = start;
    let tries = 0;
    let triedArea: IoptArea | null = null;
    for (;;) {
      const area = this.#areas.find((a) => intersects(a, from, last));
      if (!area) return { unmapped, error: null };
      if (area.start < from || area.last > last) {
        return {
          unmapped,
          error: new SimError('NOT_FOUND', `area [0x${area.start.toString(16)}, 0x${area.last.toString(16)}] is not wholly inside the range`),
        };
      }
      if (area !== triedArea) tries = 0;
      if (area.numAccesses > 0) {
        // Drivers that pinned pages here are told to unpin; the area is looked at again afterwards.
        area.preventAccess = true;
        triedArea = area;
        for (const access of [...this.#accessAlignments.keys()]) access.ops.unmap(area.start, area.length);
        if (++tries > UNMAP_ACCESS_TRIES) {
          return {
            unmapped,
            error: new SimError('ACCESS_UNMAP_DEADLOCK', `accesses keep pages of [0x${area.start.toString(16)}, 0x${area.last.toString(16)}] pinned`),
          };
        }
        continue;
      }
      this.#removeArea(area);
      unmapped += area.length;
      if (area.last >= last) return { unmapped, error: null };
      from = area.last + 1n;
    }
  }

  #removeArea(area: IoptArea): void {
    this.#unfillArea(area);
    this.#areas.splice(this.#areas.indexOf(area), 1);
    area.pages.put();
  }

  // ------------------------------------------------------------ allowed / reserved

  /** iopt_set_allow_iova(): replaces the allowed list, unless a new range crosses a reserved one. */
  setAllowIova(ranges: readonly IovaRange[]): void {
    for (const range of ranges) {
      if (this.#reserved.some((r) => intersects(r, range.start, range.last))) {
        throw new SimError('ADDRESS_IN_USE', `allowed range [0x${range.start.toString(16)}, 0x${range.last.toString(16)}] crosses a reserved range`);
      }
    }
    this.#allowed = [...ranges].sort(byStart);
  }

  /** iopt_reserve_iova(): a range already mapped or allowed cannot become reserved. */
  reserve(start: bigint, last: bigint, owner: object): void {
    if (this.#areas.some((a) => intersects(a, start, last)) || this.#allowed.some((a) => intersects(a, start, last))) {
      throw new SimError('ADDRESS_IN_USE', `range [0x${start.toString(16)}, 0x${last.toString(16)}] is mapped or allowed`);
    }
    this.#reserved.push({ start, last, owner });
  }

  removeReserved(owner: object): void {
    for (let i = this.#reserved.length - 1; i >= 0; i--) {
      if (this.#reserved[i]!.owner === owner) this.#reserved.splice(i, 1);
    }
  }

  /** The holes in the reserved ranges: what IOMMU_IOAS_IOVA_RANGES reports. */
  usableRanges(): IovaRange[] {
    return spans([this.#reserved], 0n, ULONG_MAX)
      .filter((span) => !span.used)
      .map(({ start, last }) => ({ start, last }));
  }

  // ------------------------------------------------------------ domains

  /**
   * iopt_table_add_domain(): the domain must take PAGE_SIZE pages, existing
   * areas must fit its alignment, IOVAs outside its aperture become
   * reserved, and every area is mapped into it (pinning pages if it is the
   * first domain). On failure the table is as it was.
   */
  addDomain(domain: IommuDomain): void {
    if (this.#domains.includes(domain)) throw new Error('io_pagetable: domain added twice');
    const minPage = lowestBit(domain.pgsizeBitmap);
    const newAlign = minPage > this.#iovaAlignment ? minPage : this.#iovaAlignment;
    if (newAlign > PAGE_SIZE) {
      throw new SimError('INVALID_ARGUMENT', `the domain's smallest page ${minPage} is larger than PAGE_SIZE`);
    }
    if (newAlign !== this.#iovaAlignment) this.#checkIovaAlignment(newAlign);

    try {
      if (domain.apertureStart !== 0n) this.reserve(0n, domain.apertureStart - 1n, domain);
      if (domain.apertureEnd !== ULONG_MAX) this.reserve(domain.apertureEnd + 1n, ULONG_MAX, domain);
    } catch (error) {
      this.removeReserved(domain);
      throw error;
    }

    const first = this.#domains.length === 0;
    const done: IoptArea[] = [];
    try {
      for (const area of this.#areas) {
        if (first) area.pages.acquire(area.firstIndex, area.lastIndex);
        try {
          this.#mapArea(area, domain);
        } catch (error) {
          if (first) area.pages.release(area.firstIndex, area.lastIndex);
          throw error;
        }
        done.push(area);
      }
    } catch (error) {
      for (const area of done) {
        iommuUnmap(domain, area.start, area.length);
        if (first) area.pages.release(area.firstIndex, area.lastIndex);
      }
      this.removeReserved(domain);
      throw error;
    }

    for (const area of this.#areas) area.filled = true;
    this.#iovaAlignment = newAlign;
    this.#domains.push(domain);
  }

  /** iopt_table_remove_domain(): unmaps everything from it; the last domain to go unpins the pages. */
  removeDomain(domain: IommuDomain): void {
    const index = this.#domains.indexOf(domain);
    if (index < 0) throw new Error('io_pagetable: removing a domain that was never added');
    this.#domains.splice(index, 1);
    for (const area of this.#areas) {
      iommuUnmap(domain, area.start, area.length);
      if (this.#domains.length === 0) {
        area.pages.release(area.firstIndex, area.lastIndex);
        area.filled = false;
      }
    }
    this.removeReserved(domain);
    this.#recalculateAlignment();
  }

  // ------------------------------------------------------------ alignment and huge pages

  #checkIovaAlignment(newAlign: bigint): void {
    const mask = newAlign - 1n;
    for (const area of this.#areas) {
      if ((area.start & mask) || (area.length & mask) || (area.pageOffset & mask)) {
        throw new SimError('ADDRESS_IN_USE', `area at 0x${area.start.toString(16)} does not meet alignment ${newAlign}`);
      }
    }
  }

  /** iopt_calculate_iova_alignment(): only a growing alignment has to be checked against the areas. */
  #recalculateAlignment(): void {
    let align = this.#disableLargePages ? PAGE_SIZE : 1n;
    for (const domain of this.#domains) {
      const minPage = lowestBit(domain.pgsizeBitmap);
      if (minPage > align) align = minPage;
    }
    for (const need of this.#accessAlignments.values()) if (need > align) align = need;
    if (align > this.#iovaAlignment) this.#checkIovaAlignment(align);
    this.#iovaAlignment = align;
  }

  /** iopt_disable_large_pages(): refused once a domain may already hold huge mappings. */
  disableLargePages(): void {
    if (this.#disableLargePages) return;
    if (this.#domains.length !== 0 && this.#areas.length !== 0) {
      throw new SimError('INVALID_ARGUMENT', 'huge pages cannot be disabled while domains hold mappings');
    }
    this.#disableLargePages = true;
    try {
      this.#recalculateAlignment();
    } catch (error) {
      this.#disableLargePages = false;
      throw error;
    }
  }

  enableLargePages(): void {
    this.#disableLargePages = false;
    this.#recalculateAlignment();
  }

  // ------------------------------------------------------------ in-kernel accesses

  /** iopt_add_access(): an access raises the alignment to what it needs; EADDRINUSE if existing areas do not meet it. */
  addAccess(access: IoptAccessClient, alignment: bigint): void {
    this.#accessAlignments.set(access, alignment);
    try {
      this.#recalculateAlignment();
    } catch (error) {
      this.#accessAlignments.delete(access);
      throw error;
    }
  }

  removeAccess(access: IoptAccessClient): void {
    this.#accessAlignments.delete(access);
    this.#recalculateAlignment();
  }

  /**
   * The areas that cover [iova, last] without a hole, each with the part of
   * it inside the range (iopt_for_each_contig_area); null when the range has
   * a hole.
   */
  #contig(iova: bigint, last: bigint): { area: IoptArea; start: bigint; last: bigint }[] | null {
    const out = this.contiguousAreas(iova, last);
    return out.length > 0 && out[out.length - 1]!.last === last ? out : null;
  }

  /**
   * The pinning half of iommufd_access_pin_pages(): every area over
   * [iova, last] gives its pages, all or nothing. Each area must start the
   * range on a page boundary and, unless it is the last, end it on one
   * (EINVAL, as for an area an unmap is taking away); it must allow the
   * access (EPERM). A hole anywhere is ENOENT. Returns the frames in IOVA
   * order, one per page.
   */
  accessPin(iova: bigint, last: bigint, write: boolean): Frame[] {
    const walk = this.contiguousAreas(iova, last);
    const done: { area: IoptArea; first: number; last: number }[] = [];
    const frames: Frame[] = [];
    try {
      for (const part of walk) {
        const { area } = part;
        const endsRange = part.last === last;
        if (area.preventAccess || area.startByteAt(part.start) % PAGE_SIZE !== 0n
          || (!endsRange && area.startByteAt(area.last) % PAGE_SIZE !== PAGE_SIZE - 1n)) {
          throw new SimError('INVALID_ARGUMENT', `the access at 0x${part.start.toString(16)} is not page aligned or the area is going away`);
        }
        if (!(area.iommuProt & (write ? IOMMU_WRITE : IOMMU_READ))) {
          throw new SimError('NOT_PERMITTED', `the area at 0x${area.start.toString(16)} does not allow a ${write ? 'write' : 'read'}`);
        }
        const first = Number(area.startByteAt(part.start) / PAGE_SIZE);
        const lastIndex = Number(area.startByteAt(part.last) / PAGE_SIZE);
        frames.push(...area.pages.addAccess(first, lastIndex, write));
        area.numAccesses++;
        done.push({ area, first, last: lastIndex });
      }
      if (walk.length === 0 || walk[walk.length - 1]!.last !== last) {
        throw new SimError('NOT_FOUND', `IOVA range up to 0x${last.toString(16)} is not mapped end to end`);
      }
    } catch (error) {
      for (const d of done) {
        d.area.pages.removeAccess(d.first, d.last);
        d.area.numAccesses--;
      }
      throw error;
    }
    return frames;
  }

  /** The unpinning half of iommufd_access_unpin_pages(): the range must be one accessPin took (a driver bug otherwise). */
  accessUnpin(iova: bigint, last: bigint): void {
    const walk = this.#contig(iova, last);
    if (!walk) throw new Error(`io_pagetable: unpin of [0x${iova.toString(16)}, 0x${last.toString(16)}], which is not mapped`);
    for (const part of walk) {
      part.area.pages.removeAccess(Number(part.area.startByteAt(part.start) / PAGE_SIZE), Number(part.area.startByteAt(part.last) / PAGE_SIZE));
      part.area.numAccesses--;
    }
  }

  /**
   * The copy of iommufd_access_rw(): area by area, each must not be going
   * away (EINVAL) and must allow the access (EPERM); bytes already copied
   * stay copied when a later area refuses or a hole (ENOENT) ends the range.
   */
  accessRw(iova: bigint, data: Uint8Array, write: boolean): void {
    const last = iova + BigInt(data.length) - 1n;
    let done = 0;
    const walk = this.contiguousAreas(iova, last);
    for (const part of walk) {
      const { area } = part;
      if (area.preventAccess) throw new SimError('INVALID_ARGUMENT', `the area at 0x${area.start.toString(16)} is going away`);
      if (!(area.iommuProt & (write ? IOMMU_WRITE : IOMMU_READ))) {
        throw new SimError('NOT_PERMITTED', `the area at 0x${area.start.toString(16)} does not allow a ${write ? 'write' : 'read'}`);
      }
      const count = Number(part.last - part.start + 1n);
      area.pages.rw(area.startByteAt(part.start), data.subarray(done, done + count), write);
      done += count;
    }
    if (walk.length === 0 || walk[walk.length - 1]!.last !== last) {
      throw new SimError('NOT_FOUND', `IOVA range up to 0x${last.toString(16)} is not mapped end to end`);
    }
  }

  // ------------------------------------------------------------ VFIO type1 hole punching

  /**
   * iopt_cut_iova(): splits the areas holding each IOVA so that IOVA ends an
   * area. Stops at the first failure, keeping the cuts already made.
   */
  cutIova(iovas: readonly bigint[]): void {
    for (const iova of iovas) {
      const area = this.#areas.find((a) => a.start <= iova && iova <= a.last);
      if (area) this.#splitArea(area, iova);
    }
  }

  /** iopt_area_split(): both halves share the pages; refused where a domain may have used a huge page. */
  #splitArea(area: IoptArea, iova: bigint): void {
    if (iova === area.start || iova === area.last) return;
    if (area.preventAccess) throw new SimError('BUSY', `area at 0x${area.start.toString(16)} is being unmapped`);
    const newStart = iova + 1n;
    const mask = this.#iovaAlignment - 1n;
    if ((newStart & mask) || (area.startByteAt(newStart) & mask)) {
      throw new SimError('INVALID_ARGUMENT', `cannot split at 0x${iova.toString(16)}: not aligned to ${this.#iovaAlignment}`);
    }
    // The pages' access ranges could not be told apart between the halves.
    if (area.numAccesses > 0) throw new SimError('INVALID_ARGUMENT', 'cannot split an area in-kernel accesses hold pages of');
    if (area.filled && !this.#disableLargePages) {
      throw new SimError('INVALID_ARGUMENT', 'cannot split an area a domain may have mapped with huge pages');
    }
    const lhs = new IoptArea(area.start, iova, area.pages, area.startByte, area.iommuProt);
    const rhs = new IoptArea(newStart, area.last, area.pages, area.startByteAt(newStart), area.iommuProt);
    if (area.filled) {
      lhs.filled = rhs.filled = true;
      area.pages.acquire(lhs.firstIndex, lhs.lastIndex);
      area.pages.acquire(rhs.firstIndex, rhs.lastIndex);
      area.pages.release(area.firstIndex, area.lastIndex);
    }
    area.pages.get();
    this.#areas.splice(this.#areas.indexOf(area), 1, lhs, rhs);
  }

  // ------------------------------------------------------------ dirty tracking

  /**
   * iopt_set_dirty_tracking(): enabling first clears every area's dirty
   * bits (with no bitmap to fill) so tracking starts from a clean snapshot,
   * then flushes the IOTLB so the next write marks its page again.
   */
  setDirtyTracking(domain: IommuDomain, enable: boolean): void {
    const ops = domain.dirtyOps;
    if (!ops) throw new SimError('NOT_SUPPORTED', 'the domain was not allocated with dirty tracking');
    if (enable && this.#areas.length !== 0) {
      for (const area of this.#areas) ops.readAndClearDirty(area.start, area.length, false, null);
      domain.iotlbSync?.({ start: this.#areas[0]!.start, end: this.#areas[this.#areas.length - 1]!.last });
    }
    ops.setDirtyTracking(enable);
  }

  /**
   * The walk of iommu_read_and_clear_dirty(): the areas that continue from
   * `iova` without a hole, up to `last`. The kernel stops at the first hole
   * and, because iova_bitmap_for_each()'s result is not looked at, still
   * reports success.
   */
  contiguousAreas(iova: bigint, last: bigint): { area: IoptArea; start: bigint; last: bigint }[] {
    const out: { area: IoptArea; start: bigint; last: bigint }[] = [];
    let cursor = iova;
    for (;;) {
      const area = this.#areas.find((a) => a.start <= cursor && cursor <= a.last);
      if (!area) return out;
      const end: bigint = last < area.last ? last : area.last;
      out.push({ area, start: cursor, last: end });
      if (end === last) return out;
      cursor = end + 1n;
    }
  }

  // ------------------------------------------------------------ filling

  /** iopt_area_fill_domains(): a new area goes into every domain; with at least one domain its pages are pinned. */
  #fillArea(area: IoptArea): void {
    if (this.#domains.length === 0) return;
    area.pages.acquire(area.firstIndex, area.lastIndex);
    const mapped: IommuDomain[] = [];
    try {
      for (const domain of this.#domains) {
        this.#mapArea(area, domain);
        mapped.push(domain);
      }
    } catch (error) {
      for (const domain of mapped) iommuUnmap(domain, area.start, area.length);
      area.pages.release(area.firstIndex, area.lastIndex);
      throw error;
    }
    area.filled = true;
  }

  #unfillArea(area: IoptArea): void {
    if (!area.filled) return;
    for (const domain of this.#domains) iommuUnmap(domain, area.start, area.length);
    area.pages.release(area.firstIndex, area.lastIndex);
    area.filled = false;
  }

  /**
   * batch_iommu_map(): physically contiguous runs go to the domain in one
   * map call so the driver can use its large page sizes; with large pages
   * disabled every CPU page is mapped on its own (batch_iommu_map_small()).
   * A failing map is undone before the error propagates.
   */
  #mapArea(area: IoptArea, domain: IommuDomain): void {
    const runs: { iova: bigint; pa: bigint; size: bigint }[] = [];
    let iova = area.start;
    while (iova <= area.last) {
      const byte = area.startByteAt(iova);
      const offset = byte % PAGE_SIZE;
      const remaining = area.last - iova + 1n;
      const chunk = PAGE_SIZE - offset < remaining ? PAGE_SIZE - offset : remaining;
      const pa = area.pages.pa(Number(byte / PAGE_SIZE)) + offset;
      const prev = runs[runs.length - 1];
      if (prev && !this.#disableLargePages && prev.iova + prev.size === iova && prev.pa + prev.size === pa) {
        prev.size += chunk;
      } else {
        runs.push({ iova, pa, size: chunk });
      }
      iova += chunk;
    }
    let mapped = 0n;
    try {
      for (const run of runs) {
        iommuMap(domain, run.iova, run.pa, run.size, area.iommuProt);
        mapped += run.size;
      }
    } catch (error) {
      if (mapped) iommuUnmap(domain, area.start, mapped);
      throw error;
    }
  }
}
