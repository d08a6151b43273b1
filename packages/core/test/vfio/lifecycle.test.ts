import { describe, expect, it } from 'vitest';
import {
  Errno,
  VFIO_CHECK_EXTENSION,
  VFIO_DEVICE_BIND_IOMMUFD,
  VFIO_GROUP_GET_DEVICE_FD,
  VFIO_GROUP_GET_STATUS,
  VFIO_GROUP_SET_CONTAINER,
  VFIO_IOMMU_MAP_DMA,
  VFIO_NOIOMMU_IOMMU,
  VFIO_SET_IOMMU,
  VFIO_TYPE1v2_IOMMU,
  VFIO_UNREGISTER_REQUEST_INTERVAL_NS,
  VfioDevice,
  emulatedIommufdOps,
  type AuxiliaryDevice,
  vfio_device_bind_iommufd,
  vfio_group_status,
  type Process,
} from '@vfiosim/core';
import { fixtureDriver, makeHost, pciFunction, spawnWithScratch, writeString, type Host } from './harness.js';

const SECOND = 1_000_000_000n;

/** Lets every pending promise continuation run (a macrotask turn; no wall-clock time is involved). */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

function openThroughContainer(host: Host, proc: Process, va: bigint, group: string, name: string): number {
  const groupFd = proc.open(`/dev/vfio/${group}`);
  const containerFd = proc.open('/dev/vfio/vfio');
  proc.mem.writeU32(va, containerFd);
  expect(proc.ioctl(groupFd, VFIO_GROUP_SET_CONTAINER, va)).toBe(0);
  expect(proc.ioctl(containerFd, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU)).toBe(0);
  writeString(proc, va, name);
  const fd = proc.ioctl(groupFd, VFIO_GROUP_GET_DEVICE_FD, va);
  expect(fd).toBeGreaterThanOrEqual(0);
  return fd;
}

describe('device registration', () => {
  it('gives devices the lowest free index, so vfio0 is reused after removal', async () => {
    const host = makeHost();
    const driver = fixtureDriver(host.vfio);
    host.drivers.registerPciDriver(driver);
    const a = host.addFunction('0000:00:01.0', 1);
    host.addFunction('0000:00:02.0', 2);
    expect(host.vfio.devices.map((vdev) => [vdev.name, vdev.index])).toEqual([['0000:00:01.0', 0], ['0000:00:02.0', 1]]);
    await host.drivers.unbind(a, 'vfio-fixture');
    expect(host.system.devfs.has('/dev/vfio/devices/vfio0')).toBe(false);
    expect(host.system.devfs.has('/dev/vfio/1')).toBe(false);
    host.addFunction('0000:00:03.0', 3);
    expect(driver.devices.get('0000:00:03.0')!.index).toBe(0);
    expect(host.system.devfs.has('/dev/vfio/devices/vfio0')).toBe(true);
  });

  it('shares one group between the devices of an IOMMU group, until the last leaves', async () => {
    const host = makeHost();
    const driver = fixtureDriver(host.vfio);
    host.drivers.registerPciDriver(driver);
    const a = host.addFunction('0000:00:01.0', 4);
    const b = host.addFunction('0000:00:01.1', 4);
    expect(driver.devices.get(a.name)!.group).toBe(driver.devices.get(b.name)!.group);
    await host.drivers.unbind(a, 'vfio-fixture');
    expect(host.system.devfs.has('/dev/vfio/4')).toBe(true);
    await host.drivers.unbind(b, 'vfio-fixture');
    expect(host.system.devfs.has('/dev/vfio/4')).toBe(false);
  });

  it('refuses a second registration of a device with EINVAL and logs the driver bug', () => {
    const host = makeHost();
    const driver = fixtureDriver(host.vfio);
    host.drivers.registerPciDriver(driver);
    const fn = host.addFunction('0000:00:01.0', 1);
    const first = driver.devices.get(fn.name)!;
    expect(() => host.vfio.registerGroupDev(first)).toThrow(expect.objectContaining({ errnoName: 'EINVAL' }));
    const twin = new VfioDevice(fn, first.ops);
    expect(() => host.vfio.registerGroupDev(twin)).toThrow(expect.objectContaining({ errnoName: 'EINVAL' }));
    expect(host.vfio.log.messages.filter((m) => m.text.includes('registered with vfio twice'))).toHaveLength(2);
    expect(twin.index).toBe(-1);
    expect(host.vfio.devices).toEqual([first]);
    expect(first.group!.devices).toEqual([first]);
  });

  it('refuses a driver without the four iommufd ops with EINVAL', () => {
    const host = makeHost();
    const fn = pciFunction('0000:00:01.0');
    host.iommu.probeDevice(fn, 1);
    const vdev = new VfioDevice(fn, { name: 'incomplete', bindIommufd: () => 1, unbindIommufd: () => {}, attachIoas: () => 1 });
    expect(() => host.vfio.registerGroupDev(vdev)).toThrow(expect.objectContaining({ errnoName: 'EINVAL' }));
    expect(host.vfio.log.messages.at(-1)?.level).toBe('warn');
    expect(host.system.devfs.list()).toEqual(['/dev/iommu', '/dev/vfio/vfio']);
  });

  it('refuses a device no IOMMU translates for with EINVAL outside noiommu mode', () => {
    const host = makeHost();
    const driver = fixtureDriver(host.vfio);
    host.drivers.registerPciDriver(driver);
    const fn = host.addFunction('0000:00:01.0', null);
    expect(host.drivers.driverName(fn)).toBeNull();
    expect(host.drivers.log.messages.at(-1)?.text).toContain('probe failed with error -22');
  });

  it('puts every device in a device set, its own unless the driver names one', () => {
    const host = makeHost();
    const slot = {};
    const driver = fixtureDriver(host.vfio, {
      ops: {
        init: (vdev) => {
          if (vdev.name.startsWith('0000:00:05')) host.vfio.assignDeviceSet(vdev, slot);
        },
      },
    });
    host.drivers.registerPciDriver(driver);
    host.addFunction('0000:00:05.0', 1);
    host.addFunction('0000:00:05.1', 2);
    host.addFunction('0000:00:06.0', 3);
    const [a, b, c] = ['0000:00:05.0', '0000:00:05.1', '0000:00:06.0'].map((n) => driver.devices.get(n)!);
    expect(a.devSet).toBe(b.devSet);
    expect(a.devSet!.devices).toEqual([a, b]);
    expect(c.devSet!.devices).toEqual([c]);
    expect(host.vfio.findDeviceInDevSet(a.devSet!, b.dev)).toBe(b);
    expect(() => host.vfio.assignDeviceSet(c, null)).toThrow(expect.objectContaining({ errnoName: 'EINVAL' }));
  });

  it('registers only the interfaces the driver asks for', () => {
    const host = makeHost();
    host.drivers.registerPciDriver(fixtureDriver(host.vfio, { register: { group: false } }));
    host.addFunction('0000:00:01.0', 1);
    expect(host.system.devfs.list()).toEqual(['/dev/iommu', '/dev/vfio/devices/vfio0', '/dev/vfio/vfio']);
    const other = makeHost();
    other.drivers.registerPciDriver(fixtureDriver(other.vfio, { register: { cdev: false } }));
    other.addFunction('0000:00:01.0', 1);
    expect(other.system.devfs.list()).toEqual(['/dev/iommu', '/dev/vfio/1', '/dev/vfio/vfio']);
  });

  it('gives an emulated device a software group of its own, with an id no hardware group has', () => {
    const host = makeHost();
    host.addFunction('0000:00:01.0', 0, { vendorId: 0x15b3 });
    host.addFunction('0000:00:09.0', 2, { vendorId: 0x15b3 });
    const driver = fixtureDriver(host.vfio, { emulated: true, ops: emulatedIommufdOps(host.vfio.iommufdGlue) });
    host.drivers.registerPciDriver(driver);
    host.addFunction('0000:00:02.0', null);
    host.addFunction('0000:00:03.0', null);
    const vdevs = [...driver.devices.values()];
    expect(vdevs.map((d) => d.group!.name)).toEqual(['1', '3']);
    expect(vdevs.map((d) => d.group!.type)).toEqual(['emulated', 'emulated']);
  });
});

describe('auxiliary devices', () => {
  it('lets a vfio driver on the auxiliary bus register a parent driver\'s auxiliary device, and the parent\'s removal waits for its user', async () => {
    const host = makeHost();
    const children: AuxiliaryDevice[] = [];
    host.drivers.registerPciDriver({
      name: 'mlx5_core',
      idTable: [{ vendor: 0x15b3 }],
      probe(dev) {
        children.push(host.drivers.addAuxiliaryDevice(dev, 'mlx5_core', 'sf', 1));
      },
      async remove() {
        for (const child of children.splice(0)) await host.drivers.removeDevice(child);
      },
    });
    const events: string[] = [];
    let vdev: VfioDevice | null = null;
    const ops = {
      name: 'mlx5-vfio-sf',
      ...emulatedIommufdOps(host.vfio.iommufdGlue),
      openDevice: () => void events.push('open'),
      closeDevice: () => void events.push('close'),
      request: (_vdev: VfioDevice, count: number) => void events.push(`request ${count}`),
    };
    host.drivers.registerAuxiliaryDriver(
      {
        name: 'sf',
        driverManagedDma: true,
        idTable: [{ name: 'mlx5_core.sf' }],
        probe(adev) {
          vdev = new VfioDevice(adev, ops);
          host.vfio.registerEmulatedIommuDev(vdev);
        },
        remove: () => host.vfio.unregister(vdev!),
      },
      'mlx5_core',
    );
    const pf = host.addFunction('0000:03:00.0', 7, { vendorId: 0x15b3 });
    expect(children.map((c) => host.drivers.driverName(c))).toEqual(['mlx5_core.sf']);
    expect(vdev!.name).toBe('mlx5_core.sf.1');
    expect(vdev!.group!.type).toBe('emulated');
    expect(host.system.devfs.has(host.vfio.cdevPath(vdev!))).toBe(true);

    const { proc, va } = spawnWithScratch(host.system);
    const fd = proc.open(host.vfio.cdevPath(vdev!));
    proc.mem.write(va, vfio_device_bind_iommufd.encodeNew({ argsz: 24, iommufd: proc.open('/dev/iommu') }));
    expect(proc.ioctl(fd, VFIO_DEVICE_BIND_IOMMUFD, va)).toBe(0);
    let removed = false;
    const removing = host.drivers.unbind(pf, 'mlx5_core').then(() => {
      removed = true;
    });
    await settle();
    expect(removed).toBe(false);
    expect(events).toEqual(['open', 'request 0']);
    proc.close(fd);
    await removing;
    expect(events.at(-1)).toBe('close');
    expect(host.vfio.devices).toEqual([]);
    expect(host.drivers.findDevice('auxiliary', 'mlx5_core.sf.1')).toBeUndefined();
  });
});

describe('unregistering a device', () => {
  function setup() {
    const host = makeHost();
    const driver = fixtureDriver(host.vfio);
    host.drivers.registerPciDriver(driver);
    const fn = host.addFunction('0000:00:01.0', 1);
    const { proc, va } = spawnWithScratch(host.system);
    return { host, driver, fn, proc, va, vdev: driver.devices.get(fn.name)! };
  }

  it('finishes at once when no file is open', async () => {
    const { host, fn, vdev } = setup();
    await host.drivers.unbind(fn, 'vfio-fixture');
    expect(vdev.events).toEqual([]);
    expect(host.vfio.devices).toEqual([]);
  });

  it('waits for the last close, asking the driver to release the device every 10 virtual seconds', async () => {
    const { host, fn, proc, va, vdev } = setup();
    const deviceFd = openThroughContainer(host, proc, va, '1', fn.name);
    const cdevFd = proc.open('/dev/vfio/devices/vfio0');
    let done = false;
    const unbinding = host.drivers.unbind(fn, 'vfio-fixture').then(() => {
      done = true;
    });
    expect(vdev.events).toEqual(['open', 'request 0 at 0']);
    expect(host.system.devfs.has('/dev/vfio/devices/vfio0')).toBe(false);
    expect(proc.open('/dev/vfio/devices/vfio0')).toBe(-Errno.ENOENT);

    host.system.clock.advance(VFIO_UNREGISTER_REQUEST_INTERVAL_NS - 1n);
    expect(vdev.events.filter((e) => e.startsWith('request'))).toHaveLength(1);
    host.system.clock.advance(1n);
    host.system.clock.advance(15n * SECOND);
    expect(vdev.events.filter((e) => e.startsWith('request'))).toEqual(['request 0 at 0', 'request 1 at 10000000000', 'request 2 at 20000000000']);

    expect(proc.close(deviceFd)).toBe(0);
    await settle();
    expect(done).toBe(false);
    expect(proc.close(cdevFd)).toBe(0);
    host.system.clock.advance(10n * SECOND);
    await unbinding;
    expect(done).toBe(true);
    expect(vdev.events.filter((e) => e.startsWith('request'))).toHaveLength(3);
    expect(vdev.events.at(-1)).toBe('close');
    expect(host.drivers.driverName(fn)).toBeNull();
  });

  it('keeps new group opens of the device away while it waits', async () => {
    const { host, fn, proc, va } = setup();
    const groupFd = proc.open('/dev/vfio/1');
    const containerFd = proc.open('/dev/vfio/vfio');
    proc.mem.writeU32(va, containerFd);
    proc.ioctl(groupFd, VFIO_GROUP_SET_CONTAINER, va);
    proc.ioctl(containerFd, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU);
    writeString(proc, va, fn.name);
    const deviceFd = proc.ioctl(groupFd, VFIO_GROUP_GET_DEVICE_FD, va);
    const unbinding = host.drivers.unbind(fn, 'vfio-fixture');
    writeString(proc, va, fn.name);
    expect(proc.ioctl(groupFd, VFIO_GROUP_GET_DEVICE_FD, va)).toBe(-Errno.ENODEV);
    proc.close(deviceFd);
    await unbinding;
    proc.mem.write(va, vfio_group_status.encodeNew({ argsz: 8 }));
    expect(proc.ioctl(groupFd, VFIO_GROUP_GET_STATUS, va)).toBe(-Errno.ENODEV);
    proc.mem.writeU32(va, containerFd);
    expect(proc.ioctl(groupFd, VFIO_GROUP_SET_CONTAINER, va)).toBe(-Errno.ENODEV);
  });

  it('still lets a cdev file opened before unregister bind, and waits for it', async () => {
    const { host, fn, proc, va, vdev } = setup();
    const cdevFd = proc.open('/dev/vfio/devices/vfio0');
    let done = false;
    const unbinding = host.drivers.unbind(fn, 'vfio-fixture').then(() => {
      done = true;
    });
    const iommufd = proc.open('/dev/iommu');
    proc.mem.write(va, vfio_device_bind_iommufd.encodeNew({ argsz: 24, iommufd }));
    expect(proc.ioctl(cdevFd, VFIO_DEVICE_BIND_IOMMUFD, va)).toBe(0);
    expect(vdev.events).toEqual(['request 0 at 0', 'open']);
    await settle();
    expect(done).toBe(false);
    proc.close(cdevFd);
    await unbinding;
    expect(vdev.events.at(-1)).toBe('close');
  });
});

describe('the driver module', () => {
  it('cannot be unloaded while a device of the driver is open (EAGAIN, as delete_module), and can after the last close', async () => {
    const host = makeHost();
    const driver = fixtureDriver(host.vfio);
    host.drivers.registerPciDriver(driver);
    const fn = host.addFunction('0000:00:01.0', 1);
    const { proc, va } = spawnWithScratch(host.system);
    const fd = openThroughContainer(host, proc, va, '1', fn.name);
    expect(host.drivers.moduleOf(fn)!.refs).toBe(1);
    await expect(host.drivers.unregisterDriver(driver)).rejects.toMatchObject({ errnoName: 'EAGAIN' });
    expect(host.drivers.driverName(fn)).toBe('vfio-fixture');
    expect(host.vfio.devices).toHaveLength(1);
    proc.close(fd);
    expect(host.drivers.moduleOf(fn)!.refs).toBe(0);
    await host.drivers.unregisterDriver(driver);
    expect(host.drivers.driverName(fn)).toBeNull();
    expect(host.vfio.devices).toEqual([]);
  });
});

describe('noiommu mode', () => {
  function setup() {
    const host = makeHost({ noiommu: true });
    const driver = fixtureDriver(host.vfio);
    host.drivers.registerPciDriver(driver);
    host.addFunction('0000:00:01.0', 0);
    const fn = host.addFunction('0000:00:02.0', null);
    const { proc, va } = spawnWithScratch(host.system);
    return { host, driver, fn, proc, va };
  }

  it('names the group noiommu-<id> with an id beside the hardware groups, and gives it no cdev', () => {
    const { host, driver, fn } = setup();
    const vdev = driver.devices.get(fn.name)!;
    expect(vdev.group!.name).toBe('noiommu-1');
    expect(host.system.devfs.list()).toEqual(['/dev/iommu', '/dev/vfio/0', '/dev/vfio/devices/vfio0', '/dev/vfio/noiommu-1', '/dev/vfio/vfio']);
    expect(host.vfio.log.messages.some((m) => m.device === fn.name && m.text.includes('taint'))).toBe(true);
  });

  it('opens the device through a noiommu container, which maps nothing', () => {
    const { host, fn, proc, va } = setup();
    const groupFd = proc.open('/dev/vfio/noiommu-1');
    const containerFd = proc.open('/dev/vfio/vfio');
    proc.mem.writeU32(va, containerFd);
    expect(proc.ioctl(groupFd, VFIO_GROUP_SET_CONTAINER, va)).toBe(0);
    expect(proc.ioctl(containerFd, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU)).toBe(0);
    expect(proc.ioctl(containerFd, VFIO_CHECK_EXTENSION, VFIO_NOIOMMU_IOMMU)).toBe(1);
    expect(proc.ioctl(containerFd, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU)).toBe(-Errno.ENODEV);
    expect(proc.ioctl(containerFd, VFIO_SET_IOMMU, VFIO_NOIOMMU_IOMMU)).toBe(0);
    expect(proc.ioctl(containerFd, VFIO_IOMMU_MAP_DMA, va)).toBe(-Errno.ENOTTY);
    expect(proc.ioctl(containerFd, VFIO_CHECK_EXTENSION, VFIO_NOIOMMU_IOMMU)).toBe(1);
    writeString(proc, va, fn.name);
    expect(proc.ioctl(groupFd, VFIO_GROUP_GET_DEVICE_FD, va)).toBeGreaterThanOrEqual(0);
    expect(host.vfio.log.messages.at(-1)?.text).toContain('vfio-noiommu device opened by user');
    expect(host.type1.events).toEqual([]);
  });

  it('refuses to put a noiommu group and an IOMMU group in one container with EPERM', () => {
    const { proc, va } = setup();
    const containerFd = proc.open('/dev/vfio/vfio');
    const noiommu = proc.open('/dev/vfio/noiommu-1');
    const real = proc.open('/dev/vfio/0');
    proc.mem.writeU32(va, containerFd);
    expect(proc.ioctl(noiommu, VFIO_GROUP_SET_CONTAINER, va)).toBe(0);
    expect(proc.ioctl(real, VFIO_GROUP_SET_CONTAINER, va)).toBe(-Errno.EPERM);
  });

  it('refuses a noiommu group to a process without CAP_SYS_RAWIO with EPERM', () => {
    const { host, proc } = setup();
    host.vfio.capableRawio = () => false;
    expect(proc.open('/dev/vfio/noiommu-1')).toBe(-Errno.EPERM);
    expect(proc.open('/dev/vfio/0')).toBeGreaterThanOrEqual(0);
  });

  it('accepts an iommufd for the group only without a compat IOAS', () => {
    const { host, fn, proc, va } = setup();
    const groupFd = proc.open('/dev/vfio/noiommu-1');
    const iommufd = proc.open('/dev/iommu');
    host.iommufd.vfioCompatIoasCreate(host.iommufd.ctxOf(proc, iommufd));
    proc.mem.writeU32(va, iommufd);
    expect(proc.ioctl(groupFd, VFIO_GROUP_SET_CONTAINER, va)).toBe(-Errno.EINVAL);
    const plain = proc.open('/dev/iommu');
    proc.mem.writeU32(va, plain);
    expect(proc.ioctl(groupFd, VFIO_GROUP_SET_CONTAINER, va)).toBe(0);
    writeString(proc, va, fn.name);
    const deviceFd = proc.ioctl(groupFd, VFIO_GROUP_GET_DEVICE_FD, va);
    expect(deviceFd).toBeGreaterThanOrEqual(0);
    expect(host.iommufd.calls).toEqual([]);
  });

  it('answers EPERM to the device open when a compat IOAS appeared after SET_CONTAINER', () => {
    const { host, driver, fn, proc, va } = setup();
    const groupFd = proc.open('/dev/vfio/noiommu-1');
    const iommufd = proc.open('/dev/iommu');
    proc.mem.writeU32(va, iommufd);
    expect(proc.ioctl(groupFd, VFIO_GROUP_SET_CONTAINER, va)).toBe(0);
    host.iommufd.ctxOf(proc, iommufd).compatIoas = host.iommufd.allocIoas(proc, iommufd);
    writeString(proc, va, fn.name);
    expect(proc.ioctl(groupFd, VFIO_GROUP_GET_DEVICE_FD, va)).toBe(-Errno.EPERM);
    expect(driver.devices.get(fn.name)!.events).toEqual([]);
  });

  it('leaves devices without an IOMMU alone when the mode is off', () => {
    const host = makeHost();
    host.drivers.registerPciDriver(fixtureDriver(host.vfio));
    const fn = host.addFunction('0000:00:02.0', null);
    expect(host.drivers.driverName(fn)).toBeNull();
    host.vfio.noiommu = true;
    expect(host.drivers.probeDevice(fn)).toBe(true);
    expect(host.system.devfs.has('/dev/vfio/noiommu-0')).toBe(true);
  });
});
