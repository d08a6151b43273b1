import { SimError } from '../errors/index.js';
import type { Process } from '../os/index.js';
import type { BarAccessSize } from '../platform/bar-memory.js';
import {
  VFIO_DEVICE_IOEVENTFD_SIZE_MASK,
  VFIO_PCI_NUM_IRQS,
  ioctlTable,
  offsetofEnd,
  vfio_device_ioeventfd,
  vfio_irq_set,
} from '../uapi/index.js';
import { VFIO_IRQ_SET_MINSZ, vfioSetIrqsValidateAndPrepare, type IrqSetHeader } from '../vfio/set-irqs.js';
import { vfioPciIoctlGetInfo } from './device-info.js';
import { vfioPciIoctlGetPciHotResetInfo, vfioPciIoctlPciHotReset } from './hot-reset/index.js';
import { vfioPciGetIrqCount, vfioPciIoctlGetIrqInfo } from './intrs/irq-info.js';
import { vfioPciSetIrqs } from './intrs/set-irqs.js';
import { vfioPciRuntimeResume } from './power.js';
import { vfioPciIoeventfd } from './regions/ioeventfd.js';
import { vfioPciIoctlGetRegionInfo } from './regions/region-info.js';
import { vfioPciIoctlReset } from './reset.js';
import type { VfioPciCoreDevice } from './vfio-pci-core-device.js';

interface Call {
  readonly vdev: VfioPciCoreDevice;
  readonly proc: Process;
}

/**
 * VFIO_DEVICE_SET_IRQS: the header is checked by the vfio core's rules
 * against the index's vector count, the data (count bools or eventfds)
 * copied from after the header, then the action runs.
 */
function setIrqs(vdev: VfioPciCoreDevice, proc: Process, hdr: IrqSetHeader, argp: bigint): number {
  const max = vfioPciGetIrqCount(vdev, hdr.index);
  const dataSize = vfioSetIrqsValidateAndPrepare(hdr, max, VFIO_PCI_NUM_IRQS);
  const data = dataSize ? proc.mm.copyFromUser(argp + BigInt(VFIO_IRQ_SET_MINSZ), dataSize) : null;
  return vfioPciSetIrqs(vdev, proc, hdr.flags, hdr.index, hdr.start, hdr.count, data);
}

/**
 * VFIO_DEVICE_IOEVENTFD: flags may hold only the size bits, exactly one of
 * them; fd is -1 (detach) or an eventfd. All EINVAL.
 */
function ioeventfd(vdev: VfioPciCoreDevice, proc: Process, arg: { flags: number; offset: bigint; data: bigint; fd: number }): number {
  if (arg.flags & ~VFIO_DEVICE_IOEVENTFD_SIZE_MASK) throw new SimError('UNKNOWN_FLAGS', `VFIO_DEVICE_IOEVENTFD flags 0x${(arg.flags >>> 0).toString(16)}`);
  const count = arg.flags & VFIO_DEVICE_IOEVENTFD_SIZE_MASK;
  if (![1, 2, 4, 8].includes(count) || arg.fd < -1) {
    throw new SimError('INVALID_ARGUMENT', `VFIO_DEVICE_IOEVENTFD: size flags 0x${count.toString(16)}, fd ${arg.fd}`);
  }
  return vfioPciIoeventfd(vdev, proc, arg.offset, arg.data, count as BarAccessSize, arg.fd);
}

/** vfio_pci_core_ioctl's table: each request's argument struct and minimum size, then its handler. */
const coreIoctls = ioctlTable<Call>('vfio-pci-core device')
  .raw('VFIO_DEVICE_GET_INFO', ({ vdev, proc }, call) => vfioPciIoctlGetInfo(vdev, proc.mm, call.argp))
  .raw('VFIO_DEVICE_GET_REGION_INFO', ({ vdev, proc }, call) => vfioPciIoctlGetRegionInfo(vdev, proc.mm, call.argp))
  .raw('VFIO_DEVICE_GET_IRQ_INFO', ({ vdev, proc }, call) => vfioPciIoctlGetIrqInfo(vdev, proc.mm, call.argp))
  .vfio('VFIO_DEVICE_SET_IRQS', vfio_irq_set, VFIO_IRQ_SET_MINSZ, ({ vdev, proc }, hdr, call) => setIrqs(vdev, proc, hdr, call.argp))
  .raw('VFIO_DEVICE_RESET', ({ vdev }) => vfioPciIoctlReset(vdev))
  .raw('VFIO_DEVICE_GET_PCI_HOT_RESET_INFO', ({ vdev, proc }, call) => vfioPciIoctlGetPciHotResetInfo(vdev, proc, call.argp))
  .raw('VFIO_DEVICE_PCI_HOT_RESET', ({ vdev, proc }, call) => vfioPciIoctlPciHotReset(vdev, proc, call.argp))
  .vfio('VFIO_DEVICE_IOEVENTFD', vfio_device_ioeventfd, offsetofEnd(vfio_device_ioeventfd, 'fd'), ({ vdev, proc }, arg) => ioeventfd(vdev, proc, arg));

/**
 * vfio_pci_core_ioctl: the ioctl hook first (the first tap returning a
 * result answers; taps fail by throwing a SimError), then vfio-pci-core's
 * own requests; ENOTTY for anything else. The device wakes from a
 * user-requested low-power state first.
 */
export function vfioPciCoreIoctl(vdev: VfioPciCoreDevice, proc: Process, request: number, argp: bigint): number {
  vfioPciRuntimeResume(vdev);
  const hook = vdev.hooks.ioctl.get(request >>> 0);
  if (hook?.isUsed()) {
    const answer = hook.call({ vdev, proc, request: request >>> 0, argp });
    if (answer !== undefined) return answer;
  }
  return coreIoctls.ioctl({ vdev, proc }, proc.mm, request, argp);
}
