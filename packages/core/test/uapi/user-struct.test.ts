import { describe, expect, it } from 'vitest';
import {
  iommu_hw_info,
  iommu_hwpt_alloc,
  iommu_ioas_alloc,
  readIommufdStruct,
  readVfioArgsz,
  readVfioExtension,
  rejectUnknownFlags,
  respondIommufd,
  SimError,
  vfio_device_attach_iommufd_pt,
  vfio_device_bind_iommufd,
  vfio_device_info,
  vfio_region_info,
  writeBack,
  writeBackField,
} from '@vfiosim/core';
import { FakeMemory } from './fake-memory.js';

const ARGP = 0x10000n;

function thrown(body: () => unknown): SimError {
  try {
    body();
  } catch (error) {
    if (error instanceof SimError) return error;
    throw error;
  }
  throw new Error('expected a SimError');
}

/** A struct of `size` bytes at ARGP whose leading u32 is `size`, filled with `fill` after it. */
function userStruct(mem: FakeMemory, size: number, fill = 0): void {
  const bytes = new Uint8Array(size).fill(fill);
  new DataView(bytes.buffer).setUint32(0, size, true);
  mem.poke(ARGP, bytes);
}

describe('iommufd size rule', () => {
  it('reads a struct of exactly the kernel size', () => {
    const mem = new FakeMemory().map(ARGP, 4096);
    mem.poke(ARGP, iommu_hwpt_alloc.encodeNew({ size: 48, flags: 1, dev_id: 2, pt_id: 3, data_uptr: 0xdead0000n, fault_id: 9 }));
    const { value, userSize } = readIommufdStruct(mem, ARGP, iommu_hwpt_alloc, 24);
    expect(userSize).toBe(48);
    expect(value).toMatchObject({ flags: 1, dev_id: 2, pt_id: 3, data_uptr: 0xdead0000n, fault_id: 9 });
  });

  it('rejects a size below the minimum with EINVAL', () => {
    const mem = new FakeMemory().map(ARGP, 4096);
    userStruct(mem, 20);
    const error = thrown(() => readIommufdStruct(mem, ARGP, iommu_hwpt_alloc, 24));
    expect([error.code, error.errno]).toEqual(['ARG_TOO_SHORT', 22]);
  });

  it('rejects size 0 with EINVAL', () => {
    const mem = new FakeMemory().map(ARGP, 4096);
    expect(thrown(() => readIommufdStruct(mem, ARGP, iommu_ioas_alloc, 12)).errnoName).toBe('EINVAL');
  });

  it('reads the fields a shorter struct lacks as zero, whatever follows it in memory', () => {
    const mem = new FakeMemory().map(ARGP, 4096);
    userStruct(mem, 48, 0xff);
    mem.poke(ARGP, [24, 0, 0, 0]);
    const { value, userSize } = readIommufdStruct(mem, ARGP, iommu_hwpt_alloc, 24);
    expect(userSize).toBe(24);
    expect(value).toMatchObject({ flags: 0xffffffff, __reserved: 0xffffffff, data_type: 0, data_len: 0, data_uptr: 0n, fault_id: 0, __reserved2: 0 });
  });

  it('accepts a longer struct whose extra bytes are all zero', () => {
    const mem = new FakeMemory().map(ARGP, 4096);
    userStruct(mem, 64);
    mem.poke(ARGP + 4n, [7, 0, 0, 0]);
    const { value, userSize } = readIommufdStruct(mem, ARGP, iommu_hwpt_alloc, 24);
    expect([userSize, value.flags]).toEqual([64, 7]);
  });

  it('rejects a longer struct with a non-zero byte past the kernel size with E2BIG', () => {
    const mem = new FakeMemory().map(ARGP, 4096);
    userStruct(mem, 64);
    mem.poke(ARGP + 63n, [1]);
    const error = thrown(() => readIommufdStruct(mem, ARGP, iommu_hwpt_alloc, 24));
    expect([error.code, error.errno]).toEqual(['ARG_TAIL_NONZERO', 7]);
  });

  it('checks a tail spanning several pages', () => {
    const mem = new FakeMemory().map(ARGP, 3 * 4096);
    userStruct(mem, 3 * 4096);
    expect(readIommufdStruct(mem, ARGP, iommu_ioas_alloc, 12).userSize).toBe(3 * 4096);
    mem.poke(ARGP + 2n * 4096n + 5n, [0x80]);
    expect(thrown(() => readIommufdStruct(mem, ARGP, iommu_ioas_alloc, 12)).errnoName).toBe('E2BIG');
  });

  it('answers EFAULT when argp is not mapped', () => {
    const error = thrown(() => readIommufdStruct(new FakeMemory(), ARGP, iommu_ioas_alloc, 12));
    expect([error.code, error.errno]).toEqual(['BAD_ADDRESS', 14]);
  });

  it('answers EFAULT when the struct runs into an unmapped page', () => {
    const mem = new FakeMemory().map(ARGP, 4096);
    const argp = ARGP + 4096n - 8n;
    mem.poke(argp, [12, 0, 0, 0]);
    expect(thrown(() => readIommufdStruct(mem, argp, iommu_ioas_alloc, 12)).errnoName).toBe('EFAULT');
  });

  it('answers EFAULT for a zero tail that runs into an unmapped page, but E2BIG if a non-zero byte comes first', () => {
    const mem = new FakeMemory().map(ARGP, 4096);
    const argp = ARGP + 4096n - 16n;
    mem.poke(argp, [32, 0, 0, 0]);
    expect(thrown(() => readIommufdStruct(mem, argp, iommu_ioas_alloc, 12)).errnoName).toBe('EFAULT');
    mem.poke(argp + 14n, [1]);
    expect(thrown(() => readIommufdStruct(mem, argp, iommu_ioas_alloc, 12)).errnoName).toBe('E2BIG');
  });

  it('applies to VFIO_DEVICE_BIND_IOMMUFD, whose argsz plays the part of size', () => {
    const mem = new FakeMemory().map(ARGP, 4096);
    mem.poke(ARGP, vfio_device_bind_iommufd.encodeNew({ argsz: 16, iommufd: 3 }));
    mem.poke(ARGP + 16n, [0xff]);
    expect(readIommufdStruct(mem, ARGP, vfio_device_bind_iommufd, 16).value).toMatchObject({ iommufd: 3, token_uuid_ptr: 0n });
  });

  it('writes back no more than the size the user declared', () => {
    const mem = new FakeMemory().map(ARGP, 4096);
    userStruct(mem, 64, 0xaa);
    const value = { ...iommu_hwpt_alloc.decode(new Uint8Array(48)), size: 24, out_hwpt_id: 5, data_uptr: 1n };
    respondIommufd(mem, ARGP, iommu_hwpt_alloc, value, 24);
    expect(mem.peek(ARGP + 16n, 4)).toEqual([5, 0, 0, 0]);
    expect(mem.peek(ARGP + 24n, 16)).toEqual(Array(16).fill(0xaa));
    respondIommufd(mem, ARGP, iommu_hwpt_alloc, value, 64);
    expect(mem.peek(ARGP + 32n, 8)).toEqual([1, 0, 0, 0, 0, 0, 0, 0]);
    expect(mem.peek(ARGP + 48n, 16)).toEqual(Array(16).fill(0xaa));
  });

  it('answers EFAULT when the answer cannot be written', () => {
    const value = iommu_hw_info.decode(new Uint8Array(40));
    expect(thrown(() => respondIommufd(new FakeMemory(), ARGP, iommu_hw_info, value, 40)).errnoName).toBe('EFAULT');
  });
});

describe('VFIO argsz rule', () => {
  it('reads only the first minsz bytes and reads the rest as zero', () => {
    const mem = new FakeMemory().map(ARGP, 4096);
    mem.poke(ARGP, vfio_device_info.encodeNew({ argsz: 24, flags: 3, num_regions: 9, num_irqs: 5, cap_offset: 99, pad: 99 }));
    const { value, userSize } = readVfioArgsz(mem, ARGP, vfio_device_info, 16);
    expect(userSize).toBe(24);
    expect(value).toEqual({ argsz: 24, flags: 3, num_regions: 9, num_irqs: 5, cap_offset: 0, pad: 0 });
  });

  it('rejects argsz below minsz with EINVAL', () => {
    const mem = new FakeMemory().map(ARGP, 4096);
    mem.poke(ARGP, vfio_region_info.encodeNew({ argsz: 31 }));
    const error = thrown(() => readVfioArgsz(mem, ARGP, vfio_region_info, 32));
    expect([error.code, error.errno]).toEqual(['ARG_TOO_SHORT', 22]);
  });

  it('accepts an argsz larger than the struct, leaving the rest to the handler', () => {
    const mem = new FakeMemory().map(ARGP, 4096);
    mem.poke(ARGP, vfio_region_info.encodeNew({ argsz: 4096, index: 7 }));
    mem.poke(ARGP + 32n, [1, 2, 3]);
    expect(readVfioArgsz(mem, ARGP, vfio_region_info, 32)).toMatchObject({ userSize: 4096, value: { index: 7 } });
  });

  it('does not touch memory past minsz', () => {
    const mem = new FakeMemory().map(ARGP, 4096);
    const argp = ARGP + 4096n - 16n;
    mem.poke(argp, vfio_device_info.encodeNew({ argsz: 16 }).subarray(0, 16));
    expect(readVfioArgsz(mem, argp, vfio_device_info, 16).userSize).toBe(16);
  });

  it('answers EFAULT before looking at argsz when the first minsz bytes are not readable', () => {
    const mem = new FakeMemory().map(ARGP, 4096);
    const argp = ARGP + 4096n - 8n;
    mem.poke(argp, [0, 0, 0, 0]);
    expect(thrown(() => readVfioArgsz(mem, argp, vfio_device_info, 16)).errnoName).toBe('EFAULT');
  });

  it('reads fields a flag adds after the first copy', () => {
    const mem = new FakeMemory().map(ARGP, 4096);
    mem.poke(ARGP, vfio_device_attach_iommufd_pt.encodeNew({ argsz: 16, flags: 1, pt_id: 4, pasid: 0x55 }));
    const { value } = readVfioArgsz(mem, ARGP, vfio_device_attach_iommufd_pt, 12);
    expect(value.pasid).toBe(0);
    expect(readVfioExtension(mem, ARGP, vfio_device_attach_iommufd_pt, value, 12, 16)).toEqual({ argsz: 16, flags: 1, pt_id: 4, pasid: 0x55 });
    const last = ARGP + 4096n - 12n;
    mem.poke(last, [16, 0, 0, 0, 1, 0, 0, 0, 4, 0, 0, 0]);
    const short = readVfioArgsz(mem, last, vfio_device_attach_iommufd_pt, 12).value;
    expect(thrown(() => readVfioExtension(mem, last, vfio_device_attach_iommufd_pt, short, 12, 16)).errnoName).toBe('EFAULT');
  });

  it('copies back exactly the length asked for', () => {
    const mem = new FakeMemory().map(ARGP, 4096);
    mem.poke(ARGP, Array(24).fill(0xcc));
    writeBack(mem, ARGP, vfio_device_info, { argsz: 24, flags: 2, num_regions: 9, num_irqs: 5, cap_offset: 1, pad: 1 }, 16);
    expect(mem.peek(ARGP, 24)).toEqual([24, 0, 0, 0, 2, 0, 0, 0, 9, 0, 0, 0, 5, 0, 0, 0, ...Array(8).fill(0xcc)]);
  });

  it('copies back a single field in place', () => {
    const mem = new FakeMemory().map(ARGP, 4096);
    mem.poke(ARGP, Array(16).fill(0xcc));
    writeBackField(mem, ARGP, vfio_device_attach_iommufd_pt, 'pt_id', 0x1234);
    expect(mem.peek(ARGP, 16)).toEqual([...Array(8).fill(0xcc), 0x34, 0x12, 0, 0, ...Array(4).fill(0xcc)]);
  });
});

describe('unknown flag bits', () => {
  it('accepts flags inside the mask', () => {
    expect(() => rejectUnknownFlags(0b101, 0b111, 'VFIO_IOMMU_MAP_DMA')).not.toThrow();
  });

  it('answers EINVAL by default', () => {
    const error = thrown(() => rejectUnknownFlags(0b1001, 0b111, 'VFIO_IOMMU_MAP_DMA'));
    expect([error.code, error.errno]).toEqual(['UNKNOWN_FLAGS', 22]);
    expect(error.message).toMatch(/unknown bits 0x8/);
  });

  it('answers EOPNOTSUPP for ioctls that report unsupported flags so', () => {
    const error = thrown(() => rejectUnknownFlags(0x80000000, 0xf, 'IOMMU_HWPT_ALLOC', 'UNSUPPORTED_FLAGS'));
    expect([error.code, error.errno]).toEqual(['UNSUPPORTED_FLAGS', 95]);
  });
});
