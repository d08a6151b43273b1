import {
  O_RDWR,
  VFIO_DEVICE_BIND_IOMMUFD,
  VFIO_DEVICE_GET_PCI_HOT_RESET_INFO,
  VFIO_DEVICE_PCI_HOT_RESET,
  VFIO_GROUP_GET_DEVICE_FD,
  VFIO_GROUP_SET_CONTAINER,
  VFIO_SET_IOMMU,
  VFIO_TYPE1v2_IOMMU,
  SimError,
  VfioPciCoreDevice,
  createHost,
  isPciFunction,
  mockIommu,
  s32,
  vfioPciCoreOps,
  vfioPciCoreRegisterDevice,
  vfioPciCoreUnregisterDevice,
  vfio_device_bind_iommufd,
  vfio_pci_dependent_device,
  vfio_pci_hot_reset,
  vfio_pci_hot_reset_info,
  type Host,
  type HostDescription,
  type PciDriver,
  type PciFunction,
  type Process,
  type VfioSimPlugin,
  type vfio_pci_dependent_device as DependentDevice,
} from '@vfiosim/core';

/*
 * Hosts and VMM-side helpers for the hot reset tests. Everything a test
 * does to a device goes through raw syscalls on a simulated process, the
 * way QEMU drives vfio.
 */

const nicFunction = (fn: number, extra: Record<string, unknown> = {}) => ({
  bdf: `0000:0a:00.${fn}`,
  label: `dual-port NIC port ${fn}`,
  vendorId: 0x8086,
  deviceId: 0x1521,
  classCode: 0x020000,
  multifunction: true,
  bars: [{ index: 0, type: 'mem64' as const, size: '64K' }],
  capabilities: { msix: { tableSize: 4, tableBar: 0, tableOffset: 0x8000, pbaBar: 0, pbaOffset: 0x9000 }, pcie: { flr: true } },
  extendedCapabilities: { acs: true, ats: true },
  ...extra,
});

/**
 * A two-function NIC (ACS on each function, so each is its own IOMMU group)
 * behind a root port with ACS and no hot-plug slot: a hot reset is a
 * secondary bus reset of bus 0a and reaches both functions.
 */
export const twoFunctionNic: HostDescription = {
  bridges: [{ bdf: '0000:00:1c.0', kind: 'root-port', secondaryBus: 0x0a, extendedCapabilities: { acs: true } }],
  devices: [nicFunction(0), nicFunction(1)],
};

/** The same NIC in a hot-plug slot of the root port: the hot reset is a slot reset. */
export const twoFunctionNicInSlot: HostDescription = {
  bridges: [{ bdf: '0000:00:1c.0', kind: 'root-port', secondaryBus: 0x0a, slot: { number: 3 }, extendedCapabilities: { acs: true } }],
  devices: [nicFunction(0), nicFunction(1)],
};

/**
 * The NIC without ACS on its functions: both share one IOMMU group (the
 * root port, with ACS, has its own).
 */
export const twoFunctionNicSharedGroup: HostDescription = {
  bridges: [{ bdf: '0000:00:1c.0', kind: 'root-port', secondaryBus: 0x0a, extendedCapabilities: { acs: true } }],
  devices: [0, 1].map((fn) => nicFunction(fn, { extendedCapabilities: { ats: true } })),
};

/** The NIC without FLR: only a bus reset can clean it, which vfio does when the last function closes. */
export const twoFunctionNicNoFlr: HostDescription = {
  bridges: [{ bdf: '0000:00:1c.0', kind: 'root-port', secondaryBus: 0x0a, extendedCapabilities: { acs: true } }],
  devices: [0, 1].map((fn) =>
    nicFunction(fn, { capabilities: { msix: { tableSize: 4, tableBar: 0, tableOffset: 0x8000, pbaBar: 0, pbaOffset: 0x9000 }, pcie: { flr: false } } }),
  ),
};

/** An integrated device on the root bus: no bridge above it, no slot, so no hot reset at all. */
export const rootBusDevice: HostDescription = {
  devices: [{ bdf: '0000:00:02.0', label: 'integrated controller', vendorId: 0x8086, deviceId: 0x1234, classCode: 0x020000, extendedCapabilities: { acs: true } }],
};

/** A single-function device behind a root port that no IOMMU translates for (noiommu mode only). */
export const noIommuDevice: HostDescription = {
  bridges: [{ bdf: '0000:00:1c.0', kind: 'root-port', secondaryBus: 0x0a, extendedCapabilities: { acs: true } }],
  devices: [{ ...nicFunction(0), multifunction: false, noIommu: true }],
};

export const FN0 = '0000:0a:00.0';
export const FN1 = '0000:0a:00.1';

/** 0000:0a:00.f as the dependent-device fields report it. */
export function location(fn: number): Pick<DependentDevice, 'segment' | 'bus' | 'devfn'> {
  return { segment: 0, bus: 0x0a, devfn: fn };
}

/** vfio-pci as a plugin: a PCI driver whose devices are plain vfio-pci-core devices. Binds only by driver_override. */
export function vfioPciPlugin(): VfioSimPlugin & { readonly devices: Map<string, VfioPciCoreDevice> } {
  const devices = new Map<string, VfioPciCoreDevice>();
  return {
    name: 'vfio-pci',
    dependsOn: ['mock-iommu'],
    devices,
    apply(host) {
      const ops = { ...vfioPciCoreOps, name: 'vfio-pci' };
      const driver: PciDriver = {
        name: 'vfio-pci',
        driverManagedDma: true,
        idTable: [],
        probe(dev) {
          if (!isPciFunction(dev)) throw new SimError('NO_SUCH_DEVICE', `${dev.name} is not a PCI function`);
          const vdev = new VfioPciCoreDevice(dev, ops);
          vfioPciCoreRegisterDevice(vdev, host.vfio);
          devices.set(dev.name, vdev);
        },
        async remove(dev) {
          await vfioPciCoreUnregisterDevice(devices.get(dev.name)!, host.vfio);
          devices.delete(dev.name);
        },
      };
      host.drivers.registerPciDriver(driver);
    },
  };
}

/** A host kernel NIC driver (uses the DMA API, not driver_managed_dma). */
export function hostNicDriver(): PciDriver {
  return { name: 'igb', idTable: [{ vendor: 0x8086, device: 0x1521 }], probe() {}, remove() {} };
}

export interface TestHost {
  readonly host: Host;
  readonly vfioPci: ReturnType<typeof vfioPciPlugin>;
  fn(bdf: string): PciFunction;
  vdev(bdf: string): VfioPciCoreDevice;
  groupId(bdf: string): number;
}

/**
 * A host booted from `description` with the mock IOMMU and vfio-pci; the
 * functions in `vfio` are bound to vfio-pci through driver_override, the
 * ones in `host` to the host NIC driver.
 */
export function makeHost(
  description: HostDescription,
  bind: { vfio?: readonly string[]; host?: readonly string[] } = { vfio: [FN0, FN1] },
  options: { noiommu?: boolean } = {},
): TestHost {
  const vfioPci = vfioPciPlugin();
  const host = createHost(description, { plugins: [mockIommu(), vfioPci], noiommu: options.noiommu ?? false });
  const fn = (bdf: string) => host.platform.get(bdf);
  for (const bdf of bind.vfio ?? []) host.drivers.setDriverOverride(fn(bdf), 'vfio-pci');
  for (const bdf of bind.host ?? []) host.drivers.setDriverOverride(fn(bdf), 'igb');
  if (bind.host?.length) host.drivers.registerPciDriver(hostNicDriver());
  for (const bdf of bind.vfio ?? []) host.drivers.bind(fn(bdf), 'vfio-pci');
  return {
    host,
    vfioPci,
    fn,
    vdev: (bdf) => {
      const vdev = vfioPci.devices.get(bdf);
      if (!vdev) throw new Error(`${bdf} is not bound to vfio-pci`);
      return vdev;
    },
    groupId: (bdf) => host.iommu.groupIdOf(fn(bdf)) ?? -1,
  };
}

/** A VMM process with scratch memory for ioctl arguments. */
export class Vmm {
  readonly proc: Process;
  readonly scratch: bigint;

  constructor(readonly host: Host) {
    this.proc = host.spawn();
    this.scratch = this.proc.mmap(16 * 4096);
    if (this.scratch < 0n) throw new Error(`mmap: ${this.scratch}`);
  }

  ok(rc: number, what: string): number {
    if (rc < 0) throw new Error(`${what} failed: ${rc}`);
    return rc;
  }

  write(offset: number, bytes: Uint8Array): bigint {
    const va = this.scratch + BigInt(offset);
    this.ok(this.proc.mem.write(va, bytes), 'scratch write');
    return va;
  }

  read(offset: number, length: number): Uint8Array {
    const bytes = this.proc.mem.read(this.scratch + BigInt(offset), length);
    if (typeof bytes === 'number') throw new Error(`scratch read failed: ${bytes}`);
    return bytes;
  }

  /** A type1 container with the groups of `bdfs` in it; returns the device fds and the group fds. */
  openGroups(t: TestHost, bdfs: readonly string[], iommuType: number = VFIO_TYPE1v2_IOMMU): { devices: number[]; groups: number[]; container: number } {
    const container = this.ok(this.proc.open('/dev/vfio/vfio', O_RDWR), 'open container');
    const groups: number[] = [];
    for (const bdf of bdfs) {
      const path = `/dev/vfio/${t.vdev(bdf).group!.name}`;
      const fd = this.ok(this.proc.open(path, O_RDWR), `open ${path}`);
      const fdBytes = new Uint8Array(4);
      s32.write(fdBytes, 0, container);
      this.ok(this.proc.ioctl(fd, VFIO_GROUP_SET_CONTAINER, this.write(0, fdBytes)), 'SET_CONTAINER');
      if (groups.length === 0) this.ok(this.proc.ioctl(container, VFIO_SET_IOMMU, BigInt(iommuType)), 'SET_IOMMU');
      groups.push(fd);
    }
    const devices = bdfs.map((bdf, i) => {
      const name = this.write(0, new TextEncoder().encode(`${bdf}\0`));
      return this.ok(this.proc.ioctl(groups[i]!, VFIO_GROUP_GET_DEVICE_FD, name), `GET_DEVICE_FD ${bdf}`);
    });
    return { devices, groups, container };
  }

  /** /dev/iommu, opened once per call. */
  openIommufd(): number {
    return this.ok(this.proc.open('/dev/iommu', O_RDWR), 'open /dev/iommu');
  }

  /** Opens the device's cdev and binds it to `iommufd`; returns the device fd and its devid. */
  openCdev(t: TestHost, bdf: string, iommufd: number): { fd: number; devid: number } {
    const path = t.host.vfio.cdevPath(t.vdev(bdf));
    const fd = this.ok(this.proc.open(path, O_RDWR), `open ${path}`);
    const argp = this.write(0, vfio_device_bind_iommufd.encodeNew({ argsz: vfio_device_bind_iommufd.size, flags: 0, iommufd }));
    this.ok(this.proc.ioctl(fd, VFIO_DEVICE_BIND_IOMMUFD, argp), `BIND_IOMMUFD ${bdf}`);
    const devid = vfio_device_bind_iommufd.decode(this.read(0, vfio_device_bind_iommufd.size)).out_devid;
    return { fd, devid };
  }

  /** VFIO_DEVICE_GET_PCI_HOT_RESET_INFO with `argsz` (room for `room` entries by default). */
  hotResetInfo(deviceFd: number, room = 8, argsz = vfio_pci_hot_reset_info.size + room * vfio_pci_dependent_device.size) {
    const at = 1024;
    const fill = new Uint8Array(vfio_pci_hot_reset_info.size + room * vfio_pci_dependent_device.size).fill(0xee);
    fill.set(vfio_pci_hot_reset_info.encodeNew({ argsz, flags: 0, count: 0 }));
    const argp = this.write(at, fill);
    const rc = this.proc.ioctl(deviceFd, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, argp);
    const header = vfio_pci_hot_reset_info.decode(this.read(at, vfio_pci_hot_reset_info.size));
    const raw = this.read(at + vfio_pci_hot_reset_info.size, room * vfio_pci_dependent_device.size);
    const devices = Array.from({ length: Math.min(room, rc === 0 ? header.count : 0) }, (_, i) =>
      vfio_pci_dependent_device.decode(raw, i * vfio_pci_dependent_device.size),
    );
    return { rc, header, devices, argp };
  }

  /** VFIO_DEVICE_PCI_HOT_RESET with the fds given (none: the empty-array proof). */
  hotReset(deviceFd: number, fds: readonly number[] = [], options: { flags?: number; count?: number; argsz?: number } = {}): number {
    const count = options.count ?? fds.length;
    const bytes = new Uint8Array(vfio_pci_hot_reset.size + fds.length * 4);
    bytes.set(vfio_pci_hot_reset.encodeNew({ argsz: options.argsz ?? bytes.length, flags: options.flags ?? 0, count }));
    fds.forEach((fd, i) => s32.write(bytes, vfio_pci_hot_reset.size + i * 4, fd));
    return this.proc.ioctl(deviceFd, VFIO_DEVICE_PCI_HOT_RESET, this.write(2048, bytes));
  }
}
