import {
  IOMMU_HWPT_INVALIDATE,
  IOMMU_HWPT_INVALIDATE_DATA_SELFTEST,
  iommu_hwpt_invalidate,
  iommu_hwpt_invalidate_selftest,
  type Process,
} from '@vfiosim/core';
import { setUpNested } from '../demo/nested.js';
import { Trace } from '../vmm/trace.js';
import { Vmm } from '../vmm/vmm.js';
import type { BenchCase } from './measure.js';
import { MAP_GET } from './reference.js';
import { attachNewIoas, benchHost, bindCdev, endpointBdf, ok } from './rig.js';

export const HWPT_INVALIDATE = 'IOMMU_HWPT_INVALIDATE, 64 entries a call';
export const ENTRIES_PER_CALL = 64;

export interface InvalidateRig {
  readonly proc: Process;
  readonly iommufd: number;
  /** Where the staged struct iommu_hwpt_invalidate is. */
  readonly argp: bigint;
  /** One ioctl; returns entry_num as the kernel wrote it back. */
  invalidate(): number;
}

/**
 * A nested HWPT of the mock IOMMU and a staged IOMMU_HWPT_INVALIDATE
 * whose 64 entries each flush one of the mock's four IOTLB ways: the call
 * a guest's IOTLB flush turns into in a VMM.
 */
export function invalidateRig(): InvalidateRig {
  const host = benchHost(1);
  const vmm = new Vmm(host, new Trace());
  const proc = vmm.proc;
  const dev = bindCdev(host, proc, endpointBdf(0));
  const ioasId = attachNewIoas(proc, dev);
  const nested = setUpNested(vmm, host, dev.iommufd, ioasId, dev.fd, dev.devid, dev.fn);

  const entries = proc.mmap(4096);
  ok(entries, 'mmap');
  const size = iommu_hwpt_invalidate_selftest.size;
  const bytes = new Uint8Array(ENTRIES_PER_CALL * size);
  for (let i = 0; i < ENTRIES_PER_CALL; i++) bytes.set(iommu_hwpt_invalidate_selftest.encodeNew({ flags: 0, iotlb_id: i % 4 }), i * size);
  ok(proc.mem.write(entries, bytes), 'staging the entries');

  const argp = proc.mmap(4096);
  ok(argp, 'mmap');
  const cmd = iommu_hwpt_invalidate.encodeNew({
    size: iommu_hwpt_invalidate.size,
    hwpt_id: nested.nestedId,
    data_uptr: entries,
    data_type: IOMMU_HWPT_INVALIDATE_DATA_SELFTEST,
    entry_len: size,
    entry_num: ENTRIES_PER_CALL,
  });
  ok(proc.mem.write(argp, cmd), 'staging the command');
  const entryNumAt = argp + BigInt(iommu_hwpt_invalidate.offsetOf('entry_num'));
  return {
    proc,
    iommufd: dev.iommufd,
    argp,
    invalidate: () => {
      ok(proc.ioctl(dev.iommufd, IOMMU_HWPT_INVALIDATE, argp), 'IOMMU_HWPT_INVALIDATE');
      return proc.mem.readU32(entryNumAt);
    },
  };
}

export function invalidateCases(): BenchCase[] {
  const rig = invalidateRig();
  return [
    {
      name: HWPT_INVALIDATE,
      unit: 'entry',
      batch: ENTRIES_PER_CALL * 10,
      reference: MAP_GET,
      run: () => {
        for (let i = 0; i < 10; i++) rig.invalidate();
      },
    },
  ];
}
