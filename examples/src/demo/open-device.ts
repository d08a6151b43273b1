import {
  Errno,
  PCI_CAPABILITY_LIST,
  PCI_COMMAND,
  PCI_COMMAND_MASTER,
  PCI_COMMAND_MEMORY,
  VFIO_DEVICE_FLAGS_PCI,
  VFIO_DEVICE_FLAGS_RESET,
  VFIO_PCI_BAR0_REGION_INDEX,
  VFIO_PCI_CONFIG_REGION_INDEX,
  VFIO_PCI_VGA_REGION_INDEX,
  VFIO_REGION_INFO_CAP_MSIX_MAPPABLE,
  VFIO_REGION_INFO_CAP_SPARSE_MMAP,
  iommu_ioas_alloc,
  vfio_device_attach_iommufd_pt,
  vfio_device_bind_iommufd,
  vfio_device_info,
  vfio_info_cap_header,
  vfio_region_info,
  vfio_region_info_cap_sparse_mmap,
  vfio_region_sparse_mmap_area,
} from '@vfiosim/core';
import { hex } from '../vmm/format.js';
import type { Vmm } from '../vmm/vmm.js';
import { check, type DemoContext, type OpenedDevice } from './context.js';
import { NVME_VERSION_1_4, REG_VS } from './device-model.js';
import { NVME } from './host.js';

const REGION_NAMES = ['BAR0', 'BAR1', 'BAR2', 'BAR3', 'BAR4', 'BAR5', 'ROM', 'CONFIG', 'VGA'];

const CAP_NAMES: Readonly<Record<number, string>> = { 0x01: 'Power Management', 0x05: 'MSI', 0x10: 'PCI Express', 0x11: 'MSI-X', 0x13: 'Advanced Features' };
const EXT_CAP_NAMES: Readonly<Record<number, string>> = { 0x01: 'AER', 0x0d: 'ACS', 0x0f: 'ATS', 0x10: 'SR-IOV', 0x13: 'PRI', 0x1b: 'PASID' };

/** Where the regions of an opened device are, by index (from VFIO_DEVICE_GET_REGION_INFO). */
export const regionOffsets = new WeakMap<OpenedDevice, bigint[]>();

/** Reads a little-endian value of `size` bytes from config space through the config region. */
export function configRead(vmm: Vmm, dev: OpenedDevice, offset: number, size: 1 | 2 | 4): number {
  const bytes = vmm.pread(dev.fd, size, regionOffset(dev, VFIO_PCI_CONFIG_REGION_INDEX) + BigInt(offset));
  if (typeof bytes === 'number') return bytes;
  let value = 0;
  for (let i = size - 1; i >= 0; i--) value = value * 256 + bytes[i]!;
  return value;
}

export function configWrite(vmm: Vmm, dev: OpenedDevice, offset: number, size: 1 | 2 | 4, value: number): number {
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i++) bytes[i] = (value >>> (8 * i)) & 0xff;
  return vmm.pwrite(dev.fd, bytes, regionOffset(dev, VFIO_PCI_CONFIG_REGION_INDEX) + BigInt(offset));
}

/** A `size`-byte little-endian BAR access at `offset` into region `index`. */
export function barRead(vmm: Vmm, dev: OpenedDevice, index: number, offset: bigint, size: 4 | 8): bigint | number {
  const bytes = vmm.pread(dev.fd, size, regionOffset(dev, index) + offset);
  if (typeof bytes === 'number') return bytes;
  return size === 8 ? new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true) : BigInt(new DataView(bytes.buffer, bytes.byteOffset).getUint32(0, true));
}

export function barWrite(vmm: Vmm, dev: OpenedDevice, index: number, offset: bigint, size: 4 | 8, value: bigint): number {
  const bytes = new Uint8Array(size);
  if (size === 8) new DataView(bytes.buffer).setBigUint64(0, value, true);
  else new DataView(bytes.buffer).setUint32(0, Number(value), true);
  return vmm.pwrite(dev.fd, bytes, regionOffset(dev, index) + offset);
}

function regionOffset(dev: OpenedDevice, index: number): bigint {
  const offsets = regionOffsets.get(dev);
  if (!offsets || offsets[index] === undefined) throw new Error(`region ${index} of ${dev.bdf} was not looked up`);
  return offsets[index]!;
}

/** open the device's cdev and VFIO_DEVICE_BIND_IOMMUFD it to the context's iommufd. */
export function openCdev(ctx: DemoContext, bdf: string): OpenedDevice {
  const { host, vmm } = ctx;
  const fn = host.platform.get(bdf);
  const vdev = host.vfio.devices.find((device) => device.name === bdf);
  if (!vdev) throw new Error(`${bdf} is not a vfio device`);
  const fd = vmm.open(host.vfio.cdevPath(vdev));
  const bind = vmm.ioctl(fd, 'VFIO_DEVICE_BIND_IOMMUFD', vfio_device_bind_iommufd, { flags: 0, iommufd: ctx.iommufd });
  check(ctx, bind.rc === 0, `${bdf} binds to the iommufd`);
  return { bdf, fn, fd, devid: bind.out.out_devid };
}

/**
 * The sequence a VMM runs for a device today: /dev/iommu, the device cdev,
 * bind, an IOAS, attach; then what QEMU's vfio-pci does first: device info,
 * every region's info, config space, a BAR access.
 */
export function openDevice(ctx: DemoContext): void {
  const { vmm, trace } = ctx;
  ctx.step = 'open';
  trace.section(`2. Open ${NVME} through its cdev, bind to iommufd, attach to an IOAS`);

  ctx.iommufd = vmm.open('/dev/iommu');
  const vdev = ctx.host.vfio.devices.find((device) => device.name === NVME)!;
  const path = ctx.host.vfio.cdevPath(vdev);
  trace.note(`${NVME} is bound to vfio-pci; its cdev is ${path} (/sys/bus/pci/devices/${NVME}/vfio-dev/vfio${vdev.index})`);
  const fd = vmm.open(path);
  const early = vmm.ioctl(fd, 'VFIO_DEVICE_GET_INFO', vfio_device_info, {});
  trace.note('a cdev answers no device ioctl until it is bound to an iommufd');
  check(ctx, early.rc === -Errno.EINVAL, 'an unbound cdev refuses VFIO_DEVICE_GET_INFO with EINVAL');

  const bind = vmm.ioctl(fd, 'VFIO_DEVICE_BIND_IOMMUFD', vfio_device_bind_iommufd, { flags: 0, iommufd: ctx.iommufd });
  check(ctx, bind.rc === 0, 'VFIO_DEVICE_BIND_IOMMUFD succeeds');
  const dev: OpenedDevice = { bdf: NVME, fn: ctx.host.platform.get(NVME), fd, devid: bind.out.out_devid };
  ctx.nvme = dev;

  const ioas = vmm.ioctl(ctx.iommufd, 'IOMMU_IOAS_ALLOC', iommu_ioas_alloc, { flags: 0 });
  check(ctx, ioas.rc === 0, 'IOMMU_IOAS_ALLOC succeeds');
  ctx.ioasId = ioas.out.out_ioas_id;
  const attach = vmm.ioctl(fd, 'VFIO_DEVICE_ATTACH_IOMMUFD_PT', vfio_device_attach_iommufd_pt, { flags: 0, pt_id: ctx.ioasId });
  trace.note(`attached to IOAS ${ctx.ioasId}; the kernel made an automatic paging HWPT, id ${attach.out.pt_id}`);
  check(ctx, attach.rc === 0, 'VFIO_DEVICE_ATTACH_IOMMUFD_PT to the IOAS succeeds');

  trace.line('');
  const info = vmm.ioctl(fd, 'VFIO_DEVICE_GET_INFO', vfio_device_info, {});
  const expected = VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET;
  check(ctx, info.rc === 0 && (info.out.flags & expected) === expected, 'the device reports PCI and RESET');

  const offsets: bigint[] = [];
  for (let index = 0; index < info.out.num_regions; index++) {
    const name = REGION_NAMES[index] ?? `region ${index}`;
    let region = vmm.ioctl(fd, 'VFIO_DEVICE_GET_REGION_INFO', vfio_region_info, { index });
    if (region.rc === 0 && region.out.argsz > vfio_region_info.size) {
      trace.note(`argsz grew to ${region.out.argsz}: ${name} has a capability chain; ask again with room for it`);
      region = vmm.ioctl(fd, 'VFIO_DEVICE_GET_REGION_INFO', vfio_region_info, { index }, { room: region.out.argsz - vfio_region_info.size });
    }
    offsets[index] = region.out.offset;
    if (region.rc < 0) trace.note(`${name}: ${index === VFIO_PCI_VGA_REGION_INDEX ? 'not a VGA device' : 'no such region'}`);
    else if (region.out.size > 0n) trace.note(`${name}: ${sizeText(region.out.size)} at file offset ${hex(region.out.offset)}${describeCaps(region.out.cap_offset, region.tail)}`);
  }
  check(ctx, offsets[VFIO_PCI_CONFIG_REGION_INDEX] !== undefined, 'the config region is there');
  regionOffsets.set(dev, offsets);

  trace.line('');
  showConfigSpace(ctx, dev);

  trace.line('');
  trace.note('enable Memory Space and Bus Master, as a guest driver does (through the virtualized Command register)');
  const command = configRead(vmm, dev, PCI_COMMAND, 2);
  configWrite(vmm, dev, PCI_COMMAND, 2, command | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
  const enabled = configRead(vmm, dev, PCI_COMMAND, 2);
  check(ctx, (enabled & (PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER)) === (PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER), 'Memory Space and Bus Master read back enabled');

  trace.line('');
  const vs = barRead(vmm, dev, VFIO_PCI_BAR0_REGION_INDEX, REG_VS, 4);
  trace.note(`BAR0+0x08 VS = ${typeof vs === 'bigint' ? hex(vs) : vs}: NVMe ${typeof vs === 'bigint' ? `${vs >> 16n}.${(vs >> 8n) & 0xffn}` : '?'}`);
  check(ctx, vs === NVME_VERSION_1_4, 'a BAR read reaches the device model (NVMe VS register)');
  barWrite(vmm, dev, VFIO_PCI_BAR0_REGION_INDEX, SCRATCH_REGISTER, 4, 0xcafef00dn);
  const back = barRead(vmm, dev, VFIO_PCI_BAR0_REGION_INDEX, SCRATCH_REGISTER, 4);
  check(ctx, back === 0xcafef00dn, 'a BAR write reads back');
}

/** An offset in BAR 0 with no register behind it: plain device memory the reset step watches. */
export const SCRATCH_REGISTER = 0x100n;

/** Vendor and device id, Command, then the capability lists, walked as a driver walks them. */
function showConfigSpace(ctx: DemoContext, dev: OpenedDevice): void {
  const { vmm, trace } = ctx;
  const ids = configRead(vmm, dev, 0, 4);
  trace.note(`vendor ${hex(ids & 0xffff)} device ${hex(ids >>> 16)}`);
  check(ctx, ids === ((dev.fn.deviceId << 16) | dev.fn.vendorId) >>> 0, 'config space reads the function\'s vendor and device id');
  const command = configRead(vmm, dev, PCI_COMMAND, 2);
  trace.note(`Command ${hex(command)}: ${describeCommand(command)}`);

  const caps: string[] = [];
  let pos = configRead(vmm, dev, PCI_CAPABILITY_LIST, 1) & ~3;
  for (let guard = 0; pos !== 0 && guard < 48; guard++) {
    const header = configRead(vmm, dev, pos, 2);
    caps.push(`${hex(pos)} ${CAP_NAMES[header & 0xff] ?? `cap ${hex(header & 0xff)}`}`);
    pos = (header >>> 8) & ~3;
  }
  trace.note(`capabilities: ${caps.join(', ') || 'none'}`);
  const ext: string[] = [];
  for (let at = 0x100, guard = 0; at !== 0 && dev.fn.cfgSize > 0x100 && guard < 64; guard++) {
    const header = configRead(vmm, dev, at, 4);
    if (header === 0 || header === 0xffffffff) break;
    ext.push(`${hex(at)} ${EXT_CAP_NAMES[header & 0xffff] ?? `ext cap ${hex(header & 0xffff)}`}`);
    at = (header >>> 20) & ~3;
  }
  trace.note(`extended capabilities: ${ext.join(', ') || 'none'}`);
  check(ctx, caps.some((cap) => cap.endsWith('MSI-X')), 'the capability walk finds MSI-X');
}

function sizeText(size: bigint): string {
  if (size >= 1n << 20n && size % (1n << 20n) === 0n) return `${size >> 20n} MiB`;
  if (size >= 1024n && size % 1024n === 0n) return `${size >> 10n} KiB`;
  return `${size} bytes`;
}

/** The region's capability chain (offsets count from the start of struct vfio_region_info), in words. */
function describeCaps(capOffset: number, tail: Uint8Array): string {
  const parts: string[] = [];
  for (let at = capOffset, guard = 0; at !== 0 && guard < 8; guard++) {
    const from = at - vfio_region_info.size;
    if (from < 0 || from + vfio_info_cap_header.size > tail.length) break;
    const header = vfio_info_cap_header.decode(tail, from);
    if (header.id === VFIO_REGION_INFO_CAP_SPARSE_MMAP) {
      const cap = vfio_region_info_cap_sparse_mmap.decode(tail, from);
      const areas = Array.from({ length: cap.nr_areas }, (_, i) =>
        vfio_region_sparse_mmap_area.decode(tail, from + vfio_region_info_cap_sparse_mmap.size + i * vfio_region_sparse_mmap_area.size));
      parts.push(`mmap-able only at ${areas.map((a) => `[${hex(a.offset)}, ${hex(a.offset + a.size)})`).join(' ')}`);
    } else if (header.id === VFIO_REGION_INFO_CAP_MSIX_MAPPABLE) {
      parts.push('the MSI-X table may be mmapped too (VFIO_REGION_INFO_CAP_MSIX_MAPPABLE)');
    } else {
      parts.push(`capability ${header.id}`);
    }
    at = header.next;
  }
  return parts.length ? `; ${parts.join('; ')}` : '';
}

function describeCommand(command: number): string {
  const bits = [[0x1, 'I/O'], [0x2, 'Memory'], [0x4, 'BusMaster'], [0x400, 'INTx-disable']] as const;
  const on = bits.filter(([bit]) => command & bit).map(([, name]) => name);
  return on.length ? on.join(' ') : 'nothing enabled';
}
