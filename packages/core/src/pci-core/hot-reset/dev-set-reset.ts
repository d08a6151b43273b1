import { SimError } from '../../errors/index.js';
import type { PciFunction } from '../../platform/pci-function.js';
import { hotResetScope } from '../../platform/reset-scope.js';
import type { DevSet } from '../../vfio/dev-set.js';
import type { ResetContext } from '../hooks.js';
import { vfioPciRuntimeResume, vfioPciSetPowerState } from '../power.js';
import { VfioPciCoreDevice } from '../vfio-pci-core-device.js';
import { hotResetOwns, type HotResetProof } from './ownership.js';
import { pciResetBusWithState } from './pci-reset-bus.js';

/*
 * Resets of a whole dev_set (drivers/vfio/pci/vfio_pci_core.c): the hot
 * reset userspace asks for with VFIO_DEVICE_PCI_HOT_RESET, and the one
 * vfio-pci does by itself when the last device of a set closes and some
 * device of it still needs a reset (it had no function reset of its own).
 */

/** The vfio-pci-core devices of a set, in the set's order; other vfio devices take no part in PCI resets. */
function coreDevices(set: DevSet): VfioPciCoreDevice[] {
  return set.devices.filter((vdev): vdev is VfioPciCoreDevice => vdev instanceof VfioPciCoreDevice);
}

/**
 * vfio_pci_dev_set_resettable: the device whose slot or bus reset covers
 * the set (every device of a set shares one reset, so the first one
 * speaks for all), provided such a reset exists and every function it
 * reaches is a vfio device of this same set. A function bound to a host
 * driver, to another vfio driver or to nothing fails the test: only
 * drivers that take part in the set's locking may be reset under it.
 */
export function vfioPciDevSetResettable(set: DevSet): VfioPciCoreDevice | null {
  const first = set.devices[0];
  if (!(first instanceof VfioPciCoreDevice)) return null;
  const scope = hotResetScope(first.pdev);
  if (!scope) return null;
  for (const fn of scope.functions) if (!first.vfio!.findDeviceInDevSet(set, fn)) return null;
  return first;
}

/**
 * vfio_pci_dev_set_pm_runtime_get: every device of the set is resumed for
 * the reset. One waiting in a user-requested low-power state with a wakeup
 * eventfd is woken and its user told; one idle in D3hot (closed, runtime
 * suspended) comes back to D0, its saved state restored if D3hot lost it.
 * Returns the idle ones, for vfioPciDevSetPmRuntimePut.
 */
function vfioPciDevSetPmRuntimeGet(devices: readonly VfioPciCoreDevice[]): VfioPciCoreDevice[] {
  const idle = devices.filter((vdev) => vdev.openCount === 0 && vdev.pdev.powerState === 'D3hot');
  for (const vdev of devices) vfioPciRuntimeResume(vdev);
  for (const vdev of idle) vfioPciSetPowerState(vdev, 'D0');
  return idle;
}

/** pm_runtime_put of each device: the idle ones suspend again. */
function vfioPciDevSetPmRuntimePut(idle: readonly VfioPciCoreDevice[]): void {
  for (const vdev of idle) vfioPciSetPowerState(vdev, 'D3hot');
}

/**
 * pci_reset_bus on the set's reset with vfio-pci-core's reset hooks at the
 * error-handler points: beforeReset where reset_prepare runs (before the
 * function is saved and disabled), reset where reset_done runs (after it
 * was reset and restored). Returns the contexts of the set's devices for
 * the afterReset the caller runs once its own work is done.
 */
function resetSet(set: DevSet, first: VfioPciCoreDevice, cause: ResetContext['cause']): ResetContext[] {
  const contexts = new Map<PciFunction, ResetContext>();
  for (const vdev of coreDevices(set)) contexts.set(vdev.pdev, { vdev, cause, method: null });
  const method = hotResetScope(first.pdev)!.kind;
  pciResetBusWithState(first.pdev, {
    resetPrepare(fn) {
      const ctx = contexts.get(fn);
      ctx?.vdev.hooks.beforeReset.call(ctx);
    },
    resetDone(fn) {
      const ctx = contexts.get(fn);
      if (!ctx) return;
      ctx.method = method;
      ctx.vdev.hooks.reset.call(ctx);
    },
  });
  return [...contexts.values()];
}

/**
 * vfio_pci_dev_set_hot_reset. EINVAL when the set cannot be reset as a
 * whole (vfio_pci_dev_set_resettable); then every device is resumed, and
 * EINVAL when `proof` does not cover a device of the set, opened or not:
 * nothing is reset, though a device that waited in low power with a
 * wakeup eventfd has been woken, as in the kernel. Otherwise every
 * device's BAR mappings are revoked (mapped accesses fault until the reset
 * is over), every device goes to D0 (vfio_pci_set_power_state), the reset
 * runs, and the mappings come back in reverse order, as the kernel
 * releases each device's memory_lock.
 */
export function vfioPciDevSetHotReset(set: DevSet, proof: HotResetProof): void {
  const first = vfioPciDevSetResettable(set);
  if (!first) {
    throw new SimError('INVALID_ARGUMENT', 'the hot reset reaches a function that is not a vfio-pci device of this dev_set, or no slot or bus reset exists');
  }
  const devices = coreDevices(set);
  const idle = vfioPciDevSetPmRuntimeGet(devices);
  let contexts: ResetContext[];
  try {
    for (const vdev of set.devices) {
      if (!hotResetOwns(vdev, proof)) throw new SimError('INVALID_ARGUMENT', `${vdev.name} is affected by the hot reset and not owned by the caller`);
    }
    for (const vdev of devices) vdev.resetting = true;
    try {
      for (const vdev of devices) vfioPciSetPowerState(vdev, 'D0');
      contexts = resetSet(set, first, 'hot-reset');
    } finally {
      for (const vdev of [...devices].reverse()) vdev.resetting = false;
    }
  } finally {
    vfioPciDevSetPmRuntimePut(idle);
  }
  for (const ctx of contexts.reverse()) ctx.vdev.hooks.afterReset.call(ctx);
}

/**
 * vfio_pci_dev_set_needs_reset, asked while the last device of the set is
 * closing (its open count still 1): nothing else of the set may be open,
 * and some device of it must have been used since it was last reset.
 */
export function vfioPciDevSetNeedsReset(set: DevSet): boolean {
  if (set.openCount > 1) return false;
  return coreDevices(set).some((vdev) => vdev.needsReset);
}

/**
 * vfio_pci_dev_set_try_reset, the last step of vfio_pci_core_disable: when
 * the set needs a reset and a slot or bus reset covers exactly vfio devices
 * of the set, reset it and mark every device clean. Otherwise nothing
 * happens and the devices stay marked, to be tried at the next close. A
 * close cannot fail, so a hook that throws is logged and the devices stay
 * marked.
 */
export function vfioPciDevSetTryReset(set: DevSet): void {
  if (!vfioPciDevSetNeedsReset(set)) return;
  const first = vfioPciDevSetResettable(set);
  if (!first) return;
  const devices = coreDevices(set);
  const idle = vfioPciDevSetPmRuntimeGet(devices);
  let contexts: ResetContext[];
  try {
    contexts = resetSet(set, first, 'close');
  } catch (error) {
    if (!(error instanceof SimError)) throw error;
    first.vfio!.log.warn(first.name, `dev_set reset on close failed: ${error.message}`);
    return;
  } finally {
    vfioPciDevSetPmRuntimePut(idle);
  }
  for (const vdev of devices) vdev.needsReset = false;
  for (const ctx of contexts.reverse()) ctx.vdev.hooks.afterReset.call(ctx);
}
