import { SimError } from '../../errors/index.js';
import { eventfdCtxFdget, type Process } from '../../os/index.js';
import {
  VFIO_IRQ_SET_ACTION_MASK,
  VFIO_IRQ_SET_ACTION_TRIGGER,
  VFIO_IRQ_SET_ACTION_TYPE_MASK,
  VFIO_IRQ_SET_ACTION_UNMASK,
  VFIO_IRQ_SET_DATA_BOOL,
  VFIO_IRQ_SET_DATA_NONE,
  VFIO_PCI_ERR_IRQ_INDEX,
  VFIO_PCI_INTX_IRQ_INDEX,
  VFIO_PCI_MSIX_IRQ_INDEX,
  VFIO_PCI_MSI_IRQ_INDEX,
  VFIO_PCI_REQ_IRQ_INDEX,
} from '../../uapi/index.js';
import type { VfioPciCoreDevice } from '../vfio-pci-core-device.js';
import {
  isIntx,
  isIrqNone,
  vfioIntxDisable,
  vfioIntxEnable,
  vfioIntxSetSignal,
  vfioPciIntxMask,
  vfioPciIntxUnmask,
  vfioPciIntxUnmaskHandler,
  vfioSendIntxEventfd,
} from './intx.js';
import { vfioPciSetMsiTrigger } from './msi.js';
import { Virqfd } from './virqfd.js';

type DataType = 'none' | 'bool' | 'eventfd';

function dataTypeOf(flags: number): DataType {
  if (flags & VFIO_IRQ_SET_DATA_NONE) return 'none';
  if (flags & VFIO_IRQ_SET_DATA_BOOL) return 'bool';
  return 'eventfd';
}

function fdAt(data: Uint8Array, i = 0): number {
  return new DataView(data.buffer, data.byteOffset, data.byteLength).getInt32(i * 4, true);
}

function requireSingleIntx(vdev: VfioPciCoreDevice, start: number, count: number): void {
  if (!isIntx(vdev) || start !== 0 || count !== 1) {
    throw new SimError('INVALID_ARGUMENT', `${vdev.name}: INTx is not enabled, or the request is not vector 0 alone`);
  }
}

function setIntxUnmask(vdev: VfioPciCoreDevice, proc: Process, start: number, count: number, type: DataType, data: Uint8Array | null): number {
  requireSingleIntx(vdev, start, count);
  if (type === 'none' || (type === 'bool' && data![0])) {
    vfioPciIntxUnmask(vdev);
  } else if (type === 'eventfd') {
    const ctx = vdev.irqCtx.get(0)!;
    const fd = fdAt(data!);
    if (fd >= 0) {
      // As in the kernel, the handler only unmasks; re-signalling a still
      // asserted INTx is the deferred part.
      Virqfd.enable(proc, fd, { get: () => ctx.unmask, set: (v) => (ctx.unmask = v) }, () => vfioPciIntxUnmaskHandler(vdev), () => vfioSendIntxEventfd(vdev));
    } else {
      ctx.unmask?.disable();
      ctx.unmask = null;
    }
  }
  return 0;
}

function setIntxMask(vdev: VfioPciCoreDevice, start: number, count: number, type: DataType, data: Uint8Array | null): number {
  requireSingleIntx(vdev, start, count);
  if (type === 'eventfd') throw new SimError('NO_HANDLER', `${vdev.name}: masking INTx from an eventfd is not supported`);
  if (type === 'none' || data![0]) vfioPciIntxMask(vdev);
  return 0;
}

function setIntxTrigger(vdev: VfioPciCoreDevice, proc: Process, start: number, count: number, type: DataType, data: Uint8Array | null): number {
  if (isIntx(vdev) && !count && type === 'none') {
    vfioIntxDisable(vdev);
    return 0;
  }
  if (!(isIntx(vdev) || isIrqNone(vdev)) || start !== 0 || count !== 1) {
    throw new SimError('INVALID_ARGUMENT', `${vdev.name}: INTx trigger needs vector 0 alone with INTx or no interrupt enabled`);
  }
  if (type === 'eventfd') {
    const fd = fdAt(data!);
    const trigger = fd >= 0 ? eventfdCtxFdget(proc, fd) : null;
    if (isIntx(vdev)) vfioIntxSetSignal(vdev, trigger);
    else vfioIntxEnable(vdev, trigger);
    return 0;
  }
  if (!isIntx(vdev)) throw new SimError('INVALID_ARGUMENT', `${vdev.name}: INTx is not enabled`);
  if (type === 'none' || data![0]) vfioSendIntxEventfd(vdev);
  return 0;
}

/**
 * The ERR and REQ indexes have one eventfd each (vfio_pci_set_ctx_trigger_single).
 * DATA_NONE and DATA_BOOL signal it, for loopback tests; DATA_NONE with
 * count 0 clears it, and needs one set (EINVAL otherwise); DATA_EVENTFD
 * sets it, clears it with -1, and ignores other negative fds.
 */
function setTriggerSingle(
  vdev: VfioPciCoreDevice,
  proc: Process,
  slot: 'errTrigger' | 'reqTrigger',
  start: number,
  count: number,
  type: DataType,
  data: Uint8Array | null,
): number {
  if (start !== 0 || count > 1) throw new SimError('INVALID_ARGUMENT', `${vdev.name}: the ${slot === 'errTrigger' ? 'ERR' : 'REQ'} index has one vector`);
  const current = vdev[slot];
  if (type === 'none') {
    if (!current) throw new SimError('INVALID_ARGUMENT', `${vdev.name}: no ${slot === 'errTrigger' ? 'ERR' : 'REQ'} eventfd is set`);
    if (count) current.signal();
    else vdev[slot] = null;
    return 0;
  }
  if (!count) throw new SimError('INVALID_ARGUMENT', `${vdev.name}: count 0 with data`);
  if (type === 'bool') {
    if (data![0]) current?.signal();
    return 0;
  }
  const fd = fdAt(data!);
  if (fd === -1) vdev[slot] = null;
  else if (fd >= 0) vdev[slot] = eventfdCtxFdget(proc, fd);
  return 0;
}

/**
 * vfio_pci_set_irqs_ioctl: runs the action on the index after the header
 * and data were validated. An action the index does not have (MASK or
 * UNMASK on MSI, anything but TRIGGER on ERR and REQ, ERR on a
 * conventional PCI function, no action or several) is ENOTTY.
 */
export function vfioPciSetIrqs(
  vdev: VfioPciCoreDevice,
  proc: Process | null,
  flags: number,
  index: number,
  start: number,
  count: number,
  data: Uint8Array | null,
): number {
  const action = flags & VFIO_IRQ_SET_ACTION_TYPE_MASK;
  const type = dataTypeOf(flags);
  // Only eventfd data needs the caller's fd table; vfio's own teardown passes no process.
  if (type === 'eventfd' && !proc) throw new Error('VFIO_IRQ_SET_DATA_EVENTFD needs the calling process');
  switch (index) {
    case VFIO_PCI_INTX_IRQ_INDEX:
      if (action === VFIO_IRQ_SET_ACTION_MASK) return setIntxMask(vdev, start, count, type, data);
      if (action === VFIO_IRQ_SET_ACTION_UNMASK) return setIntxUnmask(vdev, proc!, start, count, type, data);
      if (action === VFIO_IRQ_SET_ACTION_TRIGGER) return setIntxTrigger(vdev, proc!, start, count, type, data);
      break;
    case VFIO_PCI_MSI_IRQ_INDEX:
    case VFIO_PCI_MSIX_IRQ_INDEX:
      if (action === VFIO_IRQ_SET_ACTION_TRIGGER) return vfioPciSetMsiTrigger(vdev, proc!, index, start, count, type, data);
      break;
    case VFIO_PCI_ERR_IRQ_INDEX:
      if (action === VFIO_IRQ_SET_ACTION_TRIGGER && vdev.pdev.pcieType !== null) {
        return setTriggerSingle(vdev, proc!, 'errTrigger', start, count, type, data);
      }
      break;
    case VFIO_PCI_REQ_IRQ_INDEX:
      if (action === VFIO_IRQ_SET_ACTION_TRIGGER) return setTriggerSingle(vdev, proc!, 'reqTrigger', start, count, type, data);
      break;
  }
  throw new SimError('NO_HANDLER', `${vdev.name}: index ${index} has no action 0x${(action >>> 0).toString(16)}`);
}
