import { expect } from 'vitest';
import {
  Errno,
  PCI_BASE_ADDRESS_0,
  PCI_BASE_ADDRESS_MEM_TYPE_64,
  PCI_BASE_ADDRESS_SPACE_IO,
  PCI_CAPABILITY_LIST,
  PCI_CAP_ID_MSI,
  PCI_CAP_ID_MSIX,
  PCI_INTERRUPT_PIN,
  PCI_MSIX_FLAGS,
  PCI_MSIX_FLAGS_QSIZE,
  PCI_MSIX_PBA,
  PCI_MSIX_TABLE,
  PCI_MSI_FLAGS,
  PCI_ROM_ADDRESS,
  PCI_ROM_ADDRESS_MASK,
  PROT_READ,
  PROT_WRITE,
  VFIO_DEVICE_FLAGS_PCI,
  VFIO_IRQ_INFO_NORESIZE,
  VFIO_IRQ_SET_ACTION_TRIGGER,
  VFIO_IRQ_SET_DATA_EVENTFD,
  VFIO_IRQ_SET_DATA_NONE,
  VFIO_PCI_BAR0_REGION_INDEX,
  VFIO_PCI_CONFIG_REGION_INDEX,
  VFIO_PCI_ERR_IRQ_INDEX,
  VFIO_PCI_INTX_IRQ_INDEX,
  VFIO_PCI_MSIX_IRQ_INDEX,
  VFIO_PCI_REQ_IRQ_INDEX,
  VFIO_PCI_ROM_REGION_INDEX,
  VFIO_REGION_INFO_FLAG_MMAP,
  VFIO_REGION_INFO_FLAG_READ,
  VFIO_REGION_INFO_FLAG_WRITE,
  vfio_device_info,
  vfio_irq_info,
  vfio_irq_set,
  vfio_pci_dependent_device,
  vfio_pci_hot_reset,
  vfio_pci_hot_reset_info,
  vfio_region_info,
} from '@vfiosim/core';
import type { Syscalls } from './trace.js';

/*
 * QEMU's hw/vfio device and PCI code (device.c, pci.c), reduced to the
 * system calls it makes and the decisions it takes on their answers, so
 * that a test drives the kernel model exactly as `-device vfio-pci` does.
 */

const PCIE_CONFIG_SPACE_SIZE = 4096;
/** PCI_MSIX_FLAGS_BIRMASK. */
const BIRMASK = 0x7;

export interface QemuRegion {
  readonly info: vfio_region_info;
  /** The whole buffer of the last GET_REGION_INFO, capability chain included. */
  readonly bytes: Uint8Array;
}

export interface QemuBar {
  region: QemuRegion;
  ioport: boolean;
  mem64: boolean;
  size: bigint;
  mmap: bigint | null;
}

export interface QemuMsix {
  tableBar: number;
  tableOffset: number;
  pbaBar: number;
  pbaOffset: number;
  entries: number;
  noresize: boolean;
}

/** The VFIOPCIDevice half that talks to the kernel. */
export class QemuVfioPci {
  readonly sys: Syscalls;
  readonly fd: number;
  info!: vfio_device_info;
  regionCache = new Map<number, QemuRegion>();
  configSize = 0n;
  configOffset = 0n;
  /** QEMU's copy of config space (vdev->pdev.config). */
  config = new Uint8Array(PCIE_CONFIG_SPACE_SIZE);
  readonly bars: QemuBar[] = [];
  romSize = 0;
  msix: QemuMsix | null = null;
  pciAer = false;
  intxFd = -1;
  errFd = -1;
  reqFd = -1;
  /** MSI-X vector eventfds by vector number (QEMU's msi_vectors[].interrupt). */
  readonly msixFds = new Map<number, number>();
  nrVectors = 0;
  interrupt: 'none' | 'intx' | 'msi' | 'msix' = 'none';

  constructor(sys: Syscalls, fd: number) {
    this.sys = sys;
    this.fd = fd;
  }

  /** vfio_get_device_info (helpers.c): GET_INFO, again with the argsz the kernel asked for. */
  getDeviceInfo(): vfio_device_info {
    let argsz = vfio_device_info.size;
    for (;;) {
      const { rc, out } = this.sys.ioctl(this.fd, 'VFIO_DEVICE_GET_INFO', vfio_device_info, { argsz }, argsz);
      expect(rc).toBe(0);
      if (out.argsz <= argsz) {
        this.info = out;
        return out;
      }
      argsz = out.argsz;
    }
  }

  /** vfio_device_get_region_info: cached; the argsz dance when the kernel has capabilities to give. */
  getRegionInfo(index: number): { rc: number; region: QemuRegion | null } {
    const cached = this.regionCache.get(index);
    if (cached) return { rc: 0, region: cached };
    let argsz = vfio_region_info.size;
    for (;;) {
      const { rc, out, bytes } = this.sys.ioctl(this.fd, 'VFIO_DEVICE_GET_REGION_INFO', vfio_region_info, { argsz, index }, argsz);
      if (rc !== 0) return { rc, region: null };
      if (out.argsz > argsz) {
        argsz = out.argsz;
        continue;
      }
      const region = { info: out, bytes };
      if (index < this.info.num_regions) this.regionCache.set(index, region);
      return { rc, region };
    }
  }

  getIrqInfo(index: number): { rc: number; info: vfio_irq_info } {
    const { rc, out } = this.sys.ioctl(this.fd, 'VFIO_DEVICE_GET_IRQ_INFO', vfio_irq_info, { argsz: vfio_irq_info.size, index });
    return { rc, info: out };
  }

  /** vfio_populate_device. */
  populateDevice(): void {
    expect(this.info.flags & VFIO_DEVICE_FLAGS_PCI).toBeTruthy();
    expect(this.info.num_regions).toBeGreaterThanOrEqual(VFIO_PCI_CONFIG_REGION_INDEX + 1);
    expect(this.info.num_irqs).toBeGreaterThanOrEqual(VFIO_PCI_MSIX_IRQ_INDEX + 1);
    for (let i = VFIO_PCI_BAR0_REGION_INDEX; i < VFIO_PCI_ROM_REGION_INDEX; i++) {
      const { rc, region } = this.getRegionInfo(i);
      expect(rc, `failed to get region ${i} info`).toBe(0);
      this.bars[i] = { region: region!, ioport: false, mem64: false, size: 0n, mmap: null };
    }
    const { rc, region } = this.getRegionInfo(VFIO_PCI_CONFIG_REGION_INDEX);
    expect(rc, 'failed to get config info').toBe(0);
    this.configSize = region!.info.size;
    this.configOffset = region!.info.offset;
    const err = this.getIrqInfo(VFIO_PCI_ERR_IRQ_INDEX);
    if (err.rc === 0 && err.info.count === 1) this.pciAer = true;
  }

  /** The pread of config space at realize: QEMU's config size bounded by the region's. */
  readConfig(): void {
    const length = Number(this.configSize < BigInt(PCIE_CONFIG_SPACE_SIZE) ? this.configSize : BigInt(PCIE_CONFIG_SPACE_SIZE));
    const { rc, bytes } = this.sys.pread(this.fd, length, this.configOffset);
    expect(rc, 'failed to read device config space').toBe(length);
    this.config.set(bytes);
  }

  /** vfio_pci_size_rom: the ROM BAR sized through the device fd, restoring what was there. */
  sizeRom(): number {
    const at = this.configOffset + BigInt(PCI_ROM_ADDRESS);
    const orig = this.sys.preadU32(this.fd, at);
    expect(this.sys.pwriteU32(this.fd, PCI_ROM_ADDRESS_MASK, at)).toBe(4);
    const sized = this.sys.preadU32(this.fd, at);
    expect(this.sys.pwriteU32(this.fd, orig, at)).toBe(4);
    this.romSize = (~(sized & PCI_ROM_ADDRESS_MASK) + 1) >>> 0;
    return this.romSize;
  }

  /** vfio_bars_prepare: the BAR type from the BAR register, the size from the region. */
  barsPrepare(): void {
    this.bars.forEach((bar, nr) => {
      if (!bar.region.info.size) return;
      const value = this.sys.preadU32(this.fd, this.configOffset + BigInt(PCI_BASE_ADDRESS_0 + 4 * nr));
      bar.ioport = (value & PCI_BASE_ADDRESS_SPACE_IO) !== 0;
      bar.mem64 = !bar.ioport && (value & PCI_BASE_ADDRESS_MEM_TYPE_64) !== 0;
      bar.size = bar.region.info.size;
    });
  }

  /** pci_find_capability on QEMU's copy of config space. */
  findCapability(id: number): number {
    for (let pos = this.config[PCI_CAPABILITY_LIST]! & ~3; pos; pos = this.config[pos + 1]! & ~3) {
      if (this.config[pos] === id) return pos;
    }
    return 0;
  }

  /** vfio_msix_early_setup: where the MSI-X table and PBA live, and whether vectors can be added later. */
  msixEarlySetup(): void {
    const pos = this.findCapability(PCI_CAP_ID_MSIX);
    if (!pos) return;
    const ctrl = this.sys.preadU16(this.fd, this.configOffset + BigInt(pos + PCI_MSIX_FLAGS));
    const table = this.sys.preadU32(this.fd, this.configOffset + BigInt(pos + PCI_MSIX_TABLE));
    const pba = this.sys.preadU32(this.fd, this.configOffset + BigInt(pos + PCI_MSIX_PBA));
    const irq = this.getIrqInfo(VFIO_PCI_MSIX_IRQ_INDEX);
    expect(irq.rc).toBe(0);
    this.msix = {
      tableBar: table & BIRMASK,
      tableOffset: (table & ~BIRMASK) >>> 0,
      pbaBar: pba & BIRMASK,
      pbaOffset: (pba & ~BIRMASK) >>> 0,
      entries: (ctrl & PCI_MSIX_FLAGS_QSIZE) + 1,
      noresize: (irq.info.flags & VFIO_IRQ_INFO_NORESIZE) !== 0,
    };
    expect(BigInt(this.msix.pbaOffset) < this.bars[this.msix.pbaBar]!.region.info.size, 'MSIX PBA outside of specified BAR').toBe(true);
  }

  /** vfio_bars_register: each BAR the kernel lets us mmap is mapped whole (MSIX_MAPPABLE or no MSI-X in it). */
  barsRegister(): void {
    this.bars.forEach((bar) => {
      const { info } = bar.region;
      if (!bar.size || !(info.flags & VFIO_REGION_INFO_FLAG_MMAP)) return;
      let prot = 0;
      if (info.flags & VFIO_REGION_INFO_FLAG_READ) prot |= PROT_READ;
      if (info.flags & VFIO_REGION_INFO_FLAG_WRITE) prot |= PROT_WRITE;
      const at = this.sys.mmap(info.size, this.fd, info.offset, prot);
      expect(at > 0n, `mmap of region ${info.index}: ${at}`).toBe(true);
      bar.mmap = at;
    });
  }

  /** vfio_bars_exit: the BAR mappings go (each holds the device file open). */
  barsExit(): void {
    for (const bar of this.bars) {
      if (bar.mmap === null) continue;
      expect(this.sys.proc.munmap(bar.mmap, bar.region.info.size)).toBe(0);
      bar.mmap = null;
    }
  }

  /** vfio_msi_setup's read of the MSI flags: how many vectors the guest will see. */
  msiSetup(): number {
    const pos = this.findCapability(PCI_CAP_ID_MSI);
    if (!pos) return 0;
    const ctrl = this.sys.preadU16(this.fd, this.configOffset + BigInt(pos + PCI_MSI_FLAGS));
    return 1 << ((ctrl & 0x0e) >> 1);
  }

  /** An irq set of `count` eventfds (or DATA_NONE when `fds` is null). */
  setIrqs(index: number, flags: number, start: number, count: number, fds: number[] | null): number {
    const size = vfio_irq_set.size + 4 * (fds?.length ?? 0);
    const buf = new Uint8Array(size);
    buf.set(vfio_irq_set.encodeNew({ argsz: size, flags, index, start, count }));
    const view = new DataView(buf.buffer);
    fds?.forEach((fd, i) => view.setInt32(vfio_irq_set.size + 4 * i, fd, true));
    return this.sys.ioctlBytes(this.fd, 'VFIO_DEVICE_SET_IRQS', buf).rc;
  }

  /** vfio_device_irq_disable. */
  irqDisable(index: number): number {
    return this.setIrqs(index, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER, 0, 0, null);
  }

  /** vfio_device_irq_set_signaling with one eventfd (or -1 to tear the vector down). */
  setSignaling(index: number, subindex: number, fd: number): number {
    return this.setIrqs(index, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, subindex, 1, [fd]);
  }

  /** vfio_intx_enable (without KVM): an eventfd on INTx. */
  intxEnable(): void {
    if (!this.config[PCI_INTERRUPT_PIN]) return;
    this.disableInterrupts();
    this.intxFd = this.sys.eventfd();
    expect(this.setSignaling(VFIO_PCI_INTX_IRQ_INDEX, 0, this.intxFd)).toBe(0);
    this.interrupt = 'intx';
  }

  /** vfio_disable_interrupts: MSI-X or MSI first (which falls back to INTx), then INTx. */
  disableInterrupts(): void {
    if (this.interrupt === 'msix') this.msixDisable();
    if (this.interrupt === 'intx') {
      expect(this.irqDisable(VFIO_PCI_INTX_IRQ_INDEX)).toBe(0);
      expect(this.sys.close(this.intxFd)).toBe(0);
      this.intxFd = -1;
      this.interrupt = 'none';
    }
  }

  /** vfio_register_err_notifier. */
  registerErrNotifier(): void {
    if (!this.pciAer) return;
    this.errFd = this.sys.eventfd();
    expect(this.setSignaling(VFIO_PCI_ERR_IRQ_INDEX, 0, this.errFd)).toBe(0);
  }

  /** vfio_register_req_notifier. */
  registerReqNotifier(): void {
    const irq = this.getIrqInfo(VFIO_PCI_REQ_IRQ_INDEX);
    if (irq.rc < 0 || irq.info.count < 1) return;
    this.reqFd = this.sys.eventfd();
    expect(this.setSignaling(VFIO_PCI_REQ_IRQ_INDEX, 0, this.reqFd)).toBe(0);
  }

  /** vfio_realize, from vfio_populate_device on (the device fd is open and attached). */
  realize(): void {
    this.populateDevice();
    this.readConfig();
    this.sizeRom();
    this.barsPrepare();
    this.msixEarlySetup();
    this.barsRegister();
    this.msiSetup();
    this.intxEnable();
    this.registerErrNotifier();
    this.registerReqNotifier();
  }

  /**
   * vfio_msix_enable: interrupts off, then MSI-X on with no vector (vector 0
   * given fd -1) so the device is in MSI-X mode before the guest unmasks
   * anything (vfio_enable_msix_no_vec).
   */
  msixEnable(): void {
    this.disableInterrupts();
    expect(this.setSignaling(VFIO_PCI_MSIX_IRQ_INDEX, 0, -1)).toBe(0);
    this.interrupt = 'msix';
  }

  /** vfio_msix_vector_do_use for a vector the guest unmasked: added one by one when the kernel can resize. */
  msixVectorUse(nr: number): number {
    const fd = this.sys.eventfd();
    this.msixFds.set(nr, fd);
    if (this.nrVectors < nr + 1) {
      this.nrVectors = nr + 1;
      if (this.msix!.noresize) {
        expect(this.irqDisable(VFIO_PCI_MSIX_IRQ_INDEX)).toBe(0);
        const fds = Array.from({ length: this.nrVectors }, (_, i) => this.msixFds.get(i) ?? -1);
        expect(this.setIrqs(VFIO_PCI_MSIX_IRQ_INDEX, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, 0, fds.length, fds)).toBe(0);
        return fd;
      }
    }
    expect(this.setSignaling(VFIO_PCI_MSIX_IRQ_INDEX, nr, fd)).toBe(0);
    return fd;
  }

  /**
   * vfio_msix_disable then vfio_msi_disable_common: the MSI-X index is
   * cleared even with no vector in use (MSI-X may be on with none), then
   * back to INTx.
   */
  msixDisable(): void {
    expect(this.irqDisable(VFIO_PCI_MSIX_IRQ_INDEX)).toBe(0);
    for (const fd of this.msixFds.values()) expect(this.sys.close(fd)).toBe(0);
    this.msixFds.clear();
    this.nrVectors = 0;
    this.interrupt = 'none';
    this.intxEnable();
  }

  /**
   * vfio_pci_get_pci_hot_reset_info: argsz = the bare header first; ENOSPC
   * says how many devices, then again with room for them.
   */
  getHotResetInfo(): { rc: number; info: vfio_pci_hot_reset_info; devices: vfio_pci_dependent_device[] } {
    const first = this.sys.ioctl(this.fd, 'VFIO_DEVICE_GET_PCI_HOT_RESET_INFO', vfio_pci_hot_reset_info, {
      argsz: vfio_pci_hot_reset_info.size,
    });
    if (first.rc && first.rc !== -Errno.ENOSPC) return { rc: first.rc, info: first.out, devices: [] };
    const count = first.out.count;
    const argsz = vfio_pci_hot_reset_info.size + count * vfio_pci_dependent_device.size;
    const second = this.sys.ioctl(this.fd, 'VFIO_DEVICE_GET_PCI_HOT_RESET_INFO', vfio_pci_hot_reset_info, { argsz }, argsz);
    const devices = Array.from({ length: second.out.count }, (_, i) =>
      vfio_pci_dependent_device.decode(second.bytes, vfio_pci_hot_reset_info.size + i * vfio_pci_dependent_device.size),
    );
    return { rc: second.rc, info: second.out, devices };
  }

  /** VFIO_DEVICE_PCI_HOT_RESET with group fds (legacy) or the empty array (iommufd). */
  hotReset(groupFds: number[]): number {
    const argsz = vfio_pci_hot_reset.size + 4 * groupFds.length;
    const buf = new Uint8Array(argsz);
    buf.set(vfio_pci_hot_reset.encodeNew({ argsz, count: groupFds.length }));
    const view = new DataView(buf.buffer);
    groupFds.forEach((fd, i) => view.setInt32(vfio_pci_hot_reset.size + 4 * i, fd, true));
    return this.sys.ioctlBytes(this.fd, 'VFIO_DEVICE_PCI_HOT_RESET', buf).rc;
  }
}
