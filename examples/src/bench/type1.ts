import {
  O_RDWR,
  TYPE1_DRIVER_NAME,
  VFIO_DMA_MAP_FLAG_READ,
  VFIO_DMA_MAP_FLAG_WRITE,
  VFIO_IOMMU_MAP_DMA,
  VFIO_IOMMU_UNMAP_DMA,
  VFIO_TYPE1v2_IOMMU,
  s32,
  type1IommuDriver,
  vfio_iommu_type1_dma_map,
  vfio_iommu_type1_dma_unmap,
  type Host,
  type Process,
} from '@vfiosim/core';
import { ioctlRequest } from '../vmm/ioctl-struct.js';
import type { BenchCase } from './measure.js';
import { PAGE_COPY } from './reference.js';
import { benchHost, endpointBdf, ok } from './rig.js';

export const type1Name = (live: number) => `type1 MAP_DMA+UNMAP_DMA, ${live >= 1000 ? `${live / 1000}k` : live} live mappings`;

/** Live mappings sit at every other page from here: the odd pages stay free for the measured map. */
const IOVA_BASE = 0x100_0000n;
const STRIDE = 0x2000n;
/** Process memory the live mappings cycle through (64 MiB). */
const BACKING_PAGES = 16384;
/**
 * dma_entry_limit for the run: the module's default (65535) would refuse
 * the 100k-mapping case with ENOSPC, as it does on a real host.
 */
const DMA_ENTRY_LIMIT = 200_000;

export interface Type1Rig {
  readonly host: Host;
  readonly proc: Process;
  readonly container: number;
  /** Mappings in the container now. */
  live(): number;
  /** MAP_DMA of 4 KiB pages until `count` are live. */
  fillTo(count: number): void;
  /** One MAP_DMA + UNMAP_DMA of a page in the middle of the live ones. */
  mapUnmapMiddle(): void;
}

/**
 * A type1 container the legacy way: /dev/vfio/vfio, the device's group,
 * VFIO_GROUP_SET_CONTAINER, VFIO_SET_IOMMU(TYPE1v2); then MAP_DMA and
 * UNMAP_DMA through proc.ioctl on the container fd.
 */
export function type1Rig(): Type1Rig {
  const host = benchHost(1);
  // modprobe vfio_iommu_type1 dma_entry_limit=...: replace the default instance before any container uses it.
  const builtin = host.vfio.iommuDrivers.find((driver) => driver.name === TYPE1_DRIVER_NAME);
  if (builtin) host.vfio.unregisterIommuDriver(builtin);
  host.vfio.registerIommuDriver(type1IommuDriver(host.iommu, { dmaEntryLimit: DMA_ENTRY_LIMIT }));

  const proc = host.spawn();
  const vdev = host.vfio.devices.find((device) => device.name === endpointBdf(0));
  if (!vdev?.group) throw new Error('the benchmark device has no vfio group');
  const container = ok(proc.open('/dev/vfio/vfio', O_RDWR), 'open /dev/vfio/vfio');
  const group = ok(proc.open(vdev.group.devPath, O_RDWR), `open ${vdev.group.devPath}`);
  const scratch = proc.mmap(4096);
  ok(scratch, 'mmap');
  const fdBytes = new Uint8Array(4);
  s32.write(fdBytes, 0, container);
  ok(proc.mem.write(scratch, fdBytes), 'staging the container fd');
  ok(proc.ioctl(group, ioctlRequest('VFIO_GROUP_SET_CONTAINER'), scratch), 'VFIO_GROUP_SET_CONTAINER');
  ok(proc.ioctl(container, ioctlRequest('VFIO_SET_IOMMU'), BigInt(VFIO_TYPE1v2_IOMMU)), 'VFIO_SET_IOMMU');

  const backing = proc.mmap(BACKING_PAGES * 4096);
  ok(backing, 'mmap');
  const mapArg = scratch + 0x100n;
  const unmapArg = scratch + 0x200n;
  const stageMap = (vaddr: bigint, iova: bigint) => proc.mem.write(mapArg, vfio_iommu_type1_dma_map.encodeNew({
    argsz: vfio_iommu_type1_dma_map.size,
    flags: VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
    vaddr,
    iova,
    size: 4096n,
  }));
  let live = 0;

  return {
    host,
    proc,
    container,
    live: () => live,
    fillTo(count) {
      for (; live < count; live++) {
        stageMap(backing + BigInt(live % BACKING_PAGES) * 4096n, IOVA_BASE + BigInt(live) * STRIDE);
        ok(proc.ioctl(container, VFIO_IOMMU_MAP_DMA, mapArg), `VFIO_IOMMU_MAP_DMA #${live}`);
      }
      // The measured pair: a free page between the live ones, half way along.
      const iova = IOVA_BASE + BigInt(Math.floor(live / 2)) * STRIDE + 0x1000n;
      stageMap(backing, iova);
      proc.mem.write(unmapArg, vfio_iommu_type1_dma_unmap.encodeNew({ argsz: vfio_iommu_type1_dma_unmap.size, flags: 0, iova, size: 4096n }));
    },
    mapUnmapMiddle() {
      ok(proc.ioctl(container, VFIO_IOMMU_MAP_DMA, mapArg), 'VFIO_IOMMU_MAP_DMA');
      ok(proc.ioctl(container, VFIO_IOMMU_UNMAP_DMA, unmapArg), 'VFIO_IOMMU_UNMAP_DMA');
    },
  };
}

/** The map+unmap cost with `small` and then `large` mappings live in one container. */
export function type1Cases(small: number, large: number): { small: BenchCase; large: () => BenchCase } {
  const rig = type1Rig();
  rig.fillTo(small);
  const batch = 10;
  const make = (live: number): BenchCase => ({
    name: type1Name(live),
    unit: 'map+unmap',
    batch,
    reference: PAGE_COPY,
    run: () => {
      for (let i = 0; i < batch; i++) rig.mapUnmapMiddle();
    },
  });
  return {
    small: make(small),
    // Grows the same container, so only the number of live mappings differs between the two figures.
    large: () => {
      rig.fillTo(large);
      return make(large);
    },
  };
}
