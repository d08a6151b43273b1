import { findCapability } from './capabilities/layout.js';
import { msiRegisters } from './capabilities/msi.js';
import type { PciFunction } from './pci-function.js';
import {
  PCI_CAP_ID_MSI,
  PCI_CAP_ID_MSIX,
  PCI_COMMAND,
  PCI_COMMAND_INTX_DISABLE,
  PCI_MSIX_FLAGS,
  PCI_MSIX_FLAGS_ENABLE,
  PCI_MSIX_FLAGS_MASKALL,
  PCI_MSI_ADDRESS_HI,
  PCI_MSI_ADDRESS_LO,
  PCI_MSI_FLAGS,
  PCI_MSI_FLAGS_ENABLE,
  PCI_MSI_FLAGS_QSIZE,
  PCI_STATUS,
  PCI_STATUS_INTERRUPT,
} from './pci-regs.js';

/*
 * The function's side of interrupt delivery: what it does when its device
 * logic raises an interrupt. An MSI or MSI-X vector becomes a message (a
 * memory write upstream) unless a mask holds it back; INTx is a level that
 * Interrupt Status reports and DisINTx keeps off the wire. Where a message
 * or the line ends up (which handler of which driver) is the host's
 * business: its interrupt controller side listens with pciOnInterrupt.
 */

/** An MSI or MSI-X message as the function sends it upstream. */
export interface MsiMessage {
  readonly address: bigint;
  readonly data: number;
}

/** What the host's interrupt controller receives from one function. */
export interface InterruptListener {
  /** The function sent an MSI or MSI-X message. */
  msi(message: MsiMessage): void;
  /** The function drove its INTx line: Interrupt Status is set and DisINTx clear. */
  intx(): void;
}

const listeners = new WeakMap<PciFunction, InterruptListener[]>();

/** Calls `listener` for each interrupt `fn` sends; returns a function that removes it. */
export function pciOnInterrupt(fn: PciFunction, listener: InterruptListener): () => void {
  let list = listeners.get(fn);
  if (!list) {
    list = [];
    listeners.set(fn, list);
  }
  list.push(listener);
  return () => {
    const at = list.indexOf(listener);
    if (at >= 0) list.splice(at, 1);
  };
}

function send(fn: PciFunction, message: MsiMessage): void {
  for (const listener of listeners.get(fn)?.slice() ?? []) listener.msi(message);
}

function sendMsix(fn: PciFunction, vector: number): void {
  const entry = fn.msix!.entry(vector);
  send(fn, { address: entry.address, data: entry.data });
}

/** MSI-X Enable and Function Mask as the hardware holds them; null without an MSI-X table. */
function msixControl(fn: PciFunction): { enabled: boolean; functionMasked: boolean } | null {
  const cap = findCapability(fn.config, PCI_CAP_ID_MSIX);
  if (!cap || !fn.msix) return null;
  const flags = fn.config.hwRead(cap + PCI_MSIX_FLAGS, 2);
  return { enabled: (flags & PCI_MSIX_FLAGS_ENABLE) !== 0, functionMasked: (flags & PCI_MSIX_FLAGS_MASKALL) !== 0 };
}

/**
 * The function's device logic raises MSI or MSI-X vector `vector`. With
 * MSI-X enabled, a vector masked by its entry or by Function Mask latches
 * its pending bit; otherwise the entry's message is sent. With MSI enabled,
 * vectors beyond Multiple Message Enable are not sent and a per-vector mask
 * holds the vector back. Nothing happens with neither enabled.
 */
export function pciSignalMsi(fn: PciFunction, vector: number): void {
  const msix = msixControl(fn);
  if (msix?.enabled) {
    if (msix.functionMasked || fn.msix!.entry(vector).masked) fn.msix!.setPending(vector, true);
    else sendMsix(fn, vector);
    return;
  }
  const cap = findCapability(fn.config, PCI_CAP_ID_MSI);
  if (!cap) return;
  const flags = fn.config.hwRead(cap + PCI_MSI_FLAGS, 2);
  if (!(flags & PCI_MSI_FLAGS_ENABLE) || vector >= 1 << ((flags & PCI_MSI_FLAGS_QSIZE) >> 4)) return;
  const regs = msiRegisters(flags);
  if (regs.mask !== null && fn.config.hwRead(cap + regs.mask, 4) & (1 << vector)) return;
  const low = BigInt(fn.config.hwRead(cap + PCI_MSI_ADDRESS_LO, 4) >>> 0);
  const address = regs.address64 ? (BigInt(fn.config.hwRead(cap + PCI_MSI_ADDRESS_HI, 4) >>> 0) << 32n) | low : low;
  // Multiple Message Enable lets the function put the vector number in the low data bits.
  const data = fn.config.hwRead(cap + regs.data, 2) | vector;
  send(fn, { address, data });
}

/**
 * After software wrote MSI-X table entry `vector`: a pending vector that
 * is now unmasked (and MSI-X enabled, Function Mask clear) sends its
 * message and its pending bit clears, as the PCI spec requires of a
 * vector unmasked while pending.
 */
export function msixEntryWritten(fn: PciFunction, vector: number): void {
  const msix = msixControl(fn);
  if (!msix?.enabled || msix.functionMasked) return;
  if (!fn.msix!.isPending(vector) || fn.msix!.entry(vector).masked) return;
  fn.msix!.setPending(vector, false);
  sendMsix(fn, vector);
}

/** The INTx line is driven: the function asserts INTx and DisINTx does not keep it off the wire. */
export function pciIntxAsserted(fn: PciFunction): boolean {
  const status = fn.config.hwRead(PCI_STATUS, 2);
  const cmd = fn.config.hwRead(PCI_COMMAND, 2);
  return (status & PCI_STATUS_INTERRUPT) !== 0 && (cmd & PCI_COMMAND_INTX_DISABLE) === 0;
}

/**
 * The function's device logic asserts (true) or deasserts INTx. Interrupt
 * Status follows the level; the line reaches the host only while DisINTx
 * is clear.
 */
export function pciSetIntxLevel(fn: PciFunction, asserted: boolean): void {
  fn.config.hwUpdate(PCI_STATUS, 2, PCI_STATUS_INTERRUPT, asserted ? PCI_STATUS_INTERRUPT : 0);
  if (!asserted || !pciIntxAsserted(fn)) return;
  for (const listener of listeners.get(fn)?.slice() ?? []) listener.intx();
}
