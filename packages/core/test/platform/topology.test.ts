import { describe, expect, it } from 'vitest';
import {
  buildPlatform,
  findExtCapability,
  formatBdf,
  functionsBelow,
  hotResetScope,
  PCI_BRIDGE_CONTROL,
  PCI_BRIDGE_CTL_BUS_RESET,
  PCI_COMMAND,
  PCI_COMMAND_MEMORY,
  PCI_EXT_CAP_ID_SRIOV,
  PCI_MEMORY_BASE,
  PCI_MEMORY_LIMIT,
  PCI_PREF_BASE_UPPER32,
  PCI_PREF_LIMIT_UPPER32,
  PCI_PREF_MEMORY_BASE,
  PCI_PREF_MEMORY_LIMIT,
  PCI_PRIMARY_BUS,
  PCI_SECONDARY_BUS,
  PCI_SRIOV_CTRL,
  PCI_SRIOV_CTRL_MSE,
  PCI_SRIOV_CTRL_VFE,
  PCI_SRIOV_NUM_VF,
  PCI_SUBORDINATE_BUS,
  PCI_VENDOR_ID,
  secondaryBusReset,
  SimError,
  type HostDescription,
  type PciFunction,
} from '@vfiosim/core';
import { sriovPfTwoVfs, switchThreeEndpointsAcs } from '../fixtures/hosts.js';

const names = (fns: readonly PciFunction[]) => fns.map((f) => f.name);

/** The 32-bit memory window a bridge forwards, from its registers. */
function memWindow(bridge: PciFunction): [bigint, bigint] {
  const base = BigInt(bridge.config.read16(PCI_MEMORY_BASE) & 0xfff0) << 16n;
  const limit = (BigInt(bridge.config.read16(PCI_MEMORY_LIMIT) & 0xfff0) << 16n) | 0xfffffn;
  return [base, limit];
}

function prefWindow(bridge: PciFunction): [bigint, bigint] {
  const base = (BigInt(bridge.config.read32(PCI_PREF_BASE_UPPER32)) << 32n) | (BigInt(bridge.config.read16(PCI_PREF_MEMORY_BASE) & 0xfff0) << 16n);
  const limit =
    (BigInt(bridge.config.read32(PCI_PREF_LIMIT_UPPER32)) << 32n) | (BigInt(bridge.config.read16(PCI_PREF_MEMORY_LIMIT) & 0xfff0) << 16n) | 0xfffffn;
  return [base, limit];
}

describe('topology', () => {
  it('looks functions up by address and lists them in bdf order', () => {
    const p = buildPlatform(switchThreeEndpointsAcs);
    expect(names(p.functions())).toEqual([
      '0000:00:00.0',
      '0000:00:01.0',
      '0000:01:00.0',
      '0000:02:00.0',
      '0000:02:01.0',
      '0000:02:02.0',
      '0000:03:00.0',
      '0000:04:00.0',
      '0000:05:00.0',
    ]);
    expect(p.get('0000:04:00.0').label).toBe('NVMe SSD Controller PM1733');
    expect(p.topology.get({ domain: 0, bus: 4, device: 0, function: 0 }).name).toBe('0000:04:00.0');
    expect(p.find('0000:06:00.0')).toBeUndefined();
    try {
      p.get('0000:06:00.0');
      expect.unreachable();
    } catch (error) {
      expect((error as SimError).code).toBe('NO_SUCH_DEVICE');
      expect((error as SimError).errnoName).toBe('ENODEV');
    }
  });

  it('links buses, bridges and functions', () => {
    const p = buildPlatform(switchThreeEndpointsAcs);
    const up = p.get('0000:01:00.0');
    expect(up.bus.self!.name).toBe('0000:00:01.0');
    expect(up.subordinate!.number).toBe(2);
    expect(names(up.subordinate!.devices)).toEqual(['0000:02:00.0', '0000:02:01.0', '0000:02:02.0']);
    expect(up.pcieType).toBe('upstream-port');
    expect(p.topology.rootBuses().map((b) => b.name)).toEqual(['0000:00']);
    expect(p.topology.bus(0, 4)!.self!.name).toBe('0000:02:01.0');
  });

  it('programs bus numbers into every bridge', () => {
    const p = buildPlatform(switchThreeEndpointsAcs);
    const busNumbers = (bdf: string) => {
      const c = p.get(bdf).config;
      return [c.read8(PCI_PRIMARY_BUS), c.read8(PCI_SECONDARY_BUS), c.read8(PCI_SUBORDINATE_BUS)];
    };
    expect(busNumbers('0000:00:01.0')).toEqual([0, 1, 5]);
    expect(busNumbers('0000:01:00.0')).toEqual([1, 2, 5]);
    expect(busNumbers('0000:02:01.0')).toEqual([2, 4, 4]);
  });

  it('assigns every BAR an address inside the windows of the bridges above it', () => {
    const p = buildPlatform(switchThreeEndpointsAcs);
    for (const nvme of ['0000:03:00.0', '0000:04:00.0', '0000:05:00.0']) {
      const fn = p.get(nvme);
      const bar = fn.bars[0]!;
      expect(bar.address % bar.size).toBe(0n);
      for (let bridge = fn.bus.self; bridge; bridge = bridge.bus.self) {
        const [base, limit] = memWindow(bridge);
        expect(bar.address >= base && bar.address + bar.size - 1n <= limit, `${nvme} in ${bridge.name}`).toBe(true);
      }
    }
    const addresses = ['0000:03:00.0', '0000:04:00.0', '0000:05:00.0'].map((b) => p.get(b).bars[0]!.address);
    expect(new Set(addresses).size).toBe(3);
  });

  it('puts 64-bit prefetchable BARs in the prefetchable window above 4 GiB', () => {
    const p = buildPlatform(sriovPfTwoVfs);
    const pf = p.get('0000:3b:00.0');
    const [base, limit] = prefWindow(p.get('0000:00:02.0'));
    expect(pf.bars[0]!.address >= 1n << 32n).toBe(true);
    expect(pf.bars[0]!.address >= base && pf.bars[0]!.address + pf.bars[0]!.size - 1n <= limit).toBe(true);
  });
});

describe('secondary bus reset', () => {
  it('resets everything below the bridge and nothing above it', () => {
    const p = buildPlatform(switchThreeEndpointsAcs);
    const kinds = new Map<string, string>();
    for (const fn of p.functions()) fn.onReset((e) => kinds.set(e.fn.name, e.kind));
    for (const fn of p.functions()) if (!fn.isBridge) fn.config.write16(PCI_COMMAND, PCI_COMMAND_MEMORY);

    secondaryBusReset(p.get('0000:01:00.0'));

    expect([...kinds.keys()].sort()).toEqual(['0000:02:00.0', '0000:02:01.0', '0000:02:02.0', '0000:03:00.0', '0000:04:00.0', '0000:05:00.0']);
    expect(new Set(kinds.values())).toEqual(new Set(['bus']));
    expect(p.get('0000:03:00.0').config.read16(PCI_COMMAND)).toBe(0);
    expect(p.get('0000:00:00.0').resetCount).toBe(0);
    // A reset bridge loses its bus numbers until the OS restores them.
    expect(p.get('0000:02:00.0').config.read8(PCI_SECONDARY_BUS)).toBe(0);
    expect(p.get('0000:01:00.0').config.read8(PCI_SECONDARY_BUS)).toBe(2);
  });

  it('holds the functions below in reset while the bit is set', () => {
    const p = buildPlatform(switchThreeEndpointsAcs);
    const port = p.get('0000:02:00.0');
    const nvme = p.get('0000:03:00.0');
    nvme.config.write16(PCI_COMMAND, PCI_COMMAND_MEMORY);
    port.config.write16(PCI_BRIDGE_CONTROL, PCI_BRIDGE_CTL_BUS_RESET);
    expect(nvme.isHeldInReset).toBe(true);
    expect(nvme.config.read32(PCI_VENDOR_ID)).toBe(0xffffffff);
    nvme.config.write16(PCI_COMMAND, PCI_COMMAND_MEMORY);
    port.config.write16(PCI_BRIDGE_CONTROL, 0);
    expect(nvme.isHeldInReset).toBe(false);
    expect(nvme.config.read16(PCI_VENDOR_ID)).toBe(0x144d);
    // The write made during reset went nowhere.
    expect(nvme.config.read16(PCI_COMMAND)).toBe(0);
    expect(nvme.resetCount).toBe(1);
  });

  it('reports a hot-plug slot reset to the functions as slot', () => {
    const p = buildPlatform(switchThreeEndpointsAcs);
    const slot = p.get('0000:04:00.0').slot!;
    expect(slot.number).toBe(5);
    expect(names(slot.functions)).toEqual(['0000:04:00.0']);
    slot.reset();
    expect(p.get('0000:04:00.0').lastReset).toBe('slot');
    expect(p.get('0000:03:00.0').resetCount).toBe(0);
  });

  it('refuses a slot reset without hot-plug and a bus reset of a non-bridge', () => {
    const p = buildPlatform({
      bridges: [{ bdf: '0000:00:01.0', kind: 'root-port', secondaryBus: 1, slot: { number: 3, hotplug: false } }],
      devices: [{ bdf: '0000:01:00.0', vendorId: 0x1b36, deviceId: 0x0010 }],
    });
    const fn = p.get('0000:01:00.0');
    expect(() => fn.slot!.reset()).toThrow(/not hot-plug capable/);
    expect(() => secondaryBusReset(fn)).toThrow(/is not a bridge/);
  });
});

describe('SR-IOV', () => {
  it('creates the VFs enabled at boot at PF + offset + stride * n', () => {
    const p = buildPlatform(sriovPfTwoVfs);
    const pf = p.get('0000:3b:00.0');
    expect(names(pf.virtfns)).toEqual(['0000:3b:00.1', '0000:3b:00.2']);
    const vf = p.get('0000:3b:00.2');
    expect(vf.physfn).toBe(pf);
    expect(vf.virtfn!.index).toBe(1);
    expect([vf.vendorId, vf.deviceId]).toEqual([0x15b3, 0x1018]);
    // A VF's own Vendor and Device ID registers read 0xffff.
    expect(vf.config.read32(PCI_VENDOR_ID)).toBe(0xffffffff);
    expect(vf.isVirtfn).toBe(true);
  });

  it('places VF BARs in the PF VF BAR resource, one VF BAR size apart', () => {
    const pf = buildPlatform(sriovPfTwoVfs).get('0000:3b:00.0');
    const base = pf.iovBars[0]!.address;
    expect(pf.iovBars[0]!.size).toBe(8n << 20n);
    expect(pf.virtfns.map((vf) => vf.bars[0]!.address - base)).toEqual([0n, 1n << 20n]);
  });

  it('makes VFs appear when NumVFs and VF Enable are written, and vanish when VF Enable clears', () => {
    const p = buildPlatform(sriovPfTwoVfs);
    const pf = p.get('0000:3b:00.0');
    const added: string[] = [];
    const removed: string[] = [];
    p.topology.onFunctionAdded((fn) => added.push(fn.name));
    p.topology.onFunctionRemoved((fn) => removed.push(fn.name));
    const pos = findExtCapability(pf.config, PCI_EXT_CAP_ID_SRIOV);

    pf.config.write16(pos + PCI_SRIOV_CTRL, 0);
    expect(removed).toEqual(['0000:3b:00.2', '0000:3b:00.1']);
    expect(p.find('0000:3b:00.1')).toBeUndefined();

    pf.config.write16(pos + PCI_SRIOV_NUM_VF, 3);
    expect(pf.virtfns).toEqual([]);
    pf.config.write16(pos + PCI_SRIOV_CTRL, PCI_SRIOV_CTRL_VFE | PCI_SRIOV_CTRL_MSE);
    expect(added).toEqual(['0000:3b:00.1', '0000:3b:00.2', '0000:3b:00.3']);
    expect(names(p.functions()).filter((n) => n.startsWith('0000:3b'))).toEqual(['0000:3b:00.0', '0000:3b:00.1', '0000:3b:00.2', '0000:3b:00.3']);
  });

  it('gates VF BARs with VF MSE in the PF', () => {
    const p = buildPlatform(sriovPfTwoVfs);
    const pf = p.get('0000:3b:00.0');
    const vf = pf.virtfns[0];
    vf.writeBar(0, 0n, 4, 0x77n);
    expect(vf.readBar(0, 0n, 4)).toBe(0x77n);
    const pos = findExtCapability(pf.config, PCI_EXT_CAP_ID_SRIOV);
    pf.config.write16(pos + PCI_SRIOV_CTRL, PCI_SRIOV_CTRL_VFE);
    expect(vf.readBar(0, 0n, 4)).toBe(0xffffffffn);
  });

  it('loses its VFs when the PF is reset, since VF Enable powers on clear', () => {
    const p = buildPlatform(sriovPfTwoVfs);
    const pf = p.get('0000:3b:00.0');
    const [vf0] = pf.virtfns;
    pf.flr();
    expect(pf.virtfns).toEqual([]);
    expect(vf0.present).toBe(false);
    expect(vf0.config.read32(PCI_VENDOR_ID)).toBe(0xffffffff);
  });

  it('enables and disables through the sriov_enable sequence, within TotalVFs', () => {
    const p = buildPlatform(sriovPfTwoVfs);
    const pf = p.get('0000:3b:00.0');
    expect(() => p.topology.enableSriov(pf, 1)).toThrow(/already has 2 VFs/);
    p.topology.disableSriov(pf);
    expect(() => p.topology.enableSriov(pf, 9)).toThrow(/TotalVFs is 8/);
    expect(names(p.topology.enableSriov(pf, 8))).toHaveLength(8);
    expect(() => p.topology.enableSriov(p.get('0000:00:02.0'), 1)).toThrow(/not an SR-IOV physical function/);
  });

  it('numbers VFs with the stride and offset the PF advertises', () => {
    const description: HostDescription = {
      bridges: [{ bdf: '0000:00:03.0', kind: 'root-port', secondaryBus: 0x40 }],
      devices: [{ bdf: '0000:40:00.0', vendorId: 0x8086, deviceId: 0x10fb, extendedCapabilities: { sriov: { totalVfs: 3, numVfs: 3, vfOffset: 0x10, vfStride: 2 } } }],
    };
    const pf = buildPlatform(description).get('0000:40:00.0');
    expect(names(pf.virtfns)).toEqual(['0000:40:02.0', '0000:40:02.2', '0000:40:02.4']);
  });

  it('puts VFs whose routing IDs pass the bus end on a virtual bus with no bridge', () => {
    const description: HostDescription = {
      bridges: [{ bdf: '0000:00:03.0', kind: 'root-port', secondaryBus: 0x20 }],
      devices: [{ bdf: '0000:20:00.0', vendorId: 0x8086, deviceId: 0x1572, extendedCapabilities: { sriov: { totalVfs: 4, numVfs: 4, vfOffset: 0xf0, vfStride: 8 } } }],
    };
    const p = buildPlatform(description);
    const pf = p.get('0000:20:00.0');
    expect(names(pf.virtfns)).toEqual(['0000:20:1e.0', '0000:20:1f.0', '0000:21:00.0', '0000:21:01.0']);
    const far = p.get('0000:21:00.0');
    expect(far.bus.isVirtual).toBe(true);
    expect(far.bus.parent).toBe(pf.bus);
    // The root port's range covers the VF bus.
    expect(p.get('0000:00:03.0').config.read8(PCI_SUBORDINATE_BUS)).toBe(0x21);
    // No bridge leads to a virtual bus, so no bus reset can reach it from there.
    expect(hotResetScope(far)).toBeNull();
    expect(functionsBelow(p.get('0000:00:03.0')).map((f) => formatBdf(f.bdf))).toContain('0000:21:01.0');
  });
});
