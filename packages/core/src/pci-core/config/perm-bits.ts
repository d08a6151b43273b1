import type { VfioPciCoreDevice } from '../vfio-pci-core-device.js';

/**
 * Reads one chunk (1, 2 or 4 bytes at `pos`, `offset` bytes into its
 * capability) and returns its little-endian value.
 */
export type ConfigReadFn = (vdev: VfioPciCoreDevice, pos: number, count: number, perm: PermBits, offset: number) => number;

/** Writes one chunk; `value` holds the user's `count` bytes, little-endian. */
export type ConfigWriteFn = (vdev: VfioPciCoreDevice, pos: number, count: number, perm: PermBits, offset: number, value: number) => void;

/**
 * How the bytes of one capability (or of the standard header) behave for
 * the user, one bit per register bit, as vfio_pci_config.c's perm_bits:
 *
 *   virt   the bit lives in the device's config shadow (vconfig): reads
 *          return the shadow, writes go to the shadow, the function never
 *          sees them;
 *   write  the user may change the bit; writes to other bits are dropped.
 *
 * A bit that is neither virtual nor writable reads from the function and
 * ignores writes. Tables are rounded up to whole dwords so an access that
 * runs past a capability's last register still finds zero bits.
 *
 * `read` and `write` are the access functions; a table without `write`
 * drops every write (read-only capabilities).
 */
export class PermBits {
  readonly virt: Uint8Array;
  readonly writable: Uint8Array;

  constructor(
    size: number,
    readonly read: ConfigReadFn | null,
    readonly write: ConfigWriteFn | null,
  ) {
    const rounded = (size + 3) & ~3;
    this.virt = new Uint8Array(rounded);
    this.writable = new Uint8Array(rounded);
  }

  /** Sets the virtual and writable bits of the byte at `offset`. */
  byte(offset: number, virt: number, write: number): this {
    return this.#set(offset, 1, virt, write);
  }

  word(offset: number, virt: number, write: number): this {
    return this.#set(offset, 2, virt, write);
  }

  dword(offset: number, virt: number, write: number): this {
    return this.#set(offset, 4, virt, write);
  }

  /** The virtual bits of `count` bytes at `offset`, little-endian. */
  virtBits(offset: number, count: number): number {
    return gatherBits(this.virt, offset, count);
  }

  /** The writable bits of `count` bytes at `offset`, little-endian. */
  writeBits(offset: number, count: number): number {
    return gatherBits(this.writable, offset, count);
  }

  #set(offset: number, count: number, virt: number, write: number): this {
    for (let i = 0; i < count; i++) {
      this.virt[offset + i] = (virt >>> (8 * i)) & 0xff;
      this.writable[offset + i] = (write >>> (8 * i)) & 0xff;
    }
    return this;
  }
}

/** Every bit of a `count`-byte value. */
export function fullMask(count: number): number {
  return count === 4 ? 0xffffffff : (1 << (8 * count)) - 1;
}

/** Little-endian value of `count` bytes; bytes past the end of the table count as zero. */
export function gatherBits(bytes: Uint8Array, offset: number, count: number): number {
  let value = 0;
  for (let i = count - 1; i >= 0; i--) value = (value << 8) | (bytes[offset + i] ?? 0);
  return value >>> 0;
}

/** Stores the low `count` bytes of `value` little-endian. */
export function scatterBits(bytes: Uint8Array, offset: number, count: number, value: number): void {
  for (let i = 0; i < count; i++) bytes[offset + i] = (value >>> (8 * i)) & 0xff;
}

/** Shorthands for the tables, as vfio_pci_config.c spells them. */
export const ALL_VIRT = 0xffffffff;
export const NO_VIRT = 0;
export const ALL_WRITE = 0xffffffff;
export const NO_WRITE = 0;
