import {
  IOMMU_HWPT_ALLOC_NEST_PARENT,
  IOMMU_HWPT_DATA_SELFTEST,
  IOMMU_HWPT_INVALIDATE_DATA_SELFTEST,
  IOMMU_IOAS_MAP_FIXED_IOVA,
  IOMMU_IOAS_MAP_READABLE,
  IOMMU_IOAS_MAP_WRITEABLE,
  IOMMU_READ,
  IOMMU_TEST_IOTLB_DEFAULT,
  IOMMU_WRITE,
  IoPageTable,
  MockNestedDomain,
  PAGE_4K,
  iommu_hwpt_alloc,
  iommu_hwpt_invalidate,
  iommu_hwpt_invalidate_selftest,
  iommu_hwpt_selftest,
  iommu_ioas_map,
  vfio_device_attach_iommufd_pt,
  type Host,
  type PciFunction,
} from '@vfiosim/core';
import { hex } from '../vmm/format.js';
import { GuestRam } from '../vmm/guest-memory.js';
import { quote, type Vmm } from '../vmm/vmm.js';
import { check, nvmeOf, type DemoContext } from './context.js';
import { DMA_MESSAGE, DMA_STATUS_DONE } from './device-model.js';
import { runDeviceDma } from './dma.js';

/** Guest RAM of the demo's nested setup: 1 MiB at IPA 1 GiB, its first 16 pages hold stage-1 tables. */
const RAM_IPA = 0x4000_0000n;
const RAM_SIZE = 0x10_0000;
const TABLE_PAGES = 16;
/** The guest IOVA the device is programmed with; bits 13:12 = 1 put it in way 1 of the mock's nested IOTLB. */
const GUEST_IOVA = 0x5000n;
const PAGE_A = RAM_IPA + 0x8_0000n;
const PAGE_B = RAM_IPA + 0x9_0000n;

export interface NestedSetup {
  readonly ram: GuestRam;
  readonly parentId: number;
  readonly nestedId: number;
  readonly domain: MockNestedDomain;
  readonly stage1: IoPageTable;
}

/**
 * The vIOMMU set-up of a VMM with the mock IOMMU: guest RAM mapped in the
 * IOAS at IOVA = IPA, a nesting-parent HWPT over the IOAS (stage 2), a
 * nested HWPT on it (stage 1, the guest's), the device attached to the
 * nested one. The guest's stage-1 table is built in guest RAM.
 *
 * The mock's HWPT data (struct iommu_hwpt_selftest) carries no stage-1
 * table pointer, so pointing the domain at the guest's table is a model
 * knob (MockNestedDomain.setStage1Table), the way the kernel selftest
 * pokes its mock driver; a VT-d or SMMUv3 driver reads it from the HWPT data.
 */
export function setUpNested(vmm: Vmm, host: Host, iommufd: number, ioasId: number, fd: number, devid: number, fn: PciFunction,
  ramSize = RAM_SIZE, tablePages = TABLE_PAGES): NestedSetup {
  const va = vmm.mmap(ramSize);
  const ram = new GuestRam(vmm.proc, va, RAM_IPA, BigInt(ramSize));
  const map = vmm.ioctl(iommufd, 'IOMMU_IOAS_MAP', iommu_ioas_map, {
    flags: IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_READABLE,
    ioas_id: ioasId,
    user_va: va,
    length: BigInt(ramSize),
    iova: RAM_IPA,
  });
  if (map.rc !== 0) throw new Error(`mapping guest RAM failed: ${map.rc}`);
  const parent = vmm.ioctl(iommufd, 'IOMMU_HWPT_ALLOC', iommu_hwpt_alloc, { flags: IOMMU_HWPT_ALLOC_NEST_PARENT, dev_id: devid, pt_id: ioasId });
  if (parent.rc !== 0) throw new Error(`nesting parent HWPT: ${parent.rc}`);

  const data = vmm.mmap(4096);
  vmm.proc.mem.write(data, iommu_hwpt_selftest.encodeNew({ iotlb: IOMMU_TEST_IOTLB_DEFAULT }));
  const nested = vmm.ioctl(iommufd, 'IOMMU_HWPT_ALLOC', iommu_hwpt_alloc, {
    dev_id: devid,
    pt_id: parent.out.out_hwpt_id,
    data_type: IOMMU_HWPT_DATA_SELFTEST,
    data_len: iommu_hwpt_selftest.size,
    data_uptr: data,
  });
  if (nested.rc !== 0) throw new Error(`nested HWPT: ${nested.rc}`);
  const attach = vmm.ioctl(fd, 'VFIO_DEVICE_ATTACH_IOMMUFD_PT', vfio_device_attach_iommufd_pt, { flags: 0, pt_id: nested.out.out_hwpt_id });
  if (attach.rc !== 0) throw new Error(`attach to the nested HWPT: ${attach.rc}`);

  const domain = host.iommu.domainFor(fn, null);
  if (!(domain instanceof MockNestedDomain)) throw new Error(`${fn.name} does not translate through a mock nested domain`);
  const stage1 = new IoPageTable(ram.tableMemory(RAM_IPA, tablePages));
  domain.setStage1Table(stage1.root);
  return { ram, parentId: parent.out.out_hwpt_id, nestedId: nested.out.out_hwpt_id, domain, stage1 };
}

/** IOMMU_HWPT_INVALIDATE of the mock's IOTLB ways `ways` (one entry each), with the entries staged at `at`. */
export function invalidateWays(vmm: Vmm, iommufd: number, hwptId: number, at: bigint, ways: readonly number[]) {
  const size = iommu_hwpt_invalidate_selftest.size;
  const entries = new Uint8Array(ways.length * size);
  ways.forEach((way, i) => entries.set(iommu_hwpt_invalidate_selftest.encodeNew({ flags: 0, iotlb_id: way }), i * size));
  vmm.proc.mem.write(at, entries);
  vmm.trace.note(`entries at ${hex(at)}: ${ways.map((way) => `{flags=0, iotlb_id=${way}}`).join(', ')}`);
  return vmm.ioctl(iommufd, 'IOMMU_HWPT_INVALIDATE', iommu_hwpt_invalidate, {
    hwpt_id: hwptId,
    data_uptr: at,
    data_type: IOMMU_HWPT_INVALIDATE_DATA_SELFTEST,
    entry_len: size,
    entry_num: ways.length,
  });
}

/**
 * What a vIOMMU gets wrong most often: the guest changes its stage-1 table
 * and the invalidation does not reach the right cache. The device keeps
 * using the old translation; the model's detector names the stale hit.
 */
export function nestedAndStale(ctx: DemoContext): void {
  const { vmm, trace, host } = ctx;
  const dev = nvmeOf(ctx);
  ctx.step = 'nested';
  trace.section('5. vIOMMU: stage 1 (guest) over stage 2 (IOAS), and a missing invalidation');

  const nested = setUpNested(vmm, host, ctx.iommufd, ctx.ioasId, dev.fd, dev.devid, dev.fn);
  trace.note(`guest RAM: ${RAM_SIZE / 1024} KiB of the VMM's memory at IPA ${hex(RAM_IPA)} (IOVA = IPA in IOAS ${ctx.ioasId})`);
  trace.note(`HWPT ${nested.parentId} is stage 2 (nesting parent), HWPT ${nested.nestedId} the guest's stage 1 over it; the device is attached to ${nested.nestedId}`);
  trace.note(`guest: builds a 4-level stage-1 table at IPA ${hex(nested.stage1.root)} and maps IOVA ${hex(GUEST_IOVA)} -> IPA ${hex(PAGE_A)}`);
  nested.stage1.mapPages(GUEST_IOVA, PAGE_A, PAGE_4K, 1n, IOMMU_READ | IOMMU_WRITE);

  const first = runDeviceDma(ctx, dev, GUEST_IOVA, DMA_MESSAGE.length);
  const landedA = quote(nested.ram.read(PAGE_A, 16));
  trace.note(`guest page A (IPA ${hex(PAGE_A)}) now holds ${landedA}...`);
  check(ctx, first === DMA_STATUS_DONE && Buffer.from(nested.ram.read(PAGE_A, DMA_MESSAGE.length)).equals(Buffer.from(DMA_MESSAGE)), 'DMA through stage 1 + stage 2 lands in guest page A');

  trace.line('');
  trace.note(`guest: remaps IOVA ${hex(GUEST_IOVA)} -> IPA ${hex(PAGE_B)} and forgets to invalidate`);
  nested.stage1.unmapPages(GUEST_IOVA, PAGE_4K, 1n);
  nested.stage1.mapPages(GUEST_IOVA, PAGE_B, PAGE_4K, 1n, IOMMU_READ | IOMMU_WRITE);
  nested.ram.write(PAGE_A, new Uint8Array(DMA_MESSAGE.length));
  host.dma.clearStaleLog();
  runDeviceDma(ctx, dev, GUEST_IOVA, DMA_MESSAGE.length);
  const stale = host.dma.staleLog[0];
  if (stale) {
    trace.note(`STALE TRANSLATION: ${stale.device.name} ${stale.direction} at IOVA ${hex(stale.iova)} used the ${stale.cache} entry -> PA ${hex(stale.cached.pa)};`
      + ` the tables say PA ${stale.correct ? hex(stale.correct.pa) : stale.correctFault}`);
  }
  const wentToA = Buffer.from(nested.ram.read(PAGE_A, DMA_MESSAGE.length)).equals(Buffer.from(DMA_MESSAGE));
  check(ctx, wentToA && stale !== undefined, 'without invalidation the DMA still goes to page A, and the detector reports it');

  trace.line('');
  const scratch = vmm.mmap(4096);
  trace.note('guest: invalidates IOTLB way 2 (the wrong one), then way 1 (the mock keeps IOVA 0x5000 in way 1: bits 13:12)');
  const wrong = invalidateWays(vmm, ctx.iommufd, nested.nestedId, scratch, [2]);
  check(ctx, wrong.rc === 0 && wrong.out.entry_num === 1, 'IOMMU_HWPT_INVALIDATE handles its one entry');
  const right = invalidateWays(vmm, ctx.iommufd, nested.nestedId, scratch, [1]);
  check(ctx, right.rc === 0, 'IOMMU_HWPT_INVALIDATE of the right way succeeds');
  nested.ram.write(PAGE_B, new Uint8Array(DMA_MESSAGE.length));
  runDeviceDma(ctx, dev, GUEST_IOVA, DMA_MESSAGE.length);
  trace.note(`guest page B (IPA ${hex(PAGE_B)}) now holds ${quote(nested.ram.read(PAGE_B, 16))}...`);
  check(ctx, Buffer.from(nested.ram.read(PAGE_B, DMA_MESSAGE.length)).equals(Buffer.from(DMA_MESSAGE)), 'after the invalidation the DMA lands in page B');

  trace.line('');
  const back = vmm.ioctl(dev.fd, 'VFIO_DEVICE_ATTACH_IOMMUFD_PT', vfio_device_attach_iommufd_pt, { flags: 0, pt_id: ctx.ioasId });
  trace.note('back to the IOAS (a replace: no blocking window for the device)');
  check(ctx, back.rc === 0, 'VFIO_DEVICE_ATTACH_IOMMUFD_PT replaces the nested HWPT with the IOAS');
}
