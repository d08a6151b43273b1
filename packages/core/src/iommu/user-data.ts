import { SimError } from '../errors/index.js';
import { offsetofEnd, type StructCodec } from '../uapi/index.js';
import type { UserMemory } from '../uapi/index.js';
import type { IommuUserData, IommuUserDataArray } from './iommu-driver.js';

/*
 * The helpers include/linux/iommu.h gives IOMMU drivers to read and write
 * their driver-typed user data (struct iommu_user_data and
 * iommu_user_data_array), with the kernel's checks in the kernel's order.
 * A driver package decodes its structs with these and its codecs.
 *
 * Public API: copyStructFromUser(), iommuCopyStructFromUser(),
 * iommuCopyStructFromUserArray(), iommuCopyStructFromFullUserArray(),
 * iommuCopyStructToUser()
 */

const PAGE = 4096n;

/**
 * copy_struct_from_user: reads a `usize`-byte user struct into a
 * `ksize`-byte kernel one. A shorter user struct reads as zero-extended; a
 * longer one must be zero past `ksize` (E2BIG), checked before the copy;
 * unreadable memory is EFAULT.
 */
export function copyStructFromUser(mem: UserMemory, uptr: bigint, ksize: number, usize: number): Uint8Array {
  const size = Math.min(ksize, usize);
  if (usize > ksize) {
    // check_zeroed_user meets the first non-zero byte or unreadable page in address order.
    let cursor = uptr + BigInt(ksize);
    let left = BigInt(usize - ksize);
    while (left > 0n) {
      const toPageEnd = PAGE - (cursor % PAGE);
      const chunk = left < toPageEnd ? left : toPageEnd;
      if (mem.copyFromUser(cursor, Number(chunk)).some((b) => b !== 0)) {
        throw new SimError('ARG_TAIL_NONZERO', `user struct of ${usize} bytes has non-zero bytes past the ${ksize} the kernel knows`);
      }
      cursor += chunk;
      left -= chunk;
    }
  }
  const out = new Uint8Array(ksize);
  if (size > 0) out.set(mem.copyFromUser(uptr, size));
  return out;
}

/** __iommu_copy_struct_from_user: the type must match, the length lie in [offsetofend(minLast), sizeof] (EINVAL). */
function copyUserData<T>(codec: StructCodec<T>, data: { type: number; mem: UserMemory; uptr: bigint; len: number }, dataType: number, minLast: keyof T & string): T {
  if (data.type !== dataType) {
    throw new SimError('INVALID_ARGUMENT', `${codec.name}: data type 0x${(data.type >>> 0).toString(16)} is not 0x${(dataType >>> 0).toString(16)}`);
  }
  const minLen = offsetofEnd(codec, minLast);
  if (data.len < minLen || data.len > codec.size) {
    throw new SimError('INVALID_ARGUMENT', `${codec.name}: length ${data.len} is outside [${minLen}, ${codec.size}]`);
  }
  return codec.decode(copyStructFromUser(data.mem, data.uptr, codec.size, data.len));
}

/** iommu_copy_struct_from_user(kdst, user_data, data_type, min_last). */
export function iommuCopyStructFromUser<T>(codec: StructCodec<T>, userData: IommuUserData, dataType: number, minLast: keyof T & string): T {
  return copyUserData(codec, userData, dataType, minLast);
}

/**
 * iommu_copy_struct_from_user_array(kdst, user_array, data_type, index,
 * min_last): entry `index` of the array, each entry `entryLen` bytes apart.
 */
export function iommuCopyStructFromUserArray<T>(
  codec: StructCodec<T>,
  array: IommuUserDataArray,
  dataType: number,
  index: number,
  minLast: keyof T & string,
): T {
  if (index >= array.entryNum || array.entryNum === 0) {
    throw new SimError('INVALID_ARGUMENT', `${codec.name}: entry ${index} of ${array.entryNum}`);
  }
  return copyUserData(codec, {
    type: array.type,
    mem: array.mem,
    uptr: array.uptr + BigInt(array.entryLen) * BigInt(index),
    len: array.entryLen,
  }, dataType, minLast);
}

/**
 * iommu_copy_struct_from_full_user_array(kdst, kdst_entry_size, user_array,
 * data_type): every entry at once, each through copy_struct_from_user, so
 * here a short entry reads zero-extended (no minimum) and a long one must
 * be zero past the kernel struct (E2BIG). EINVAL for another data type or an
 * empty array.
 */
export function iommuCopyStructFromFullUserArray<T>(codec: StructCodec<T>, array: IommuUserDataArray, dataType: number): T[] {
  if (array.type !== dataType) {
    throw new SimError('INVALID_ARGUMENT', `${codec.name}: data type 0x${(array.type >>> 0).toString(16)} is not 0x${(dataType >>> 0).toString(16)}`);
  }
  if (array.entryNum === 0) throw new SimError('INVALID_ARGUMENT', `${codec.name}: empty array`);
  const out: T[] = [];
  for (let i = 0; i < array.entryNum; i++) {
    const uptr = array.uptr + BigInt(array.entryLen) * BigInt(i);
    out.push(codec.decode(copyStructFromUser(array.mem, uptr, codec.size, array.entryLen)));
  }
  return out;
}

/**
 * iommu_copy_struct_to_user(user_data, ksrc, data_type, min_last): writes
 * back the user's length of `value`, after the same type and length checks
 * as the copy in.
 */
export function iommuCopyStructToUser<T>(userData: IommuUserData, codec: StructCodec<T>, value: T, dataType: number, minLast: keyof T & string): void {
  if (userData.type !== dataType) {
    throw new SimError('INVALID_ARGUMENT', `${codec.name}: data type 0x${(userData.type >>> 0).toString(16)} is not 0x${(dataType >>> 0).toString(16)}`);
  }
  const minLen = offsetofEnd(codec, minLast);
  if (userData.len < minLen || userData.len > codec.size) {
    throw new SimError('INVALID_ARGUMENT', `${codec.name}: length ${userData.len} is outside [${minLen}, ${codec.size}]`);
  }
  const bytes = codec.encodeNew();
  codec.encode(value, bytes);
  userData.mem.copyToUser(userData.uptr, bytes.subarray(0, userData.len));
}
