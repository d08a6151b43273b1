import {
  PCI_COMMAND,
  PCI_COMMAND_MASTER,
  PlainBarMemory,
  pciSignalMsi,
  type BarAccessSize,
  type BarHandler,
  type Host,
  type PciFunction,
  type VfioSimPlugin,
} from '@vfiosim/core';

/*
 * A toy device model behind BAR 0 of the demo's NVMe drive: the NVMe
 * Version register, and a vendor-specific DMA engine a driver programs
 * with an IOVA and a length, then starts with a doorbell write. The
 * device DMA-writes a fixed message through the host's DMA engine (so the
 * IOMMU translates or refuses it) and raises MSI-X vector 0 on completion.
 * Everything else in the BAR is plain memory.
 */

/** NVMe VS register: version 1.4.0. */
export const REG_VS = 0x08n;
export const NVME_VERSION_1_4 = 0x0001_0400n;
/** The toy DMA engine's registers (vendor-specific space of the register page). */
export const REG_DMA_IOVA = 0xe00n;
export const REG_DMA_LEN = 0xe08n;
export const REG_DMA_DOORBELL = 0xe0cn;
export const REG_DMA_STATUS = 0xe10n;
export const DMA_STATUS_IDLE = 0n;
export const DMA_STATUS_DONE = 1n;
/** The IOMMU refused the write; nothing reached memory. */
export const DMA_STATUS_FAULT = 0xdead0001n;
/** Bus Master Enable is clear: the device may not issue DMA at all. */
export const DMA_STATUS_NO_BUS_MASTER = 0xdead0002n;

/** The bytes the engine writes (repeated to the programmed length). */
export const DMA_MESSAGE = new TextEncoder().encode('hello from the device, via the IOMMU\n');

export class ToyDmaDevice implements BarHandler {
  readonly #plain = new PlainBarMemory();
  #iova = 0n;
  #length = 0n;
  #status = DMA_STATUS_IDLE;

  constructor(
    readonly fn: PciFunction,
    readonly host: Host,
  ) {
    // A reset returns the device to its power-on state: the engine forgets everything.
    fn.onReset(() => {
      this.#plain.clear();
      this.#iova = 0n;
      this.#length = 0n;
      this.#status = DMA_STATUS_IDLE;
    });
  }

  read(bar: number, offset: bigint, size: BarAccessSize): bigint {
    if (bar === 0) {
      if (offset === REG_VS && size === 4) return NVME_VERSION_1_4;
      if (offset === REG_DMA_IOVA && size === 8) return this.#iova;
      if (offset === REG_DMA_LEN && size === 4) return this.#length;
      if (offset === REG_DMA_STATUS && size === 4) return this.#status;
    }
    return this.#plain.read(bar, offset, size);
  }

  write(bar: number, offset: bigint, size: BarAccessSize, value: bigint): void {
    if (bar === 0) {
      if (offset === REG_VS) return;
      if (offset === REG_DMA_IOVA && size === 8) return void (this.#iova = value);
      if (offset === REG_DMA_LEN && size === 4) return void (this.#length = value);
      if (offset === REG_DMA_DOORBELL && size === 4) return this.#run();
    }
    this.#plain.write(bar, offset, size, value);
  }

  #run(): void {
    if ((this.fn.config.hwRead(PCI_COMMAND, 2) & PCI_COMMAND_MASTER) === 0) {
      this.#status = DMA_STATUS_NO_BUS_MASTER;
    } else {
      const payload = new Uint8Array(Number(this.#length));
      for (let i = 0; i < payload.length; i++) payload[i] = DMA_MESSAGE[i % DMA_MESSAGE.length]!;
      const fault = this.host.dma.tryDmaWrite(this.fn, this.#iova, payload);
      this.#status = fault ? DMA_STATUS_FAULT : DMA_STATUS_DONE;
    }
    // Completion interrupt, whatever the outcome.
    pciSignalMsi(this.fn, 0);
  }
}

/** Plugs the toy DMA engine into the function at `bdf` once the host is built. */
export function toyDmaDevice(bdf: string): VfioSimPlugin {
  return {
    name: 'toy-dma-device',
    apply(host) {
      const fn = host.platform.get(bdf);
      fn.setBarHandler(new ToyDmaDevice(fn, host));
    },
  };
}
