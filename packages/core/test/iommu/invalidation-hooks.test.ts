import { describe, expect, it } from 'vitest';
import {
  IOMMU_HWPT_DATA_SELFTEST, IOMMU_HWPT_INVALIDATE_DATA_SELFTEST, IOMMU_HWPT_ALLOC_NEST_PARENT, SimError,
  createInvalidationHooks, iommu_hwpt_invalidate_selftest, iommu_hwpt_selftest, runUserInvalidation,
  type InvalidationContext, type IommuUserDataArray, type MockNestedDomain,
} from '@vfiosim/core';
import { WindowUserMemory, mockHost, simError } from './helpers.js';

const UPTR = 0x1000n;

function setup() {
  const host = mockHost();
  const dev = host.device(1);
  const parent = host.core.pagingDomainAlloc(dev, IOMMU_HWPT_ALLOC_NEST_PARENT);
  const mem = new WindowUserMemory(UPTR, 256);
  mem.copyToUser(UPTR, iommu_hwpt_selftest.encodeNew({ iotlb: 1 }));
  const nested = host.mock.domainAllocNested(dev, parent, 0, { type: IOMMU_HWPT_DATA_SELFTEST, mem, uptr: UPTR, len: 4 }) as MockNestedDomain;
  const array = (entries: { flags: number; iotlb_id: number }[]): IommuUserDataArray => {
    entries.forEach((e, i) => mem.copyToUser(UPTR + BigInt(i * 8), iommu_hwpt_invalidate_selftest.encodeNew(e)));
    return { type: IOMMU_HWPT_INVALIDATE_DATA_SELFTEST, mem, uptr: UPTR, entryLen: 8, entryNum: entries.length, handled: 0 };
  };
  return { ...host, dev, nested, array };
}

describe('invalidation hooks', () => {
  it('are frozen', () => {
    const hooks = createInvalidationHooks();
    expect(Object.isFrozen(hooks)).toBe(true);
  });

  it('run before and after the driver, with what it handled and its error', () => {
    const { core, nested, array } = setup();
    const seen: string[] = [];
    let after: InvalidationContext | undefined;
    core.invalidationHooks.beforeInvalidate.tap('trace', (ctx) => {
      seen.push(`before handled=${ctx.handled} asked=${ctx.array.entryNum}`);
    });
    core.invalidationHooks.afterInvalidate.tap('trace', (ctx) => {
      seen.push(`after handled=${ctx.handled}`);
      after = ctx;
    });
    const target = { kind: 'hwpt' as const, domain: nested };
    const ok = array([{ flags: 0, iotlb_id: 0 }, { flags: 0, iotlb_id: 1 }]);
    runUserInvalidation(core.invalidationHooks, target, ok);
    expect(ok.handled).toBe(2);
    expect(after).toMatchObject({ dataType: IOMMU_HWPT_INVALIDATE_DATA_SELFTEST, handled: 2, error: null, target });

    const bad = array([{ flags: 0, iotlb_id: 2 }, { flags: 2, iotlb_id: 3 }]);
    const error = simError(() => runUserInvalidation(core.invalidationHooks, target, bad));
    expect(error.errnoName).toBe('EOPNOTSUPP');
    expect(bad.handled).toBe(1);
    expect(after).toMatchObject({ handled: 1, error });
    expect(seen).toEqual(['before handled=0 asked=2', 'after handled=2', 'before handled=0 asked=2', 'after handled=1']);
  });

  it('let a before tap stop the invalidation: the driver is not called and nothing is handled', () => {
    const { core, nested, array } = setup();
    core.invalidationHooks.beforeInvalidate.tap('veto', () => {
      throw new SimError('BUSY', 'not now');
    });
    const req = array([{ flags: 0, iotlb_id: 0 }]);
    expect(simError(() => runUserInvalidation(core.invalidationHooks, { kind: 'hwpt', domain: nested }, req)).errnoName).toBe('EBUSY');
    expect(req.handled).toBe(0);
    expect(nested.iotlb[0]).toBe(1);
  });

  it('report a tap that throws a plain error as HOOK_TAP_FAILED naming the tap and the hook', () => {
    const { core, nested, array } = setup();
    core.invalidationHooks.afterInvalidate.tap('buggy-tracer', () => {
      throw new TypeError('oops');
    });
    const error = simError(() => runUserInvalidation(core.invalidationHooks, { kind: 'hwpt', domain: nested }, array([])));
    expect(error.code).toBe('HOOK_TAP_FAILED');
    expect(error.message).toContain('buggy-tracer in afterInvalidate: oops');
  });

  it('answer EOPNOTSUPP for a target without an invalidation op', () => {
    const { core, dev, array } = setup();
    const paging = core.pagingDomainAlloc(dev);
    expect(simError(() => runUserInvalidation(core.invalidationHooks, { kind: 'hwpt', domain: paging }, array([]))).errnoName).toBe('EOPNOTSUPP');
  });
});
