import { describe, expect, it } from 'vitest';
import {
  HwptNested,
  IOMMU_HWPT_ALLOC,
  IOMMU_HWPT_ALLOC_NEST_PARENT,
  IOMMU_HWPT_DATA_SELFTEST,
  IOMMU_HWPT_INVALIDATE,
  IOMMU_HWPT_INVALIDATE_DATA_SELFTEST,
  IOMMU_IOAS_ALLOC,
  IOMMU_IOAS_MAP,
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
  iommu_ioas_alloc,
  iommu_ioas_map,
  readLe64,
  writeLe64,
  type TableMemory,
} from '@vfiosim/core';
import { NIC0, PAGE, Vmm, dmaHost } from './harness.js';

/*
 * The stale-translation detector, seen the way a vIOMMU developer meets it:
 * QEMU builds a nested HWPT for the device through /dev/iommu, the guest
 * edits its stage-1 table in its own RAM, the device DMAs before the guest
 * has invalidated (the IOMMU uses its cached translation, as hardware
 * does, and the detector records it), then IOMMU_HWPT_INVALIDATE and the
 * device reaches the right page.
 *
 * The mock's nested data (struct iommu_hwpt_selftest) carries no stage-1
 * pointer, so the one step not done through an ioctl is pointing the
 * nested domain at the guest's table, as the selftest pokes its mock.
 */

/** Guest RAM: IPA (= IOVA of the stage-2 IOAS) 0x4000_0000, 32 pages; stage-1 tables from page 0, data from page 16. */
const RAM_IPA = 0x4000_0000n;
const RAM_PAGES = 32n;
const DATA = 16n;
/** A stage-1 IOVA whose bits 13:12 are 1: the mock caches it in IOTLB way 1. */
const S1_IOVA = 0x5000n;

function nestedVm(detectStaleTranslations: boolean) {
  const host = dmaHost({ detectStaleTranslations });
  const vmm = new Vmm(host);
  const nic = vmm.fn(NIC0);
  const iommufd = vmm.open('/dev/iommu');
  const { fd: device, devId } = vmm.bindCdev(NIC0, iommufd);
  const ioas = vmm.ioctl(iommufd, IOMMU_IOAS_ALLOC, iommu_ioas_alloc, { size: iommu_ioas_alloc.size });
  expect(ioas.rc).toBe(0);
  const ioasId = ioas.out.out_ioas_id;

  const parent = vmm.ioctl(iommufd, IOMMU_HWPT_ALLOC, iommu_hwpt_alloc, {
    size: iommu_hwpt_alloc.size, flags: IOMMU_HWPT_ALLOC_NEST_PARENT, dev_id: devId, pt_id: ioasId,
  });
  expect(parent.rc).toBe(0);
  const ram = vmm.mmap(PAGE * RAM_PAGES);
  expect(vmm.ioctl(iommufd, IOMMU_IOAS_MAP, iommu_ioas_map, {
    size: iommu_ioas_map.size,
    flags: IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_FIXED_IOVA,
    ioas_id: ioasId, user_va: ram, length: PAGE * RAM_PAGES, iova: RAM_IPA,
  }).rc).toBe(0);

  const data = vmm.mmap(PAGE);
  vmm.write(data, iommu_hwpt_selftest.encodeNew({ iotlb: IOMMU_TEST_IOTLB_DEFAULT }));
  const nested = vmm.ioctl(iommufd, IOMMU_HWPT_ALLOC, iommu_hwpt_alloc, {
    size: iommu_hwpt_alloc.size, dev_id: devId, pt_id: parent.out.out_hwpt_id,
    data_type: IOMMU_HWPT_DATA_SELFTEST, data_len: iommu_hwpt_selftest.size, data_uptr: data,
  });
  expect(nested.rc).toBe(0);
  const nestedId = nested.out.out_hwpt_id;
  expect(vmm.attachPt(device, nestedId)).toBe(0);

  // The guest's stage-1 table, built by writing guest RAM through the VMM's mapping of it.
  const ipaToVa = (ipa: bigint) => ram + (ipa - RAM_IPA);
  let nextTable = RAM_IPA;
  const guestTables: TableMemory = {
    readU64: (ipa) => readLe64(vmm.read(ipaToVa(ipa), 8)),
    writeU64: (ipa, value) => {
      const bytes = new Uint8Array(8);
      writeLe64(bytes, value);
      vmm.write(ipaToVa(ipa), bytes);
    },
    allocTable: () => (nextTable += PAGE) - PAGE,
    freeTable: () => {},
  };
  const s1 = new IoPageTable(guestTables);
  const ictx = host.iommufd.ctxFromFile(vmm.proc.fdget(iommufd))!;
  (ictx.objects.get<HwptNested>(nestedId, 'hwpt_nested').hwDomain as MockNestedDomain).setStage1Table(s1.root);

  const dataPage = (n: bigint) => ({ ipa: RAM_IPA + (DATA + n) * PAGE, va: ipaToVa(RAM_IPA + (DATA + n) * PAGE) });

  /** IOMMU_HWPT_INVALIDATE with selftest entries placed in the VMM's memory; returns rc and entry_num. */
  const invalidate = (entries: { flags: number; iotlb_id: number }[]) => {
    const array = vmm.mmap(PAGE);
    entries.forEach((e, i) => vmm.write(array + BigInt(i * iommu_hwpt_invalidate_selftest.size), iommu_hwpt_invalidate_selftest.encodeNew(e)));
    const { rc, out } = vmm.ioctl(iommufd, IOMMU_HWPT_INVALIDATE, iommu_hwpt_invalidate, {
      size: iommu_hwpt_invalidate.size, hwpt_id: nestedId, data_uptr: array,
      data_type: IOMMU_HWPT_INVALIDATE_DATA_SELFTEST, entry_len: iommu_hwpt_invalidate_selftest.size, entry_num: entries.length,
    });
    return { rc, num: out.entry_num };
  };
  return { host, vmm, nic, s1, dataPage, invalidate };
}

describe('the stale-translation detector (createHost detectStaleTranslations)', () => {
  it('records the IOVA, device, cached and correct entries and virtual time of a stale use; HWPT_INVALIDATE ends it', () => {
    const { host, vmm, nic, s1, dataPage, invalidate } = nestedVm(true);
    const old = dataPage(0n);
    const fresh = dataPage(1n);
    s1.mapPages(S1_IOVA, old.ipa, PAGE_4K, 1n, IOMMU_READ | IOMMU_WRITE);
    host.dma.dmaWrite(nic, S1_IOVA + 0x10n, Uint8Array.of(1));
    expect(vmm.read(old.va + 0x10n, 1)).toEqual(Uint8Array.of(1));
    expect(host.dma.staleLog).toEqual([]);

    // The guest repoints the IOVA in its table and does not invalidate yet.
    s1.unmapPages(S1_IOVA, PAGE_4K, 1n);
    s1.mapPages(S1_IOVA, fresh.ipa, PAGE_4K, 1n, IOMMU_READ);
    host.clock.advance(1_500n);
    host.dma.dmaWrite(nic, S1_IOVA + 0x10n, Uint8Array.of(2));
    expect(vmm.read(old.va + 0x10n, 1)).toEqual(Uint8Array.of(2));
    expect(vmm.read(fresh.va + 0x10n, 1)).toEqual(Uint8Array.of(0));
    const hpa = (va: bigint) => vmm.proc.mm.translate(va);
    expect(host.dma.staleLog).toEqual([{
      time: 1_500n,
      device: nic,
      iova: S1_IOVA + 0x10n,
      pasid: null,
      direction: 'write',
      cache: 'iotlb',
      cached: { iova: S1_IOVA, pa: hpa(old.va), pageSize: PAGE, perm: IOMMU_READ | IOMMU_WRITE },
      correct: { iova: S1_IOVA, pa: hpa(fresh.va), pageSize: PAGE, perm: IOMMU_READ },
      correctFault: null,
    }]);

    // Invalidating the wrong IOTLB way leaves the stale entry in use.
    expect(invalidate([{ flags: 0, iotlb_id: 2 }])).toEqual({ rc: 0, num: 1 });
    host.dma.dmaRead(nic, S1_IOVA, 1);
    expect(host.dma.staleLog).toHaveLength(2);

    // The right way: the walk is done again; the new read-only entry refuses the write and serves the read.
    host.dma.clearStaleLog();
    expect(invalidate([{ flags: 0, iotlb_id: 1 }])).toEqual({ rc: 0, num: 1 });
    vmm.write(fresh.va + 0x20n, Uint8Array.of(0x33));
    expect(host.dma.dmaRead(nic, S1_IOVA + 0x20n, 1)).toEqual(Uint8Array.of(0x33));
    expect(host.dma.tryDmaWrite(nic, S1_IOVA, Uint8Array.of(3))?.reason).toBe('permission');
    expect(vmm.read(old.va, 1)).toEqual(Uint8Array.of(0));
    expect(host.dma.staleLog).toEqual([]);
  });

  it('records a stale use of an IOVA the guest unmapped, with the fault a fresh walk gives', () => {
    const { host, nic, s1, dataPage } = nestedVm(true);
    s1.mapPages(S1_IOVA, dataPage(0n).ipa, PAGE_4K, 1n, IOMMU_READ | IOMMU_WRITE);
    host.dma.dmaRead(nic, S1_IOVA, 1);
    s1.unmapPages(S1_IOVA, PAGE_4K, 1n);
    host.dma.dmaRead(nic, S1_IOVA, 1);
    expect(host.dma.staleLog).toMatchObject([{ iova: S1_IOVA, direction: 'read', correct: null, correctFault: 'not-present' }]);
  });

  it('is off unless the host asks for it, and can be switched on for a running host', () => {
    const { host, nic, s1, dataPage } = nestedVm(false);
    expect(host.dma.detectStaleTranslations).toBe(false);
    s1.mapPages(S1_IOVA, dataPage(0n).ipa, PAGE_4K, 1n, IOMMU_READ | IOMMU_WRITE);
    host.dma.dmaRead(nic, S1_IOVA, 1);
    s1.unmapPages(S1_IOVA, PAGE_4K, 1n);
    s1.mapPages(S1_IOVA, dataPage(1n).ipa, PAGE_4K, 1n, IOMMU_READ | IOMMU_WRITE);
    host.dma.dmaRead(nic, S1_IOVA, 1);
    expect(host.dma.staleLog).toEqual([]);
    host.dma.detectStaleTranslations = true;
    host.dma.dmaRead(nic, S1_IOVA, 1);
    expect(host.dma.staleLog).toHaveLength(1);
  });
});
