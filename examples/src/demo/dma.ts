import {
  IOMMU_IOAS_MAP_FIXED_IOVA,
  IOMMU_IOAS_MAP_READABLE,
  IOMMU_IOAS_MAP_WRITEABLE,
  VFIO_PCI_BAR0_REGION_INDEX,
  iommu_ioas_map,
  iommu_ioas_unmap,
} from '@vfiosim/core';
import { hex } from '../vmm/format.js';
import { quote } from '../vmm/vmm.js';
import { check, nvmeOf, type DemoContext, type OpenedDevice } from './context.js';
import {
  DMA_MESSAGE,
  DMA_STATUS_DONE,
  DMA_STATUS_FAULT,
  REG_DMA_DOORBELL,
  REG_DMA_IOVA,
  REG_DMA_LEN,
  REG_DMA_STATUS,
} from './device-model.js';
import { barRead, barWrite } from './open-device.js';

/** Where the demo maps its DMA buffer in the IOAS (inside the mock IOMMU's aperture). */
export const BUFFER_IOVA = 0x1000_0000n;
export const BUFFER_SIZE = 0x10000;

/**
 * Programs the toy DMA engine (IOVA, length, doorbell) through BAR 0 as a
 * driver would, then takes the completion interrupt. Returns the status
 * register.
 */
export function runDeviceDma(ctx: DemoContext, dev: OpenedDevice, iova: bigint, length: number): bigint | number {
  const { vmm } = ctx;
  barWrite(vmm, dev, VFIO_PCI_BAR0_REGION_INDEX, REG_DMA_IOVA, 8, iova);
  barWrite(vmm, dev, VFIO_PCI_BAR0_REGION_INDEX, REG_DMA_LEN, 4, BigInt(length));
  barWrite(vmm, dev, VFIO_PCI_BAR0_REGION_INDEX, REG_DMA_DOORBELL, 4, 1n);
  ctx.trace.note(`device: DMA-writes ${length} bytes at IOVA ${hex(iova)} through the IOMMU, then raises MSI-X vector 0`);
  const interrupts = vmm.readEventfd(ctx.msixEventfd);
  check(ctx, interrupts === 1n, 'the completion interrupt arrives');
  return barRead(vmm, dev, VFIO_PCI_BAR0_REGION_INDEX, REG_DMA_STATUS, 4);
}

/**
 * DMA through an IOAS: the VMM maps part of its memory at an IOVA, the
 * device writes there and the bytes appear in the process; after the
 * unmap the same DMA faults in the IOMMU and nothing is written.
 */
export function dmaThroughIoas(ctx: DemoContext): void {
  const { vmm, trace, host } = ctx;
  const dev = nvmeOf(ctx);
  ctx.step = 'dma';
  trace.section('4. DMA through an IOAS: map, device writes, process reads; unmap, fault');

  const buffer = vmm.mmap(BUFFER_SIZE);
  const map = vmm.ioctl(ctx.iommufd, 'IOMMU_IOAS_MAP', iommu_ioas_map, {
    flags: IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_READABLE,
    ioas_id: ctx.ioasId,
    user_va: buffer,
    length: BigInt(BUFFER_SIZE),
    iova: BUFFER_IOVA,
  });
  trace.note('the pages are pinned and mapped into every domain of the IOAS (here the NVMe\'s paging HWPT)');
  check(ctx, map.rc === 0, 'IOMMU_IOAS_MAP of process memory succeeds');

  trace.note(`driver: DMA address (BAR0+${hex(REG_DMA_IOVA)}) = ${hex(BUFFER_IOVA)}, length (+${hex(REG_DMA_LEN)}) = ${DMA_MESSAGE.length}, doorbell (+${hex(REG_DMA_DOORBELL)})`);
  const status = runDeviceDma(ctx, dev, BUFFER_IOVA, DMA_MESSAGE.length);
  trace.note(`status ${typeof status === 'bigint' ? hex(status) : status}: ${status === DMA_STATUS_DONE ? 'done' : 'not done'}`);
  check(ctx, status === DMA_STATUS_DONE, 'the device reports its DMA done');

  const seen = ctx.vmm.proc.mem.read(buffer, DMA_MESSAGE.length);
  trace.note(`the process reads its buffer at ${hex(buffer)}: ${typeof seen === 'number' ? seen : quote(seen)}`);
  check(ctx, typeof seen !== 'number' && Buffer.from(seen).equals(Buffer.from(DMA_MESSAGE)), 'the DMA bytes arrived in process memory');

  trace.line('');
  const unmap = vmm.ioctl(ctx.iommufd, 'IOMMU_IOAS_UNMAP', iommu_ioas_unmap, { ioas_id: ctx.ioasId, iova: BUFFER_IOVA, length: BigInt(BUFFER_SIZE) });
  check(ctx, unmap.rc === 0 && unmap.out.length === BigInt(BUFFER_SIZE), 'IOMMU_IOAS_UNMAP removes the whole mapping');
  vmm.proc.mem.write(buffer, new Uint8Array(DMA_MESSAGE.length));
  trace.note('the process clears its buffer; the device tries the same DMA again');
  host.dma.clearFaultLog();
  const again = runDeviceDma(ctx, dev, BUFFER_IOVA, DMA_MESSAGE.length);
  const fault = host.dma.faultLog[0];
  trace.note(`status ${typeof again === 'bigint' ? hex(again) : again}: the IOMMU refused the write`);
  if (fault) trace.note(`IOMMU fault record: ${fault.direction} by ${fault.device.name} at IOVA ${hex(fault.iova)}: ${fault.reason}`);
  check(ctx, again === DMA_STATUS_FAULT && fault?.reason === 'not-present', 'DMA after the unmap faults (not-present)');
  const after = ctx.vmm.proc.mem.read(buffer, DMA_MESSAGE.length);
  check(ctx, typeof after !== 'number' && after.every((byte) => byte === 0), 'nothing reached memory after the unmap');
}
