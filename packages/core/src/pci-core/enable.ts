import { SimError } from '../errors/index.js';
import { findCapability } from '../platform/capabilities/layout.js';
import {
  PCI_CAP_ID_MSIX,
  PCI_COMMAND,
  PCI_COMMAND_INTX_DISABLE,
  PCI_COMMAND_IO,
  PCI_COMMAND_MASTER,
  PCI_COMMAND_MEMORY,
  PCI_MSIX_FLAGS,
  PCI_MSIX_FLAGS_QSIZE,
  PCI_MSIX_TABLE,
  PCI_MSIX_TABLE_BIR,
  PCI_MSIX_TABLE_OFFSET,
} from '../platform/pci-regs.js';
import { VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_IRQ_SET_DATA_NONE, VFIO_PCI_NUM_IRQS } from '../uapi/index.js';
import { vfioConfigFree, vfioConfigInit } from './config/vconfig.js';
import { vfioPciDevSetTryReset } from './hot-reset/index.js';
import { pciIntx, pciIntxMaskSupported } from './intrs/pci-irq.js';
import { vfioPciSetIrqs } from './intrs/set-irqs.js';
import { pciSaveState } from './pci-state.js';
import { vfioPciRuntimePmExit, vfioPciSetPowerState } from './power.js';
import { vfioPciIoeventfdsRelease } from './regions/ioeventfd.js';
import { vfioPciProbeMmaps } from './regions/mmap.js';
import { vfioPciResetAtClose, vfioPciTryResetFunction } from './reset.js';
import type { VfioPciCoreDevice } from './vfio-pci-core-device.js';

/** Intel NICs whose DisINTx works but whose Interrupt Status does not (vfio_pci_nointx): INTx is hidden instead. */
const BROKEN_INTX_STATUS = new Set([0x1572, 0x1574, 0x1580, 0x1581, 0x1583, 0x1584, 0x1585, 0x1586, 0x1587, 0x1588, 0x1589, 0x158a, 0x158b, 0x37d0, 0x37d1, 0x37d2, 0x1563]);

function vfioPciNointx(vdev: VfioPciCoreDevice): boolean {
  return vdev.pdev.vendorId === 0x8086 && BROKEN_INTX_STATUS.has(vdev.pdev.deviceId);
}

/** Display controller, VGA compatible (PCI_CLASS_DISPLAY_VGA). */
function isVga(vdev: VfioPciCoreDevice): boolean {
  return vdev.pdev.classCode >> 8 === 0x0300;
}

/**
 * pci_enable_device: decode turned on for the resource types the host
 * assigned (pci_enable_resources).
 */
function pciEnableDevice(vdev: VfioPciCoreDevice): void {
  const { pdev } = vdev;
  let enable = 0;
  for (const bar of pdev.bars) {
    if (bar && bar.address !== 0n) enable |= bar.kind === 'io' ? PCI_COMMAND_IO : PCI_COMMAND_MEMORY;
  }
  if (pdev.rom && pdev.rom.address !== 0n) enable |= PCI_COMMAND_MEMORY;
  const cmd = pdev.config.read(PCI_COMMAND, 2);
  if ((cmd | enable) !== cmd) pdev.config.write(PCI_COMMAND, 2, cmd | enable);
}

function pciClearMaster(vdev: VfioPciCoreDevice): void {
  const cmd = vdev.pdev.config.read(PCI_COMMAND, 2);
  if (cmd & PCI_COMMAND_MASTER) vdev.pdev.config.write(PCI_COMMAND, 2, cmd & ~PCI_COMMAND_MASTER);
}

/**
 * vfio_pci_core_enable, at first open: the function is woken to D0 and
 * enabled, reset if any method works (which is what VFIO_DEVICE_RESET will
 * offer), its state saved for the last close, INTx masking probed, the
 * config shadow built and the MSI-X table located.
 */
export function vfioPciCoreEnable(vdev: VfioPciCoreDevice): void {
  const { pdev } = vdev;
  vfioPciSetPowerState(vdev, 'D0');
  pciClearMaster(vdev);
  pciEnableDevice(vdev);

  try {
    vfioPciTryResetFunction(vdev, 'open');
    vdev.resetWorks = true;
  } catch (error) {
    if (!(error instanceof SimError) || error.code !== 'NO_HANDLER') throw error;
    vdev.resetWorks = false;
  }
  vdev.pciSavedState = pciSaveState(pdev);

  vdev.nointx = false;
  vdev.pci23 = false;
  if (!vdev.params.nointxmask) {
    if (vfioPciNointx(vdev)) {
      vdev.nointx = true;
      pciIntx(pdev, false);
    } else {
      vdev.pci23 = !pdev.isVirtfn && pciIntxMaskSupported(pdev);
    }
  }
  const cmd = pdev.config.read(PCI_COMMAND, 2);
  if (vdev.pci23 && cmd & PCI_COMMAND_INTX_DISABLE) pdev.config.write(PCI_COMMAND, 2, cmd & ~PCI_COMMAND_INTX_DISABLE);

  try {
    vfioConfigInit(vdev);
  } catch (error) {
    vdev.pciSavedState = null;
    throw error;
  }

  const msix = findCapability(pdev.config, PCI_CAP_ID_MSIX);
  if (msix) {
    const flags = pdev.config.read(msix + PCI_MSIX_FLAGS, 2);
    const table = pdev.config.read(msix + PCI_MSIX_TABLE, 4);
    vdev.msixBar = table & PCI_MSIX_TABLE_BIR;
    vdev.msixOffset = (table & PCI_MSIX_TABLE_OFFSET) >>> 0;
    vdev.msixSize = ((flags & PCI_MSIX_FLAGS_QSIZE) + 1) * 16;
    // x86 MSI domains (with or without interrupt remapping) add MSI-X vectors while enabled.
    vdev.hasDynMsix = true;
  } else {
    vdev.msixBar = 0xff;
    vdev.hasDynMsix = false;
  }
  vdev.hasVga = vdev.params.vga && isVga(vdev);
}

/** vfio_pci_core_finish_enable: BAR mmaps probed; an open VF counts as a user of its PF's VF token. */
export function vfioPciCoreFinishEnable(vdev: VfioPciCoreDevice): void {
  vfioPciProbeMmaps(vdev);
  if (vdev.sriovPfCoreDev?.vfToken) vdev.sriovPfCoreDev.vfToken.users++;
}

/**
 * vfio_pci_core_disable, at last close: out of low power, DMA stopped,
 * interrupts and ioeventfds torn down, device regions released, the shadow
 * dropped; the function reset and put back as it was at open; if no
 * function reset worked, a bus reset of the dev_set is tried once every
 * device of it is closed; then the idle function drops to D3hot.
 */
export function vfioPciCoreDisable(vdev: VfioPciCoreDevice): void {
  vfioPciRuntimePmExit(vdev);
  vfioPciSetPowerState(vdev, 'D0');
  pciClearMaster(vdev);
  if (vdev.irqType !== VFIO_PCI_NUM_IRQS) {
    vfioPciSetIrqs(vdev, null, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER, vdev.irqType, 0, 0, null);
  }
  vfioPciIoeventfdsRelease(vdev);
  vdev.virqDisabled = false;
  for (const region of vdev.regions) region.ops.release?.(vdev, region);
  vdev.regions.length = 0;
  vfioConfigFree(vdev);
  vdev.needsReset = true;
  if (vfioPciResetAtClose(vdev)) vdev.needsReset = false;
  pciClearMaster(vdev);
  if (vdev.devSet) vfioPciDevSetTryReset(vdev.devSet);
  if (!vdev.params.disableIdleD3) vfioPciSetPowerState(vdev, 'D3hot');
}

/** vfio_pci_core_close_device: the VF stops using its PF's token; the device is disabled; ERR and REQ eventfds dropped. */
export function vfioPciCoreCloseDevice(vdev: VfioPciCoreDevice): void {
  if (vdev.sriovPfCoreDev?.vfToken) vdev.sriovPfCoreDev.vfToken.users--;
  vfioPciCoreDisable(vdev);
  vdev.errTrigger = null;
  vdev.reqTrigger = null;
}
