import { SyncHook } from 'tapable';
import { SimError } from '../errors/index.js';
import type { IommuDomain, IommuUserDataArray, IommuViommu } from './iommu-driver.js';

/*
 * The invalidation hook family. The driver that owns a nested HWPT or a
 * vIOMMU decodes its own invalidation entries (cache_invalidate_user /
 * cache_invalidate in the ops tables); these hooks let other plugins watch
 * or extend what happens around it (a tracer, a checker that compares the
 * guest's invalidations with its page-table writes, a fault injector).
 *
 * The hooks are declared once, frozen, on their owner (IommuCore
 * .invalidationHooks). iommufd runs them around every IOMMU_HWPT_INVALIDATE
 * through runUserInvalidation():
 *
 *   beforeInvalidate  SyncHook, sequential. Runs after iommufd has decoded
 *                     and checked struct iommu_hwpt_invalidate and found the
 *                     target, before the driver sees the entries. A tap that
 *                     throws stops the invalidation: the driver is not
 *                     called, nothing is handled, and the error is the
 *                     ioctl's answer. Followed by the driver op, then
 *                     afterInvalidate.
 *   afterInvalidate   SyncHook, sequential. Runs after the driver op
 *                     returned or threw, with `handled` (what iommufd writes
 *                     back as entry_num) and `error` filled in. Runs also
 *                     when the driver failed; it cannot undo the entries the
 *                     driver handled. Nothing of the invalidation follows it.
 *
 * A tap that throws something other than a SimError is reported as
 * HOOK_TAP_FAILED (EIO) naming the tap and the hook.
 *
 * Public API: InvalidationTarget, InvalidationContext, InvalidationHooks,
 * createInvalidationHooks(), runUserInvalidation()
 */

/** What the user invalidates: a nested HWPT's domain, or a vIOMMU. */
export type InvalidationTarget =
  | { readonly kind: 'hwpt'; readonly domain: IommuDomain }
  | { readonly kind: 'viommu'; readonly viommu: IommuViommu };

/** The one argument of both hooks. */
export interface InvalidationContext {
  readonly target: InvalidationTarget;
  /** data_type of the request (IOMMU_HWPT_INVALIDATE_DATA_* / IOMMU_VIOMMU_INVALIDATE_DATA_*). */
  readonly dataType: number;
  /** The user's entries; `array.entryNum` is how many were asked for. */
  readonly array: IommuUserDataArray;
  /** Entries the driver handled (0 before it ran). */
  handled: number;
  /** The driver's error, if it failed (null before it ran). */
  error: SimError | null;
}

export interface InvalidationHooks {
  readonly beforeInvalidate: SyncHook<[InvalidationContext]>;
  readonly afterInvalidate: SyncHook<[InvalidationContext]>;
}

/** Reports a tap's non-model error as HOOK_TAP_FAILED naming the tap and the hook. */
function wrapTaps(hook: SyncHook<[InvalidationContext]>, hookName: string): void {
  hook.intercept({
    register: (tap) => {
      const fn = tap.fn as (ctx: InvalidationContext) => void;
      return {
        ...tap,
        fn: (ctx: InvalidationContext) => {
          try {
            fn(ctx);
          } catch (error) {
            if (error instanceof SimError) throw error;
            const message = error instanceof Error ? error.message : String(error);
            throw new SimError('HOOK_TAP_FAILED', `${tap.name} in ${hookName}: ${message}`, { cause: error });
          }
        },
      };
    },
  });
}

export function createInvalidationHooks(): InvalidationHooks {
  const hooks = {
    beforeInvalidate: new SyncHook<[InvalidationContext]>(['ctx']),
    afterInvalidate: new SyncHook<[InvalidationContext]>(['ctx']),
  };
  wrapTaps(hooks.beforeInvalidate, 'beforeInvalidate');
  wrapTaps(hooks.afterInvalidate, 'afterInvalidate');
  return Object.freeze(hooks);
}

/**
 * Runs one user cache invalidation with its hooks: beforeInvalidate, the
 * driver op of `target` (cache_invalidate_user of the nested domain, or
 * cache_invalidate of the vIOMMU), afterInvalidate. Leaves the entries the
 * driver handled in `array.handled` and rethrows the driver's error. A
 * target without the op is EOPNOTSUPP, as iommufd answers for a domain that
 * has no cache_invalidate_user.
 */
export function runUserInvalidation(hooks: InvalidationHooks, target: InvalidationTarget, array: IommuUserDataArray): void {
  const op = target.kind === 'hwpt'
    ? target.domain.cacheInvalidateUser?.bind(target.domain)
    : target.viommu.cacheInvalidate?.bind(target.viommu);
  array.handled = 0;
  if (!op) throw new SimError('NOT_SUPPORTED', `this ${target.kind} has no cache invalidation`);
  const ctx: InvalidationContext = { target, dataType: array.type, array, handled: 0, error: null };
  if (hooks.beforeInvalidate.isUsed()) hooks.beforeInvalidate.call(ctx);
  try {
    op(array);
  } catch (error) {
    if (!(error instanceof SimError)) throw error;
    ctx.error = error;
  }
  ctx.handled = array.handled;
  if (hooks.afterInvalidate.isUsed()) hooks.afterInvalidate.call(ctx);
  if (ctx.error) throw ctx.error;
}
