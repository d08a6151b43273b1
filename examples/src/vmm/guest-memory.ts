import { PAGE_4K, readLe64, writeLe64, type Process, type TableMemory } from '@vfiosim/core';

/**
 * Guest RAM as a VMM holds it: a range of the VMM's own memory that the
 * guest sees at guest-physical addresses (IPAs) from `ipaBase`. The VMM
 * maps it into an IOAS at IOVA = IPA, which makes it stage 2 of a nested
 * translation.
 */
export class GuestRam {
  constructor(
    readonly proc: Process,
    /** Where the RAM is in the VMM's address space. */
    readonly va: bigint,
    /** Guest-physical address of its first byte. */
    readonly ipaBase: bigint,
    readonly size: bigint,
  ) {}

  vaOf(ipa: bigint): bigint {
    if (ipa < this.ipaBase || ipa >= this.ipaBase + this.size) throw new RangeError(`IPA 0x${ipa.toString(16)} is outside guest RAM`);
    return this.va + (ipa - this.ipaBase);
  }

  read(ipa: bigint, length: number): Uint8Array {
    const bytes = this.proc.mem.read(this.vaOf(ipa), length);
    if (typeof bytes === 'number') throw new Error(`guest RAM read at IPA 0x${ipa.toString(16)} failed: ${bytes}`);
    return bytes;
  }

  write(ipa: bigint, bytes: Uint8Array): void {
    const rc = this.proc.mem.write(this.vaOf(ipa), bytes);
    if (rc < 0) throw new Error(`guest RAM write at IPA 0x${ipa.toString(16)} failed: ${rc}`);
  }

  /**
   * The guest's page-table memory: tables are allocated from `pages` pages
   * at `tableIpa` and read and written by IPA, as a guest IOMMU driver
   * builds its stage-1 tables in its own RAM.
   */
  tableMemory(tableIpa: bigint, pages: number): TableMemory {
    let next = 0;
    return {
      readU64: (ipa) => readLe64(this.read(ipa, 8)),
      writeU64: (ipa, value) => {
        const bytes = new Uint8Array(8);
        writeLe64(bytes, value);
        this.write(ipa, bytes);
      },
      allocTable: () => {
        if (next === pages) throw new RangeError(`guest page-table area of ${pages} pages is full`);
        const ipa = tableIpa + BigInt(next++) * PAGE_4K;
        this.write(ipa, new Uint8Array(Number(PAGE_4K)));
        return ipa;
      },
      freeTable: () => {},
    };
  }
}
