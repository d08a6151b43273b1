import { describe, expect, it } from 'vitest';
import {
  buildPlatform,
  capabilities,
  capabilityLength,
  extCapabilities,
  findCapability,
  findExtCapability,
  findNextCapability,
  PCI_ACS_CAP,
  PCI_CAP_ID_AF,
  PCI_CAP_ID_EXP,
  PCI_CAP_ID_MSI,
  PCI_CAP_ID_MSIX,
  PCI_CAP_ID_PM,
  PCI_CAP_ID_VPD,
  PCI_CAPABILITY_LIST,
  PCI_EXP_DEVCAP,
  PCI_EXP_DEVCAP_FLR,
  PCI_EXP_FLAGS,
  PCI_EXT_CAP_ID_ACS,
  PCI_EXT_CAP_ID_ATS,
  PCI_EXT_CAP_ID_DSN,
  PCI_EXT_CAP_ID_ERR,
  PCI_EXT_CAP_ID_PASID,
  PCI_EXT_CAP_ID_PRI,
  PCI_EXT_CAP_ID_SRIOV,
  PCI_MSIX_FLAGS,
  PCI_MSIX_PBA,
  PCI_MSIX_TABLE,
  PCI_PASID_CAP,
  PCI_SRIOV_TOTAL_VF,
  PCI_SRIOV_VF_DID,
  PCI_SRIOV_VF_OFFSET,
  PCI_SRIOV_VF_STRIDE,
  PCI_STATUS,
  PCI_STATUS_CAP_LIST,
  type HostDescription,
} from '@vfiosim/core';
import { richEndpoint, twoFunctionNicNoAcs } from '../fixtures/hosts.js';

function endpoint(capabilities: NonNullable<HostDescription['devices']>[number]['capabilities']) {
  return buildPlatform({
    bridges: [{ bdf: '0000:00:01.0', kind: 'root-port', secondaryBus: 1 }],
    devices: [{ bdf: '0000:01:00.0', vendorId: 0x1af4, deviceId: 0x1041, capabilities }],
  }).get('0000:01:00.0');
}

describe('capability chains', () => {
  it('walks every standard and extended capability of a rich description, in offset order', () => {
    const fn = buildPlatform(richEndpoint).get('0000:17:00.0');
    expect(fn.config.read16(PCI_STATUS) & PCI_STATUS_CAP_LIST).toBe(PCI_STATUS_CAP_LIST);
    expect(fn.config.read8(PCI_CAPABILITY_LIST)).toBe(0x40);
    // Automatic placement: canonical order, each at the next 16-byte boundary.
    expect(capabilities(fn.config).map((c) => [c.id, c.offset, c.length])).toEqual([
      [PCI_CAP_ID_PM, 0x40, 8],
      [PCI_CAP_ID_MSI, 0x50, 24],
      [PCI_CAP_ID_EXP, 0x70, 60],
      [PCI_CAP_ID_MSIX, 0xb0, 12],
      [PCI_CAP_ID_AF, 0xc0, 6],
    ]);
    expect(extCapabilities(fn.config).map((c) => [c.id, c.offset, c.length, c.version])).toEqual([
      [PCI_EXT_CAP_ID_ERR, 0x100, 44, 2],
      [PCI_EXT_CAP_ID_ACS, 0x130, 16, 1],
      [PCI_EXT_CAP_ID_ATS, 0x140, 8, 1],
      [PCI_EXT_CAP_ID_PASID, 0x150, 8, 1],
      [PCI_EXT_CAP_ID_PRI, 0x160, 16, 1],
      [PCI_EXT_CAP_ID_SRIOV, 0x170, 64, 1],
    ]);
    const last = extCapabilities(fn.config).at(-1)!;
    expect(last.next).toBe(0);
  });

  it('finds capabilities by id and answers 0 for absent ones, as pci_find_capability', () => {
    const fn = buildPlatform(richEndpoint).get('0000:17:00.0');
    expect(findCapability(fn.config, PCI_CAP_ID_MSIX)).toBe(0xb0);
    expect(findCapability(fn.config, PCI_CAP_ID_VPD)).toBe(0);
    expect(findNextCapability(fn.config, 0x40, PCI_CAP_ID_EXP)).toBe(0x70);
    expect(findExtCapability(fn.config, PCI_EXT_CAP_ID_SRIOV)).toBe(0x170);
    expect(findExtCapability(fn.config, PCI_EXT_CAP_ID_DSN)).toBe(0);
  });

  it('encodes capability registers from their parameters', () => {
    const fn = buildPlatform(richEndpoint).get('0000:17:00.0');
    const c = fn.config;
    expect(c.read16(0xb0 + PCI_MSIX_FLAGS)).toBe(127);
    expect(c.read32(0xb0 + PCI_MSIX_TABLE)).toBe(0x0 | 4);
    expect(c.read32(0xb0 + PCI_MSIX_PBA)).toBe(0x1000 | 4);
    expect(c.read16(0x70 + PCI_EXP_FLAGS)).toBe(0x0002);
    expect(c.read32(0x70 + PCI_EXP_DEVCAP) & PCI_EXP_DEVCAP_FLR).toBe(PCI_EXP_DEVCAP_FLR);
    // ACS: SV | RR | CR | UF | EC, with a 40-bit egress vector.
    expect(c.read16(0x130 + PCI_ACS_CAP)).toBe((40 << 8) | 0x3d);
    // PASID: exec, privileged, 20-bit width.
    expect(c.read16(0x150 + PCI_PASID_CAP)).toBe((20 << 8) | 0x6);
    expect(c.read16(0x170 + PCI_SRIOV_TOTAL_VF)).toBe(4);
    // Default First VF Offset puts VF 0 at the next device number; stride 1.
    expect(c.read16(0x170 + PCI_SRIOV_VF_OFFSET)).toBe(8);
    expect(c.read16(0x170 + PCI_SRIOV_VF_STRIDE)).toBe(1);
    expect(c.read16(0x170 + PCI_SRIOV_VF_DID)).toBe(0xcafe);
  });

  it('sizes MSI as 10, 14, 20 or 24 bytes from its flags', () => {
    const cases: Array<[boolean, boolean, number]> = [
      [false, false, 10],
      [true, false, 14],
      [false, true, 20],
      [true, true, 24],
    ];
    for (const [address64, perVectorMask, length] of cases) {
      const fn = endpoint({ msi: { vectors: 4, address64, perVectorMask } });
      const msi = findCapability(fn.config, PCI_CAP_ID_MSI);
      expect(capabilityLength(fn.config, PCI_CAP_ID_MSI, msi), `64=${address64} mask=${perVectorMask}`).toBe(length);
    }
  });

  it('sizes the PCIe capability by version and type', () => {
    const v1 = endpoint({ pcie: { version: 1 } });
    expect(capabilities(v1.config).find((c) => c.id === PCI_CAP_ID_EXP)!.length).toBe(20);
    const v2 = endpoint({});
    expect(capabilities(v2.config).find((c) => c.id === PCI_CAP_ID_EXP)!.length).toBe(60);
    const rcie = buildPlatform({
      devices: [{ bdf: '0000:00:04.0', vendorId: 0x8086, deviceId: 0x2021, capabilities: { pcie: { version: 1 } } }],
    }).get('0000:00:04.0');
    expect(capabilities(rcie.config).find((c) => c.id === PCI_CAP_ID_EXP)!.length).toBe(12);
  });

  it('gives a root port the root AER registers', () => {
    const port = buildPlatform(twoFunctionNicNoAcs).get('0000:00:1c.0');
    expect(extCapabilities(port.config).find((c) => c.id === PCI_EXT_CAP_ID_ERR)!.length).toBe(56);
  });

  it('honours pinned offsets and links the chain in offset order', () => {
    const fn = endpoint({ pm: { offset: 0xc8 }, msix: { offset: 0x48 } });
    const chain = capabilities(fn.config);
    expect(chain.map((c) => c.offset)).toEqual([...chain.map((c) => c.offset)].sort((a, b) => a - b));
    expect(findCapability(fn.config, PCI_CAP_ID_PM)).toBe(0xc8);
    expect(findCapability(fn.config, PCI_CAP_ID_MSIX)).toBe(0x48);
    for (const [i, cap] of chain.entries()) expect(cap.next).toBe(chain[i + 1]?.offset ?? 0);
  });

  it('derives the facts an IOMMU driver asks about from the capabilities', () => {
    const fn = buildPlatform(richEndpoint).get('0000:17:00.0');
    expect([fn.rid, fn.maxPasidLog2, fn.atsCapable]).toEqual([0x1700, 20, true]);
    const nic = buildPlatform(twoFunctionNicNoAcs).get('0000:0a:00.1');
    expect([nic.rid, nic.maxPasidLog2, nic.atsCapable]).toEqual([0x0a01, 0, false]);
  });

  it('has no capability list on a function without capabilities', () => {
    const hostBridge = buildPlatform(twoFunctionNicNoAcs).get('0000:00:00.0');
    expect(hostBridge.config.read16(PCI_STATUS) & PCI_STATUS_CAP_LIST).toBe(0);
    expect(capabilities(hostBridge.config)).toEqual([]);
    expect(hostBridge.cfgSize).toBe(256);
    expect(extCapabilities(hostBridge.config)).toEqual([]);
  });
});
