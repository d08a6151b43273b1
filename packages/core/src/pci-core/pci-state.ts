import { findCapability, findExtCapability } from '../platform/capabilities/layout.js';
import type { PciFunction } from '../platform/pci-function.js';
import {
  PCI_ACS_CTRL,
  PCI_ATS_CTRL,
  PCI_CAP_ID_EXP,
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
  PCI_PASID_CTRL,
  PCI_PRI_ALLOC_REQ,
  PCI_PRI_CTRL,
  PCI_SRIOV_BAR,
  PCI_SRIOV_CTRL,
  PCI_SRIOV_CTRL_ARI,
  PCI_SRIOV_CTRL_VFE,
  PCI_SRIOV_NUM_VF,
} from '../platform/pci-regs.js';
import { pciRestoreMsiState } from './intrs/pci-irq.js';

interface SavedRegister {
  readonly offset: number;
  readonly size: 1 | 2 | 4;
  readonly value: number;
}

/**
 * What pci_save_state() keeps of a function for pci_restore_state(): the
 * type 0 header and the control registers of the PCIe and extended
 * capabilities. A function reset returns the hardware to its power-on
 * values; restoring this state is what makes the function usable again.
 * MSI and MSI-X and the SR-IOV VFs are not in it: the restore takes them
 * from what the host itself keeps (its MSI descriptors, its pci_sriov).
 */
export interface PciSavedState {
  /** Dwords 0-15 of the header. */
  readonly header: Uint32Array;
  /** PCIe, PASID, PRI, ATS and AER controls, restored before the header. */
  readonly registers: readonly SavedRegister[];
  /** ACS Control, restored after MSI as pci_enable_acs() runs late in pci_restore_state(). */
  readonly acs: SavedRegister | null;
}

function read(fn: PciFunction, offset: number, size: 1 | 2 | 4): SavedRegister {
  return { offset, size, value: fn.config.read(offset, size) };
}

function capRegisters(fn: PciFunction): SavedRegister[] {
  const regs: SavedRegister[] = [];
  const exp = findCapability(fn.config, PCI_CAP_ID_EXP);
  if (exp) {
    for (const at of [PCI_EXP_DEVCTL, PCI_EXP_LNKCTL, PCI_EXP_DEVCTL2, PCI_EXP_LNKCTL2]) regs.push(read(fn, exp + at, 2));
  }
  const add = (id: number, fields: Array<[number, 1 | 2 | 4]>) => {
    const at = findExtCapability(fn.config, id);
    if (at) for (const [offset, size] of fields) regs.push(read(fn, at + offset, size));
  };
  add(PCI_EXT_CAP_ID_PASID, [[PCI_PASID_CTRL, 2]]);
  add(PCI_EXT_CAP_ID_PRI, [[PCI_PRI_ALLOC_REQ, 4], [PCI_PRI_CTRL, 2]]);
  add(PCI_EXT_CAP_ID_ATS, [[PCI_ATS_CTRL, 2]]);
  add(PCI_EXT_CAP_ID_ERR, [[PCI_ERR_UNCOR_MASK, 4], [PCI_ERR_UNCOR_SEVER, 4], [PCI_ERR_COR_MASK, 4], [PCI_ERR_CAP, 4]]);
  return regs;
}

/** pci_save_state. */
export function pciSaveState(fn: PciFunction): PciSavedState {
  const header = new Uint32Array(16);
  for (let i = 0; i < 16; i++) header[i] = fn.config.read(i * 4, 4);
  const acs = findExtCapability(fn.config, PCI_EXT_CAP_ID_ACS);
  return { header, registers: capRegisters(fn), acs: acs ? read(fn, acs + PCI_ACS_CTRL, 2) : null };
}

function restoreRegister(fn: PciFunction, r: SavedRegister): void {
  if (fn.config.read(r.offset, r.size) !== r.value) fn.config.write(r.offset, r.size, r.value);
}

/**
 * pci_restore_iov_state (sriov_restore_state): a PF whose VF Enable the
 * reset cleared gets back what the host last programmed with
 * sriov_enable()/sriov_disable(): ARI Capable Hierarchy first (it decides
 * the VF routing), the VF BARs at their assigned addresses, NumVFs, then
 * Control, which re-enables the VFs the host had enabled and leaves them
 * off if it had not. System Page Size is not rewritten: the host programs
 * 4 KiB, which is also its power-on value.
 */
function pciRestoreIovState(fn: PciFunction): void {
  const iov = fn.iov;
  const pos = iov ? findExtCapability(fn.config, PCI_EXT_CAP_ID_SRIOV) : 0;
  if (!iov || !pos) return;
  const ctrl = fn.config.read(pos + PCI_SRIOV_CTRL, 2);
  if (ctrl & PCI_SRIOV_CTRL_VFE) return;
  fn.config.write(pos + PCI_SRIOV_CTRL, 2, (ctrl & ~PCI_SRIOV_CTRL_ARI) | (iov.ctrl & PCI_SRIOV_CTRL_ARI));
  for (const bar of fn.iovBars) {
    if (!bar) continue;
    const at = pos + PCI_SRIOV_BAR + bar.index * 4;
    fn.config.write(at, 4, Number(bar.address & 0xffffffffn));
    if (bar.kind === 'mem64') fn.config.write(at + 4, 4, Number(bar.address >> 32n));
  }
  fn.config.write(pos + PCI_SRIOV_NUM_VF, 2, iov.numVfs);
  fn.config.write(pos + PCI_SRIOV_CTRL, 2, iov.ctrl);
}

/**
 * pci_restore_state, in the kernel's order: the PCIe and extended
 * capability controls; the header from the top down so the BARs are in
 * place before Command turns decode on (only dwords that differ are
 * written); MSI or MSI-X from the host's descriptors; ACS; SR-IOV from
 * the host's record.
 */
export function pciRestoreState(fn: PciFunction, state: PciSavedState): void {
  for (const r of state.registers) restoreRegister(fn, r);
  for (let i = 15; i >= 0; i--) {
    if (fn.config.read(i * 4, 4) !== state.header[i]) fn.config.write(i * 4, 4, state.header[i]!);
  }
  pciRestoreMsiState(fn);
  if (state.acs) restoreRegister(fn, state.acs);
  pciRestoreIovState(fn);
}
