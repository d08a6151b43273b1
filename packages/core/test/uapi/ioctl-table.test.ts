import { describe, expect, it } from 'vitest';
import {
  _IO,
  iommu_ioas_alloc,
  IOMMU_IOAS_ALLOC,
  IOMMUFD_TYPE,
  ioctlTable,
  offsetofEnd,
  respondIommufd,
  syscall,
  VFIO_CHECK_EXTENSION,
  VFIO_DEVICE_GET_PCI_HOT_RESET_INFO,
  vfio_iommu_type1_info,
  vfio_irq_info,
  VFIO_IOMMU_GET_INFO,
  vfio_pci_hot_reset_info,
  writeBack,
} from '@vfiosim/core';
import { FakeMemory } from './fake-memory.js';

const ARGP = 0x20000n;

interface Ctx {
  calls: string[];
}

describe('ioctl dispatch table', () => {
  it('answers ENOTTY for a request it does not know', () => {
    const table = ioctlTable<Ctx>('vfio-device').raw('VFIO_DEVICE_RESET', () => 0);
    const mem = new FakeMemory();
    expect(() => table.ioctl({ calls: [] }, mem, 0x3bff, ARGP))
      .toThrow(expect.objectContaining({ code: 'UNKNOWN_IOCTL', errnoName: 'ENOTTY' }));
    expect(syscall(() => table.ioctl({ calls: [] }, mem, _IO(IOMMUFD_TYPE, 0x7f), ARGP))).toBe(-25);
  });

  it('hands unknown requests to the fallback when the file type has one', () => {
    const table = ioctlTable<Ctx>('iommufd', { fallback: (ctx, call) => (ctx.calls.push(call.name), 42) });
    const ctx = { calls: [] };
    expect(table.ioctl(ctx, new FakeMemory(), VFIO_CHECK_EXTENSION, 3n)).toBe(42);
    expect(ctx.calls).toEqual([`0x${VFIO_CHECK_EXTENSION.toString(16)}`]);
  });

  it('decodes a VFIO struct with the argsz rule before the handler sees it', () => {
    const mem = new FakeMemory().map(ARGP, 4096);
    const table = ioctlTable<Ctx>('vfio-device').vfio('VFIO_DEVICE_GET_IRQ_INFO', vfio_irq_info, 16, (ctx, info, call) => {
      ctx.calls.push(`${call.name} index=${info.index} argsz=${call.userSize}`);
      writeBack(call.mem, call.argp, vfio_irq_info, { ...info, flags: 1, count: 8 }, 16);
      return 0;
    });
    const ctx = { calls: [] as string[] };
    mem.poke(ARGP, vfio_irq_info.encodeNew({ argsz: 16, index: 2 }));
    expect(table.ioctl(ctx, mem, 0x3b6d, ARGP)).toBe(0);
    expect(ctx.calls).toEqual(['VFIO_DEVICE_GET_IRQ_INFO index=2 argsz=16']);
    expect(vfio_irq_info.decode(mem.copyFromUser(ARGP, 16))).toEqual({ argsz: 16, flags: 1, index: 2, count: 8 });

    mem.poke(ARGP, [15, 0, 0, 0]);
    expect(syscall(() => table.ioctl(ctx, mem, 0x3b6d, ARGP))).toBe(-22);
    expect(syscall(() => table.ioctl(ctx, mem, 0x3b6d, 0n))).toBe(-14);
    expect(ctx.calls).toHaveLength(1);
  });

  it('decodes an iommufd struct with the size rule before the handler sees it', () => {
    const mem = new FakeMemory().map(ARGP, 4096);
    const table = ioctlTable<Ctx>('iommufd').iommufd(
      'IOMMU_IOAS_ALLOC',
      iommu_ioas_alloc,
      offsetofEnd(iommu_ioas_alloc, 'out_ioas_id'),
      (ctx, cmd, call) => {
        ctx.calls.push(`flags=${cmd.flags} size=${call.userSize}`);
        respondIommufd(call.mem, call.argp, iommu_ioas_alloc, { ...cmd, out_ioas_id: 1 }, call.userSize);
        return 0;
      },
    );
    const ctx = { calls: [] as string[] };
    mem.poke(ARGP, [16, 0, 0, 0]);
    expect(table.ioctl(ctx, mem, IOMMU_IOAS_ALLOC, ARGP)).toBe(0);
    expect(mem.peek(ARGP + 8n, 4)).toEqual([1, 0, 0, 0]);
    mem.poke(ARGP + 12n, [1]);
    expect(syscall(() => table.ioctl(ctx, mem, IOMMU_IOAS_ALLOC, ARGP))).toBe(-7);
    mem.poke(ARGP, [8, 0, 0, 0]);
    expect(syscall(() => table.ioctl(ctx, mem, IOMMU_IOAS_ALLOC, ARGP))).toBe(-22);
    expect(ctx.calls).toEqual(['flags=0 size=16']);
  });

  it('passes a raw argument through untouched', () => {
    const table = ioctlTable<Ctx>('container').raw('VFIO_CHECK_EXTENSION', (_ctx, call) => Number(call.argp) === 3 ? 1 : 0);
    expect(table.ioctl({ calls: [] }, new FakeMemory(), VFIO_CHECK_EXTENSION, 3n)).toBe(1);
    expect(table.ioctl({ calls: [] }, new FakeMemory(), VFIO_CHECK_EXTENSION, 99n)).toBe(0);
  });

  it('gives the shared VFIO numbers their meaning per file type', () => {
    expect(VFIO_IOMMU_GET_INFO).toBe(VFIO_DEVICE_GET_PCI_HOT_RESET_INFO);
    const device = ioctlTable<Ctx>('vfio-device').vfio('VFIO_DEVICE_GET_PCI_HOT_RESET_INFO', vfio_pci_hot_reset_info, 12, () => 1);
    const container = ioctlTable<Ctx>('container').vfio('VFIO_IOMMU_GET_INFO', vfio_iommu_type1_info, 16, () => 2);
    expect(device.get(VFIO_IOMMU_GET_INFO)).toMatchObject({ name: 'VFIO_DEVICE_GET_PCI_HOT_RESET_INFO', style: 'vfio', minSize: 12 });
    expect(container.get(VFIO_IOMMU_GET_INFO)).toMatchObject({ name: 'VFIO_IOMMU_GET_INFO', codec: vfio_iommu_type1_info });
  });

  it('refuses two entries for one request number', () => {
    const table = ioctlTable<Ctx>('container').vfio('VFIO_IOMMU_GET_INFO', vfio_iommu_type1_info, 16, () => 0);
    expect(() => table.raw('VFIO_IOMMU_SPAPR_TCE_GET_INFO', () => 0)).toThrow(/reuses request 0x3b70 of VFIO_IOMMU_GET_INFO/);
  });

  it('takes a request the facts do not list by name and number', () => {
    const table = ioctlTable<Ctx>('iommufd').raw({ name: 'IOMMU_TEST_CMD', request: _IO(IOMMUFD_TYPE, 0x80 + 32) }, () => 7);
    expect(table.ioctl({ calls: [] }, new FakeMemory(), 0x3ba0, 0n)).toBe(7);
    expect(table.entries.map((e) => e.name)).toEqual(['IOMMU_TEST_CMD']);
  });

  it('refuses a minimum size the struct cannot have', () => {
    expect(() => ioctlTable<Ctx>('x').vfio('VFIO_DEVICE_GET_IRQ_INFO', vfio_irq_info, 17, () => 0)).toThrow(RangeError);
    expect(() => ioctlTable<Ctx>('x').iommufd('IOMMU_IOAS_ALLOC', iommu_ioas_alloc, 0, () => 0)).toThrow(RangeError);
  });
});
