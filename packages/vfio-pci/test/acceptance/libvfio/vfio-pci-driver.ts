import { expect } from 'vitest';
import { PCI_COMMAND, PCI_COMMAND_INTX_DISABLE, PCI_COMMAND_MASTER, PCI_COMMAND_MEMORY, VFIO_PCI_MSIX_IRQ_INDEX } from '@vfiosim/core';
import {
  CHANCMD_RESET,
  CHANCMD_SUSPEND,
  CHANSTS_DONE,
  CHANSTS_HALTED,
  CHANSTS_SUSPENDED,
  DESC_INT_EN,
  DESC_SIZE,
  ENGINE_VER,
  REG_CHAINADDR,
  REG_CHANCMD,
  REG_CHANCTRL,
  REG_CHANERR,
  REG_CHANSTS,
  REG_DMACOUNT,
  REG_VER,
  REG_XFERCAP,
  encodeDescriptor,
} from '../copy-engine.js';
import type { DmaRegion } from './iommu.js';
import type { VfioPciDevice } from './vfio-pci-device.js';

/*
 * The selftests' userspace driver layer (lib/vfio_pci_driver.c) with one
 * driver, for the copy engine of copy-engine.ts, written the way the ioat
 * driver is: a descriptor in the driver's DMA region whose IOVA goes to
 * CHAINADDR, a DMACOUNT write to kick, CHANSTS polled for DONE or HALTED.
 * Every register access is a load or store through the BAR 0 mmap.
 */

export class VfioPciDriver {
  /** The DMA region the driver keeps its descriptor and send_msi buffers in. */
  region: DmaRegion | null = null;
  initialized = false;
  memcpyInProgress = false;
  /** Index of the MSI-X vector the driver's interrupts arrive on. */
  msi = 0;
  maxMemcpySize = 0n;
  maxMemcpyCount = 0n;

  constructor(readonly device: VfioPciDevice) {}

  /** probe: the engine's version register must read back. */
  probe(): boolean {
    return this.#readb(REG_VER) === ENGINE_VER;
  }

  #bar0(): bigint {
    const vaddr = this.device.bars[0]!.vaddr;
    expect(vaddr, 'BAR 0 must be mapped').not.toBeNull();
    return vaddr!;
  }

  #read(offset: bigint, size: 1 | 2 | 4 | 8): bigint {
    const bytes = this.device.user.read(this.#bar0() + offset, size);
    let value = 0n;
    for (let i = size - 1; i >= 0; i--) value = (value << 8n) | BigInt(bytes[i]!);
    return value;
  }

  #write(offset: bigint, size: 1 | 2 | 4 | 8, value: bigint): void {
    const bytes = new Uint8Array(size);
    for (let i = 0; i < size; i++) bytes[i] = Number((value >> BigInt(8 * i)) & 0xffn);
    expect(this.device.user.proc.mem.write(this.#bar0() + offset, bytes)).toBe(0);
  }

  #readb(offset: bigint): number {
    return Number(this.#read(offset, 1));
  }

  #status(): bigint {
    return this.#read(REG_CHANSTS, 8) & 0x7n;
  }

  #reset(): void {
    this.#write(REG_CHANERR, 4, this.#read(REG_CHANERR, 4));
    this.#write(REG_CHANCMD, 1, CHANCMD_RESET);
    expect(this.#status()).toBe(CHANSTS_HALTED);
  }

  /** vfio_pci_driver_init. */
  init(): void {
    expect(this.region, 'the driver region must be mapped first').not.toBeNull();
    expect(this.initialized).toBe(false);
    expect(this.region!.size).toBeGreaterThanOrEqual(BigInt(DESC_SIZE + 16));
    this.device.configWritew(PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_INTX_DISABLE);
    this.#reset();
    this.device.irqEnable(VFIO_PCI_MSIX_IRQ_INDEX, 0, this.device.msixInfo.count);
    this.msi = 0;
    this.maxMemcpySize = 1n << BigInt(this.#readb(REG_XFERCAP));
    this.maxMemcpyCount = 0xffffn;
    this.initialized = true;
  }

  /** vfio_pci_driver_remove. */
  remove(): void {
    expect(this.initialized).toBe(true);
    this.#reset();
    this.device.irqDisable(VFIO_PCI_MSIX_IRQ_INDEX);
    this.initialized = false;
  }

  #start(src: bigint, dst: bigint, size: bigint, count: bigint, interrupt: boolean): void {
    const descVaddr = this.region!.vaddr;
    const descIova = this.device.iommu.hva2iova(descVaddr);
    const desc = encodeDescriptor({ ctl: interrupt ? DESC_INT_EN : 0, size: Number(size), src, dst, next: descIova });
    expect(this.device.user.proc.mem.write(descVaddr, desc)).toBe(0);
    this.#write(REG_CHAINADDR, 8, descIova);
    this.#write(REG_CHANCTRL, 2, 1n);
    this.#write(REG_DMACOUNT, 2, count);
  }

  /** vfio_pci_driver_memcpy_start. */
  memcpyStart(src: bigint, dst: bigint, size: bigint, count: bigint): void {
    expect(size).toBeLessThanOrEqual(this.maxMemcpySize);
    expect(count).toBeLessThanOrEqual(this.maxMemcpyCount);
    expect(this.initialized && !this.memcpyInProgress).toBe(true);
    this.#start(src, dst, size, count, false);
    this.memcpyInProgress = true;
  }

  /** vfio_pci_driver_memcpy_wait: 0 when the copies completed, -1 when the channel halted (then reset). */
  memcpyWait(): number {
    this.memcpyInProgress = false;
    return this.#wait();
  }

  #wait(): number {
    for (;;) {
      const status = this.#status();
      if (status === CHANSTS_DONE) break;
      if (status === CHANSTS_HALTED) {
        this.#reset();
        return -1;
      }
    }
    this.#write(REG_CHANCMD, 1, CHANCMD_SUSPEND);
    expect(this.#status()).toBe(CHANSTS_SUSPENDED);
    return 0;
  }

  /** vfio_pci_driver_memcpy. */
  memcpy(src: bigint, dst: bigint, size: bigint): number {
    this.memcpyStart(src, dst, size, 1n);
    return this.memcpyWait();
  }

  /** vfio_pci_driver_send_msi: an 8-byte copy inside the driver region with the interrupt bit set. */
  sendMsi(): void {
    const base = this.region!.vaddr + BigInt(DESC_SIZE);
    this.#start(this.device.iommu.hva2iova(base), this.device.iommu.hva2iova(base + 8n), 8n, 1n, true);
    expect(this.#wait()).toBe(0);
  }
}
