import { describe, expect, it } from 'vitest';
import {
  createHost,
  Errno,
  mockIommu,
  PCI_VENDOR_ID,
  VFIO_DEVICE_BIND_IOMMUFD,
  VFIO_DEVICE_FLAGS_PCI,
  VFIO_DEVICE_FLAGS_RESET,
  VFIO_DEVICE_GET_INFO,
  VFIO_DEVICE_SET_IRQS,
  VFIO_IRQ_SET_ACTION_TRIGGER,
  VFIO_IRQ_SET_DATA_EVENTFD,
  VFIO_PCI_CONFIG_REGION_INDEX,
  VFIO_PCI_NUM_IRQS,
  VFIO_PCI_NUM_REGIONS,
  VFIO_PCI_REQ_IRQ_INDEX,
  VFIO_UNREGISTER_REQUEST_INTERVAL_NS,
  vfio_device_bind_iommufd,
  vfio_device_info,
  vfio_irq_set,
  vfioPciIndexToOffset,
  type HostDescription,
  type Process,
  type VfioDevice,
} from '@vfiosim/core';
import { vfioPci, vfioPciOps, type VfioPciOptions } from '../src/index.js';

type DeviceDescription = NonNullable<HostDescription['devices']>[number];

function host(devices: DeviceDescription[], options?: VfioPciOptions) {
  return createHost({ devices }, { plugins: [mockIommu(), vfioPci(options)] });
}

/** Opens a device's cdev and binds it to a fresh iommufd, as a VMM does. */
function openDevice(proc: Process, path: string): number {
  const scratch = proc.mmap(0x1000);
  const iommufd = proc.open('/dev/iommu');
  const fd = proc.open(path);
  expect(fd).toBeGreaterThanOrEqual(0);
  proc.mem.write(scratch, vfio_device_bind_iommufd.encodeNew({ argsz: vfio_device_bind_iommufd.size, flags: 0, iommufd }));
  expect(proc.ioctl(fd, VFIO_DEVICE_BIND_IOMMUFD, scratch)).toBe(0);
  return fd;
}

describe('vfio-pci plugin', () => {
  it('is a frozen plugin named vfio-pci', () => {
    const plugin = vfioPci();
    expect(plugin.name).toBe('vfio-pci');
    expect(Object.isFrozen(plugin)).toBe(true);
    expect(vfioPciOps.name).toBe('vfio-pci');
  });

  it('binds only the devices whose driver_override names it', () => {
    const h = host([
      { bdf: '0000:00:02.0', vendorId: 0x1af4, deviceId: 0x1041, driver: 'vfio-pci' },
      { bdf: '0000:00:03.0', vendorId: 0x1af4, deviceId: 0x1041 },
    ]);
    const bound = h.platform.get('0000:00:02.0');
    const other = h.platform.get('0000:00:03.0');
    expect(h.drivers.driverName(bound)).toBe('vfio-pci');
    expect(h.drivers.driverName(other)).toBeNull();
    expect(h.vfio.devices.map((d: VfioDevice) => d.dev)).toEqual([bound]);
    expect(h.vfio.devices[0]!.ops).toBe(vfioPciOps);

    h.drivers.setDriverOverride(other, 'vfio-pci');
    expect(h.drivers.probeDevice(other)).toBe(true);
    expect(h.vfio.devices).toHaveLength(2);
  });

  it('also binds the vendor:device pairs given as ids', () => {
    const h = host(
      [
        { bdf: '0000:00:02.0', vendorId: 0x1af4, deviceId: 0x1041 },
        { bdf: '0000:00:03.0', vendorId: 0x1af4, deviceId: 0x1042 },
      ],
      { ids: [{ vendor: 0x1af4, device: 0x1042 }] },
    );
    expect(h.drivers.driverName(h.platform.get('0000:00:02.0'))).toBeNull();
    expect(h.drivers.driverName(h.platform.get('0000:00:03.0'))).toBe('vfio-pci');
  });

  it('refuses the QuickAssist devices on its denylist unless the denylist is disabled', () => {
    const qat: DeviceDescription = { bdf: '0000:00:02.0', vendorId: 0x8086, deviceId: 0x37c8, driver: 'vfio-pci' };
    const refused = host([qat]);
    expect(refused.drivers.driverName(refused.platform.get(qat.bdf))).toBeNull();
    expect(refused.vfio.devices).toHaveLength(0);

    const allowed = host([qat], { disableDenylist: true });
    expect(allowed.drivers.driverName(allowed.platform.get(qat.bdf))).toBe('vfio-pci');
  });

  it('fails the probe of a bus device that is not one of the platform\'s PCI functions with ENODEV', () => {
    const h = host([]);
    const stranger = { name: '0000:00:09.0', vendorId: 0x1af4, deviceId: 0x1041, subsystemVendorId: 0x1af4, subsystemId: 0x1100, classCode: 0x020000 };
    h.drivers.addPciDevice(stranger, 'vfio-pci');
    expect(h.drivers.driverName(stranger)).toBeNull();
    expect(h.vfio.devices).toHaveLength(0);
    let errno = 0;
    try {
      h.drivers.bind(stranger, 'vfio-pci');
    } catch (error) {
      errno = (error as { errno: number }).errno;
    }
    expect(errno).toBe(Errno.ENODEV);
    expect(h.drivers.log.messages.at(-1)?.text).toMatch(/vfio-pci: probe failed with error -19/);
  });

  it('puts an idle device in D3hot unless disable_idle_d3 is set', () => {
    const device: DeviceDescription = { bdf: '0000:00:02.0', vendorId: 0x1af4, deviceId: 0x1041, driver: 'vfio-pci' };
    expect(host([device]).platform.get(device.bdf).powerState).toBe('D3hot');
    expect(host([device], { disableIdleD3: true }).platform.get(device.bdf).powerState).toBe('D0');
  });
});

describe('a device bound to vfio-pci', () => {
  const device: DeviceDescription = { bdf: '0000:00:02.0', vendorId: 0x1af4, deviceId: 0x1041, driver: 'vfio-pci' };

  it('answers VFIO_DEVICE_GET_INFO and config reads through its cdev', () => {
    const h = host([device]);
    const proc = h.spawn();
    const fd = openDevice(proc, h.vfio.cdevPath(h.vfio.devices[0]!));
    expect(h.platform.get(device.bdf).powerState).toBe('D0');

    const at = proc.mmap(0x1000);
    proc.mem.write(at, vfio_device_info.encodeNew({ argsz: vfio_device_info.size }));
    expect(proc.ioctl(fd, VFIO_DEVICE_GET_INFO, at)).toBe(0);
    expect(vfio_device_info.decode(proc.mem.read(at, vfio_device_info.size) as Uint8Array)).toMatchObject({
      flags: VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET,
      num_regions: VFIO_PCI_NUM_REGIONS,
      num_irqs: VFIO_PCI_NUM_IRQS,
    });

    const id = new Uint8Array(4);
    expect(proc.pread(fd, id, vfioPciIndexToOffset(VFIO_PCI_CONFIG_REGION_INDEX) + BigInt(PCI_VENDOR_ID))).toBe(4);
    expect([...id]).toEqual([0xf4, 0x1a, 0x41, 0x10]);
  });

  it('asks userspace for the device through the REQ eventfd on unbind, and finishes once it is closed', async () => {
    const h = host([device]);
    const fn = h.platform.get(device.bdf);
    const proc = h.spawn();
    const fd = openDevice(proc, h.vfio.cdevPath(h.vfio.devices[0]!));
    const req = proc.eventfd(0);
    const at = proc.mmap(0x1000);
    const header = vfio_irq_set.encodeNew({
      argsz: vfio_irq_set.size + 4,
      flags: VFIO_IRQ_SET_ACTION_TRIGGER | VFIO_IRQ_SET_DATA_EVENTFD,
      index: VFIO_PCI_REQ_IRQ_INDEX,
      start: 0,
      count: 1,
    });
    const args = new Uint8Array(vfio_irq_set.size + 4);
    args.set(header.subarray(0, vfio_irq_set.size));
    new DataView(args.buffer).setInt32(vfio_irq_set.size, req, true);
    proc.mem.write(at, args);
    expect(proc.ioctl(fd, VFIO_DEVICE_SET_IRQS, at)).toBe(0);

    let done = false;
    const unbind = h.drivers.unbind(fn, 'vfio-pci').then(() => (done = true));
    await Promise.resolve();
    const count = new Uint8Array(8);
    expect(proc.read(req, count)).toBe(8);
    expect(count[0]).toBe(1);
    expect(done).toBe(false);
    // Unregister keeps asking every 10 virtual seconds until the user lets go.
    h.clock.advance(VFIO_UNREGISTER_REQUEST_INTERVAL_NS);
    expect(proc.read(req, count)).toBe(8);
    expect(count[0]).toBe(1);
    expect(done).toBe(false);

    expect(proc.close(fd)).toBe(0);
    await unbind;
    expect(h.vfio.devices).toHaveLength(0);
    expect(h.drivers.driverName(fn)).toBeNull();
    expect(fn.powerState).toBe('D0');
    expect(proc.open('/dev/vfio/devices/vfio0')).toBe(-Errno.ENOENT);
  });
});

describe('unloading vfio-pci', () => {
  const device: DeviceDescription = { bdf: '0000:00:02.0', vendorId: 0x1af4, deviceId: 0x1041, driver: 'vfio-pci' };

  it('is refused with EAGAIN while one of its devices is open, changing nothing, and unbinds every device once closed', async () => {
    const h = host([device]);
    const fn = h.platform.get(device.bdf);
    const driver = h.drivers.findDriver('pci', 'vfio-pci')!;
    const proc = h.spawn();
    const cdev = h.vfio.cdevPath(h.vfio.devices[0]!);
    const fd = openDevice(proc, cdev);
    expect(h.drivers.moduleOf(fn)!.refs).toBe(1);

    await expect(h.drivers.unregisterDriver(driver)).rejects.toMatchObject({ code: 'MODULE_IN_USE', errno: Errno.EAGAIN });
    expect(h.drivers.driverName(fn)).toBe('vfio-pci');
    expect(h.vfio.devices).toHaveLength(1);
    // The open device keeps working.
    const id = new Uint8Array(2);
    expect(proc.pread(fd, id, vfioPciIndexToOffset(VFIO_PCI_CONFIG_REGION_INDEX))).toBe(2);

    expect(proc.close(fd)).toBe(0);
    expect(h.drivers.moduleOf(fn)!.refs).toBe(0);
    await h.drivers.unregisterDriver(driver);
    expect(h.drivers.findDriver('pci', 'vfio-pci')).toBeUndefined();
    expect(h.drivers.driverName(fn)).toBeNull();
    expect(h.vfio.devices).toEqual([]);
    expect(proc.open(cdev)).toBe(-Errno.ENOENT);
  });
});
