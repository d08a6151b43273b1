/*
 * How vfio-pci lays its regions out in the device file: region index in the
 * bits from 40 up, the offset inside the region below (VFIO_PCI_OFFSET_SHIFT
 * of include/linux/vfio_pci_core.h). Userspace learns each region's offset
 * from VFIO_DEVICE_GET_REGION_INFO; nothing but vfio-pci itself may rely on
 * the encoding.
 */

export const VFIO_PCI_OFFSET_SHIFT = 40n;
export const VFIO_PCI_OFFSET_MASK = (1n << VFIO_PCI_OFFSET_SHIFT) - 1n;

/** VFIO_PCI_INDEX_TO_OFFSET: where region `index` starts in the device file. */
export function vfioPciIndexToOffset(index: number): bigint {
  return BigInt(index) << VFIO_PCI_OFFSET_SHIFT;
}

/** VFIO_PCI_OFFSET_TO_INDEX: the region a file offset falls in. */
export function vfioPciOffsetToIndex(offset: bigint): number {
  return Number(offset >> VFIO_PCI_OFFSET_SHIFT);
}

/** The offset inside its region of a file offset. */
export function vfioPciRegionOffset(offset: bigint): bigint {
  return offset & VFIO_PCI_OFFSET_MASK;
}
