import { SimError } from '../../errors/index.js';
import type { MmapRequest, MmapTarget, Process } from '../../os/index.js';
import { VFIO_PCI_NUM_REGIONS, VFIO_REGION_INFO_CAP_SPARSE_MMAP, vfio_region_info_cap_sparse_mmap, vfio_region_sparse_mmap_area } from '../../uapi/index.js';
import type { CapChain } from '../../vfio/cap-chain.js';
import type { VfioPciCoreDevice } from '../vfio-pci-core-device.js';

/**
 * What serves a device-specific region (struct vfio_pci_regops). Offsets
 * are relative to the region's start; the caller has not clipped the
 * access to the region's size, as the kernel leaves that to the region.
 */
export interface VfioPciRegionOps {
  /**
   * A read (write false: fill `buf`) or write (write true: `buf` holds the
   * bytes) at `offset`. Returns the bytes done; throw a SimError to fail.
   */
  rw(vdev: VfioPciCoreDevice, region: VfioPciRegion, proc: Process, buf: Uint8Array, offset: bigint, write: boolean): number;
  /** The region is dropped at the last close. */
  release?(vdev: VfioPciCoreDevice, region: VfioPciRegion): void;
  /** mmap of [offset, offset + length) of the region; only called when the region has VFIO_REGION_INFO_FLAG_MMAP. */
  mmap?(vdev: VfioPciCoreDevice, region: VfioPciRegion, offset: bigint, length: bigint, request: MmapRequest): MmapTarget;
  /** Adds capabilities after the type capability vfio-pci-core puts first (vfioRegionSparseMmapCap, ...). */
  addCapability?(vdev: VfioPciCoreDevice, region: VfioPciRegion, caps: CapChain): void;
}

/** A device-specific region as registered (struct vfio_pci_region). */
export interface VfioPciRegion {
  /** VFIO_REGION_TYPE_* (with VFIO_REGION_TYPE_PCI_VENDOR_TYPE | vendor id for vendor regions). */
  readonly type: number;
  readonly subtype: number;
  readonly ops: VfioPciRegionOps;
  readonly size: bigint;
  /** VFIO_REGION_INFO_FLAG_READ / WRITE / MMAP. */
  readonly flags: number;
  /** The driver's own data for the region. */
  readonly data: unknown;
}

/**
 * vfio_pci_core_register_dev_region: adds a region after the fixed PCI
 * ones; its index is VFIO_PCI_NUM_REGIONS plus its position. Regions live
 * from registration (normally in the registerRegions hook) to the last
 * close. Returns the region's index.
 */
export function vfioPciCoreRegisterDevRegion(
  vdev: VfioPciCoreDevice,
  type: number,
  subtype: number,
  ops: VfioPciRegionOps,
  size: bigint,
  flags: number,
  data: unknown = null,
): number {
  if (size < 0n) throw new SimError('INVALID_ARGUMENT', `${vdev.name}: region size ${size}`);
  vdev.regions.push(Object.freeze({ type: type >>> 0, subtype: subtype >>> 0, ops, size, flags: flags >>> 0, data }));
  return VFIO_PCI_NUM_REGIONS + vdev.regions.length - 1;
}

/** A VFIO_REGION_INFO_CAP_SPARSE_MMAP capability naming the parts of a region that may be mapped. */
export function vfioRegionSparseMmapCap(areas: ReadonlyArray<{ offset: bigint; size: bigint }>): Uint8Array {
  const cap = vfio_region_info_cap_sparse_mmap;
  const area = vfio_region_sparse_mmap_area;
  const bytes = new Uint8Array(cap.size + areas.length * area.size);
  cap.encode({ header: { id: VFIO_REGION_INFO_CAP_SPARSE_MMAP, version: 1, next: 0 }, nr_areas: areas.length, reserved: 0 }, bytes);
  areas.forEach((a, i) => area.encode(a, bytes, cap.size + i * area.size));
  return bytes;
}
