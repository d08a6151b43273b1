import type { Frame, PhysicalMemory } from '../../os/phys-mem.js';

/*
 * Where page tables live. A table walker reads 64-bit little-endian entries
 * at addresses; whose addresses those are depends on the table:
 *
 * - a host (stage-2 / paging) table lives in host physical memory, in frames
 *   the IOMMU driver allocated: physTableMemory();
 * - a guest stage-1 table lives in guest memory and its addresses are
 *   guest-physical (IPA); the nested walk translates every table address
 *   through stage 2 before it reads (walk.ts), and a guest (or a VMM model
 *   playing the guest) builds such a table through any TableMemory over its
 *   RAM.
 *
 * Public API: TABLE_GRANULE, TableMemory, physTableMemory(), readLe64(), writeLe64()
 */

/** Size and alignment of one page table (a 4 KiB frame of 512 entries). */
export const TABLE_GRANULE = 4096n;

/** The memory a page table is read from, written to and allocated in. */
export interface TableMemory {
  readU64(addr: bigint): bigint;
  writeU64(addr: bigint, value: bigint): void;
  /** A zeroed, TABLE_GRANULE-aligned table; its address in this memory's address space. */
  allocTable(): bigint;
  freeTable(addr: bigint): void;
}

export function readLe64(bytes: Uint8Array, at = 0): bigint {
  const lo = (bytes[at]! | (bytes[at + 1]! << 8) | (bytes[at + 2]! << 16) | (bytes[at + 3]! << 24)) >>> 0;
  const hi = (bytes[at + 4]! | (bytes[at + 5]! << 8) | (bytes[at + 6]! << 16) | (bytes[at + 7]! << 24)) >>> 0;
  return BigInt(lo) | (BigInt(hi) << 32n);
}

export function writeLe64(bytes: Uint8Array, value: bigint, at = 0): void {
  const lo = Number(value & 0xffffffffn);
  const hi = Number((value >> 32n) & 0xffffffffn);
  bytes[at] = lo & 0xff;
  bytes[at + 1] = (lo >>> 8) & 0xff;
  bytes[at + 2] = (lo >>> 16) & 0xff;
  bytes[at + 3] = (lo >>> 24) & 0xff;
  bytes[at + 4] = hi & 0xff;
  bytes[at + 5] = (hi >>> 8) & 0xff;
  bytes[at + 6] = (hi >>> 16) & 0xff;
  bytes[at + 7] = (hi >>> 24) & 0xff;
}

/**
 * Physical memory as the IOMMU hardware reads it: any physical address,
 * entries read straight from the frame's bytes (no copy on the walk path).
 * An address with no live frame behind it reads as zero (a non-present
 * entry) and a write there is dropped, as PhysicalMemory does for stray DMA.
 */
export function physReadU64(mem: PhysicalMemory, pa: bigint): bigint {
  const frame = mem.frame(pa >> 12n);
  return frame ? readLe64(frame.data, Number(pa & 0xfffn)) : 0n;
}

export function physWriteU64(mem: PhysicalMemory, pa: bigint, value: bigint): void {
  const frame = mem.frame(pa >> 12n);
  if (frame) {
    writeLe64(frame.data, value, Number(pa & 0xfffn));
    return;
  }
  const bytes = new Uint8Array(8);
  writeLe64(bytes, value);
  mem.write(pa, bytes);
}

/**
 * Page tables in host physical memory: each table is one frame the driver
 * allocates from `mem` and holds a reference on until it frees the table.
 * Reads and writes reach any physical address, so the same object also
 * serves the walk of a guest table once its IPAs are translated.
 */
export function physTableMemory(mem: PhysicalMemory): TableMemory {
  const owned = new Map<bigint, Frame>();
  return {
    readU64: (addr) => physReadU64(mem, addr),
    writeU64: (addr, value) => physWriteU64(mem, addr, value),
    allocTable: () => {
      const frame = mem.allocate();
      owned.set(frame.pa, frame);
      return frame.pa;
    },
    freeTable: (addr) => {
      const frame = owned.get(addr);
      if (!frame) throw new Error(`io-pgtable: 0x${addr.toString(16)} is not a table this memory allocated`);
      owned.delete(addr);
      frame.put();
    },
  };
}
