import { hotResetScope } from '../../platform/reset-scope.js';
import type { DevSet } from '../../vfio/dev-set.js';
import type { VfioCore } from '../../vfio/vfio-core.js';
import type { VfioPciCoreDevice } from '../vfio-pci-core-device.js';

/**
 * The dev_set id vfio_pci_core_register_device picks for a function: the
 * devices a slot or bus reset reaches must be opened, closed and reset
 * under one lock, so they share a set keyed by what the reset acts on.
 *
 * - a function on a root bus (no bridge above it to reset it), or a VF
 *   (its bus is its PF's, and a reset there takes the PF along): the device
 *   itself, a singleton set that no slot or bus reset can ever cover;
 * - a function in a slot whose reset works (pci_probe_reset_slot): the slot;
 * - otherwise its bus, whether or not a bus reset is possible.
 */
export function vfioPciDevSetId(vdev: VfioPciCoreDevice): unknown {
  const pdev = vdev.pdev;
  if (pdev.bus.isRoot || pdev.isVirtfn) return vdev;
  if (hotResetScope(pdev)?.kind === 'slot') return pdev.slot;
  return pdev.bus;
}

/**
 * The dev_set step of vfio_pci_core_register_device: joins the set
 * vfioPciDevSetId names, unless the driver already placed the device in a
 * set of its own choosing (a variant driver grouping functions that reset
 * together for a reason the topology does not show).
 */
export function vfioPciAssignDevSet(vfio: VfioCore, vdev: VfioPciCoreDevice): DevSet {
  return vdev.devSet ?? vfio.assignDeviceSet(vdev, vfioPciDevSetId(vdev));
}
