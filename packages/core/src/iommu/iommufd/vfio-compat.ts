import { SimError } from '../../errors/index.js';
import {
  iommu_vfio_ioas,
  IOMMU_VFIO_IOAS_CLEAR,
  IOMMU_VFIO_IOAS_GET,
  IOMMU_VFIO_IOAS_SET,
  readVfioArgsz,
  respondIommufd,
  u32,
  vfio_info_cap_header,
  vfio_iommu_type1_dma_map,
  vfio_iommu_type1_dma_unmap,
  vfio_iommu_type1_info,
  vfio_iommu_type1_info_cap_iova_range,
  vfio_iommu_type1_info_dma_avail,
  vfio_iova_range,
  VFIO_API_VERSION,
  VFIO_CHECK_EXTENSION,
  VFIO_DMA_CC_IOMMU,
  VFIO_DMA_MAP_FLAG_READ,
  VFIO_DMA_MAP_FLAG_WRITE,
  VFIO_DMA_UNMAP_FLAG_ALL,
  VFIO_GET_API_VERSION,
  VFIO_IOMMU_GET_INFO,
  VFIO_IOMMU_INFO_CAPS,
  VFIO_IOMMU_INFO_PGSIZES,
  VFIO_IOMMU_MAP_DMA,
  VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE,
  VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL,
  VFIO_IOMMU_UNMAP_DMA,
  VFIO_NOIOMMU_IOMMU,
  VFIO_SET_IOMMU,
  VFIO_TYPE1_IOMMU,
  VFIO_TYPE1v2_IOMMU,
  VFIO_UNMAP_ALL,
  writeBack,
  type StructIoctlCall,
  type UserMemory,
} from '../../uapi/index.js';
import { IOMMU_READ, IOMMU_WRITE } from '../iommu-driver.js';
import { IommufdIoas, mapUserPages } from './ioas.js';
import type { IommufdCtx, IommufdUcmd } from './iommufd-ctx.js';
import { PAGE_SIZE, U32_MAX, ULONG_MAX } from './limits.js';

/*
 * vfio_compat.c: /dev/iommu answering the VFIO type1 container ioctls, so
 * a VMM written for a container runs on iommufd. The container's one IOMMU
 * space is the context's compat IOAS (ictx->vfio_ioas), created when the
 * first group joins or chosen with IOMMU_VFIO_IOAS. Where iommufd differs
 * from type1 it says so below.
 */

/** get_compat_ioas(): ENODEV when no compat IOAS is set (or it was destroyed). */
export function getCompatIoas(ictx: IommufdCtx): IommufdIoas {
  const ioas = ictx.vfioIoas;
  if (!ioas) throw new SimError('NO_DEVICE', 'the iommufd has no VFIO compatibility IOAS');
  return ioas;
}

/**
 * iommufd_vfio_compat_ioas_create(): makes the compat IOAS if there is
 * none, as a user object (its id can be read with IOMMU_VFIO_IOAS_GET and
 * it goes away at close). EINVAL once the context was set to no-IOMMU.
 */
export function compatIoasCreate(ictx: IommufdCtx): void {
  const ioas = ictx.objects.alloc(new IommufdIoas());
  if (ictx.noIommuMode) {
    ictx.objects.abort(ioas);
    throw new SimError('INVALID_ARGUMENT', 'a no-IOMMU container cannot have an IOAS');
  }
  if (ictx.vfioIoas) {
    ictx.objects.abort(ioas);
    return;
  }
  ictx.vfioIoas = ioas;
  ictx.objects.finalize(ioas);
}

/** iommufd_vfio_compat_set_no_iommu(): only before any compat IOAS exists (EINVAL). */
export function compatSetNoIommu(ictx: IommufdCtx): void {
  if (ictx.vfioIoas) throw new SimError('INVALID_ARGUMENT', 'the container already has an IOAS');
  ictx.noIommuMode = true;
}

/**
 * IOMMU_VFIO_IOAS: reads, sets or clears the compat IOAS. SET keeps no
 * reference (destroying the IOAS clears it); CLEAR ignores ioas_id.
 */
export function vfioIoas(u: IommufdUcmd, cmd: iommu_vfio_ioas, call: StructIoctlCall): number {
  if (cmd.__reserved) throw new SimError('RESERVED_NONZERO', 'IOMMU_VFIO_IOAS __reserved is not zero');
  switch (cmd.op) {
    case IOMMU_VFIO_IOAS_GET:
      cmd.ioas_id = getCompatIoas(u.ictx).id;
      respondIommufd(call.mem, call.argp, iommu_vfio_ioas, cmd, call.userSize);
      return 0;
    case IOMMU_VFIO_IOAS_SET:
      u.ictx.vfioIoas = u.ictx.objects.get<IommufdIoas>(cmd.ioas_id, 'ioas');
      return 0;
    case IOMMU_VFIO_IOAS_CLEAR:
      u.ictx.vfioIoas = null;
      return 0;
    default:
      throw new SimError('NOT_SUPPORTED', `IOMMU_VFIO_IOAS op ${cmd.op} is not GET, SET or CLEAR`);
  }
}

/**
 * VFIO_IOMMU_MAP_DMA: always at the caller's IOVA, with the flags type1
 * knows except VFIO_DMA_MAP_FLAG_VADDR (EINVAL: iommufd does not offer
 * vaddr update). Unlike type1, a mapping that is neither readable nor
 * writable is accepted.
 */
function mapDma(ictx: IommufdCtx, mem: UserMemory, argp: bigint, caller: IommufdUcmd): number {
  const minsz = vfio_iommu_type1_dma_map.size;
  const { value: map } = readVfioArgsz(mem, argp, vfio_iommu_type1_dma_map, minsz);
  if (map.flags & ~(VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE)) {
    throw new SimError('UNKNOWN_FLAGS', `VFIO_IOMMU_MAP_DMA flags 0x${map.flags.toString(16)}`);
  }
  const prot = (map.flags & VFIO_DMA_MAP_FLAG_READ ? IOMMU_READ : 0) | (map.flags & VFIO_DMA_MAP_FLAG_WRITE ? IOMMU_WRITE : 0);
  const ioas = getCompatIoas(ictx);
  mapUserPages(ioas, caller.proc.mm, map.vaddr, map.size, prot, map.iova);
  return 0;
}

/**
 * VFIO_IOMMU_UNMAP_DMA: VFIO_DMA_UNMAP_FLAG_ALL (with iova and size 0) or
 * a range. Dirty-bitmap unmap is not offered (EINVAL). A range follows
 * iommufd's rules, not type1's: whole areas only (ENOENT for one that
 * sticks out) unless the IOAS was set up for VFIO_TYPE1_IOMMU, where the
 * range ends are cut first. `size` is written back as the bytes unmapped,
 * also when the walk stopped with an error; nothing mapped is success with
 * size 0.
 */
function unmapDma(ictx: IommufdCtx, mem: UserMemory, argp: bigint): number {
  const minsz = vfio_iommu_type1_dma_unmap.size;
  const { value: unmap } = readVfioArgsz(mem, argp, vfio_iommu_type1_dma_unmap, minsz);
  if (unmap.flags & ~VFIO_DMA_UNMAP_FLAG_ALL) throw new SimError('UNKNOWN_FLAGS', `VFIO_IOMMU_UNMAP_DMA flags 0x${unmap.flags.toString(16)}`);
  const ioas = getCompatIoas(ictx);
  let unmapped = 0n;
  let failure: SimError | null = null;
  if (unmap.flags & VFIO_DMA_UNMAP_FLAG_ALL) {
    if (unmap.iova !== 0n || unmap.size !== 0n) throw new SimError('INVALID_ARGUMENT', 'VFIO_DMA_UNMAP_FLAG_ALL with a range');
    const result = ioas.iopt.unmapAll();
    unmapped = result.unmapped;
    failure = result.error;
  } else {
    if (ioas.iopt.largePagesDisabled) {
      const last = BigInt.asUintN(64, unmap.iova + unmap.size - 1n);
      ioas.iopt.cutIova(unmap.iova ? [last, unmap.iova - 1n] : [last]);
    }
    const result = ioas.iopt.unmapIova(unmap.iova, unmap.size);
    unmapped = result.unmapped;
    failure = result.error;
  }
  unmap.size = unmapped;
  writeBack(mem, argp, vfio_iommu_type1_dma_unmap, unmap, minsz);
  if (failure) throw failure;
  return 0;
}

/** iommufd_get_pagesizes(): what every domain of the IOAS can map, never below PAGE_SIZE or the IOAS alignment. */
function pageSizes(ioas: IommufdIoas): bigint {
  let bitmap = ULONG_MAX;
  for (const domain of ioas.iopt.domains) bitmap &= domain.pgsizeBitmap;
  if (bitmap & (PAGE_SIZE - 1n)) bitmap = (bitmap & ~(PAGE_SIZE - 1n)) | PAGE_SIZE;
  return bitmap > ioas.iopt.iovaAlignment ? bitmap : ioas.iopt.iovaAlignment;
}

/**
 * VFIO_IOMMU_GET_INFO: page sizes plus two capabilities, DMA_AVAIL (always
 * U32_MAX: iommufd limits memory, not mapping count) and IOVA_RANGE, each
 * 8-byte aligned. A short argsz gets the fixed part and the caps that fit,
 * and argsz comes back as the size needed for all of them. Unlike type1 no
 * MIGRATION capability is reported: iommufd has no type1 dirty tracking.
 *
 * This is not vfio_info_cap_add's all-or-nothing chain (CapChain): iommufd
 * writes each capability, and each IOVA range of the last one, straight to
 * the user buffer when it fits, links a capability to the next only when
 * argsz reaches it, and never writes the padding between capabilities. A
 * short argsz therefore still gets the capabilities that fit.
 */
function iommuGetInfo(ictx: IommufdCtx, mem: UserMemory, argp: bigint): number {
  const { value: info, userSize: argsz } = readVfioArgsz(mem, argp, vfio_iommu_type1_info, 16);
  const copyBack = Math.min(argsz, vfio_iommu_type1_info.size);
  const ioas = getCompatIoas(ictx);
  info.flags = VFIO_IOMMU_INFO_PGSIZES;
  info.iova_pgsizes = pageSizes(ioas);
  info.cap_offset = 0;

  const ranges = ioas.iopt.usableRanges();
  const fillers: ((at: bigint, avail: number) => number)[] = [
    (at, avail) => {
      const size = vfio_iommu_type1_info_dma_avail.size;
      if (avail >= size) {
        mem.copyToUser(at, vfio_iommu_type1_info_dma_avail.encodeNew({
          header: { id: VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL, version: 1, next: 0 },
          avail: U32_MAX,
        }));
      }
      return size;
    },
    (at, avail) => {
      const head = vfio_iommu_type1_info_cap_iova_range.size;
      const entry = vfio_iova_range.size;
      ranges.forEach((range, i) => {
        if (avail >= head + entry * (i + 1)) {
          mem.copyToUser(at + BigInt(head + entry * i), vfio_iova_range.encodeNew({ start: range.start, end: range.last }));
        }
      });
      const size = head + entry * ranges.length;
      if (avail >= size) {
        mem.copyToUser(at, vfio_iommu_type1_info_cap_iova_range.encodeNew({
          header: { id: VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, version: 1, next: 0 },
          nr_iovas: ranges.length,
        }));
      }
      return size;
    },
  ];

  let total = vfio_iommu_type1_info.size;
  let lastCap: bigint | null = null;
  for (const fill of fillers) {
    const size = argsz > total ? fill(argp + BigInt(total), argsz - total) : fill(0n, 0);
    const aligned = Math.ceil(size / 8) * 8;
    if (lastCap !== null && argsz >= total) {
      const next = new Uint8Array(4);
      u32.write(next, 0, total);
      mem.copyToUser(lastCap + BigInt(vfio_info_cap_header.offsetOf('next')), next);
    }
    lastCap = argp + BigInt(total);
    total += aligned;
  }
  if (argsz >= total) info.cap_offset = vfio_iommu_type1_info.size;
  info.argsz = total;
  info.flags |= VFIO_IOMMU_INFO_CAPS;
  writeBack(mem, argp, vfio_iommu_type1_info, info, copyBack);
  return 0;
}

/**
 * VFIO_CHECK_EXTENSION as iommufd answers it: type1 and v2 and UNMAP_ALL
 * yes (unless the container is no-IOMMU), NOIOMMU yes (distribution
 * kernels build CONFIG_VFIO_NOIOMMU), DMA_CC_IOMMU from the compat IOAS's
 * domains (ENODEV without a compat IOAS), and no for VFIO_UPDATE_VADDR,
 * the nesting type and anything unknown.
 */
function checkExtension(ictx: IommufdCtx, extension: bigint): number {
  switch (extension) {
    case BigInt(VFIO_TYPE1_IOMMU):
    case BigInt(VFIO_TYPE1v2_IOMMU):
    case BigInt(VFIO_UNMAP_ALL):
      return ictx.noIommuMode ? 0 : 1;
    case BigInt(VFIO_NOIOMMU_IOMMU):
      return 1;
    case BigInt(VFIO_DMA_CC_IOMMU):
      return getCompatIoas(ictx).hwptList.every((hwpt) => hwpt.enforceCacheCoherency) ? 1 : 0;
    default:
      return 0;
  }
}

/**
 * VFIO_SET_IOMMU: only type1 and v2 (EINVAL otherwise), and only once a
 * group has created the compat IOAS (ENODEV). Type1 proper (which may
 * unmap inside a mapping) is emulated by forbidding huge pages in the
 * IOAS. NOIOMMU is accepted for a no-IOMMU container; every process is
 * privileged in the model, so CAP_SYS_RAWIO never refuses it.
 */
function setIommu(ictx: IommufdCtx, type: bigint): number {
  if (type === BigInt(VFIO_NOIOMMU_IOMMU) && ictx.noIommuMode) return 0;
  if ((type !== BigInt(VFIO_TYPE1_IOMMU) && type !== BigInt(VFIO_TYPE1v2_IOMMU)) || ictx.noIommuMode) {
    throw new SimError('INVALID_ARGUMENT', `VFIO_SET_IOMMU type ${type} is not type1 or type1v2`);
  }
  const ioas = getCompatIoas(ictx);
  if (type === BigInt(VFIO_TYPE1_IOMMU)) ioas.iopt.disableLargePages();
  return 0;
}

/**
 * iommufd_vfio_ioctl(): the requests outside iommufd's command range.
 * VFIO_IOMMU_DIRTY_PAGES and everything else is ENOTTY.
 */
export function vfioCompatIoctl(u: IommufdUcmd, mem: UserMemory, request: number, arg: bigint): number {
  switch (request) {
    case VFIO_GET_API_VERSION:
      return VFIO_API_VERSION;
    case VFIO_SET_IOMMU:
      return setIommu(u.ictx, arg);
    case VFIO_CHECK_EXTENSION:
      return checkExtension(u.ictx, arg);
    case VFIO_IOMMU_GET_INFO:
      return iommuGetInfo(u.ictx, mem, arg);
    case VFIO_IOMMU_MAP_DMA:
      return mapDma(u.ictx, mem, arg, u);
    case VFIO_IOMMU_UNMAP_DMA:
      return unmapDma(u.ictx, mem, arg);
    default:
      throw new SimError('UNKNOWN_IOCTL', `iommufd has no ioctl 0x${request.toString(16)}`);
  }
}
