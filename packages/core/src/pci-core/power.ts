import { SimError } from '../errors/index.js';
import type { PowerState } from '../platform/pci-function.js';
import { PCI_BASE_ADDRESS_0, PCI_PM_CTRL, PCI_PM_CTRL_STATE_MASK } from '../platform/pci-regs.js';
import { eventfdCtxFdget, type Process } from '../os/index.js';
import {
  VFIO_DEVICE_FEATURE_SET,
  vfio_device_low_power_entry_with_wakeup,
} from '../uapi/index.js';
import { vfioCheckFeature } from '../vfio/device-feature.js';
import { pciRestoreState, pciSaveState } from './pci-state.js';
import type { VfioPciCoreDevice } from './vfio-pci-core-device.js';

const ORDER: Readonly<Record<PowerState, number>> = { D0: 0, D1: 1, D2: 2, D3hot: 3 };

/**
 * pci_set_power_state for a function with a PM capability: PowerState is
 * written (the function ignores states it does not support); coming back
 * to D0 from D3hot, the host reprograms the BARs it assigned, since a
 * function without NoSoftReset lost them.
 */
function pciSetPowerState(vdev: VfioPciCoreDevice, state: PowerState): void {
  const { pdev } = vdev;
  if (!pdev.pmCap || pdev.powerState === state) return;
  const from = pdev.powerState;
  const at = pdev.pmCap + PCI_PM_CTRL;
  const csr = pdev.config.read(at, 2) & ~PCI_PM_CTRL_STATE_MASK;
  pdev.config.write(at, 2, csr | ORDER[state]);
  if (from === 'D3hot' && state === 'D0' && !pdev.noSoftReset) {
    for (let i = 0; i < 6; i++) pdev.config.write(PCI_BASE_ADDRESS_0 + i * 4, 4, vdev.rbar[i]!);
  }
}

/**
 * vfio_pci_set_power_state: a PF with VFs enabled stays in D0 (EBUSY). For
 * a function that resets on D3hot->D0, its config state is saved on the
 * way down and restored on the way up, so the user's programming survives
 * the power cycle.
 */
export function vfioPciSetPowerState(vdev: VfioPciCoreDevice, state: PowerState): void {
  const { pdev } = vdev;
  if (pdev.virtfns.length > 0 && state !== 'D0') throw new SimError('BUSY', `${vdev.name} has VFs enabled and must stay in D0`);
  const current = ORDER[pdev.powerState];
  const target = ORDER[state];
  const needsSave = vdev.needsPmRestore && current < ORDER.D3hot && target >= ORDER.D3hot;
  const needsRestore = vdev.needsPmRestore && current >= ORDER.D3hot && target <= ORDER.D0;
  const saved = needsSave ? pciSaveState(pdev) : null;
  pciSetPowerState(vdev, state);
  if (saved && pdev.powerState === 'D3hot') {
    vdev.pmSave = saved;
  } else if (needsRestore && vdev.pmSave) {
    pciRestoreState(pdev, vdev.pmSave);
    vdev.pmSave = null;
  }
}

/** vfio_pci_probe_power_state: a function that resets on D3hot->D0 needs its state carried across. */
export function vfioPciProbePowerState(vdev: VfioPciCoreDevice): void {
  const { pdev } = vdev;
  if (pdev.pmCap) vdev.needsPmRestore = !pdev.noSoftReset;
}

/**
 * Puts the device in the low-power state userspace asked for. EINVAL if it
 * already is. From now on mapped BAR accesses fault; the next access
 * through the device file wakes it.
 */
function runtimePmEntry(vdev: VfioPciCoreDevice, wake: VfioPciCoreDevice['pmWakeEventfd']): void {
  if (vdev.pmRuntimeEngaged) throw new SimError('INVALID_ARGUMENT', `${vdev.name} is already in low power`);
  vdev.pmRuntimeEngaged = true;
  vdev.pmWakeEventfd = wake;
}

/** __vfio_pci_runtime_pm_exit. */
export function vfioPciRuntimePmExit(vdev: VfioPciCoreDevice): void {
  vdev.pmRuntimeEngaged = false;
  vdev.pmWakeEventfd = null;
}

/**
 * The device is about to be used through its file (an ioctl, a region
 * access): runtime resume. With a wakeup eventfd, the user is told and the
 * low-power state ends; without one the device only wakes for the access.
 */
export function vfioPciRuntimeResume(vdev: VfioPciCoreDevice): void {
  if (!vdev.pmRuntimeEngaged || !vdev.pmWakeEventfd) return;
  const wake = vdev.pmWakeEventfd;
  vfioPciRuntimePmExit(vdev);
  wake.signal();
}

/** VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY (SET, no data). */
export function vfioPciFeatureLowPowerEntry(vdev: VfioPciCoreDevice, flags: number, argsz: number): number {
  if (vfioCheckFeature(flags, argsz, VFIO_DEVICE_FEATURE_SET, 0) === 0) return 0;
  runtimePmEntry(vdev, null);
  return 0;
}

/** VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP (SET): EINVAL for a negative fd, then the eventfd lookup's errors. */
export function vfioPciFeatureLowPowerEntryWithWakeup(vdev: VfioPciCoreDevice, proc: Process, flags: number, argp: bigint, argsz: number): number {
  const size = vfio_device_low_power_entry_with_wakeup.size;
  if (vfioCheckFeature(flags, argsz, VFIO_DEVICE_FEATURE_SET, size) === 0) return 0;
  const entry = vfio_device_low_power_entry_with_wakeup.decode(proc.mm.copyFromUser(argp, size));
  if (entry.wakeup_eventfd < 0) throw new SimError('INVALID_ARGUMENT', `wakeup eventfd ${entry.wakeup_eventfd}`);
  runtimePmEntry(vdev, eventfdCtxFdget(proc, entry.wakeup_eventfd));
  return 0;
}

/** VFIO_DEVICE_FEATURE_LOW_POWER_EXIT (SET, no data). */
export function vfioPciFeatureLowPowerExit(vdev: VfioPciCoreDevice, flags: number, argsz: number): number {
  if (vfioCheckFeature(flags, argsz, VFIO_DEVICE_FEATURE_SET, 0) === 0) return 0;
  vfioPciRuntimePmExit(vdev);
  return 0;
}
