import { IOMMU_READ, IOMMU_WRITE, PAGE_4K, type Host } from '@vfiosim/core';
import { setUpNested, type NestedSetup } from '../demo/nested.js';
import { Trace } from '../vmm/trace.js';
import { Vmm } from '../vmm/vmm.js';
import type { BenchCase } from './measure.js';
import { MAP_GET, RADIX_WALK, blackhole } from './reference.js';
import { attachNewIoas, benchHost, bindCdev, endpointBdf, mapIoas, type BoundDevice } from './rig.js';

export const DMA_HIT = 'DMA read 8 B, IOTLB hit';
export const DMA_TRANSLATE_HIT = 'DMA translation, IOTLB hit';
export const DMA_MISS = 'DMA read 8 B, IOTLB miss, nested 4+4-level walk';

/** Where the hot mapping sits in the IOAS. */
const HOT_IOVA = 0x1000_0000n;
const BATCH = 1000;

/**
 * Guest IOVA pages the miss benchmark strides over: twice the mock IOTLB's
 * 4096 entries, so with its FIFO replacement every access misses.
 */
export const MISS_PAGES = 8192;
/** Guest RAM for the miss benchmark: 1 MiB of stage-1 tables, then one data page per IOVA page. */
const MISS_TABLE_PAGES = 256;
const MISS_DATA_IPA_OFFSET = BigInt(MISS_TABLE_PAGES) * PAGE_4K;
const MISS_RAM = MISS_TABLE_PAGES * 4096 + MISS_PAGES * 4096;

export interface DmaHitRig {
  readonly host: Host;
  readonly dev: BoundDevice;
  /** One 8-byte DMA read of the hot mapping. */
  readOnce(): void;
  /** The translation alone of a read of the hot mapping. */
  translateOnce(): void;
}

/** A device attached to an IOAS with one mapped page that it reads over and over. */
export function dmaHitRig(): DmaHitRig {
  const host = benchHost(1);
  const proc = host.spawn();
  const dev = bindCdev(host, proc, endpointBdf(0));
  const ioasId = attachNewIoas(proc, dev);
  mapIoas(proc, dev.iommufd, ioasId, HOT_IOVA, 4096);
  const buf = new Uint8Array(8);
  // The IOVA is computed once: the figure is the model's cost, not the caller's BigInt arithmetic.
  const iova = HOT_IOVA + 8n;
  const readOnce = () => {
    const fault = host.dma.tryDmaRead(dev.fn, iova, buf);
    if (fault) throw new Error(`hot DMA faulted: ${fault.reason}`);
  };
  const translateOnce = () => {
    const pa = host.dma.translate(dev.fn, iova, IOMMU_READ);
    if (typeof pa !== 'bigint') throw new Error(`hot translation faulted: ${pa.reason}`);
    blackhole.value++;
  };
  return { host, dev, readOnce, translateOnce };
}

export interface DmaMissRig {
  readonly host: Host;
  readonly dev: BoundDevice;
  readonly nested: NestedSetup;
  /** The DMA read of the `i`-th guest IOVA page (modulo MISS_PAGES). */
  readPage(i: number): void;
}

/**
 * A device attached to a nested HWPT whose guest stage-1 table maps
 * MISS_PAGES IOVA pages, each to its own guest page: every translation is
 * a 4-level stage-1 walk whose every table read, and whose output, go
 * through a 4-level stage-2 walk.
 */
export function dmaMissRig(): DmaMissRig {
  const host = benchHost(1);
  const vmm = new Vmm(host, new Trace());
  const dev = bindCdev(host, vmm.proc, endpointBdf(0));
  const ioasId = attachNewIoas(vmm.proc, dev);
  const nested = setUpNested(vmm, host, dev.iommufd, ioasId, dev.fd, dev.devid, dev.fn, MISS_RAM, MISS_TABLE_PAGES);
  nested.stage1.mapPages(0n, nested.ram.ipaBase + MISS_DATA_IPA_OFFSET, PAGE_4K, BigInt(MISS_PAGES), IOMMU_READ | IOMMU_WRITE);
  const buf = new Uint8Array(8);
  const readPage = (i: number) => {
    const fault = host.dma.tryDmaRead(dev.fn, BigInt(i % MISS_PAGES) * PAGE_4K + 8n, buf);
    if (fault) throw new Error(`nested DMA faulted: ${fault.reason}`);
  };
  return { host, dev, nested, readPage };
}

export function dmaCases(): BenchCase[] {
  const hit = dmaHitRig();
  const miss = dmaMissRig();
  let next = 0;
  return [
    {
      name: DMA_TRANSLATE_HIT,
      unit: 'translation',
      batch: BATCH,
      reference: MAP_GET,
      run: () => {
        for (let i = 0; i < BATCH; i++) hit.translateOnce();
      },
    },
    {
      name: DMA_HIT,
      unit: 'DMA',
      batch: BATCH,
      reference: MAP_GET,
      run: () => {
        for (let i = 0; i < BATCH; i++) hit.readOnce();
      },
    },
    {
      name: DMA_MISS,
      unit: 'DMA',
      batch: 100,
      reference: RADIX_WALK,
      run: () => {
        for (let i = 0; i < 100; i++) miss.readPage(next++);
      },
    },
  ];
}
