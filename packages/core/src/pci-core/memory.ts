import { PCI_COMMAND, PCI_COMMAND_MEMORY } from '../platform/pci-regs.js';
import type { VfioPciCoreDevice } from './vfio-pci-core-device.js';
import { shadowRead } from './config/access.js';

/*
 * Memory decode of the function as vfio-pci arbitrates it (the kernel's
 * memory_lock). Accesses the user makes to BARs — through the regions or
 * through mappings — are allowed only while the user's view has memory
 * enabled; vfio's own accesses (MSI-X programming, ROM probing) turn
 * decode on for their duration.
 */

/**
 * __vfio_pci_memory_enabled: the user's Memory Space bit (always on for a
 * VF, whose decode is the PF's VF MSE), and never below D0.
 */
export function vfioPciMemoryEnabled(vdev: VfioPciCoreDevice): boolean {
  if (vdev.pdev.powerState === 'D3hot') return false;
  return vdev.pdev.isVirtfn || (shadowRead(vdev, PCI_COMMAND, 2) & PCI_COMMAND_MEMORY) !== 0;
}

/**
 * Whether BAR mappings may be touched now: memory decode on, no low-power
 * state entered through the device feature, no reset running. When not, a
 * mapped access faults (SIGBUS), as the kernel zaps the mappings and its
 * fault handler refuses to map them back.
 */
export function vfioPciMmapAccessible(vdev: VfioPciCoreDevice): boolean {
  return !vdev.resetting && !vdev.pmRuntimeEngaged && vfioPciMemoryEnabled(vdev);
}

/** vfio_pci_memory_lock_and_enable: turns Memory Space on in the function; returns the Command value to restore. */
export function vfioPciMemoryLockAndEnable(vdev: VfioPciCoreDevice): number {
  const cmd = vdev.pdev.config.read(PCI_COMMAND, 2);
  if (!(cmd & PCI_COMMAND_MEMORY)) vdev.pdev.config.write(PCI_COMMAND, 2, cmd | PCI_COMMAND_MEMORY);
  return cmd;
}

/** vfio_pci_memory_unlock_and_restore. */
export function vfioPciMemoryUnlockAndRestore(vdev: VfioPciCoreDevice, cmd: number): void {
  vdev.pdev.config.write(PCI_COMMAND, 2, cmd);
}
