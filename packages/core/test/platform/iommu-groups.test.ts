import { describe, expect, it } from 'vitest';
import {
  buildPlatform,
  pciAcsEnabled,
  REQ_ACS_FLAGS,
  SimError,
  type HostDescription,
  type Platform,
} from '@vfiosim/core';
import { pcieToPciBridge, sriovPfTwoVfs, switchThreeEndpointsAcs, twoFunctionNicNoAcs } from '../fixtures/hosts.js';

/** Groups as id -> member names, the shape of /sys/kernel/iommu_groups. */
function groups(p: Platform): Record<number, string[]> {
  return Object.fromEntries(p.groups.all().map((g) => [g.id, g.functions.map((f) => f.name)]));
}

function nicPair(options: { portAcs: boolean; functionAcs: boolean }): HostDescription {
  return {
    bridges: [
      {
        bdf: '0000:00:1c.0',
        kind: 'root-port',
        secondaryBus: 0x0a,
        extendedCapabilities: options.portAcs ? { acs: true } : {},
      },
    ],
    devices: [0, 1].map((fn) => ({
      bdf: `0000:0a:00.${fn}`,
      vendorId: 0x8086,
      deviceId: 0x1572,
      classCode: 0x020000,
      extendedCapabilities: options.functionAcs ? { acs: { rr: true, cr: true, uf: true, sv: true } } : {},
    })),
  };
}

describe('IOMMU groups', () => {
  it('puts both functions of a NIC without ACS in one group, with the root port that lacks ACS too', () => {
    expect(groups(buildPlatform(twoFunctionNicNoAcs))).toEqual({
      0: ['0000:00:00.0'],
      1: ['0000:00:1c.0', '0000:0a:00.0', '0000:0a:00.1'],
    });
  });

  it('keeps the functions of a multifunction device together when they lack ACS, even below an isolating port', () => {
    expect(groups(buildPlatform(nicPair({ portAcs: true, functionAcs: false })))).toEqual({
      0: ['0000:00:1c.0'],
      1: ['0000:0a:00.0', '0000:0a:00.1'],
    });
  });

  it('separates the functions when they implement ACS', () => {
    expect(groups(buildPlatform(nicPair({ portAcs: true, functionAcs: true })))).toEqual({
      0: ['0000:00:1c.0'],
      1: ['0000:0a:00.0'],
      2: ['0000:0a:00.1'],
    });
  });

  it('counts ACS features the capability does not advertise as enabled', () => {
    // Only Request and Completion Redirect are implemented; SV and UF are then "hard-wired".
    const p = buildPlatform({
      bridges: [{ bdf: '0000:00:1c.0', kind: 'root-port', secondaryBus: 0x0a, extendedCapabilities: { acs: { rr: true, cr: true } } }],
      devices: [{ bdf: '0000:0a:00.0', vendorId: 0x8086, deviceId: 0x1572 }],
    });
    expect(pciAcsEnabled(p.get('0000:00:1c.0'), REQ_ACS_FLAGS)).toBe(true);
    expect(groups(p)).toEqual({ 0: ['0000:00:1c.0'], 1: ['0000:0a:00.0'] });
  });

  it('gives every function of a switch with ACS on all ports its own group', () => {
    expect(Object.values(groups(buildPlatform(switchThreeEndpointsAcs)))).toEqual(
      buildPlatform(switchThreeEndpointsAcs).functions().map((f) => [f.name]),
    );
  });

  it('joins each endpoint to its downstream port when the switch ports lack ACS', () => {
    const description: HostDescription = {
      ...switchThreeEndpointsAcs,
      bridges: switchThreeEndpointsAcs.bridges!.map((b) => (b.kind === 'downstream-port' ? { ...b, extendedCapabilities: {} } : b)),
    };
    expect(groups(buildPlatform(description))).toEqual({
      0: ['0000:00:00.0'],
      1: ['0000:00:01.0'],
      2: ['0000:01:00.0'],
      3: ['0000:02:00.0', '0000:03:00.0'],
      4: ['0000:02:01.0', '0000:04:00.0'],
      5: ['0000:02:02.0', '0000:05:00.0'],
    });
  });

  it('puts a whole switch in one group when the root port above it lacks ACS', () => {
    const description: HostDescription = {
      ...switchThreeEndpointsAcs,
      bridges: switchThreeEndpointsAcs.bridges!.map((b) => (b.kind === 'root-port' ? { ...b, extendedCapabilities: {} } : b)),
    };
    expect(groups(buildPlatform(description))).toEqual({
      0: ['0000:00:00.0'],
      1: ['0000:00:01.0', '0000:01:00.0', '0000:02:00.0', '0000:02:01.0', '0000:02:02.0', '0000:03:00.0', '0000:04:00.0', '0000:05:00.0'],
    });
  });

  it('groups conventional PCI devices with the PCIe-to-PCI bridge that is their DMA alias', () => {
    expect(groups(buildPlatform(pcieToPciBridge))).toEqual({
      0: ['0000:00:00.0'],
      1: ['0000:00:1c.0'],
      2: ['0000:05:00.0', '0000:06:00.0', '0000:06:01.0'],
    });
  });

  it('shares a group between root ports of one multifunction device without ACS', () => {
    const p = buildPlatform({
      bridges: [
        { bdf: '0000:00:1c.0', kind: 'root-port', secondaryBus: 1 },
        { bdf: '0000:00:1c.1', kind: 'root-port', secondaryBus: 2 },
      ],
      devices: [
        { bdf: '0000:01:00.0', vendorId: 0x8086, deviceId: 0x1533 },
        { bdf: '0000:02:00.0', vendorId: 0x10ec, deviceId: 0x8168 },
      ],
    });
    expect(groups(p)).toEqual({ 0: ['0000:00:1c.0', '0000:00:1c.1', '0000:01:00.0', '0000:02:00.0'] });
  });

  it('gives each VF its own group below a port with ACS', () => {
    expect(groups(buildPlatform(sriovPfTwoVfs))).toEqual({
      0: ['0000:00:00.0'],
      1: ['0000:00:02.0'],
      2: ['0000:3b:00.0'],
      3: ['0000:3b:00.1'],
      4: ['0000:3b:00.2'],
    });
  });

  it('numbers groups in probe order: a bus behind a lower bridge first, whatever its number', () => {
    // Bus 0x20 sits behind 00:01.0 and bus 0x0a behind 00:1c.0: the scan
    // adds 20:00.0 before 0a:00.0, so its group gets the lower id.
    const p = buildPlatform({
      bridges: [
        { bdf: '0000:00:01.0', kind: 'root-port', secondaryBus: 0x20, extendedCapabilities: { acs: true } },
        { bdf: '0000:00:1c.0', kind: 'root-port', secondaryBus: 0x0a, extendedCapabilities: { acs: true } },
      ],
      devices: [
        { bdf: '0000:0a:00.0', vendorId: 0x8086, deviceId: 0x1533 },
        { bdf: '0000:20:00.0', vendorId: 0x8086, deviceId: 0x1533 },
      ],
    });
    expect(groups(p)).toEqual({
      0: ['0000:00:01.0'],
      1: ['0000:00:1c.0'],
      2: ['0000:20:00.0'],
      3: ['0000:0a:00.0'],
    });
  });

  it('numbers the groups of VFs present at boot after every other group, as SR-IOV is enabled after the IOMMU probe', () => {
    const p = buildPlatform({
      bridges: [
        { bdf: '0000:00:02.0', kind: 'root-port', secondaryBus: 0x3b, extendedCapabilities: { acs: true } },
        { bdf: '0000:00:03.0', kind: 'root-port', secondaryBus: 0x5e, extendedCapabilities: { acs: true } },
      ],
      devices: [
        {
          bdf: '0000:3b:00.0',
          vendorId: 0x15b3,
          deviceId: 0x1017,
          extendedCapabilities: { sriov: { totalVfs: 2, numVfs: 1, vfOffset: 1, vfStride: 1, vfDeviceId: 0x1018 } },
        },
        { bdf: '0000:5e:00.0', vendorId: 0x8086, deviceId: 0x0a54 },
      ],
    });
    expect(groups(p)).toEqual({
      0: ['0000:00:02.0'],
      1: ['0000:00:03.0'],
      2: ['0000:3b:00.0'],
      3: ['0000:5e:00.0'],
      4: ['0000:3b:00.1'],
    });
  });

  it('numbers groups of VFs enabled later with the lowest free ids, and frees them with the VFs', () => {
    const p = buildPlatform(sriovPfTwoVfs);
    const pf = p.get('0000:3b:00.0');
    p.topology.disableSriov(pf);
    expect(p.groups.all().map((g) => g.id)).toEqual([0, 1, 2]);
    p.topology.enableSriov(pf, 3);
    expect(pf.virtfns.map((vf) => p.groups.groupOf(vf)!.id)).toEqual([3, 4, 5]);
  });

  it('leaves functions without an IOMMU out of every group', () => {
    const p = buildPlatform({
      bridges: [{ bdf: '0000:00:1c.0', kind: 'root-port', secondaryBus: 0x0a, extendedCapabilities: { acs: true } }],
      devices: [
        { bdf: '0000:00:04.0', vendorId: 0x8086, deviceId: 0x2021, noIommu: true },
        { bdf: '0000:0a:00.0', vendorId: 0x8086, deviceId: 0x1533 },
      ],
    });
    const dma = p.get('0000:00:04.0');
    expect(p.groups.groupOf(dma)).toBeNull();
    expect(() => p.groups.requireGroupOf(dma)).toThrow(SimError);
    expect(groups(p)).toEqual({ 0: ['0000:00:1c.0'], 1: ['0000:0a:00.0'] });
  });

  it('takes noIommu on a bridge to cover everything behind it', () => {
    const p = buildPlatform({
      bridges: [{ bdf: '0000:00:1c.0', kind: 'root-port', secondaryBus: 0x0a, noIommu: true }],
      devices: [{ bdf: '0000:0a:00.0', vendorId: 0x8086, deviceId: 0x1533 }],
    });
    expect(p.get('0000:0a:00.0').noIommu).toBe(true);
    expect(p.groups.all()).toEqual([]);
  });
});
