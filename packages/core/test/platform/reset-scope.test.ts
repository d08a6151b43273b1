import { describe, expect, it } from 'vitest';
import {
  buildPlatform,
  busResetRoute,
  hotResetScope,
  PCI_RESET_METHODS,
  pciResetBus,
  pciResetFunction,
  performResetMethod,
  probeResetMethod,
  resetMethods,
  resetMethodScope,
  SimError,
  type HostDescription,
  type PciFunction,
} from '@vfiosim/core';
import { hotplugSlotNvme, pcieToPciBridge, richEndpoint, sriovPfTwoVfs, switchThreeEndpointsAcs, twoFunctionNicNoAcs } from '../fixtures/hosts.js';

const names = (fns: readonly PciFunction[] | null | undefined) => fns?.map((f) => f.name);

const aloneOnRootPort: HostDescription = {
  bridges: [{ bdf: '0000:00:01.0', kind: 'root-port', secondaryBus: 0x01 }],
  devices: [{ bdf: '0000:01:00.0', vendorId: 0x10de, deviceId: 0x1db6, classCode: 0x030200 }],
};

describe('reset methods', () => {
  it('lists the methods in the kernel order', () => {
    expect(PCI_RESET_METHODS).toEqual(['device_specific', 'acpi', 'flr', 'af_flr', 'pm', 'bus']);
    const everything = buildPlatform({
      ...richEndpoint,
      devices: [{ ...richEndpoint.devices![0], resets: { acpi: true, deviceSpecific: true } }],
    }).get('0000:17:00.0');
    expect(resetMethods(everything)).toEqual(['device_specific', 'acpi', 'flr', 'af_flr', 'pm', 'bus']);
  });

  it('offers a bus reset to a device alone on a root port bus, through the root port', () => {
    const p = buildPlatform(aloneOnRootPort);
    const gpu = p.get('0000:01:00.0');
    expect(resetMethods(gpu)).toEqual(['flr', 'bus']);
    const route = busResetRoute(gpu)!;
    expect(route.kind).toBe('bus');
    expect(route.kind === 'bus' && route.bridge.name).toBe('0000:00:01.0');
    expect(names(resetMethodScope(gpu, 'bus'))).toEqual(['0000:01:00.0']);
    expect(names(resetMethodScope(gpu, 'flr'))).toEqual(['0000:01:00.0']);
    expect(resetMethodScope(gpu, 'pm')).toBeNull();
  });

  it('offers no bus reset to a function that shares its bus', () => {
    const nic = buildPlatform(twoFunctionNicNoAcs).get('0000:0a:00.0');
    expect(probeResetMethod(nic, 'bus')).toBe(false);
    expect(resetMethods(nic)).toEqual(['flr']);
  });

  it('offers no bus reset on a root bus or to a bridge', () => {
    const p = buildPlatform(switchThreeEndpointsAcs);
    expect(probeResetMethod(p.get('0000:00:00.0'), 'bus')).toBe(false);
    expect(probeResetMethod(p.get('0000:02:00.0'), 'bus')).toBe(false);
  });

  it('uses the hot-plug slot for a single-function device in one', () => {
    const nvme = buildPlatform(hotplugSlotNvme).get('0000:5e:00.0');
    const route = busResetRoute(nvme)!;
    expect(route.kind).toBe('slot');
    expect(route.kind === 'slot' && route.slot.number).toBe(7);
    performResetMethod(nvme, 'bus');
    expect(nvme.lastReset).toBe('slot');
  });

  it('offers the PM method to conventional functions whose NoSoftReset is clear', () => {
    const card = buildPlatform(pcieToPciBridge).get('0000:06:00.0');
    expect(resetMethods(card)).toEqual(['pm']);
  });

  it('loses the bus method of a PF once its VFs share the bus', () => {
    const p = buildPlatform(sriovPfTwoVfs);
    const pf = p.get('0000:3b:00.0');
    expect(resetMethods(pf)).toEqual(['flr']);
    p.topology.disableSriov(pf);
    expect(resetMethods(pf)).toEqual(['flr', 'bus']);
  });

  it('resets with the first available method, as pci_reset_function', () => {
    const p = buildPlatform(aloneOnRootPort);
    const gpu = p.get('0000:01:00.0');
    expect(pciResetFunction(gpu)).toBe('flr');
    expect(gpu.lastReset).toBe('flr');
    const port = p.get('0000:00:01.0');
    try {
      pciResetFunction(port);
      expect.unreachable();
    } catch (error) {
      expect((error as SimError).code).toBe('NO_DEVICE');
    }
    expect(() => performResetMethod(port, 'flr')).toThrow(/cannot reset by flr/);
  });
});

describe('hot reset scope', () => {
  it('resets the bus of a device alone below a root port', () => {
    const scope = hotResetScope(buildPlatform(aloneOnRootPort).get('0000:01:00.0'))!;
    expect(scope.kind).toBe('bus');
    expect(scope.bus.name).toBe('0000:01');
    expect(names(scope.functions)).toEqual(['0000:01:00.0']);
  });

  it('covers both functions of a device sharing the bus', () => {
    const p = buildPlatform(twoFunctionNicNoAcs);
    for (const bdf of ['0000:0a:00.0', '0000:0a:00.1']) {
      const scope = hotResetScope(p.get(bdf))!;
      expect(scope.kind).toBe('bus');
      expect(names(scope.functions)).toEqual(['0000:0a:00.0', '0000:0a:00.1']);
    }
  });

  it('resets the slot when the device is in a hot-plug slot', () => {
    const p = buildPlatform(hotplugSlotNvme);
    const nvme = p.get('0000:5e:00.0');
    const scope = hotResetScope(nvme)!;
    expect(scope.kind).toBe('slot');
    expect(scope.slot!.number).toBe(7);
    expect(names(scope.functions)).toEqual(['0000:5e:00.0']);
    pciResetBus(nvme);
    expect(nvme.lastReset).toBe('slot');
    expect(p.get('0000:00:03.0').resetCount).toBe(0);
  });

  it('takes a slot for a multifunction device even though neither function can use it alone', () => {
    const p = buildPlatform({
      bridges: [{ bdf: '0000:00:03.0', kind: 'root-port', secondaryBus: 0x5e, slot: { number: 2 } }],
      devices: [
        { bdf: '0000:5e:00.0', vendorId: 0x10de, deviceId: 0x1e87, classCode: 0x030000 },
        { bdf: '0000:5e:00.1', vendorId: 0x10de, deviceId: 0x10f8, classCode: 0x040300 },
      ],
    });
    const gpu = p.get('0000:5e:00.0');
    expect(probeResetMethod(gpu, 'bus')).toBe(false);
    const scope = hotResetScope(gpu)!;
    expect(scope.kind).toBe('slot');
    expect(names(scope.functions)).toEqual(['0000:5e:00.0', '0000:5e:00.1']);
  });

  it('falls back to the bus when the slot is not hot-plug capable', () => {
    const p = buildPlatform({
      bridges: [{ bdf: '0000:00:03.0', kind: 'root-port', secondaryBus: 0x5e, slot: { number: 2, hotplug: false } }],
      devices: [{ bdf: '0000:5e:00.0', vendorId: 0x8086, deviceId: 0x0a54 }],
    });
    const scope = hotResetScope(p.get('0000:5e:00.0'))!;
    expect(scope.kind).toBe('bus');
    expect(busResetRoute(p.get('0000:5e:00.0'))!.kind).toBe('bus');
  });

  it('walks the whole hierarchy below a switch upstream port, bridges before what they lead to', () => {
    const scope = hotResetScope(buildPlatform(switchThreeEndpointsAcs).get('0000:01:00.0'))!;
    expect(scope.kind).toBe('bus');
    expect(names(scope.functions)).toEqual([
      '0000:01:00.0',
      '0000:02:00.0',
      '0000:03:00.0',
      '0000:02:01.0',
      '0000:04:00.0',
      '0000:02:02.0',
      '0000:05:00.0',
    ]);
  });

  it('is impossible on a root bus: vfio answers ENODEV', () => {
    const p = buildPlatform(twoFunctionNicNoAcs);
    expect(hotResetScope(p.get('0000:00:00.0'))).toBeNull();
    expect(() => pciResetBus(p.get('0000:00:1c.0'))).toThrow(SimError);
  });

  it('resets every function the scope names', () => {
    const p = buildPlatform(twoFunctionNicNoAcs);
    const scope = pciResetBus(p.get('0000:0a:00.1'));
    expect(scope.functions.map((f) => [f.name, f.resetCount, f.lastReset])).toEqual([
      ['0000:0a:00.0', 1, 'bus'],
      ['0000:0a:00.1', 1, 'bus'],
    ]);
    expect(p.get('0000:00:1c.0').resetCount).toBe(0);
  });
});
