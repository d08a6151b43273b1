/*
 * The README's "Compose a stack" example, as a file the build type-checks
 * and a test runs; the README shows the lines between the markers.
 */
// README:begin
import { IOMMU_IOAS_ALLOC, createHost, iommu_ioas_alloc, mockIommu, vfio_device_bind_iommufd, vfio_device_info } from '@vfiosim/core';
import { vfioPci } from '@vfiosim/vfio-pci';
import { ioctlStruct } from './vmm/ioctl-struct.js';

export function composeStack() {
  // One NVMe drive behind a root port, handed to vfio-pci ("driver" acts as driver_override).
  const host = createHost(
    {
      bridges: [{ bdf: '0000:00:01.0', kind: 'root-port', secondaryBus: 0x01, extendedCapabilities: { acs: true } }],
      devices: [{ bdf: '0000:01:00.0', vendorId: 0x144d, deviceId: 0xa824, classCode: 0x010802, driver: 'vfio-pci' }],
    },
    { plugins: [mockIommu(), vfioPci()] },
  );
  const proc = host.spawn();
  const iommufd = proc.open('/dev/iommu');

  // A raw ioctl: the struct lives in the process's memory; the kernel answers 0 or -errno and writes back there.
  const argp = proc.mmap(4096);
  proc.mem.write(argp, iommu_ioas_alloc.encodeNew({ size: iommu_ioas_alloc.size }));
  const rc = proc.ioctl(iommufd, IOMMU_IOAS_ALLOC, argp);
  const { out_ioas_id } = iommu_ioas_alloc.decode(proc.mem.read(argp, iommu_ioas_alloc.size) as Uint8Array);

  // The same pattern through a small typed helper (examples/src/vmm/ioctl-struct.ts).
  const device = proc.open('/dev/vfio/devices/vfio0');
  const bind = ioctlStruct(proc, device, 'VFIO_DEVICE_BIND_IOMMUFD', vfio_device_bind_iommufd, { iommufd });
  const info = ioctlStruct(proc, device, 'VFIO_DEVICE_GET_INFO', vfio_device_info, {});
  return { rc, out_ioas_id, devid: bind.out.out_devid, numRegions: info.out.num_regions };
}
// README:end
