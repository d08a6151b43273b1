import { describe, expect, it } from 'vitest';
import { DeviceNodes, Errno, O_RDWR, OpenFile, SimError, System } from '@vfiosim/core';

describe('DeviceNodes', () => {
  it('registers, lists sorted and unregisters nodes', () => {
    const devfs = new DeviceNodes();
    const opener = () => new OpenFile({ kind: 'x' }, O_RDWR);
    devfs.register('/dev/vfio/vfio', opener);
    devfs.register('/dev/iommu', opener);
    expect(devfs.list()).toEqual(['/dev/iommu', '/dev/vfio/vfio']);
    devfs.unregister('/dev/iommu');
    expect(devfs.has('/dev/iommu')).toBe(false);
    expect(devfs.list()).toEqual(['/dev/vfio/vfio']);
  });

  it('refuses a duplicate path with EEXIST and unregistering an unknown one with ENOENT', () => {
    const devfs = new DeviceNodes();
    const opener = () => new OpenFile({ kind: 'x' }, O_RDWR);
    devfs.register('/dev/iommu', opener);
    expect(() => devfs.register('/dev/iommu', opener)).toThrow(SimError);
    try {
      devfs.unregister('/dev/nope');
    } catch (error) {
      expect((error as SimError).errnoName).toBe('ENOENT');
    }
    expect.assertions(2);
  });

  it('opens through the registered opener with the process and flags, and answers ENOENT after unregister', () => {
    const system = new System();
    const seen: [number, number][] = [];
    system.devfs.register('/dev/vfio/devices/vfio0', (proc, flags) => {
      seen.push([proc.pid, flags]);
      return new OpenFile({ kind: 'vfio-device' }, flags);
    });
    const proc = system.spawn();
    const fd = proc.open('/dev/vfio/devices/vfio0', O_RDWR);
    expect(proc.fdget(fd).ops.kind).toBe('vfio-device');
    expect(seen).toEqual([[proc.pid, O_RDWR]]);
    system.devfs.unregister('/dev/vfio/devices/vfio0');
    expect(proc.fdget(fd).released).toBe(false);
    expect(proc.open('/dev/vfio/devices/vfio0')).toBe(-Errno.ENOENT);
  });
});
