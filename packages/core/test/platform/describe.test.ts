import { describe, expect, it } from 'vitest';
import { buildPlatform, iommuGroupListing, lspciTree, resetScopeTable } from '@vfiosim/core';
import { pcieToPciBridge, switchThreeEndpointsAcs, twoFunctionNicNoAcs } from '../fixtures/hosts.js';

const pad = (n: number) => ' '.repeat(n);

describe('renderings', () => {
  it('draws the lspci -tv tree of a multifunction device behind a root port', () => {
    const nic = '8086:10fb 82599ES 10-Gigabit SFI/SFP+';
    expect(lspciTree(buildPlatform(twoFunctionNicNoAcs).topology)).toBe(
      [
        '-[0000:00]-+-00.0  8086:2020 Host bridge',
        `${pad(11)}\\-1c.0-[0a]--+-00.0  ${nic}`,
        `${pad(24)}\\-00.1  ${nic}`,
        '',
      ].join('\n'),
    );
  });

  it('draws a switch with bus ranges and branches', () => {
    const nvme = '144d:a824 NVMe SSD Controller PM1733';
    expect(lspciTree(buildPlatform(switchThreeEndpointsAcs).topology)).toBe(
      [
        '-[0000:00]-+-00.0  8086:2020 Host bridge',
        `${pad(11)}\\-01.0-[01-05]----00.0-[02-05]--+-00.0-[03]----00.0  ${nvme}`,
        `${pad(43)}+-01.0-[04]----00.0  ${nvme}`,
        `${pad(43)}\\-02.0-[05]----00.0  ${nvme}`,
        '',
      ].join('\n'),
    );
  });

  it('draws an empty bridge and an empty machine', () => {
    const p = buildPlatform({ bridges: [{ bdf: '0000:00:1c.0', kind: 'root-port', secondaryBus: 0x0a }] });
    expect(lspciTree(p.topology)).toBe('-[0000:00]---1c.0-[0a]--\n');
    expect(lspciTree(buildPlatform({}).topology)).toBe('-[0000:00]-\n');
  });

  it('lists /sys/kernel/iommu_groups by group and address', () => {
    expect(iommuGroupListing(buildPlatform(pcieToPciBridge).groups)).toBe(
      [
        '/sys/kernel/iommu_groups/0/devices/0000:00:00.0',
        '/sys/kernel/iommu_groups/1/devices/0000:00:1c.0',
        '/sys/kernel/iommu_groups/2/devices/0000:05:00.0',
        '/sys/kernel/iommu_groups/2/devices/0000:06:00.0',
        '/sys/kernel/iommu_groups/2/devices/0000:06:01.0',
        '',
      ].join('\n'),
    );
    expect(iommuGroupListing(buildPlatform({}).groups)).toBe('');
  });

  it('tabulates reset mechanisms and hot reset scope per function', () => {
    const rows = resetScopeTable(buildPlatform(switchThreeEndpointsAcs)).trimEnd().split('\n');
    expect(rows[0].split(/\s+/)).toEqual(['DEVICE', 'FLR', 'PM', 'BUS', 'RESET_METHOD', 'HOT_RESET']);
    expect(rows).toHaveLength(10);
    const row = (bdf: string) => rows.find((r) => r.startsWith(bdf))!;
    expect(row('0000:04:00.0')).toMatch(/^0000:04:00\.0 +yes +nsr +slot 5 +flr bus +slot 5: 0000:04:00\.0$/);
    expect(row('0000:03:00.0')).toMatch(/^0000:03:00\.0 +yes +nsr +0000:02:00\.0 +flr bus +bus 0000:03: 0000:03:00\.0$/);
    expect(row('0000:00:01.0')).toMatch(/^0000:00:01\.0 +no +nsr +- +- +ENODEV$/);
    expect(row('0000:00:00.0')).toMatch(/^0000:00:00\.0 +no +- +- +- +ENODEV$/);
  });
});
