import { SimError } from '../../errors/index.js';
import type { AddressSpace, OpenFile } from '../../os/index.js';
import {
  iommu_ioas_alloc,
  iommu_ioas_allow_iovas,
  iommu_ioas_change_process,
  iommu_ioas_copy,
  iommu_ioas_iova_ranges,
  iommu_ioas_map,
  iommu_ioas_map_file,
  iommu_ioas_unmap,
  iommu_iova_range,
  IOMMU_IOAS_MAP_FIXED_IOVA,
  IOMMU_IOAS_MAP_READABLE,
  IOMMU_IOAS_MAP_WRITEABLE,
  IOMMU_OPTION_OP_GET,
  IOMMU_OPTION_OP_SET,
  rejectUnknownFlags,
  respondIommufd,
  type StructIoctlCall,
} from '../../uapi/index.js';
import { IOMMU_READ, IOMMU_WRITE } from '../iommu-driver.js';
import type { HwptPaging } from './hw-pagetable.js';
import { intersects, type IovaRange } from './interval-spans.js';
import { IoPagetable, type PagesSlice } from './io-pagetable.js';
import { IoptPages } from './iopt-pages.js';
import type { IommufdUcmd } from './iommufd-ctx.js';
import { addNoOverflow, alignDown, PAGE_SIZE, SIZE_MAX, U64_MAX, ULONG_MAX } from './limits.js';
import { IommufdObject } from './object.js';
import { filePageSource, userPageSource } from './page-sources.js';

const MAP_FLAGS = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_READABLE;

/**
 * struct iommufd_ioas: an IOVA address space userspace fills with
 * IOMMU_IOAS_MAP, and the paging HWPTs whose domains mirror it.
 */
export class IommufdIoas extends IommufdObject {
  readonly type = 'ioas' as const;
  readonly iopt = new IoPagetable();
  /** iommufd_ioas::hwpt_list: the paging HWPTs whose domain this IOAS fills, in creation order. */
  readonly hwptList: HwptPaging[] = [];

  destroy(): void {
    // The kernel WARNs if this fails: no access can be attached to an IOAS being destroyed.
    this.iopt.unmapAll();
  }
}

/** conv_iommu_prot(). IOMMU_CACHE is implied: iommufd only binds devices whose IOMMU keeps DMA coherent. */
export function convIommuProt(flags: number): number {
  return ((flags & IOMMU_IOAS_MAP_WRITEABLE) ? IOMMU_WRITE : 0) | ((flags & IOMMU_IOAS_MAP_READABLE) ? IOMMU_READ : 0);
}

/** The argument checks IOAS_MAP, IOAS_MAP_FILE and IOAS_COPY share, in the kernel's order. */
function checkMapArgs(flags: number, sizes: readonly bigint[]): void {
  rejectUnknownFlags(flags, MAP_FLAGS, 'IOMMU_IOAS map flags', 'UNSUPPORTED_FLAGS');
  if (sizes.some((value) => value >= ULONG_MAX)) {
    throw new SimError('OVERFLOW', 'iova, length or start does not fit an unsigned long');
  }
  if (!(flags & (IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_READABLE))) {
    throw new SimError('INVALID_ARGUMENT', 'a mapping must be readable, writeable or both');
  }
}

/** iopt_alloc_pages(): the length limits every kind of pages shares. */
function checkPagesLength(length: bigint): void {
  if (length === 0n || length > SIZE_MAX - PAGE_SIZE) throw new SimError('INVALID_ARGUMENT', `length ${length} is zero or too large`);
}

function pageCount(startByte: bigint, length: bigint): number {
  return Number((startByte + length + PAGE_SIZE - 1n) / PAGE_SIZE);
}

/**
 * iopt_map_user_pages(): user memory from `uptr`, pinned lazily from the
 * calling process's address space. Returns the IOVA.
 */
export function mapUserPages(ioas: IommufdIoas, mm: AddressSpace, uptr: bigint, length: bigint, prot: number, fixedIova: bigint | null): bigint {
  if (addNoOverflow(uptr, length) === null) throw new SimError('OVERFLOW', 'user_va + length wraps');
  checkPagesLength(length);
  const base = alignDown(uptr, PAGE_SIZE);
  const startByte = uptr - base;
  const pages = new IoptPages(userPageSource(mm, base), pageCount(startByte, length), (prot & IOMMU_WRITE) !== 0);
  try {
    return ioas.iopt.mapPages([{ pages, startByte, length }], length, fixedIova, prot);
  } finally {
    pages.put();
  }
}

/** iopt_map_file_pages(): file bytes from `start`; the file is only checked when its pages are pinned. */
function mapFilePages(ioas: IommufdIoas, file: OpenFile, start: bigint, length: bigint, prot: number, fixedIova: bigint | null): bigint {
  const base = alignDown(start, PAGE_SIZE);
  const startByte = start - base;
  checkPagesLength(length);
  const pages = new IoptPages(filePageSource(file, base), pageCount(startByte, length), (prot & IOMMU_WRITE) !== 0);
  try {
    return ioas.iopt.mapPages([{ pages, startByte, length }], length, fixedIova, prot);
  } finally {
    pages.put();
  }
}

export function ioasAlloc(u: IommufdUcmd, cmd: iommu_ioas_alloc, call: StructIoctlCall): number {
  if (cmd.flags) throw new SimError('UNSUPPORTED_FLAGS', `IOMMU_IOAS_ALLOC flags 0x${cmd.flags.toString(16)} are not supported`);
  const ioas = u.ictx.objects.alloc(new IommufdIoas());
  cmd.out_ioas_id = ioas.id;
  try {
    respondIommufd(call.mem, call.argp, iommu_ioas_alloc, cmd, call.userSize);
  } catch (error) {
    u.ictx.objects.abortAndDestroy(ioas);
    throw error;
  }
  u.ictx.objects.finalize(ioas);
  return 0;
}

/**
 * IOMMU_IOAS_IOVA_RANGES: the holes between reserved ranges. The count is
 * always complete and written back; a short array gets the first ranges
 * and EMSGSIZE, after the write-back.
 */
export function ioasIovaRanges(u: IommufdUcmd, cmd: iommu_ioas_iova_ranges, call: StructIoctlCall): number {
  if (cmd.__reserved) throw new SimError('RESERVED_NONZERO', 'IOMMU_IOAS_IOVA_RANGES __reserved is not zero');
  const ioas = u.ictx.objects.get<IommufdIoas>(cmd.ioas_id, 'ioas');
  const max = cmd.num_iovas;
  const ranges = ioas.iopt.usableRanges();
  ranges.slice(0, max).forEach((range, i) => {
    call.mem.copyToUser(cmd.allowed_iovas + BigInt(i * iommu_iova_range.size), iommu_iova_range.encodeNew(range));
  });
  cmd.num_iovas = ranges.length;
  cmd.out_iova_alignment = ioas.iopt.iovaAlignment;
  respondIommufd(call.mem, call.argp, iommu_ioas_iova_ranges, cmd, call.userSize);
  if (ranges.length > max) {
    throw new SimError('IOVA_RANGES_TRUNCATED', `${ranges.length} ranges do not fit an array of ${max}`);
  }
  return 0;
}

/**
 * IOMMU_IOAS_ALLOW_IOVAS: replaces the allowed list as a whole. Each range
 * must be non-empty (start < last) and must not overlap an earlier one
 * (EINVAL); none may cross a reserved range (EADDRINUSE).
 */
export function ioasAllowIovas(u: IommufdUcmd, cmd: iommu_ioas_allow_iovas, call: StructIoctlCall): number {
  if (cmd.__reserved) throw new SimError('RESERVED_NONZERO', 'IOMMU_IOAS_ALLOW_IOVAS __reserved is not zero');
  const ioas = u.ictx.objects.get<IommufdIoas>(cmd.ioas_id, 'ioas');
  const ranges: IovaRange[] = [];
  for (let i = 0; i < cmd.num_iovas; i++) {
    const bytes = call.mem.copyFromUser(cmd.allowed_iovas + BigInt(i * iommu_iova_range.size), iommu_iova_range.size);
    const range = iommu_iova_range.decode(bytes);
    if (range.start >= range.last) {
      throw new SimError('INVALID_ARGUMENT', `allowed range ${i} [0x${range.start.toString(16)}, 0x${range.last.toString(16)}] is empty or reversed`);
    }
    if (ranges.some((r) => intersects(r, range.start, range.last))) {
      throw new SimError('INVALID_ARGUMENT', `allowed range ${i} overlaps an earlier one`);
    }
    ranges.push(range);
  }
  ioas.iopt.setAllowIova(ranges);
  return 0;
}

/**
 * IOMMU_IOAS_MAP. The IOVA is written back even when the kernel chose it;
 * a write-back fault leaves the mapping in place, as the kernel does.
 */
export function ioasMap(u: IommufdUcmd, cmd: iommu_ioas_map, call: StructIoctlCall): number {
  rejectUnknownFlags(cmd.flags, MAP_FLAGS, 'IOMMU_IOAS_MAP flags', 'UNSUPPORTED_FLAGS');
  if (cmd.__reserved) throw new SimError('RESERVED_NONZERO', 'IOMMU_IOAS_MAP __reserved is not zero');
  checkMapArgs(cmd.flags, [cmd.iova, cmd.length]);
  const ioas = u.ictx.objects.get<IommufdIoas>(cmd.ioas_id, 'ioas');
  const fixed = cmd.flags & IOMMU_IOAS_MAP_FIXED_IOVA ? cmd.iova : null;
  cmd.iova = mapUserPages(ioas, u.proc.mm, cmd.user_va, cmd.length, convIommuProt(cmd.flags), fixed);
  respondIommufd(call.mem, call.argp, iommu_ioas_map, cmd, call.userSize);
  return 0;
}

/** IOMMU_IOAS_MAP_FILE: like IOAS_MAP, from a memfd at byte `start`. */
export function ioasMapFile(u: IommufdUcmd, cmd: iommu_ioas_map_file, call: StructIoctlCall): number {
  checkMapArgs(cmd.flags, [cmd.iova, cmd.length]);
  const ioas = u.ictx.objects.get<IommufdIoas>(cmd.ioas_id, 'ioas');
  if (cmd.length === 0n) throw new SimError('INVALID_ARGUMENT', 'IOMMU_IOAS_MAP_FILE of zero bytes');
  if (addNoOverflow(cmd.start, cmd.length - 1n) === null) throw new SimError('OVERFLOW', 'start + length wraps');
  const file = u.proc.fdget(cmd.fd);
  const fixed = cmd.flags & IOMMU_IOAS_MAP_FIXED_IOVA ? cmd.iova : null;
  cmd.iova = mapFilePages(ioas, file, cmd.start, cmd.length, convIommuProt(cmd.flags), fixed);
  respondIommufd(call.mem, call.argp, iommu_ioas_map_file, cmd, call.userSize);
  return 0;
}

/**
 * IOMMU_IOAS_COPY: maps the pages already under [src_iova, +length) of one
 * IOAS into another (or the same) without pinning them again. The source
 * range must be fully mapped (ENOENT); a writeable copy of a read-only
 * mapping is EPERM.
 */
export function ioasCopy(u: IommufdUcmd, cmd: iommu_ioas_copy, call: StructIoctlCall): number {
  checkMapArgs(cmd.flags, [cmd.length, cmd.src_iova, cmd.dst_iova]);
  const src = u.ictx.objects.get<IommufdIoas>(cmd.src_ioas_id, 'ioas');
  const slices: PagesSlice[] = src.iopt.getPages(cmd.src_iova, cmd.length);
  const dst = u.ictx.objects.get<IommufdIoas>(cmd.dst_ioas_id, 'ioas');
  const fixed = cmd.flags & IOMMU_IOAS_MAP_FIXED_IOVA ? cmd.dst_iova : null;
  cmd.dst_iova = dst.iopt.mapPages(slices, cmd.length, fixed, convIommuProt(cmd.flags));
  respondIommufd(call.mem, call.argp, iommu_ioas_copy, cmd, call.userSize);
  return 0;
}

/**
 * IOMMU_IOAS_UNMAP. iova 0 with length U64_MAX empties the IOAS (and
 * succeeds on an empty one); any other range must cover whole areas and
 * hit at least one (ENOENT). `length` comes back as the bytes unmapped.
 * An area that sticks out of the range ends the walk with ENOENT, and the
 * areas removed before it stay removed.
 */
export function ioasUnmap(u: IommufdUcmd, cmd: iommu_ioas_unmap, call: StructIoctlCall): number {
  const ioas = u.ictx.objects.get<IommufdIoas>(cmd.ioas_id, 'ioas');
  let unmapped: bigint;
  if (cmd.iova === 0n && cmd.length === U64_MAX) {
    const result = ioas.iopt.unmapAll();
    if (result.error) throw result.error;
    unmapped = result.unmapped;
  } else {
    if (cmd.iova >= ULONG_MAX || cmd.length >= ULONG_MAX) throw new SimError('OVERFLOW', 'iova or length does not fit an unsigned long');
    const result = ioas.iopt.unmapIova(cmd.iova, cmd.length);
    if (result.error) throw result.error;
    if (result.unmapped === 0n) {
      throw new SimError('NOT_FOUND', `nothing is mapped in [0x${cmd.iova.toString(16)}, +0x${cmd.length.toString(16)})`);
    }
    unmapped = result.unmapped;
  }
  cmd.length = unmapped;
  respondIommufd(call.mem, call.argp, iommu_ioas_unmap, cmd, call.userSize);
  return 0;
}

/**
 * IOMMU_IOAS_CHANGE_PROCESS: moves the pin accounting of every mapping to
 * the calling process. Only file mappings can move (user VA mappings are
 * tied to the address space they came from), so one user mapping in any
 * IOAS refuses the whole call. The model keeps no per-process pin
 * accounting, so success changes nothing observable.
 */
export function ioasChangeProcess(u: IommufdUcmd, cmd: iommu_ioas_change_process): number {
  if (cmd.__reserved) throw new SimError('RESERVED_NONZERO', 'IOMMU_IOAS_CHANGE_PROCESS __reserved is not zero');
  for (const object of u.ictx.objects.live()) {
    if (!(object instanceof IommufdIoas)) continue;
    if (object.iopt.areas.some((area) => area.pages.source.kind !== 'file')) {
      throw new SimError('INVALID_ARGUMENT', `IOAS ${object.id} maps user memory, which cannot change process`);
    }
  }
  return 0;
}

/** IOMMU_OPTION_HUGE_PAGES on one IOAS: 1 lets domains use huge IOPTEs, 0 forbids them. */
export function ioasOptionHugePages(ioas: IommufdIoas, op: number, val64: bigint): bigint {
  if (op === IOMMU_OPTION_OP_GET) return ioas.iopt.largePagesDisabled ? 0n : 1n;
  if (op === IOMMU_OPTION_OP_SET) {
    if (val64 === 0n) ioas.iopt.disableLargePages();
    else if (val64 === 1n) ioas.iopt.enableLargePages();
    else throw new SimError('INVALID_ARGUMENT', `IOMMU_OPTION_HUGE_PAGES value ${val64} is neither 0 nor 1`);
    return val64;
  }
  throw new SimError('NOT_SUPPORTED', `IOMMU_OPTION op ${op} is neither GET nor SET`);
}
