import { AssertionError } from 'node:assert';
import { createHost, type Host, type VfioSimPlugin } from '../host/index.js';
import type { HostDescription, PciFunction } from '../platform/index.js';
import { VFIO_DEVICE_BIND_IOMMUFD, vfio_device_bind_iommufd } from '../uapi/index.js';
import type { VfioDevice } from '../vfio/index.js';
import { setupOk } from './expect.js';
import { UserSpace } from './user-space.js';

/*
 * How every conformance case starts: a fresh host composed from the
 * subject's plugins and description, a VMM process, and the device under
 * test opened the way a VMM does it today: /dev/iommu, the device cdev,
 * VFIO_DEVICE_BIND_IOMMUFD.
 *
 * Public API: BoundDevice, bindDevice()
 */

export interface BoundDevice {
  readonly host: Host;
  /** The PCI function at the subject's bdf. */
  readonly fn: PciFunction;
  /** The vfio device its driver registered. */
  readonly vdev: VfioDevice;
  readonly user: UserSpace;
  /** The process's /dev/iommu fd. */
  readonly iommufd: number;
  /** The device cdev fd, bound to `iommufd`. */
  readonly fd: number;
  /** iommufd's id for the device (out_devid). */
  readonly devId: number;
}

export function bindDevice(
  setup: { plugins(): readonly VfioSimPlugin[]; readonly description: HostDescription; readonly bdf: string },
  options: { readonly detectStaleTranslations?: boolean } = {},
): BoundDevice {
  const host = createHost(setup.description, {
    plugins: [...setup.plugins()],
    detectStaleTranslations: options.detectStaleTranslations ?? false,
  });
  const fn = host.platform.find(setup.bdf);
  if (!fn) throw new AssertionError({ message: `setup failed: the subject's host has no function at ${setup.bdf}` });
  const vdev = host.vfio.devices.find((device) => device.dev === fn);
  if (!vdev) {
    throw new AssertionError({
      message: `setup failed: no vfio driver registered ${setup.bdf} (bound driver: ${host.drivers.driverName(fn) ?? 'none'}); `
        + 'the subject must bind it to a vfio driver its plugins provide (driver_override in the description)',
    });
  }
  const user = new UserSpace(host.spawn());
  const iommufd = user.proc.open('/dev/iommu');
  setupOk(iommufd, 'open("/dev/iommu")');
  const fd = user.proc.open(host.vfio.cdevPath(vdev));
  setupOk(fd, `open("${host.vfio.cdevPath(vdev)}")`);
  const bind = user.ioctl(fd, VFIO_DEVICE_BIND_IOMMUFD, vfio_device_bind_iommufd, { argsz: vfio_device_bind_iommufd.size, iommufd });
  setupOk(bind.rc, 'VFIO_DEVICE_BIND_IOMMUFD');
  return { host, fn, vdev, user, iommufd, fd, devId: bind.out.out_devid };
}
