import { expect } from 'vitest';
import {
  O_RDWR,
  VFIO_DEVICE_ATTACH_IOMMUFD_PT,
  VFIO_DEVICE_BIND_IOMMUFD,
  VFIO_DMA_MAP_FLAG_READ,
  VFIO_DMA_MAP_FLAG_WRITE,
  VFIO_GROUP_FLAGS_VIABLE,
  VFIO_GROUP_GET_DEVICE_FD,
  VFIO_GROUP_GET_STATUS,
  VFIO_GROUP_SET_CONTAINER,
  VFIO_IOMMU_MAP_DMA,
  VFIO_IOMMU_UNMAP_DMA,
  VfioDevice,
  VfioPciCoreDevice,
  createHost,
  emulatedIommufdOps,
  mockIommu,
  s32,
  syscall,
  vfioDmaRw,
  vfioPciCoreOps,
  vfioPinPages,
  vfioUnpinPages,
  vfioPciCoreRegisterDevice,
  vfioPciCoreUnregisterDevice,
  vfio_device_attach_iommufd_pt,
  vfio_device_bind_iommufd,
  vfio_group_status,
  vfio_iommu_type1_dma_map,
  vfio_iommu_type1_dma_unmap,
  type DeepPartial,
  type Host,
  type HostDescription,
  type AuxiliaryDriver,
  type PciBusDevice,
  type PciDriver,
  type PciFunction,
  type Process,
  type StructCodec,
  type VfioSimPlugin,
} from '@vfiosim/core';

/*
 * A machine and a VMM for DMA tests that go through the syscall surface
 * only: the mock IOMMU, a vfio-pci driver built on vfio-pci-core, and a
 * process that opens /dev/vfio/vfio, groups, device cdevs and /dev/iommu
 * and issues raw ioctls with structs it encodes in its own memory, the way
 * QEMU's hw/vfio does. Device DMA goes through host.dma.
 */

export const PAGE = 4096n;
export const RW = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE;
export const NIC0 = '0000:3a:00.0';
export const NIC1 = '0000:3b:00.0';

const endpoint = (bdf: string) => ({
  bdf,
  label: 'NIC',
  vendorId: 0x8086,
  deviceId: 0x1533,
  classCode: 0x020000,
  driver: 'vfio-pci',
  bars: [{ index: 0, type: 'mem64' as const, size: '64K' }],
  capabilities: { msix: { tableSize: 4, tableBar: 0, tableOffset: 0x8000, pbaBar: 0, pbaOffset: 0x9000 }, pcie: { flr: true } },
  extendedCapabilities: { acs: true },
});

/** Two NICs, each behind its own root port with ACS: two IOMMU groups, both bound to vfio-pci at boot. */
export const twoNics: HostDescription = {
  bridges: [
    { bdf: '0000:00:01.0', kind: 'root-port', secondaryBus: 0x3a, extendedCapabilities: { acs: true } },
    { bdf: '0000:00:02.0', kind: 'root-port', secondaryBus: 0x3b, extendedCapabilities: { acs: true } },
  ],
  devices: [endpoint(NIC0), endpoint(NIC1)],
};

/** vfio-pci as a plugin: vfio-pci-core devices under the name vfio-pci, bound by driver_override. */
function vfioPci(): VfioSimPlugin {
  return {
    name: 'vfio-pci',
    dependsOn: ['mock-iommu'],
    apply(host) {
      const devices = new Map<string, VfioPciCoreDevice>();
      const ops = { ...vfioPciCoreOps, name: 'vfio-pci' };
      const driver: PciDriver = {
        name: 'vfio-pci',
        driverManagedDma: true,
        idTable: [],
        probe(dev) {
          const vdev = new VfioPciCoreDevice(dev as unknown as PciFunction, ops);
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

/**
 * An emulated (mdev-style) device, as a driver like the mtty sample or
 * kvmgt keeps it: an auxiliary device of NIC1's function, bound to its own
 * vfio driver. Its "DMA" is the CPU touching guest memory through
 * vfioPinPages / vfioDmaRw, and it drops its pins when told (dma_unmap).
 */
export class EmulatedDevice {
  /** The device's name, as VFIO_GROUP_GET_DEVICE_FD wants it. */
  readonly name = 'mtty.mdev.0';
  readonly vdev: VfioDevice;
  readonly pins: { iova: bigint; npage: number }[] = [];
  readonly unmaps: [bigint, bigint][] = [];

  constructor(host: Host) {
    const ops = {
      name: 'mtty',
      ...emulatedIommufdOps(host.vfio.iommufdGlue),
      dmaUnmap: (_vdev: VfioDevice, iova: bigint, length: bigint) => {
        this.unmaps.push([iova, length]);
        for (const pin of this.pins.splice(0)) vfioUnpinPages(this.vdev, pin.iova, pin.npage);
      },
    };
    let vdev: VfioDevice | null = null;
    const driver: AuxiliaryDriver = {
      name: 'mdev',
      driverManagedDma: true,
      idTable: [{ name: 'mtty.mdev' }],
      probe(adev) {
        vdev = new VfioDevice(adev, ops);
        host.vfio.registerEmulatedIommuDev(vdev);
      },
      async remove() {
        await host.vfio.unregister(vdev!);
      },
    };
    host.drivers.registerAuxiliaryDriver(driver, 'mtty');
    host.drivers.addAuxiliaryDevice(host.platform.get(NIC1) as unknown as PciBusDevice, 'mtty', 'mdev', 0);
    if (!vdev) throw new Error('the mdev driver did not probe');
    this.vdev = vdev;
  }

  /** vfioPinPages; returns the frames' count or -errno. */
  pin(iova: bigint, npage: number, prot: number): number {
    return syscall(() => {
      const frames = vfioPinPages(this.vdev, iova, npage, prot);
      this.pins.push({ iova, npage });
      return frames.length;
    });
  }

  /** vfioDmaRw; 0 or -errno. */
  rw(iova: bigint, data: Uint8Array, write: boolean): number {
    return syscall(() => (vfioDmaRw(this.vdev, iova, data, write), 0));
  }
}

export function dmaHost(options: { detectStaleTranslations?: boolean } = {}): Host {
  return createHost(twoNics, { plugins: [mockIommu(), vfioPci()], ...options });
}

/** A VMM process: raw syscalls, ioctl arguments built in a scratch page of its own memory. */
export class Vmm {
  proc: Process;
  scratch: bigint;

  constructor(readonly host: Host, proc: Process = host.spawn()) {
    this.proc = proc;
    this.scratch = this.mmap(PAGE * 4n);
  }

  ok(rc: number | bigint, what: string): number {
    if (rc < 0) throw new Error(`${what} failed: ${rc}`);
    return Number(rc);
  }

  mmap(length: bigint, options: Parameters<Process['mmap']>[1] = {}): bigint {
    const va = this.proc.mmap(length, options);
    this.ok(va, 'mmap');
    return va;
  }

  /** After exec() the old scratch page is gone: arguments go to fresh memory. */
  newScratch(): void {
    this.scratch = this.mmap(PAGE * 4n);
  }

  write(va: bigint, bytes: Uint8Array): void {
    expect(this.proc.mem.write(va, bytes)).toBe(0);
  }

  read(va: bigint, length: number): Uint8Array {
    const out = this.proc.mem.read(va, length);
    if (typeof out === 'number') throw new Error(`read of 0x${va.toString(16)} failed: ${out}`);
    return out;
  }

  /** Encodes `value` in the scratch page, issues the ioctl, decodes what the kernel left there. */
  ioctl<T>(fd: number, request: number, codec: StructCodec<T>, value: DeepPartial<NoInfer<T>>): { rc: number; out: T } {
    this.write(this.scratch, codec.encodeNew(value));
    const rc = this.proc.ioctl(fd, request, this.scratch);
    return { rc, out: codec.decode(this.read(this.scratch, codec.size)) };
  }

  open(path: string): number {
    return this.ok(this.proc.open(path, O_RDWR), `open ${path}`);
  }

  groupPath(bdf: string): string {
    const vdev = this.host.vfio.devices.find((d) => d.name === bdf);
    if (!vdev?.group) throw new Error(`${bdf} has no vfio group`);
    return `/dev/vfio/${vdev.group.name}`;
  }

  fn(bdf: string): PciFunction {
    return this.host.platform.get(bdf);
  }

  /** QEMU's vfio_connect_container() for one group: status, SET_CONTAINER (EBUSY etc. returned as rc). */
  setContainer(groupFd: number, containerFd: number): number {
    const status = this.ioctl(groupFd, VFIO_GROUP_GET_STATUS, vfio_group_status, { argsz: vfio_group_status.size });
    expect(status.rc).toBe(0);
    expect(status.out.flags & VFIO_GROUP_FLAGS_VIABLE).toBe(VFIO_GROUP_FLAGS_VIABLE);
    const fdBytes = new Uint8Array(4);
    s32.write(fdBytes, 0, containerFd);
    this.write(this.scratch, fdBytes);
    return this.proc.ioctl(groupFd, VFIO_GROUP_SET_CONTAINER, this.scratch);
  }

  /** VFIO_GROUP_GET_DEVICE_FD by the device's name. */
  deviceFd(groupFd: number, bdf: string): number {
    this.write(this.scratch, new TextEncoder().encode(`${bdf}\0`));
    return this.ok(this.proc.ioctl(groupFd, VFIO_GROUP_GET_DEVICE_FD, this.scratch), `GET_DEVICE_FD ${bdf}`);
  }

  /** Opens the device cdev and binds it to `iommufd`; returns the fd and iommufd's device id. */
  bindCdev(bdf: string, iommufd: number): { fd: number; devId: number } {
    const vdev = this.host.vfio.devices.find((d) => d.name === bdf);
    if (!vdev) throw new Error(`${bdf} is not a vfio device`);
    const fd = this.open(this.host.vfio.cdevPath(vdev));
    const bind = this.ioctl(fd, VFIO_DEVICE_BIND_IOMMUFD, vfio_device_bind_iommufd, { argsz: vfio_device_bind_iommufd.size, iommufd });
    this.ok(bind.rc, 'VFIO_DEVICE_BIND_IOMMUFD');
    return { fd, devId: bind.out.out_devid };
  }

  attachPt(deviceFd: number, ptId: number): number {
    return this.ioctl(deviceFd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, vfio_device_attach_iommufd_pt, {
      argsz: vfio_device_attach_iommufd_pt.size,
      pt_id: ptId,
    }).rc;
  }

  mapDma(containerFd: number, vaddr: bigint, iova: bigint, size: bigint, flags = RW): number {
    return this.ioctl(containerFd, VFIO_IOMMU_MAP_DMA, vfio_iommu_type1_dma_map, {
      argsz: vfio_iommu_type1_dma_map.size, flags, vaddr, iova, size,
    }).rc;
  }

  /** VFIO_IOMMU_UNMAP_DMA; `size` is what the kernel wrote back. */
  unmapDma(containerFd: number, iova: bigint, size: bigint, flags = 0): { rc: number; size: bigint } {
    const { rc, out } = this.ioctl(containerFd, VFIO_IOMMU_UNMAP_DMA, vfio_iommu_type1_dma_unmap, {
      argsz: vfio_iommu_type1_dma_unmap.size, flags, iova, size,
    });
    return { rc, size: out.size };
  }

  /** Guest RAM as QEMU's memory-backend-memfd makes it: memfd_create, ftruncate, mmap MAP_SHARED. */
  guestRam(size: bigint): { memfd: number; va: bigint } {
    const memfd = this.ok(this.proc.memfdCreate('guest-ram'), 'memfd_create');
    this.ok(this.proc.ftruncate(memfd, size), 'ftruncate');
    return { memfd, va: this.mmap(size, { fd: memfd }) };
  }
}
