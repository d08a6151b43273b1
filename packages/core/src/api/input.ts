import { z } from 'zod';
import { SimError } from '../errors/index.js';

/*
 * What the typed API checks before it writes a struct: only that a value
 * fits the C field it goes into. Whether the value makes sense (an index
 * past the last region, an fd that is not an eventfd, unknown flags) is the
 * kernel's to decide, and its errno comes back as a SyscallError; checking
 * it here would hide the kernel's answer behind ours.
 */

export const u32Schema = z.number().int().min(0).max(0xffffffff);
export const s32Schema = z.number().int().min(-0x80000000).max(0x7fffffff);
/** A file descriptor the caller owns. */
export const fdSchema = z.number().int().min(0).max(0x7fffffff);
/** An eventfd in an interrupt's data array: -1 (and other negatives, for ERR/REQ) detach, as vfio defines. */
export const eventfdSlotSchema = s32Schema;
/** A byte offset or length in a 64-bit field. */
export const u64Schema = z
  .union([z.bigint(), z.number().int().nonnegative()])
  .transform((value) => BigInt(value))
  .refine((value) => value >= 0n && value < 1n << 64n, 'must fit 64 bits');
/** A device feature id (the low 16 bits of vfio_device_feature.flags). */
export const featureSchema = z.number().int().min(0).max(0xffff);

/** Parses a typed-API argument; INVALID_API_INPUT naming the field when it cannot be encoded. */
export function parseInput<S extends z.ZodType>(schema: S, value: unknown, what: string): z.output<S> {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.map((issue) => {
    const path = issue.path.length ? `${what}.${issue.path.join('.')}` : what;
    return `${path}: ${issue.message}`;
  });
  throw new SimError('INVALID_API_INPUT', problems.join('; '));
}
