import { SimError } from '../errors/index.js';
import { IOMMU_WRITE } from '../iommu/iommu-driver.js';
import type { Frame } from '../os/index.js';
import type { VfioDevice } from './vfio-device.js';

/*
 * vfio_pin_pages(), vfio_unpin_pages() and vfio_dma_rw() (vfio_main.c):
 * how a driver of an emulated device (an mdev-style device whose "DMA" is
 * the CPU touching guest memory) reaches the memory behind an IOVA. The
 * device's IOMMU back end answers: the type1 container its group is in, or
 * the iommufd access object it was given at bind (through a cdev or the
 * VFIO compatibility container). Only an open device may call them, and
 * pinning needs a driver with a dma_unmap op, which is how the back end
 * makes it give pages back before an unmap.
 *
 * Public API: vfioPinPages, vfioUnpinPages, vfioDmaRw, VFIO_PIN_PAGES_MAX_ENTRIES
 */

const PAGE_SIZE = 4096n;

/** One page of pfns per call (PAGE_SIZE / sizeof(unsigned long)): a container pins at most this many pages at once. */
export const VFIO_PIN_PAGES_MAX_ENTRIES = 512;

function assertOpen(vdev: VfioDevice, what: string): void {
  // vfio_assert_device_open(): a driver calling in on a closed device is a bug the kernel WARNs about.
  if (vdev.openCount === 0) throw new SimError('INVALID_ARGUMENT', `${what}: ${vdev.name} is not open`);
}

/**
 * vfio_pin_pages(): pins `npage` pages from the page holding `iova`;
 * `prot` is IOMMU_READ | IOMMU_WRITE as the device will touch them. Returns
 * the frames, all or nothing. EINVAL for no pages, a closed device, a
 * driver without dma_unmap or a device with no IOMMU back end; a container
 * takes at most VFIO_PIN_PAGES_MAX_ENTRIES pages (E2BIG) and a back end
 * that cannot pin is ENOTTY; the rest is the back end's answer.
 */
export function vfioPinPages(vdev: VfioDevice, iova: bigint, npage: number, prot: number): Frame[] {
  if (!Number.isInteger(npage) || npage <= 0) throw new SimError('INVALID_ARGUMENT', `vfio_pin_pages: ${npage} pages`);
  assertOpen(vdev, 'vfio_pin_pages');
  if (!vdev.ops.dmaUnmap) throw new SimError('INVALID_ARGUMENT', `vfio_pin_pages: ${vdev.ops.name} has no dma_unmap`);
  const container = vdev.group?.container;
  if (container) {
    if (npage > VFIO_PIN_PAGES_MAX_ENTRIES) {
      throw new SimError('TOO_MANY_ENTRIES', `vfio_pin_pages: ${npage} pages, a container pins at most ${VFIO_PIN_PAGES_MAX_ENTRIES}`);
    }
    const backend = container.backend;
    if (!backend?.pinPages) throw new SimError('NO_HANDLER', 'vfio_pin_pages: the container back end does not pin pages');
    return backend.pinPages(vdev.group!.iommuGroup!, iova, npage, prot);
  }
  if (vdev.iommufdAccess) {
    // iommufd works from the start of the page; the driver adds the offset back.
    const start = iova - (iova % PAGE_SIZE);
    return vdev.vfio!.iommufd.accessPinPages(vdev.iommufdAccess, start, BigInt(npage) * PAGE_SIZE, (prot & IOMMU_WRITE) !== 0);
  }
  throw new SimError('INVALID_ARGUMENT', `vfio_pin_pages: ${vdev.name} has no container or iommufd access`);
}

/** vfio_unpin_pages(): gives back one pin of each page; calls the kernel would WARN about do nothing. */
export function vfioUnpinPages(vdev: VfioDevice, iova: bigint, npage: number): void {
  if (vdev.openCount === 0 || !vdev.ops.dmaUnmap) return;
  const container = vdev.group?.container;
  if (container) {
    if (npage > VFIO_PIN_PAGES_MAX_ENTRIES) return;
    container.backend?.unpinPages?.(iova, npage);
    return;
  }
  if (vdev.iommufdAccess) {
    const start = iova - (iova % PAGE_SIZE);
    vdev.vfio!.iommufd.accessUnpinPages(vdev.iommufdAccess, start, BigInt(npage) * PAGE_SIZE);
  }
}

/**
 * vfio_dma_rw(): the CPU copies `data` to (`write`) or from the memory
 * behind the IOVAs. EINVAL for no bytes, a closed device or no IOMMU back
 * end; ENOTTY from a container whose back end cannot; the rest is the back
 * end's answer.
 */
export function vfioDmaRw(vdev: VfioDevice, iova: bigint, data: Uint8Array, write: boolean): void {
  if (data.length === 0) throw new SimError('INVALID_ARGUMENT', 'vfio_dma_rw: no bytes');
  assertOpen(vdev, 'vfio_dma_rw');
  const container = vdev.group?.container;
  if (container) {
    const backend = container.backend;
    if (!backend?.dmaRw) throw new SimError('NO_HANDLER', 'vfio_dma_rw: the container back end cannot copy');
    backend.dmaRw(iova, data, write);
    return;
  }
  if (vdev.iommufdAccess) {
    vdev.vfio!.iommufd.accessRw(vdev.iommufdAccess, iova, data, write);
    return;
  }
  throw new SimError('INVALID_ARGUMENT', `vfio_dma_rw: ${vdev.name} has no container or iommufd access`);
}
