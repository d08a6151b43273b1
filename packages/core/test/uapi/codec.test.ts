import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  array,
  defineStruct,
  flexible,
  iommu_hw_info,
  iommu_hw_info_arm_smmuv3,
  iommu_hwpt_alloc,
  iommu_option,
  offsetofEnd,
  padding,
  s32,
  u16,
  u32,
  u64,
  u8,
  uapiStructs,
  union,
  vfio_device_ioeventfd,
  vfio_eeh_pe_op,
  vfio_iommu_type1_dirty_bitmap_get,
  vfio_iommu_type1_info_cap_migration,
  vfio_pci_dependent_device,
  vfio_region_info,
  vfio_region_info_cap_sparse_mmap,
  vfio_region_sparse_mmap_area,
  VFIO_PCI_DEVID_NOT_OWNED,
  VFIO_REGION_INFO_FLAG_MMAP,
  VFIO_REGION_INFO_FLAG_READ,
  VFIO_REGION_INFO_FLAG_WRITE,
  type CType,
  type StructCodec,
} from '@vfiosim/core';

const U64_MAX = (1n << 64n) - 1n;

/** Values a field can hold, biased towards the extremes where byte-order bugs show. */
function scalarArb(cType: string): fc.Arbitrary<unknown> {
  switch (cType) {
    case '__u8': return fc.oneof(fc.constantFrom(0, 0xff), fc.integer({ min: 0, max: 0xff }));
    case '__u16': return fc.oneof(fc.constantFrom(0, 0xffff), fc.integer({ min: 0, max: 0xffff }));
    case '__u32': return fc.oneof(fc.constantFrom(0, 0xffffffff, 0x80000000), fc.integer({ min: 0, max: 0xffffffff }));
    case '__s32': return fc.oneof(fc.constantFrom(-1, -0x80000000, 0x7fffffff), fc.integer({ min: -0x80000000, max: 0x7fffffff }));
    case '__u64':
    case '__aligned_u64':
    case '__aligned_le64':
      return fc.oneof(fc.constantFrom(0n, U64_MAX, 1n << 63n, 0xffffffffn, 1n << 32n), fc.bigInt({ min: 0n, max: U64_MAX }));
    default: throw new Error(`no arbitrary for ${cType}`);
  }
}

function typeArb(type: CType<unknown>): fc.Arbitrary<unknown> {
  if (type.kind === 'struct') return valueArb(type as StructCodec<unknown>);
  if (type.kind === 'array') {
    const { elem, length } = type as unknown as { elem: CType<unknown>; length: number };
    return fc.array(typeArb(elem), { minLength: length, maxLength: length });
  }
  return scalarArb(type.cName);
}

/**
 * A random decoded value of any codec, built from its layout: every member of
 * an anonymous union gets the same value, since they read the same bytes.
 */
function valueArb(codec: StructCodec<unknown>): fc.Arbitrary<unknown> {
  const parts: Record<string, fc.Arbitrary<unknown>> = {};
  const unionAt = new Map<number, string[]>();
  for (const f of codec.fields) {
    if (f.flexible) continue;
    if (f.inAnonymousUnion) {
      unionAt.set(f.offset, [...(unionAt.get(f.offset) ?? []), f.name]);
      if (unionAt.get(f.offset)!.length > 1) continue;
    }
    parts[f.name] = typeArb(memberType(codec, f.name));
  }
  return fc.record(parts).map((v) => {
    for (const names of unionAt.values()) for (const n of names) v[n] = v[names[0]!];
    return v;
  });
}

/** The CType of a member, found by decoding a probe (codecs do not expose member types directly). */
function memberType(codec: StructCodec<unknown>, name: string): CType<unknown> {
  const f = codec.fields.find((x) => x.name === name)!;
  if (f.cType.startsWith('struct ')) return (uapiStructs as Record<string, CType<unknown>>)[f.cType.slice(7)]!;
  const m = /^(.*)\[(\d+)\]$/.exec(f.cType);
  if (m) return array(scalarType(m[1]!), Number(m[2]));
  return scalarType(f.cType);
}

function scalarType(cType: string): CType<unknown> {
  const byName: Record<string, CType<unknown>> = { __u8: u8, __u16: u16, __u32: u32, __s32: s32 };
  return byName[cType] ?? (u64 as CType<unknown>);
}

/** Bytes no member covers: implicit padding that encode never writes. */
function holes(codec: StructCodec<unknown>): number[] {
  const covered = new Uint8Array(codec.size);
  for (const f of codec.fields) covered.fill(1, f.offset, f.offset + f.size);
  return [...covered.keys()].filter((i) => covered[i] === 0);
}

const allCodecs = Object.values(uapiStructs) as StructCodec<unknown>[];

describe('round trips', () => {
  it('decodes what it encodes, for random values of every uAPI struct', () => {
    for (const codec of allCodecs) {
      fc.assert(
        fc.property(valueArb(codec), (value) => {
          expect(codec.decode(codec.encodeNew(value as never))).toEqual(value);
        }),
        { numRuns: 50 },
      );
    }
  });

  it('re-encodes random bytes unchanged, except implicit padding which comes back zero', () => {
    for (const codec of allCodecs) {
      const gaps = holes(codec);
      fc.assert(
        fc.property(fc.uint8Array({ minLength: codec.size, maxLength: codec.size }), (bytes) => {
          const expected = Uint8Array.from(bytes);
          for (const i of gaps) expected[i] = 0;
          expect(codec.encodeNew(codec.decode(bytes) as never)).toEqual(expected);
        }),
        { numRuns: 50 },
      );
    }
  });

  it('decodes and encodes at an offset inside a larger buffer', () => {
    fc.assert(
      fc.property(valueArb(vfio_region_info), fc.integer({ min: 0, max: 64 }), (value, at) => {
        const bytes = new Uint8Array(at + vfio_region_info.size + 7).fill(0xa5);
        vfio_region_info.encode(value as never, bytes, at);
        expect(vfio_region_info.decode(bytes, at)).toEqual(value);
        expect([...bytes.subarray(0, at)].every((b) => b === 0xa5)).toBe(true);
        expect([...bytes.subarray(at + 32)].every((b) => b === 0xa5)).toBe(true);
      }),
    );
  });
});

describe('byte-exact little-endian encoding', () => {
  it('encodes vfio_region_info as the C struct lays it out', () => {
    const bytes = vfio_region_info.encodeNew({
      argsz: 32,
      flags: VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE | VFIO_REGION_INFO_FLAG_MMAP,
      index: 2,
      size: 0x4000n,
      offset: 2n << 40n, // VFIO_PCI_INDEX_TO_OFFSET(2)
    });
    expect([...bytes]).toEqual([
      0x20, 0, 0, 0, 0x07, 0, 0, 0, 0x02, 0, 0, 0, 0, 0, 0, 0,
      0x00, 0x40, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, 0, 0,
    ]);
  });

  it('stores VFIO_PCI_DEVID_NOT_OWNED as 0xffffffff and reads it back through both union members', () => {
    const bytes = vfio_pci_dependent_device.encodeNew({ devid: VFIO_PCI_DEVID_NOT_OWNED, segment: 0x1234, bus: 0x5a, devfn: (3 << 3) | 1 });
    expect([...bytes]).toEqual([0xff, 0xff, 0xff, 0xff, 0x34, 0x12, 0x5a, 0x19]);
    expect(vfio_pci_dependent_device.decode(bytes)).toEqual({ group_id: 0xffffffff, devid: 0xffffffff, segment: 0x1234, bus: 0x5a, devfn: 0x19 });
  });

  it('lets the last given union member win, as the kernel storing out_data_type over in_data_type', () => {
    const bytes = iommu_hw_info.encodeNew({ size: 40, in_data_type: 1, out_data_type: 2, out_max_pasid_log2: 20, out_capabilities: 1n });
    expect([...bytes.subarray(24, 40)]).toEqual([2, 0, 0, 0, 20, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]);
    const input = iommu_hw_info.encodeNew({ in_data_type: 3 });
    expect(iommu_hw_info.decode(input).out_data_type).toBe(3);
  });

  it('puts the anonymous union of vfio_eeh_pe_op at its 8-byte alignment', () => {
    const bytes = vfio_eeh_pe_op.encodeNew({ op: 9, err: { type: 1, func: 2, addr: 0x1122334455667788n, mask: U64_MAX } });
    expect([...bytes.subarray(8, 24)]).toEqual([9, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0]);
    expect([...bytes.subarray(24, 32)]).toEqual([0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11]);
    expect([...bytes.subarray(32, 40)]).toEqual(Array(8).fill(0xff));
  });

  it('leaves the implicit hole after cap_migration.flags zero and aligns pgsize_bitmap to 8', () => {
    const bytes = vfio_iommu_type1_info_cap_migration.encodeNew({
      header: { id: 2, version: 1, next: 0 }, flags: 0xffffffff, pgsize_bitmap: 0x1000n, max_dirty_bitmap_size: U64_MAX,
    });
    expect([...bytes.subarray(0, 24)]).toEqual([2, 0, 1, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0, 0, 0]);
  });

  it('stores negative s32 and u64 values as two\'s complement', () => {
    const bytes = vfio_device_ioeventfd.encodeNew({ data: -1n, fd: -1 });
    expect([...bytes.subarray(16, 32)]).toEqual([...Array(12).fill(0xff), 0, 0, 0, 0]);
    expect(vfio_device_ioeventfd.decode(bytes)).toMatchObject({ data: U64_MAX, fd: -1 });
  });

  it('encodes fixed arrays element by element and nested structs in place', () => {
    const smmu = iommu_hw_info_arm_smmuv3.encodeNew({ idr: [1, 2, 3, 4, 5, 0xdeadbeef], iidr: 7 });
    expect([...smmu.subarray(28, 36)]).toEqual([0xef, 0xbe, 0xad, 0xde, 7, 0, 0, 0]);
    const get = vfio_iommu_type1_dirty_bitmap_get.encodeNew({ bitmap: { data: 0x7f0000001000n } });
    expect([...get.subarray(32, 40)]).toEqual([0x00, 0x10, 0, 0, 0x00, 0x7f, 0, 0]);
  });
});

describe('single-field access', () => {
  it('reads and writes one field at its offset without touching its neighbours', () => {
    const bytes = new Uint8Array(40).fill(0xee);
    iommu_hwpt_alloc.writeField(bytes, 'data_uptr', 0x1000n);
    expect(iommu_hwpt_alloc.readField(bytes, 'data_uptr')).toBe(0x1000n);
    expect(iommu_hwpt_alloc.readField(bytes, 'data_len')).toBe(0xeeeeeeee);
    expect([...bytes.subarray(28, 32)]).toEqual([0xee, 0xee, 0xee, 0xee]);
    expect(iommu_option.offsetOf('op')).toBe(8);
    expect(iommu_option.readField(Uint8Array.from([0, 0, 0, 0, 0, 0, 0, 0, 0x34, 0x12]), 'op')).toBe(0x1234);
  });

  it('addresses the field relative to the struct offset given', () => {
    const bytes = new Uint8Array(64);
    vfio_region_info.writeField(bytes, 'index', 9, 16);
    expect(bytes[24]).toBe(9);
    expect(vfio_region_info.readField(bytes, 'index', 16)).toBe(9);
  });

  it('rejects a field that would end past the buffer', () => {
    expect(iommu_hwpt_alloc.readField(new Uint8Array(32), 'data_len')).toBe(0);
    expect(() => iommu_hwpt_alloc.readField(new Uint8Array(39), 'data_uptr')).toThrow(RangeError);
    expect(() => iommu_hwpt_alloc.readField(new Uint8Array(39), 'fault_id')).toThrow(RangeError);
    expect(() => iommu_hwpt_alloc.writeField(new Uint8Array(8), 'pt_id', 1)).toThrow(RangeError);
  });

  it('reads flexible array elements after the struct with the element codec', () => {
    const codec = vfio_region_info_cap_sparse_mmap;
    const bytes = new Uint8Array(codec.size + 2 * vfio_region_sparse_mmap_area.size);
    codec.encode({ header: { id: 1, version: 1, next: 0 }, nr_areas: 2, reserved: 0 }, bytes);
    vfio_region_sparse_mmap_area.encode({ offset: 0x2000n, size: 0x1000n }, bytes, codec.flexible!.offset + 16);
    expect(codec.flexible).toMatchObject({ name: 'areas', offset: 16 });
    expect(vfio_region_sparse_mmap_area.decode(bytes, codec.size + 16)).toEqual({ offset: 0x2000n, size: 0x1000n });
    expect(codec.decode(bytes)).not.toHaveProperty('areas');
  });
});

describe('layout engine', () => {
  it('aligns each member to its size and pads the tail to the largest alignment', () => {
    const s = defineStruct('probe', { a: u8, b: u64, c: u16 });
    expect(s.fields.map((f) => [f.name, f.offset])).toEqual([['a', 0], ['b', 8], ['c', 16]]);
    expect([s.size, s.align]).toEqual([24, 8]);
    expect(offsetofEnd(s, 'c')).toBe(18);
  });

  it('places explicit padding without naming it', () => {
    const s = defineStruct('padded', { a: u8, hole: padding(2), b: u8, c: u32 });
    expect(s.fields.map((f) => [f.name, f.offset])).toEqual([['a', 0], ['b', 3], ['c', 4]]);
    expect(s.size).toBe(8);
    const bytes = new Uint8Array(8).fill(0x55);
    s.encode({ a: 1, b: 2, c: 3 }, bytes);
    expect([...bytes]).toEqual([1, 0x55, 0x55, 2, 3, 0, 0, 0]);
    expect(s.decode(bytes)).toEqual({ a: 1, b: 2, c: 3 });
    expect([...s.encodeNew({ a: 1 })]).toEqual([1, 0, 0, 0, 0, 0, 0, 0]);
  });

  it('sizes a union by its largest member and aligns it to its most aligned one', () => {
    const s = defineStruct('with_union', { tag: u8, ...union({ small: u16, big: array(u32, 3) }), end: u8 });
    expect(s.fields.map((f) => [f.name, f.offset, f.size])).toEqual([['tag', 0, 1], ['small', 4, 2], ['big', 4, 12], ['end', 16, 1]]);
    expect([s.size, s.align]).toEqual([20, 4]);
  });

  it('aligns a flexible array member and counts it in the struct alignment but not its size', () => {
    const s = defineStruct('with_flex', { n: u32, items: flexible(u64) });
    expect([s.size, s.align, s.flexible!.offset]).toEqual([8, 8, 8]);
    expect(s.fields[1]).toMatchObject({ name: 'items', size: 0, flexible: true, elemSize: 8, cType: '__u64[]' });
  });

  it('refuses a flexible array member that is not last', () => {
    expect(() => defineStruct('bad', { items: flexible(u8), n: u32 })).toThrow(/must be the last member/);
  });
});

describe('encoding rejects values the field cannot hold', () => {
  it('rejects out-of-range and non-integer numbers', () => {
    expect(() => vfio_region_info.encodeNew({ index: 2 ** 32 })).toThrow(RangeError);
    expect(() => vfio_region_info.encodeNew({ index: -(2 ** 31) - 1 })).toThrow(RangeError);
    expect(() => vfio_region_info.encodeNew({ index: 1.5 })).toThrow(TypeError);
    expect(() => iommu_option.encodeNew({ op: 0x10000 })).toThrow(RangeError);
    expect(() => iommu_hw_info.encodeNew({ out_max_pasid_log2: 256 })).toThrow(RangeError);
  });

  it('rejects a u64 that is not a bigint or does not fit 64 bits', () => {
    expect(() => vfio_region_info.encodeNew({ size: 4096 as unknown as bigint })).toThrow(TypeError);
    expect(() => vfio_region_info.encodeNew({ size: 1n << 64n })).toThrow(RangeError);
    expect(() => vfio_region_info.encodeNew({ size: -(1n << 63n) - 1n })).toThrow(RangeError);
  });

  it('rejects an array longer than the C array', () => {
    expect(() => iommu_hw_info_arm_smmuv3.encodeNew({ idr: [0, 0, 0, 0, 0, 0, 0] })).toThrow(RangeError);
  });

  it('rejects a buffer too short for the struct', () => {
    expect(() => vfio_region_info.decode(new Uint8Array(31))).toThrow(RangeError);
    expect(() => vfio_region_info.decode(new Uint8Array(40), 9)).toThrow(RangeError);
    expect(() => vfio_region_info.encode(vfio_region_info.decode(new Uint8Array(32)), new Uint8Array(16))).toThrow(RangeError);
  });
});
