import { describe, expect, it } from 'vitest';
import {
  createHost,
  EFD_NONBLOCK,
  IommufdHandle,
  mockIommu,
  pciSignalMsi,
  VFIO_PCI_BAR0_REGION_INDEX,
  VFIO_PCI_MSIX_IRQ_INDEX,
  VFIO_PCI_NUM_IRQS,
  VFIO_PCI_NUM_REGIONS,
  VfioDeviceHandle,
} from '@vfiosim/core';
import { vfioPci } from '../src/index.js';

describe('a vfio-pci device through the typed API', () => {
  it('opens through its cdev, binds to iommufd, reads config and regions, takes an MSI-X interrupt and resets', () => {
    const host = createHost(
      { devices: [{ bdf: '0000:00:02.0', vendorId: 0x1af4, deviceId: 0x1041, driver: 'vfio-pci' }] },
      { plugins: [mockIommu(), vfioPci()] },
    );
    const fn = host.platform.get('0000:00:02.0');
    const proc = host.spawn();
    const iommufd = IommufdHandle.open(proc);
    const device = VfioDeviceHandle.openCdev(proc, host.vfio.cdevPath(host.vfio.devices[0]!));
    expect(device.bindIommufd(iommufd)).toBeGreaterThan(0);
    device.attachPt(iommufd.ioasAlloc());

    expect(device.getInfo()).toMatchObject({ type: 'pci', resettable: true, numRegions: VFIO_PCI_NUM_REGIONS, numIrqs: VFIO_PCI_NUM_IRQS });
    expect(device.readConfig(0, 4)).toBe(0x10411af4);
    expect(device.regionInfo(VFIO_PCI_BAR0_REGION_INDEX)).toMatchObject({ size: 0x4000n, mmappable: true, msixMappable: true });

    const vector = proc.eventfd(0, EFD_NONBLOCK);
    device.enableIrqs(VFIO_PCI_MSIX_IRQ_INDEX, [vector]);
    pciSignalMsi(fn, 0);
    const count = new Uint8Array(8);
    expect(proc.read(vector, count)).toBe(8);
    expect(new DataView(count.buffer).getBigUint64(0, true)).toBe(1n);

    const resets = fn.resetCount;
    device.reset();
    expect(fn.resetCount).toBe(resets + 1);
    device.close();
    iommufd.close();
  });
});
