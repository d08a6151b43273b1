import {
  PCI_COMMAND,
  PCI_COMMAND_MASTER,
  pciSignalMsi,
  type BarAccessSize,
  type BarHandler,
  type DmaEngine,
  type PciFunction,
} from '@vfiosim/core';

/*
 * A descriptor-driven DMA copy engine, the test's stand-in for the I/OAT
 * and DSA channels the VFIO selftest drivers program. Only its registers
 * are invented; everything it does goes through the model's hardware: it
 * fetches descriptors and moves bytes with DMA through the IOMMU (at the
 * IOVAs userspace mapped), refuses to master the bus while Bus Master
 * Enable is clear, and raises MSI-X/MSI vector 0 through the function.
 *
 * BAR 0 layout:
 *   0x00 VER       u8   0x33
 *   0x08 XFERCAP   u8   log2 of the largest copy (20: 1 MiB)
 *   0x80 channel:
 *     +0x00 CHANCTRL  u16  bit 0: abort on any error
 *     +0x04 DMACOUNT  u16  writing n runs n descriptors from CHAINADDR
 *     +0x08 CHANSTS   u64  low 3 bits: ACTIVE 0, DONE 1, SUSPENDED 2, HALTED 3
 *     +0x10 CHAINADDR u64  IOVA of the first descriptor
 *     +0x18 CHANCMD   u8   SUSPEND 0x04, RESET 0x20
 *     +0x1c CHANERR   u32  write 1s to clear
 *
 * Descriptor (32 bytes, little-endian): ctl u32 (bit 0: interrupt on
 * completion), size u32, src u64, dst u64, next u64.
 */

export const ENGINE_VER = 0x33;
export const ENGINE_XFERCAP_LOG2 = 20;
export const REG_VER = 0x00n;
export const REG_XFERCAP = 0x08n;
export const CHANNEL = 0x80n;
export const REG_CHANCTRL = CHANNEL + 0x00n;
export const REG_DMACOUNT = CHANNEL + 0x04n;
export const REG_CHANSTS = CHANNEL + 0x08n;
export const REG_CHAINADDR = CHANNEL + 0x10n;
export const REG_CHANCMD = CHANNEL + 0x18n;
export const REG_CHANERR = CHANNEL + 0x1cn;

export const CHANSTS_ACTIVE = 0n;
export const CHANSTS_DONE = 1n;
export const CHANSTS_SUSPENDED = 2n;
export const CHANSTS_HALTED = 3n;
export const CHANCMD_SUSPEND = 0x04n;
export const CHANCMD_RESET = 0x20n;
/** CHANERR bits. */
export const CHANERR_MASTER_ABORT = 1n << 0n;
export const CHANERR_DESC_READ = 1n << 1n;
export const CHANERR_SRC_READ = 1n << 2n;
export const CHANERR_DST_WRITE = 1n << 3n;
export const CHANERR_SIZE = 1n << 4n;

export const DESC_SIZE = 32;
export const DESC_INT_EN = 1;

export interface Descriptor {
  readonly ctl: number;
  readonly size: number;
  readonly src: bigint;
  readonly dst: bigint;
  readonly next: bigint;
}

export function encodeDescriptor(desc: Descriptor): Uint8Array {
  const bytes = new Uint8Array(DESC_SIZE);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, desc.ctl, true);
  view.setUint32(4, desc.size, true);
  view.setBigUint64(8, desc.src, true);
  view.setBigUint64(16, desc.dst, true);
  view.setBigUint64(24, desc.next, true);
  return bytes;
}

function decodeDescriptor(bytes: Uint8Array): Descriptor {
  const view = new DataView(bytes.buffer, bytes.byteOffset, DESC_SIZE);
  return {
    ctl: view.getUint32(0, true),
    size: view.getUint32(4, true),
    src: view.getBigUint64(8, true),
    dst: view.getBigUint64(16, true),
    next: view.getBigUint64(24, true),
  };
}

/** The engine behind BAR 0 of `fn`; plug it in with fn.setBarHandler(). */
export class CopyEngine implements BarHandler {
  chansts = CHANSTS_HALTED;
  chainaddr = 0n;
  chanctrl = 0n;
  chanerr = 0n;
  /** Copies completed since power-on, for the test to look at. */
  completed = 0;

  constructor(
    readonly fn: PciFunction,
    readonly dma: DmaEngine,
  ) {}

  read(bar: number, offset: bigint, size: BarAccessSize): bigint {
    if (bar !== 0) return 0n;
    const mask = (1n << BigInt(8 * size)) - 1n;
    switch (offset) {
      case REG_VER:
        return BigInt(ENGINE_VER);
      case REG_XFERCAP:
        return BigInt(ENGINE_XFERCAP_LOG2);
      case REG_CHANCTRL:
        return this.chanctrl & mask;
      case REG_CHANSTS:
        return this.chansts & mask;
      case REG_CHAINADDR:
        return this.chainaddr & mask;
      case REG_CHANCMD:
        return 0n;
      case REG_CHANERR:
        return this.chanerr & mask;
      default:
        return 0n;
    }
  }

  write(bar: number, offset: bigint, _size: BarAccessSize, value: bigint): void {
    if (bar !== 0) return;
    switch (offset) {
      case REG_CHANCTRL:
        this.chanctrl = value;
        break;
      case REG_CHAINADDR:
        this.chainaddr = value;
        break;
      case REG_CHANERR:
        this.chanerr &= ~value;
        break;
      case REG_CHANCMD:
        if (value & CHANCMD_RESET) {
          this.chanerr = 0n;
          this.chansts = CHANSTS_HALTED;
        } else if (value & CHANCMD_SUSPEND && this.chansts === CHANSTS_DONE) {
          this.chansts = CHANSTS_SUSPENDED;
        }
        break;
      case REG_DMACOUNT:
        this.#run(Number(value & 0xffffn));
        break;
    }
  }

  /** Runs `count` descriptors from CHAINADDR; any error halts the channel without an interrupt. */
  #run(count: number): void {
    this.chansts = CHANSTS_ACTIVE;
    let at = this.chainaddr;
    for (let i = 0; i < count; i++) {
      // A function with Bus Master Enable clear cannot issue memory requests.
      if (!(this.fn.config.hwRead(PCI_COMMAND, 2) & PCI_COMMAND_MASTER)) return this.#halt(CHANERR_MASTER_ABORT);
      const raw = new Uint8Array(DESC_SIZE);
      if (this.dma.tryDmaRead(this.fn, at, raw)) return this.#halt(CHANERR_DESC_READ);
      const desc = decodeDescriptor(raw);
      if (desc.size > 1 << ENGINE_XFERCAP_LOG2) return this.#halt(CHANERR_SIZE);
      const data = new Uint8Array(desc.size);
      if (this.dma.tryDmaRead(this.fn, desc.src, data)) return this.#halt(CHANERR_SRC_READ);
      if (this.dma.tryDmaWrite(this.fn, desc.dst, data)) return this.#halt(CHANERR_DST_WRITE);
      this.completed++;
      if (desc.ctl & DESC_INT_EN) pciSignalMsi(this.fn, 0);
      at = desc.next;
    }
    this.chansts = CHANSTS_DONE;
  }

  #halt(error: bigint): void {
    this.chanerr |= error;
    this.chansts = CHANSTS_HALTED;
  }
}
