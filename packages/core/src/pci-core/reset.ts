import { SimError } from '../errors/index.js';
import type { PciFunction } from '../platform/pci-function.js';
import { PCI_COMMAND, PCI_COMMAND_INTX_DISABLE } from '../platform/pci-regs.js';
import { performResetMethod, resetMethods } from '../platform/reset-scope.js';
import type { ResetContext } from './hooks.js';
import { pciRestoreState, pciSaveState } from './pci-state.js';
import { vfioPciSetPowerState } from './power.js';
import type { VfioPciCoreDevice } from './vfio-pci-core-device.js';

/*
 * Function resets as vfio-pci-core drives them through the PCI core
 * (pci_try_reset_function; the slot and bus resets of a dev_set are in
 * hot-reset/): save the function's
 * config state and quiesce it, reset it by the first method that works,
 * restore the state. The variant driver's hooks run where the PCI core
 * calls a driver's reset_prepare and reset_done error handlers, and BAR
 * mappings fault for the duration.
 */

function runHook(hook: VfioPciCoreDevice['hooks']['reset'], ctx: ResetContext): void {
  if (hook.isUsed()) hook.call(ctx);
}

/**
 * __pci_reset_function_locked: the reset methods in the kernel's order; the
 * first that works is the answer. Returns its name, or null when none is
 * available (ENOTTY for the caller).
 */
function resetFunctionLocked(fn: PciFunction): string | null {
  for (const method of resetMethods(fn)) {
    try {
      performResetMethod(fn, method);
      return method;
    } catch (error) {
      if (!(error instanceof SimError)) throw error;
    }
  }
  return null;
}

/**
 * pci_try_reset_function with vfio's surroundings: beforeReset, the
 * function quiesced (D0, state saved, Command cleared but for DisINTx),
 * the reset, the state restored, reset, afterReset. ENOTTY when the
 * function has no working reset method; the hooks still run, with a null
 * method, as the kernel still calls reset_done.
 */
export function vfioPciTryResetFunction(vdev: VfioPciCoreDevice, cause: ResetContext['cause']): string {
  const { pdev } = vdev;
  if (resetMethods(pdev).length === 0) throw new SimError('NO_HANDLER', `${vdev.name} has no reset method`);
  const ctx: ResetContext = { vdev, cause, method: null };
  const wasResetting = vdev.resetting;
  vdev.resetting = true;
  try {
    runHook(vdev.hooks.beforeReset, ctx);
    vfioPciSetPowerState(vdev, 'D0');
    const saved = pciSaveState(pdev);
    pdev.config.write(PCI_COMMAND, 2, PCI_COMMAND_INTX_DISABLE);
    ctx.method = resetFunctionLocked(pdev);
    pciRestoreState(pdev, saved);
    runHook(vdev.hooks.reset, ctx);
  } finally {
    vdev.resetting = wasResetting;
  }
  runHook(vdev.hooks.afterReset, ctx);
  if (!ctx.method) throw new SimError('NO_HANDLER', `no reset method of ${vdev.name} worked`);
  return ctx.method;
}

/**
 * The reset at last close (vfio_pci_core_disable): the state saved at
 * first open is put back around a function reset, so the next user finds
 * the device as the host left it. No error handlers run here. Returns
 * whether the function was reset.
 */
export function vfioPciResetAtClose(vdev: VfioPciCoreDevice): boolean {
  const { pdev } = vdev;
  const saved = vdev.pciSavedState ?? (vdev.resetWorks ? pciSaveState(pdev) : null);
  vdev.pciSavedState = null;
  if (!saved) return false;
  pdev.config.write(PCI_COMMAND, 2, PCI_COMMAND_INTX_DISABLE);
  let reset = false;
  if (vdev.resetWorks) {
    vdev.resetting = true;
    try {
      reset = resetFunctionLocked(pdev) !== null;
    } finally {
      vdev.resetting = false;
    }
  }
  pciRestoreState(pdev, saved);
  return reset;
}

/** VFIO_DEVICE_RESET: EINVAL unless a reset worked when the device was opened. */
export function vfioPciIoctlReset(vdev: VfioPciCoreDevice): number {
  if (!vdev.resetWorks) throw new SimError('INVALID_ARGUMENT', `${vdev.name} cannot be reset`);
  vfioPciTryResetFunction(vdev, 'ioctl');
  return 0;
}
