import { describe, expect, it, vi } from 'vitest';
import { TYPE1_DRIVER_NAME } from '@vfiosim/core';
import { configReaders } from '../src/bench/config.js';
import { MISS_PAGES, dmaHitRig, dmaMissRig } from '../src/bench/dma.js';
import { ENTRIES_PER_CALL, invalidateRig } from '../src/bench/invalidate.js';
import { type1Rig } from '../src/bench/type1.js';

/*
 * The benchmarks measure what their names say only if their set-ups do
 * what they claim: these check the scenarios, never the timings.
 */
describe('benchmark scenarios', () => {
  it('the IOTLB-hit DMA walks the tables once, then only hits', () => {
    const rig = dmaHitRig();
    const domain = rig.host.iommu.domainFor(rig.dev.fn, null)!;
    const walk = vi.spyOn(domain, 'translate');
    rig.readOnce();
    for (let i = 0; i < 100; i++) rig.readOnce();
    expect(walk).toHaveBeenCalledTimes(1);
  });

  it('the IOTLB-miss DMA walks the nested tables on every access, even on the second pass', () => {
    const rig = dmaMissRig();
    const walk = vi.spyOn(rig.nested.domain, 'translate');
    for (let i = 0; i < MISS_PAGES; i++) rig.readPage(i);
    walk.mockClear();
    for (let i = 0; i < 32; i++) rig.readPage(i);
    expect(walk).toHaveBeenCalledTimes(32);
  });

  it('each IOMMU_HWPT_INVALIDATE handles all its entries', () => {
    expect(invalidateRig().invalidate()).toBe(ENTRIES_PER_CALL);
  });

  it('the type1 container maps through one type1 back end and the measured pair leaves the count unchanged', () => {
    const rig = type1Rig();
    expect(rig.host.vfio.iommuDrivers.filter((d) => d.name === TYPE1_DRIVER_NAME)).toHaveLength(1);
    rig.fillTo(100);
    expect(rig.live()).toBe(100);
    rig.mapUnmapMiddle();
    rig.mapUnmapMiddle();
  });

  it('both config readers read the id through the config region; only one has a tap', () => {
    const { plain, tapped } = configReaders();
    expect(plain.read()).toBe((0xa824 << 16 | 0x144d) >>> 0);
    expect(tapped.read()).toBe(plain.read());
    expect(plain.vdev.hooks.configRead.isUsed()).toBe(false);
    expect(tapped.vdev.hooks.configRead.isUsed()).toBe(true);
  });
});
