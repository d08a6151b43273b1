import { describe, expect, it } from 'vitest';
import {
  MAP_ANONYMOUS,
  MAP_SHARED,
  PCI_COMMAND,
  PCI_COMMAND_MASTER,
  PCI_COMMAND_MEMORY,
  PROT_READ,
  PROT_WRITE,
  VFIO_DEVICE_FLAGS_PCI,
  VFIO_DEVICE_FLAGS_RESET,
  VFIO_GROUP_FLAGS_CONTAINER_SET,
  VFIO_GROUP_FLAGS_VIABLE,
  VFIO_IOMMU_INFO_CAPS,
  VFIO_IOMMU_INFO_PGSIZES,
  VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE,
  VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION,
  VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL,
  VFIO_PCI_MSIX_IRQ_INDEX,
  VFIO_REGION_INFO_CAP_MSIX_MAPPABLE,
  VFIO_REGION_INFO_FLAG_CAPS,
  VFIO_REGION_INFO_FLAG_MMAP,
  VFIO_REGION_INFO_FLAG_READ,
  VFIO_REGION_INFO_FLAG_WRITE,
  pciSignalMsi,
  vfio_group_status,
  vfio_info_cap_header,
  vfio_iommu_type1_info_cap_iova_range,
  vfio_iommu_type1_info_cap_migration,
  vfio_iommu_type1_info_dma_avail,
  vfio_iova_range,
  type Host,
} from '@vfiosim/core';
import { DUAL_BDFS, NIC_BDF, dualPortNoFlrHost, nicHost } from './hosts.js';
import { readEventfd, Sysfs } from './libvfio/vfio-pci-device.js';
import { QemuLegacyContainer } from './qemu/legacy.js';
import { Syscalls } from './qemu/trace.js';
import { QemuVfioPci } from './qemu/vfio-pci.js';
import { User } from './user.js';

/*
 * `qemu-system-x86_64 -device vfio-pci,host=01:00.0` with the legacy
 * container (hw/vfio/container-legacy.c, device.c, pci.c), ioctl by ioctl.
 * Guest RAM sits at GPA 16 MiB, the start of the mock IOMMU's aperture
 * (a VT-d aperture would take it at 0).
 */

const GUEST_RAM_GPA = 16n << 20n;
const GUEST_RAM_SIZE = 64n << 20n;
const REGION_INFO_SIZE = 32;

interface Vm {
  host: Host;
  sys: Syscalls;
  container: QemuLegacyContainer;
  groupId: number;
  groupFd: number;
  ram: bigint;
}

/** The VM up to the point where the device is attached: group, container, RAM mapped by the listener. */
function startVm(): Vm {
  const host = nicHost();
  const sys = new Syscalls(new User(host.spawn()));
  const ram = sys.proc.mmap(GUEST_RAM_SIZE, { prot: PROT_READ | PROT_WRITE, flags: MAP_SHARED | MAP_ANONYMOUS });
  const container = new QemuLegacyContainer(sys);
  const groupId = new Sysfs(host).iommuGroup(NIC_BDF);
  const groupFd = container.groupGet(groupId);
  expect(container.dmaMap(GUEST_RAM_GPA, GUEST_RAM_SIZE, ram)).toBe(0);
  return { host, sys, container, groupId, groupFd, ram };
}

describe('QEMU vfio-pci realize on the legacy container', () => {
  it('attaches the group: GET_STATUS, API version, the richest type1, SET_CONTAINER, SET_IOMMU, the GET_INFO argsz dance', () => {
    const { sys, container, groupFd } = startVm();
    expect(sys.log).toEqual([
      `open(/dev/vfio/${new Sysfs(nicHost()).iommuGroup(NIC_BDF)})=3`,
      'VFIO_GROUP_GET_STATUS=0',
      'open(/dev/vfio/vfio)=4',
      'VFIO_GET_API_VERSION=0',
      'VFIO_CHECK_EXTENSION=1',
      'VFIO_GROUP_SET_CONTAINER=0',
      'VFIO_SET_IOMMU=0',
      'VFIO_IOMMU_GET_INFO=0',
      'VFIO_IOMMU_GET_INFO=0',
      'VFIO_IOMMU_MAP_DMA=0',
    ]);

    // The chain: migration (32 bytes), DMA avail (12, padded to 16), IOVA ranges (16 + 16 per range).
    const info = container.info!;
    expect(info.flags).toBe(VFIO_IOMMU_INFO_PGSIZES | VFIO_IOMMU_INFO_CAPS);
    expect(info.argsz).toBe(24 + 32 + 16 + 32);
    expect(info.cap_offset).toBe(24);
    expect(info.iova_pgsizes).toBe(0x1000n);
    const mig = container.infoCap(VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION)!;
    expect(mig).toBe(24);
    expect(vfio_iommu_type1_info_cap_migration.decode(container.infoBytes, mig)).toEqual({
      header: { id: VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION, version: 1, next: 56 },
      flags: 0,
      pgsize_bitmap: 0x1000n,
      max_dirty_bitmap_size: 0x10000000n,
    });
    const avail = container.infoCap(VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL)!;
    expect(vfio_iommu_type1_info_dma_avail.decode(container.infoBytes, avail)).toEqual({
      header: { id: VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL, version: 1, next: 72 },
      avail: 65535,
    });
    const ranges = container.infoCap(VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE)!;
    const cap = vfio_iommu_type1_info_cap_iova_range.decode(container.infoBytes, ranges);
    expect(cap).toMatchObject({ header: { id: VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, version: 1, next: 0 }, nr_iovas: 1 });
    expect(vfio_iova_range.decode(container.infoBytes, ranges + 16)).toEqual({ start: 16n << 20n, end: (2n << 30n) - 1n });

    const status = sys.ioctl(groupFd, 'VFIO_GROUP_GET_STATUS', vfio_group_status, { argsz: vfio_group_status.size });
    expect(status.out.flags).toBe(VFIO_GROUP_FLAGS_VIABLE | VFIO_GROUP_FLAGS_CONTAINER_SET);
  });

  it('realizes the device: GET_DEVICE_FD, device info, regions with the argsz dance, config, ROM sizing, MSI-X layout, BAR mmaps, INTx, ERR, REQ', () => {
    const { host, sys, container, groupFd } = startVm();
    sys.mark();
    const fd = container.getDeviceFd(groupFd, NIC_BDF);
    expect(fd).toBe(5);
    const dev = new QemuVfioPci(sys, fd);
    const info = dev.getDeviceInfo();
    expect(info).toMatchObject({ argsz: 24, flags: VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET, num_regions: 9, num_irqs: 5, cap_offset: 0 });
    dev.realize();

    expect(sys.log).toEqual([
      'VFIO_GROUP_GET_DEVICE_FD=5',
      'VFIO_DEVICE_GET_INFO=0',
      // vfio_populate_device: BAR 0..5; BAR 4 holds the MSI-X table, so its capability needs a second call.
      'VFIO_DEVICE_GET_REGION_INFO=0',
      'VFIO_DEVICE_GET_REGION_INFO=0',
      'VFIO_DEVICE_GET_REGION_INFO=0',
      'VFIO_DEVICE_GET_REGION_INFO=0',
      'VFIO_DEVICE_GET_REGION_INFO=0',
      'VFIO_DEVICE_GET_REGION_INFO=0',
      'VFIO_DEVICE_GET_REGION_INFO=0',
      'VFIO_DEVICE_GET_REGION_INFO=0',
      'VFIO_DEVICE_GET_IRQ_INFO=0',
      // The config space copy, then the ROM BAR sized through the device fd.
      'pread(4096)=4096',
      'pread(4)=4',
      'pwrite(4)=4',
      'pread(4)=4',
      'pwrite(4)=4',
      // vfio_bars_prepare: the three implemented BARs.
      'pread(4)=4',
      'pread(4)=4',
      'pread(4)=4',
      // vfio_msix_early_setup.
      'pread(2)=2',
      'pread(4)=4',
      'pread(4)=4',
      'VFIO_DEVICE_GET_IRQ_INFO=0',
      // vfio_bars_register: BAR 0 and BAR 4 (MSIX_MAPPABLE) are mapped whole.
      'mmap=' + dev.bars[0]!.mmap,
      'mmap=' + dev.bars[4]!.mmap,
      // vfio_msi_setup, vfio_intx_enable, the ERR and REQ notifiers.
      'pread(2)=2',
      'eventfd=6',
      'VFIO_DEVICE_SET_IRQS=0',
      'eventfd=7',
      'VFIO_DEVICE_SET_IRQS=0',
      'VFIO_DEVICE_GET_IRQ_INFO=0',
      'eventfd=8',
      'VFIO_DEVICE_SET_IRQS=0',
    ]);

    const rw = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
    const regions = dev.bars.map((bar) => bar.region.info);
    expect(regions.map((r) => [r.index, r.flags, r.size, r.offset])).toEqual([
      [0, rw | VFIO_REGION_INFO_FLAG_MMAP, 0x80000n, 0n],
      [1, 0, 0n, 1n << 40n],
      [2, rw, 32n, 2n << 40n],
      [3, 0, 0n, 3n << 40n],
      [4, rw | VFIO_REGION_INFO_FLAG_MMAP | VFIO_REGION_INFO_FLAG_CAPS, 0x4000n, 4n << 40n],
      [5, 0, 0n, 5n << 40n],
    ]);
    expect(regions.map((r) => [r.argsz, r.cap_offset])).toEqual([
      [32, 0],
      [32, 0],
      [32, 0],
      [32, 0],
      [40, 32],
      [32, 0],
    ]);
    expect(vfio_info_cap_header.decode(dev.bars[4]!.region.bytes, REGION_INFO_SIZE)).toEqual({
      id: VFIO_REGION_INFO_CAP_MSIX_MAPPABLE,
      version: 1,
      next: 0,
    });
    expect(dev.configSize).toBe(4096n);
    expect(dev.configOffset).toBe(7n << 40n);
    expect(dev.pciAer).toBe(true);

    // What the device really is, through the config copy.
    const view = new DataView(dev.config.buffer);
    expect(view.getUint16(0, true)).toBe(0x8086);
    expect(view.getUint16(2, true)).toBe(0x10fb);
    expect(dev.romSize).toBe(0);
    expect(dev.bars.map((bar) => [bar.ioport, bar.mem64])).toEqual([
      [false, true],
      [false, false],
      [true, false],
      [false, false],
      [false, true],
      [false, false],
    ]);
    expect(dev.msix).toEqual({ tableBar: 4, tableOffset: 0, pbaBar: 4, pbaOffset: 0x2000, entries: 64, noresize: false });
    expect(host.platform.get(NIC_BDF).powerState).toBe('D0');
  });

  it('enables MSI-X the way the guest does: no vector first, then vectors added one by one; the device interrupt reaches the eventfd', () => {
    const { host, sys, container, groupFd } = startVm();
    const dev = new QemuVfioPci(sys, container.getDeviceFd(groupFd, NIC_BDF));
    dev.getDeviceInfo();
    dev.realize();
    const fn = host.platform.get(NIC_BDF);

    // The guest driver sets Memory Space and Bus Master; QEMU passes the write through.
    const command = dev.configOffset + BigInt(PCI_COMMAND);
    expect(sys.pwrite(dev.fd, new Uint8Array([PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, 0]), command)).toBe(2);

    sys.mark();
    dev.msixEnable();
    const fd3 = dev.msixVectorUse(3);
    const fd0 = dev.msixVectorUse(0);
    expect(sys.log).toEqual([
      // vfio_intx_disable: INTx torn down, its eventfd closed; then MSI-X with vector 0 given fd -1.
      'VFIO_DEVICE_SET_IRQS=0',
      'close=0',
      'VFIO_DEVICE_SET_IRQS=0',
      // The kernel can add MSI-X vectors while enabled (no NORESIZE), so each vector goes alone.
      'eventfd=6',
      'VFIO_DEVICE_SET_IRQS=0',
      'eventfd=9',
      'VFIO_DEVICE_SET_IRQS=0',
    ]);

    pciSignalMsi(fn, 3);
    expect(readEventfd(sys.user, fd3)).toBe(1n);
    pciSignalMsi(fn, 0);
    expect(readEventfd(sys.user, fd0)).toBe(1n);
    // Vector 1 was never given an eventfd: it stays unallocated and silent.
    pciSignalMsi(fn, 1);
    expect(dev.getIrqInfo(VFIO_PCI_MSIX_IRQ_INDEX).info.count).toBe(64);

    dev.msixDisable();
    expect(dev.interrupt).toBe('intx');
  });

  it('lets the device DMA into guest RAM through the container mapping and unmaps everything in two halves', () => {
    const { host, sys, container, groupFd, ram } = startVm();
    const dev = new QemuVfioPci(sys, container.getDeviceFd(groupFd, NIC_BDF));
    dev.getDeviceInfo();
    dev.realize();
    const fn = host.platform.get(NIC_BDF);
    // The guest driver turns on Memory Space and Bus Master before the NIC may DMA.
    expect(sys.pwrite(dev.fd, new Uint8Array([PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, 0]), dev.configOffset + BigInt(PCI_COMMAND))).toBe(2);

    const packet = new TextEncoder().encode('a received frame');
    host.dma.dmaWrite(fn, GUEST_RAM_GPA + 0x1000n, packet);
    expect(sys.user.read(ram + 0x1000n, packet.length)).toEqual(packet);

    sys.user.proc.mem.write(ram + 0x2000n, new TextEncoder().encode('a frame to send'));
    expect(new TextDecoder().decode(host.dma.dmaRead(fn, GUEST_RAM_GPA + 0x2000n, 15))).toBe('a frame to send');

    expect(container.dmaUnmapAll()).toEqual({ rc: 0, sizes: [GUEST_RAM_SIZE, 0n] });
    expect(host.dma.tryDmaWrite(fn, GUEST_RAM_GPA + 0x1000n, packet)).toMatchObject({ iova: GUEST_RAM_GPA + 0x1000n });
  });

  it('tears down as QEMU does: device fd, UNSET_CONTAINER, container, group', () => {
    const { host, sys, container, groupFd, groupId } = startVm();
    const fd = container.getDeviceFd(groupFd, NIC_BDF);
    sys.mark();
    expect(sys.close(fd)).toBe(0);
    container.groupPut(groupId);
    expect(sys.log).toEqual(['close=0', 'VFIO_GROUP_UNSET_CONTAINER=0', 'close=0', 'close=0']);
    // The group is free again: another VM can take it.
    const other = new Syscalls(new User(host.spawn()));
    expect(new QemuLegacyContainer(other).groupGet(groupId)).toBe(3);
  });

  it('hot-resets both functions of a group through vfio_legacy_pci_hot_reset: the info dance, then the one group fd', () => {
    const host = dualPortNoFlrHost();
    const sys = new Syscalls(new User(host.spawn()));
    const container = new QemuLegacyContainer(sys);
    const groupId = new Sysfs(host).iommuGroup(DUAL_BDFS[0]);
    expect(new Sysfs(host).iommuGroup(DUAL_BDFS[1])).toBe(groupId);
    const groupFd = container.groupGet(groupId);
    const devs = DUAL_BDFS.map((bdf) => {
      const dev = new QemuVfioPci(sys, container.getDeviceFd(groupFd, bdf));
      expect(dev.getDeviceInfo().flags).toBe(VFIO_DEVICE_FLAGS_PCI);
      dev.realize();
      return dev;
    });

    sys.mark();
    const { rc, info, devices } = devs[0]!.getHotResetInfo();
    expect(sys.log).toEqual(['VFIO_DEVICE_GET_PCI_HOT_RESET_INFO=-28', 'VFIO_DEVICE_GET_PCI_HOT_RESET_INFO=0']);
    expect(rc).toBe(0);
    // A group-opened device gets group ids and no DEV_ID flags.
    expect(info.flags).toBe(0);
    expect(devices.map((d) => [d.group_id, d.segment, d.bus, d.devfn])).toEqual([
      [groupId, 0, 0x0a, 0],
      [groupId, 0, 0x0a, 1],
    ]);

    const fns = DUAL_BDFS.map((bdf) => host.platform.get(bdf));
    const before = fns.map((fn) => fn.resetCount);
    // Every group of the affected devices, once: here the one group.
    expect(devs[0]!.hotReset([groupFd])).toBe(0);
    expect(fns.map((fn) => fn.resetCount)).toEqual(before.map((n) => n + 1));
    expect(fns.map((fn) => fn.lastReset)).toEqual(['bus', 'bus']);
  });
});
