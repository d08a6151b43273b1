import { describe, expect, it } from 'vitest';
import {
  buildPlatform,
  capabilities,
  extCapabilities,
  findCapability,
  hostDescriptionSchema,
  lspciTree,
  PCI_CAP_ID_EXP,
  PCI_CAP_ID_MSI,
  PCI_CAP_ID_MSIX,
  PCI_CAP_ID_PM,
  PCI_CLASS_REVISION,
  PCI_EXT_CAP_ID_ERR,
  PCI_MSIX_PBA,
  PCI_MSIX_TABLE,
  PCI_PM_CTRL,
  PCI_PM_CTRL_NO_SOFT_RESET,
  SimError,
  type HostDescription,
} from '@vfiosim/core';
import { hotplugSlotNvme, pcieToPciBridge, richEndpoint, sriovPfTwoVfs, switchThreeEndpointsAcs, twoFunctionNicNoAcs } from '../fixtures/hosts.js';

/** The INVALID_HOST_DESCRIPTION lines buildPlatform() reports, without the errno prefix. */
function problems(description: unknown): string[] {
  try {
    buildPlatform(description);
  } catch (error) {
    expect(error).toBeInstanceOf(SimError);
    const sim = error as SimError;
    expect(sim.code).toBe('INVALID_HOST_DESCRIPTION');
    expect(sim.errnoName).toBe('EINVAL');
    return sim.message.replace(/^EINVAL: /, '').split('\n');
  }
  throw new Error('description was accepted');
}

const port = { bdf: '0000:00:1c.0', kind: 'root-port', secondaryBus: 0x0a } as const;
const nic = { bdf: '0000:0a:00.0', vendorId: 0x8086, deviceId: 0x1572 } as const;

describe('host description', () => {
  it('builds every shared fixture', () => {
    for (const description of [twoFunctionNicNoAcs, switchThreeEndpointsAcs, sriovPfTwoVfs, hotplugSlotNvme, pcieToPciBridge, richEndpoint]) {
      expect(buildPlatform(description).functions().length).toBeGreaterThan(0);
    }
  });

  it('accepts an empty description as an empty machine', () => {
    for (const p of [buildPlatform({}), buildPlatform()]) {
      expect(p.functions()).toEqual([]);
      expect(p.groups.all()).toEqual([]);
      expect(p.topology.rootBuses().map((b) => b.name)).toEqual(['0000:00']);
    }
  });

  it('turns a three-field entry into a realistic PCIe endpoint', () => {
    const fn = buildPlatform({ bridges: [port], devices: [nic] }).get('0000:0a:00.0');
    expect(capabilities(fn.config).map((c) => c.id)).toEqual([PCI_CAP_ID_PM, PCI_CAP_ID_MSI, PCI_CAP_ID_EXP, PCI_CAP_ID_MSIX]);
    expect(extCapabilities(fn.config).map((c) => c.id)).toEqual([PCI_EXT_CAP_ID_ERR]);
    expect(fn.pcieType).toBe('endpoint');
    expect(fn.flrCapable).toBe(true);
    expect(fn.config.read16(fn.pmCap + PCI_PM_CTRL) & PCI_PM_CTRL_NO_SOFT_RESET).toBe(PCI_PM_CTRL_NO_SOFT_RESET);
    expect(fn.bars[0]).toMatchObject({ index: 0, kind: 'mem64', size: 0x4000n, prefetchable: false });
    // MSI-X: 8 entries, table at half and PBA at three quarters of BAR 0.
    const msix = findCapability(fn.config, PCI_CAP_ID_MSIX);
    expect(fn.msix!.size).toBe(8);
    expect(fn.config.read32(msix + PCI_MSIX_TABLE)).toBe(0x2000);
    expect(fn.config.read32(msix + PCI_MSIX_PBA)).toBe(0x3000);
    expect(fn.config.read32(PCI_CLASS_REVISION)).toBe(0xff000000);
  });

  it('accepts the boot-time driver name the host composition applies', () => {
    expect(hostDescriptionSchema.safeParse({ bridges: [port], devices: [{ ...nic, driver: 'vfio-pci' }] }).success).toBe(true);
    expect(problems({ bridges: [port], devices: [{ ...nic, driver: '' }] })[0]).toMatch(/^devices\[0\]\.driver: /);
  });

  it('makes a device on a root bus a Root Complex Integrated Endpoint by default', () => {
    const fn = buildPlatform({ devices: [{ bdf: '0000:00:04.0', vendorId: 0x8086, deviceId: 0x2021 }] }).get('0000:00:04.0');
    expect(fn.pcieType).toBe('rc-endpoint');
  });

  it('accepts hex strings and size suffixes', () => {
    const fn = buildPlatform({
      bridges: [port],
      devices: [{ ...nic, vendorId: '0x8086', deviceId: '0x1572', bars: [{ index: 0, size: '2M' }, { index: 2, type: 'mem32', size: '0x1000' }] }],
    }).get('0000:0a:00.0');
    expect(fn.vendorId).toBe(0x8086);
    expect(fn.bars[0]!.size).toBe(2n << 20n);
    expect(fn.bars[2]!.size).toBe(0x1000n);
  });

  it('lets a description add root buses, listed by lspci newest first', () => {
    const p = buildPlatform({
      rootBuses: ['0000:00', '0000:80'],
      devices: [
        { bdf: '0000:00:04.0', vendorId: 0x8086, deviceId: 0x2021, label: 'A' },
        { bdf: '0000:80:04.0', vendorId: 0x8086, deviceId: 0x2021, label: 'B' },
      ],
    });
    expect(lspciTree(p.topology)).toBe(['-+-[0000:80]---04.0  8086:2021 B', ' \\-[0000:00]---04.0  8086:2021 A', ''].join('\n'));
  });
});

describe('host description errors name their path', () => {
  it('names a bad function number in an address', () => {
    const description = {
      bridges: [port],
      devices: [nic, { ...nic, bdf: '0000:0a:00.1' }, { ...nic, bdf: '0000:0a:00.9' }],
    };
    expect(problems(description)).toEqual(['devices[2].bdf: "0000:0a:00.9" has function 9; functions are 0-7']);
  });

  it('names a duplicate address', () => {
    expect(problems({ bridges: [port], devices: [nic, nic] })).toEqual(['devices[1].bdf: 0000:0a:00.0 is already used by devices[0]']);
  });

  it('names a device on a bus no bridge provides', () => {
    expect(problems({ bridges: [port], devices: [{ ...nic, bdf: '0000:0b:00.0' }] })).toEqual([
      'devices[0].bdf: bus 0x0b of 0000:0b:00.0 is neither a root bus nor the secondary bus of any bridge',
    ]);
  });

  it('names a 64-bit BAR in BAR 5', () => {
    expect(problems({ bridges: [port], devices: [{ ...nic, bars: [{ index: 5, type: 'mem64', size: '16K' }], capabilities: { msix: false } }] })).toEqual([
      'devices[0].bars[0].index: a 64-bit BAR at index 5 has no BAR 6 to hold its upper half',
    ]);
  });

  it('names an MSI-X table placed in a BAR that does not exist', () => {
    expect(problems({ bridges: [port], devices: [{ ...nic, capabilities: { msix: { tableBar: 2 } } }] })).toEqual([
      'devices[0].capabilities.msix.tableBar: BAR 2 does not exist',
    ]);
  });

  it('names an MSI-X table that does not fit its BAR', () => {
    expect(problems({ bridges: [port], devices: [{ ...nic, capabilities: { msix: { tableSize: 2048 } } }] })).toEqual([
      'devices[0].capabilities.msix.tableSize: the table (2048 entries, 32768 bytes at 0x2000) does not fit in BAR 0 of 16384 bytes',
    ]);
  });

  it('names a VF count above TotalVFs', () => {
    expect(problems({ bridges: [port], devices: [{ ...nic, extendedCapabilities: { sriov: { totalVfs: 8, numVfs: 9 } } }] })).toEqual([
      'devices[0].extendedCapabilities.sriov.numVfs: 9 VFs exceed TotalVFs 8',
    ]);
  });

  it('names VFs that collide with another function', () => {
    const description = {
      bridges: [port],
      devices: [
        { ...nic, multifunction: true, extendedCapabilities: { sriov: { totalVfs: 2, vfOffset: 1 } } },
        { ...nic, bdf: '0000:0a:00.1' },
      ],
    };
    expect(problems(description)).toEqual(['devices[0].extendedCapabilities.sriov.vfOffset: VF 0 would be at 0000:0a:00.1, which devices[1] already uses']);
  });

  it('names a device other than 0 on a PCIe link', () => {
    expect(problems({ bridges: [port], devices: [{ ...nic, bdf: '0000:0a:01.0' }] })).toEqual([
      'devices[0].bdf: 0000:0a:01.0 is device 0x01 below root port 0000:00:1c.0; a PCIe link carries only device 0',
    ]);
  });

  it('names functions 1-7 without function 0, and a function 0 that denies being multifunction', () => {
    expect(problems({ devices: [{ ...nic, bdf: '0000:00:04.2' }] })).toEqual([
      'devices[0].bdf: 0000:00:04.2 has no function 0 (0000:00:04.0); Linux looks for functions 1-7 only when function 0 exists',
    ]);
    expect(problems({ devices: [{ ...nic, bdf: '0000:00:04.0', multifunction: false }, { ...nic, bdf: '0000:00:04.1' }] })).toEqual([
      'devices[0].multifunction: function 0 must set the multifunction bit: functions 1 exist',
    ]);
  });

  it('names a bridge placed where PCIe does not allow it', () => {
    expect(problems({ bridges: [{ bdf: '0000:00:01.0', kind: 'downstream-port', secondaryBus: 1 }] })).toEqual([
      'bridges[0].kind: a switch downstream port cannot sit on bus 0x00 below the root bus',
    ]);
    expect(problems({ bridges: [port, { bdf: '0000:0a:00.0', kind: 'root-port', secondaryBus: 0x0b }] })).toEqual([
      'bridges[1].kind: a root port cannot sit on bus 0x0a below root port 0000:00:1c.0',
    ]);
  });

  it('names overlapping bus ranges', () => {
    const description = {
      bridges: [
        { bdf: '0000:00:01.0', kind: 'root-port', secondaryBus: 1 },
        { bdf: '0000:01:00.0', kind: 'upstream-port', secondaryBus: 3 },
        { bdf: '0000:00:02.0', kind: 'root-port', secondaryBus: 2 },
      ],
    };
    expect(problems(description)).toEqual([
      'bridges[2].secondaryBus: buses 02-02 behind 0000:00:02.0 overlap buses 01-03 behind bridges[0] (0000:00:01.0)',
    ]);
  });

  it('names a secondary bus below the bridge and a secondary bus used twice', () => {
    expect(problems({ bridges: [port, { bdf: '0000:00:1d.0', kind: 'root-port', secondaryBus: 0x0a }] })).toEqual([
      'bridges[1].secondaryBus: bus 0x0a is already the secondary bus of bridges[0] (0000:00:1c.0)',
    ]);
    expect(problems({ rootBuses: ['0000:00', '0000:10'], bridges: [{ bdf: '0000:10:01.0', kind: 'root-port', secondaryBus: 0x05 }] })).toEqual([
      "bridges[0].secondaryBus: secondary bus 0x05 must be above the bridge's own bus 0x10",
    ]);
  });

  it('names capabilities a function cannot have', () => {
    expect(problems({ ...pcieToPciBridge, devices: [...pcieToPciBridge.devices!, { bdf: '0000:06:02.0', vendorId: 1, deviceId: 2, extendedCapabilities: { acs: true } }] })).toEqual([
      'devices[3].extendedCapabilities.acs: 0000:06:02.0 is a conventional PCI function with 256 bytes of config space; extended capabilities need PCIe',
    ]);
    expect(problems({ bridges: [port, { bdf: '0000:0a:00.0', kind: 'pcie-to-pci', secondaryBus: 0x0b, extendedCapabilities: { acs: true } }] })).toEqual([
      'bridges[1].extendedCapabilities.acs: PCIe-to-PCI bridges never implement ACS (PCIe spec 6.12.1)',
    ]);
    expect(problems({ bridges: [port], devices: [{ ...nic, capabilities: { pcie: false } }] })).toEqual([
      'devices[0].capabilities.pcie: 0000:0a:00.0 is below a PCIe port and so is a PCI Express function; it needs the PCIe capability',
    ]);
  });

  it('names overlapping pinned capability offsets', () => {
    expect(problems({ bridges: [port], devices: [{ ...nic, capabilities: { msi: { offset: 0x50 }, msix: { offset: 0x58 } } }] })).toEqual([
      'devices[0].capabilities.msix.offset: offset 0x58 overlaps msi at 0x50',
    ]);
  });

  it('names structural mistakes with the schema path', () => {
    expect(problems({ devices: [{ bdf: '0000:00:04.0', vendorId: 'intel', deviceId: 1 }] })).toEqual([
      'devices[0].vendorId: "intel" is not a number; write 0x-prefixed hex or a JSON number',
    ]);
    expect(problems({ devices: [{ bdf: '0000:00:04.0', vendorId: 1, deviceId: 0x10000 }] })).toEqual(['devices[0].deviceId: 65536 does not fit 16 bits']);
    expect(problems({ devices: [{ bdf: '0000:00:04.0', vendorId: 1, deviceId: 1, capabilties: {} }] })).toEqual(['devices[0]: Unrecognized key: "capabilties"']);
    expect(problems({ devices: [{ bdf: '0000:00:04.0', vendorId: 1, deviceId: 1, bars: [{ index: 0, size: '3K' }] }] })).toEqual([
      'devices[0].bars[0].size: size 3072 is not a power of two',
    ]);
    expect(problems({ devices: [{ bdf: '0000:00:04.0', vendorId: 1, deviceId: 1, bars: [{ index: 0, type: 'io', size: 512 }], capabilities: { msix: false } }] })).toEqual([
      'devices[0].bars[0].size: an I/O BAR decodes at most 256 bytes, not 512',
    ]);
  });

  it('reports every problem at once, one per line', () => {
    const broken = { ...nic, capabilities: { msix: { tableBar: 2 } }, extendedCapabilities: { sriov: { totalVfs: 8, numVfs: 9 } } };
    expect(problems({ bridges: [port], devices: [{ ...nic, bdf: '0000:0b:00.0' }, broken] })).toEqual([
      'devices[0].bdf: bus 0x0b of 0000:0b:00.0 is neither a root bus nor the secondary bus of any bridge',
      'devices[1].capabilities.msix.tableBar: BAR 2 does not exist',
      'devices[1].extendedCapabilities.sriov.numVfs: 9 VFs exceed TotalVFs 8',
    ]);
  });

  it('reports semantic problems through the zod schema with path arrays', () => {
    const result = hostDescriptionSchema.safeParse({ bridges: [port], devices: [nic, nic] } satisfies HostDescription);
    expect(result.success).toBe(false);
    expect(result.error!.issues.map((i) => [i.path, i.message])).toEqual([[['devices', 1, 'bdf'], '0000:0a:00.0 is already used by devices[0]']]);
  });
});
