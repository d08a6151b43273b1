import type { SyncHook } from 'tapable';
import { SimError } from '../errors/index.js';

/**
 * Makes every tap of `hook` report its failures under the hook's and the
 * tap's name (taps are named after the plugin that made them:
 * `hook.tap({ name: pluginName }, fn)`).
 *
 * A SimError keeps its code, so the errno a variant driver chose (EIO from
 * a config intercept, EINVAL from an ioctl) still reaches userspace; only
 * the message gains "<hook> (<plugin>)". Anything else is a plugin bug and
 * becomes HOOK_TAP_FAILED (EIO) with the original as its cause.
 *
 * The wrapping is a `register` interceptor, which rewrites each tap once,
 * when it is made; nothing runs per call. tapable counts interceptors in
 * isUsed(), which would make every hook look tapped, so isUsed() is pinned
 * back to "has taps": callers on hot paths (config access) test it to skip
 * building the hook's arguments, and a hook without taps costs one check.
 */
export function nameTapErrors<H extends SyncHook<any, any>>(hook: H, hookName: string): H {
  hook.intercept({
    register: (tap) => {
      const fn = tap.fn as (...args: unknown[]) => unknown;
      return {
        ...tap,
        fn: (...args: unknown[]) => {
          try {
            return fn(...args);
          } catch (error) {
            throw tapError(error, hookName, tap.name);
          }
        },
      };
    },
  });
  hook.isUsed = () => hook.taps.length > 0;
  return hook;
}

function tapError(error: unknown, hookName: string, tapName: string): SimError {
  const where = `${hookName} (${tapName})`;
  if (error instanceof SimError) {
    return new SimError(error.code, `${where}: ${stripErrnoPrefix(error)}`, { cause: error });
  }
  const message = error instanceof Error ? error.message : String(error);
  return new SimError('HOOK_TAP_FAILED', `${where}: ${message}`, { cause: error });
}

/** SimError messages start with "<ERRNO>: "; the new error adds its own. */
function stripErrnoPrefix(error: SimError): string {
  const prefix = `${error.errnoName}: `;
  return error.message.startsWith(prefix) ? error.message.slice(prefix.length) : error.message;
}
