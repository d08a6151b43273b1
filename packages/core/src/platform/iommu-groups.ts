import { SimError } from '../errors/index.js';
import { compareBdf } from './bdf.js';
import type { PciFunction } from './pci-function.js';
import { PCI_ACS_CAP, PCI_ACS_CR, PCI_ACS_CTRL, PCI_ACS_EC, PCI_ACS_RR, PCI_ACS_SV, PCI_ACS_UF, PCI_EXT_CAP_ID_ACS } from './pci-regs.js';
import { findExtCapability } from './capabilities/layout.js';
import type { PciBus, Topology } from './topology.js';

/**
 * The ACS features Linux requires for isolation (drivers/iommu/iommu.c
 * REQ_ACS_FLAGS): Source Validation, Request Redirect, Completion Redirect,
 * Upstream Forwarding.
 */
export const REQ_ACS_FLAGS = PCI_ACS_SV | PCI_ACS_RR | PCI_ACS_CR | PCI_ACS_UF;

/**
 * pci_acs_flags_enabled(): every requested feature is enabled in ACS
 * Control. A feature the capability does not advertise counts as enabled
 * (the spec makes it either required or hard-wired), except Egress Control.
 */
function acsFlagsEnabled(fn: PciFunction, flags: number): boolean {
  const pos = findExtCapability(fn.config, PCI_EXT_CAP_ID_ACS);
  if (!pos) return false;
  const cap = fn.config.read(pos + PCI_ACS_CAP, 2);
  const wanted = flags & (cap | PCI_ACS_EC);
  return (fn.config.read(pos + PCI_ACS_CTRL, 2) & wanted) === wanted;
}

/**
 * pci_acs_enabled() without device-specific quirks: whether `fn` isolates
 * peer-to-peer traffic for `flags`.
 *
 * - Conventional PCI never does: a shared bus lets everyone snoop.
 * - PCIe-to-PCI bridges (and PCI-to-PCIe, root complex event collectors)
 *   are treated as never implementing ACS.
 * - Root and downstream ports need the ACS capability with the flags enabled.
 * - Endpoints, legacy endpoints, RCiEPs and upstream ports need it only in a
 *   multifunction device; a single-function one has no peers to isolate.
 */
export function pciAcsEnabled(fn: PciFunction, flags: number): boolean {
  switch (fn.pcieType) {
    case null:
    case 'pcie-to-pci-bridge':
      return false;
    case 'root-port':
    case 'downstream-port':
      return acsFlagsEnabled(fn, flags);
    case 'endpoint':
    case 'legacy-endpoint':
    case 'rc-endpoint':
    case 'upstream-port':
      return fn.multifunction ? acsFlagsEnabled(fn, flags) : true;
  }
}

/**
 * pci_acs_path_enabled(): ACS is enabled on `start` and every bridge above
 * it up to `end`, or up to the root bus when `end` is null.
 */
export function pciAcsPathEnabled(start: PciFunction, end: PciFunction | null, flags: number): boolean {
  let fn: PciFunction = start;
  for (;;) {
    if (!pciAcsEnabled(fn, flags)) return false;
    if (fn.bus.isRoot) return end === null;
    if (fn === end) return true;
    const parent = fn.bus.self;
    if (!parent) return end === null;
    fn = parent;
  }
}

/** An IOMMU group: the functions the IOMMU cannot tell apart or isolate from each other. */
export class IommuGroup {
  readonly id: number;
  private members: PciFunction[] = [];

  constructor(id: number) {
    this.id = id;
  }

  /** Members in bdf order, as /sys/kernel/iommu_groups/N/devices lists them. */
  get functions(): readonly PciFunction[] {
    return this.members;
  }

  has(fn: PciFunction): boolean {
    return this.members.includes(fn);
  }

  /** Membership changes made by IommuGroups. */
  add(fn: PciFunction): void {
    this.members = [...this.members, fn].sort((a, b) => compareBdf(a.bdf, b.bdf));
  }

  remove(fn: PciFunction): void {
    this.members = this.members.filter((m) => m !== fn);
  }
}

/**
 * IOMMU groups computed as Linux's pci_device_group() computes them,
 * ignoring quirks (no DMA alias masks, no device-specific ACS):
 *
 * 1. Walk the DMA aliases upstream (pci_for_each_dma_alias): a function
 *    behind a PCIe-to-PCI bridge takes the bridge's group, since the bridge
 *    issues its DMA with the bridge's own requester ID.
 * 2. From there, climb bridges until one has ACS on its whole path to the
 *    root; every bridge passed that already has a group lends it.
 * 3. A multifunction device whose functions lack ACS shares one group.
 * 4. Otherwise the function gets a new group.
 *
 * Functions flagged noIommu belong to no group. Group ids come from the
 * kernel's ida as groups are made: at boot in the order the IOMMU driver
 * probes the functions, so a hierarchy numbered out of address order (a
 * bridge with a lower devfn leading to a higher bus) is numbered as Linux
 * numbers it; later groups (VFs) take the lowest free id.
 */
export class IommuGroups {
  private readonly byId = new Map<number, IommuGroup>();
  private readonly byFunction = new Map<PciFunction, IommuGroup>();

  constructor(topology: Topology) {
    for (const fn of probeOrder(topology)) this.addFunction(fn);
    topology.onFunctionAdded((fn) => this.addFunction(fn));
    topology.onFunctionRemoved((fn) => this.removeFunction(fn));
  }

  /** Every group in id order. */
  all(): IommuGroup[] {
    return [...this.byId.values()].sort((a, b) => a.id - b.id);
  }

  get(id: number): IommuGroup | undefined {
    return this.byId.get(id);
  }

  /** The group of `fn`, or null when no IOMMU translates it. */
  groupOf(fn: PciFunction): IommuGroup | null {
    return this.byFunction.get(fn) ?? null;
  }

  /** The group of `fn`; throws NO_DEVICE for a function without one. */
  requireGroupOf(fn: PciFunction): IommuGroup {
    const group = this.groupOf(fn);
    if (!group) throw new SimError('NO_DEVICE', `${fn.name} has no IOMMU group`);
    return group;
  }

  private addFunction(fn: PciFunction): void {
    if (fn.noIommu) return;
    let group = this.findGroup(fn, this.byFunction);
    if (!group) {
      let id = 0;
      while (this.byId.has(id)) id++;
      group = new IommuGroup(id);
      this.byId.set(id, group);
    }
    group.add(fn);
    this.byFunction.set(fn, group);
  }

  private removeFunction(fn: PciFunction): void {
    const group = this.byFunction.get(fn);
    if (!group) return;
    group.remove(fn);
    this.byFunction.delete(fn);
    if (group.functions.length === 0) this.byId.delete(group.id);
  }

  /** pci_device_group() up to the point where it would allocate a new group. */
  private findGroup(start: PciFunction, groups: ReadonlyMap<PciFunction, IommuGroup>): IommuGroup | null {
    // Step 1: the last DMA alias upstream decides where the search continues.
    let pdev = start;
    const first = groups.get(pdev);
    if (first) return first;
    for (let bus: PciBus | null = start.bus; bus && !bus.isRoot; bus = bus.parent) {
      const bridge = bus.self;
      if (!bridge) continue;
      if (bridge.pcieType === 'root-port' || bridge.pcieType === 'upstream-port' || bridge.pcieType === 'downstream-port') continue;
      // A PCIe-to-PCI bridge, or a conventional PCI bridge, is a DMA alias of what is below it.
      pdev = bridge;
      const aliasGroup = groups.get(bridge);
      if (aliasGroup) return aliasGroup;
    }

    // Step 2: climb until ACS isolates the path to the root.
    for (let bus: PciBus | null = pdev.bus; bus && !bus.isRoot; bus = bus.parent) {
      if (!bus.self) continue;
      if (pciAcsPathEnabled(bus.self, null, REQ_ACS_FLAGS)) break;
      pdev = bus.self;
      const group = groups.get(pdev);
      if (group) return group;
    }

    // Without DMA alias quirks, the alias-group search reduces to pdev's own group.
    const own = groups.get(pdev);
    if (own) return own;

    // Step 3: non-isolated functions of the same multifunction device.
    if (!pdev.multifunction || pciAcsEnabled(pdev, REQ_ACS_FLAGS)) return null;
    for (const other of pdev.bus.devices) {
      if (other === pdev || other.bdf.device !== pdev.bdf.device || pciAcsEnabled(other, REQ_ACS_FLAGS)) continue;
      const group = groups.get(other);
      if (group) return group;
    }
    return null;
  }
}

/**
 * The order the PCI scan adds devices to the bus (pci_scan_child_bus: every
 * function on a bus, then the bus behind each of its bridges in turn), which
 * is the order the IOMMU driver probes them (bus_iommu_probe walks the bus's
 * device list). VFs present at boot come after everything, as they are
 * added when SR-IOV is enabled, after the IOMMU has probed the rest.
 */
function probeOrder(topology: Topology): PciFunction[] {
  const out: PciFunction[] = [];
  const vfs: PciFunction[] = [];
  const visit = (bus: PciBus) => {
    for (const fn of bus.devices) (fn.isVirtfn ? vfs : out).push(fn);
    for (const fn of bus.devices) if (fn.subordinate) visit(fn.subordinate);
    for (const child of bus.children) if (child.isVirtual) visit(child);
  };
  for (const root of topology.rootBuses()) visit(root);
  return [...out, ...vfs];
}
