import { SimError } from '../../errors/index.js';
import { findCapability } from '../../platform/capabilities/layout.js';
import { msiRegisters } from '../../platform/capabilities/msi.js';
import { pciIntxAsserted, pciOnInterrupt, type MsiMessage } from '../../platform/interrupts.js';
import type { PciFunction } from '../../platform/pci-function.js';
import {
  PCI_CAP_ID_MSI,
  PCI_CAP_ID_MSIX,
  PCI_COMMAND,
  PCI_COMMAND_INTX_DISABLE,
  PCI_MSIX_ENTRY_DATA,
  PCI_MSIX_ENTRY_LOWER_ADDR,
  PCI_MSIX_ENTRY_SIZE,
  PCI_MSIX_ENTRY_UPPER_ADDR,
  PCI_MSIX_ENTRY_VECTOR_CTRL,
  PCI_MSIX_FLAGS,
  PCI_MSIX_FLAGS_ENABLE,
  PCI_MSIX_FLAGS_MASKALL,
  PCI_MSIX_FLAGS_QSIZE,
  PCI_MSIX_TABLE,
  PCI_MSIX_TABLE_BIR,
  PCI_MSIX_TABLE_OFFSET,
  PCI_MSI_ADDRESS_HI,
  PCI_MSI_ADDRESS_LO,
  PCI_MSI_FLAGS,
  PCI_MSI_FLAGS_ENABLE,
  PCI_MSI_FLAGS_QMASK,
  PCI_MSI_FLAGS_QSIZE,
  PCI_STATUS,
  PCI_STATUS_INTERRUPT,
} from '../../platform/pci-regs.js';

/*
 * The host kernel's interrupt plumbing for one PCI function, as vfio-pci
 * uses it: the PCI/MSI and genirq side (pci_alloc_irq_vectors,
 * request_irq, pci_intx, pci_check_and_mask_intx, pci_restore_msi_state),
 * which programs the function's MSI capability or MSI-X table with host
 * messages and masks and unmasks vectors, and the interrupt controller
 * that receives what the function sends (platform/interrupts.ts) and runs
 * the handler of the vector or line.
 *
 * Messages go to the x86 local APIC window; with interrupt remapping the
 * host identifies the source function, so delivery looks the handler up by
 * function and message data.
 */

/** An interrupt handler (request_irq): runs when the vector fires. */
export type IrqHandler = () => void;

const MSI_ADDRESS = 0xfee00000;
/** Message data of MSI vector 0; multi-message MSI ORs the vector number into the low bits. */
const MSI_DATA_BASE = 0x40;
/** Message data of MSI-X entry 0; each entry gets its own. */
const MSIX_DATA_BASE = 0x100;

/**
 * What the host keeps per function (the MSI descriptors and the INTx
 * line). A vector's mask follows its handler: request_irq unmasks it and
 * free_irq masks it again, so the handlers are also the descriptors' copy
 * of the masks that pci_restore_msi_state writes back.
 */
interface FunctionIrqs {
  mode: 'none' | 'msi' | 'msix';
  /** Vectors allocated (for MSI-X: entries with a host message). */
  readonly vectors: Set<number>;
  readonly handlers: Map<number, IrqHandler>;
  intx: IrqHandler | null;
  /** disable_irq depth of the INTx line (devices without DisINTx masking). */
  intxDisabled: boolean;
}

const irqState = new WeakMap<PciFunction, FunctionIrqs>();

function irqsOf(fn: PciFunction): FunctionIrqs {
  let state = irqState.get(fn);
  if (!state) {
    const created: FunctionIrqs = { mode: 'none', vectors: new Set(), handlers: new Map(), intx: null, intxDisabled: false };
    pciOnInterrupt(fn, { msi: (message) => handleMsi(created, message), intx: () => evaluateIntx(fn) });
    irqState.set(fn, created);
    state = created;
  }
  return state;
}

// ------------------------------------------------------------------ MSI-X table access

interface MsixLayout {
  readonly cap: number;
  readonly bar: number;
  readonly offset: bigint;
  readonly size: number;
}

function msixLayout(fn: PciFunction): MsixLayout | null {
  const cap = findCapability(fn.config, PCI_CAP_ID_MSIX);
  if (!cap) return null;
  const table = fn.config.hwRead(cap + PCI_MSIX_TABLE, 4);
  const flags = fn.config.hwRead(cap + PCI_MSIX_FLAGS, 2);
  return { cap, bar: table & PCI_MSIX_TABLE_BIR, offset: BigInt((table & PCI_MSIX_TABLE_OFFSET) >>> 0), size: (flags & PCI_MSIX_FLAGS_QSIZE) + 1 };
}

function entryAt(layout: MsixLayout, vector: number, field: number): bigint {
  return layout.offset + BigInt(vector * PCI_MSIX_ENTRY_SIZE + field);
}

/** Writes an MSI-X entry the way the kernel does: through the BAR, which must decode memory. */
function writeMsixEntry(fn: PciFunction, layout: MsixLayout, vector: number, data: number): void {
  fn.writeBar(layout.bar, entryAt(layout, vector, PCI_MSIX_ENTRY_LOWER_ADDR), 4, BigInt(MSI_ADDRESS));
  fn.writeBar(layout.bar, entryAt(layout, vector, PCI_MSIX_ENTRY_UPPER_ADDR), 4, 0n);
  fn.writeBar(layout.bar, entryAt(layout, vector, PCI_MSIX_ENTRY_DATA), 4, BigInt(data));
}

function setMsixEntryMask(fn: PciFunction, layout: MsixLayout, vector: number, masked: boolean): void {
  fn.writeBar(layout.bar, entryAt(layout, vector, PCI_MSIX_ENTRY_VECTOR_CTRL), 4, masked ? 1n : 0n);
}

// ------------------------------------------------------------------ MSI capability access

/**
 * __pci_write_msi_msg for MSI: Multiple Message Enable for `count`
 * vectors (rounded up to a power of two), then the host message.
 */
function writeMsiMessage(fn: PciFunction, cap: number, count: number): void {
  const flags = fn.config.read(cap + PCI_MSI_FLAGS, 2);
  fn.config.write(cap + PCI_MSI_FLAGS, 2, (flags & ~PCI_MSI_FLAGS_QSIZE) | (Math.ceil(Math.log2(count)) << 4));
  const regs = msiRegisters(flags);
  fn.config.write(cap + PCI_MSI_ADDRESS_LO, 4, MSI_ADDRESS);
  if (regs.address64) fn.config.write(cap + PCI_MSI_ADDRESS_HI, 4, 0);
  fn.config.write(cap + regs.data, 2, MSI_DATA_BASE);
}

/** pci_msi_update_mask: the Mask Bits register, when the function has per-vector masking. */
function writeMsiMask(fn: PciFunction, cap: number, mask: number): void {
  const at = msiRegisters(fn.config.read(cap + PCI_MSI_FLAGS, 2)).mask;
  if (at !== null) fn.config.write(cap + at, 4, mask >>> 0);
}

function setMsiEnable(fn: PciFunction, cap: number, enable: boolean): void {
  const flags = fn.config.read(cap + PCI_MSI_FLAGS, 2);
  fn.config.write(cap + PCI_MSI_FLAGS, 2, enable ? flags | PCI_MSI_FLAGS_ENABLE : flags & ~PCI_MSI_FLAGS_ENABLE);
}

// ------------------------------------------------------------------ kernel side

/** pci_msix_vec_count / pci_msi_vec_count: vectors the function supports, 0 without the capability. */
export function pciVecCount(fn: PciFunction, kind: 'msi' | 'msix'): number {
  if (kind === 'msix') return msixLayout(fn)?.size ?? 0;
  const cap = findCapability(fn.config, PCI_CAP_ID_MSI);
  return cap ? 1 << ((fn.config.hwRead(cap + PCI_MSI_FLAGS, 2) & PCI_MSI_FLAGS_QMASK) >> 1) : 0;
}

/**
 * pci_alloc_irq_vectors(fn, 1, nvec, PCI_IRQ_MSI or PCI_IRQ_MSIX): programs
 * host messages into the capability or table and enables it, every vector
 * masked until its handler is requested. Returns the vectors allocated.
 * The caller has Memory Space enabled (MSI-X table writes need it).
 */
export function pciAllocIrqVectors(fn: PciFunction, nvec: number, kind: 'msi' | 'msix'): number {
  const state = irqsOf(fn);
  if (state.mode !== 'none') throw new SimError('INVALID_ARGUMENT', `${fn.name}: ${state.mode} vectors are already allocated`);
  const supported = pciVecCount(fn, kind);
  if (!supported) throw new SimError('INVALID_ARGUMENT', `${fn.name} has no ${kind === 'msi' ? 'MSI' : 'MSI-X'} capability`);
  const count = Math.min(nvec, supported);
  if (kind === 'msix') {
    const layout = msixLayout(fn)!;
    const flagsAt = layout.cap + PCI_MSIX_FLAGS;
    fn.config.write(flagsAt, 2, fn.config.read(flagsAt, 2) | PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
    for (let v = 0; v < count; v++) {
      writeMsixEntry(fn, layout, v, MSIX_DATA_BASE + v);
      setMsixEntryMask(fn, layout, v, true);
    }
    fn.config.write(flagsAt, 2, fn.config.read(flagsAt, 2) & ~PCI_MSIX_FLAGS_MASKALL);
  } else {
    const cap = findCapability(fn.config, PCI_CAP_ID_MSI);
    writeMsiMessage(fn, cap, count);
    writeMsiMask(fn, cap, 0xffffffff);
    setMsiEnable(fn, cap, true);
  }
  state.mode = kind;
  for (let v = 0; v < count; v++) state.vectors.add(v);
  return count;
}

/** pci_free_irq_vectors: MSI or MSI-X off, every vector forgotten. */
export function pciFreeIrqVectors(fn: PciFunction): void {
  const state = irqsOf(fn);
  if (state.mode === 'msix') {
    const layout = msixLayout(fn)!;
    for (const v of state.vectors) setMsixEntryMask(fn, layout, v, true);
    const flagsAt = layout.cap + PCI_MSIX_FLAGS;
    fn.config.write(flagsAt, 2, fn.config.read(flagsAt, 2) & ~(PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL));
  } else if (state.mode === 'msi') {
    const cap = findCapability(fn.config, PCI_CAP_ID_MSI);
    fn.config.write(cap + PCI_MSI_FLAGS, 2, fn.config.read(cap + PCI_MSI_FLAGS, 2) & ~(PCI_MSI_FLAGS_ENABLE | PCI_MSI_FLAGS_QSIZE));
  }
  state.mode = 'none';
  state.vectors.clear();
  state.handlers.clear();
}

/** pci_irq_vector(fn, vector) > 0: the vector has a host interrupt. */
export function pciIrqVectorValid(fn: PciFunction, vector: number): boolean {
  return irqsOf(fn).vectors.has(vector);
}

/** pci_msix_alloc_irq_at: one more MSI-X vector while MSI-X is enabled (dynamic MSI-X). */
export function pciMsixAllocIrqAt(fn: PciFunction, vector: number): void {
  const state = irqsOf(fn);
  const layout = msixLayout(fn);
  if (state.mode !== 'msix' || !layout || vector >= layout.size) {
    throw new SimError('INVALID_ARGUMENT', `${fn.name}: cannot add MSI-X vector ${vector}`);
  }
  writeMsixEntry(fn, layout, vector, MSIX_DATA_BASE + vector);
  setMsixEntryMask(fn, layout, vector, true);
  state.vectors.add(vector);
}

/**
 * pci_write_msi_msg of the cached message: rewrites an MSI-X entry's host
 * message, in case a reset or the user cleared it.
 */
export function pciRewriteMsixMessage(fn: PciFunction, vector: number): void {
  const layout = msixLayout(fn);
  if (layout && irqsOf(fn).mode === 'msix') writeMsixEntry(fn, layout, vector, MSIX_DATA_BASE + vector);
}

/**
 * pci_restore_msi_state, as pci_restore_state calls it after the header:
 * the host's MSI or MSI-X programming goes back from its own descriptors,
 * the vectors it allocated, not from registers saved before the reset.
 * MSI is disabled, its message and masks rewritten, and enabled again.
 * MSI-X is enabled under Function Mask, each allocated vector's message and
 * mask rewritten (the other entries keep their power-on state, masked),
 * and Function Mask released. The table writes go through the BAR like the
 * kernel's MMIO writes: whether they reach the function is up to the
 * Command register the header restore put back; Memory Space is not
 * turned on for them. Nothing happens while the host has no vectors.
 */
export function pciRestoreMsiState(fn: PciFunction): void {
  const state = irqState.get(fn);
  if (!state || state.mode === 'none') return;
  if (state.mode === 'msi') {
    const cap = findCapability(fn.config, PCI_CAP_ID_MSI);
    setMsiEnable(fn, cap, false);
    writeMsiMessage(fn, cap, state.vectors.size);
    let mask = 0xffffffff;
    for (const vector of state.handlers.keys()) mask &= ~(1 << vector);
    writeMsiMask(fn, cap, mask);
    setMsiEnable(fn, cap, true);
    return;
  }
  const layout = msixLayout(fn)!;
  const flagsAt = layout.cap + PCI_MSIX_FLAGS;
  fn.config.write(flagsAt, 2, fn.config.read(flagsAt, 2) | PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
  for (const vector of state.vectors) {
    writeMsixEntry(fn, layout, vector, MSIX_DATA_BASE + vector);
    setMsixEntryMask(fn, layout, vector, !state.handlers.has(vector));
  }
  fn.config.write(flagsAt, 2, fn.config.read(flagsAt, 2) & ~PCI_MSIX_FLAGS_MASKALL);
}

/**
 * request_irq on an MSI or MSI-X vector: the handler is installed and the
 * vector unmasked. An MSI-X vector whose pending bit was latched while
 * masked fires at once, as the function sends the message on unmask.
 */
export function requestIrq(fn: PciFunction, vector: number, handler: IrqHandler): void {
  const state = irqsOf(fn);
  if (!state.vectors.has(vector)) throw new SimError('INVALID_ARGUMENT', `${fn.name}: vector ${vector} is not allocated`);
  state.handlers.set(vector, handler);
  setVectorMask(fn, state, vector, false);
}

/** free_irq on an MSI or MSI-X vector: masked again, the handler gone; the vector stays allocated. */
export function freeIrq(fn: PciFunction, vector: number): void {
  const state = irqsOf(fn);
  if (!state.handlers.delete(vector)) return;
  setVectorMask(fn, state, vector, true);
}

/** A masked MSI-X vector that fired while masked is sent by the function itself once unmasked. */
function setVectorMask(fn: PciFunction, state: FunctionIrqs, vector: number, masked: boolean): void {
  if (state.mode === 'msix') {
    setMsixEntryMask(fn, msixLayout(fn)!, vector, masked);
    return;
  }
  const cap = findCapability(fn.config, PCI_CAP_ID_MSI);
  const at = msiRegisters(fn.config.read(cap + PCI_MSI_FLAGS, 2)).mask;
  if (at === null) return;
  const bits = fn.config.read(cap + at, 4);
  writeMsiMask(fn, cap, masked ? bits | (1 << vector) : bits & ~(1 << vector));
}

/** request_irq on the INTx line. */
export function requestIntx(fn: PciFunction, handler: IrqHandler, startDisabled: boolean): void {
  const state = irqsOf(fn);
  state.intx = handler;
  state.intxDisabled = startDisabled;
  evaluateIntx(fn);
}

export function freeIntx(fn: PciFunction): void {
  const state = irqsOf(fn);
  state.intx = null;
  state.intxDisabled = false;
}

/** disable_irq / enable_irq of the INTx line, for functions that cannot mask INTx themselves. */
export function setIntxLineEnabled(fn: PciFunction, enabled: boolean): void {
  irqsOf(fn).intxDisabled = !enabled;
  if (enabled) evaluateIntx(fn);
}

/** pci_intx(fn, enable): clears or sets DisINTx in the function's Command register. */
export function pciIntx(fn: PciFunction, enable: boolean): void {
  const cmd = fn.config.read(PCI_COMMAND, 2);
  const next = enable ? cmd & ~PCI_COMMAND_INTX_DISABLE : cmd | PCI_COMMAND_INTX_DISABLE;
  if (next !== cmd) fn.config.write(PCI_COMMAND, 2, next);
  if (enable) evaluateIntx(fn);
}

/**
 * pci_check_and_mask_intx / pci_check_and_unmask_intx: masking succeeds only
 * when the function is asserting INTx (the interrupt is ours); unmasking
 * only when it is not (otherwise it would fire at once). Returns whether
 * DisINTx changed.
 */
export function pciCheckAndSetIntxMask(fn: PciFunction, mask: boolean): boolean {
  const pending = (fn.config.read(PCI_STATUS, 2) & PCI_STATUS_INTERRUPT) !== 0;
  if (mask !== pending) return false;
  const cmd = fn.config.read(PCI_COMMAND, 2);
  const next = mask ? cmd | PCI_COMMAND_INTX_DISABLE : cmd & ~PCI_COMMAND_INTX_DISABLE;
  if (next !== cmd) fn.config.write(PCI_COMMAND, 2, next);
  return true;
}

/** pci_intx_mask_supported: DisINTx can be toggled (PCI 2.3); probed the kernel's way, by writing it. */
export function pciIntxMaskSupported(fn: PciFunction): boolean {
  const orig = fn.config.read(PCI_COMMAND, 2);
  fn.config.write(PCI_COMMAND, 2, orig ^ PCI_COMMAND_INTX_DISABLE);
  const toggled = fn.config.read(PCI_COMMAND, 2);
  fn.config.write(PCI_COMMAND, 2, orig);
  return (toggled ^ orig) === PCI_COMMAND_INTX_DISABLE;
}

// ------------------------------------------------------------------ the interrupt controller

/** A message reached the APIC window: the handler of the vector whose host message it carries runs. */
function handleMsi(state: FunctionIrqs, message: MsiMessage): void {
  if (message.address !== BigInt(MSI_ADDRESS)) return;
  const base = state.mode === 'msix' ? MSIX_DATA_BASE : MSI_DATA_BASE;
  state.handlers.get(message.data - base)?.();
}

/** A level-triggered line fires whenever it is asserted and unmasked at both ends. */
function evaluateIntx(fn: PciFunction): void {
  const state = irqsOf(fn);
  if (state.intx && !state.intxDisabled && pciIntxAsserted(fn)) state.intx();
}
