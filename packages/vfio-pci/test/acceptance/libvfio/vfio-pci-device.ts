import { expect } from 'vitest';
import {
  PCI_MSIX_FLAGS_QSIZE,
  PROT_READ,
  PROT_WRITE,
  VFIO_CHECK_EXTENSION,
  VFIO_DEVICE_ATTACH_IOMMUFD_PT,
  VFIO_DEVICE_BIND_FLAG_TOKEN,
  VFIO_DEVICE_BIND_IOMMUFD,
  VFIO_DEVICE_FEATURE,
  VFIO_DEVICE_FEATURE_PCI_VF_TOKEN,
  VFIO_DEVICE_FEATURE_SET,
  VFIO_DEVICE_GET_INFO,
  VFIO_DEVICE_GET_IRQ_INFO,
  VFIO_DEVICE_GET_REGION_INFO,
  VFIO_DEVICE_RESET,
  VFIO_DEVICE_SET_IRQS,
  VFIO_GROUP_FLAGS_VIABLE,
  VFIO_GROUP_GET_DEVICE_FD,
  VFIO_GROUP_GET_STATUS,
  VFIO_GROUP_SET_CONTAINER,
  VFIO_IRQ_SET_ACTION_TRIGGER,
  VFIO_IRQ_SET_DATA_EVENTFD,
  VFIO_IRQ_SET_DATA_NONE,
  VFIO_PCI_CONFIG_REGION_INDEX,
  VFIO_PCI_MSIX_IRQ_INDEX,
  VFIO_PCI_MSI_IRQ_INDEX,
  VFIO_REGION_INFO_FLAG_MMAP,
  VFIO_REGION_INFO_FLAG_READ,
  VFIO_REGION_INFO_FLAG_WRITE,
  VFIO_SET_IOMMU,
  vfio_device_attach_iommufd_pt,
  vfio_device_bind_iommufd,
  vfio_device_feature,
  vfio_device_info,
  vfio_group_status,
  vfio_irq_info,
  vfio_irq_set,
  vfio_region_info,
  type Host,
  type PciFunction,
} from '@vfiosim/core';
import { ioctlAssert, type User } from '../user.js';
import type { Iommu } from './iommu.js';

/*
 * The device half of the VFIO selftest library (lib/vfio_pci_device.c):
 * open a device through its group and a container, or through its cdev and
 * iommufd; learn its regions and interrupts; map its BARs; config space,
 * interrupts and reset through the device fd.
 */

export const PCI_STD_NUM_BARS = 6;

/** struct vfio_pci_bar. */
export interface VfioPciBar {
  info: vfio_region_info;
  /** Where the BAR is mmapped, or null. */
  vaddr: bigint | null;
}

/** The sysfs the library reads, as the simulated host knows it. */
export class Sysfs {
  constructor(readonly host: Host) {}

  fn(bdf: string): PciFunction {
    return this.host.platform.get(bdf);
  }

  /** readlink /sys/bus/pci/devices/<bdf>/iommu_group, basename. */
  iommuGroup(bdf: string): number {
    const id = this.host.iommu.groupIdOf(this.fn(bdf));
    expect(id, `Failed to get the IOMMU group for device: ${bdf}`).not.toBeNull();
    return id!;
  }

  /** /sys/bus/pci/devices/<bdf>/vfio-dev/vfioN → /dev/vfio/devices/vfioN. */
  cdevPath(bdf: string): string {
    const fn = this.fn(bdf);
    const vdev = this.host.vfio.devices.find((d) => d.dev === (fn as unknown));
    expect(vdev, `Failed to find vfio cdev file of ${bdf}`).toBeDefined();
    return this.host.vfio.cdevPath(vdev!);
  }

  /** /sys/bus/pci/devices/<bdf>/vendor and device. */
  ids(bdf: string): { vendor: number; device: number } {
    const fn = this.fn(bdf);
    return { vendor: fn.vendorId, device: fn.deviceId };
  }

  /** /sys/bus/pci/devices/<bdf>/driver. */
  driver(bdf: string): string | null {
    return this.host.drivers.driverName(this.fn(bdf) as never);
  }
}

/** struct vfio_pci_device. */
export class VfioPciDevice {
  readonly bdf: string;
  readonly iommu: Iommu;
  readonly user: User;
  fd = -1;
  groupFd = 0;
  info!: vfio_device_info;
  configSpace!: vfio_region_info;
  readonly bars: VfioPciBar[] = [];
  msiInfo!: vfio_irq_info;
  msixInfo!: vfio_irq_info;
  /** eventfds for MSI and MSI-X interrupts, -1 when unused. */
  readonly msiEventfds: number[] = new Array(PCI_MSIX_FLAGS_QSIZE + 1).fill(-1);

  /** vfio_pci_device_alloc: nothing opened yet. */
  constructor(bdf: string, iommu: Iommu) {
    this.bdf = bdf;
    this.iommu = iommu;
    this.user = iommu.user;
  }

  /** vfio_pci_device_init. */
  static init(sysfs: Sysfs, bdf: string, iommu: Iommu, vfToken?: string): VfioPciDevice {
    const device = new VfioPciDevice(bdf, iommu);
    if (iommu.mode.containerPath) {
      device.groupSetup(sysfs);
      device.containerSetIommu();
      device.groupGetDeviceFd(bdf, vfToken);
      expect(device.fd, 'VFIO_GROUP_GET_DEVICE_FD').toBeGreaterThanOrEqual(0);
    } else {
      device.cdevOpen(sysfs);
      ioctlAssert(device.bindIommufd(iommu.iommufd, vfToken), 'Failed VFIO_DEVICE_BIND_IOMMUFD ioctl');
      device.attachIommufdPt(iommu.ioasId);
    }
    device.setup();
    return device;
  }

  /** vfio_pci_group_setup: the group must be viable, then joins the container. */
  groupSetup(sysfs: Sysfs): void {
    const { proc } = this.user;
    const path = `/dev/vfio/${sysfs.iommuGroup(this.bdf)}`;
    this.groupFd = proc.open(path);
    expect(this.groupFd, `open(${path}) failed`).toBeGreaterThanOrEqual(0);
    const status = this.user.ioctl(this.groupFd, VFIO_GROUP_GET_STATUS, vfio_group_status, { argsz: vfio_group_status.size });
    ioctlAssert(status.rc, 'VFIO_GROUP_GET_STATUS');
    expect(status.out.flags & VFIO_GROUP_FLAGS_VIABLE).toBeTruthy();
    ioctlAssert(proc.ioctl(this.groupFd, VFIO_GROUP_SET_CONTAINER, this.user.int(this.iommu.containerFd)), 'VFIO_GROUP_SET_CONTAINER');
  }

  /**
   * vfio_container_set_iommu. The library ignores what VFIO_SET_IOMMU says,
   * since a second device of the container finds the type already set.
   */
  containerSetIommu(): number {
    const { proc } = this.user;
    const type = this.iommu.mode.iommuType!;
    const ret = proc.ioctl(this.iommu.containerFd, VFIO_CHECK_EXTENSION, type);
    expect(ret, `VFIO IOMMU type ${type} not supported`).toBeGreaterThan(0);
    return proc.ioctl(this.iommu.containerFd, VFIO_SET_IOMMU, type);
  }

  /** __vfio_pci_group_get_device_fd: "<bdf>" or "<bdf> vf_token=<uuid>"; fd is -errno on failure. */
  groupGetDeviceFd(bdf: string, vfToken?: string): number {
    const arg = this.user.string(vfToken ? `${bdf} vf_token=${vfToken}` : bdf);
    this.fd = this.user.proc.ioctl(this.groupFd, VFIO_GROUP_GET_DEVICE_FD, arg);
    return this.fd;
  }

  /** vfio_pci_cdev_open. */
  cdevOpen(sysfs: Sysfs): void {
    this.fd = this.user.proc.open(sysfs.cdevPath(this.bdf));
    expect(this.fd).toBeGreaterThanOrEqual(0);
  }

  /** __vfio_device_bind_iommufd: 0 or -errno. */
  bindIommufd(iommufd: number, vfToken?: string): number {
    const token = vfToken ? this.user.push(uuidParse(vfToken)) : 0n;
    return this.user.ioctl(this.fd, VFIO_DEVICE_BIND_IOMMUFD, vfio_device_bind_iommufd, {
      argsz: vfio_device_bind_iommufd.size,
      iommufd,
      flags: vfToken ? VFIO_DEVICE_BIND_FLAG_TOKEN : 0,
      token_uuid_ptr: token,
    }).rc;
  }

  /** vfio_device_attach_iommufd_pt. */
  attachIommufdPt(ptId: number): void {
    const { rc } = this.user.ioctl(this.fd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, vfio_device_attach_iommufd_pt, {
      argsz: vfio_device_attach_iommufd_pt.size,
      pt_id: ptId,
    });
    ioctlAssert(rc, 'VFIO_DEVICE_ATTACH_IOMMUFD_PT');
  }

  /** vfio_pci_device_setup: info, config region, BARs (mapping the mmappable ones), MSI and MSI-X info. */
  setup(): void {
    const info = this.user.ioctl(this.fd, VFIO_DEVICE_GET_INFO, vfio_device_info, { argsz: vfio_device_info.size });
    ioctlAssert(info.rc, 'VFIO_DEVICE_GET_INFO');
    this.info = info.out;
    this.configSpace = this.regionGet(VFIO_PCI_CONFIG_REGION_INDEX);
    expect(this.configSpace.flags & VFIO_REGION_INFO_FLAG_MMAP, 'PCI config space should not support mmap()').toBe(0);
    for (let i = 0; i < PCI_STD_NUM_BARS; i++) {
      this.bars[i] = { info: this.regionGet(i), vaddr: null };
      if (this.bars[i]!.info.flags & VFIO_REGION_INFO_FLAG_MMAP) this.barMap(i);
    }
    this.msiInfo = this.irqGet(VFIO_PCI_MSI_IRQ_INDEX);
    this.msixInfo = this.irqGet(VFIO_PCI_MSIX_IRQ_INDEX);
  }

  /** vfio_pci_region_get. */
  regionGet(index: number): vfio_region_info {
    const { rc, out } = this.user.ioctl(this.fd, VFIO_DEVICE_GET_REGION_INFO, vfio_region_info, {
      argsz: vfio_region_info.size,
      index,
    });
    ioctlAssert(rc, `VFIO_DEVICE_GET_REGION_INFO ${index}`);
    return out;
  }

  /** vfio_pci_irq_get. */
  irqGet(index: number): vfio_irq_info {
    const { rc, out } = this.user.ioctl(this.fd, VFIO_DEVICE_GET_IRQ_INFO, vfio_irq_info, { argsz: vfio_irq_info.size, index });
    ioctlAssert(rc, `VFIO_DEVICE_GET_IRQ_INFO ${index}`);
    return out;
  }

  /** vfio_pci_bar_map: a shared mapping with the protection the region flags allow. */
  barMap(index: number): void {
    const bar = this.bars[index]!;
    expect(bar.vaddr).toBeNull();
    expect(bar.info.flags & VFIO_REGION_INFO_FLAG_MMAP).toBeTruthy();
    let prot = 0;
    if (bar.info.flags & VFIO_REGION_INFO_FLAG_READ) prot |= PROT_READ;
    if (bar.info.flags & VFIO_REGION_INFO_FLAG_WRITE) prot |= PROT_WRITE;
    const vaddr = this.user.proc.mmap(bar.info.size, { fd: this.fd, offset: bar.info.offset, prot });
    expect(vaddr > 0n, `mmap of BAR ${index}: ${vaddr}`).toBe(true);
    bar.vaddr = vaddr;
  }

  /** vfio_pci_bar_unmap_all. */
  barUnmapAll(): void {
    for (const bar of this.bars) {
      if (bar.vaddr === null) continue;
      expect(this.user.proc.munmap(bar.vaddr, bar.info.size)).toBe(0);
      bar.vaddr = null;
    }
  }

  /** vfio_pci_config_access: pread/pwrite of exactly `size` bytes or the test fails. */
  configAccess(write: boolean, offset: number, data: Uint8Array): void {
    const at = this.configSpace.offset + BigInt(offset);
    const ret = write ? this.user.proc.pwrite(this.fd, data, at) : this.user.proc.pread(this.fd, data, at);
    expect(ret, `Failed to ${write ? 'write to' : 'read from'} PCI config space: 0x${offset.toString(16)}`).toBe(data.length);
  }

  configRead(offset: number, size: 1 | 2 | 4): number {
    const data = new Uint8Array(size);
    this.configAccess(false, offset, data);
    let value = 0;
    for (let i = size - 1; i >= 0; i--) value = value * 256 + data[i]!;
    return value;
  }

  configWrite(offset: number, size: 1 | 2 | 4, value: number): void {
    const data = new Uint8Array(size);
    for (let i = 0; i < size; i++) data[i] = Math.floor(value / 256 ** i) & 0xff;
    this.configAccess(true, offset, data);
  }

  configReadw(offset: number): number {
    return this.configRead(offset, 2);
  }

  configWritew(offset: number, value: number): void {
    this.configWrite(offset, 2, value);
  }

  /** vfio_pci_device_match: what config space says against what sysfs says. */
  match(vendor: number, device: number): boolean {
    return this.configReadw(0x00) === vendor && this.configReadw(0x02) === device;
  }

  /** vfio_pci_irq_set: eventfds for `count` vectors from `vector`, or DATA_NONE with count 0 (disable). */
  #irqSet(index: number, vector: number, count: number, fds: number[]): number {
    const size = vfio_irq_set.size + 4 * count;
    const buf = new Uint8Array(size);
    buf.set(
      vfio_irq_set.encodeNew({
        argsz: size,
        flags: VFIO_IRQ_SET_ACTION_TRIGGER | (count ? VFIO_IRQ_SET_DATA_EVENTFD : VFIO_IRQ_SET_DATA_NONE),
        index,
        start: vector,
        count,
      }),
    );
    const view = new DataView(buf.buffer);
    fds.forEach((fd, i) => view.setInt32(vfio_irq_set.size + 4 * i, fd, true));
    return this.user.proc.ioctl(this.fd, VFIO_DEVICE_SET_IRQS, this.user.push(buf));
  }

  /** vfio_pci_irq_trigger: DATA_NONE | ACTION_TRIGGER on one vector, as a loopback. */
  irqTrigger(index: number, vector: number): void {
    const { rc } = this.user.ioctl(this.fd, VFIO_DEVICE_SET_IRQS, vfio_irq_set, {
      argsz: vfio_irq_set.size,
      flags: VFIO_IRQ_SET_ACTION_TRIGGER | VFIO_IRQ_SET_DATA_NONE,
      index,
      start: vector,
      count: 1,
    });
    ioctlAssert(rc, 'VFIO_DEVICE_SET_IRQS trigger');
  }

  /** vfio_pci_irq_enable: a new eventfd per vector. */
  irqEnable(index: number, vector: number, count: number): void {
    checkSupportedIrqIndex(index);
    for (let i = vector; i < vector + count; i++) {
      expect(this.msiEventfds[i]).toBeLessThan(0);
      this.msiEventfds[i] = this.user.proc.eventfd(0);
      expect(this.msiEventfds[i]).toBeGreaterThanOrEqual(0);
    }
    ioctlAssert(this.#irqSet(index, vector, count, this.msiEventfds.slice(vector, vector + count)), 'VFIO_DEVICE_SET_IRQS enable');
  }

  /** vfio_pci_irq_disable: closes every eventfd, then count 0 tears the index down. */
  irqDisable(index: number): void {
    checkSupportedIrqIndex(index);
    this.msiEventfds.forEach((fd, i) => {
      if (fd < 0) return;
      expect(this.user.proc.close(fd)).toBe(0);
      this.msiEventfds[i] = -1;
    });
    ioctlAssert(this.#irqSet(index, 0, 0, []), 'VFIO_DEVICE_SET_IRQS disable');
  }

  /** vfio_pci_device_reset. */
  reset(): void {
    ioctlAssert(this.user.proc.ioctl(this.fd, VFIO_DEVICE_RESET, 0n), 'VFIO_DEVICE_RESET');
  }

  /** vfio_device_set_vf_token: VFIO_DEVICE_FEATURE_PCI_VF_TOKEN with the feature SET flag. */
  setVfToken(token: string): void {
    const size = vfio_device_feature.size + 16;
    const buf = new Uint8Array(size);
    buf.set(vfio_device_feature.encodeNew({ argsz: size, flags: VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_PCI_VF_TOKEN }));
    buf.set(uuidParse(token), vfio_device_feature.size);
    ioctlAssert(this.user.proc.ioctl(this.fd, VFIO_DEVICE_FEATURE, this.user.push(buf)), 'VFIO_DEVICE_FEATURE PCI_VF_TOKEN');
  }

  /** vfio_pci_device_cleanup. */
  cleanup(): void {
    const { proc } = this.user;
    this.barUnmapAll();
    expect(proc.close(this.fd)).toBe(0);
    this.msiEventfds.forEach((fd) => {
      if (fd >= 0) expect(proc.close(fd)).toBe(0);
    });
    if (this.groupFd) expect(proc.close(this.groupFd)).toBe(0);
  }
}

function checkSupportedIrqIndex(index: number): void {
  expect(index === VFIO_PCI_MSI_IRQ_INDEX || index === VFIO_PCI_MSIX_IRQ_INDEX, `Unsupported IRQ index: ${index}`).toBe(true);
}

/** uuid_parse of libuuid: 36 characters to 16 bytes. */
export function uuidParse(text: string): Uint8Array {
  const hex = text.replaceAll('-', '');
  expect(hex).toMatch(/^[0-9a-f]{32}$/i);
  return Uint8Array.from({ length: 16 }, (_, i) => parseInt(hex.slice(2 * i, 2 * i + 2), 16));
}

/** read(2) of an eventfd: the 8-byte counter, or -errno. */
export function readEventfd(user: User, fd: number): bigint {
  const buf = new Uint8Array(8);
  const rc = user.proc.read(fd, buf);
  if (rc < 0) return BigInt(rc);
  expect(rc).toBe(8);
  return new DataView(buf.buffer).getBigUint64(0, true);
}
