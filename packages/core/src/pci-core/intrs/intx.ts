import { SimError } from '../../errors/index.js';
import type { EventfdCtx } from '../../os/index.js';
import { VFIO_PCI_INTX_IRQ_INDEX, VFIO_PCI_NUM_IRQS } from '../../uapi/index.js';
import { intxRouted } from '../config/vconfig.js';
import type { VfioPciCoreDevice } from '../vfio-pci-core-device.js';
import type { IrqContext } from './irq-context.js';
import { freeIntx, pciCheckAndSetIntxMask, pciIntx, requestIntx, setIntxLineEnabled } from './pci-irq.js';

/*
 * INTx for the user (vfio_pci_intrs.c). INTx is level triggered and
 * shared, so vfio masks it as it forwards it: the user's eventfd is
 * signalled once, and INTx stays masked until the user unmasks it (after
 * servicing the device), by ioctl, by an unmask eventfd, or by clearing
 * DisINTx in the virtual command register. A device that cannot mask
 * INTx itself (no PCI 2.3 DisINTx) has its host line disabled instead.
 */

export function isIntx(vdev: VfioPciCoreDevice): boolean {
  return vdev.irqType === VFIO_PCI_INTX_IRQ_INDEX;
}

export function isIrqNone(vdev: VfioPciCoreDevice): boolean {
  return vdev.irqType === VFIO_PCI_NUM_IRQS;
}

function intxCtx(vdev: VfioPciCoreDevice): IrqContext {
  return vdev.irqCtx.get(0)!;
}

/** vfio_send_intx_eventfd: only while INTx is the index in use and the user has not disabled it. */
export function vfioSendIntxEventfd(vdev: VfioPciCoreDevice): void {
  if (!isIntx(vdev) || vdev.virqDisabled) return;
  intxCtx(vdev).trigger?.signal();
}

/**
 * Masks INTx (from the interrupt itself, an ioctl, or DisINTx in the
 * virtual command register). Without INTx in use, the function's DisINTx
 * just follows the user's. Returns whether the mask state changed.
 */
export function vfioPciIntxMask(vdev: VfioPciCoreDevice): boolean {
  if (!isIntx(vdev)) {
    if (vdev.pci23) pciIntx(vdev.pdev, false);
    return false;
  }
  const ctx = intxCtx(vdev);
  if (ctx.masked) return false;
  if (vdev.pci23) pciIntx(vdev.pdev, false);
  else setIntxLineEnabled(vdev.pdev, false);
  ctx.masked = true;
  return true;
}

/**
 * Unmasks INTx unless the user disabled it. If the function still asserts
 * INTx, it stays masked and the user is signalled again instead of taking
 * an interrupt right away. Returns whether that signal is due.
 */
export function vfioPciIntxUnmaskHandler(vdev: VfioPciCoreDevice): boolean {
  if (!isIntx(vdev)) {
    if (vdev.pci23) pciIntx(vdev.pdev, true);
    return false;
  }
  const ctx = intxCtx(vdev);
  let resend = false;
  if (ctx.masked && !vdev.virqDisabled) {
    if (vdev.pci23) {
      resend = !pciCheckAndSetIntxMask(vdev.pdev, false);
    } else {
      ctx.masked = false;
      setIntxLineEnabled(vdev.pdev, true);
      return false;
    }
    ctx.masked = resend;
  }
  return resend;
}

export function vfioPciIntxUnmask(vdev: VfioPciCoreDevice): void {
  if (vfioPciIntxUnmaskHandler(vdev)) vfioSendIntxEventfd(vdev);
}

/** The host's INTx handler: mask at the function (if the interrupt is ours) and tell the user. */
function intxHandler(vdev: VfioPciCoreDevice): void {
  const ctx = vdev.irqCtx.get(0);
  if (!ctx) return;
  let handled = false;
  if (!vdev.pci23) {
    setIntxLineEnabled(vdev.pdev, false);
    ctx.masked = true;
    handled = true;
  } else if (!ctx.masked && pciCheckAndSetIntxMask(vdev.pdev, true)) {
    ctx.masked = true;
    handled = true;
  }
  if (handled) vfioSendIntxEventfd(vdev);
}

/**
 * vfio_intx_enable: INTx becomes the index in use, masked from the start if
 * the user had DisINTx set. EINVAL with another index in use, ENODEV when
 * the host routed no INTx line.
 */
export function vfioIntxEnable(vdev: VfioPciCoreDevice, trigger: EventfdCtx | null): void {
  if (!isIrqNone(vdev)) throw new SimError('INVALID_ARGUMENT', `${vdev.name}: another interrupt type is enabled`);
  if (!intxRouted(vdev)) throw new SimError('NO_DEVICE', `${vdev.name} has no INTx line`);
  const ctx: IrqContext = { trigger, masked: vdev.virqDisabled, unmask: null, mask: null };
  vdev.irqCtx.set(0, ctx);
  if (vdev.pci23) pciIntx(vdev.pdev, !ctx.masked);
  vdev.irqType = VFIO_PCI_INTX_IRQ_INDEX;
  requestIntx(vdev.pdev, () => intxHandler(vdev), !vdev.pci23 && ctx.masked);
}

/** vfio_intx_set_signal: swaps the eventfd INTx signals (null: none), keeping INTx enabled. */
export function vfioIntxSetSignal(vdev: VfioPciCoreDevice, trigger: EventfdCtx | null): void {
  intxCtx(vdev).trigger = trigger;
}

/** vfio_intx_disable: the unmask and mask eventfds go, the handler goes, no index is in use. */
export function vfioIntxDisable(vdev: VfioPciCoreDevice): void {
  const ctx = vdev.irqCtx.get(0);
  if (ctx) {
    ctx.unmask?.disable();
    ctx.mask?.disable();
    freeIntx(vdev.pdev);
    vdev.irqCtx.delete(0);
  }
  vdev.irqType = VFIO_PCI_NUM_IRQS;
}
