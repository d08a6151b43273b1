import type { ConfigSpace } from './config-space.js';
import {
  PCI_BASE_ADDRESS_MEM_PREFETCH,
  PCI_BASE_ADDRESS_MEM_TYPE_64,
  PCI_BASE_ADDRESS_SPACE_IO,
  PCI_ROM_ADDRESS_ENABLE,
} from './pci-regs.js';

/** How a BAR decodes: 32-bit memory, 64-bit memory (two registers) or I/O ports. */
export type BarKind = 'mem32' | 'mem64' | 'io';

/** A BAR as the hardware implements it. */
export interface BarSpec {
  /** BAR number 0-5; a 64-bit BAR also occupies `index + 1`. */
  readonly index: number;
  readonly kind: BarKind;
  /** Bytes decoded; a power of two. */
  readonly size: bigint;
  readonly prefetchable: boolean;
}

/** The smallest size each kind can decode (PCI spec: 16-byte memory, 4-byte I/O). */
export const MIN_BAR_SIZE: Readonly<Record<BarKind, bigint>> = { mem32: 16n, mem64: 16n, io: 4n };
/** The largest size a BAR of each kind can decode. */
export const MAX_BAR_SIZE: Readonly<Record<BarKind, bigint>> = { mem32: 1n << 31n, mem64: 1n << 63n, io: 256n };
export const MIN_ROM_SIZE = 2048n;
export const MAX_ROM_SIZE = 1n << 24n;

/** The read-only low bits of a BAR register: space, type, prefetchable. */
export function barFlags(bar: BarSpec): number {
  if (bar.kind === 'io') return PCI_BASE_ADDRESS_SPACE_IO;
  return (bar.kind === 'mem64' ? PCI_BASE_ADDRESS_MEM_TYPE_64 : 0) | (bar.prefetchable ? PCI_BASE_ADDRESS_MEM_PREFETCH : 0);
}

/**
 * Defines the BAR registers starting at `firstRegister` (0x10 in a header,
 * PCI_SRIOV_BAR in the SR-IOV capability). Sizing works as on hardware: the
 * address bits below the size are hard-wired to 0, so writing all-ones reads
 * back the size mask with the flag bits; a 64-bit BAR's upper register holds
 * the upper half of the mask.
 */
export function defineBarRegisters(config: ConfigSpace, firstRegister: number, bars: readonly BarSpec[]): void {
  for (const bar of bars) {
    const at = firstRegister + bar.index * 4;
    const addressMask = ~(bar.size - 1n);
    const lowBits = bar.kind === 'io' ? 0xfffffffcn : 0xfffffff0n;
    config.define(at, 4, { value: barFlags(bar), writable: Number(addressMask & lowBits) });
    if (bar.kind === 'mem64') {
      config.define(at + 4, 4, { value: 0, writable: Number((addressMask >> 32n) & 0xffffffffn) });
    }
  }
}

/** Defines an expansion ROM BAR: address bits above the size and the enable bit are RW. */
export function defineRomRegister(config: ConfigSpace, offset: number, size: bigint): void {
  const writable = Number(~(size - 1n) & 0xfffff800n) | PCI_ROM_ADDRESS_ENABLE;
  config.define(offset, 4, { value: 0, writable });
}

/** Number of 32-bit registers a BAR occupies. */
export function barRegisterCount(kind: BarKind): 1 | 2 {
  return kind === 'mem64' ? 2 : 1;
}

const KIND_NAME: Readonly<Record<BarKind, string>> = { mem32: 'a 32-bit memory', mem64: 'a 64-bit memory', io: 'an I/O' };

/** Why `size` cannot be a BAR of `kind`, or null. */
export function barSizeProblem(kind: BarKind, size: bigint): string | null {
  if (size <= 0n || (size & (size - 1n)) !== 0n) return `size ${size} is not a power of two`;
  if (size < MIN_BAR_SIZE[kind]) return `${KIND_NAME[kind]} BAR decodes at least ${MIN_BAR_SIZE[kind]} bytes, not ${size}`;
  if (size > MAX_BAR_SIZE[kind]) return `${KIND_NAME[kind]} BAR decodes at most ${MAX_BAR_SIZE[kind]} bytes, not ${size}`;
  return null;
}

/** Why `size` cannot be an expansion ROM, or null. */
export function romSizeProblem(size: bigint): string | null {
  if (size <= 0n || (size & (size - 1n)) !== 0n) return `size ${size} is not a power of two`;
  if (size < MIN_ROM_SIZE || size > MAX_ROM_SIZE) return `an expansion ROM is 2 KiB to 16 MiB, not ${size} bytes`;
  return null;
}
