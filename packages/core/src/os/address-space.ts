import { SimError } from '../errors/index.js';
import type { UserMemory } from '../uapi/user-memory.js';
import { PROT_EXEC, PROT_READ, PROT_WRITE } from './constants.js';
import type { OpenFile } from './file.js';
import { MemoryObject } from './memory-object.js';
import {
  MMAP_BASE,
  MMAP_MIN_ADDR,
  PAGE,
  PAGE_SIZE,
  TASK_SIZE,
  TASK_UNMAPPED_BASE,
  pageAlignDown,
  pageAlignUp,
  pageOffset,
} from './page.js';
import type { Frame, PhysicalMemory } from './phys-mem.js';

/**
 * Device memory behind a mapping (a BAR mmap). Offsets are relative to the
 * start of the backing. Either method may throw SimError('BAD_ADDRESS') to
 * model SIGBUS, which is how vfio-pci answers an access to a BAR whose
 * mappings it revoked (memory decode off, reset in progress).
 */
export interface MmioBacking {
  read(offset: bigint, length: number): Uint8Array;
  write(offset: bigint, bytes: Uint8Array): void;
}

export type VmaBacking =
  | { readonly kind: 'ram'; readonly object: MemoryObject }
  | { readonly kind: 'mmio'; readonly mmio: MmioBacking };

/** One mapping of a process (struct vm_area_struct). Immutable: munmap replaces it with pieces. */
export interface Vma {
  readonly start: bigint;
  readonly length: bigint;
  readonly end: bigint;
  /** PROT_* bits. */
  readonly prot: number;
  readonly backing: VmaBacking;
  /** Byte offset into the backing that `start` shows (vm_pgoff << PAGE_SHIFT). */
  readonly offset: bigint;
  /** MAP_SHARED; a private mapping of a file copies pages on write. */
  readonly shared: boolean;
  /** The mapped file (vm_file), which the mapping keeps a reference on. */
  readonly file: OpenFile | null;
}

export interface VmaSpec {
  readonly start: bigint;
  readonly length: bigint;
  readonly prot: number;
  readonly backing: VmaBacking;
  readonly offset: bigint;
  readonly shared: boolean;
  readonly file?: OpenFile | null;
}

/** How an access uses a page: CPU load or store, or GUP with or without FOLL_WRITE. */
type Access = 'read' | 'write' | 'pinRead' | 'pinWrite';

interface Segment {
  readonly vma: Mapping;
  readonly from: bigint;
  readonly to: bigint;
}

class Mapping implements Vma {
  readonly start: bigint;
  readonly length: bigint;
  readonly end: bigint;
  readonly prot: number;
  readonly backing: VmaBacking;
  readonly offset: bigint;
  readonly shared: boolean;
  readonly file: OpenFile | null;
  /**
   * The private copies of a MAP_PRIVATE file mapping, indexed like the
   * file's pages (the anon_vma of a private file mapping).
   */
  readonly cow: MemoryObject | null;

  /** Takes its own references on everything it names. */
  constructor(spec: VmaSpec, cow: MemoryObject | null) {
    this.start = spec.start;
    this.length = spec.length;
    this.end = spec.start + spec.length;
    this.prot = spec.prot;
    this.backing = spec.backing;
    this.offset = spec.offset;
    this.shared = spec.shared;
    this.file = spec.file ?? null;
    this.cow = cow;
    if (this.backing.kind === 'ram') this.backing.object.get();
    cow?.get();
    this.file?.get();
  }

  /** The part [from, to) of this mapping, as a new mapping with its own references. */
  slice(from: bigint, to: bigint): Mapping {
    const spec: VmaSpec = {
      start: from,
      length: to - from,
      prot: this.prot,
      backing: this.backing,
      offset: this.offset + (from - this.start),
      shared: this.shared,
      file: this.file,
    };
    return new Mapping(spec, this.cow);
  }

  /** Page index in the backing object of a virtual address inside the mapping. */
  index(va: bigint): bigint {
    return (this.offset + (va - this.start)) / PAGE;
  }

  /**
   * Drops the pages of [from, to) that only this mapping could reach
   * (private anonymous pages and private copies), then the references.
   */
  close(from: bigint, to: bigint): void {
    const first = this.index(from);
    const end = this.index(to - 1n) + 1n;
    if (this.backing.kind === 'ram' && this.backing.object.kind === 'anon') this.backing.object.discard(first, end);
    this.cow?.discard(first, end);
    if (this.cow) {
      this.cow.put();
      if (this.cow.freed && this.backing.kind === 'ram') this.backing.object.removeShadow(this.cow);
    }
    if (this.backing.kind === 'ram') this.backing.object.put();
    this.file?.put();
  }
}

/**
 * A process's address space (the mm): its mappings, sorted by address, and
 * the kernel's accessors for them. It is the UserMemory that ioctl handlers
 * copy arguments through, and the place GUP pins pages for DMA.
 *
 * Permissions follow x86: a CPU read needs any access at all (a write-only
 * page is readable, PROT_NONE is not), a CPU write needs PROT_WRITE; GUP
 * needs PROT_READ for a read pin and PROT_WRITE for a write pin, and never
 * pins device memory.
 */
export class AddressSpace implements UserMemory {
  readonly physMem: PhysicalMemory;
  #vmas: readonly Mapping[] = [];
  #users = 1;

  constructor(physMem: PhysicalMemory) {
    this.physMem = physMem;
  }

  /** The mappings, lowest address first; a snapshot that later changes do not touch. */
  get vmas(): readonly Vma[] {
    return this.#vmas;
  }

  /** mm_users: the owning process plus kernel holders (mmget). */
  get users(): number {
    return this.#users;
  }

  /** True once the last user is gone and the mappings were torn down (exit_mmap). */
  get released(): boolean {
    return this.#users === 0;
  }

  /** mmget_not_zero: a kernel user keeps the mappings alive; false if the mm already died. */
  mmget(): boolean {
    if (this.#users === 0) return false;
    this.#users++;
    return true;
  }

  /** mmput: the last user tears every mapping down (pins survive with their pinners). */
  mmput(): void {
    if (this.#users === 0) throw new Error('mmput on a dead address space');
    if (--this.#users === 0) this.#unmap(0n, TASK_SIZE);
  }

  /** The mapping containing va. */
  findVma(va: bigint): Vma | undefined {
    const vma = this.#vmas[this.#firstEndingAfter(va)];
    return vma && vma.start <= va ? vma : undefined;
  }

  /** find_vma_intersection: whether any mapping overlaps [start, start + length). */
  intersects(start: bigint, length: bigint): boolean {
    const vma = this.#vmas[this.#firstEndingAfter(start)];
    return vma !== undefined && vma.start < start + length;
  }

  /**
   * get_unmapped_area for a page-aligned length: `addr` itself when fixed
   * (checked, not searched), else the hint if it is free, else the highest
   * free range below mmap_base, else the lowest above TASK_UNMAPPED_BASE.
   */
  getUnmappedArea(length: bigint, addr: bigint, fixed: boolean): bigint {
    if (length > TASK_SIZE) throw new SimError('OUT_OF_MEMORY', `length 0x${length.toString(16)} exceeds the address space`);
    let start = addr;
    if (!fixed) {
      const hint = addr !== 0n && addr < MMAP_MIN_ADDR ? MMAP_MIN_ADDR : pageAlignDown(addr);
      if (hint !== 0n && hint <= TASK_SIZE - length && !this.intersects(hint, length)) start = hint;
      else {
        const found = this.#topDown(length) ?? this.#bottomUp(length);
        if (found === undefined) throw new SimError('OUT_OF_MEMORY', `no free range of 0x${length.toString(16)} bytes`);
        start = found;
      }
    }
    if (start > TASK_SIZE - length) throw new SimError('OUT_OF_MEMORY', `[0x${start.toString(16)}, +0x${length.toString(16)}) ends above TASK_SIZE`);
    if (pageOffset(start) !== 0n) throw new SimError('INVALID_ARGUMENT', `address 0x${start.toString(16)} is not page aligned`);
    if (start < MMAP_MIN_ADDR) throw new SimError('NOT_PERMITTED', `address 0x${start.toString(16)} is below mmap_min_addr`);
    return start;
  }

  /**
   * Installs a mapping over a free, page-aligned range; the mapping takes
   * its own references on the backing object and the file. A MAP_PRIVATE
   * mapping of shared memory gets a private copy-on-write layer.
   */
  map(spec: VmaSpec): Vma {
    if (this.released) throw new Error('map into a released address space');
    if (pageOffset(spec.start) !== 0n || pageOffset(spec.length) !== 0n || spec.length === 0n || pageOffset(spec.offset) !== 0n) {
      throw new Error(`map: unaligned range 0x${spec.start.toString(16)}+0x${spec.length.toString(16)} @0x${spec.offset.toString(16)}`);
    }
    if (this.intersects(spec.start, spec.length)) {
      throw new SimError('MAPPING_EXISTS', `[0x${spec.start.toString(16)}, +0x${spec.length.toString(16)}) overlaps a mapping`);
    }
    let cow: MemoryObject | null = null;
    if (!spec.shared && spec.backing.kind === 'ram' && spec.backing.object.kind === 'shmem') {
      cow = new MemoryObject(this.physMem, 'anon', spec.offset + spec.length, 'private copies');
      spec.backing.object.addShadow(cow);
    }
    const vma = new Mapping(spec, cow);
    cow?.put();
    const at = this.#firstEndingAfter(vma.start);
    this.#vmas = [...this.#vmas.slice(0, at), vma, ...this.#vmas.slice(at)];
    return vma;
  }

  /**
   * munmap(2): removes every mapping of [start, start + length), splitting
   * the ones that straddle an edge. Unmapping a hole is not an error.
   */
  munmap(start: bigint, length: bigint): void {
    if (pageOffset(start) !== 0n || start > TASK_SIZE || length > TASK_SIZE - start) {
      throw new SimError('INVALID_ARGUMENT', `munmap range 0x${start.toString(16)}+0x${length.toString(16)} is unaligned or outside user space`);
    }
    const end = start + pageAlignUp(length);
    if (end === start) throw new SimError('INVALID_ARGUMENT', 'munmap of zero length');
    this.#unmap(start, end);
  }

  /** copy_from_user: every byte must be mapped and readable, else EFAULT. */
  copyFromUser(addr: bigint, length: number): Uint8Array {
    if (!Number.isInteger(length) || length < 0) throw new RangeError(`copyFromUser length ${length}`);
    // The range is checked before the buffer exists, so a length taken from
    // a user struct that runs off the mappings is EFAULT, not a host allocation.
    const segments = this.#span(addr, BigInt(length), 'read');
    const out = new Uint8Array(length);
    let done = 0;
    for (const { vma, from, to } of segments) {
      const count = Number(to - from);
      if (vma.backing.kind === 'mmio') {
        out.set(vma.backing.mmio.read(vma.offset + (from - vma.start), count), done);
      } else {
        for (let va = from; va < to; ) {
          const inPage = Number(pageOffset(va));
          const chunk = Math.min(Number(to - va), PAGE_SIZE - inPage);
          const frame = this.#frameFor(vma, vma.index(va), 'read');
          if (frame) out.set(frame.data.subarray(inPage, inPage + chunk), done + Number(va - from));
          va += BigInt(chunk);
        }
      }
      done += count;
    }
    return out;
  }

  /**
   * copy_to_user: every byte must be mapped and writable, else EFAULT and
   * nothing is written. RAM pages are all faulted in before the first byte
   * lands; a device mapping that faults mid-copy (SIGBUS on a revoked BAR)
   * keeps the bytes already posted to it, as hardware would.
   */
  copyToUser(addr: bigint, bytes: Uint8Array): void {
    const segments = this.#span(addr, BigInt(bytes.length), 'write');
    const frames: Frame[] = [];
    for (const { vma, from, to } of segments) {
      if (vma.backing.kind !== 'ram') continue;
      for (let index = vma.index(from), last = vma.index(to - 1n); index <= last; index++) {
        frames.push(this.#frameFor(vma, index, 'write')!);
      }
    }
    let done = 0;
    let next = 0;
    for (const { vma, from, to } of segments) {
      const count = Number(to - from);
      if (vma.backing.kind === 'mmio') {
        vma.backing.mmio.write(vma.offset + (from - vma.start), bytes.subarray(done, done + count));
      } else {
        for (let va = from; va < to; ) {
          const inPage = Number(pageOffset(va));
          const chunk = Math.min(Number(to - va), PAGE_SIZE - inPage);
          const at = done + Number(va - from);
          frames[next++].data.set(bytes.subarray(at, at + chunk), inPage);
          va += BigInt(chunk);
        }
      }
      done += count;
    }
  }

  /**
   * pin_user_pages(FOLL_LONGTERM): faults in the `npages` pages from the
   * one holding `va` and pins each frame. A write pin breaks copy-on-write
   * first; a read pin of a never-touched anonymous page allocates it rather
   * than pinning the shared zero page. If any page is unmapped, lacks the
   * permission, is device memory or lies past the end of its file, it fails
   * with EFAULT and pins nothing.
   */
  pinUserPages(va: bigint, npages: number, write: boolean): Frame[] {
    if (!Number.isInteger(npages) || npages < 0) throw new RangeError(`pinUserPages npages ${npages}`);
    if (npages === 0) return [];
    const start = pageAlignDown(va);
    const segments = this.#span(start, BigInt(npages) * PAGE, write ? 'pinWrite' : 'pinRead');
    const frames: Frame[] = [];
    for (const { vma, from, to } of segments) {
      for (let index = vma.index(from), last = vma.index(to - 1n); index <= last; index++) {
        frames.push(this.#frameFor(vma, index, write ? 'pinWrite' : 'pinRead')!);
      }
    }
    for (const frame of frames) frame.pin();
    return frames;
  }

  /** The frame mapped at va right now, without faulting anything in (follow_page). */
  lookupFrame(va: bigint): Frame | undefined {
    const vma = this.findVma(va) as Mapping | undefined;
    if (!vma || vma.backing.kind !== 'ram') return undefined;
    const index = vma.index(va);
    return vma.cow?.lookup(index) ?? vma.backing.object.lookup(index);
  }

  /** The physical address va maps to right now, if a frame is there. */
  translate(va: bigint): bigint | undefined {
    const frame = this.lookupFrame(va);
    return frame ? frame.pa + pageOffset(va) : undefined;
  }

  /**
   * The mappings covering [addr, addr + length), clipped, after checking
   * that every byte is mapped with the access needed and every RAM page
   * lies inside its object (a page past EOF of a shrunk file is a SIGBUS).
   */
  #span(addr: bigint, length: bigint, access: Access): Segment[] {
    if (length === 0n) return [];
    const end = addr + length;
    if (addr < 0n || end > TASK_SIZE) throw new SimError('BAD_ADDRESS', `[0x${addr.toString(16)}, +${length}) is outside user space`);
    const segments: Segment[] = [];
    let at = this.#firstEndingAfter(addr);
    for (let cursor = addr; cursor < end; at++) {
      const vma = this.#vmas[at];
      if (!vma || vma.start > cursor) throw new SimError('BAD_ADDRESS', `0x${cursor.toString(16)} is not mapped`);
      if (!permits(vma, access)) {
        throw new SimError('BAD_ADDRESS', `0x${cursor.toString(16)} is mapped without the access a ${access} needs`);
      }
      const to = end < vma.end ? end : vma.end;
      if (vma.backing.kind === 'ram' && vma.backing.object.kind === 'shmem' && vma.index(to - 1n) >= vma.backing.object.pageCount) {
        throw new SimError('BAD_ADDRESS', `0x${cursor.toString(16)}: mapping reaches past the end of its file (SIGBUS)`);
      }
      segments.push({ vma, from: cursor, to });
      cursor = to;
    }
    return segments;
  }

  /** The frame an access uses; undefined for a read that would see the zero page. */
  #frameFor(vma: Mapping, index: bigint, access: Access): Frame | undefined {
    if (vma.backing.kind !== 'ram') throw new Error('frameFor on device memory');
    const object = vma.backing.object;
    if (vma.cow) {
      const copy = vma.cow.lookup(index);
      if (copy) return copy;
      const page = object.fault(index);
      if (access !== 'write' && access !== 'pinWrite') return page;
      const own = vma.cow.fault(index);
      own.data.set(page.data);
      return own;
    }
    if (access === 'read' && object.kind === 'anon') return object.lookup(index);
    return object.fault(index);
  }

  #unmap(start: bigint, end: bigint): void {
    const kept: Mapping[] = [];
    const closed: Segment[] = [];
    for (const vma of this.#vmas) {
      if (vma.end <= start || vma.start >= end) {
        kept.push(vma);
        continue;
      }
      if (vma.start < start) kept.push(vma.slice(vma.start, start));
      if (vma.end > end) kept.push(vma.slice(end, vma.end));
      closed.push({ vma, from: vma.start > start ? vma.start : start, to: vma.end < end ? vma.end : end });
    }
    if (closed.length === 0) return;
    this.#vmas = kept;
    for (const { vma, from, to } of closed) vma.close(from, to);
  }

  /** Index of the first mapping whose end is above va (find_vma). */
  #firstEndingAfter(va: bigint): number {
    let low = 0;
    let high = this.#vmas.length;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if (this.#vmas[mid].end <= va) low = mid + 1;
      else high = mid;
    }
    return low;
  }

  #topDown(length: bigint): bigint | undefined {
    const vmas = this.#vmas;
    for (let i = vmas.length - 1; i >= -1; i--) {
      const bottom = i >= 0 && vmas[i].end > MMAP_MIN_ADDR ? vmas[i].end : MMAP_MIN_ADDR;
      const top = i + 1 < vmas.length && vmas[i + 1].start < MMAP_BASE ? vmas[i + 1].start : MMAP_BASE;
      if (top > bottom && top - bottom >= length) return top - length;
    }
    return undefined;
  }

  #bottomUp(length: bigint): bigint | undefined {
    let cursor = TASK_UNMAPPED_BASE;
    for (const vma of this.#vmas) {
      if (vma.end <= cursor) continue;
      if (vma.start > cursor && vma.start - cursor >= length) return cursor;
      cursor = vma.end;
    }
    return TASK_SIZE - cursor >= length ? cursor : undefined;
  }
}

function permits(vma: Vma, access: Access): boolean {
  switch (access) {
    case 'read':
      return (vma.prot & (PROT_READ | PROT_WRITE | PROT_EXEC)) !== 0;
    case 'write':
      return (vma.prot & PROT_WRITE) !== 0;
    case 'pinRead':
      return vma.backing.kind === 'ram' && (vma.prot & PROT_READ) !== 0;
    case 'pinWrite':
      return vma.backing.kind === 'ram' && (vma.prot & PROT_WRITE) !== 0;
  }
}
