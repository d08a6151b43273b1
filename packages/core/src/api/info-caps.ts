import { vfio_info_cap_header } from '../uapi/index.js';

/** One capability of a VFIO info chain, as the kernel wrote it. */
export interface VfioInfoCap {
  readonly id: number;
  readonly version: number;
  /** Offset of the capability header from the start of the info struct. */
  readonly offset: number;
  /** The capability, header included, up to the next one (or the end of the buffer). */
  readonly bytes: Uint8Array;
}

/**
 * Walks the capability chain the kernel appended to an info struct
 * (struct vfio_info_cap_header): `firstOffset` is the struct's cap_offset,
 * each `next` is an offset from the start of the struct, 0 ends the chain.
 * A chain that points outside the buffer or back on itself is a kernel bug
 * the caller should see, so it throws rather than returning a partial list.
 */
export function parseInfoCaps(bytes: Uint8Array, firstOffset: number): VfioInfoCap[] {
  const caps: VfioInfoCap[] = [];
  const seen = new Set<number>();
  for (let at = firstOffset; at !== 0; ) {
    if (seen.has(at) || at + vfio_info_cap_header.size > bytes.length) {
      throw new RangeError(`capability chain entry at ${at} is outside the ${bytes.length}-byte info or loops`);
    }
    seen.add(at);
    const header = vfio_info_cap_header.decode(bytes, at);
    const end = header.next > at ? Math.min(header.next, bytes.length) : bytes.length;
    caps.push({ id: header.id, version: header.version, offset: at, bytes: bytes.slice(at, end) });
    at = header.next;
  }
  return caps;
}
