import { describe, expect, it } from 'vitest';
import {
  DmaEngine, IOMMU_HWPT_ALLOC_DIRTY_TRACKING, IOMMU_HWPT_ALLOC_NEST_PARENT, IOMMU_HWPT_ALLOC_PASID,
  IOMMU_HWPT_DATA_NONE, IOMMU_HWPT_DATA_SELFTEST, IOMMU_HWPT_FAULT_ID_VALID, IOMMU_HWPT_INVALIDATE_DATA_SELFTEST,
  IOMMU_HWPT_INVALIDATE_DATA_SELFTEST_INVALID, IOMMU_HW_INFO_SELFTEST_REGVAL, IOMMU_HW_INFO_TYPE_DEFAULT,
  IOMMU_HW_INFO_TYPE_INTEL_VTD, IOMMU_HW_INFO_TYPE_SELFTEST, IOMMU_READ, IOMMU_TEST_DEV_CACHE_DEFAULT,
  IOMMU_TEST_INVALIDATE_FLAG_ALL, IOMMU_TEST_IOTLB_DEFAULT, IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST,
  IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST_INVALID, IOMMU_VIOMMU_TYPE_ARM_SMMUV3, IOMMU_VIOMMU_TYPE_SELFTEST, IOMMU_WRITE,
  MOCK_APERTURE_LAST, MOCK_APERTURE_START, MOCK_FLAGS_DEVICE_HUGE_IOVA, MOCK_FLAGS_DEVICE_NO_DIRTY, MOCK_PASID_WIDTH,
  PAGE_4K, BLOCK_2M, iommuMap, iommu_hwpt_invalidate_selftest, iommu_hwpt_selftest, iommu_test_hw_info,
  iommu_viommu_invalidate_selftest, iommu_viommu_selftest, type IommuClientDevice, type IommuDomain,
  type IommuUserDataArray, type MockNestedDomain, type MockPagingDomain, type MockViommu,
} from '@vfiosim/core';
import { WindowUserMemory, mockHost, simError } from './helpers.js';

const UPTR = 0x7f00_0000_0000n;
const RW = IOMMU_READ | IOMMU_WRITE;

function userMem(): WindowUserMemory {
  return new WindowUserMemory(UPTR, 4096);
}

function selftestData(mem: WindowUserMemory, iotlb = IOMMU_TEST_IOTLB_DEFAULT, len = iommu_hwpt_selftest.size) {
  mem.copyToUser(UPTR, iommu_hwpt_selftest.encodeNew({ iotlb }));
  return { type: IOMMU_HWPT_DATA_SELFTEST, mem, uptr: UPTR, len };
}

function setup() {
  const host = mockHost();
  const dev = host.device(1);
  host.core.deviceClaimDmaOwner(dev, host);
  const parent = host.core.pagingDomainAlloc(dev, IOMMU_HWPT_ALLOC_NEST_PARENT) as MockPagingDomain;
  const mem = userMem();
  const nested = host.mock.domainAllocNested(dev, parent, 0, selftestData(mem)) as MockNestedDomain;
  return { ...host, dev, parent, nested, mem };
}

/** Writes `entries` as an array of `entryLen`-byte entries at UPTR + 0x100 and returns the user data array. */
function hwptArray(mem: WindowUserMemory, entries: { flags: number; iotlb_id: number }[], options: { type?: number; entryLen?: number; entryNum?: number } = {}): IommuUserDataArray {
  const entryLen = options.entryLen ?? iommu_hwpt_invalidate_selftest.size;
  mem.bytes.fill(0, 0x100);
  entries.forEach((e, i) => mem.copyToUser(UPTR + 0x100n + BigInt(i * entryLen), iommu_hwpt_invalidate_selftest.encodeNew(e)));
  return {
    type: options.type ?? IOMMU_HWPT_INVALIDATE_DATA_SELFTEST,
    mem,
    uptr: UPTR + 0x100n,
    entryLen,
    entryNum: options.entryNum ?? entries.length,
    handled: -1,
  };
}

describe('mock IOMMU driver: hw_info, capabilities, domain allocation', () => {
  it('reports struct iommu_test_hw_info of IOMMU_HW_INFO_TYPE_SELFTEST, and EOPNOTSUPP for another type', () => {
    const { mock, device } = mockHost();
    const dev = device(1);
    for (const type of [IOMMU_HW_INFO_TYPE_DEFAULT, IOMMU_HW_INFO_TYPE_SELFTEST]) {
      const info = mock.hwInfo(dev, type);
      expect(info.type).toBe(0xfeedbeef);
      expect(info.data.length).toBe(8);
      expect(iommu_test_hw_info.decode(info.data)).toEqual({ flags: 0, test_reg: IOMMU_HW_INFO_SELFTEST_REGVAL });
    }
    expect(simError(() => mock.hwInfo(dev, IOMMU_HW_INFO_TYPE_INTEL_VTD)).errnoName).toBe('EOPNOTSUPP');
  });

  it('answers capabilities as the selftest does', () => {
    const { mock, device } = mockHost();
    const plain = device(1);
    const noDirty = device(2, MOCK_FLAGS_DEVICE_NO_DIRTY);
    expect(mock.capable(plain, 'cacheCoherency')).toBe(true);
    expect(mock.capable(plain, 'dirtyTracking')).toBe(true);
    expect(mock.capable(noDirty, 'dirtyTracking')).toBe(false);
    expect(mock.capable(plain, 'noexec')).toBe(false);
  });

  it('validates mock device flags with EINVAL and gives PASID devices MOCK_PASID_WIDTH', () => {
    const { mock } = mockHost();
    expect(simError(() => mock.createDevice(1 << 5)).errnoName).toBe('EINVAL');
    expect(mock.createDevice(4).maxPasidLog2).toBe(MOCK_PASID_WIDTH);
    const dev: IommuClientDevice = { name: 'x', rid: 1, maxPasidLog2: 0, atsCapable: false };
    expect(simError(() => mock.setDeviceFlags(dev, 1 << 8)).errnoName).toBe('EINVAL');
    expect(simError(() => mock.mockDevice(dev)).errnoName).toBe('ENODEV');
  });

  it('allocates paging domains with the mock aperture and checks flags and data in the selftest order', () => {
    const { mock, device } = mockHost();
    const dev = device(1);
    const noDirty = device(2, MOCK_FLAGS_DEVICE_NO_DIRTY);
    const huge = device(3, MOCK_FLAGS_DEVICE_HUGE_IOVA);
    const domain = mock.domainAllocPaging(dev, 0, null);
    expect(domain).toMatchObject({ kind: 'paging', apertureStart: MOCK_APERTURE_START, apertureEnd: MOCK_APERTURE_LAST, pgsizeBitmap: PAGE_4K, dirtyOps: null });
    expect(mock.domainAllocPaging(huge, 0, null).pgsizeBitmap).toBe(PAGE_4K | BLOCK_2M);
    expect(mock.domainAllocPaging(dev, IOMMU_HWPT_ALLOC_DIRTY_TRACKING, null).dirtyOps).not.toBeNull();
    expect(simError(() => mock.domainAllocPaging(dev, IOMMU_HWPT_FAULT_ID_VALID, null)).errnoName).toBe('EOPNOTSUPP');
    expect(simError(() => mock.domainAllocPaging(noDirty, IOMMU_HWPT_ALLOC_DIRTY_TRACKING, null)).errnoName).toBe('EOPNOTSUPP');
    const mem = userMem();
    expect(simError(() => mock.domainAllocPaging(dev, 0, { ...selftestData(mem), type: 3 })).errnoName).toBe('EOPNOTSUPP');
    // DATA_NONE passes the type filter but not the copy, which wants the selftest type.
    expect(simError(() => mock.domainAllocPaging(dev, 0, { ...selftestData(mem), type: IOMMU_HWPT_DATA_NONE })).errnoName).toBe('EINVAL');
    expect(mock.domainAllocPaging(dev, IOMMU_HWPT_ALLOC_PASID, selftestData(mem)).kind).toBe('paging');
  });

  it('allocates nested domains seeded with the user iotlb value, and rejects bad flags, parents, types and sizes', () => {
    const { mock, dev, parent, nested } = setup();
    expect(nested.iotlb).toEqual([IOMMU_TEST_IOTLB_DEFAULT, IOMMU_TEST_IOTLB_DEFAULT, IOMMU_TEST_IOTLB_DEFAULT, IOMMU_TEST_IOTLB_DEFAULT]);
    nested.checkIotlb(3, IOMMU_TEST_IOTLB_DEFAULT);
    expect(simError(() => nested.checkIotlb(4, IOMMU_TEST_IOTLB_DEFAULT)).errnoName).toBe('EINVAL');
    expect(simError(() => nested.checkIotlb(0, 1)).errnoName).toBe('EINVAL');
    const mem = userMem();
    expect(simError(() => mock.domainAllocNested(dev, parent, IOMMU_HWPT_ALLOC_NEST_PARENT, selftestData(mem))).errnoName).toBe('EOPNOTSUPP');
    expect(simError(() => mock.domainAllocNested(dev, nested, 0, selftestData(mem))).errnoName).toBe('EINVAL');
    expect(simError(() => mock.domainAllocNested(dev, parent, 0, { ...selftestData(mem), type: 1 })).errnoName).toBe('EOPNOTSUPP');
    expect(simError(() => mock.domainAllocNested(dev, parent, 0, selftestData(mem, 1, 3))).errnoName).toBe('EINVAL');
    expect(simError(() => mock.domainAllocNested(dev, parent, 0, selftestData(mem, 1, 5))).errnoName).toBe('EINVAL');
    expect(simError(() => mock.domainAllocNested(dev, parent, 0, { ...selftestData(mem), uptr: 0x10n })).errnoName).toBe('EFAULT');
    expect((mock.domainAllocNested(dev, parent, IOMMU_HWPT_ALLOC_PASID, selftestData(mem, 7)) as MockNestedDomain).iotlb[0]).toBe(7);
  });
});

describe('mock nested HWPT invalidation (IOMMU_HWPT_INVALIDATE_DATA_SELFTEST)', () => {
  it('zeroes the named iotlb entry, or all of them with IOMMU_TEST_INVALIDATE_FLAG_ALL', () => {
    const { nested, mem } = setup();
    const one = hwptArray(mem, [{ flags: 0, iotlb_id: 2 }]);
    nested.cacheInvalidateUser(one);
    expect(one.handled).toBe(1);
    expect(nested.iotlb).toEqual([IOMMU_TEST_IOTLB_DEFAULT, IOMMU_TEST_IOTLB_DEFAULT, 0, IOMMU_TEST_IOTLB_DEFAULT]);
    const all = hwptArray(mem, [{ flags: IOMMU_TEST_INVALIDATE_FLAG_ALL, iotlb_id: 0 }]);
    nested.cacheInvalidateUser(all);
    expect(nested.iotlb).toEqual([0, 0, 0, 0]);
  });

  it('stops at an entry with unknown flags with EOPNOTSUPP, handled counting the entries before it', () => {
    const { nested, mem } = setup();
    const array = hwptArray(mem, [{ flags: 0, iotlb_id: 0 }, { flags: 0, iotlb_id: 1 }, { flags: 0xffffffff, iotlb_id: 2 }, { flags: 0, iotlb_id: 3 }]);
    expect(simError(() => nested.cacheInvalidateUser(array)).errnoName).toBe('EOPNOTSUPP');
    expect(array.handled).toBe(2);
    // The entries before the bad one took effect; the ones after it did not.
    expect(nested.iotlb).toEqual([0, 0, IOMMU_TEST_IOTLB_DEFAULT, IOMMU_TEST_IOTLB_DEFAULT]);
  });

  it('stops at an iotlb_id beyond MOCK_NESTED_DOMAIN_IOTLB_ID_MAX with EINVAL, even with FLAG_ALL', () => {
    const { nested, mem } = setup();
    const array = hwptArray(mem, [{ flags: 0, iotlb_id: 0 }, { flags: IOMMU_TEST_INVALIDATE_FLAG_ALL, iotlb_id: 4 }]);
    expect(simError(() => nested.cacheInvalidateUser(array)).errnoName).toBe('EINVAL');
    expect(array.handled).toBe(1);
    expect(nested.iotlb[1]).toBe(IOMMU_TEST_IOTLB_DEFAULT);
  });

  it('refuses another data_type with EINVAL and nothing handled', () => {
    const { nested, mem } = setup();
    const array = hwptArray(mem, [{ flags: 0, iotlb_id: 0 }], { type: IOMMU_HWPT_INVALIDATE_DATA_SELFTEST_INVALID });
    expect(simError(() => nested.cacheInvalidateUser(array)).errnoName).toBe('EINVAL');
    expect(array.handled).toBe(0);
    expect(nested.iotlb[0]).toBe(IOMMU_TEST_IOTLB_DEFAULT);
  });

  it('accepts an empty array of its type as a probe', () => {
    const { nested, mem } = setup();
    const array = hwptArray(mem, [], { entryNum: 0 });
    nested.cacheInvalidateUser(array);
    expect(array.handled).toBe(0);
  });

  it('refuses entry sizes outside [offsetofend(iotlb_id), sizeof] with EINVAL, and unreadable entries with EFAULT', () => {
    const { nested, mem } = setup();
    const tooLong = hwptArray(mem, [{ flags: 0, iotlb_id: 0 }], { entryLen: 9 });
    expect(simError(() => nested.cacheInvalidateUser(tooLong)).errnoName).toBe('EINVAL');
    expect(tooLong.handled).toBe(0);
    const tooShort = hwptArray(mem, [{ flags: 0, iotlb_id: 0 }], { entryLen: 1 });
    expect(simError(() => nested.cacheInvalidateUser(tooShort)).errnoName).toBe('EINVAL');
    // Two good entries, the third beyond the user's mapping.
    const array = hwptArray(mem, [{ flags: 0, iotlb_id: 0 }, { flags: 0, iotlb_id: 1 }]);
    const faulting = { ...array, uptr: UPTR + 4096n - 16n, entryNum: 3 };
    mem.copyToUser(UPTR + 4096n - 16n, new Uint8Array(16));
    expect(simError(() => nested.cacheInvalidateUser(faulting)).errnoName).toBe('EFAULT');
    expect(faulting.handled).toBe(2);
  });
});

describe('mock vIOMMU', () => {
  function viommuSetup() {
    const base = setup();
    const offsets: bigint[] = [];
    const viommu = base.mock.viommuAlloc(base.dev, base.parent, IOMMU_VIOMMU_TYPE_SELFTEST, null, {
      allocMmap: (pa) => {
        offsets.push(pa);
        return 0x1000n;
      },
    }) as MockViommu;
    return { ...base, viommu, offsets };
  }

  function viommuArray(mem: WindowUserMemory, entries: { flags: number; vdev_id: number; cache_id: number }[], options: { type?: number; entryLen?: number } = {}): IommuUserDataArray {
    const entryLen = options.entryLen ?? iommu_viommu_invalidate_selftest.size;
    mem.bytes.fill(0, 0x200);
    entries.forEach((e, i) => mem.copyToUser(UPTR + 0x200n + BigInt(i * entryLen), iommu_viommu_invalidate_selftest.encodeNew(e)));
    return { type: options.type ?? IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST, mem, uptr: UPTR + 0x200n, entryLen, entryNum: entries.length, handled: -1 };
  }

  it('refuses other vIOMMU types with EOPNOTSUPP', () => {
    const { mock, dev, parent } = setup();
    expect(simError(() => mock.viommuAlloc(dev, parent, IOMMU_VIOMMU_TYPE_ARM_SMMUV3, null, {})).errnoName).toBe('EOPNOTSUPP');
  });

  it('loops in_data back to out_data and reports its mmap window', () => {
    const { mock, dev, parent, physMem } = setup();
    const mem = userMem();
    mem.copyToUser(UPTR, iommu_viommu_selftest.encodeNew({ in_data: 0x1234abcd }));
    let windowPa = 0n;
    const viommu = mock.viommuAlloc(dev, parent, IOMMU_VIOMMU_TYPE_SELFTEST, {
      type: IOMMU_VIOMMU_TYPE_SELFTEST, mem, uptr: UPTR, len: iommu_viommu_selftest.size,
    }, {
      allocMmap: (pa, length) => {
        windowPa = pa;
        expect(length).toBe(8192n);
        return 0x5000n;
      },
    }) as MockViommu;
    expect(iommu_viommu_selftest.decode(mem.copyFromUser(UPTR, 24))).toEqual({
      in_data: 0x1234abcd, out_data: 0x1234abcd, out_mmap_offset: 0x5000n, out_mmap_length: 8192n,
    });
    expect([...physMem.read(windowPa, 4)]).toEqual([0xcd, 0xab, 0x34, 0x12]);
    expect(viommu.mmapOffset).toBe(0x5000n);
    viommu.destroy();
    expect(viommu.mmapOffset).toBeNull();
    expect(simError(() => mock.viommuAlloc(dev, parent, IOMMU_VIOMMU_TYPE_SELFTEST, {
      type: IOMMU_VIOMMU_TYPE_SELFTEST, mem, uptr: UPTR, len: iommu_viommu_selftest.size,
    }, {})).errnoName).toBe('EOPNOTSUPP');
  });

  it('attaches a vIOMMU nested domain only to a device with a vDEVICE (ENOENT otherwise)', () => {
    const { core, dev, viommu, mem, mock } = viommuSetup();
    const nested = viommu.allocDomainNested(dev, 0, selftestData(mem));
    expect(simError(() => viommu.allocDomainNested(dev, IOMMU_HWPT_ALLOC_NEST_PARENT, selftestData(mem))).errnoName).toBe('EOPNOTSUPP');
    expect(simError(() => core.replaceGroupDomain(1, nested)).errnoName).toBe('ENOENT');
    viommu.vdeviceInit(dev, 0x99n);
    core.replaceGroupDomain(1, nested);
    expect(mock.mockDevice(dev)).toMatchObject({ viommu, vdevId: 0x99n });
  });

  it('invalidates device caches by vdev_id and reports the first bad entry as the selftest does', () => {
    const { mock, dev, viommu, mem } = viommuSetup();
    viommu.vdeviceInit(dev, 0x99n);
    const probe = viommuArray(mem, []);
    viommu.cacheInvalidate(probe);
    expect(probe.handled).toBe(0);

    const good = viommuArray(mem, [{ flags: 0, vdev_id: 0x99, cache_id: 1 }]);
    viommu.cacheInvalidate(good);
    expect(good.handled).toBe(1);
    expect(mock.mockDevice(dev).cache).toEqual([IOMMU_TEST_DEV_CACHE_DEFAULT, 0, IOMMU_TEST_DEV_CACHE_DEFAULT, IOMMU_TEST_DEV_CACHE_DEFAULT]);
    mock.checkDevCache(dev, 1, 0);
    expect(simError(() => mock.checkDevCache(dev, 0, 0)).errnoName).toBe('EINVAL');

    const badFlags = viommuArray(mem, [{ flags: IOMMU_TEST_INVALIDATE_FLAG_ALL, vdev_id: 0x99, cache_id: 0 }, { flags: 0xffffffff, vdev_id: 0x99, cache_id: 0 }]);
    expect(simError(() => viommu.cacheInvalidate(badFlags)).errnoName).toBe('EOPNOTSUPP');
    expect(badFlags.handled).toBe(1);
    expect(mock.mockDevice(dev).cache).toEqual([0, 0, 0, 0]);

    const badCache = viommuArray(mem, [{ flags: 0, vdev_id: 0x99, cache_id: 4 }]);
    expect(simError(() => viommu.cacheInvalidate(badCache)).errnoName).toBe('EINVAL');
    expect(badCache.handled).toBe(0);
    const badVdev = viommuArray(mem, [{ flags: 0, vdev_id: 0x99, cache_id: 0 }, { flags: 0, vdev_id: 0x98, cache_id: 0 }]);
    expect(simError(() => viommu.cacheInvalidate(badVdev)).errnoName).toBe('EINVAL');
    expect(badVdev.handled).toBe(1);
    const badType = viommuArray(mem, [{ flags: 0, vdev_id: 0x99, cache_id: 0 }], { type: IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST_INVALID });
    expect(simError(() => viommu.cacheInvalidate(badType)).errnoName).toBe('EINVAL');
    expect(badType.handled).toBe(0);
    // The whole array is copied first: a long entry with a non-zero tail fails before any entry is handled.
    const longEntry = viommuArray(mem, [{ flags: 0, vdev_id: 0x99, cache_id: 0 }, { flags: 0, vdev_id: 0x99, cache_id: 0 }], { entryLen: 16 });
    mem.copyToUser(UPTR + 0x200n + 16n + 12n, Uint8Array.of(1));
    expect(simError(() => viommu.cacheInvalidate(longEntry)).errnoName).toBe('E2BIG');
    expect(longEntry.handled).toBe(0);
  });

  it('empties the device ATC slot the invalidation names, so the device sees the new translation', () => {
    const { core, dev, viommu, mem, physMem, parent } = viommuSetup();
    viommu.vdeviceInit(dev, 0x99n);
    const nested = viommu.allocDomainNested(dev, 0, selftestData(mem)) as IommuDomain;
    core.replaceGroupDomain(1, nested);
    const a = physMem.allocate();
    const b = physMem.allocate();
    // Stage-1 bypass: IOVA = IPA; IOVA 0x100_1000 has bits 13:12 = 1.
    iommuMap(parent, 0x100_1000n, a.pa, PAGE_4K, RW);
    const dma = new DmaEngine(core, physMem);
    dma.dmaRead(dev, 0x100_1000n, 1);
    parent.pgtable.unmapPages(0x100_1000n, PAGE_4K, 1n);
    parent.pgtable.mapPages(0x100_1000n, b.pa, PAGE_4K, 1n, RW);
    parent.mock.iommu.iotlb.invalidateAll();
    dma.dmaWrite(dev, 0x100_1000n, Uint8Array.of(1));
    expect(a.data[0]).toBe(1);
    viommu.cacheInvalidate(viommuArray(mem, [{ flags: 0, vdev_id: 0x99, cache_id: 0 }]));
    dma.dmaWrite(dev, 0x100_1000n, Uint8Array.of(2));
    expect(a.data[0]).toBe(2);
    viommu.cacheInvalidate(viommuArray(mem, [{ flags: 0, vdev_id: 0x99, cache_id: 1 }]));
    dma.dmaWrite(dev, 0x100_1000n, Uint8Array.of(3));
    expect(b.data[0]).toBe(3);
  });
});
