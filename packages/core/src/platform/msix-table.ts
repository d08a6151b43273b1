import { SimError } from '../errors/index.js';
import { PCI_MSIX_ENTRY_CTRL_MASKBIT, PCI_MSIX_ENTRY_SIZE, PCI_MSIX_ENTRY_VECTOR_CTRL } from './pci-regs.js';
import type { BarAccessSize } from './bar-memory.js';

/** One MSI-X table entry as programmed. */
export interface MsixEntry {
  readonly address: bigint;
  readonly data: number;
  readonly masked: boolean;
}

/**
 * The MSI-X table and Pending Bit Array a function implements in its BARs.
 * After reset every vector is masked and nothing is pending; the low two
 * address bits and the reserved vector-control bits are hard-wired to 0; the
 * PBA is read-only to software.
 */
export class MsixTable {
  readonly size: number;
  private readonly words: Uint32Array;
  private readonly pending: Uint8Array;

  constructor(size: number) {
    this.size = size;
    this.words = new Uint32Array(size * 4);
    this.pending = new Uint8Array(Math.ceil(size / 64) * 8);
    this.reset();
  }

  reset(): void {
    this.words.fill(0);
    this.pending.fill(0);
    for (let i = 0; i < this.size; i++) this.words[i * 4 + 3] = PCI_MSIX_ENTRY_CTRL_MASKBIT;
  }

  /** Table bytes at `offset` (relative to the table start). */
  readTable(offset: number, size: BarAccessSize): bigint {
    let value = 0n;
    for (let i = size - 1; i >= 0; i--) {
      const at = offset + i;
      value = (value << 8n) | BigInt((this.words[at >> 2] >>> ((at & 3) * 8)) & 0xff);
    }
    return value;
  }

  writeTable(offset: number, size: BarAccessSize, value: bigint): void {
    for (let i = 0; i < size; i++) {
      const at = offset + i;
      const word = at >> 2;
      const shift = (at & 3) * 8;
      const byte = Number((value >> BigInt(i * 8)) & 0xffn);
      this.words[word] = ((this.words[word] & ~(0xff << shift)) | (byte << shift)) >>> 0;
    }
    for (let word = offset >> 2; word <= (offset + size - 1) >> 2; word++) {
      const field = (word & 3) * 4;
      if (field === 0) this.words[word] &= 0xfffffffc;
      if (field === PCI_MSIX_ENTRY_VECTOR_CTRL) this.words[word] &= PCI_MSIX_ENTRY_CTRL_MASKBIT;
    }
  }

  /** PBA bytes at `offset` (relative to the PBA start); writes to the PBA are ignored by hardware. */
  readPba(offset: number, size: BarAccessSize): bigint {
    let value = 0n;
    for (let i = size - 1; i >= 0; i--) value = (value << 8n) | BigInt(this.pending[offset + i]);
    return value;
  }

  entry(vector: number): MsixEntry {
    const base = this.index(vector) * 4;
    return {
      address: (BigInt(this.words[base + 1]) << 32n) | BigInt(this.words[base]),
      data: this.words[base + 2],
      masked: (this.words[base + 3] & PCI_MSIX_ENTRY_CTRL_MASKBIT) !== 0,
    };
  }

  isPending(vector: number): boolean {
    const v = this.index(vector);
    return (this.pending[v >> 3] & (1 << (v & 7))) !== 0;
  }

  /** The device latches or clears a vector's pending bit (a masked vector that fired). */
  setPending(vector: number, pending: boolean): void {
    const v = this.index(vector);
    if (pending) this.pending[v >> 3] |= 1 << (v & 7);
    else this.pending[v >> 3] &= ~(1 << (v & 7));
  }

  /** Bytes the table occupies. */
  get tableLength(): number {
    return this.size * PCI_MSIX_ENTRY_SIZE;
  }

  /** Bytes the PBA occupies. */
  get pbaLength(): number {
    return this.pending.length;
  }

  private index(vector: number): number {
    if (!Number.isInteger(vector) || vector < 0 || vector >= this.size) {
      throw new SimError('OUT_OF_RANGE', `MSI-X vector ${vector} is outside a table of ${this.size} entries`);
    }
    return vector;
  }
}
