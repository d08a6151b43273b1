import { SimError } from '../../errors/index.js';
import { findCapability } from '../../platform/capabilities/layout.js';
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
  PCI_MSI_DATA_32,
  PCI_MSI_DATA_64,
  PCI_MSI_FLAGS,
  PCI_MSI_FLAGS_64BIT,
  PCI_MSI_FLAGS_ENABLE,
  PCI_MSI_FLAGS_MASKBIT,
  PCI_MSI_FLAGS_QMASK,
  PCI_MSI_FLAGS_QSIZE,
  PCI_MSI_MASK_32,
  PCI_MSI_MASK_64,
  PCI_STATUS,
  PCI_STATUS_INTERRUPT,
} from '../../platform/pci-regs.js';

/*
 * The host's interrupt plumbing for one PCI function, both halves:
 *
 *  - the kernel's PCI/MSI and genirq side, as vfio-pci uses it
 *    (pci_alloc_irq_vectors, request_irq, pci_intx, pci_check_and_mask_intx),
 *    which programs the function's MSI capability or MSI-X table with
 *    host messages and masks and unmasks vectors;
 *  - what the function does when its device logic raises an interrupt:
 *    a masked MSI-X vector latches its pending bit, an unmasked one sends
 *    its message, INTx follows the Interrupt Status bit and DisINTx.
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
    state = { mode: 'none', vectors: new Set(), handlers: new Map(), intx: null, intxDisabled: false };
    irqState.set(fn, state);
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
    const flags = fn.config.read(cap + PCI_MSI_FLAGS, 2);
    const is64 = (flags & PCI_MSI_FLAGS_64BIT) !== 0;
    fn.config.write(cap + PCI_MSI_ADDRESS_LO, 4, MSI_ADDRESS);
    if (is64) fn.config.write(cap + PCI_MSI_ADDRESS_HI, 4, 0);
    fn.config.write(cap + (is64 ? PCI_MSI_DATA_64 : PCI_MSI_DATA_32), 2, MSI_DATA_BASE);
    if (flags & PCI_MSI_FLAGS_MASKBIT) fn.config.write(cap + (is64 ? PCI_MSI_MASK_64 : PCI_MSI_MASK_32), 4, 0xffffffff);
    const mme = Math.ceil(Math.log2(count));
    fn.config.write(cap + PCI_MSI_FLAGS, 2, (flags & ~PCI_MSI_FLAGS_QSIZE) | (mme << 4) | PCI_MSI_FLAGS_ENABLE);
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

function setVectorMask(fn: PciFunction, state: FunctionIrqs, vector: number, masked: boolean): void {
  if (state.mode === 'msix') {
    const layout = msixLayout(fn)!;
    setMsixEntryMask(fn, layout, vector, masked);
    if (!masked && fn.msix?.isPending(vector)) {
      fn.msix.setPending(vector, false);
      deliverMsix(fn, vector);
    }
    return;
  }
  const cap = findCapability(fn.config, PCI_CAP_ID_MSI);
  const flags = fn.config.read(cap + PCI_MSI_FLAGS, 2);
  if (!(flags & PCI_MSI_FLAGS_MASKBIT)) return;
  const at = cap + (flags & PCI_MSI_FLAGS_64BIT ? PCI_MSI_MASK_64 : PCI_MSI_MASK_32);
  const bits = fn.config.read(at, 4);
  fn.config.write(at, 4, masked ? bits | (1 << vector) : bits & ~(1 << vector));
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

// ------------------------------------------------------------------ the function's side

function deliverMsix(fn: PciFunction, vector: number): void {
  const entry = fn.msix!.entry(vector);
  if (entry.address !== BigInt(MSI_ADDRESS)) return;
  irqsOf(fn).handlers.get(entry.data - MSIX_DATA_BASE)?.();
}

/**
 * The function's device logic raises MSI or MSI-X vector `vector`. With
 * MSI-X enabled, a vector masked by its entry or by Function Mask latches
 * its pending bit; otherwise the entry's message is sent. With MSI enabled,
 * vectors beyond Multiple Message Enable are not sent and a per-vector mask
 * holds the vector back. Nothing happens with neither enabled.
 */
export function pciSignalMsi(fn: PciFunction, vector: number): void {
  const msixCap = findCapability(fn.config, PCI_CAP_ID_MSIX);
  if (msixCap && fn.msix) {
    const flags = fn.config.hwRead(msixCap + PCI_MSIX_FLAGS, 2);
    if (flags & PCI_MSIX_FLAGS_ENABLE) {
      if (flags & PCI_MSIX_FLAGS_MASKALL || fn.msix.entry(vector).masked) {
        fn.msix.setPending(vector, true);
        return;
      }
      deliverMsix(fn, vector);
      return;
    }
  }
  const msiCap = findCapability(fn.config, PCI_CAP_ID_MSI);
  if (!msiCap) return;
  const flags = fn.config.hwRead(msiCap + PCI_MSI_FLAGS, 2);
  if (!(flags & PCI_MSI_FLAGS_ENABLE) || vector >= 1 << ((flags & PCI_MSI_FLAGS_QSIZE) >> 4)) return;
  const is64 = (flags & PCI_MSI_FLAGS_64BIT) !== 0;
  if (flags & PCI_MSI_FLAGS_MASKBIT && fn.config.hwRead(msiCap + (is64 ? PCI_MSI_MASK_64 : PCI_MSI_MASK_32), 4) & (1 << vector)) return;
  const address = fn.config.hwRead(msiCap + PCI_MSI_ADDRESS_LO, 4);
  if (address !== MSI_ADDRESS) return;
  const data = fn.config.hwRead(msiCap + (is64 ? PCI_MSI_DATA_64 : PCI_MSI_DATA_32), 2);
  irqsOf(fn).handlers.get((data | vector) - MSI_DATA_BASE)?.();
}

/**
 * The function's device logic asserts (true) or deasserts INTx. Interrupt
 * Status follows the level; the line reaches the host only while DisINTx
 * is clear.
 */
export function pciSetIntxLevel(fn: PciFunction, asserted: boolean): void {
  fn.config.hwUpdate(PCI_STATUS, 2, PCI_STATUS_INTERRUPT, asserted ? PCI_STATUS_INTERRUPT : 0);
  if (asserted) evaluateIntx(fn);
}

/** A level-triggered line fires whenever it is asserted and unmasked at both ends. */
function evaluateIntx(fn: PciFunction): void {
  const state = irqsOf(fn);
  if (!state.intx || state.intxDisabled) return;
  const status = fn.config.hwRead(PCI_STATUS, 2);
  const cmd = fn.config.hwRead(PCI_COMMAND, 2);
  if (status & PCI_STATUS_INTERRUPT && !(cmd & PCI_COMMAND_INTX_DISABLE)) state.intx();
}
