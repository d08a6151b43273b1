import { SimError } from '../../errors/index.js';
import type { Process } from '../../os/index.js';
import {
  VFIO_PCI_BAR5_REGION_INDEX,
  VFIO_PCI_CONFIG_REGION_INDEX,
  VFIO_PCI_NUM_REGIONS,
  VFIO_PCI_ROM_REGION_INDEX,
  VFIO_PCI_VGA_REGION_INDEX,
} from '../../uapi/index.js';
import { vfioPciConfigRw } from '../config/config-rw.js';
import { vfioPciOffsetToIndex, vfioPciRegionOffset } from '../offsets.js';
import { vfioPciRuntimeResume } from '../power.js';
import type { VfioPciCoreDevice } from '../vfio-pci-core-device.js';
import { vfioPciBarRw } from './bar-rw.js';
import { vfioPciVgaRw } from './vga.js';

/**
 * vfio_pci_rw: a pread or pwrite of the device file, routed by the region
 * the offset falls in. EINVAL past the last region and for writes to the
 * ROM. The device wakes from a user-requested low-power state first.
 */
export function vfioPciRw(vdev: VfioPciCoreDevice, proc: Process, buf: Uint8Array, offset: bigint, write: boolean): number {
  const index = vfioPciOffsetToIndex(offset);
  if (index >= VFIO_PCI_NUM_REGIONS + vdev.regions.length) throw new SimError('INVALID_ARGUMENT', `${vdev.name} has no region ${index}`);
  vfioPciRuntimeResume(vdev);
  const pos = vfioPciRegionOffset(offset);
  if (index === VFIO_PCI_CONFIG_REGION_INDEX) return vfioPciConfigRw(vdev, buf, Number(pos), write);
  if (index === VFIO_PCI_ROM_REGION_INDEX) {
    if (write) throw new SimError('INVALID_ARGUMENT', `${vdev.name}: the ROM is read-only`);
    return vfioPciBarRw(vdev, index, pos, buf, false);
  }
  if (index <= VFIO_PCI_BAR5_REGION_INDEX) return vfioPciBarRw(vdev, index, pos, buf, write);
  if (index === VFIO_PCI_VGA_REGION_INDEX) return vfioPciVgaRw(vdev, pos, buf, write);
  const region = vdev.regions[index - VFIO_PCI_NUM_REGIONS]!;
  return region.ops.rw(vdev, region, proc, buf, pos, write);
}

/** vfio_pci_core_read: a zero-length read does nothing. */
export function vfioPciCoreRead(vdev: VfioPciCoreDevice, proc: Process, length: number, offset: bigint): Uint8Array {
  if (!length) return new Uint8Array(0);
  const buf = new Uint8Array(length);
  return buf.subarray(0, vfioPciRw(vdev, proc, buf, offset, false));
}

/** vfio_pci_core_write: a zero-length write does nothing. */
export function vfioPciCoreWrite(vdev: VfioPciCoreDevice, proc: Process, data: Uint8Array, offset: bigint): number {
  if (!data.length) return 0;
  return vfioPciRw(vdev, proc, data.slice(), offset, true);
}
