import { describe, expect, it, vi } from 'vitest';
import {
  EFD_NONBLOCK,
  Errno,
  IommufdHandle,
  PCI_COMMAND,
  PCI_COMMAND_MEMORY,
  PCI_CAP_ID_MSIX,
  PCI_EXP_DEVCAP2,
  PCI_MSIX_FLAGS,
  PCI_MSIX_FLAGS_ENABLE,
  SimError,
  SyscallError,
  VFIO_DEVICE_FLAGS_CAPS,
  VFIO_DEVICE_FLAGS_PCI,
  VFIO_DEVICE_INFO_CAP_PCI_ATOMIC_COMP,
  VFIO_PCI_ATOMIC_COMP32,
  VFIO_PCI_ATOMIC_COMP64,
  VFIO_DEVICE_FLAGS_RESET,
  VFIO_PCI_BAR0_REGION_INDEX,
  VFIO_PCI_CONFIG_REGION_INDEX,
  VFIO_PCI_INTX_IRQ_INDEX,
  VFIO_PCI_MSIX_IRQ_INDEX,
  VFIO_PCI_NUM_IRQS,
  VFIO_PCI_NUM_REGIONS,
  VFIO_PCI_REQ_IRQ_INDEX,
  VFIO_REGION_INFO_CAP_MSIX_MAPPABLE,
  VfioDeviceHandle,
  pciSignalMsi,
  type PciFunction,
  type Process,
} from '@vfiosim/core';
import { deviceHost } from './helpers.js';

/** How often the kernel signalled the eventfd since the last look (0 when it did not). */
function signals(proc: Process, fd: number): bigint {
  const buf = new Uint8Array(8);
  const rc = proc.read(fd, buf);
  return rc < 0 ? 0n : new DataView(buf.buffer).getBigUint64(0, true);
}

/** The MSI-X capability's flags as the function itself holds them. */
function msixFlags(fn: PciFunction): number {
  for (let pos = fn.config.read(0x34, 1); pos; pos = fn.config.read(pos + 1, 1)) {
    if (fn.config.read(pos, 1) === PCI_CAP_ID_MSIX) return fn.config.read(pos + PCI_MSIX_FLAGS, 2);
  }
  throw new Error(`${fn.name} has no MSI-X capability`);
}

/** A VMM that opened the device's cdev and bound it to a fresh iommufd. */
function boundDevice(device = {}) {
  const rig = deviceHost(device);
  const proc = rig.host.spawn();
  const iommufd = IommufdHandle.open(proc);
  const device_ = VfioDeviceHandle.openCdev(proc, rig.host.vfio.cdevPath(rig.vdev));
  const devid = device_.bindIommufd(iommufd);
  return { ...rig, proc, iommufd, device: device_, devid };
}

/** What a failing call threw, for asserting on it. */
function thrown(body: () => unknown): unknown {
  try {
    body();
  } catch (error) {
    return error;
  }
  throw new Error('expected the call to throw');
}

describe('VfioDeviceHandle on a device cdev', () => {
  it('binds to iommufd, attaches to an IOAS through the HWPT the kernel made, and detaches', () => {
    const { iommufd, device, devid, vdev } = boundDevice();
    expect(devid).toBe(vdev.iommufdDevId);
    expect(devid).toBeGreaterThan(0);
    const ioas = iommufd.ioasAlloc();
    const hwpt = device.attachPt(ioas);
    expect(hwpt).not.toBe(ioas);
    expect(vdev.iommufdAttached).toBe(true);
    device.detachPt();
    expect(vdev.iommufdAttached).toBe(false);
  });

  it('hands the kernel a VF token with the bind: a PF takes it as its token, another device refuses it', () => {
    const token = Uint8Array.from({ length: 16 }, (_, i) => i + 1);
    const pf = deviceHost({ extendedCapabilities: { sriov: { totalVfs: 2 } } });
    const proc = pf.host.spawn();
    const device = VfioDeviceHandle.openCdev(proc, pf.host.vfio.cdevPath(pf.vdev));
    device.bindIommufd(IommufdHandle.open(proc), { token });
    expect([...pf.vdev.vfToken!.uuid]).toEqual([...token]);

    const plain = deviceHost();
    const other = plain.host.spawn();
    const handle = VfioDeviceHandle.openCdev(other, plain.host.vfio.cdevPath(plain.vdev));
    expect(thrown(() => handle.bindIommufd(IommufdHandle.open(other), { token }))).toMatchObject({ errnoName: 'EINVAL', request: 'VFIO_DEVICE_BIND_IOMMUFD' });
    expect(plain.vdev.openCount).toBe(0);
  });

  it('keeps working after exec() replaced the address space its arguments live in', () => {
    const { device, proc } = boundDevice();
    expect(device.readConfig(0, 2)).toBe(0x1af4);
    expect(proc.exec()).toBe(0);
    expect(device.getInfo().type).toBe('pci');
    expect(device.readConfig(0, 2)).toBe(0x1af4);
  });

  it('gets the kernel\'s EINVAL for every call but the bind until it is bound', () => {
    const { host, vdev } = deviceHost();
    const proc = host.spawn();
    const device = VfioDeviceHandle.openCdev(proc, host.vfio.cdevPath(vdev));
    const error = thrown(() => device.getInfo());
    expect(error).toBeInstanceOf(SyscallError);
    expect(error).toMatchObject({ errno: Errno.EINVAL, errnoName: 'EINVAL', syscall: 'ioctl', request: 'VFIO_DEVICE_GET_INFO', fd: device.fd });
    // Region access needs the region's offset first, which GET_REGION_INFO refuses as well.
    expect(thrown(() => device.readConfig(0, 2))).toMatchObject({ errnoName: 'EINVAL', request: 'VFIO_DEVICE_GET_REGION_INFO' });
    expect(vdev.openCount).toBe(0);
  });

  it('opens a cdev by its number as well as by path', () => {
    const { host, vdev } = deviceHost();
    const proc = host.spawn();
    const device = VfioDeviceHandle.openCdev(proc, vdev.index);
    device.bindIommufd(IommufdHandle.open(proc));
    expect(vdev.openCount).toBe(1);
    expect(thrown(() => VfioDeviceHandle.openCdev(proc, 99))).toMatchObject({ errnoName: 'ENOENT', syscall: 'open', path: '/dev/vfio/devices/vfio99' });
  });

  it('reports a resettable PCI device with the nine fixed regions and five interrupt indexes', () => {
    const { device } = boundDevice();
    const info = device.getInfo();
    expect(info).toMatchObject({
      type: 'pci',
      resettable: true,
      flags: VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET,
      numRegions: VFIO_PCI_NUM_REGIONS,
      numIrqs: VFIO_PCI_NUM_IRQS,
      caps: [],
      pciAtomicComp: null,
    });
  });

  it('asks again with a larger argsz for the device info capability chain, and decodes the AtomicOp completions', () => {
    const rig = deviceHost({ bdf: '0000:01:00.0' }, { bridges: [{ bdf: '0000:00:01.0', kind: 'root-port', secondaryBus: 1 }] });
    const proc = rig.host.spawn();
    const device = VfioDeviceHandle.openCdev(proc, rig.host.vfio.cdevPath(rig.vdev));
    device.bindIommufd(IommufdHandle.open(proc));
    // Device Capabilities 2 (set after the open, whose reset would restore the described values):
    // the root port completes 32- and 64-bit AtomicOps, and so does the device.
    const port = rig.host.platform.get('0000:00:01.0');
    port.config.hwUpdate(port.pcieCap + PCI_EXP_DEVCAP2, 4, 0x380, 0x180);
    rig.fn.config.hwUpdate(rig.fn.pcieCap + PCI_EXP_DEVCAP2, 4, 0x380, 0x180);
    const ioctl = vi.spyOn(proc, 'ioctl');
    const info = device.getInfo();
    expect(ioctl).toHaveBeenCalledTimes(2);
    expect(info.flags & VFIO_DEVICE_FLAGS_CAPS).toBe(VFIO_DEVICE_FLAGS_CAPS);
    expect(info.caps.map((cap) => ({ id: cap.id, version: cap.version, offset: cap.offset }))).toEqual([
      { id: VFIO_DEVICE_INFO_CAP_PCI_ATOMIC_COMP, version: 1, offset: 24 },
    ]);
    expect(info.pciAtomicComp).toBe(VFIO_PCI_ATOMIC_COMP32 | VFIO_PCI_ATOMIC_COMP64);
  });

  it('reads the config space the device shows and writes the command register', () => {
    const { device, fn } = boundDevice();
    expect(device.readConfig(0, 2)).toBe(0x1af4);
    expect(device.readConfig(2, 2)).toBe(0x1041);
    device.writeConfig(PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
    expect(device.readConfig(PCI_COMMAND, 2) & PCI_COMMAND_MEMORY).toBe(PCI_COMMAND_MEMORY);
    expect(fn.config.read(PCI_COMMAND, 2) & PCI_COMMAND_MEMORY).toBe(PCI_COMMAND_MEMORY);
  });

  it('describes the config region and the MSI-X BAR with its MSIX_MAPPABLE capability, fetched with a larger argsz', () => {
    const { device, vdev } = boundDevice();
    const config = device.regionInfo(VFIO_PCI_CONFIG_REGION_INDEX);
    expect(config).toMatchObject({ index: VFIO_PCI_CONFIG_REGION_INDEX, size: BigInt(vdev.pdev.cfgSize), readable: true, writable: true, mmappable: false, caps: [] });
    const bar0 = device.regionInfo(VFIO_PCI_BAR0_REGION_INDEX);
    expect(bar0).toMatchObject({ mmappable: true, msixMappable: true, type: null, sparseMmap: null, size: 0x4000n });
    expect(bar0.caps.map((cap) => cap.id)).toEqual([VFIO_REGION_INFO_CAP_MSIX_MAPPABLE]);
    expect(bar0.offset).not.toBe(config.offset);
  });

  it('describes each interrupt index', () => {
    const { device } = boundDevice();
    expect(device.irqInfo(VFIO_PCI_INTX_IRQ_INDEX)).toMatchObject({ count: 1, eventfd: true, maskable: true, automasked: true, noresize: false });
    expect(device.irqInfo(VFIO_PCI_MSIX_IRQ_INDEX)).toMatchObject({ count: 8, eventfd: true, maskable: false, noresize: false });
    expect(device.irqInfo(VFIO_PCI_REQ_IRQ_INDEX)).toMatchObject({ count: 1, eventfd: true, maskable: false, noresize: true });
  });

  it('sets up MSI-X with eventfds, sees the device raise a vector, and disables it again', () => {
    const { device, proc, fn } = boundDevice();
    const vectors = [proc.eventfd(0, EFD_NONBLOCK), proc.eventfd(0, EFD_NONBLOCK)];
    device.enableIrqs(VFIO_PCI_MSIX_IRQ_INDEX, vectors);
    expect(msixFlags(fn) & PCI_MSIX_FLAGS_ENABLE).toBe(PCI_MSIX_FLAGS_ENABLE);
    pciSignalMsi(fn, 1);
    expect(signals(proc, vectors[1]!)).toBe(1n);
    expect(signals(proc, vectors[0]!)).toBe(0n);
    device.setIrqs({ index: VFIO_PCI_MSIX_IRQ_INDEX, data: { type: 'bool', values: [true, false] } });
    expect(signals(proc, vectors[0]!)).toBe(1n);
    device.disableIrqs(VFIO_PCI_MSIX_IRQ_INDEX);
    expect(msixFlags(fn) & PCI_MSIX_FLAGS_ENABLE).toBe(0);
    pciSignalMsi(fn, 1);
    expect(signals(proc, vectors[1]!)).toBe(0n);
  });

  it('masks and unmasks INTx with DATA_NONE', () => {
    const { device, vdev, proc } = boundDevice();
    device.enableIrqs(VFIO_PCI_INTX_IRQ_INDEX, [proc.eventfd(0, EFD_NONBLOCK)]);
    device.setIrqs({ index: VFIO_PCI_INTX_IRQ_INDEX, action: 'mask', data: { type: 'none', count: 1 } });
    expect(vdev.irqCtx.get(0)!.masked).toBe(true);
    device.setIrqs({ index: VFIO_PCI_INTX_IRQ_INDEX, action: 'unmask', data: { type: 'none', count: 1 } });
    expect(vdev.irqCtx.get(0)!.masked).toBe(false);
  });

  it('passes the kernel\'s refusals on as SyscallError: a bad index, an fd that is not an eventfd', () => {
    const { device, vdev, proc } = boundDevice();
    expect(thrown(() => device.regionInfo(VFIO_PCI_NUM_REGIONS))).toMatchObject({ errnoName: 'EINVAL', request: 'VFIO_DEVICE_GET_REGION_INFO' });
    expect(thrown(() => device.irqInfo(VFIO_PCI_NUM_IRQS))).toMatchObject({ errnoName: 'EINVAL', request: 'VFIO_DEVICE_GET_IRQ_INFO' });
    const memfd = proc.memfdCreate('not-an-eventfd');
    expect(thrown(() => device.enableIrqs(VFIO_PCI_MSIX_IRQ_INDEX, [memfd]))).toMatchObject({ errnoName: 'EINVAL', request: 'VFIO_DEVICE_SET_IRQS' });
    expect(thrown(() => device.enableIrqs(VFIO_PCI_MSIX_IRQ_INDEX, [memfd + 10]))).toMatchObject({ errnoName: 'EBADF' });
    expect(vdev.irqType).toBe(VFIO_PCI_NUM_IRQS);
  });

  it('resets the device', () => {
    const { device, fn } = boundDevice();
    device.writeConfig(PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
    const resets = fn.resetCount;
    device.reset();
    expect(fn.resetCount).toBe(resets + 1);
    // The command register the user programmed survives the reset.
    expect(device.readConfig(PCI_COMMAND, 2) & PCI_COMMAND_MEMORY).toBe(PCI_COMMAND_MEMORY);
  });

  it('maps a BAR and reaches the device through the mapping', () => {
    const { device, proc, fn } = boundDevice();
    device.writeConfig(PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
    const va = device.mmapRegion(VFIO_PCI_BAR0_REGION_INDEX, 0, 0x1000);
    expect(proc.mem.writeU32(va + 0x10n, 0xfeedf00d)).toBe(0);
    expect(fn.readBar(0, 0x10n, 4)).toBe(0xfeedf00dn);
    expect([...device.readRegion(VFIO_PCI_BAR0_REGION_INDEX, 0x10, 4)]).toEqual([0x0d, 0xf0, 0xed, 0xfe]);
  });

  it('refuses values that cannot be encoded before making any system call', () => {
    const { device, proc } = boundDevice();
    const ioctl = vi.spyOn(proc, 'ioctl');
    const pread = vi.spyOn(proc, 'pread');
    for (const call of [
      () => device.regionInfo(-1),
      () => device.irqInfo(2 ** 32),
      () => device.setIrqs({ index: VFIO_PCI_MSIX_IRQ_INDEX, data: { type: 'eventfd', fds: [1.5] } }),
      () => device.setIrqs({ index: VFIO_PCI_MSIX_IRQ_INDEX, data: { type: 'lots' } } as never),
      () => device.probeFeature(0x10000),
      () => device.readConfig(0, 3 as never),
      () => device.attachPt(1, { pasid: -1 }),
      () => device.bindIommufd(3, { token: new Uint8Array(15) }),
    ]) {
      const error = thrown(call);
      expect(error).toBeInstanceOf(SimError);
      expect(error).toMatchObject({ code: 'INVALID_API_INPUT', errnoName: 'EINVAL' });
    }
    expect(ioctl).not.toHaveBeenCalled();
    expect(pread).not.toHaveBeenCalled();
  });

  it('makes no call once closed and answers EBADF, since the fd number may be reused', () => {
    const { device, proc, vdev } = boundDevice();
    device.close();
    expect(device.closed).toBe(true);
    expect(vdev.openCount).toBe(0);
    const reused = proc.eventfd(0);
    expect(reused).toBe(device.fd);
    const ioctl = vi.spyOn(proc, 'ioctl');
    expect(thrown(() => device.getInfo())).toMatchObject({ errnoName: 'EBADF', request: 'VFIO_DEVICE_GET_INFO' });
    expect(thrown(() => device.readRegion(VFIO_PCI_CONFIG_REGION_INDEX, 0, 4))).toMatchObject({ errnoName: 'EBADF' });
    expect(ioctl).not.toHaveBeenCalled();
    device.close();
  });
});
