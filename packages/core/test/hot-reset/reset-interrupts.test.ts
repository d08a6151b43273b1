import { describe, expect, it } from 'vitest';
import {
  EFD_NONBLOCK,
  PCI_CAP_ID_MSI,
  PCI_MSI_FLAGS,
  PCI_MSI_FLAGS_ENABLE,
  VFIO_DEVICE_SET_IRQS,
  VFIO_IRQ_SET_ACTION_TRIGGER,
  VFIO_IRQ_SET_DATA_EVENTFD,
  VFIO_PCI_MSI_IRQ_INDEX,
  findCapability,
  pciSignalMsi,
  vfio_irq_set,
} from '@vfiosim/core';
import { FN0, FN1, Vmm, makeHost, twoFunctionNic } from './harness.js';

/*
 * A hot reset does not tear the user's interrupts down: vfio-pci leaves
 * its interrupt setup alone around pci_reset_bus(), and the PCI core saves
 * each function's MSI programming before the reset and writes it back
 * after (pci_dev_save_and_disable / pci_dev_restore), so the eventfds keep
 * firing with nothing for the user to redo.
 */

function msiTrigger(vmm: Vmm, deviceFd: number, eventfd: number): number {
  const set = new Uint8Array(vfio_irq_set.size + 4);
  set.set(vfio_irq_set.encodeNew({ argsz: set.length, flags: VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, index: VFIO_PCI_MSI_IRQ_INDEX, start: 0, count: 1 }));
  new DataView(set.buffer).setInt32(vfio_irq_set.size, eventfd, true);
  return vmm.proc.ioctl(deviceFd, VFIO_DEVICE_SET_IRQS, vmm.write(4096, set));
}

function signals(vmm: Vmm, eventfd: number): number {
  const counter = new Uint8Array(8);
  const rc = vmm.proc.read(eventfd, counter);
  return rc === 8 ? counter[0]! : rc;
}

describe('interrupts across a hot reset', () => {
  it('keeps MSI delivering to the user\'s eventfd on both functions, as the PCI core restores MSI', () => {
    const t = makeHost(twoFunctionNic);
    const vmm = new Vmm(t.host);
    const { devices, groups } = vmm.openGroups(t, [FN0, FN1]);
    const efds = [FN0, FN1].map(() => vmm.ok(vmm.proc.eventfd(0, EFD_NONBLOCK), 'eventfd'));
    devices.forEach((fd, i) => vmm.ok(msiTrigger(vmm, fd, efds[i]!), 'SET_IRQS MSI'));
    const msiEnabled = (bdf: string) => {
      const fn = t.fn(bdf);
      return (fn.config.hwRead(findCapability(fn.config, PCI_CAP_ID_MSI) + PCI_MSI_FLAGS, 2) & PCI_MSI_FLAGS_ENABLE) !== 0;
    };
    expect([msiEnabled(FN0), msiEnabled(FN1)]).toEqual([true, true]);

    expect(vmm.hotReset(devices[0]!, groups)).toBe(0);

    expect([t.fn(FN0).lastReset, t.fn(FN1).lastReset]).toEqual(['bus', 'bus']);
    expect([msiEnabled(FN0), msiEnabled(FN1)]).toEqual([true, true]);
    for (const [i, bdf] of [FN0, FN1].entries()) {
      pciSignalMsi(t.fn(bdf), 0);
      expect(signals(vmm, efds[i]!)).toBe(1);
    }
  });

  it('keeps MSI delivering to the eventfd of a device whose hot reset was refused', () => {
    const t = makeHost(twoFunctionNic);
    const vmm = new Vmm(t.host);
    const { devices, groups } = vmm.openGroups(t, [FN0]);
    const efd = vmm.ok(vmm.proc.eventfd(0, EFD_NONBLOCK), 'eventfd');
    vmm.ok(msiTrigger(vmm, devices[0]!, efd), 'SET_IRQS MSI');
    const before = t.fn(FN0).resetCount;
    expect(vmm.hotReset(devices[0]!, groups)).toBe(-22);
    expect(t.fn(FN0).resetCount).toBe(before);
    pciSignalMsi(t.fn(FN0), 0);
    expect(signals(vmm, efd)).toBe(1);
  });
});
