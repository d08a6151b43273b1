import { AssertionError } from 'node:assert';
import { describe, expect, it } from 'vitest';
import {
  IOMMU_HWPT_DATA_SELFTEST,
  IOMMU_HWPT_INVALIDATE_DATA_SELFTEST,
  IOMMU_HW_INFO_TYPE_SELFTEST,
  IOMMU_TEST_INVALIDATE_FLAG_ALL,
  IOMMU_TEST_IOTLB_DEFAULT,
  IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST,
  IOMMU_VIOMMU_TYPE_SELFTEST,
  MockNestedDomain,
  iommuDriverConformance,
  iommu_hwpt_invalidate_selftest,
  iommu_hwpt_selftest,
  iommu_test_hw_info,
  iommu_viommu_invalidate_selftest,
  ioPgtableStage1,
  mockIommu,
  offsetofEnd,
  type ConformanceCase,
  type InvalidationSubject,
  type IommuDriverSubject,
} from '@vfiosim/core';
import { PLAIN_DRIVER, plainDriverPlugin } from '../pci-core/fixtures/plain-driver.js';

const BDF = '0000:00:03.0';

/** The mock's nested-HWPT IOTLB invalidation (mock_domain_cache_invalidate_user). */
const hwptInvalidation: InvalidationSubject = {
  target: 'hwpt',
  dataType: IOMMU_HWPT_INVALIDATE_DATA_SELFTEST,
  entryLen: iommu_hwpt_invalidate_selftest.size,
  copy: { helper: 'array', minEntryLen: offsetofEnd(iommu_hwpt_invalidate_selftest, 'iotlb_id') },
  invalidateAll: () => [iommu_hwpt_invalidate_selftest.encodeNew({ flags: IOMMU_TEST_INVALIDATE_FLAG_ALL })],
  refused: () => ({ entry: iommu_hwpt_invalidate_selftest.encodeNew({ flags: 0xffffffff }), errno: 'EOPNOTSUPP' }),
};

/** The mock vIOMMU's device-cache (ATC) invalidation (mock_viommu_cache_invalidate). */
const viommuInvalidation: InvalidationSubject = {
  target: 'viommu',
  dataType: IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST,
  entryLen: iommu_viommu_invalidate_selftest.size,
  copy: { helper: 'fullArray' },
  invalidateAll: ({ virtId }) => [
    iommu_viommu_invalidate_selftest.encodeNew({ flags: IOMMU_TEST_INVALIDATE_FLAG_ALL, vdev_id: Number(virtId) }),
  ],
  refused: ({ virtId }) => ({
    entry: iommu_viommu_invalidate_selftest.encodeNew({ flags: 0xffffffff, vdev_id: Number(virtId) }),
    errno: 'EOPNOTSUPP',
  }),
};

/**
 * The mock as an IOMMU driver package would describe it: a virtio device
 * bound to a plain vfio-pci-core driver behind the mock IOMMU, nested HWPTs
 * of the selftest type whose stage 1 (the generic IO page table in guest
 * memory) is pointed at model-side, like the selftest's test ops.
 */
function mockSubject(options: { ats: boolean; via: 'parent' | 'viommu'; invalidations: InvalidationSubject[] }): IommuDriverSubject {
  return {
    plugins: () => [mockIommu(), plainDriverPlugin()],
    description: {
      devices: [{
        bdf: BDF,
        vendorId: 0x1af4,
        deviceId: 0x1041,
        driver: PLAIN_DRIVER,
        ...(options.ats ? { extendedCapabilities: { ats: true } } : {}),
      }],
    },
    bdf: BDF,
    hwInfo: { type: IOMMU_HW_INFO_TYPE_SELFTEST, length: iommu_test_hw_info.size },
    ...(options.via === 'viommu' || options.invalidations.some((inv) => inv.target === 'viommu')
      ? { viommu: { type: IOMMU_VIOMMU_TYPE_SELFTEST, virtId: 0x42n } }
      : {}),
    nested: {
      via: options.via,
      dataType: IOMMU_HWPT_DATA_SELFTEST,
      data: () => iommu_hwpt_selftest.encodeNew({ iotlb: IOMMU_TEST_IOTLB_DEFAULT }),
      attachStage1: ({ domain, stage1 }) => (domain as MockNestedDomain).setStage1Table(stage1.root),
    },
    stage1: ioPgtableStage1,
    invalidations: options.invalidations,
  };
}

function register(cases: ConformanceCase[]): void {
  for (const c of cases) it(c.name, c.run);
}

describe('IOMMU driver conformance: the mock, nested over the NEST_PARENT HWPT, a device without ATS', () => {
  register(iommuDriverConformance(mockSubject({ ats: false, via: 'parent', invalidations: [hwptInvalidation] })));
});

describe('IOMMU driver conformance: the mock, nested through its vIOMMU, an ATS device (IOTLB and ATC invalidation)', () => {
  register(iommuDriverConformance(mockSubject({ ats: true, via: 'viommu', invalidations: [hwptInvalidation, viommuInvalidation] })));
});

describe('the IOMMU driver suite catches a driver that breaks a rule', () => {
  function runCase(subject: IommuDriverSubject, startsWith: string): AssertionError {
    const c = iommuDriverConformance(subject).find((candidate) => candidate.name.startsWith(startsWith));
    if (!c) throw new Error(`no case named "${startsWith}..."`);
    try {
      c.run();
    } catch (error) {
      if (error instanceof AssertionError) return error;
      throw error;
    }
    throw new Error(`case "${c.name}" passed`);
  }

  it('fails the invalidate-all case when the flush leaves the device ATC stale, naming the rule', () => {
    // The mock's HWPT invalidation drops the IOTLB only; an ATS device keeps its ATC entry.
    const subject = mockSubject({ ats: true, via: 'viommu', invalidations: [hwptInvalidation] });
    const error = runCase(subject, 'after the driver\'s invalidate-all entries');
    expect(error.message).toContain('invalidation drops the cached translations');
    expect(error.message).toContain('bytes in the page the tables name now');
  });

  it('fails the hw_info case when the driver reports another length than its info struct', () => {
    const subject = { ...mockSubject({ ats: false, via: 'parent', invalidations: [hwptInvalidation] }), hwInfo: { type: IOMMU_HW_INFO_TYPE_SELFTEST, length: 16 } };
    const error = runCase(subject, 'IOMMU_GET_HW_INFO reports');
    expect(error.message).toMatch(/data_len written back for a larger buffer: expected 16, got 8/);
  });

  it('fails the entry_len case when a driver declares the wrong copy helper', () => {
    const subject = mockSubject({ ats: false, via: 'parent', invalidations: [{ ...hwptInvalidation, copy: { helper: 'fullArray' } }] });
    const error = runCase(subject, `IOMMU_HWPT_INVALIDATE (nested HWPT, data_type 0x${IOMMU_HWPT_INVALIDATE_DATA_SELFTEST.toString(16)}) takes longer entries`);
    expect(error.message).toContain('expected 0, got -EINVAL');
  });
});
