import {
  SimError,
  VfioPciCoreDevice,
  isPciFunction,
  vfioPciCoreOps,
  vfioPciCoreRegisterDevice,
  vfioPciCoreUnregisterDevice,
  type Host,
  type PciBusDevice,
  type PciDeviceId,
  type PciDriver,
  type VfioDeviceOps,
  type VfioPciCoreParams,
  type VfioSimPlugin,
} from '@vfiosim/core';

/** vfio-pci's module parameters. */
export interface VfioPciOptions extends Partial<VfioPciCoreParams> {
  /**
   * ids=: extra devices vfio-pci binds without driver_override, as
   * "vendor:device" entries in the kernel's parameter.
   */
  readonly ids?: readonly PciDeviceId[];
  /** disable_denylist: also bind the devices vfio-pci normally refuses. */
  readonly disableDenylist?: boolean;
}

/**
 * Devices vfio-pci refuses to bind (vfio_pci_dev_in_denylist): Intel
 * QuickAssist C3xxx, C62x and DH895xCC PFs and VFs, whose errata make them
 * unsafe in untrusted hands.
 */
const DENYLIST: ReadonlyArray<readonly [number, number]> = [
  [0x8086, 0x19e2],
  [0x8086, 0x19e3],
  [0x8086, 0x37c8],
  [0x8086, 0x37c9],
  [0x8086, 0x0435],
  [0x8086, 0x0443],
];

/**
 * vfio-pci's ops table: vfio-pci-core's, under its own name. The plain
 * driver adds nothing; every behaviour is vfio-pci-core's (hooks stay
 * untapped).
 */
export const vfioPciOps: VfioDeviceOps<VfioPciCoreDevice> = Object.freeze({ ...vfioPciCoreOps, name: 'vfio-pci' });

/**
 * The vfio-pci PCI driver. Like the kernel's, its id table only matches a
 * device whose driver_override names it, unless `ids` adds devices; probe
 * wraps the function in a VfioPciCoreDevice and registers it with vfio.
 * A bus device that is not one of the platform's PCI functions has no
 * hardware for vfio-pci-core to drive: its probe fails with ENODEV.
 */
export function vfioPciDriver(host: Host, options: VfioPciOptions = {}): PciDriver {
  const devices = new Map<PciBusDevice, VfioPciCoreDevice>();
  const params: Partial<VfioPciCoreParams> = {
    ...(options.nointxmask !== undefined && { nointxmask: options.nointxmask }),
    ...(options.vga !== undefined && { vga: options.vga }),
    ...(options.disableIdleD3 !== undefined && { disableIdleD3: options.disableIdleD3 }),
  };
  return {
    name: 'vfio-pci',
    driverManagedDma: true,
    idTable: [{ overrideOnly: true }, ...(options.ids ?? [])],
    probe(pdev: PciBusDevice) {
      if (!isPciFunction(pdev)) throw new SimError('NO_SUCH_DEVICE', `${pdev.name} is not a PCI function of this host`);
      if (!options.disableDenylist && DENYLIST.some(([vendor, device]) => pdev.vendorId === vendor && pdev.deviceId === device)) {
        throw new SimError('INVALID_ARGUMENT', `${pdev.name} is on vfio-pci's denylist`);
      }
      const vdev = new VfioPciCoreDevice(pdev, vfioPciOps, { params });
      vfioPciCoreRegisterDevice(vdev, host.vfio);
      devices.set(pdev, vdev);
    },
    async remove(dev: PciBusDevice) {
      const vdev = devices.get(dev);
      if (!vdev) return;
      devices.delete(dev);
      await vfioPciCoreUnregisterDevice(vdev, host.vfio);
    },
  };
}

/**
 * The vfio-pci plugin: registers the vfio-pci PCI driver on the host. Bind
 * a device to it with driver_override ("driver": "vfio-pci" in the host
 * description, or DriverCore.setDriverOverride and a probe).
 */
export function vfioPci(options: VfioPciOptions = {}): VfioSimPlugin {
  return Object.freeze({
    name: 'vfio-pci',
    apply(host: Host) {
      host.drivers.registerPciDriver(vfioPciDriver(host, options));
    },
  });
}
