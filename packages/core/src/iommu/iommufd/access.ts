import { SimError } from '../../errors/index.js';
import type { IommufdAccessHandle, IommufdAccessOps } from '../../vfio/iommufd-kapi.js';
import type { IommufdIoas } from './ioas.js';
import type { IommufdCtx } from './iommufd-ctx.js';
import { PAGE_SIZE, ULONG_MAX } from './limits.js';
import { IommufdObject } from './object.js';

/**
 * struct iommufd_access: how a driver without a real IOMMU path (an
 * emulated, mdev-style vfio device) reaches an IOAS. It has an id like a
 * device, is held by its driver until destroyed, and raises the IOAS's
 * IOVA alignment to PAGE_SIZE when the driver pins pages.
 */
export class IommufdAccess extends IommufdObject implements IommufdAccessHandle {
  readonly type = 'access' as const;
  ioas: IommufdIoas | null = null;
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
  if (next) {
    next.iopt.addAccess(access, access.iovaAlignment);
    next.users++;
  }
  if (current) {
    access.ops.unmap(0n, ULONG_MAX);
    current.iopt.removeAccess(access);
    current.users--;
  }
  access.ioas = next;
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
