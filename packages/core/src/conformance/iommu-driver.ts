import { IOMMU_READ, IOMMU_WRITE } from '../iommu/iommu-driver.js';
import {
  IOMMU_GET_HW_INFO,
  IOMMU_HW_INFO_FLAG_INPUT_TYPE,
  IOMMU_HW_INFO_TYPE_ARM_SMMUV3,
  IOMMU_HW_INFO_TYPE_INTEL_VTD,
  IOMMU_HWPT_DATA_ARM_SMMUV3,
  IOMMU_HWPT_DATA_NONE,
  IOMMU_HWPT_DATA_VTD_S1,
  IOMMU_HWPT_INVALIDATE_DATA_VTD_S1,
  IOMMU_VIOMMU_ALLOC,
  IOMMU_VIOMMU_INVALIDATE_DATA_ARM_SMMUV3,
  iommu_hw_info,
  iommu_viommu_alloc,
} from '../uapi/index.js';
import { bindDevice, type BoundDevice } from './bound-device.js';
import type { ConformanceCase } from './case.js';
import { expectEqual, expectRc, expectThat, rule, setupOk } from './expect.js';
import type { InvalidationSubject, IommuDriverSubject } from './iommu-subject.js';
import { NestedSetup, STAGE1_IOVA, type InvalidateOptions } from './nested-setup.js';

/*
 * The IOMMU driver conformance suite: what every IOMMU driver package must
 * answer through /dev/iommu, checked the way a VMM would notice it.
 *
 *   hw_info        IOMMU_GET_HW_INFO type, data_len truncation and zero fill,
 *                  IOMMU_HW_INFO_FLAG_INPUT_TYPE
 *   nested HWPTs   allocation with the driver's data type, the parent rule,
 *                  refused data types, lengths and pointers leaving nothing
 *   invalidation   the IOMMU_HWPT_INVALIDATE contract for each of the
 *                  driver's data types: entry_num on success and failure,
 *                  entry_len rules of the copy helper, data_type, EFAULT,
 *                  the empty-array probe, the iommufd envelope
 *   caches         a stage-1 change is invisible to the device until the
 *                  guest invalidates (and the stale detector sees the stale
 *                  use); the driver's invalidate-all makes it visible; DMA
 *                  the tables refuse faults and moves no byte
 *
 * Public API: iommuDriverConformance()
 */

const PAGE = 4096n;
/** Scratch offset of the IOMMU_GET_HW_INFO data buffer. */
const HW_INFO_AT = 0x1000;

function hex(value: number): string {
  return `0x${(value >>> 0).toString(16)}`;
}

function pattern(seed: number, length = 64): Uint8Array {
  return Uint8Array.from({ length }, (_, i) => (seed + i * 7) & 0xff);
}

function defineCase(name: string, body: () => void): ConformanceCase {
  return { name, run: body };
}

// ------------------------------------------------------------ IOMMU_GET_HW_INFO

function getHwInfo(dev: BoundDevice, dataLen: number, span: number, fields: Partial<iommu_hw_info> = {}) {
  const { user } = dev;
  user.write(user.at(HW_INFO_AT), new Uint8Array(span).fill(0xa5));
  const { rc, out } = user.ioctl(dev.iommufd, IOMMU_GET_HW_INFO, iommu_hw_info, {
    size: iommu_hw_info.size,
    dev_id: dev.devId,
    data_len: dataLen,
    data_uptr: dataLen === 0 ? 0n : user.at(HW_INFO_AT),
    ...fields,
  });
  return { rc, out, data: user.read(user.at(HW_INFO_AT), span) };
}

/** An IOMMU_HW_INFO_TYPE_* that is some other driver's. */
function foreignHwInfoType(type: number): number {
  return type === IOMMU_HW_INFO_TYPE_INTEL_VTD ? IOMMU_HW_INFO_TYPE_ARM_SMMUV3 : IOMMU_HW_INFO_TYPE_INTEL_VTD;
}

function hwInfoCases(subject: IommuDriverSubject): ConformanceCase[] {
  const { type, length } = subject.hwInfo;
  return [
    defineCase('IOMMU_GET_HW_INFO reports the driver\'s type and full data_len, truncating and zero-filling the user buffer', () => {
      const dev = bindDevice(subject);
      const r = rule(
        'IOMMU_GET_HW_INFO',
        'iommufd_get_hw_info() copies min(data_len, driver length) bytes, zeroes the rest of the user\'s data_len, '
          + 'and writes back data_len = the driver\'s full length and out_data_type = the driver\'s type',
      );
      const span = length + 32;
      const full = getHwInfo(dev, length + 16, span);
      expectRc(full.rc, 0, r);
      expectEqual(full.out.out_data_type, type, r, 'out_data_type');
      expectEqual(full.out.data_len, length, r, 'data_len written back for a larger buffer');
      expectEqual([...full.data.subarray(length, length + 16)], new Array<number>(16).fill(0), r, 'buffer bytes past the driver\'s data');
      expectEqual([...full.data.subarray(length + 16)], new Array<number>(16).fill(0xa5), r, 'bytes past data_len (must be untouched)');

      const probe = getHwInfo(dev, 0, span);
      expectRc(probe.rc, 0, r);
      expectEqual(probe.out.data_len, length, r, 'data_len written back for data_len 0 (the size probe)');
      expectEqual(probe.out.out_data_type, type, r, 'out_data_type of the size probe');

      if (length > 1) {
        const cut = getHwInfo(dev, length - 1, span);
        expectRc(cut.rc, 0, r);
        expectEqual(cut.out.data_len, length, r, 'data_len written back for a buffer one byte short');
        expectEqual([...cut.data.subarray(0, length - 1)], [...full.data.subarray(0, length - 1)], r, 'the truncated copy');
        expectEqual(cut.data[length - 1], 0xa5, r, 'the byte past a short data_len (must be untouched)');
      }
    }),
    defineCase('IOMMU_GET_HW_INFO answers the driver\'s own type on IOMMU_HW_INFO_FLAG_INPUT_TYPE and refuses another with EOPNOTSUPP', () => {
      const dev = bindDevice(subject);
      const other = foreignHwInfoType(type);
      const own = getHwInfo(dev, length, length, { flags: IOMMU_HW_INFO_FLAG_INPUT_TYPE, in_data_type: type });
      const r = rule(
        'IOMMU_GET_HW_INFO with IOMMU_HW_INFO_FLAG_INPUT_TYPE',
        'the driver\'s hw_info op serves IOMMU_HW_INFO_TYPE_DEFAULT and its own type and refuses any other with EOPNOTSUPP',
      );
      expectRc(own.rc, 0, r);
      expectEqual(own.out.out_data_type, type, r, 'out_data_type');
      expectRc(getHwInfo(dev, length, length, { flags: IOMMU_HW_INFO_FLAG_INPUT_TYPE, in_data_type: other }).rc, 'EOPNOTSUPP', r);
      const ignored = getHwInfo(dev, length, length, { in_data_type: other });
      const r2 = rule(
        'IOMMU_GET_HW_INFO without IOMMU_HW_INFO_FLAG_INPUT_TYPE',
        'iommufd treats in_data_type as IOMMU_HW_INFO_TYPE_DEFAULT when the flag is clear, whatever the user left there',
      );
      expectRc(ignored.rc, 0, r2);
      expectEqual(ignored.out.out_data_type, type, r2, 'out_data_type');
    }),
  ];
}

// ------------------------------------------------------------ nested HWPT allocation

/** An IOMMU_HWPT_DATA_* that is some other driver's. */
function foreignHwptDataType(type: number): number {
  return type === IOMMU_HWPT_DATA_VTD_S1 ? IOMMU_HWPT_DATA_ARM_SMMUV3 : IOMMU_HWPT_DATA_VTD_S1;
}

function nestedCases(subject: IommuDriverSubject): ConformanceCase[] {
  const { nested } = subject;
  const via = nested.via === 'viommu' ? 'through the vIOMMU' : 'over the NEST_PARENT parent';
  const cases: ConformanceCase[] = [
    defineCase(`IOMMU_HWPT_ALLOC makes a nested HWPT of the driver's data type ${via} that the device attaches to`, () => {
      const setup = NestedSetup.create(subject);
      const stage1 = subject.stage1.create(setup.guest);
      const data = nested.data({ host: setup.dev.host, guest: setup.guest, stage1 });
      const r = rule(
        `IOMMU_HWPT_ALLOC data_type ${hex(nested.dataType)} ${via}`,
        'iommufd hands the data to the driver\'s nested allocation, which must return an IOMMU_DOMAIN_NESTED domain '
          + 'that VFIO_DEVICE_ATTACH_IOMMUFD_PT can attach and report back as pt_id',
      );
      const alloc = setup.hwptAlloc({ pt_id: setup.nestedPt, data_type: nested.dataType }, data);
      expectRc(alloc.rc, 0, r);
      expectThat(alloc.id > 0, r, `out_hwpt_id is ${alloc.id}`);
      const attach = setup.attach(alloc.id);
      expectRc(attach.rc, 0, r);
      expectEqual(attach.ptId, alloc.id, r, 'pt_id written back by the attach');
    }),
    defineCase('IOMMU_HWPT_ALLOC refuses nested data the driver cannot take with the kernel errno and leaves no object behind', () => {
      const setup = NestedSetup.create(subject);
      const stage1 = subject.stage1.create(setup.guest);
      const data = nested.data({ host: setup.dev.host, guest: setup.guest, stage1 });
      const before = setup.liveObjects();
      const pt = setup.nestedPt;
      const foreign = foreignHwptDataType(nested.dataType);
      expectRc(setup.hwptAlloc({ pt_id: pt, data_type: foreign }, data).rc, nested.unknownTypeErrno ?? 'EOPNOTSUPP', rule(
        `IOMMU_HWPT_ALLOC of a nested HWPT with another driver's data_type ${hex(foreign)}`,
        'the driver\'s nested allocation refuses a data type it does not know: EOPNOTSUPP where it checks the type first '
          + '(VT-d, the selftest driver), EINVAL where iommu_copy_struct_from_user() checks it',
      ));
      expectRc(setup.hwptAlloc({ pt_id: pt, data_type: IOMMU_HWPT_DATA_NONE }, data).rc, 'EINVAL', rule(
        'IOMMU_HWPT_ALLOC with IOMMU_HWPT_DATA_NONE and a non-zero data_len',
        'iommufd_hwpt_alloc() refuses data_type and data_len that disagree with EINVAL before looking at pt_id',
      ));
      expectRc(setup.hwptAlloc({ pt_id: pt, data_type: IOMMU_HWPT_DATA_NONE, data_len: 0 }).rc, 'EOPNOTSUPP', rule(
        'IOMMU_HWPT_ALLOC of a nested HWPT without data',
        'a nested HWPT needs driver data: the nested allocation paths answer EOPNOTSUPP for a zero user_data length',
      ));
      const long = new Uint8Array(data.length + 8);
      long.set(data);
      expectRc(setup.hwptAlloc({ pt_id: pt, data_type: nested.dataType }, long).rc, 'EINVAL', rule(
        'IOMMU_HWPT_ALLOC with nested data 8 bytes longer than the driver\'s struct (zero tail)',
        'iommu_copy_struct_from_user() refuses a user length above sizeof the kernel struct with EINVAL, zero tail or not',
      ));
      expectRc(setup.hwptAlloc({ pt_id: pt, data_type: nested.dataType, data_uptr: setup.dev.user.unmappedAddress(), data_len: data.length }).rc, 'EFAULT', rule(
        'IOMMU_HWPT_ALLOC with data_uptr pointing at unmapped memory',
        'copy_struct_from_user() of the driver data faults: EFAULT',
      ));
      expectEqual(setup.liveObjects(), before, rule(
        'IOMMU_HWPT_ALLOC failures',
        'iommufd aborts and destroys the half-made HWPT on every error path',
      ), 'live iommufd objects after the refused allocations');
    }),
  ];
  if (nested.via === 'parent') {
    cases.push(defineCase('IOMMU_HWPT_ALLOC refuses a nested HWPT over a paging HWPT allocated without IOMMU_HWPT_ALLOC_NEST_PARENT (EINVAL)', () => {
      const setup = NestedSetup.create(subject);
      const plain = setup.hwptAlloc({ pt_id: setup.ioas });
      setupOk(plain.rc, 'IOMMU_HWPT_ALLOC of a paging HWPT without NEST_PARENT');
      const stage1 = subject.stage1.create(setup.guest);
      const data = nested.data({ host: setup.dev.host, guest: setup.guest, stage1 });
      expectRc(setup.hwptAlloc({ pt_id: plain.id, data_type: nested.dataType }, data).rc, 'EINVAL', rule(
        'IOMMU_HWPT_ALLOC of a nested HWPT whose pt_id is a paging HWPT without NEST_PARENT',
        'iommufd_hwpt_nested_alloc() accepts only a parent that is not an automatic domain, was allocated with '
          + 'NEST_PARENT and belongs to the same driver; otherwise EINVAL',
      ));
    }));
  } else {
    cases.push(defineCase('IOMMU_VIOMMU_ALLOC refuses a paging HWPT allocated without IOMMU_HWPT_ALLOC_NEST_PARENT (EINVAL)', () => {
      const setup = NestedSetup.create(subject);
      const plain = setup.hwptAlloc({ pt_id: setup.ioas });
      setupOk(plain.rc, 'IOMMU_HWPT_ALLOC of a paging HWPT without NEST_PARENT');
      const { rc } = setup.dev.user.ioctl(setup.dev.iommufd, IOMMU_VIOMMU_ALLOC, iommu_viommu_alloc, {
        size: iommu_viommu_alloc.size,
        type: subject.viommu!.type,
        dev_id: setup.dev.devId,
        hwpt_id: plain.id,
      });
      expectRc(rc, 'EINVAL', rule(
        'IOMMU_VIOMMU_ALLOC over a paging HWPT without NEST_PARENT',
        'a vIOMMU is built on a nesting parent: iommufd refuses any other paging HWPT with EINVAL',
      ));
    }));
  }
  return cases;
}

// ------------------------------------------------------------ the IOMMU_HWPT_INVALIDATE contract

/** An invalidation data type that is some other driver's. */
function foreignInvalidationType(type: number): number {
  return type === IOMMU_HWPT_INVALIDATE_DATA_VTD_S1 ? IOMMU_VIOMMU_INVALIDATE_DATA_ARM_SMMUV3 : IOMMU_HWPT_INVALIDATE_DATA_VTD_S1;
}

function invalidationCases(subject: IommuDriverSubject, inv: InvalidationSubject): ConformanceCase[] {
  const label = `(${inv.target === 'viommu' ? 'vIOMMU' : 'nested HWPT'}, data_type ${hex(inv.dataType)})`;
  const what = (detail: string) => `IOMMU_HWPT_INVALIDATE ${label} ${detail}`;

  /** A nested setup with the device attached, and a call that invalidates on this subject's target. */
  function prepare() {
    const setup = NestedSetup.create(subject);
    const nested = setup.attachNested();
    const ctx = setup.invalidationContext;
    const target = setup.targetOf(inv, nested);
    const call = (entries: readonly Uint8Array[], options: Partial<InvalidateOptions> = {}, dataType = inv.dataType) =>
      setup.invalidate(target, dataType, entries, { entryLen: inv.entryLen, ...options });
    return { setup, call, all: inv.invalidateAll(ctx), refused: inv.refused(ctx) };
  }

  const cases: ConformanceCase[] = [
    defineCase(`IOMMU_HWPT_INVALIDATE ${label} reports every entry as handled on success`, () => {
      const { call, all } = prepare();
      const r = rule(what('with valid entries'), 'the driver sets entry_num to the number of entries it handled; on success that is all of them');
      const done = call([...all, ...all]);
      expectRc(done.rc, 0, r);
      expectEqual(done.entryNum, all.length * 2, r, 'entry_num');
    }),
    defineCase(`IOMMU_HWPT_INVALIDATE ${label} stops at a refused entry and reports the entries handled before it`, () => {
      const { call, all, refused } = prepare();
      const r = rule(
        what(`with a refused entry after a valid one (driver errno ${refused.errno})`),
        'the driver stops at the first entry it refuses, returns its errno, and entry_num counts the entries before it; '
          + 'iommufd writes entry_num back even on failure',
      );
      const partial = call([all[0]!, refused.entry]);
      expectRc(partial.rc, refused.errno, r);
      expectEqual(partial.entryNum, 1, r, 'entry_num');
      const none = call([refused.entry]);
      expectRc(none.rc, refused.errno, r);
      expectEqual(none.entryNum, 0, r, 'entry_num when the first entry is refused');
    }),
    defineCase(`IOMMU_HWPT_INVALIDATE ${label} takes an empty array as a probe of the data type`, () => {
      const { call } = prepare();
      const r = rule(
        what('with entry_num 0, data_uptr 0 and entry_len 0'),
        inv.emptyArrayErrno
          ? `the driver refuses an empty array with ${inv.emptyArrayErrno} (declared by the subject)`
          : 'the uAPI allows an empty array to probe whether a data type is supported: data_uptr and entry_len are ignored, '
            + 'the answer is success with entry_num 0',
      );
      const probe = call([], { fields: { data_uptr: 0n }, entryLen: 0 });
      expectRc(probe.rc, inv.emptyArrayErrno ?? 0, r);
      expectEqual(probe.entryNum, 0, r, 'entry_num');
    }),
    defineCase(`IOMMU_HWPT_INVALIDATE ${label} refuses another data type with EINVAL and nothing handled`, () => {
      const { call, all } = prepare();
      const foreign = foreignInvalidationType(inv.dataType);
      const r = rule(
        what(`with another driver's data_type ${hex(foreign)}`),
        'the driver compares data_type with its own before reading any entry (the copy helpers check it first): EINVAL, entry_num 0; '
          + 'an empty array of that type therefore probes as unsupported',
      );
      const refused = call(all, {}, foreign);
      expectRc(refused.rc, 'EINVAL', r);
      expectEqual(refused.entryNum, 0, r, 'entry_num');
      const probe = call([], { fields: { data_uptr: 0n }, entryLen: 0 }, foreign);
      expectRc(probe.rc, 'EINVAL', r);
      expectEqual(probe.entryNum, 0, r, 'entry_num of the empty probe');
    }),
    defineCase(`IOMMU_HWPT_INVALIDATE ${label} answers EFAULT with nothing handled for an array it cannot read`, () => {
      const { setup, call, all } = prepare();
      const r = rule(what('with data_uptr pointing at unmapped memory'), 'copying the first entry from user memory faults: EFAULT, entry_num 0');
      const fault = call(all.slice(0, 1), { fields: { data_uptr: setup.dev.user.unmappedAddress() } });
      expectRc(fault.rc, 'EFAULT', r);
      expectEqual(fault.entryNum, 0, r, 'entry_num');
    }),
  ];

  if (inv.copy.helper === 'array') {
    const { minEntryLen } = inv.copy;
    cases.push(defineCase(`IOMMU_HWPT_INVALIDATE ${label} refuses entry_len outside [minimum, sizeof] with EINVAL and nothing handled`, () => {
      const { call, all } = prepare();
      const r = rule(
        what(`with entry_len ${minEntryLen - 1} (below offsetofend of the first-version struct, ${minEntryLen})`),
        'iommu_copy_struct_from_user_array() refuses an entry shorter than the first version of the struct with EINVAL',
      );
      const short = call(all, { entryLen: minEntryLen - 1 });
      expectRc(short.rc, 'EINVAL', r);
      expectEqual(short.entryNum, 0, r, 'entry_num');
      for (const fill of [0, 0xff]) {
        const r2 = rule(
          what(`with entry_len ${inv.entryLen + 8} (8 bytes past sizeof, tail ${fill ? 'non-zero' : 'zero'})`),
          'iommu_copy_struct_from_user_array() refuses an entry longer than the kernel struct with EINVAL, whatever the tail holds',
        );
        const long = call(all, { entryLen: inv.entryLen + 8, fill });
        expectRc(long.rc, 'EINVAL', r2);
        expectEqual(long.entryNum, 0, r2, 'entry_num');
      }
    }));
  } else {
    cases.push(defineCase(`IOMMU_HWPT_INVALIDATE ${label} takes longer entries with a zero tail and refuses a non-zero tail with E2BIG`, () => {
      const { call, all } = prepare();
      const zero = call(all, { entryLen: inv.entryLen + 8, fill: 0 });
      const r = rule(
        what(`with entry_len ${inv.entryLen + 8} and a zero tail`),
        'iommu_copy_struct_from_full_user_array() reads each entry with copy_struct_from_user(): a longer entry whose extra bytes are zero is accepted',
      );
      expectRc(zero.rc, 0, r);
      expectEqual(zero.entryNum, all.length, r, 'entry_num');
      const r2 = rule(
        what(`with entry_len ${inv.entryLen + 8} and a non-zero tail`),
        'copy_struct_from_user() refuses non-zero bytes past the kernel struct with E2BIG, and the whole array is copied '
          + 'before any entry runs, so entry_num is 0',
      );
      const dirty = call(all, { entryLen: inv.entryLen + 8, fill: 0xff });
      expectRc(dirty.rc, 'E2BIG', r2);
      expectEqual(dirty.entryNum, 0, r2, 'entry_num');
    }));
  }
  return cases;
}

/** The part of the contract iommufd checks before any driver runs, on the first invalidation subject. */
function envelopeCase(subject: IommuDriverSubject, inv: InvalidationSubject): ConformanceCase {
  return defineCase('IOMMU_HWPT_INVALIDATE checks the envelope and the target before the driver, with nothing handled', () => {
    const setup = NestedSetup.create(subject);
    const nested = setup.attachNested();
    const all = inv.invalidateAll(setup.invalidationContext);
    const target = setup.targetOf(inv, nested);
    const check = (detail: string, kernel: string, errno: 'EINVAL' | 'EOPNOTSUPP', fields: InvalidateOptions['fields'], to = target) => {
      const r = rule(`IOMMU_HWPT_INVALIDATE ${detail}`, kernel);
      const res = setup.invalidate(to, inv.dataType, all, { entryLen: inv.entryLen, fields });
      expectRc(res.rc, errno, r);
      expectEqual(res.entryNum, 0, r, 'entry_num');
    };
    check('with entries and data_uptr 0', 'iommufd refuses a non-empty array without a pointer or an entry length with EINVAL', 'EINVAL', { data_uptr: 0n });
    check('with entries and entry_len 0', 'iommufd refuses a non-empty array without a pointer or an entry length with EINVAL', 'EINVAL', { entry_len: 0 });
    check('with __reserved set', 'iommufd refuses a non-zero __reserved with EOPNOTSUPP', 'EOPNOTSUPP', { __reserved: 1 });
    check('on the nesting parent (a paging HWPT)', 'only a nested HWPT or a vIOMMU takes invalidations: EINVAL for any other object', 'EINVAL', {}, setup.parent);
    check('on the IOAS', 'only a nested HWPT or a vIOMMU takes invalidations: EINVAL for any other object', 'EINVAL', {}, setup.ioas);
  });
}

// ------------------------------------------------------------ caches and faults

/** Maps STAGE1_IOVA to data page 0, DMA-writes through it (filling the caches) and repoints it at data page 1 without invalidating. */
function staleSetup(subject: IommuDriverSubject) {
  const setup = NestedSetup.create(subject);
  const nested = setup.attachNested();
  const { guest } = setup;
  const oldPage = guest.dataPage(0);
  const newPage = guest.dataPage(1);
  const first = pattern(1);
  nested.stage1.map(STAGE1_IOVA, oldPage, IOMMU_READ | IOMMU_WRITE);
  const r = rule(
    'DMA write through a present stage-1 mapping onto guest RAM mapped at stage 2',
    'the nested walk translates the IOVA through stage 1 to an IPA, and the IPA through stage 2 to the guest page',
  );
  const fault = setup.dmaWrite(STAGE1_IOVA, first);
  expectThat(fault === null, r, `the DMA faulted: ${fault?.reason} at 0x${fault?.addr.toString(16)}`);
  expectEqual([...guest.read(oldPage, first.length)], [...first], r, 'bytes in the guest page the stage-1 entry names');
  nested.stage1.unmap(STAGE1_IOVA);
  nested.stage1.map(STAGE1_IOVA, newPage, IOMMU_READ | IOMMU_WRITE);
  setup.dev.host.dma.clearStaleLog();
  return { setup, nested, oldPage, newPage };
}

function cacheCases(subject: IommuDriverSubject): ConformanceCase[] {
  return [
    defineCase('a stage-1 change the guest has not invalidated leaves the device on the cached translation, and the detector reports it', () => {
      const { setup, oldPage, newPage } = staleSetup(subject);
      const { guest } = setup;
      const second = pattern(2);
      const r = rule(
        'DMA write after a stage-1 entry was repointed without IOMMU_HWPT_INVALIDATE',
        'IOMMU caches (IOTLB, device ATC) keep a translation until it is invalidated: the device still reaches the old page',
      );
      const fault = setup.dmaWrite(STAGE1_IOVA, second);
      expectThat(fault === null, r, `the DMA faulted: ${fault?.reason}`);
      expectEqual([...guest.read(oldPage, second.length)], [...second], r, 'bytes in the page the cached translation names');
      expectEqual([...guest.read(newPage, second.length)], new Array<number>(second.length).fill(0), r, 'bytes in the page the tables name now');
      const stale = setup.dev.host.dma.staleLog.filter((s) => s.iova === STAGE1_IOVA && s.device === setup.dev.fn);
      const r2 = rule(
        'the stale-translation detector after that DMA',
        'a cache hit whose translation differs from a fresh walk of the tables is a stale translation and is recorded',
      );
      expectThat(stale.length > 0, r2, 'no stale use recorded for the device at the repointed IOVA');
      expectEqual(stale[0]!.cached.pa, guest.hpa(oldPage), r2, 'the cached translation\'s page');
      expectEqual(stale[0]!.correct?.pa, guest.hpa(newPage), r2, 'the page a fresh walk gives');
    }),
    defineCase('after the driver\'s invalidate-all entries the device uses the new stage-1 translation', () => {
      const { setup, nested, oldPage, newPage } = staleSetup(subject);
      const { guest } = setup;
      for (const inv of subject.invalidations) {
        const all = inv.invalidateAll(setup.invalidationContext);
        const r = rule(
          `IOMMU_HWPT_INVALIDATE of the driver's invalidate-all entries (${inv.target}, data_type ${hex(inv.dataType)})`,
          'valid entries are all handled: success with entry_num = the number of entries',
        );
        const done = setup.invalidate(setup.targetOf(inv, nested), inv.dataType, all, { entryLen: inv.entryLen });
        expectRc(done.rc, 0, r);
        expectEqual(done.entryNum, all.length, r, 'entry_num');
      }
      const third = pattern(3);
      const r = rule(
        'DMA write after the stage-1 change and every invalidate-all entry of the driver',
        'invalidation drops the cached translations (IOTLB and device ATC), so the next walk reads the new stage-1 entry',
      );
      const fault = setup.dmaWrite(STAGE1_IOVA, third);
      expectThat(fault === null, r, `the DMA faulted: ${fault?.reason}`);
      expectEqual([...guest.read(newPage, third.length)], [...third], r, 'bytes in the page the tables name now');
      expectEqual([...guest.read(oldPage, third.length)], [...pattern(1)], r, 'bytes in the old page (must be untouched)');
      const stale = setup.dev.host.dma.staleLog.filter((s) => s.device === setup.dev.fn);
      expectEqual(stale.length, 0, r, 'stale uses recorded after the invalidation');
    }),
    defineCase('DMA to an IOVA that stage 1 does not map faults and moves no byte', () => {
      const setup = NestedSetup.create(subject);
      const nested = setup.attachNested();
      nested.stage1.map(STAGE1_IOVA, setup.guest.dataPage(0), IOMMU_READ | IOMMU_WRITE);
      const before = setup.guest.snapshot();
      const iova = STAGE1_IOVA + 16n * PAGE;
      const r = rule(
        `DMA write to IOVA 0x${iova.toString(16)}, which the guest's stage-1 table does not map`,
        'a translation fault at stage 1 blocks the request: no byte reaches memory and the fault is recorded for the device',
      );
      const fault = setup.dmaWrite(iova, pattern(4));
      expectThat(fault !== null, r, 'the DMA was not refused');
      expectEqual(fault.reason, 'not-present', r, 'fault reason');
      expectEqual(fault.iova, iova, r, 'fault IOVA');
      expectThat(setup.dev.host.dma.faultLog.includes(fault), r, 'the fault is not in the DMA fault log');
      expectThat(Buffer.from(setup.guest.snapshot()).equals(before), r, 'guest RAM changed');
      const read = setup.dmaRead(iova, 16);
      expectThat(read.fault !== null, rule(`DMA read from IOVA 0x${iova.toString(16)}`, 'a stage-1 translation fault blocks reads too'), 'the read was not refused');
    }),
    defineCase('DMA through a stage-1 mapping whose IPA has no stage-2 mapping faults at stage 2 and moves no byte', () => {
      const setup = NestedSetup.create(subject);
      const nested = setup.attachNested();
      const iova = STAGE1_IOVA + 32n * PAGE;
      const ipa = setup.guest.ipaBase + setup.guest.size + 0x100000n;
      nested.stage1.map(iova, ipa, IOMMU_READ | IOMMU_WRITE);
      const before = setup.guest.snapshot();
      const r = rule(
        `DMA write to IOVA 0x${iova.toString(16)}, which stage 1 maps to IPA 0x${ipa.toString(16)} outside guest RAM`,
        'the stage-1 output goes through stage 2; an IPA the IOAS does not map is a stage-2 fault at that IPA and blocks the request',
      );
      const fault = setup.dmaWrite(iova, pattern(5));
      expectThat(fault !== null, r, 'the DMA was not refused');
      expectEqual(fault.reason, 'stage2-not-present', r, 'fault reason');
      expectEqual(fault.addr, ipa, r, 'faulting address (the IPA)');
      expectThat(Buffer.from(setup.guest.snapshot()).equals(before), r, 'guest RAM changed');
    }),
    defineCase('a read-only stage-1 mapping refuses a DMA write, moving no byte, and serves a read', () => {
      const setup = NestedSetup.create(subject);
      const nested = setup.attachNested();
      const iova = STAGE1_IOVA + 48n * PAGE;
      const page = setup.guest.dataPage(2);
      const content = pattern(6);
      setup.guest.write(page, content);
      nested.stage1.map(iova, page, IOMMU_READ);
      const r = rule(
        `DMA write to IOVA 0x${iova.toString(16)}, mapped read-only at stage 1`,
        'the permissions of the nested translation are those of stage 1 AND stage 2: a write to a read-only page faults and writes nothing',
      );
      const fault = setup.dmaWrite(iova, pattern(7));
      expectThat(fault !== null, r, 'the DMA write was not refused');
      expectEqual(fault.reason, 'permission', r, 'fault reason');
      expectEqual([...setup.guest.read(page, content.length)], [...content], r, 'bytes of the read-only page');
      const read = setup.dmaRead(iova, content.length);
      const r2 = rule(`DMA read from IOVA 0x${iova.toString(16)}, mapped read-only at stage 1`, 'a read through a readable translation succeeds');
      expectThat(read.fault === null, r2, `the read faulted: ${read.fault?.reason}`);
      expectEqual([...read.bytes], [...content], r2, 'bytes read');
    }),
  ];
}

/**
 * The IOMMU driver conformance suite for `subject`: one case per rule,
 * each on a fresh host. Register them with any test runner:
 *
 *   for (const c of iommuDriverConformance(subject)) it(c.name, c.run);
 */
export function iommuDriverConformance(subject: IommuDriverSubject): ConformanceCase[] {
  const cases = [...hwInfoCases(subject), ...nestedCases(subject)];
  subject.invalidations.forEach((inv) => cases.push(...invalidationCases(subject, inv)));
  if (subject.invalidations.length > 0) cases.push(envelopeCase(subject, subject.invalidations[0]!));
  cases.push(...cacheCases(subject));
  return cases;
}
