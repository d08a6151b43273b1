import { findCapability, findExtCapability } from '../platform/capabilities/layout.js';
import type { PciFunction } from '../platform/pci-function.js';
import {
  PCI_ACS_CTRL,
  PCI_ATS_CTRL,
  PCI_CAP_ID_EXP,
  PCI_CAP_ID_MSI,
  PCI_CAP_ID_MSIX,
  PCI_COMMAND,
  PCI_COMMAND_MEMORY,
  PCI_ERR_CAP,
  PCI_ERR_COR_MASK,
  PCI_ERR_UNCOR_MASK,
  PCI_ERR_UNCOR_SEVER,
  PCI_EXP_DEVCTL,
  PCI_EXP_DEVCTL2,
  PCI_EXP_LNKCTL,
  PCI_EXP_LNKCTL2,
  PCI_EXT_CAP_ID_ACS,
  PCI_EXT_CAP_ID_ATS,
  PCI_EXT_CAP_ID_ERR,
  PCI_EXT_CAP_ID_PASID,
  PCI_EXT_CAP_ID_PRI,
  PCI_EXT_CAP_ID_SRIOV,
  PCI_MSIX_ENTRY_SIZE,
  PCI_MSIX_FLAGS,
  PCI_MSIX_FLAGS_ENABLE,
  PCI_MSIX_FLAGS_MASKALL,
  PCI_MSIX_FLAGS_QSIZE,
  PCI_MSIX_TABLE,
  PCI_MSIX_TABLE_BIR,
  PCI_MSIX_TABLE_OFFSET,
  PCI_MSI_FLAGS,
  PCI_PASID_CTRL,
  PCI_PRI_ALLOC_REQ,
  PCI_PRI_CTRL,
  PCI_SRIOV_CTRL,
  PCI_SRIOV_NUM_VF,
} from '../platform/pci-regs.js';
import { msiCapLength } from './config/cap-lengths.js';

/**
 * What pci_save_state() keeps of a function and pci_restore_state() puts
 * back: the type 0 header, the control registers of the PCIe and
 * extended capabilities, and the MSI or MSI-X programming. A function
 * reset returns the hardware to its power-on values; restoring this state
 * is what makes the function usable again afterwards.
 */
export interface PciSavedState {
  /** Dwords 0-15 of the header. */
  readonly header: Uint32Array;
  /** (offset, size, value) of capability registers, in restore order. */
  readonly registers: ReadonlyArray<{ offset: number; size: 1 | 2 | 4; value: number }>;
  /** MSI-X: the flags to restore and every table entry's four dwords. */
  readonly msix: { readonly flagsAt: number; readonly flags: number; readonly bar: number; readonly table: bigint; readonly entries: Uint32Array } | null;
}

function capRegisters(fn: PciFunction): Array<{ offset: number; size: 1 | 2 | 4 }> {
  const regs: Array<{ offset: number; size: 1 | 2 | 4 }> = [];
  const exp = findCapability(fn.config, PCI_CAP_ID_EXP);
  if (exp) {
    for (const at of [PCI_EXP_DEVCTL, PCI_EXP_LNKCTL, PCI_EXP_DEVCTL2, PCI_EXP_LNKCTL2]) regs.push({ offset: exp + at, size: 2 });
  }
  const add = (id: number, fields: Array<[number, 1 | 2 | 4]>) => {
    const at = findExtCapability(fn.config, id);
    if (at) for (const [offset, size] of fields) regs.push({ offset: at + offset, size });
  };
  add(PCI_EXT_CAP_ID_PASID, [[PCI_PASID_CTRL, 2]]);
  add(PCI_EXT_CAP_ID_PRI, [[PCI_PRI_ALLOC_REQ, 4], [PCI_PRI_CTRL, 2]]);
  add(PCI_EXT_CAP_ID_ATS, [[PCI_ATS_CTRL, 2]]);
  add(PCI_EXT_CAP_ID_ERR, [[PCI_ERR_UNCOR_MASK, 4], [PCI_ERR_UNCOR_SEVER, 4], [PCI_ERR_COR_MASK, 4], [PCI_ERR_CAP, 4]]);
  add(PCI_EXT_CAP_ID_ACS, [[PCI_ACS_CTRL, 2]]);
  add(PCI_EXT_CAP_ID_SRIOV, [[PCI_SRIOV_NUM_VF, 2], [PCI_SRIOV_CTRL, 2]]);
  const msi = findCapability(fn.config, PCI_CAP_ID_MSI);
  if (msi) {
    const len = msiCapLength(fn.config.read(msi + PCI_MSI_FLAGS, 2));
    // Address, data and masks before the flags, so Enable comes last.
    for (let at = 4; at + 4 <= len; at += 4) regs.push({ offset: msi + at, size: 4 });
    if (len % 4) regs.push({ offset: msi + len - 2, size: 2 });
    regs.push({ offset: msi + PCI_MSI_FLAGS, size: 2 });
  }
  return regs;
}

/** pci_save_state. */
export function pciSaveState(fn: PciFunction): PciSavedState {
  const header = new Uint32Array(16);
  for (let i = 0; i < 16; i++) header[i] = fn.config.read(i * 4, 4);
  const registers = capRegisters(fn).map((r) => ({ ...r, value: fn.config.read(r.offset, r.size) }));
  let msix: PciSavedState['msix'] = null;
  const cap = findCapability(fn.config, PCI_CAP_ID_MSIX);
  if (cap && fn.msix) {
    const flags = fn.config.read(cap + PCI_MSIX_FLAGS, 2);
    const tableReg = fn.config.read(cap + PCI_MSIX_TABLE, 4);
    const size = (flags & PCI_MSIX_FLAGS_QSIZE) + 1;
    const entries = new Uint32Array(size * 4);
    // The kernel keeps each vector's message in its descriptor; the table itself is that copy here.
    for (let i = 0; i < size * 4; i++) entries[i] = Number(fn.msix.readTable(i * 4, 4));
    msix = { flagsAt: cap + PCI_MSIX_FLAGS, flags, bar: tableReg & PCI_MSIX_TABLE_BIR, table: BigInt((tableReg & PCI_MSIX_TABLE_OFFSET) >>> 0), entries };
  }
  return { header, registers, msix };
}

/**
 * pci_restore_state: capability registers, then the header from the top
 * down so the BARs are in place before Command turns decode on (only
 * dwords that differ are written), then MSI-X with Function Mask held while
 * the table is rewritten.
 */
export function pciRestoreState(fn: PciFunction, state: PciSavedState): void {
  for (const r of state.registers) {
    if (fn.config.read(r.offset, r.size) !== r.value) fn.config.write(r.offset, r.size, r.value);
  }
  for (let i = 15; i >= 0; i--) {
    if (fn.config.read(i * 4, 4) !== state.header[i]) fn.config.write(i * 4, 4, state.header[i]!);
  }
  const msix = state.msix;
  if (!msix) return;
  fn.config.write(msix.flagsAt, 2, (msix.flags | PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL) & ~PCI_MSIX_FLAGS_QSIZE);
  const cmd = fn.config.read(PCI_COMMAND, 2);
  if (!(cmd & PCI_COMMAND_MEMORY)) fn.config.write(PCI_COMMAND, 2, cmd | PCI_COMMAND_MEMORY);
  for (let i = 0; i < msix.entries.length; i++) {
    fn.writeBar(msix.bar, msix.table + BigInt((i >> 2) * PCI_MSIX_ENTRY_SIZE + (i & 3) * 4), 4, BigInt(msix.entries[i]!));
  }
  fn.config.write(PCI_COMMAND, 2, cmd);
  fn.config.write(msix.flagsAt, 2, msix.flags & ~PCI_MSIX_FLAGS_QSIZE);
}
