import { expect } from 'vitest';
import {
  createHost,
  mockIommu,
  offsetofEnd,
  VFIO_DEVICE_BIND_IOMMUFD,
  VFIO_DEVICE_GET_INFO,
  VFIO_DEVICE_GET_IRQ_INFO,
  VFIO_DEVICE_GET_REGION_INFO,
  VFIO_DEVICE_SET_IRQS,
  VFIO_PCI_CONFIG_REGION_INDEX,
  vfio_device_bind_iommufd,
  vfio_device_info,
  vfio_irq_info,
  vfio_irq_set,
  vfio_region_info,
  vfioPciIndexToOffset,
  VfioPciCoreDevice,
  type Host,
  type HostDescription,
  type PciFunction,
  type Process,
  type VfioSimPlugin,
} from '@vfiosim/core';
import { PLAIN_DRIVER, plainDriverPlugin } from './fixtures/plain-driver.js';

export const BDF = '0000:00:02.0';
export const CONFIG = vfioPciIndexToOffset(VFIO_PCI_CONFIG_REGION_INDEX);

type DeviceDescription = NonNullable<HostDescription['devices']>[number];

export interface RigOptions {
  /** Plugins after the mock IOMMU; the plain vfio-pci-core driver by default. */
  readonly plugins?: VfioSimPlugin[];
  /** The driver_override to bind with. */
  readonly driver?: string;
  /** More description around the device (bridges, other devices). */
  readonly description?: Omit<HostDescription, 'devices'> & { devices?: DeviceDescription[] };
}

/**
 * A host with one device bound to a vfio-pci-core driver, opened the way
 * a VMM does it today: /dev/iommu, the device cdev, VFIO_DEVICE_BIND_IOMMUFD.
 * Helpers issue raw ioctls and preads on the process, as QEMU's
 * hw/vfio/pci.c does.
 */
export class Rig {
  readonly host: Host;
  readonly proc: Process;
  readonly fn: PciFunction;
  readonly vdev: VfioPciCoreDevice;
  readonly fd: number;
  /** The iommufd `fd` is bound to. */
  readonly iommufd: number;
  /** 64 KiB of the process's memory for ioctl arguments. */
  readonly scratch: bigint;

  constructor(device: Partial<DeviceDescription> = {}, options: RigOptions = {}) {
    const devices = [
      { bdf: BDF, vendorId: 0x1af4, deviceId: 0x1041, driver: options.driver ?? PLAIN_DRIVER, ...device },
      ...(options.description?.devices ?? []),
    ];
    this.host = createHost(
      { ...options.description, devices },
      { plugins: [mockIommu(), ...(options.plugins ?? [plainDriverPlugin()])] },
    );
    this.fn = this.host.platform.get(devices[0]!.bdf!);
    expect(this.host.drivers.driverName(this.fn as never)).toBe(devices[0]!.driver);
    this.vdev = this.host.vfio.devices.find((d) => d.dev === (this.fn as unknown))! as VfioPciCoreDevice;
    this.proc = this.host.spawn();
    this.scratch = this.proc.mmap(0x10000);
    this.iommufd = this.proc.open('/dev/iommu');
    this.fd = this.openCdev(this.vdev, this.iommufd);
  }

  /** Opens and binds another device's cdev in the same process (to a new iommufd unless one is given). */
  openCdev(vdev: VfioPciCoreDevice, iommufd = this.proc.open('/dev/iommu')): number {
    const fd = this.proc.open(this.host.vfio.cdevPath(vdev));
    expect(fd).toBeGreaterThanOrEqual(0);
    const bind = vfio_device_bind_iommufd.encodeNew({ argsz: vfio_device_bind_iommufd.size, flags: 0, iommufd });
    const at = this.scratch + 0x8000n;
    this.proc.mem.write(at, bind);
    expect(this.proc.ioctl(fd, VFIO_DEVICE_BIND_IOMMUFD, at)).toBe(0);
    return fd;
  }

  /** pread of `size` bytes at config offset `offset`; the little-endian value, or -errno. */
  cfgRead(offset: number, size = 4): number {
    const buf = new Uint8Array(size);
    const rc = this.proc.pread(this.fd, buf, CONFIG + BigInt(offset));
    if (rc < 0) return rc;
    expect(rc).toBe(size);
    let value = 0;
    for (let i = size - 1; i >= 0; i--) value = value * 256 + buf[i]!;
    return value;
  }

  /** pwrite of `size` bytes of `value` at config offset `offset`; the count written, or -errno. */
  cfgWrite(offset: number, size: number, value: number): number {
    const buf = new Uint8Array(size);
    for (let i = 0; i < size; i++) buf[i] = Math.floor(value / 256 ** i) & 0xff;
    return this.proc.pwrite(this.fd, buf, CONFIG + BigInt(offset));
  }

  /** VFIO_DEVICE_GET_REGION_INFO with `argsz`; the answer and the bytes after the struct. */
  regionInfo(index: number, argsz = vfio_region_info.size, tail = 0) {
    this.proc.mem.write(this.scratch, new Uint8Array(argsz + tail));
    this.proc.mem.write(this.scratch, vfio_region_info.encodeNew({ argsz, index }));
    const rc = this.proc.ioctl(this.fd, VFIO_DEVICE_GET_REGION_INFO, this.scratch);
    const bytes = this.proc.mem.read(this.scratch, Math.max(argsz, vfio_region_info.size) + tail) as Uint8Array;
    return { rc, info: vfio_region_info.decode(bytes), bytes };
  }

  deviceInfo(argsz = vfio_device_info.size, tail = 0) {
    this.proc.mem.write(this.scratch, new Uint8Array(Math.max(argsz, vfio_device_info.size) + tail).fill(0xa5));
    this.proc.mem.write(this.scratch, vfio_device_info.encodeNew({ argsz }).subarray(0, 4));
    const rc = this.proc.ioctl(this.fd, VFIO_DEVICE_GET_INFO, this.scratch);
    const bytes = this.proc.mem.read(this.scratch, Math.max(argsz, vfio_device_info.size) + tail) as Uint8Array;
    return { rc, info: vfio_device_info.decode(bytes), bytes };
  }

  irqInfo(index: number, argsz = vfio_irq_info.size) {
    this.proc.mem.write(this.scratch, vfio_irq_info.encodeNew({ argsz, index }));
    const rc = this.proc.ioctl(this.fd, VFIO_DEVICE_GET_IRQ_INFO, this.scratch);
    return { rc, info: vfio_irq_info.decode(this.proc.mem.read(this.scratch, vfio_irq_info.size) as Uint8Array) };
  }

  /**
   * VFIO_DEVICE_SET_IRQS. `data` holds eventfds (DATA_EVENTFD) as s32 or
   * bools (DATA_BOOL) as u8, chosen by `elementSize`; argsz defaults to
   * the header plus the data.
   */
  setIrqs(flags: number, index: number, start: number, count: number, data: number[] = [], elementSize: 1 | 4 = 4, argsz?: number): number {
    const minsz = offsetofEnd(vfio_irq_set, 'count');
    const bytes = new Uint8Array(minsz + data.length * elementSize);
    vfio_irq_set.encode({ argsz: argsz ?? bytes.length, flags, index, start, count }, bytes);
    const view = new DataView(bytes.buffer);
    data.forEach((value, i) => (elementSize === 4 ? view.setInt32(minsz + i * 4, value, true) : view.setUint8(minsz + i, value)));
    this.proc.mem.write(this.scratch, bytes);
    return this.proc.ioctl(this.fd, VFIO_DEVICE_SET_IRQS, this.scratch);
  }

  /** A new eventfd and a reader of how often the kernel signalled it. */
  eventfd(): { fd: number; signals: () => bigint } {
    const fd = this.proc.eventfd(0);
    return {
      fd,
      signals: () => {
        const buf = new Uint8Array(8);
        const rc = this.proc.read(fd, buf);
        return rc < 0 ? 0n : new DataView(buf.buffer).getBigUint64(0, true);
      },
    };
  }
}
