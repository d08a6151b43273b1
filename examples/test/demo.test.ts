import { beforeAll, describe, expect, it } from 'vitest';
import { DMA_MESSAGE } from '../src/demo/device-model.js';
import { BUFFER_IOVA } from '../src/demo/dma.js';
import { HOST_NVME, NIC0, NIC1, NVME } from '../src/demo/host.js';
import { runDemo, type DemoReport } from '../src/demo/run.js';
import { quote } from '../src/vmm/vmm.js';

let report: DemoReport;
let lines: string[];

beforeAll(() => {
  report = runDemo();
  lines = report.text.split('\n');
});

/** The first line at or after `from` that satisfies `match`, and its index. */
function after(from: number, match: (line: string) => boolean): { index: number; line: string } {
  const index = lines.findIndex((line, i) => i >= from && match(line));
  expect(index, `no line after ${from} matches`).toBeGreaterThanOrEqual(0);
  return { index, line: lines[index]! };
}

describe('the demo', () => {
  it('holds every fact it checks, in every step', () => {
    expect(report.checks.filter((c) => !c.ok)).toEqual([]);
    expect(new Set(report.checks.map((c) => c.step))).toEqual(new Set(['topology', 'open', 'interrupts', 'dma', 'nested', 'reset', 'hot-reset']));
    expect(report.text).toMatch(/^all \d+ checks held$/m);
  });

  it('shows the tree, the groups and who a hot reset reaches', () => {
    expect(report.text).toContain('\\-1c.0-[0a]--+-00.0  8086:10fb');
    const group = (bdf: string) => /iommu_groups\/(\d+)\/devices\//.exec(lines.find((l) => l.endsWith(`/devices/${bdf}`))!)![1];
    expect(group(NIC0)).toBe(group(NIC1));
    expect(group(NVME)).not.toBe(group(NIC0));
    expect(lines.find((l) => l.trim().startsWith(NIC0))).toMatch(/bus 0000:0a: 0000:0a:00\.0 0000:0a:00\.1$/);
    expect(lines.find((l) => l.trim().startsWith(`${HOST_NVME}  nvme`))).toBeDefined();
  });

  it('binds the cdev, allocates an IOAS and attaches, each answered 0', () => {
    for (const name of ['VFIO_DEVICE_BIND_IOMMUFD', 'IOMMU_IOAS_ALLOC', 'VFIO_DEVICE_ATTACH_IOMMUFD_PT']) {
      expect(after(0, (l) => l.includes(`, ${name}, `)).line).toMatch(/\) = 0$/);
    }
  });

  it('fails only the calls it means to fail: device info before bind, and the VGA region', () => {
    const failed = lines.filter((l) => /^\w+\(.*\) = -E[A-Z0-9]+$/.test(l));
    expect(failed).toHaveLength(2);
    expect(failed[0]).toMatch(/^ioctl\(\d+, VFIO_DEVICE_GET_INFO, .*\) = -EINVAL$/);
    expect(failed[1]).toMatch(/^ioctl\(\d+, VFIO_DEVICE_GET_REGION_INFO, \{argsz=32, index=8\}\) = -EINVAL$/);
  });

  it('reads the NVMe vendor and device id through the config region', () => {
    expect(report.text).toContain('# vendor 0x144d device 0xa824');
  });

  it('delivers the device\'s MSI-X interrupt to the eventfd', () => {
    const setIrqs = after(0, (l) => l.includes('VFIO_DEVICE_SET_IRQS'));
    expect(setIrqs.line).toMatch(/flags=VFIO_IRQ_SET_DATA_EVENTFD\|VFIO_IRQ_SET_ACTION_TRIGGER, index=2, start=0, count=1\}, data=\[(\d+)\]\) = 0$/);
    const efd = /data=\[(\d+)\]/.exec(setIrqs.line)![1];
    const raised = after(setIrqs.index, (l) => l.includes('raises MSI-X vector 0'));
    expect(lines[raised.index + 1]).toBe(`read(${efd}, [1], 8) = 8`);
  });

  it('gets the device\'s DMA bytes into process memory, then faults after the unmap', () => {
    expect(report.text).toContain(`: ${quote(DMA_MESSAGE)}`);
    const unmap = after(0, (l) => l.includes('IOMMU_IOAS_UNMAP'));
    expect(unmap.line).toMatch(/\) = 0$/);
    expect(after(unmap.index, (l) => l.includes('IOMMU fault record')).line)
      .toContain(`write by ${NVME} at IOVA 0x${BUFFER_IOVA.toString(16)}: not-present`);
  });

  it('catches the stale nested translation, and the right invalidation cures it', () => {
    const stale = after(0, (l) => l.includes('STALE TRANSLATION'));
    const invalidations = lines.filter((l) => l.includes('IOMMU_HWPT_INVALIDATE'));
    expect(invalidations).toHaveLength(2);
    expect(invalidations.every((l) => l.endsWith(') = 0'))).toBe(true);
    expect(after(stale.index, (l) => l.includes('guest page B')).line).toContain(quote(DMA_MESSAGE.subarray(0, 16)));
  });

  it('resets the NVMe with VFIO_DEVICE_RESET and the whole NIC with a hot reset', () => {
    expect(after(0, (l) => l.startsWith('ioctl(') && l.includes(', VFIO_DEVICE_RESET)')).line).toMatch(/ = 0$/);
    const info = after(0, (l) => l.includes('VFIO_DEVICE_GET_PCI_HOT_RESET_INFO'));
    expect(info.line).toContain('flags=VFIO_PCI_HOT_RESET_FLAG_DEV_ID|VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED, count=2');
    const reset = after(info.index, (l) => l.includes('VFIO_DEVICE_PCI_HOT_RESET,'));
    expect(reset.line).toMatch(/\{argsz=12, flags=0, count=0\}\) = 0$/);
    expect(report.text).toContain(`# reset: ${NIC0} (bus)`);
    expect(report.text).toContain(`# reset: ${NIC1} (bus)`);
  });

  it('prints the same text every run', () => {
    expect(runDemo().text).toBe(report.text);
  });
});
