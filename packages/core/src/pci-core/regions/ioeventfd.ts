import { SimError } from '../../errors/index.js';
import type { Process } from '../../os/index.js';
import type { BarAccessSize } from '../../platform/bar-memory.js';
import { VFIO_PCI_BAR5_REGION_INDEX } from '../../uapi/index.js';
import { Virqfd } from '../intrs/virqfd.js';
import { vfioPciMemoryEnabled } from '../memory.js';
import { vfioPciOffsetToIndex, vfioPciRegionOffset } from '../offsets.js';
import type { VfioPciCoreDevice } from '../vfio-pci-core-device.js';
import { barLength } from './region-info.js';

/** Cap on ioeventfds per device (VFIO_PCI_IOEVENTFD_MAX, arbitrary in the kernel too). */
export const VFIO_PCI_IOEVENTFD_MAX = 1000;

/** A write vfio performs to a BAR each time an eventfd fires (struct vfio_pci_ioeventfd). */
export interface Ioeventfd {
  readonly bar: number;
  readonly pos: bigint;
  readonly data: bigint;
  readonly count: BarAccessSize;
  readonly virqfd: Virqfd;
}

/**
 * vfio_pci_ioeventfd: attaches (fd >= 0) or detaches (fd -1) an eventfd
 * that, when signalled, writes `data` (`count` bytes) at `offset` of a
 * BAR. EINVAL for a non-BAR region, a write past the BAR, one touching the
 * MSI-X table, or an 8-byte write; EEXIST when the same write is already
 * attached; ENODEV when detaching one that is not; ENOSPC past the cap.
 * A memory BAR write is skipped while the user has memory decode off.
 */
export function vfioPciIoeventfd(vdev: VfioPciCoreDevice, proc: Process, offset: bigint, data: bigint, count: BarAccessSize, fd: number): number {
  const bar = vfioPciOffsetToIndex(offset);
  const pos = vfioPciRegionOffset(offset);
  if (bar > VFIO_PCI_BAR5_REGION_INDEX) throw new SimError('INVALID_ARGUMENT', `${vdev.name}: ioeventfds only write BARs`);
  if (pos + BigInt(count) > barLength(vdev, bar)) throw new SimError('INVALID_ARGUMENT', `${vdev.name}: ioeventfd write goes past BAR ${bar}`);
  if (bar === vdev.msixBar && !(pos + BigInt(count) <= BigInt(vdev.msixOffset) || pos >= BigInt(vdev.msixOffset + vdev.msixSize))) {
    throw new SimError('INVALID_ARGUMENT', `${vdev.name}: ioeventfd write touches the MSI-X table`);
  }
  if (count === 8) throw new SimError('INVALID_ARGUMENT', `${vdev.name}: 8-byte ioeventfds are not supported`);

  const at = vdev.ioeventfds.findIndex((e) => e.pos === pos && e.bar === bar && e.data === data && e.count === count);
  if (at >= 0) {
    if (fd !== -1) throw new SimError('EXISTS', `${vdev.name}: this ioeventfd is already attached`);
    vdev.ioeventfds[at]!.virqfd.disable();
    vdev.ioeventfds.splice(at, 1);
    return 0;
  }
  if (fd < 0) throw new SimError('NO_DEVICE', `${vdev.name}: no such ioeventfd to detach`);
  if (vdev.ioeventfds.length >= VFIO_PCI_IOEVENTFD_MAX) throw new SimError('LIMIT_REACHED', `${vdev.name} has ${VFIO_PCI_IOEVENTFD_MAX} ioeventfds`);

  const testMem = vdev.pdev.bars[bar]!.kind !== 'io';
  let slot: Virqfd | null = null;
  const virqfd = Virqfd.enable(
    proc,
    fd,
    { get: () => slot, set: (v) => (slot = v) },
    () => {
      if (!testMem || vfioPciMemoryEnabled(vdev)) vdev.pdev.writeBar(bar, pos, count, data);
      return false;
    },
    null,
  );
  vdev.ioeventfds.push({ bar, pos, data, count, virqfd });
  return 0;
}

/** Drops every ioeventfd (at the last close). */
export function vfioPciIoeventfdsRelease(vdev: VfioPciCoreDevice): void {
  for (const e of vdev.ioeventfds) e.virqfd.disable();
  vdev.ioeventfds.length = 0;
}
