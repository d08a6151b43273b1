import { describe, expect, it } from 'vitest';
import {
  EFD_NONBLOCK,
  PCI_COMMAND,
  PCI_COMMAND_MASTER,
  PCI_COMMAND_MEMORY,
  VFIO_IRQ_SET_ACTION_TRIGGER,
  VFIO_IRQ_SET_DATA_EVENTFD,
  VFIO_PCI_BAR0_REGION_INDEX,
  VFIO_PCI_CONFIG_REGION_INDEX,
  VFIO_PCI_MSIX_IRQ_INDEX,
  VFIO_DEVICE_FEATURE,
  VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP,
  VFIO_DEVICE_FEATURE_SET,
  VFIO_DEVICE_SET_IRQS,
  SimError,
  pciSignalMsi,
  vfio_device_feature,
  vfio_device_low_power_entry_with_wakeup,
  vfioPciIndexToOffset,
  vfio_irq_set,
  type ResetContext,
} from '@vfiosim/core';
import { FN0, FN1, Vmm, makeHost, twoFunctionNic, twoFunctionNicSharedGroup, type TestHost } from './harness.js';

const CONFIG = vfioPciIndexToOffset(VFIO_PCI_CONFIG_REGION_INDEX);
const BAR0 = vfioPciIndexToOffset(VFIO_PCI_BAR0_REGION_INDEX);

function le(value: number, size: number): Uint8Array {
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i++) bytes[i] = (value >>> (i * 8)) & 0xff;
  return bytes;
}

function readLe(vmm: Vmm, fd: number, offset: bigint, size: number): number {
  const buf = new Uint8Array(size);
  vmm.ok(vmm.proc.pread(fd, buf, offset), 'pread');
  return buf.reduceRight((acc, byte) => acc * 256 + byte, 0);
}

/** Both functions opened by one VMM through their groups, Memory Space and Bus Master on, a word in BAR 0. */
function running(t: TestHost) {
  const vmm = new Vmm(t.host);
  const open = vmm.openGroups(t, [FN0, FN1]);
  for (const fd of open.devices) {
    const cmd = readLe(vmm, fd, CONFIG + BigInt(PCI_COMMAND), 2);
    vmm.ok(vmm.proc.pwrite(fd, le(cmd | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, 2), CONFIG + BigInt(PCI_COMMAND)), 'enable decode');
    vmm.ok(vmm.proc.pwrite(fd, le(0xcafef00d, 4), BAR0 + 0x10n), 'BAR write');
  }
  return { vmm, ...open };
}

describe('what a hot reset does to the functions it reaches', () => {
  it('loses device-internal state and keeps the configuration the user programmed', () => {
    const t = makeHost(twoFunctionNic);
    const { vmm, devices, groups } = running(t);
    expect(readLe(vmm, devices[1]!, BAR0 + 0x10n, 4)).toBe(0xcafef00d);
    expect(vmm.hotReset(devices[0]!, groups)).toBe(0);
    for (const [i, bdf] of [FN0, FN1].entries()) {
      // The PCI core saved and restored the header around the reset: decode is back on.
      expect(t.fn(bdf).config.hwRead(PCI_COMMAND, 2) & (PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER)).toBe(PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
      expect(readLe(vmm, devices[i]!, CONFIG + BigInt(PCI_COMMAND), 2) & PCI_COMMAND_MEMORY).toBe(PCI_COMMAND_MEMORY);
      // What the device held in its BAR is gone.
      expect(readLe(vmm, devices[i]!, BAR0 + 0x10n, 4)).toBe(0);
    }
  });

  it('keeps MSI-X interrupts working: the vectors are reprogrammed after the reset', () => {
    const t = makeHost(twoFunctionNic);
    const { vmm, devices, groups } = running(t);
    const efd = vmm.ok(vmm.proc.eventfd(0, EFD_NONBLOCK), 'eventfd');
    const set = new Uint8Array(vfio_irq_set.size + 4);
    set.set(vfio_irq_set.encodeNew({ argsz: set.length, flags: VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, index: VFIO_PCI_MSIX_IRQ_INDEX, start: 0, count: 1 }));
    set.set(le(efd, 4), vfio_irq_set.size);
    vmm.ok(vmm.proc.ioctl(devices[0]!, VFIO_DEVICE_SET_IRQS, vmm.write(4096, set)), 'SET_IRQS');

    expect(vmm.hotReset(devices[0]!, groups)).toBe(0);
    pciSignalMsi(t.fn(FN0), 0);
    const counter = new Uint8Array(8);
    expect(vmm.proc.read(efd, counter)).toBe(8);
    expect(counter[0]).toBe(1);
  });

  it('empties the ATC of every function it resets', () => {
    const t = makeHost(twoFunctionNic);
    const { vmm, devices, groups } = running(t);
    const atcs = [FN0, FN1].map((bdf) => {
      const fn = t.fn(bdf);
      const atc = t.host.iommu.iommuFor(fn)!.deviceTlb(fn)!;
      atc.insert(null, 0x10000n, 0x200000n, 4096n, 3);
      return atc;
    });
    expect(atcs.map((atc) => atc.size)).toEqual([1, 1]);
    expect(vmm.hotReset(devices[0]!, groups)).toBe(0);
    expect(atcs.map((atc) => atc.size)).toEqual([0, 0]);
  });

  it('revokes BAR mappings while the reset runs and lets them fault back in afterwards', () => {
    const t = makeHost(twoFunctionNic);
    const { vmm, devices, groups } = running(t);
    const va = vmm.proc.mmap(0x1000, { fd: devices[1]!, offset: BAR0 });
    expect(va).toBeGreaterThan(0n);
    const during: Array<Uint8Array | number> = [];
    t.vdev(FN0).hooks.reset.tap({ name: 'test' }, () => {
      during.push(vmm.proc.mem.read(va + 0x10n, 4));
    });
    expect(vmm.hotReset(devices[0]!, groups)).toBe(0);
    expect(during).toEqual([-14]);
    expect(vmm.proc.mem.read(va + 0x10n, 4)).toEqual(new Uint8Array(4));
  });

  it('runs beforeReset, reset and afterReset for every vfio-pci device of the set, opened or not', () => {
    const t = makeHost(twoFunctionNicSharedGroup);
    const vmm = new Vmm(t.host);
    const a = vmm.openCdev(t, FN0, vmm.openIommufd());
    const seen: string[] = [];
    for (const bdf of [FN0, FN1]) {
      const hooks = t.vdev(bdf).hooks;
      const log = (step: string) => (ctx: ResetContext) => seen.push(`${step} ${ctx.vdev.name} ${ctx.cause} ${ctx.method}`);
      hooks.beforeReset.tap({ name: 'test' }, log('before'));
      hooks.reset.tap({ name: 'test' }, log('reset'));
      hooks.afterReset.tap({ name: 'test' }, log('after'));
    }
    expect(vmm.hotReset(a.fd)).toBe(0);
    expect(seen).toEqual([
      `before ${FN0} hot-reset null`,
      `before ${FN1} hot-reset null`,
      `reset ${FN0} hot-reset bus`,
      `reset ${FN1} hot-reset bus`,
      `after ${FN1} hot-reset bus`,
      `after ${FN0} hot-reset bus`,
    ]);
  });

  it('runs no hook at all when the ownership check fails', () => {
    const t = makeHost(twoFunctionNic);
    const vmm = new Vmm(t.host);
    const a = vmm.openCdev(t, FN0, vmm.openIommufd());
    const seen: string[] = [];
    t.vdev(FN0).hooks.beforeReset.tap({ name: 'test' }, () => seen.push('before'));
    expect(vmm.hotReset(a.fd)).toBe(-22);
    expect(seen).toEqual([]);
    expect(t.vdev(FN0).resetting).toBe(false);
  });

  it('brings a function the user put in D3hot back to D0', () => {
    const t = makeHost(twoFunctionNic);
    const { vmm, devices, groups } = running(t);
    const pm = t.fn(FN1).pmCap;
    vmm.ok(vmm.proc.pwrite(devices[1]!, le(3, 2), CONFIG + BigInt(pm + 4)), 'PMCSR D3hot');
    expect(t.fn(FN1).powerState).toBe('D3hot');
    expect(vmm.hotReset(devices[0]!, groups)).toBe(0);
    expect(t.fn(FN1).powerState).toBe('D0');
  });

  it('wakes a device waiting in low power even when the hot reset is then refused', () => {
    const t = makeHost(twoFunctionNic);
    const a = new Vmm(t.host);
    const b = new Vmm(t.host);
    const devA = a.openCdev(t, FN0, a.openIommufd());
    const devB = b.openCdev(t, FN1, b.openIommufd());
    const wake = b.ok(b.proc.eventfd(0, EFD_NONBLOCK), 'eventfd');
    const feature = new Uint8Array(vfio_device_feature.size + vfio_device_low_power_entry_with_wakeup.size);
    feature.set(vfio_device_feature.encodeNew({ argsz: feature.length, flags: VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP }));
    feature.set(vfio_device_low_power_entry_with_wakeup.encodeNew({ wakeup_eventfd: wake }), vfio_device_feature.size);
    b.ok(b.proc.ioctl(devB.fd, VFIO_DEVICE_FEATURE, b.write(0, feature)), 'LOW_POWER_ENTRY_WITH_WAKEUP');
    expect(t.vdev(FN1).pmRuntimeEngaged).toBe(true);

    const before = t.fn(FN1).resetCount;
    expect(a.hotReset(devA.fd)).toBe(-22);
    expect(t.fn(FN1).resetCount).toBe(before);
    expect(t.vdev(FN1).pmRuntimeEngaged).toBe(false);
    const counter = new Uint8Array(8);
    expect(b.proc.read(wake, counter)).toBe(8);
    expect(counter[0]).toBe(1);
  });

  it('answers with the errno of a variant driver\'s reset hook that fails, and gives the mappings back', () => {
    const t = makeHost(twoFunctionNic);
    const { vmm, devices, groups } = running(t);
    t.vdev(FN1).hooks.reset.tap({ name: 'variant' }, () => {
      throw new SimError('IO_ERROR', 'device did not come back');
    });
    expect(vmm.hotReset(devices[0]!, groups)).toBe(-5);
    expect([t.vdev(FN0).resetting, t.vdev(FN1).resetting]).toEqual([false, false]);
  });
});
