/** Sizes of a BAR access: byte, word, dword, qword. */
export type BarAccessSize = 1 | 2 | 4 | 8;

/**
 * What answers reads and writes of a function's BARs. A device model plugs
 * one in to give registers meaning; offsets are relative to the BAR start,
 * values are little-endian, already checked to lie inside the BAR. The
 * MSI-X table and PBA never reach the handler: the function implements them.
 */
export interface BarHandler {
  read(bar: number, offset: bigint, size: BarAccessSize): bigint;
  write(bar: number, offset: bigint, size: BarAccessSize, value: bigint): void;
}

const PAGE_SHIFT = 12n;
const PAGE_SIZE = 1 << Number(PAGE_SHIFT);

/**
 * Plain memory behind every BAR: what reads back is what was written, 0
 * where nothing was. Pages are allocated on first write, so a 64 GiB BAR
 * costs nothing until used.
 */
export class PlainBarMemory implements BarHandler {
  private readonly pages = new Map<string, Uint8Array>();

  read(bar: number, offset: bigint, size: BarAccessSize): bigint {
    let value = 0n;
    for (let i = size - 1; i >= 0; i--) value = (value << 8n) | BigInt(this.byteAt(bar, offset + BigInt(i)));
    return value;
  }

  write(bar: number, offset: bigint, size: BarAccessSize, value: bigint): void {
    for (let i = 0; i < size; i++) {
      const at = offset + BigInt(i);
      const page = this.page(bar, at, true)!;
      page[Number(at & BigInt(PAGE_SIZE - 1))] = Number((value >> BigInt(i * 8)) & 0xffn);
    }
  }

  /** Forgets every byte: device memory after a reset reads as 0 again. */
  clear(): void {
    this.pages.clear();
  }

  private byteAt(bar: number, at: bigint): number {
    const page = this.page(bar, at, false);
    return page ? page[Number(at & BigInt(PAGE_SIZE - 1))] : 0;
  }

  private page(bar: number, at: bigint, create: boolean): Uint8Array | undefined {
    const key = `${bar}:${at >> PAGE_SHIFT}`;
    let page = this.pages.get(key);
    if (!page && create) {
      page = new Uint8Array(PAGE_SIZE);
      this.pages.set(key, page);
    }
    return page;
  }
}
