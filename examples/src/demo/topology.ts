import { iommuGroupListing, lspciTree, resetScopeTable } from '@vfiosim/core';
import { check, type DemoContext } from './context.js';
import { NIC0, NIC1, NVME } from './host.js';

/** What an engineer looks at before assigning anything: the tree, the groups, who a reset reaches. */
export function showTopology(ctx: DemoContext): void {
  const { host, trace } = ctx;
  ctx.step = 'topology';
  trace.section('1. The host: lspci -tv, IOMMU groups, reset scopes');
  trace.line('$ lspci -tv');
  trace.block(lspciTree(host.platform.topology));
  trace.line('$ find /sys/kernel/iommu_groups/ -type l');
  trace.block(iommuGroupListing(host.platform.groups));
  trace.line('$ reset scopes (FLR / PM / bus route / reset_method / what a vfio hot reset reaches)');
  trace.block(resetScopeTable(host.platform));
  trace.line('$ drivers');
  for (const fn of host.platform.functions()) {
    const driver = host.drivers.driverName(fn);
    if (driver) trace.block(`${fn.name}  ${driver}`);
  }
  trace.line('$ ls /dev/vfio /dev/vfio/devices /dev/iommu');
  trace.block(host.system.devfs.list().join('  '));

  const group = (bdf: string) => host.platform.groups.groupOf(host.platform.get(bdf))?.id;
  check(ctx, group(NIC0) === group(NIC1), 'the two NIC ports share an IOMMU group (no ACS at the root port)');
  check(ctx, group(NVME) !== group(NIC0), 'the NVMe behind the ACS switch is in a group of its own');
}
