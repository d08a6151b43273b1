import { SimError } from '../../errors/index.js';
import type { Frame } from '../../os/index.js';
import type { IommufdAccessHandle, IommufdAccessOps } from '../../vfio/iommufd-kapi.js';
import type { IommufdIoas } from './ioas.js';
import type { IommufdCtx } from './iommufd-ctx.js';
import { addNoOverflow, PAGE_SIZE, ULONG_MAX } from './limits.js';
import { IommufdObject } from './object.js';

/**
 * struct iommufd_access: how a driver without a real IOMMU path (an
 * emulated, mdev-style vfio device) reaches an IOAS. It has an id like a
 * device, is held by its driver until destroyed, and raises the IOAS's
 * IOVA alignment to PAGE_SIZE when the driver pins pages.
 */
export class IommufdAccess extends IommufdObject implements IommufdAccessHandle {
  readonly type = 'access' as const;
  /** The IOAS new pins and reads go to; null while the access is moving between IOASes. */
  ioas: IommufdIoas | null = null;
  /** The IOAS unpins go to (access->ioas_unpin): still the old one while the driver drops its pins on a move. */
  ioasUnpin: IommufdIoas | null = null;
  readonly iovaAlignment: bigint;

  constructor(
    readonly ictx: IommufdCtx,
    readonly ops: IommufdAccessOps,
  ) {
    super();
    this.iovaAlignment = ops.needsPinPages ? PAGE_SIZE : 1n;
  }

  get devId(): number {
    return this.id;
  }

  destroy(): void {
    if (this.ioas) changeIoas(this, null);
    this.ictx.file.put();
  }
}

/**
 * iommufd_access_change_ioas(): joins the new IOAS first (its alignment
 * may refuse the access, leaving everything as it was), then tells the
 * driver to drop whatever it pinned from the old one and leaves it.
 */
function changeIoas(access: IommufdAccess, next: IommufdIoas | null): void {
  const current = access.ioas;
  if (current === next) return;
  // No new pin may start while the driver is told to drop the old ones.
  access.ioas = null;
  if (next) {
    try {
      next.iopt.addAccess(access, access.iovaAlignment);
    } catch (error) {
      access.ioas = current;
      throw error;
    }
    next.users++;
  }
  if (current) {
    access.ops.unmap(0n, ULONG_MAX);
    current.iopt.removeAccess(access);
    current.users--;
  }
  access.ioas = next;
  access.ioasUnpin = next;
}

/** iommufd_access_create(): the creating driver holds the access until accessDestroy. */
export function accessCreate(ictx: IommufdCtx, ops: IommufdAccessOps): IommufdAccess {
  const access = ictx.objects.alloc(new IommufdAccess(ictx, ops));
  access.users++;
  ictx.file.get();
  ictx.objects.finalize(access);
  return access;
}

export function accessDestroy(access: IommufdAccess): void {
  access.ictx.objects.destroyUser(access);
}

/** iommufd_access_attach(): EINVAL if already attached; ENOENT for an id that is not an IOAS. */
export function accessAttach(access: IommufdAccess, ioasId: number): void {
  if (access.ioas) throw new SimError('INVALID_ARGUMENT', `access ${access.id} is already attached to IOAS ${access.ioas.id}`);
  changeIoas(access, access.ictx.objects.get<IommufdIoas>(ioasId, 'ioas'));
}

/** iommufd_access_replace(): ENOENT if the access is not attached. */
export function accessReplace(access: IommufdAccess, ioasId: number): void {
  if (!access.ioas) throw new SimError('NOT_FOUND', `access ${access.id} is not attached`);
  changeIoas(access, access.ictx.objects.get<IommufdIoas>(ioasId, 'ioas'));
}

export function accessDetach(access: IommufdAccess): void {
  if (!access.ioas) throw new Error(`iommufd: detach of access ${access.id}, which is not attached`);
  changeIoas(access, null);
}

/** The range checks iommufd_access_pin_pages() and iommufd_access_rw() make before looking at the IOAS; returns the last IOVA. */
function accessRange(access: IommufdAccess, iova: bigint, length: bigint): { ioas: IommufdIoas; last: bigint } {
  if (length === 0n) throw new SimError('INVALID_ARGUMENT', 'an access of zero bytes');
  const last = addNoOverflow(iova, length - 1n);
  if (last === null) throw new SimError('OVERFLOW', `access range at 0x${iova.toString(16)} of ${length} bytes wraps`);
  if (!access.ioas) throw new SimError('NOT_FOUND', `access ${access.id} is not attached to an IOAS`);
  return { ioas: access.ioas, last };
}

/**
 * iommufd_access_pin_pages(): the frames behind [iova, iova + length), one
 * per page, pinned until the driver unpins exactly this range. While any
 * page is held an IOAS unmap of its area calls the driver's unmap op first.
 */
export function accessPinPages(access: IommufdAccess, iova: bigint, length: bigint, write: boolean): Frame[] {
  const { ioas, last } = accessRange(access, iova, length);
  return ioas.iopt.accessPin(iova, last, write);
}

/**
 * iommufd_access_unpin_pages(): undoes one accessPinPages of the same
 * range. A zero or wrapping length, or an access never attached, is a
 * driver bug the kernel WARNs about and ignores; so does the model.
 */
export function accessUnpinPages(access: IommufdAccess, iova: bigint, length: bigint): void {
  if (length === 0n) return;
  const last = addNoOverflow(iova, length - 1n);
  if (last === null || !access.ioasUnpin) return;
  access.ioasUnpin.iopt.accessUnpin(iova, last);
}

/** iommufd_access_rw(): the CPU copies `data` to (write) or from the memory behind [iova, iova + data.length). */
export function accessRw(access: IommufdAccess, iova: bigint, data: Uint8Array, write: boolean): void {
  const { ioas } = accessRange(access, iova, BigInt(data.length));
  ioas.iopt.accessRw(iova, data, write);
}
