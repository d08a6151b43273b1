import { SimError } from '../../errors/index.js';
import type { FileOperations, OpenFile, Process } from '../../os/index.js';
import {
  _IOC_NR,
  IOMMUFD_CMD_BASE,
  IOMMUFD_CMD_HW_QUEUE_ALLOC,
  iommu_destroy,
  iommu_hw_info,
  iommu_hw_queue_alloc,
  iommu_hwpt_alloc,
  iommu_hwpt_get_dirty_bitmap,
  iommu_hwpt_invalidate,
  iommu_hwpt_set_dirty_tracking,
  iommu_ioas_alloc,
  iommu_ioas_allow_iovas,
  iommu_ioas_change_process,
  iommu_ioas_copy,
  iommu_ioas_iova_ranges,
  iommu_ioas_map,
  iommu_ioas_map_file,
  iommu_ioas_unmap,
  iommu_option,
  iommu_vdevice_alloc,
  iommu_vfio_ioas,
  iommu_viommu_alloc,
  IOMMU_OPTION_HUGE_PAGES,
  IOMMU_OPTION_OP_GET,
  IOMMU_OPTION_OP_SET,
  IOMMU_OPTION_RLIMIT_MODE,
  ioctlMinSizes,
  ioctlTable,
  writeBackField,
  type IoctlName,
  type StructCodec,
  type StructIoctlCall,
  type StructIoctlHandler,
} from '../../uapi/index.js';
import { getHwInfo, IommufdDevice, IommufdGroup } from './device.js';
import { hwptAlloc, hwptGetDirtyBitmap, hwptInvalidate, hwptSetDirtyTracking } from './hw-pagetable.js';
import {
  IommufdIoas,
  ioasAlloc,
  ioasAllowIovas,
  ioasChangeProcess,
  ioasCopy,
  ioasIovaRanges,
  ioasMap,
  ioasMapFile,
  ioasOptionHugePages,
  ioasUnmap,
} from './ioas.js';
import type { Iommufd } from './iommufd.js';
import { ObjectTable } from './object-table.js';
import { vfioCompatIoctl, vfioIoas } from './vfio-compat.js';
import { hwQueueAlloc, vdeviceAlloc, viommuAlloc } from './viommu.js';

/** One ioctl in flight: the context it runs in and the process that made it (struct iommufd_ucmd). */
export interface IommufdUcmd {
  readonly ictx: IommufdCtx;
  readonly proc: Process;
}

/**
 * How pinned pages are charged (enum iopt_pages_account_mode as
 * IOMMU_OPTION_RLIMIT_MODE exposes it): 'user' to the user's
 * RLIMIT_MEMLOCK, 'mm' to the process like VFIO type1. The model keeps the
 * mode but no limits.
 */
export type IommufdAccountMode = 'user' | 'mm';

/** Number of slots in the kernel's command table: IOMMUFD_CMD_BASE up to the last command. */
const CMD_COUNT = IOMMUFD_CMD_HW_QUEUE_ALLOC - IOMMUFD_CMD_BASE + 1;

/**
 * struct iommufd_ctx: what one open of /dev/iommu owns. Objects live in
 * its table until destroyed or until the file is released; the compat IOAS
 * pointer is weak, like the kernel's, and reads as unset once that IOAS is
 * destroyed.
 */
export class IommufdCtx {
  readonly objects = new ObjectTable();
  accountMode: IommufdAccountMode = 'user';
  noIommuMode = false;
  readonly #groups = new Map<number, IommufdGroup>();
  #vfioIoas: IommufdIoas | null = null;
  #file: OpenFile | null = null;

  constructor(
    readonly id: number,
    readonly iommufd: Iommufd,
  ) {}

  /** The /dev/iommu file this context belongs to (ctx->file). */
  get file(): OpenFile {
    if (!this.#file) throw new Error('iommufd: context used before its file was opened');
    return this.#file;
  }

  set file(file: OpenFile) {
    this.#file = file;
  }

  get vfioIoas(): IommufdIoas | null {
    const ioas = this.#vfioIoas;
    return ioas && this.objects.find(ioas.id) === ioas ? ioas : null;
  }

  set vfioIoas(ioas: IommufdIoas | null) {
    this.#vfioIoas = ioas;
  }

  /** The context's iommufd_group for an IOMMU group, created on first use. */
  getGroup(groupId: number): IommufdGroup {
    let igroup = this.#groups.get(groupId);
    if (!igroup) {
      igroup = new IommufdGroup(this, groupId);
      this.#groups.set(groupId, igroup);
    }
    igroup.refs++;
    return igroup;
  }

  putGroup(igroup: IommufdGroup): void {
    if (--igroup.refs === 0) this.#groups.delete(igroup.groupId);
  }

  /** Whether a device of this IOMMU group is bound here (iommufd_ctx_has_group). */
  hasGroup(groupId: number): boolean {
    return this.objects.live().some((object) => object instanceof IommufdDevice && object.igroup.groupId === groupId);
  }

  ioctl(proc: Process, request: number, argp: bigint): number {
    return commandTable.ioctl({ ictx: this, proc }, proc.mm, request, argp);
  }

  /** iommufd_fops_release(): every object goes, leaves first. */
  release(): void {
    this.objects.releaseAll();
    this.#vfioIoas = null;
  }
}

/** IOMMU_DESTROY: any live object nothing else uses. */
function destroy(u: IommufdUcmd, cmd: iommu_destroy): number {
  u.ictx.objects.remove(cmd.id);
  return 0;
}

/**
 * IOMMU_OPTION_RLIMIT_MODE, a context-wide option (object_id must be 0).
 * Changing it needs CAP_SYS_RESOURCE (every process of the model has it)
 * and an empty context (EBUSY).
 */
function rlimitMode(u: IommufdUcmd, cmd: iommu_option): bigint {
  if (cmd.object_id) throw new SimError('NOT_SUPPORTED', 'IOMMU_OPTION_RLIMIT_MODE takes no object_id');
  if (cmd.op === IOMMU_OPTION_OP_GET) return u.ictx.accountMode === 'mm' ? 1n : 0n;
  if (cmd.op === IOMMU_OPTION_OP_SET) {
    if (!u.ictx.objects.empty) throw new SimError('BUSY', 'the accounting mode can only change before any object exists');
    if (cmd.val64 === 0n) u.ictx.accountMode = 'user';
    else if (cmd.val64 === 1n) u.ictx.accountMode = 'mm';
    else throw new SimError('INVALID_ARGUMENT', `IOMMU_OPTION_RLIMIT_MODE value ${cmd.val64} is neither 0 nor 1`);
    return cmd.val64;
  }
  throw new SimError('NOT_SUPPORTED', `IOMMU_OPTION op ${cmd.op} is neither GET nor SET`);
}

/** IOMMU_OPTION: only val64 goes back, and only on success. */
function option(u: IommufdUcmd, cmd: iommu_option, call: StructIoctlCall): number {
  if (cmd.__reserved) throw new SimError('RESERVED_NONZERO', 'IOMMU_OPTION __reserved is not zero');
  let val64: bigint;
  switch (cmd.option_id) {
    case IOMMU_OPTION_RLIMIT_MODE:
      val64 = rlimitMode(u, cmd);
      break;
    case IOMMU_OPTION_HUGE_PAGES:
      val64 = ioasOptionHugePages(u.ictx.objects.get<IommufdIoas>(cmd.object_id, 'ioas'), cmd.op, cmd.val64);
      break;
    default:
      throw new SimError('NOT_SUPPORTED', `IOMMU_OPTION option_id ${cmd.option_id} is unknown`);
  }
  writeBackField(call.mem, call.argp, iommu_option, 'val64', val64);
  return 0;
}

const table = ioctlTable<IommufdUcmd>('iommufd', {
  /*
   * iommufd_fops_ioctl(): a number inside the command range reads the size
   * word first (EFAULT for a bad pointer) and only then finds no such
   * command (ENOTTY); anything outside the range is a VFIO container ioctl.
   */
  fallback: (u, call) => {
    const nr = _IOC_NR(call.request);
    if (nr >= IOMMUFD_CMD_BASE && nr - IOMMUFD_CMD_BASE < CMD_COUNT) {
      call.mem.copyFromUser(call.argp, 4);
      throw new SimError('UNKNOWN_IOCTL', `iommufd has no command 0x${call.request.toString(16)}`);
    }
    return vfioCompatIoctl(u, call.mem, call.request, call.argp);
  },
});

function command<T>(name: IoctlName, codec: StructCodec<T>, handler: StructIoctlHandler<IommufdUcmd, T>): void {
  const sizes = (ioctlMinSizes.iommufd as Record<string, { min_size: number }>)[name];
  if (!sizes) throw new Error(`iommufd: no minimum size for ${name} in the ABI facts`);
  table.iommufd(name, codec, sizes.min_size, handler);
}

command('IOMMU_DESTROY', iommu_destroy, destroy);
command('IOMMU_IOAS_ALLOC', iommu_ioas_alloc, ioasAlloc);
command('IOMMU_IOAS_ALLOW_IOVAS', iommu_ioas_allow_iovas, ioasAllowIovas);
command('IOMMU_IOAS_COPY', iommu_ioas_copy, ioasCopy);
command('IOMMU_IOAS_IOVA_RANGES', iommu_ioas_iova_ranges, ioasIovaRanges);
command('IOMMU_IOAS_MAP', iommu_ioas_map, ioasMap);
command('IOMMU_IOAS_UNMAP', iommu_ioas_unmap, ioasUnmap);
command('IOMMU_OPTION', iommu_option, option);
command('IOMMU_VFIO_IOAS', iommu_vfio_ioas, vfioIoas);
command('IOMMU_HWPT_ALLOC', iommu_hwpt_alloc, hwptAlloc);
command('IOMMU_GET_HW_INFO', iommu_hw_info, getHwInfo);
command('IOMMU_HWPT_SET_DIRTY_TRACKING', iommu_hwpt_set_dirty_tracking, hwptSetDirtyTracking);
command('IOMMU_HWPT_GET_DIRTY_BITMAP', iommu_hwpt_get_dirty_bitmap, hwptGetDirtyBitmap);
command('IOMMU_HWPT_INVALIDATE', iommu_hwpt_invalidate, hwptInvalidate);
command('IOMMU_IOAS_MAP_FILE', iommu_ioas_map_file, ioasMapFile);
command('IOMMU_VIOMMU_ALLOC', iommu_viommu_alloc, viommuAlloc);
command('IOMMU_VDEVICE_ALLOC', iommu_vdevice_alloc, vdeviceAlloc);
command('IOMMU_IOAS_CHANGE_PROCESS', iommu_ioas_change_process, ioasChangeProcess);
command('IOMMU_HW_QUEUE_ALLOC', iommu_hw_queue_alloc, hwQueueAlloc);

/** The iommufd command table (iommufd_ioctl_ops), exposed for inspection. */
export const commandTable = table;

/** struct file_operations of /dev/iommu. */
export const iommufdFileOps: FileOperations = Object.freeze({
  kind: 'iommufd',
  ioctl(file: OpenFile, proc: Process, request: number, argp: bigint): number {
    return (file.privateData as IommufdCtx).ioctl(proc, request, argp);
  },
  release(file: OpenFile): void {
    (file.privateData as IommufdCtx).release();
  },
});
