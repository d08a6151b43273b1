import { describe, expect, it } from 'vitest';
import {
  IommufdHandle,
  VFIO_PCI_NUM_REGIONS,
  VFIO_REGION_INFO_CAP_SPARSE_MMAP,
  VFIO_REGION_INFO_CAP_TYPE,
  VFIO_REGION_TYPE_PCI_VENDOR_TYPE,
  VfioDeviceHandle,
} from '@vfiosim/core';
import {
  ACME_CONFIG_REGISTER,
  ACME_FEATURE,
  ACME_REGION_SIZE,
  ACME_REGION_SUBTYPE,
  VARIANT_DRIVER,
  acmePlugin,
  type AcmeDevice,
} from '../pci-core/fixtures/variant-driver.js';
import { deviceHost } from './helpers.js';

/** The acme variant device, opened and bound through the typed API. */
function acmeDevice() {
  const { host, vdev } = deviceHost({ deviceId: 0x10f0 }, { plugins: [acmePlugin()], driver: VARIANT_DRIVER });
  const proc = host.spawn();
  const device = VfioDeviceHandle.openCdev(proc, host.vfio.cdevPath(vdev));
  device.bindIommufd(IommufdHandle.open(proc));
  return { proc, device, acme: vdev as AcmeDevice };
}

describe('a variant driver\'s additions through the typed API', () => {
  it('lists the vendor region after the fixed ones, with its type and sparse mmap capabilities decoded', () => {
    const { device } = acmeDevice();
    expect(device.getInfo().numRegions).toBe(VFIO_PCI_NUM_REGIONS + 1);
    const region = device.regionInfo(VFIO_PCI_NUM_REGIONS);
    expect(region).toMatchObject({
      size: ACME_REGION_SIZE,
      readable: true,
      writable: true,
      mmappable: true,
      type: { type: (VFIO_REGION_TYPE_PCI_VENDOR_TYPE | 0x1af4) >>> 0, subtype: ACME_REGION_SUBTYPE },
      sparseMmap: [{ offset: 0x1000n, size: 0x1000n }],
      msixMappable: false,
    });
    expect(region.caps.map((cap) => cap.id)).toEqual([VFIO_REGION_INFO_CAP_TYPE, VFIO_REGION_INFO_CAP_SPARSE_MMAP]);
  });

  it('writes and reads the vendor region at its offset', () => {
    const { device, acme } = acmeDevice();
    expect(device.writeRegion(VFIO_PCI_NUM_REGIONS, 0x10, new Uint8Array([1, 2, 3]))).toBe(3);
    expect([...acme.region.subarray(0x10, 0x13)]).toEqual([1, 2, 3]);
    expect([...device.readRegion(VFIO_PCI_NUM_REGIONS, 0x10, 3)]).toEqual([1, 2, 3]);
    // Clipped at the region's end, as the variant's rw op decides.
    expect(device.readRegion(VFIO_PCI_NUM_REGIONS, ACME_REGION_SIZE - 2n, 8)).toHaveLength(2);
  });

  it('goes through the variant\'s config write intercept', () => {
    const { device, acme } = acmeDevice();
    device.writeConfig(ACME_CONFIG_REGISTER, 4, 0xcafe0001);
    expect(acme.register).toBe(0xcafe0001);
    expect(device.readConfig(ACME_CONFIG_REGISTER, 4)).toBe(0xcafe0001);
  });

  it('probes, sets and gets the variant\'s device feature, and reads false for features nobody has', () => {
    const { device, acme } = acmeDevice();
    expect(device.probeFeature(ACME_FEATURE)).toBe(true);
    expect(device.probeFeature(ACME_FEATURE, { get: true, set: true })).toBe(true);
    expect(device.probeFeature(ACME_FEATURE + 1)).toBe(false);
    device.setFeature(ACME_FEATURE, new Uint8Array([0x78, 0x56, 0x34, 0x12]));
    expect(acme.knob).toBe(0x12345678);
    expect([...device.getFeature(ACME_FEATURE, 4)]).toEqual([0x78, 0x56, 0x34, 0x12]);
  });

  it('runs the variant\'s own reset work on reset()', () => {
    const { device, acme } = acmeDevice();
    acme.state = 'STOP';
    acme.events.length = 0;
    device.reset();
    expect(acme.state).toBe('RUNNING');
    expect(acme.events).toEqual(['before ioctl', 'reset ioctl flr', 'after ioctl']);
  });
});
