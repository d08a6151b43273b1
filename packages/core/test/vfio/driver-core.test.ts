import { describe, expect, it } from 'vitest';
import {
  DriverCore,
  IommuCore,
  KernelModule,
  PCI_ANY_ID,
  SimError,
  System,
  createMockIommuDriver,
  pciIdMatches,
  type AuxiliaryDevice,
  type AuxiliaryDriver,
  type BusDevice,
  type PciBusDevice,
  type PciDriver,
} from '@vfiosim/core';
import { pciFunction } from './harness.js';

function makeCore() {
  const system = new System();
  const iommu = new IommuCore();
  iommu.registerDriver(createMockIommuDriver({ physMem: system.physMem }));
  return { iommu, drivers: new DriverCore(iommu) };
}

function recordingDriver(name: string, idTable: PciDriver['idTable'], options: Partial<PciDriver> = {}): PciDriver & { log: string[] } {
  const log: string[] = [];
  return {
    name,
    idTable,
    driverManagedDma: true,
    log,
    probe(dev, id) {
      log.push(`probe ${dev.name} ${JSON.stringify(id)}`);
    },
    remove(dev) {
      log.push(`remove ${dev.name}`);
    },
    ...options,
  };
}

function errnoOf(body: () => unknown): string | undefined {
  try {
    body();
    return undefined;
  } catch (error) {
    if (error instanceof SimError) return error.errnoName;
    throw error;
  }
}

describe('PCI id matching', () => {
  const dev: PciBusDevice = { ...pciFunction('0000:01:00.0'), vendorId: 0x15b3, deviceId: 0x101e, subsystemVendorId: 0x15b3, subsystemId: 0x0042, classCode: 0x020000 };

  it('treats omitted fields and PCI_ANY_ID as wildcards', () => {
    expect(pciIdMatches({ vendor: 0x15b3 }, dev)).toBe(true);
    expect(pciIdMatches({ vendor: 0x15b3, device: PCI_ANY_ID, subvendor: PCI_ANY_ID }, dev)).toBe(true);
    expect(pciIdMatches({ vendor: 0x8086 }, dev)).toBe(false);
    expect(pciIdMatches({ vendor: 0x15b3, subdevice: 0x43 }, dev)).toBe(false);
  });

  it('compares the class under the mask', () => {
    expect(pciIdMatches({ class: 0x020000, classMask: 0xff0000 }, dev)).toBe(true);
    expect(pciIdMatches({ class: 0x030000, classMask: 0xff0000 }, dev)).toBe(false);
    expect(pciIdMatches({ class: 0x030000, classMask: 0 }, dev)).toBe(true);
  });
});

describe('the driver core', () => {
  it('probes a new device with the first matching driver in registration order', () => {
    const { drivers } = makeCore();
    const a = recordingDriver('a', [{ vendor: 0x1af4 }]);
    const b = recordingDriver('b', [{ vendor: 0x8086, device: 0x1234 }]);
    const c = recordingDriver('c', [{ vendor: 0x8086 }]);
    drivers.registerPciDriver(a);
    drivers.registerPciDriver(b);
    drivers.registerPciDriver(c);
    const fn = pciFunction('0000:00:01.0');
    drivers.addPciDevice(fn);
    expect(drivers.driverName(fn)).toBe('b');
    expect(b.log).toEqual([`probe ${fn.name} {"vendor":32902,"device":4660}`]);
    expect(c.log).toEqual([]);
  });

  it('probes every unbound matching device when a driver registers', () => {
    const { drivers } = makeCore();
    const bound = pciFunction('0000:00:01.0');
    const free = pciFunction('0000:00:02.0', { deviceId: 0x5678 });
    const other = pciFunction('0000:00:03.0', { vendorId: 0x1af4 });
    drivers.registerPciDriver(recordingDriver('first', [{ vendor: 0x8086, device: 0x1234 }]));
    drivers.addPciDevice(bound);
    drivers.addPciDevice(free);
    drivers.addPciDevice(other);
    expect(drivers.driverName(free)).toBeNull();
    drivers.registerPciDriver(recordingDriver('late', [{ vendor: 0x8086 }, { vendor: 0x1af4 }]));
    expect([bound, free, other].map((fn) => drivers.driverName(fn))).toEqual(['first', 'late', 'late']);
  });

  it('moves on to the next driver when a probe fails, and logs the failure', () => {
    const { drivers } = makeCore();
    drivers.registerPciDriver(
      recordingDriver('picky', [{ vendor: 0x8086 }], {
        probe() {
          throw new SimError('NO_DEVICE', 'not this one');
        },
      }),
    );
    drivers.registerPciDriver(recordingDriver('fallback', [{ vendor: 0x8086 }]));
    const fn = pciFunction('0000:00:01.0');
    drivers.addPciDevice(fn);
    expect(drivers.driverName(fn)).toBe('fallback');
    expect(drivers.log.messages).toEqual([{ level: 'warn', device: fn.name, text: 'picky: probe failed with error -19' }]);
  });

  it('refuses a second driver of the same name with EBUSY', () => {
    const { drivers } = makeCore();
    drivers.registerPciDriver(recordingDriver('dup', []));
    expect(errnoOf(() => drivers.registerPciDriver(recordingDriver('dup', [])))).toBe('EBUSY');
    expect(drivers.log.messages.at(-1)?.level).toBe('err');
  });

  it('refuses a second device of the same name with EEXIST', () => {
    const { drivers } = makeCore();
    drivers.addPciDevice(pciFunction('0000:00:01.0'));
    expect(errnoOf(() => drivers.addPciDevice(pciFunction('0000:00:01.0')))).toBe('EEXIST');
  });

  describe('driver_override', () => {
    it('makes only the named driver match, through its table or the catch-all id', () => {
      const { drivers } = makeCore();
      const nic = recordingDriver('e1000e', [{ vendor: 0x8086 }]);
      const vfio = recordingDriver('vfio-pci', []);
      drivers.registerPciDriver(nic);
      drivers.registerPciDriver(vfio);
      const fn = pciFunction('0000:00:01.0');
      drivers.addPciDevice(fn);
      expect(drivers.driverName(fn)).toBe('e1000e');
      drivers.setDriverOverride(fn, 'vfio-pci');
      expect(drivers.driverName(fn)).toBe('e1000e');
      return drivers.unbind(fn, 'e1000e').then(() => {
        expect(drivers.probeDevice(fn)).toBe(true);
        expect(drivers.driverName(fn)).toBe('vfio-pci');
        expect(vfio.log).toEqual([`probe ${fn.name} {"vendor":4294967295,"device":4294967295,"subvendor":4294967295,"subdevice":4294967295}`]);
      });
    });

    it('keeps every other driver away, even one whose table matches', async () => {
      const { drivers } = makeCore();
      const fn = pciFunction('0000:00:01.0');
      drivers.addPciDevice(fn);
      drivers.setDriverOverride(fn, 'nobody');
      drivers.registerPciDriver(recordingDriver('e1000e', [{ vendor: 0x8086 }]));
      expect(drivers.driverName(fn)).toBeNull();
      expect(errnoOf(() => drivers.bind(fn, 'e1000e'))).toBe('ENODEV');
      drivers.setDriverOverride(fn, '');
      expect(drivers.driverOverride(fn)).toBeNull();
      expect(drivers.probeDevice(fn)).toBe(true);
    });

    it('can be set when the device is added, before any driver probes it', () => {
      const { drivers } = makeCore();
      drivers.registerPciDriver(recordingDriver('e1000e', [{ vendor: 0x8086 }]));
      drivers.registerPciDriver(recordingDriver('vfio-pci', []));
      const fn = pciFunction('0000:00:01.0');
      drivers.addPciDevice(fn, 'vfio-pci');
      expect(drivers.driverName(fn)).toBe('vfio-pci');
      expect(drivers.driverOverride(fn)).toBe('vfio-pci');
    });

    it('lets override-only id entries match only through driver_override', () => {
      const { drivers } = makeCore();
      const variant = recordingDriver('mlx5-vfio-pci', [{ vendor: 0x8086, device: 0x1234, overrideOnly: true }]);
      drivers.registerPciDriver(variant);
      const fn = pciFunction('0000:00:01.0');
      drivers.addPciDevice(fn);
      expect(drivers.driverName(fn)).toBeNull();
      drivers.setDriverOverride(fn, 'mlx5-vfio-pci');
      expect(drivers.probeDevice(fn)).toBe(true);
      expect(variant.log).toEqual([`probe ${fn.name} {"vendor":32902,"device":4660,"overrideOnly":true}`]);
    });
  });

  describe('bind and unbind', () => {
    it('answers ENODEV for an unknown driver or one that does not match', () => {
      const { drivers } = makeCore();
      const fn = pciFunction('0000:00:01.0');
      drivers.addPciDevice(fn);
      drivers.registerPciDriver(recordingDriver('virtio-pci', [{ vendor: 0x1af4 }]));
      expect(errnoOf(() => drivers.bind(fn, 'nope'))).toBe('ENODEV');
      expect(errnoOf(() => drivers.bind(fn, 'virtio-pci'))).toBe('ENODEV');
    });

    it('answers EBUSY when the device already has a driver', () => {
      const { drivers } = makeCore();
      drivers.registerPciDriver(recordingDriver('a', [{ vendor: 0x8086 }]));
      drivers.registerPciDriver(recordingDriver('b', [{ vendor: 0x8086 }]));
      const fn = pciFunction('0000:00:01.0');
      drivers.addPciDevice(fn);
      expect(errnoOf(() => drivers.bind(fn, 'b'))).toBe('EBUSY');
    });

    it('returns the probe error of an explicit bind and leaves the device unbound', () => {
      const { drivers } = makeCore();
      const fn = pciFunction('0000:00:01.0');
      drivers.addPciDevice(fn);
      drivers.registerPciDriver(
        recordingDriver('broken', [{ vendor: 0x1af4 }], {
          probe() {
            throw new SimError('IO_ERROR', 'hardware did not answer');
          },
        }),
      );
      drivers.setDriverOverride(fn, 'broken');
      expect(errnoOf(() => drivers.bind(fn, 'broken'))).toBe('EIO');
      expect(drivers.driverName(fn)).toBeNull();
    });

    it('answers ENODEV to unbind from a driver the device is not bound to', async () => {
      const { drivers } = makeCore();
      const a = recordingDriver('a', [{ vendor: 0x8086 }]);
      drivers.registerPciDriver(a);
      const fn = pciFunction('0000:00:01.0');
      drivers.addPciDevice(fn);
      await expect(drivers.unbind(fn, 'b')).rejects.toMatchObject({ errnoName: 'ENODEV' });
      await drivers.unbind(fn, 'a');
      expect(a.log.at(-1)).toBe(`remove ${fn.name}`);
      expect(drivers.driverName(fn)).toBeNull();
    });

    it('answers ENODEV for a device the driver core does not know', () => {
      const { drivers } = makeCore();
      expect(errnoOf(() => drivers.bind(pciFunction('0000:09:00.0'), 'a'))).toBe('ENODEV');
    });
  });

  describe('DMA ownership at probe', () => {
    it('makes a DMA-API driver a default-domain user of the group, and releases it on unbind', async () => {
      const { iommu, drivers } = makeCore();
      const fn = pciFunction('0000:00:01.0');
      iommu.probeDevice(fn, 3);
      drivers.registerPciDriver(recordingDriver('e1000e', [{ vendor: 0x8086 }], { driverManagedDma: false }));
      drivers.addPciDevice(fn);
      expect(iommu.dmaOwnerClaimed(3)).toBe(true);
      await drivers.unbind(fn, 'e1000e');
      expect(iommu.dmaOwnerClaimed(3)).toBe(false);
    });

    it('leaves the group unclaimed for a driver that manages DMA itself', () => {
      const { iommu, drivers } = makeCore();
      const fn = pciFunction('0000:00:01.0');
      iommu.probeDevice(fn, 3);
      drivers.registerPciDriver(recordingDriver('vfio-pci', [{ vendor: 0x8086 }]));
      drivers.addPciDevice(fn);
      expect(drivers.driverName(fn)).toBe('vfio-pci');
      expect(iommu.dmaOwnerClaimed(3)).toBe(false);
    });

    it('answers EBUSY to binding a DMA-API driver into a group userspace owns', () => {
      const { iommu, drivers } = makeCore();
      const fn = pciFunction('0000:00:01.0');
      iommu.probeDevice(fn, 3);
      drivers.addPciDevice(fn);
      iommu.claimDmaOwner(3, {});
      drivers.registerPciDriver(recordingDriver('e1000e', [{ vendor: 0x8086 }], { driverManagedDma: false }));
      expect(drivers.driverName(fn)).toBeNull();
      expect(errnoOf(() => drivers.bind(fn, 'e1000e'))).toBe('EBUSY');
    });
  });

  describe('modules', () => {
    it('answers EAGAIN to unloading a module with references, and unloads it without', async () => {
      const { drivers } = makeCore();
      const module = new KernelModule('vfio_pci');
      const driver = recordingDriver('vfio-pci', [{ vendor: 0x8086 }], { module });
      drivers.registerPciDriver(driver);
      const fn = pciFunction('0000:00:01.0');
      drivers.addPciDevice(fn);
      expect(drivers.moduleOf(fn)).toBe(module);
      expect(module.tryGet()).toBe(true);
      await expect(drivers.unregisterDriver(driver)).rejects.toMatchObject({ errnoName: 'EAGAIN' });
      expect(drivers.driverName(fn)).toBe('vfio-pci');
      module.put();
      await drivers.unregisterDriver(driver);
      expect(driver.log.at(-1)).toBe(`remove ${fn.name}`);
      expect(module.tryGet()).toBe(false);
      await expect(drivers.unregisterDriver(driver)).rejects.toMatchObject({ errnoName: 'ENODEV' });
    });
  });
});

describe('the auxiliary bus', () => {
  function setup() {
    const { drivers } = makeCore();
    const children: AuxiliaryDevice[] = [];
    const pf = pciFunction('0000:03:00.0', { vendorId: 0x15b3 });
    const core: PciDriver = {
      name: 'mlx5_core',
      idTable: [{ vendor: 0x15b3 }],
      probe(dev) {
        children.push(drivers.addAuxiliaryDevice(dev, 'mlx5_core', 'sf', 1));
        children.push(drivers.addAuxiliaryDevice(dev, 'mlx5_core', 'eth', 0));
      },
      async remove() {
        for (const child of children.splice(0)) await drivers.removeDevice(child);
      },
    };
    return { drivers, pf, core, children };
  }

  function auxDriver(name: string, ids: string[], log: string[]): AuxiliaryDriver {
    return {
      name,
      idTable: ids.map((id) => ({ name: id })),
      probe(adev: AuxiliaryDevice) {
        log.push(`${name} probe ${adev.name} parent ${adev.parent.name}`);
      },
      remove(adev: AuxiliaryDevice) {
        log.push(`${name} remove ${adev.name}`);
      },
    };
  }

  it('names devices <modname>.<devname>.<id> and binds drivers by the name before the last dot', async () => {
    const { drivers, pf, core, children } = setup();
    const log: string[] = [];
    drivers.registerAuxiliaryDriver(auxDriver('sf', ['mlx5_core.sf'], log), 'mlx5_core');
    drivers.registerPciDriver(core);
    drivers.addPciDevice(pf);
    expect(children.map((c) => c.name)).toEqual(['mlx5_core.sf.1', 'mlx5_core.eth.0']);
    expect(log).toEqual([`sf probe mlx5_core.sf.1 parent ${pf.name}`]);
    expect(drivers.driverName(children[0]!)).toBe('mlx5_core.sf');
    expect(drivers.findDevice('auxiliary', 'mlx5_core.eth.0')).toBe(children[1]);

    drivers.registerAuxiliaryDriver(auxDriver('eth', ['mlx5_core.eth'], log), 'mlx5_core');
    expect(log.at(-1)).toBe('eth probe mlx5_core.eth.0 parent 0000:03:00.0');

    const sf = children[0]!;
    await drivers.unbind(pf, 'mlx5_core');
    expect(log.slice(-2)).toEqual(['sf remove mlx5_core.sf.1', 'eth remove mlx5_core.eth.0']);
    expect(drivers.findDevice('auxiliary', sf.name)).toBeUndefined();
  });

  it('answers EINVAL for an auxiliary device whose parent has no driver, or without a name', () => {
    const { drivers, pf } = setup();
    drivers.addPciDevice(pf);
    expect(errnoOf(() => drivers.addAuxiliaryDevice(pf, 'mlx5_core', 'sf', 1))).toBe('EINVAL');
    const unknown: BusDevice = { name: 'nowhere' };
    expect(errnoOf(() => drivers.addAuxiliaryDevice(unknown, 'mlx5_core', 'sf', 1))).toBe('EINVAL');
  });

  it('answers EEXIST for a second auxiliary device of the same name', () => {
    const { drivers, pf, core } = setup();
    drivers.registerPciDriver(core);
    drivers.addPciDevice(pf);
    expect(errnoOf(() => drivers.addAuxiliaryDevice(pf, 'mlx5_core', 'sf', 1))).toBe('EEXIST');
  });

  it('answers EINVAL for an auxiliary driver without probe or remove', () => {
    const { drivers } = setup();
    expect(errnoOf(() => drivers.registerAuxiliaryDriver({ name: 'x', idTable: [] } as never, 'mod'))).toBe('EINVAL');
  });
});
