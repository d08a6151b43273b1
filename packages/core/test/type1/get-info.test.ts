import { describe, expect, it } from 'vitest';
import {
  VFIO_CHECK_EXTENSION,
  VFIO_DMA_CC_IOMMU,
  VFIO_IOMMU_INFO_CAPS,
  VFIO_IOMMU_INFO_PGSIZES,
  VFIO_TYPE1_IOMMU,
  VFIO_TYPE1v2_IOMMU,
  VFIO_UNMAP_ALL,
  VFIO_UPDATE_VADDR,
  __VFIO_RESERVED_TYPE1_NESTING_IOMMU,
  syscall,
  type1IommuDriver,
  IommuCore,
  vfio_info_cap_header,
  vfio_iommu_type1_info,
  vfio_iommu_type1_info_cap_iova_range,
  vfio_iommu_type1_info_cap_migration,
  vfio_iommu_type1_info_dma_avail,
  vfio_iova_range,
  type VfioIommuType1,
} from '@vfiosim/core';
import { EFAULT, EINVAL, ENOTTY, Host, PAGE } from './harness.js';

const MSI = { start: 0xfee00000n, length: 0x100000n, type: 'msi' as const };

function host48() {
  const host = new Host({ iommus: [{ name: 'iommu0', devices: ['0000:01:00.0'], resvRegions: [MSI] }] });
  expect(host.attach(1).rc).toBe(0);
  return host;
}

// Chain laid out by the kernel's rules: info (24) + migration cap (32) + DMA avail cap
// (12, padded to 16) + IOVA range cap (16 + 16 per range).
const TWO_RANGE_TOTAL = 24 + 32 + 16 + 16 + 2 * 16;

describe('VFIO_IOMMU_GET_INFO', () => {
  it('returns the page sizes and the whole capability chain when argsz covers it', () => {
    const host = host48();
    const { rc, out } = host.getInfo(TWO_RANGE_TOTAL);
    expect(rc).toBe(0);
    const info = vfio_iommu_type1_info.decode(out);
    expect(info).toEqual({
      argsz: TWO_RANGE_TOTAL,
      flags: VFIO_IOMMU_INFO_PGSIZES | VFIO_IOMMU_INFO_CAPS,
      iova_pgsizes: 0x40201000n,
      cap_offset: 24,
      pad: 0,
    });
    expect(vfio_iommu_type1_info_cap_migration.decode(out, 24)).toEqual({
      header: { id: 2, version: 1, next: 56 },
      flags: 0,
      pgsize_bitmap: PAGE,
      max_dirty_bitmap_size: 1n << 28n,
    });
    expect(out.subarray(36, 40)).toEqual(new Uint8Array(4));
    expect(vfio_iommu_type1_info_dma_avail.decode(out, 56)).toEqual({ header: { id: 3, version: 1, next: 72 }, avail: 65535 });
    expect(out.subarray(68, 72)).toEqual(new Uint8Array(4));
    expect(vfio_iommu_type1_info_cap_iova_range.decode(out, 72)).toEqual({
      header: { id: 1, version: 1, next: 0 },
      nr_iovas: 2,
      reserved: 0,
    });
    expect(vfio_iova_range.decode(out, 88)).toEqual({ start: 0n, end: 0xfedfffffn });
    expect(vfio_iova_range.decode(out, 104)).toEqual({ start: 0xfef00000n, end: (1n << 48n) - 1n });
  });

  it('with argsz 24 raises argsz to the size needed, sets CAPS, leaves cap_offset 0 and writes no capability', () => {
    const host = host48();
    const { rc, out } = host.getInfo(24, 64);
    expect(rc).toBe(0);
    expect(vfio_iommu_type1_info.decode(out)).toEqual({
      argsz: TWO_RANGE_TOTAL,
      flags: VFIO_IOMMU_INFO_PGSIZES | VFIO_IOMMU_INFO_CAPS,
      iova_pgsizes: 0x40201000n,
      cap_offset: 0,
      pad: 0,
    });
    expect(out.subarray(24)).toEqual(new Uint8Array(40).fill(0xee));
  });

  it('with argsz between 16 and 24 writes back only argsz bytes', () => {
    const host = host48();
    const { rc, out } = host.getInfo(20, 24);
    expect(rc).toBe(0);
    expect(vfio_iommu_type1_info.readField(out, 'argsz')).toBe(TWO_RANGE_TOTAL);
    expect(vfio_iommu_type1_info.readField(out, 'iova_pgsizes')).toBe(0x40201000n);
    expect(out.subarray(16, 20)).toEqual(new Uint8Array(4));
    expect(out.subarray(20, 24)).toEqual(new Uint8Array(4).fill(0xee));
  });

  it('rejects argsz below 16 with EINVAL and an unreadable argument with EFAULT', () => {
    const host = host48();
    expect(host.getInfo(15).rc).toBe(EINVAL);
    expect(host.ioctl(15216, new Uint8Array(), 0x10n).rc).toBe(EFAULT);
  });

  it('counts DMA_AVAIL down as mappings are made', () => {
    const host = host48();
    const va = host.mmap(PAGE * 2n);
    expect(host.map(va, 0x100000n, PAGE)).toBe(0);
    expect(host.map(va + PAGE, 0x200000n, PAGE)).toBe(0);
    const { out } = host.getInfo(TWO_RANGE_TOTAL);
    expect(vfio_iommu_type1_info_dma_avail.readField(out.subarray(56), 'avail')).toBe(65533);
  });

  it('reports the CPU page size instead of smaller IOMMU page sizes', () => {
    const host = new Host({ iommus: [{ name: 'iommu0', devices: ['0000:01:00.0'], pgsizeBitmap: 0x201800n }] });
    expect(host.attach(1).rc).toBe(0);
    expect(vfio_iommu_type1_info.readField(host.getInfo(24).out, 'iova_pgsizes')).toBe(0x201000n);
  });

  it('reports PAGE_MASK and no IOVA range capability for a container of emulated devices only', () => {
    const host = new Host();
    expect(host.attachEmulated(9)).toBe(0);
    const { out } = host.getInfo(24);
    expect(vfio_iommu_type1_info.readField(out, 'iova_pgsizes')).toBe(0xfffffffffffff000n);
    expect(vfio_iommu_type1_info.readField(out, 'argsz')).toBe(24 + 32 + 16);
    const full = host.getInfo(72).out;
    expect(vfio_info_cap_header.readField(full, 'next', 56)).toBe(0);
  });

  it('answers unknown requests with ENOTTY', () => {
    const host = host48();
    expect(host.ioctl(15219, new Uint8Array(8)).rc).toBe(ENOTTY);
  });
});

describe('VFIO_CHECK_EXTENSION', () => {
  it('answers TYPE1, TYPE1v2 and UNMAP_ALL without an instance, and nothing else', () => {
    const driver = type1IommuDriver(new IommuCore());
    expect([VFIO_TYPE1_IOMMU, VFIO_TYPE1v2_IOMMU, VFIO_UNMAP_ALL].map((e) => driver.checkExtension(e))).toEqual([1, 1, 1]);
    expect([VFIO_UPDATE_VADDR, VFIO_DMA_CC_IOMMU, __VFIO_RESERVED_TYPE1_NESTING_IOMMU, 2, 8, 0]
      .map((e) => driver.checkExtension(e))).toEqual([0, 0, 0, 0, 0, 0]);
  });

  it('opens TYPE1 as v1, TYPE1v2 and the retired nesting type as v2, and refuses other types with EINVAL', () => {
    const driver = type1IommuDriver(new IommuCore());
    expect((driver.open(VFIO_TYPE1_IOMMU) as VfioIommuType1).v2).toBe(false);
    expect((driver.open(VFIO_TYPE1v2_IOMMU) as VfioIommuType1).v2).toBe(true);
    expect((driver.open(__VFIO_RESERVED_TYPE1_NESTING_IOMMU) as VfioIommuType1).v2).toBe(true);
    expect(syscall(() => (driver.open(8), 0))).toBe(EINVAL);
  });

  it('answers UPDATE_VADDR and DMA_CC_IOMMU per container once set', () => {
    const host = host48();
    const ask = (ext: number) => host.ioctl(VFIO_CHECK_EXTENSION, new Uint8Array(), BigInt(ext)).rc;
    expect([VFIO_TYPE1_IOMMU, VFIO_TYPE1v2_IOMMU, VFIO_UNMAP_ALL, VFIO_UPDATE_VADDR, VFIO_DMA_CC_IOMMU].map(ask))
      .toEqual([1, 1, 1, 1, 1]);
    expect(ask(__VFIO_RESERVED_TYPE1_NESTING_IOMMU)).toBe(0);
    expect(host.ioctl(VFIO_CHECK_EXTENSION, new Uint8Array(), (1n << 32n) + 1n).rc).toBe(0);
    expect(host.attachEmulated(9)).toBe(0);
    expect(ask(VFIO_UPDATE_VADDR)).toBe(0);
  });

  it('reports DMA_CC_IOMMU as 0 when a domain cannot enforce cache coherency', () => {
    const host = new Host({ iommus: [{ name: 'iommu0', devices: ['0000:01:00.0'], coherent: false }] });
    expect(host.attach(1).rc).toBe(0);
    expect(host.ioctl(VFIO_CHECK_EXTENSION, new Uint8Array(), BigInt(VFIO_DMA_CC_IOMMU)).rc).toBe(0);
  });
});
