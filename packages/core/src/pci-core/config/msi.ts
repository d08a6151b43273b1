import { msiRegisters } from '../../platform/capabilities/msi.js';
import {
  PCI_CAP_LIST_NEXT,
  PCI_MSI_ADDRESS_HI,
  PCI_MSI_ADDRESS_LO,
  PCI_MSI_FLAGS,
  PCI_MSI_FLAGS_ENABLE,
  PCI_MSI_FLAGS_QSIZE,
} from '../../platform/pci-regs.js';
import { VFIO_PCI_MSI_IRQ_INDEX } from '../../uapi/index.js';
import type { VfioPciCoreDevice } from '../vfio-pci-core-device.js';
import { defaultRead, defaultWrite, physWrite, shadowRead, shadowWrite } from './access.js';
import { ALL_VIRT, ALL_WRITE, NO_VIRT, NO_WRITE, PermBits } from './perm-bits.js';
import { findCapStart } from './config-map.js';

/*
 * MSI is virtualized: the user's address, data and enable never reach the
 * function, because vfio programs MSI itself (with host vectors) when the
 * user enables it through VFIO_DEVICE_SET_IRQS. What the user writes
 * lives in the shadow, so a VMM can mirror the guest's programming there.
 *
 * The Multiple Message Capable field shows what the function supports, as
 * filled from it at open: the kernel's read hook means to replace it with
 * the count enabled so far, but its update lands on the capability header
 * bytes instead of the flags, which read from the function anyway, so the
 * user never sees a difference.
 */

/**
 * Writes to the flags keep MSI Enable off unless vfio itself enabled MSI,
 * cap Multiple Message Enable at what vfio enabled, and go to the function
 * too (the function's own Enable and MME are what vfio set).
 */
function msiWrite(vdev: VfioPciCoreDevice, pos: number, count: number, perm: PermBits, offset: number, value: number): void {
  defaultWrite(vdev, pos, count, perm, offset, value);
  if (!(offset <= PCI_MSI_FLAGS && offset + count >= PCI_MSI_FLAGS)) return;
  const flagsAt = findCapStart(vdev, pos) + PCI_MSI_FLAGS;
  let flags = shadowRead(vdev, flagsAt, 2);
  if (vdev.irqType !== VFIO_PCI_MSI_IRQ_INDEX) flags &= ~PCI_MSI_FLAGS_ENABLE;
  if ((flags & PCI_MSI_FLAGS_QSIZE) >> 4 > vdev.msiQmax) flags = (flags & ~PCI_MSI_FLAGS_QSIZE) | (vdev.msiQmax << 4);
  shadowWrite(vdev, flagsAt, 2, flags);
  physWrite(vdev, flagsAt, 2, flags);
}

/**
 * The MSI capability's permissions for the function's flags: the lower
 * flags byte, address and data are virtual; per-vector mask and pending
 * bits go to the function.
 */
export function msiPerms(flags: number): PermBits {
  const regs = msiRegisters(flags);
  const perm = new PermBits(regs.length, defaultRead, msiWrite)
    .byte(PCI_CAP_LIST_NEXT, 0xff, NO_WRITE)
    .byte(PCI_MSI_FLAGS, 0xff, 0xff)
    .dword(PCI_MSI_ADDRESS_LO, ALL_VIRT, ALL_WRITE);
  if (regs.address64) perm.dword(PCI_MSI_ADDRESS_HI, ALL_VIRT, ALL_WRITE);
  perm.word(regs.data, 0xffff, 0xffff);
  if (regs.mask !== null && regs.pending !== null) perm.dword(regs.mask, NO_VIRT, ALL_WRITE).dword(regs.pending, NO_VIRT, ALL_WRITE);
  return perm;
}
