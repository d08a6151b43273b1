import { inject, injectable } from 'tsyringe';
import { SimError } from '../errors/index.js';
import type { IommuCore } from '../iommu/iommu-core.js';
import { IOMMU_CORE } from '../tokens.js';
import { AuxiliaryDevice, auxiliaryMatchId, type AuxiliaryDeviceId } from './auxiliary-device.js';
import { KernelLog } from './kernel-log.js';
import { KernelModule } from './kernel-module.js';
import { pciMatchDevice, type PciBusDevice, type PciDeviceId } from './pci-device-id.js';
import { iommuClientOf, type BusDevice } from './vfio-device.js';

/**
 * A driver of the model's driver core (struct device_driver with its bus's
 * wrapper). `probe` runs with the device already marked as bound to the
 * driver, as really_probe() sets dev->driver first; throwing fails the
 * probe and undoes the binding. `remove` may wait (vfio-pci's remove waits
 * in vfio_unregister_group_dev until userspace closes the device).
 */
export interface DeviceDriver<D extends BusDevice, I> {
  readonly name: string;
  /** The module that owns the driver; one of its own, named after the driver, if omitted. */
  readonly module?: KernelModule;
  /**
   * driver_managed_dma: the driver does not use the DMA API and manages the
   * IOMMU itself (vfio drivers, and the PCI stub). Every other driver makes
   * its device a default-domain user of its IOMMU group at probe, which is
   * what makes a vfio group non-viable.
   */
  readonly driverManagedDma?: boolean;
  readonly idTable: readonly I[];
  probe(dev: D, id: I): void;
  remove(dev: D): void | Promise<void>;
}

export type PciDriver = DeviceDriver<PciBusDevice, PciDeviceId>;
export type AuxiliaryDriver = DeviceDriver<AuxiliaryDevice, AuxiliaryDeviceId>;

type Bus = 'pci' | 'auxiliary';
type AnyDriver = DeviceDriver<any, any>;

interface DriverRecord {
  readonly bus: Bus;
  /** The name the driver has on its bus (auxiliary drivers are "<modname>.<name>"). */
  readonly name: string;
  readonly driver: AnyDriver;
  readonly module: KernelModule;
  readonly devices: Set<BusDevice>;
}

interface DeviceRecord {
  readonly dev: BusDevice;
  readonly bus: Bus;
  driver: DriverRecord | null;
  driverOverride: string | null;
  /** Took a default-domain user at probe (a DMA-API driver is bound). */
  usesDefaultDomain: boolean;
  /** Bound driver's remove is running; the device takes no new binding until it ends. */
  unbinding: boolean;
}

/**
 * The Linux driver core for the PCI and auxiliary buses
 * (drivers/base/dd.c, bus.c, auxiliary.c, drivers/pci/pci-driver.c):
 * devices and drivers meet by id table or driver_override, a new driver
 * probes every unbound device it matches, a new device tries every driver
 * in registration order, and sysfs bind/unbind/drivers_probe are methods.
 *
 * Errnos follow the sysfs files: bind answers ENODEV when the device or a
 * match is missing and EBUSY when the device already has a driver; probe
 * errors reach the caller of bind and are swallowed by automatic probing,
 * which moves on to the next driver.
 */
@injectable()
export class DriverCore {
  readonly #devices = new Map<BusDevice, DeviceRecord>();
  readonly #byName = new Map<string, BusDevice>();
  readonly #drivers: DriverRecord[] = [];
  /** What the driver core logged (probe failures, duplicate registrations). */
  readonly log = new KernelLog();

  constructor(@inject(IOMMU_CORE) private readonly iommu: IommuCore) {}

  // ------------------------------------------------------------ devices

  /**
   * device_add + bus_probe_device for a PCI function. `driverOverride` is
   * written before the first probe, as a boot-time setting (udev rule,
   * driverctl) would, so only that driver can take the device.
   */
  addPciDevice(dev: PciBusDevice, driverOverride: string | null = null): void {
    this.#addDevice(dev, 'pci', driverOverride);
  }

  /**
   * auxiliary_device_init + auxiliary_device_add: the parent's driver
   * publishes "<modname>.<devname>.<id>". EINVAL without a bound parent,
   * EEXIST if the name is taken.
   */
  addAuxiliaryDevice(parent: BusDevice, modname: string, devname: string, id: number): AuxiliaryDevice {
    const parentRecord = this.#devices.get(parent);
    if (!parentRecord?.driver) {
      throw new SimError('INVALID_ARGUMENT', `auxiliary device ${modname}.${devname}.${id}: parent ${parent.name} has no driver`);
    }
    if (!devname || !Number.isInteger(id) || id < 0) {
      throw new SimError('INVALID_ARGUMENT', `auxiliary device ${modname}.${devname}.${id}: needs a name and an id`);
    }
    const adev = new AuxiliaryDevice(parent, modname, devname, id);
    this.#addDevice(adev, 'auxiliary', null);
    return adev;
  }

  /** device_del: unbinds the device (waiting for its driver's remove) and forgets it. */
  async removeDevice(dev: BusDevice): Promise<void> {
    const record = this.#record(dev);
    if (record.driver) await this.#release(record);
    this.#devices.delete(dev);
    this.#byName.delete(this.#key(record.bus, dev.name));
  }

  /** The device of that bus and name (bus_find_device_by_name), if present. */
  findDevice(bus: Bus, name: string): BusDevice | undefined {
    return this.#byName.get(this.#key(bus, name));
  }

  /** The driver bound to the device, or null (no driver). */
  driverOf(dev: BusDevice): AnyDriver | null {
    return this.#devices.get(dev)?.driver?.driver ?? null;
  }

  /** The bound driver's name as sysfs shows it under driver/, or null. */
  driverName(dev: BusDevice): string | null {
    return this.#devices.get(dev)?.driver?.name ?? null;
  }

  /** The module of the bound driver (device->dev->driver->owner), or null. */
  moduleOf(dev: BusDevice): KernelModule | null {
    return this.#devices.get(dev)?.driver?.module ?? null;
  }

  driverOverride(dev: BusDevice): string | null {
    return this.#record(dev).driverOverride;
  }

  /**
   * Writes driver_override (null or "" clears it). Only the named driver can
   * then match the device; the current binding is left alone, as in Linux,
   * until the device is unbound and probed again.
   */
  setDriverOverride(dev: BusDevice, driverName: string | null): void {
    this.#record(dev).driverOverride = driverName === '' ? null : driverName;
  }

  // ------------------------------------------------------------ drivers

  /** The registered driver of that bus and name (its sysfs directory under /sys/bus/<bus>/drivers), if any. */
  findDriver(bus: Bus, name: string): AnyDriver | undefined {
    return this.#drivers.find((r) => r.bus === bus && r.name === name)?.driver;
  }

  /** pci_register_driver: EBUSY if a PCI driver of that name exists; then probes every unbound match. */
  registerPciDriver(driver: PciDriver): void {
    this.#registerDriver('pci', driver.name, driver);
  }

  /**
   * auxiliary_driver_register: the driver's bus name is "<modname>.<name>"
   * (or just the module name without one). EINVAL without probe or remove.
   */
  registerAuxiliaryDriver(driver: AuxiliaryDriver, modname: string): void {
    if (typeof driver.probe !== 'function' || typeof driver.remove !== 'function') {
      throw new SimError('INVALID_ARGUMENT', `auxiliary driver ${driver.name} needs probe and remove`);
    }
    this.#registerDriver('auxiliary', driver.name ? `${modname}.${driver.name}` : modname, driver);
  }

  /**
   * Unloads the driver's module (rmmod): every device it drives is removed
   * first. While the vfio core holds a reference on the module (a device
   * of the driver is open), this fails and nothing changes, as
   * delete_module(2) refuses a module in use with EWOULDBLOCK (EAGAIN;
   * rmmod prints "Module ... is in use"). ENODEV for a driver not registered.
   */
  async unregisterDriver(driver: AnyDriver): Promise<void> {
    const record = this.#drivers.find((r) => r.driver === driver);
    if (!record) throw new SimError('NO_SUCH_DEVICE', `driver ${driver.name} is not registered`);
    if (record.module.refs > 0) {
      throw new SimError('MODULE_IN_USE', `module ${record.module.name} is in use (${record.module.refs} references)`);
    }
    record.module.beginUnload();
    for (const dev of [...record.devices]) await this.#release(this.#record(dev));
    this.#drivers.splice(this.#drivers.indexOf(record), 1);
  }

  // ------------------------------------------------------------ sysfs-style binding

  /**
   * echo <dev> > /sys/bus/<bus>/drivers/<driver>/bind. ENODEV if the driver
   * is unknown or does not match the device, EBUSY if the device has a
   * driver, else the probe's own error.
   */
  bind(dev: BusDevice, driverName: string): void {
    const record = this.#record(dev);
    const driver = this.#drivers.find((r) => r.bus === record.bus && r.name === driverName);
    const id = driver ? this.#match(driver, record) : null;
    if (!driver || id === null) {
      throw new SimError('NO_SUCH_DEVICE', `driver ${driverName} does not match ${dev.name}`);
    }
    if (record.driver || record.unbinding) throw new SimError('BUSY', `${dev.name} is bound to ${record.driver?.name ?? 'a driver being removed'}`);
    this.#probe(driver, record, id);
  }

  /** echo <dev> > /sys/bus/<bus>/drivers/<driver>/unbind: ENODEV unless bound to that driver. */
  async unbind(dev: BusDevice, driverName: string): Promise<void> {
    const record = this.#record(dev);
    if (record.driver?.name !== driverName || record.unbinding) {
      throw new SimError('NO_SUCH_DEVICE', `${dev.name} is not bound to ${driverName}`);
    }
    await this.#release(record);
  }

  /**
   * echo <dev> > /sys/bus/<bus>/drivers_probe: tries every driver in
   * registration order if the device has none. True if one bound.
   */
  probeDevice(dev: BusDevice): boolean {
    const record = this.#record(dev);
    if (record.driver || record.unbinding) return record.driver !== null;
    return this.#attach(record);
  }

  // ------------------------------------------------------------ internals

  #key(bus: string, name: string): string {
    return `${bus}/${name}`;
  }

  #record(dev: BusDevice): DeviceRecord {
    const record = this.#devices.get(dev);
    if (!record) throw new SimError('NO_SUCH_DEVICE', `device ${dev.name} is not registered with the driver core`);
    return record;
  }

  #addDevice(dev: BusDevice, bus: Bus, driverOverride: string | null): void {
    const key = this.#key(bus, dev.name);
    if (this.#byName.has(key) || this.#devices.has(dev)) {
      throw new SimError('EXISTS', `${bus} device ${dev.name} already exists`);
    }
    const record: DeviceRecord = { dev, bus, driver: null, driverOverride: driverOverride || null, usesDefaultDomain: false, unbinding: false };
    this.#devices.set(dev, record);
    this.#byName.set(key, dev);
    this.#attach(record);
  }

  #registerDriver(bus: Bus, name: string, driver: AnyDriver): void {
    if (this.#drivers.some((r) => r.bus === bus && r.name === name)) {
      this.log.err(null, `Error: Driver '${name}' is already registered, aborting...`);
      throw new SimError('BUSY', `${bus} driver ${name} is already registered`);
    }
    const record: DriverRecord = { bus, name, driver, module: driver.module ?? new KernelModule(name), devices: new Set() };
    this.#drivers.push(record);
    for (const dev of this.#devices.values()) {
      if (dev.bus !== bus || dev.driver || dev.unbinding) continue;
      const id = this.#match(record, dev);
      if (id === null) continue;
      this.#tryProbe(record, dev, id);
    }
  }

  #match(driver: DriverRecord, record: DeviceRecord): unknown {
    if (driver.bus !== record.bus) return null;
    if (driver.bus === 'pci') {
      return pciMatchDevice(driver.name, driver.driver.idTable as readonly PciDeviceId[], record.dev as PciBusDevice, record.driverOverride);
    }
    if (record.driverOverride !== null && record.driverOverride !== driver.name) return null;
    return auxiliaryMatchId(driver.driver.idTable as readonly AuxiliaryDeviceId[], record.dev as AuxiliaryDevice);
  }

  /** bus_probe_device / device_attach: the first driver whose probe succeeds keeps the device. */
  #attach(record: DeviceRecord): boolean {
    for (const driver of this.#drivers) {
      const id = this.#match(driver, record);
      if (id === null) continue;
      if (this.#tryProbe(driver, record, id)) return true;
    }
    return false;
  }

  #tryProbe(driver: DriverRecord, record: DeviceRecord, id: unknown): boolean {
    try {
      this.#probe(driver, record, id);
      return true;
    } catch (error) {
      if (!(error instanceof SimError)) throw error;
      this.log.warn(record.dev.name, `${driver.name}: probe failed with error -${error.errno}`);
      return false;
    }
  }

  /** really_probe: IOMMU default-domain use for DMA-API drivers, then the driver's probe; a failure undoes both. */
  #probe(driver: DriverRecord, record: DeviceRecord, id: unknown): void {
    const client = iommuClientOf(record.dev);
    const usesDefaultDomain = !driver.driver.driverManagedDma && client !== null;
    if (usesDefaultDomain) this.iommu.deviceUseDefaultDomain(client);
    record.driver = driver;
    record.usesDefaultDomain = usesDefaultDomain;
    driver.devices.add(record.dev);
    try {
      driver.driver.probe(record.dev, id);
    } catch (error) {
      driver.devices.delete(record.dev);
      record.driver = null;
      record.usesDefaultDomain = false;
      if (usesDefaultDomain) this.iommu.deviceUnuseDefaultDomain(client);
      throw error;
    }
  }

  /** __device_release_driver: the driver's remove, then the device is free again. */
  async #release(record: DeviceRecord): Promise<void> {
    const driver = record.driver;
    if (!driver) return;
    record.unbinding = true;
    try {
      await driver.driver.remove(record.dev);
    } finally {
      record.unbinding = false;
      driver.devices.delete(record.dev);
      record.driver = null;
      if (record.usesDefaultDomain) this.iommu.deviceUnuseDefaultDomain(iommuClientOf(record.dev)!);
      record.usesDefaultDomain = false;
    }
  }
}
