import { createHost, mockIommu, type Host, type HostDescription, type PciFunction, type VfioPciCoreDevice, type VfioSimPlugin } from '@vfiosim/core';
import { PLAIN_DRIVER, plainDriverPlugin } from '../pci-core/fixtures/plain-driver.js';

export const BDF = '0000:00:02.0';

type DeviceDescription = NonNullable<HostDescription['devices']>[number];

/**
 * A host with the mock IOMMU and one device bound to a vfio-pci-core
 * driver (the plain one unless `plugins` and `driver` name another), as a
 * VMM finds it before it opens anything.
 */
export function deviceHost(
  device: Partial<DeviceDescription> = {},
  options: { plugins?: VfioSimPlugin[]; driver?: string; bridges?: HostDescription['bridges'] } = {},
): { host: Host; fn: PciFunction; vdev: VfioPciCoreDevice } {
  const host = createHost(
    { bridges: options.bridges ?? [], devices: [{ bdf: BDF, vendorId: 0x1af4, deviceId: 0x1041, driver: options.driver ?? PLAIN_DRIVER, ...device }] },
    { plugins: [mockIommu(), ...(options.plugins ?? [plainDriverPlugin()])] },
  );
  const fn = host.platform.get(device.bdf ?? BDF);
  const vdev = host.vfio.devices.find((d) => d.dev === (fn as unknown)) as VfioPciCoreDevice | undefined;
  if (!vdev) throw new Error(`${BDF} is not bound to a vfio driver`);
  return { host, fn, vdev };
}
