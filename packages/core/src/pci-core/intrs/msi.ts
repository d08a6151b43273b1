import { SimError } from '../../errors/index.js';
import { eventfdCtxFdget, type Process } from '../../os/index.js';
import { VFIO_PCI_MSIX_IRQ_INDEX, VFIO_PCI_MSI_IRQ_INDEX, VFIO_PCI_NUM_IRQS } from '../../uapi/index.js';
import { vfioPciMemoryLockAndEnable, vfioPciMemoryUnlockAndRestore } from '../memory.js';
import type { VfioPciCoreDevice } from '../vfio-pci-core-device.js';
import { isIrqNone } from './intx.js';
import {
  freeIrq,
  pciAllocIrqVectors,
  pciFreeIrqVectors,
  pciIntx,
  pciIrqVectorValid,
  pciMsixAllocIrqAt,
  pciRewriteMsixMessage,
  requestIrq,
} from './pci-irq.js';

/*
 * MSI and MSI-X for the user (vfio_pci_intrs.c). vfio allocates host
 * vectors for the first `start + count` vectors the user asks for, then
 * gives each vector with an eventfd its own host interrupt that signals it.
 * MSI-X table accesses need memory decode, so decode is on around them.
 */

/**
 * vfio_msi_enable: host vectors for `nvec` vectors; MSI also records log2
 * of the count as its virtual Multiple Message Capable. EINVAL with another
 * index in use.
 */
function msiEnable(vdev: VfioPciCoreDevice, nvec: number, msix: boolean): number {
  if (!isIrqNone(vdev)) throw new SimError('INVALID_ARGUMENT', `${vdev.name}: another interrupt type is enabled`);
  const cmd = vfioPciMemoryLockAndEnable(vdev);
  let allocated: number;
  try {
    allocated = pciAllocIrqVectors(vdev.pdev, nvec, msix ? 'msix' : 'msi');
    if (allocated < nvec) pciFreeIrqVectors(vdev.pdev);
  } finally {
    vfioPciMemoryUnlockAndRestore(vdev, cmd);
  }
  // Fewer vectors than asked for: the count is the ioctl's (positive) answer.
  if (allocated < nvec) return allocated;
  vdev.irqType = msix ? VFIO_PCI_MSIX_IRQ_INDEX : VFIO_PCI_MSI_IRQ_INDEX;
  if (!msix) vdev.msiQmax = 31 - Math.clz32(nvec * 2 - 1);
  return 0;
}

/**
 * vfio_msi_set_vector_signal: tears down whatever the vector had, then, for
 * fd >= 0, gives it a host interrupt signalling that eventfd. A vector
 * beyond those allocated at enable is added on the fly only for MSI-X with
 * dynamic allocation; otherwise EINVAL. EBADF or EINVAL for a bad eventfd,
 * leaving the vector without a handler.
 */
function msiSetVectorSignal(vdev: VfioPciCoreDevice, proc: Process | null, vector: number, fd: number, msix: boolean): void {
  const { pdev } = vdev;
  const existing = vdev.irqCtx.get(vector);
  if (existing) {
    const cmd = vfioPciMemoryLockAndEnable(vdev);
    freeIrq(pdev, vector);
    vfioPciMemoryUnlockAndRestore(vdev, cmd);
    vdev.irqCtx.delete(vector);
  }
  if (fd < 0) return;

  if (!existing && !pciIrqVectorValid(pdev, vector)) {
    if (!msix || !vdev.hasDynMsix) throw new SimError('INVALID_ARGUMENT', `${vdev.name}: vector ${vector} was not enabled`);
    const cmd = vfioPciMemoryLockAndEnable(vdev);
    try {
      pciMsixAllocIrqAt(pdev, vector);
    } finally {
      vfioPciMemoryUnlockAndRestore(vdev, cmd);
    }
  }

  const trigger = eventfdCtxFdget(proc!, fd);
  const cmd = vfioPciMemoryLockAndEnable(vdev);
  if (msix) pciRewriteMsixMessage(pdev, vector);
  requestIrq(pdev, vector, () => trigger.signal());
  vfioPciMemoryUnlockAndRestore(vdev, cmd);
  vdev.irqCtx.set(vector, { trigger, masked: false, unmask: null, mask: null });
}

/**
 * vfio_msi_set_block: vectors start..start+count-1 in order; when one
 * fails, every vector from `start` through the failing one is torn down.
 */
function msiSetBlock(vdev: VfioPciCoreDevice, proc: Process, start: number, count: number, fds: readonly number[], msix: boolean): void {
  let j = start;
  try {
    for (let i = 0; i < count; i++, j++) msiSetVectorSignal(vdev, proc, j, fds[i]!, msix);
  } catch (error) {
    for (let i = start; i <= j; i++) msiSetVectorSignal(vdev, null, i, -1, msix);
    throw error;
  }
}

/** vfio_msi_disable: every vector torn down, host vectors freed, no index in use. */
export function vfioMsiDisable(vdev: VfioPciCoreDevice, msix: boolean): void {
  for (const [vector, ctx] of [...vdev.irqCtx]) {
    ctx.unmask?.disable();
    ctx.mask?.disable();
    msiSetVectorSignal(vdev, null, vector, -1, msix);
  }
  const cmd = vfioPciMemoryLockAndEnable(vdev);
  pciFreeIrqVectors(vdev.pdev);
  vfioPciMemoryUnlockAndRestore(vdev, cmd);
  // Disabling MSI clears DisINTx on the way; a device with broken INTx keeps it set.
  if (vdev.nointx) pciIntx(vdev.pdev, false);
  vdev.irqType = VFIO_PCI_NUM_IRQS;
}

/** VFIO_IRQ_SET_ACTION_TRIGGER on the MSI or MSI-X index (vfio_pci_set_msi_trigger). */
export function vfioPciSetMsiTrigger(
  vdev: VfioPciCoreDevice,
  proc: Process,
  index: number,
  start: number,
  count: number,
  dataType: 'none' | 'bool' | 'eventfd',
  data: Uint8Array | null,
): number {
  const msix = index === VFIO_PCI_MSIX_IRQ_INDEX;
  if (vdev.irqType === index && !count && dataType === 'none') {
    vfioMsiDisable(vdev, msix);
    return 0;
  }
  if (!(vdev.irqType === index || isIrqNone(vdev))) throw new SimError('INVALID_ARGUMENT', `${vdev.name}: another interrupt type is enabled`);

  if (dataType === 'eventfd') {
    const view = new DataView(data!.buffer, data!.byteOffset, data!.byteLength);
    const fds = Array.from({ length: count }, (_, i) => view.getInt32(i * 4, true));
    if (vdev.irqType === index) {
      msiSetBlock(vdev, proc, start, count, fds, msix);
      return 0;
    }
    const short = msiEnable(vdev, start + count, msix);
    if (short) return short;
    try {
      msiSetBlock(vdev, proc, start, count, fds, msix);
    } catch (error) {
      vfioMsiDisable(vdev, msix);
      throw error;
    }
    return 0;
  }

  if (vdev.irqType !== index) throw new SimError('INVALID_ARGUMENT', `${vdev.name}: ${msix ? 'MSI-X' : 'MSI'} is not enabled`);
  for (let i = start; i < start + count; i++) {
    const ctx = vdev.irqCtx.get(i);
    if (!ctx) continue;
    if (dataType === 'none' || data![i - start]) ctx.trigger?.signal();
  }
  return 0;
}
