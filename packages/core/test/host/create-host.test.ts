import { describe, expect, it } from 'vitest';
import { createHost, Errno, mockIommu, SimError, type VfioSimPlugin } from '@vfiosim/core';
import { twoFunctionNicNoAcs } from '../fixtures/hosts.js';

function plugin(name: string, dependsOn: string[] = [], log: string[] = []): VfioSimPlugin {
  return {
    name,
    dependsOn,
    register: () => void log.push(`register ${name}`),
    apply: () => void log.push(`apply ${name}`),
  };
}

describe('createHost', () => {
  it('gives an empty machine that still has /dev/iommu and /dev/vfio/vfio', () => {
    const host = createHost();
    const proc = host.spawn();
    expect(host.platform.functions()).toHaveLength(0);
    expect(proc.open('/dev/iommu')).toBeGreaterThanOrEqual(0);
    expect(proc.open('/dev/vfio/vfio')).toBeGreaterThanOrEqual(0);
    expect(proc.open('/dev/vfio/devices/vfio0')).toBe(-Errno.ENOENT);
  });

  it('runs every register before any apply, in list order', () => {
    const log: string[] = [];
    createHost({}, { plugins: [plugin('a', [], log), plugin('b', ['a'], log)] });
    expect(log).toEqual(['register a', 'register b', 'apply a', 'apply b']);
  });

  it('rejects a duplicate plugin name', () => {
    expect(() => createHost({}, { plugins: [plugin('a'), plugin('a')] })).toThrow(/plugin "a" is listed twice/);
  });

  it('rejects a missing dependency and names both plugins', () => {
    expect(() => createHost({}, { plugins: [plugin('mlx5-vfio-pci', ['vfio-pci'])] }))
      .toThrow(/"mlx5-vfio-pci" depends on "vfio-pci", which is not in the plugin list/);
  });

  it('rejects a dependency listed after its dependent', () => {
    expect(() => createHost({}, { plugins: [plugin('b', ['a']), plugin('a')] })).toThrow(/must be listed before it/);
  });

  it('answers the duplicate and missing-dependency errors with their own codes', () => {
    expect(() => createHost({}, { plugins: [plugin('a'), plugin('a')] })).toThrow(expect.objectContaining({ code: 'PLUGIN_DUPLICATE', errnoName: 'EEXIST' }));
    expect(() => createHost({}, { plugins: [plugin('b', ['a'])] })).toThrow(expect.objectContaining({ code: 'PLUGIN_DEPENDENCY_MISSING', errnoName: 'EINVAL' }));
  });

  it('rejects malformed plugin metadata before any plugin runs, naming the plugin and the field', () => {
    const log: string[] = [];
    const cases: Array<[unknown, RegExp]> = [
      [{ name: '' }, /plugin #1 is malformed: name: needs a name/],
      [{ name: 'x', dependsOn: 'vfio-pci' }, /plugin "x" is malformed: dependsOn:/],
      [{ name: 'x', apply: 'later' }, /plugin "x" is malformed: apply:/],
      [{ name: 'x', dependsOn: ['x'] }, /plugin "x" depends on itself/],
    ];
    for (const [bad, message] of cases) {
      const error = (() => {
        try {
          createHost({}, { plugins: [plugin('first', [], log), bad as VfioSimPlugin] });
        } catch (caught) {
          return caught;
        }
        return null;
      })();
      expect(error).toBeInstanceOf(SimError);
      expect(error).toMatchObject({ code: 'PLUGIN_INVALID', errnoName: 'EINVAL' });
      expect((error as SimError).message).toMatch(message);
    }
    expect(log).toEqual([]);
  });

  it('wraps a plugin failure with the plugin name and step', () => {
    const broken: VfioSimPlugin = { name: 'broken', apply: () => { throw new TypeError('boom'); } };
    expect(() => createHost({}, { plugins: [broken] })).toThrow(/plugin "broken" failed in apply: TypeError: boom/);
  });

  it('rejects an invalid description with the offending path', () => {
    let error: unknown;
    try {
      createHost({ devices: [{ bdf: '0000:0a:00.9', vendorId: 0x8086, deviceId: 0x10fb }] });
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(SimError);
    expect((error as SimError).code).toBe('INVALID_HOST_DESCRIPTION');
    expect((error as SimError).message).toMatch(/devices\[0\]\.bdf: "0000:0a:00\.9" has function 9; functions are 0-7/);
  });

  it('probes every function into its IOMMU group when an IOMMU driver is loaded', () => {
    const host = createHost(twoFunctionNicNoAcs, { plugins: [mockIommu()] });
    const nic0 = host.platform.get('0000:0a:00.0');
    const nic1 = host.platform.get('0000:0a:00.1');
    expect(host.iommu.groupIdOf(nic0)).toBe(host.platform.groups.groupOf(nic0)!.id);
    expect(host.iommu.groupIdOf(nic1)).toBe(host.iommu.groupIdOf(nic0));
  });

  it('leaves functions without an IOMMU when no IOMMU driver is loaded', () => {
    const host = createHost(twoFunctionNicNoAcs);
    expect(host.iommu.groupIdOf(host.platform.get('0000:0a:00.0'))).toBeNull();
  });

  it('builds independent hosts: no state leaks through the container', () => {
    const a = createHost(twoFunctionNicNoAcs, { plugins: [mockIommu()] });
    const b = createHost(twoFunctionNicNoAcs, { plugins: [mockIommu()] });
    expect(a.iommu).not.toBe(b.iommu);
    expect(a.vfio).not.toBe(b.vfio);
    expect(b.iommu.drivers).toHaveLength(1);
  });
});
