import type { TableMemory } from '../iommu/io-pgtable/index.js';
import { readLe64, writeLe64 } from '../iommu/io-pgtable/index.js';
import type { Process } from '../os/index.js';

/*
 * Guest RAM as the IOMMU suite lays it out: anonymous memory of the VMM
 * process, mapped into the IOAS at IPA `ipaBase` (the stage-2 mapping of a
 * nested setup). The guest's stage-1 tables are written here, in guest
 * memory, exactly where the hardware will read them through stage 2.
 *
 * Page tables are taken from the bottom of the RAM; the suite keeps its
 * data pages at the top (dataPage(n)), so the two never meet.
 *
 * Public API: ConformanceGuest, GuestRam
 */

const PAGE = 4096n;

/** What a stage-1 format sees of the guest: its RAM by IPA, and a page allocator for tables. */
export interface ConformanceGuest {
  readonly proc: Process;
  /** IPA of the first byte of guest RAM. */
  readonly ipaBase: bigint;
  /** Bytes of guest RAM. */
  readonly size: bigint;
  read(ipa: bigint, length: number): Uint8Array;
  write(ipa: bigint, bytes: Uint8Array): void;
  /** Host physical address of a guest byte (the frame iommufd pinned for it). */
  hpa(ipa: bigint): bigint;
  /** A zeroed 4 KiB guest page for tables; its IPA. */
  allocPage(): bigint;
  /** Guest RAM as a TableMemory (addresses are IPAs), for formats built on the generic IO page table. */
  readonly tableMemory: TableMemory;
}

export class GuestRam implements ConformanceGuest {
  readonly tableMemory: TableMemory;
  #nextTable = 0n;
  /** Pages at the top reserved for data; tables must stay below them. */
  readonly #dataPages: bigint;

  constructor(
    readonly proc: Process,
    /** Where the RAM is mapped in the process. */
    readonly va: bigint,
    readonly ipaBase: bigint,
    readonly size: bigint,
    dataPages: number,
  ) {
    this.#dataPages = BigInt(dataPages);
    this.tableMemory = {
      readU64: (addr) => readLe64(this.read(addr, 8)),
      writeU64: (addr, value) => {
        const bytes = new Uint8Array(8);
        writeLe64(bytes, value);
        this.write(addr, bytes);
      },
      allocTable: () => this.allocPage(),
      // A guest frees a table by forgetting it; the page is zeroed but not reused (the suite's tables are few).
      freeTable: (addr) => this.write(addr, new Uint8Array(Number(PAGE))),
    };
  }

  #va(ipa: bigint, length: number): bigint {
    if (ipa < this.ipaBase || ipa + BigInt(length) > this.ipaBase + this.size) {
      throw new RangeError(`IPA 0x${ipa.toString(16)}+${length} is outside guest RAM`);
    }
    return this.va + (ipa - this.ipaBase);
  }

  read(ipa: bigint, length: number): Uint8Array {
    return this.proc.mm.copyFromUser(this.#va(ipa, length), length);
  }

  write(ipa: bigint, bytes: Uint8Array): void {
    this.proc.mm.copyToUser(this.#va(ipa, bytes.length), bytes);
  }

  hpa(ipa: bigint): bigint {
    const pa = this.proc.mm.translate(this.#va(ipa, 1));
    if (pa === undefined) throw new RangeError(`guest page at IPA 0x${ipa.toString(16)} has no frame`);
    return pa;
  }

  allocPage(): bigint {
    const ipa = this.ipaBase + this.#nextTable * PAGE;
    if (this.#nextTable + this.#dataPages >= this.size / PAGE) throw new RangeError('guest RAM has no page left for tables');
    this.#nextTable++;
    this.write(ipa, new Uint8Array(Number(PAGE)));
    return ipa;
  }

  /** IPA of data page `n` (0 is the last page of RAM). */
  dataPage(n: number): bigint {
    if (n < 0 || BigInt(n) >= this.#dataPages) throw new RangeError(`data page ${n} is not reserved`);
    return this.ipaBase + this.size - BigInt(n + 1) * PAGE;
  }

  /** Every byte of guest RAM (to prove a refused DMA changed nothing). */
  snapshot(): Uint8Array {
    return this.read(this.ipaBase, Number(this.size));
  }
}
