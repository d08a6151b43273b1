import { SimError } from '../../errors/index.js';
import { PCI_INTERRUPT_PIN } from '../../platform/pci-regs.js';
import {
  VFIO_IRQ_INFO_AUTOMASKED,
  VFIO_IRQ_INFO_EVENTFD,
  VFIO_IRQ_INFO_MASKABLE,
  VFIO_IRQ_INFO_NORESIZE,
  VFIO_PCI_ERR_IRQ_INDEX,
  VFIO_PCI_INTX_IRQ_INDEX,
  VFIO_PCI_MSIX_IRQ_INDEX,
  VFIO_PCI_MSI_IRQ_INDEX,
  VFIO_PCI_NUM_IRQS,
  VFIO_PCI_REQ_IRQ_INDEX,
  offsetofEnd,
  readVfioArgsz,
  vfio_irq_info,
  writeBack,
  type UserMemory,
} from '../../uapi/index.js';
import type { VfioPciCoreDevice } from '../vfio-pci-core-device.js';
import { pciVecCount } from './pci-irq.js';

const IRQ_INFO_MINSZ = offsetofEnd(vfio_irq_info, 'count');

/**
 * vfio_pci_get_irq_count: INTx when the user-visible pin is set, MSI and
 * MSI-X as many as the function supports, ERR on PCIe, REQ always.
 */
export function vfioPciGetIrqCount(vdev: VfioPciCoreDevice, index: number): number {
  switch (index) {
    case VFIO_PCI_INTX_IRQ_INDEX:
      return vdev.vconfig[PCI_INTERRUPT_PIN] ? 1 : 0;
    case VFIO_PCI_MSI_IRQ_INDEX:
      return pciVecCount(vdev.pdev, 'msi');
    case VFIO_PCI_MSIX_IRQ_INDEX:
      return pciVecCount(vdev.pdev, 'msix');
    case VFIO_PCI_ERR_IRQ_INDEX:
      return vdev.pdev.pcieType !== null ? 1 : 0;
    case VFIO_PCI_REQ_IRQ_INDEX:
      return 1;
    default:
      return 0;
  }
}

/**
 * VFIO_DEVICE_GET_IRQ_INFO: every index signals an eventfd; INTx is
 * maskable and masks itself when it fires; the others cannot be resized
 * while enabled, except MSI-X with dynamic allocation. EINVAL for an index
 * past REQ, and for ERR on a conventional PCI function.
 */
export function vfioPciIoctlGetIrqInfo(vdev: VfioPciCoreDevice, mem: UserMemory, argp: bigint): number {
  const { value: info } = readVfioArgsz(mem, argp, vfio_irq_info, IRQ_INFO_MINSZ);
  if (info.index >= VFIO_PCI_NUM_IRQS || (info.index === VFIO_PCI_ERR_IRQ_INDEX && vdev.pdev.pcieType === null)) {
    throw new SimError('INVALID_ARGUMENT', `${vdev.name} has no interrupt index ${info.index}`);
  }
  info.flags = VFIO_IRQ_INFO_EVENTFD;
  info.count = vfioPciGetIrqCount(vdev, info.index);
  if (info.index === VFIO_PCI_INTX_IRQ_INDEX) info.flags |= VFIO_IRQ_INFO_MASKABLE | VFIO_IRQ_INFO_AUTOMASKED;
  else if (info.index !== VFIO_PCI_MSIX_IRQ_INDEX || !vdev.hasDynMsix) info.flags |= VFIO_IRQ_INFO_NORESIZE;
  writeBack(mem, argp, vfio_irq_info, info, IRQ_INFO_MINSZ);
  return 0;
}
