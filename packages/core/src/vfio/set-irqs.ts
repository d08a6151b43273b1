import { SimError } from '../errors/index.js';
import {
  VFIO_IRQ_SET_ACTION_TYPE_MASK,
  VFIO_IRQ_SET_DATA_BOOL,
  VFIO_IRQ_SET_DATA_EVENTFD,
  VFIO_IRQ_SET_DATA_NONE,
  VFIO_IRQ_SET_DATA_TYPE_MASK,
  offsetofEnd,
  vfio_irq_set,
} from '../uapi/index.js';

const U32_MAX = 0xffffffff;
/** offsetofend(struct vfio_irq_set, count): the header every SET_IRQS carries before its data. */
export const VFIO_IRQ_SET_MINSZ = offsetofEnd(vfio_irq_set, 'count');

/** The header of VFIO_DEVICE_SET_IRQS as read from the user. */
export interface IrqSetHeader {
  readonly argsz: number;
  readonly flags: number;
  readonly index: number;
  readonly start: number;
  readonly count: number;
}

/**
 * vfio_set_irqs_validate_and_prepare, the vfio core's checks for any bus
 * driver's SET_IRQS, in the kernel's order: argsz, index below
 * `maxIrqType`, count not wrapping past start, no unknown flag bits; then
 * start and count inside the index's `numIrqs`; exactly one DATA_* type;
 * argsz large enough for count elements of that type. All EINVAL.
 * Returns the size of the data that follows the header.
 */
export function vfioSetIrqsValidateAndPrepare(hdr: IrqSetHeader, numIrqs: number, maxIrqType: number): number {
  const known = VFIO_IRQ_SET_DATA_TYPE_MASK | VFIO_IRQ_SET_ACTION_TYPE_MASK;
  if (hdr.argsz < VFIO_IRQ_SET_MINSZ || hdr.index >= maxIrqType || hdr.count >= U32_MAX - hdr.start || (hdr.flags & ~known) !== 0) {
    throw new SimError('INVALID_ARGUMENT', `VFIO_DEVICE_SET_IRQS: argsz ${hdr.argsz}, index ${hdr.index}, start ${hdr.start}, count ${hdr.count}, flags 0x${(hdr.flags >>> 0).toString(16)}`);
  }
  if (hdr.start >= numIrqs || hdr.start + hdr.count > numIrqs) {
    throw new SimError('INVALID_ARGUMENT', `VFIO_DEVICE_SET_IRQS: vectors ${hdr.start}+${hdr.count} are outside the ${numIrqs} of index ${hdr.index}`);
  }
  let size: number;
  switch (hdr.flags & VFIO_IRQ_SET_DATA_TYPE_MASK) {
    case VFIO_IRQ_SET_DATA_NONE:
      size = 0;
      break;
    case VFIO_IRQ_SET_DATA_BOOL:
      size = 1;
      break;
    case VFIO_IRQ_SET_DATA_EVENTFD:
      size = 4;
      break;
    default:
      throw new SimError('INVALID_ARGUMENT', `VFIO_DEVICE_SET_IRQS: flags 0x${(hdr.flags >>> 0).toString(16)} name no single data type`);
  }
  if (size && hdr.argsz - VFIO_IRQ_SET_MINSZ < hdr.count * size) {
    throw new SimError('INVALID_ARGUMENT', `VFIO_DEVICE_SET_IRQS: argsz ${hdr.argsz} holds fewer than ${hdr.count} data elements`);
  }
  return hdr.count * size;
}
