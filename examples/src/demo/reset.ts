import { PCI_COMMAND, PCI_COMMAND_MASTER, PCI_COMMAND_MEMORY, VFIO_PCI_BAR0_REGION_INDEX, pciSignalMsi } from '@vfiosim/core';
import { hex } from '../vmm/format.js';
import { check, nvmeOf, type DemoContext } from './context.js';
import { SCRATCH_REGISTER, barRead, configRead } from './open-device.js';

/**
 * VFIO_DEVICE_RESET: the function is reset (an FLR here), its device state
 * is gone, and vfio-pci-core restores the config state it saved, so the
 * VMM's Command register and MSI-X wiring survive.
 */
export function deviceReset(ctx: DemoContext): void {
  const { vmm, trace } = ctx;
  const dev = nvmeOf(ctx);
  ctx.step = 'reset';
  trace.section(`6. VFIO_DEVICE_RESET of ${dev.bdf}`);

  const before = barRead(vmm, dev, VFIO_PCI_BAR0_REGION_INDEX, SCRATCH_REGISTER, 4);
  trace.note(`device memory at BAR0+${hex(SCRATCH_REGISTER)} holds ${typeof before === 'bigint' ? hex(before) : before}`);
  const resets = dev.fn.resetCount;
  const rc = vmm.ioctlValue(dev.fd, 'VFIO_DEVICE_RESET');
  trace.note(`the function was reset by ${dev.fn.lastReset ?? 'nothing'}`);
  check(ctx, rc === 0 && dev.fn.resetCount === resets + 1, 'VFIO_DEVICE_RESET resets the function once');

  const after = barRead(vmm, dev, VFIO_PCI_BAR0_REGION_INDEX, SCRATCH_REGISTER, 4);
  check(ctx, after === 0n, 'device memory is cleared by the reset');
  const command = configRead(vmm, dev, PCI_COMMAND, 2);
  trace.note(`Command ${hex(command)}: restored from the state vfio-pci-core saved before the reset`);
  check(ctx, (command & (PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER)) === (PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER), 'Memory Space and Bus Master survive the reset');

  trace.note('device model: raises MSI-X vector 0 again');
  pciSignalMsi(dev.fn, 0);
  check(ctx, vmm.readEventfd(ctx.msixEventfd) === 1n, 'MSI-X still reaches the eventfd after the reset');
}
