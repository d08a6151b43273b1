import { vfio_info_cap_header } from '../uapi/index.js';

/**
 * A VFIO info capability chain as the vfio core's vfio_info_cap_add()
 * builds it for the info ioctls that carry one (device and region info in
 * vfio-pci-core and its variant drivers, the type1 container's IOMMU info):
 * each capability starts on an 8-byte boundary (its size is rounded up and
 * the padding zeroed), the `next` field of every capability but the last
 * holds the offset of the following one, and the last holds 0.
 *
 * Offsets are relative to the start of the info struct: the chain is built
 * for the place it will be copied to (`base`, the info struct's size), which
 * is what vfio_info_cap_shift() produces.
 */
export class CapChain {
  readonly #caps: Uint8Array[] = [];
  #size = 0;

  constructor(readonly base: number) {}

  get size(): number {
    return this.#size;
  }

  /** Appends a capability whose encoded bytes start with a vfio_info_cap_header (id and version set, next ignored). */
  add(encoded: Uint8Array): void {
    const padded = new Uint8Array(Math.ceil(encoded.length / 8) * 8);
    padded.set(encoded);
    const previous = this.#caps[this.#caps.length - 1];
    if (previous) vfio_info_cap_header.writeField(previous, 'next', this.base + this.#size);
    vfio_info_cap_header.writeField(padded, 'next', 0);
    this.#caps.push(padded);
    this.#size += padded.length;
  }

  bytes(): Uint8Array {
    const out = new Uint8Array(this.#size);
    let at = 0;
    for (const cap of this.#caps) {
      out.set(cap, at);
      at += cap.length;
    }
    return out;
  }
}
