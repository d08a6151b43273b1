import {
  VFIO_PCI_DEVID_NOT_OWNED,
  VFIO_PCI_DEVID_OWNED,
  VFIO_PCI_HOT_RESET_FLAG_DEV_ID,
  VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED,
  formatBdf,
  makeBdf,
  vfio_pci_dependent_device,
  vfio_pci_hot_reset,
  vfio_pci_hot_reset_info,
  type ResetEvent,
} from '@vfiosim/core';
import { check, type DemoContext } from './context.js';
import { NIC0, NIC1 } from './host.js';
import { openCdev } from './open-device.js';

const ROOM = 8;

function devidText(devid: number): string {
  if (devid === VFIO_PCI_DEVID_OWNED) return 'VFIO_PCI_DEVID_OWNED';
  if (devid === (VFIO_PCI_DEVID_NOT_OWNED >>> 0)) return 'VFIO_PCI_DEVID_NOT_OWNED';
  return String(devid);
}

/**
 * A hot reset of the dual-port NIC: both ports sit on bus 0a, so resetting
 * one resets both. The VMM asks who would be affected, then proves it owns
 * all of them with a zero-length array: every affected device is bound to
 * this iommufd or is in an IOMMU group one of its devices holds.
 */
export function hotReset(ctx: DemoContext): void {
  const { vmm, trace, host } = ctx;
  ctx.step = 'hot-reset';
  trace.section(`7. Hot reset of the NIC: ${NIC0} and ${NIC1} share bus 0a`);

  const nic = openCdev(ctx, NIC0);
  trace.note(`${NIC1} is not opened: it is in the same IOMMU group, which this iommufd now owns`);

  const info = vmm.ioctl(nic.fd, 'VFIO_DEVICE_GET_PCI_HOT_RESET_INFO', vfio_pci_hot_reset_info, {}, { room: ROOM * vfio_pci_dependent_device.size });
  const flags = VFIO_PCI_HOT_RESET_FLAG_DEV_ID | VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED;
  const affected: string[] = [];
  for (let i = 0; i < Math.min(info.out.count, ROOM); i++) {
    const dep = vfio_pci_dependent_device.decode(info.tail, i * vfio_pci_dependent_device.size);
    const bdf = formatBdf(makeBdf(dep.segment, dep.bus, dep.devfn >> 3, dep.devfn & 7));
    affected.push(bdf);
    trace.note(`affected: ${bdf} devid=${devidText(dep.devid)}`);
  }
  check(ctx, info.rc === 0 && (info.out.flags & flags) === flags, 'GET_PCI_HOT_RESET_INFO reports devids, all owned');
  check(ctx, affected.includes(NIC0) && affected.includes(NIC1), 'both NIC ports are affected');

  const events: ResetEvent[] = [];
  const stop = [NIC0, NIC1].map((bdf) => host.platform.get(bdf).onReset((event) => events.push(event)));
  const rc = vmm.ioctl(nic.fd, 'VFIO_DEVICE_PCI_HOT_RESET', vfio_pci_hot_reset, { flags: 0, count: 0 });
  stop.forEach((unsubscribe) => unsubscribe());
  trace.note('count=0: the iommufd proof, no group fds');
  for (const event of events) trace.note(`reset: ${event.fn.name} (${event.kind})`);
  check(ctx, rc.rc === 0, 'VFIO_DEVICE_PCI_HOT_RESET with the zero-length proof succeeds');
  check(ctx, events.some((e) => e.fn.name === NIC0) && events.some((e) => e.fn.name === NIC1), 'both NIC ports were reset');
}
