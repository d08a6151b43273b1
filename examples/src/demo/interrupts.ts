import {
  VFIO_IRQ_INFO_EVENTFD,
  VFIO_IRQ_SET_ACTION_TRIGGER,
  VFIO_IRQ_SET_DATA_EVENTFD,
  VFIO_PCI_MSIX_IRQ_INDEX,
  pciSignalMsi,
  s32,
  vfio_irq_info,
  vfio_irq_set,
} from '@vfiosim/core';
import { check, nvmeOf, type DemoContext } from './context.js';

/** VFIO_DEVICE_SET_IRQS with DATA_EVENTFD: `fds` for vectors start.. (-1 tears a vector down). */
export function setMsixEventfds(ctx: DemoContext, fd: number, start: number, fds: readonly number[]): number {
  const data = new Uint8Array(fds.length * 4);
  fds.forEach((efd, i) => s32.write(data, i * 4, efd));
  return ctx.vmm.ioctl(fd, 'VFIO_DEVICE_SET_IRQS', vfio_irq_set, {
    flags: VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
    index: VFIO_PCI_MSIX_IRQ_INDEX,
    start,
    count: fds.length,
  }, { trailing: data, tailText: `data=[${fds.join(', ')}]` }).rc;
}

/**
 * MSI-X the way a VMM wires it: ask how many vectors there are, give
 * vector 0 an eventfd, then let the device raise it and read the eventfd
 * as the VMM's event loop would (or KVM's irqfd, in a real VMM).
 */
export function wireInterrupts(ctx: DemoContext): void {
  const { vmm, trace } = ctx;
  const dev = nvmeOf(ctx);
  ctx.step = 'interrupts';
  trace.section('3. MSI-X: an eventfd per vector, an interrupt from the device');

  const irq = vmm.ioctl(dev.fd, 'VFIO_DEVICE_GET_IRQ_INFO', vfio_irq_info, { index: VFIO_PCI_MSIX_IRQ_INDEX });
  check(ctx, irq.rc === 0 && (irq.out.flags & VFIO_IRQ_INFO_EVENTFD) !== 0 && irq.out.count === 32, 'MSI-X reports 32 vectors that signal eventfds');

  ctx.msixEventfd = vmm.eventfd();
  const rc = setMsixEventfds(ctx, dev.fd, 0, [ctx.msixEventfd]);
  trace.note('vfio-pci enabled MSI-X on the function, programmed host messages, and hooked vector 0 to the eventfd');
  check(ctx, rc === 0, 'VFIO_DEVICE_SET_IRQS wires MSI-X vector 0 to an eventfd');

  trace.note(`device model: ${dev.bdf} raises MSI-X vector 0`);
  pciSignalMsi(dev.fn, 0);
  const count = vmm.readEventfd(ctx.msixEventfd);
  check(ctx, count === 1n, 'the interrupt arrives on the eventfd');
}
