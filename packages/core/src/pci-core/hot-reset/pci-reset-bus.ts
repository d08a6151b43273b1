import { SimError } from '../../errors/index.js';
import type { PciFunction } from '../../platform/pci-function.js';
import { PCI_COMMAND, PCI_COMMAND_INTX_DISABLE } from '../../platform/pci-regs.js';
import { hotResetScope, pciResetBus } from '../../platform/reset-scope.js';
import { pciRestoreState, pciSaveState, type PciSavedState } from '../pci-state.js';

/**
 * The error handlers a bound driver offers around a reset the PCI core
 * drives (struct pci_error_handlers reset_prepare / reset_done).
 */
export interface PciResetHandlers {
  resetPrepare(fn: PciFunction): void;
  resetDone(fn: PciFunction): void;
}

/**
 * pci_reset_bus(pdev): the slot reset when the function's slot can be
 * reset, else a secondary bus reset of the bridge above its bus. Every
 * function the reset reaches is, in the order pci_walk_bus visits them,
 * prepared, saved and disabled (Command cleared but for INTx-disable, so it
 * neither decodes nor masters during the reset); after the reset each is
 * restored and told the reset is done, in the same order
 * (pci_bus_save_and_disable_locked / pci_slot_save_and_disable_locked and
 * their restore halves). What a user then observes is the configuration it
 * had (Command, BARs, MSI/MSI-X, PCIe controls) and the device-internal
 * state lost. The callers wake every function to D0 first, as vfio does
 * for its dev_set before calling here. ENOTTY when neither reset exists.
 */
export function pciResetBusWithState(pdev: PciFunction, handlers: PciResetHandlers): void {
  const scope = hotResetScope(pdev);
  if (!scope) throw new SimError('NO_HANDLER', `${pdev.name}: neither its slot nor its bus can be reset`);
  const saved = new Map<PciFunction, PciSavedState>();
  for (const fn of scope.functions) {
    handlers.resetPrepare(fn);
    saved.set(fn, pciSaveState(fn));
    fn.config.write(PCI_COMMAND, 2, PCI_COMMAND_INTX_DISABLE);
  }
  pciResetBus(pdev);
  for (const fn of scope.functions) {
    pciRestoreState(fn, saved.get(fn)!);
    handlers.resetDone(fn);
  }
}
