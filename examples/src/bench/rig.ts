import {
  IOMMU_IOAS_MAP_FIXED_IOVA,
  IOMMU_IOAS_MAP_READABLE,
  IOMMU_IOAS_MAP_WRITEABLE,
  O_RDWR,
  VfioPciCoreDevice,
  createHost,
  iommu_ioas_alloc,
  iommu_ioas_map,
  mockIommu,
  vfio_device_attach_iommufd_pt,
  vfio_device_bind_iommufd,
  type Host,
  type HostDescription,
  type PciFunction,
  type Process,
  type VfioSimPlugin,
} from '@vfiosim/core';
import { vfioPci } from '@vfiosim/vfio-pci';
import { errnoText, ioctlStruct } from '../vmm/ioctl-struct.js';

/*
 * The machine every benchmark runs on: `count` single-function endpoints,
 * each behind its own root port with ACS (one IOMMU group each), all bound
 * to vfio-pci, composed exactly as a user composes a host.
 */

export function endpointBdf(i: number): string {
  return `0000:${(0x10 + i).toString(16).padStart(2, '0')}:00.0`;
}

export function benchDescription(count: number): HostDescription {
  return {
    bridges: Array.from({ length: count }, (_, i) => ({
      bdf: `0000:00:${(1 + i).toString(16).padStart(2, '0')}.0`,
      kind: 'root-port' as const,
      secondaryBus: 0x10 + i,
      extendedCapabilities: { acs: true },
    })),
    devices: Array.from({ length: count }, (_, i) => ({
      bdf: endpointBdf(i),
      vendorId: 0x144d,
      deviceId: 0xa824,
      classCode: 0x010802,
      bars: [{ index: 0, type: 'mem64' as const, size: '32K' }],
      driver: 'vfio-pci',
    })),
  };
}

export function benchHost(count = 1, plugins: VfioSimPlugin[] = []): Host {
  return createHost(benchDescription(count), { plugins: [mockIommu(), vfioPci(), ...plugins] });
}

/** Throws with the call's name unless rc >= 0: a benchmark set-up step that fails is a bug in the benchmark. */
export function ok(rc: number | bigint, what: string): number {
  if (rc < 0) throw new Error(`${what} failed: ${errnoText(Number(rc))}`);
  return Number(rc);
}

export interface BoundDevice {
  readonly fn: PciFunction;
  readonly vdev: VfioPciCoreDevice;
  readonly iommufd: number;
  readonly fd: number;
  readonly devid: number;
}

/** Opens the endpoint's cdev in `proc` and binds it to a new iommufd (or `iommufd`). */
export function bindCdev(host: Host, proc: Process, bdf: string, iommufd = ok(proc.open('/dev/iommu', O_RDWR), 'open /dev/iommu')): BoundDevice {
  const vdev = host.vfio.devices.find((device) => device.name === bdf);
  if (!(vdev instanceof VfioPciCoreDevice)) throw new Error(`${bdf} is not bound to vfio-pci`);
  const fd = ok(proc.open(host.vfio.cdevPath(vdev), O_RDWR), `open ${bdf}`);
  const bind = ioctlStruct(proc, fd, 'VFIO_DEVICE_BIND_IOMMUFD', vfio_device_bind_iommufd, { flags: 0, iommufd });
  ok(bind.rc, 'VFIO_DEVICE_BIND_IOMMUFD');
  return { fn: host.platform.get(bdf), vdev, iommufd, fd, devid: bind.out.out_devid };
}

/** IOMMU_IOAS_ALLOC, then the device attached to it; returns the IOAS id. */
export function attachNewIoas(proc: Process, dev: BoundDevice): number {
  const ioas = ioctlStruct(proc, dev.iommufd, 'IOMMU_IOAS_ALLOC', iommu_ioas_alloc, { flags: 0 });
  ok(ioas.rc, 'IOMMU_IOAS_ALLOC');
  ok(ioctlStruct(proc, dev.fd, 'VFIO_DEVICE_ATTACH_IOMMUFD_PT', vfio_device_attach_iommufd_pt, { flags: 0, pt_id: ioas.out.out_ioas_id }).rc, 'ATTACH');
  return ioas.out.out_ioas_id;
}

/** Maps `length` bytes of new process memory at `iova` in the IOAS, read-write; returns the user address. */
export function mapIoas(proc: Process, iommufd: number, ioasId: number, iova: bigint, length: number): bigint {
  const va = proc.mmap(length);
  ok(va, 'mmap');
  ok(ioctlStruct(proc, iommufd, 'IOMMU_IOAS_MAP', iommu_ioas_map, {
    flags: IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE,
    ioas_id: ioasId,
    user_va: va,
    length: BigInt(length),
    iova,
  }).rc, 'IOMMU_IOAS_MAP');
  return va;
}
