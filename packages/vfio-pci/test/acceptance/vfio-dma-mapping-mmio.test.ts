import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  Errno,
  MAP_FIXED,
  MAP_SHARED,
  PAGE_SIZE,
  PROT_READ,
  PROT_WRITE,
  VFIO_REGION_INFO_FLAG_READ,
  VFIO_REGION_INFO_FLAG_WRITE,
} from '@vfiosim/core';
import { NIC_BDF, nicHost } from './hosts.js';
import {
  IOMMU_MODES,
  Iommu,
  IovaAllocator,
  MODE_IOMMUFD,
  MODE_VFIO_TYPE1V2_IOMMU,
  MODE_VFIO_TYPE1_IOMMU,
  type DmaRegion,
} from './libvfio/iommu.js';
import { Sysfs, VfioPciDevice, type VfioPciBar } from './libvfio/vfio-pci-device.js';
import { User } from './user.js';

/*
 * tools/testing/selftests/vfio/vfio_dma_mapping_mmio_test.c: DMA-mapping a
 * BAR's mmap (the peer-to-peer case). Upstream expects type1 to map and
 * unmap it (type1 follows the VM_PFNMAP mapping to the BAR's physical
 * address) and iommufd, native or compat, to refuse (it pins pages, and a
 * BAR has none): the compat refusal is EFAULT from pin_user_pages.
 *
 * Only the refusals are asserted here. The type1 half is a divergence of
 * the model: BARs have no host physical address in it, so type1 has no
 * PFN to map and answers EFAULT like iommufd (see the report).
 */

/** largest_mapped_bar: the biggest mmapped BAR that is readable and writable. */
function largestMappedBar(device: VfioPciDevice): VfioPciBar | null {
  const flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
  let largest: VfioPciBar | null = null;
  for (const bar of device.bars) {
    if (bar.vaddr === null || (bar.info.flags & flags) !== flags) continue;
    if (!largest || bar.info.size > largest.info.size) largest = bar;
  }
  return largest;
}

const iommufdModes = IOMMU_MODES.map((mode) => mode.name).filter(
  (name) => name !== MODE_VFIO_TYPE1_IOMMU && name !== MODE_VFIO_TYPE1V2_IOMMU,
);

describe.each(iommufdModes)('vfio_dma_mapping_mmio_test (%s)', (mode) => {
  let user: User;
  let iommu: Iommu;
  let device: VfioPciDevice;
  let allocator: IovaAllocator;
  let bar: VfioPciBar;

  beforeEach(() => {
    const host = nicHost();
    user = new User(host.spawn());
    iommu = new Iommu(user, mode);
    device = VfioPciDevice.init(new Sysfs(host), NIC_BDF, iommu);
    allocator = new IovaAllocator(iommu);
    bar = largestMappedBar(device)!;
    expect(bar.info.index).toBe(0);
  });

  afterEach(() => {
    device.cleanup();
    iommu.cleanup();
  });

  /**
   * do_mmio_map_test for a mode that must refuse: the map fails with
   * EFAULT. Upstream also wants the unmap of the never-mapped range to fail;
   * native iommufd does (ENOENT), but since the kernel made the compat
   * unmap of an empty range succeed like type1's (iommufd: "Make
   * vfio_compat's unmap succeed if the range is already empty"), the
   * compat modes answer 0 with size 0.
   */
  function expectRefused(vaddr: bigint, size: bigint): void {
    const region: DmaRegion = { vaddr, size, iova: allocator.alloc(size) };
    expect(iommu.tryMap(region)).toBe(-Errno.EFAULT);
    const unmap = iommu.tryUnmap(region);
    if (mode === MODE_IOMMUFD) expect(unmap.rc).toBe(-Errno.ENOENT);
    else expect(unmap).toEqual({ rc: 0, unmapped: 0n });
  }

  it('map_full_bar', () => {
    expectRefused(bar.vaddr!, bar.info.size);
  });

  it('map_partial_bar', () => {
    expect(bar.info.size >= 2n * BigInt(PAGE_SIZE)).toBe(true);
    expectRefused(bar.vaddr!, BigInt(PAGE_SIZE));
  });

  it('map_bar_misaligned: a BAR mapped at a page-aligned but not BAR-aligned address', () => {
    const size = bar.info.size;
    // mmap_reserve: room for a 1 GiB-aligned address plus one page, then the BAR one page in.
    const reserve = user.proc.mmap(size + (1n << 30n) + BigInt(PAGE_SIZE));
    expect(reserve > 0n).toBe(true);
    const aligned = (reserve + (1n << 30n) - 1n) & ~((1n << 30n) - 1n);
    const vaddr = user.proc.mmap(size, {
      addr: aligned + BigInt(PAGE_SIZE),
      fd: device.fd,
      offset: bar.info.offset,
      prot: PROT_READ | PROT_WRITE,
      flags: MAP_SHARED | MAP_FIXED,
    });
    expect(vaddr).toBe(aligned + BigInt(PAGE_SIZE));
    expectRefused(vaddr, size);
    expect(user.proc.munmap(vaddr, size)).toBe(0);
  });
});
