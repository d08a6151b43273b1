import { SimError } from '../errors/index.js';
import { bdfFromDevfn, compareBdf, formatBdf, formatBus, parseBdf, requesterId, type Bdf } from './bdf.js';
import { findExtCapability } from './capabilities/layout.js';
import type { FunctionSpec } from './function-spec.js';
import { PciFunction } from './pci-function.js';
import {
  PCI_BRIDGE_CONTROL,
  PCI_BRIDGE_CTL_BUS_RESET,
  PCI_EXT_CAP_ID_SRIOV,
  PCI_SRIOV_CTRL,
  PCI_SRIOV_CTRL_MSE,
  PCI_SRIOV_CTRL_VFE,
  PCI_SRIOV_NUM_VF,
  PCI_SRIOV_TOTAL_VF,
  PCI_SRIOV_VF_DID,
  PCI_SRIOV_VF_OFFSET,
  PCI_SRIOV_VF_STRIDE,
} from './pci-regs.js';

/**
 * A PCI bus, as Linux's struct pci_bus: the bridge that leads to it
 * (`self`, null for a root bus and for the virtual buses SR-IOV adds when
 * VF routing IDs spill past the PF's bus), its parent, child buses and the
 * functions on it in devfn order.
 */
export class PciBus {
  readonly domain: number;
  readonly number: number;
  readonly self: PciFunction | null;
  readonly parent: PciBus | null;
  /** Devices on this bus are conventional PCI (below a PCIe-to-PCI or PCI-to-PCI bridge). */
  readonly conventional: boolean;
  readonly children: PciBus[] = [];
  readonly slots: PciSlot[] = [];
  /** Highest bus number below this one (busn_res.end); the bridge's Subordinate Bus Number. */
  subordinateNumber: number;
  private deviceList: PciFunction[] = [];

  constructor(domain: number, number: number, self: PciFunction | null, parent: PciBus | null, conventional: boolean) {
    this.domain = domain;
    this.number = number;
    this.self = self;
    this.parent = parent;
    this.conventional = conventional;
    this.subordinateNumber = number;
  }

  /** pci_is_root_bus() */
  get isRoot(): boolean {
    return this.parent === null;
  }

  /** A bus with a parent but no bridge: SR-IOV's extra VF buses. */
  get isVirtual(): boolean {
    return this.parent !== null && this.self === null;
  }

  /** `dddd:bb` */
  get name(): string {
    return formatBus(this.domain, this.number);
  }

  /** Functions on this bus in devfn order. */
  get devices(): readonly PciFunction[] {
    return this.deviceList;
  }

  /** Placement done by the topology. */
  addDevice(fn: PciFunction): void {
    this.deviceList = [...this.deviceList, fn].sort((a, b) => compareBdf(a.bdf, b.bdf));
  }

  /** Removal done by the topology. */
  removeDevice(fn: PciFunction): void {
    this.deviceList = this.deviceList.filter((d) => d !== fn);
  }
}

/**
 * A slot on the secondary bus of a root or downstream port whose PCIe
 * capability says Slot Implemented. With Hot-Plug Capable, pciehp drives it
 * and can reset it (a secondary bus reset with presence detection masked);
 * without, the slot is only a name. PCIe slots always hold device 0.
 */
export class PciSlot {
  readonly bus: PciBus;
  readonly port: PciFunction;
  /** Physical Slot Number. */
  readonly number: number;
  readonly hotplug: boolean;
  /** The device number the slot covers on its bus. */
  readonly device = 0;
  private readonly resetSlot: (slot: PciSlot) => void;

  constructor(bus: PciBus, port: PciFunction, number: number, hotplug: boolean, resetSlot: (slot: PciSlot) => void) {
    this.bus = bus;
    this.port = port;
    this.number = number;
    this.hotplug = hotplug;
    this.resetSlot = resetSlot;
  }

  /** Functions that sit in the slot (pci_dev->slot == this). */
  get functions(): PciFunction[] {
    return this.bus.devices.filter((fn) => fn.slot === this);
  }

  /** The hot-plug controller's slot reset; NOT_SUPPORTED without hot-plug. */
  reset(): void {
    this.resetSlot(this);
  }
}

export type FunctionListener = (fn: PciFunction) => void;

interface SriovState {
  readonly pf: PciFunction;
  readonly pos: number;
  vfs: PciFunction[];
}

/**
 * The PCI hierarchy of a host: root buses per domain, bridges and the buses
 * they lead to, slots, functions. Lookups and iteration follow bdf order.
 * The topology owns the side effects that reach beyond one function: a
 * secondary bus reset resets and holds everything below the bridge, and VF
 * Enable in a PF's SR-IOV capability makes VFs appear or vanish.
 */
export class Topology {
  private readonly rootBusList: PciBus[] = [];
  private readonly busByKey = new Map<string, PciBus>();
  private readonly byName = new Map<string, PciFunction>();
  private sorted: PciFunction[] | null = [];
  private readonly sriov = new Map<PciFunction, SriovState>();
  private readonly sbrAsserted = new Set<PciFunction>();
  private readonly added: FunctionListener[] = [];
  private readonly removed: FunctionListener[] = [];
  private slotResetInProgress: PciSlot | null = null;

  /* ---- queries ---- */

  /** Every present function in bdf order. */
  functions(): readonly PciFunction[] {
    if (!this.sorted) this.sorted = [...this.byName.values()].sort((a, b) => compareBdf(a.bdf, b.bdf));
    return this.sorted;
  }

  /** The function at `bdf`, or undefined. */
  find(bdf: Bdf | string): PciFunction | undefined {
    return this.byName.get(typeof bdf === 'string' ? formatBdf(parseBdf(bdf)) : formatBdf(bdf));
  }

  /** The function at `bdf`; throws NO_SUCH_DEVICE. */
  get(bdf: Bdf | string): PciFunction {
    const fn = this.find(bdf);
    if (!fn) throw new SimError('NO_SUCH_DEVICE', `no PCI function at ${typeof bdf === 'string' ? bdf : formatBdf(bdf)}`);
    return fn;
  }

  rootBuses(): readonly PciBus[] {
    return this.rootBusList;
  }

  /** Every bus in (domain, number) order. */
  buses(): PciBus[] {
    return [...this.busByKey.values()].sort((a, b) => a.domain - b.domain || a.number - b.number);
  }

  bus(domain: number, number: number): PciBus | undefined {
    return this.busByKey.get(formatBus(domain, number));
  }

  /** Every slot, in (domain, bus) order. */
  slots(): PciSlot[] {
    return this.buses().flatMap((bus) => bus.slots);
  }

  onFunctionAdded(listener: FunctionListener): void {
    this.added.push(listener);
  }

  onFunctionRemoved(listener: FunctionListener): void {
    this.removed.push(listener);
  }

  /* ---- resets reaching several functions ---- */

  /** pciehp's slot reset: a secondary bus reset of the port, reported to the functions as `slot`. */
  slotReset(slot: PciSlot): void {
    if (!slot.hotplug) throw new SimError('NOT_SUPPORTED', `slot ${slot.number} on ${slot.bus.name} is not hot-plug capable`);
    this.slotResetInProgress = slot;
    try {
      secondaryBusReset(slot.port);
    } finally {
      this.slotResetInProgress = null;
    }
  }

  /* ---- SR-IOV ---- */

  /**
   * What Linux's sriov_enable() does to the hardware: program NumVFs, then
   * set VF Enable and VF MSE. The VFs appear at the routing IDs First VF
   * Offset and VF Stride give.
   */
  enableSriov(pf: PciFunction, numVfs: number): readonly PciFunction[] {
    const state = this.sriovState(pf);
    const total = pf.config.read(state.pos + PCI_SRIOV_TOTAL_VF, 2);
    if (!Number.isInteger(numVfs) || numVfs < 1 || numVfs > total) {
      throw new SimError('INVALID_ARGUMENT', `${pf.name}: ${numVfs} VFs requested; TotalVFs is ${total}`);
    }
    if (state.vfs.length > 0) throw new SimError('BUSY', `${pf.name} already has ${state.vfs.length} VFs enabled`);
    pf.config.write(state.pos + PCI_SRIOV_NUM_VF, 2, numVfs);
    const ctrl = pf.config.read(state.pos + PCI_SRIOV_CTRL, 2) | PCI_SRIOV_CTRL_VFE | PCI_SRIOV_CTRL_MSE;
    pf.iov!.numVfs = numVfs;
    pf.iov!.ctrl = ctrl;
    pf.config.write(state.pos + PCI_SRIOV_CTRL, 2, ctrl);
    return pf.virtfns;
  }

  /** Clears VF Enable and VF MSE, then NumVFs, as sriov_disable(). */
  disableSriov(pf: PciFunction): void {
    const state = this.sriovState(pf);
    const ctrl = pf.config.read(state.pos + PCI_SRIOV_CTRL, 2) & ~(PCI_SRIOV_CTRL_VFE | PCI_SRIOV_CTRL_MSE);
    pf.iov!.ctrl = ctrl;
    pf.iov!.numVfs = 0;
    pf.config.write(state.pos + PCI_SRIOV_CTRL, 2, ctrl);
    pf.config.write(state.pos + PCI_SRIOV_NUM_VF, 2, 0);
  }

  /**
   * Routing ID of VF `index` of `pf`: the PF's plus First VF Offset plus
   * VF Stride per VF (pci_iov_virtfn_bus/devfn).
   */
  vfBdf(pf: PciFunction, index: number): Bdf {
    const state = this.sriovState(pf);
    const offset = pf.config.hwRead(state.pos + PCI_SRIOV_VF_OFFSET, 2);
    const stride = pf.config.hwRead(state.pos + PCI_SRIOV_VF_STRIDE, 2);
    const rid = requesterId(pf.bdf) + offset + stride * index;
    if (rid > 0xffff) throw new SimError('OVERFLOW', `${pf.name}: VF ${index} routing ID 0x${rid.toString(16)} exceeds 16 bits`);
    return bdfFromDevfn(pf.bdf.domain, rid >> 8, rid & 0xff);
  }

  /* ---- construction (used by the platform builder) ---- */

  addRootBus(domain: number, number: number): PciBus {
    const bus = new PciBus(domain, number, null, null, false);
    this.rootBusList.push(bus);
    this.rootBusList.sort((a, b) => a.domain - b.domain || a.number - b.number);
    this.busByKey.set(bus.name, bus);
    return bus;
  }

  /** Builds the function described by `spec` on `bus`. */
  addFunction(spec: FunctionSpec, bus: PciBus): PciFunction {
    const fn = new PciFunction(spec);
    this.place(fn, bus);
    fn.onReset(() => this.afterReset(fn));
    if (fn.isBridge) fn.config.watch(PCI_BRIDGE_CONTROL, 2, () => this.onBridgeControl(fn));
    const pos = findExtCapability(fn.config, PCI_EXT_CAP_ID_SRIOV);
    if (pos && spec.vf) {
      this.sriov.set(fn, { pf: fn, pos, vfs: [] });
      fn.config.watch(pos + PCI_SRIOV_CTRL, 2, () => this.syncVfs(fn));
    }
    return fn;
  }

  /** Creates the bus behind `bridge`; with `slot`, the port implements a slot on it. */
  addSecondaryBus(
    bridge: PciFunction,
    number: number,
    options: { conventional: boolean; slot: { number: number; hotplug: boolean } | null },
  ): PciBus {
    const bus = new PciBus(bridge.bdf.domain, number, bridge, bridge.bus, options.conventional);
    bridge.bus.children.push(bus);
    bridge.attachSubordinate(bus);
    this.busByKey.set(bus.name, bus);
    if (options.slot) {
      bus.slots.push(new PciSlot(bus, bridge, options.slot.number, options.slot.hotplug, (s) => this.slotReset(s)));
    }
    return bus;
  }

  /* ---- internals ---- */

  private place(fn: PciFunction, bus: PciBus): void {
    if (this.byName.has(fn.name)) throw new SimError('EXISTS', `a function already exists at ${fn.name}`);
    // Linux gives a function the slot of its bus whose number matches its device number.
    const slot = bus.slots.find((s) => s.device === fn.bdf.device) ?? null;
    fn.attach(bus, slot);
    bus.addDevice(fn);
    this.byName.set(fn.name, fn);
    this.sorted = null;
  }

  private unplace(fn: PciFunction): void {
    fn.bus.removeDevice(fn);
    this.byName.delete(fn.name);
    this.sorted = null;
  }

  private onBridgeControl(bridge: PciFunction): void {
    const asserted = (bridge.config.hwRead(PCI_BRIDGE_CONTROL, 2) & PCI_BRIDGE_CTL_BUS_RESET) !== 0;
    if (asserted === this.sbrAsserted.has(bridge)) return;
    if (asserted) {
      this.sbrAsserted.add(bridge);
      const kind = this.slotResetInProgress?.port === bridge ? 'slot' : 'bus';
      for (const fn of functionsBelow(bridge)) if (fn.present) fn.resetToPowerOnState(kind);
    } else {
      this.sbrAsserted.delete(bridge);
    }
    this.updateHeld(bridge);
  }

  /** A function is held while any bridge above it asserts Secondary Bus Reset. */
  private updateHeld(bridge: PciFunction): void {
    for (const fn of functionsBelow(bridge)) {
      let held = false;
      for (let bus: PciBus | null = fn.bus; bus && !held; bus = bus.parent) {
        if (bus.self && this.sbrAsserted.has(bus.self)) held = true;
      }
      fn.setHeldInReset(held);
    }
  }

  /** A reset returns Bridge Control and the SR-IOV control to power-on: follow them. */
  private afterReset(fn: PciFunction): void {
    if (fn.isBridge && this.sbrAsserted.has(fn)) {
      this.sbrAsserted.delete(fn);
      this.updateHeld(fn);
    }
    if (this.sriov.has(fn)) this.syncVfs(fn);
  }

  private sriovState(pf: PciFunction): SriovState {
    const state = this.sriov.get(pf);
    if (!state) throw new SimError('NOT_SUPPORTED', `${pf.name} is not an SR-IOV physical function`);
    return state;
  }

  /**
   * VFs exist while VF Enable is set: setting it brings up NumVFs VFs (a
   * NumVFs above TotalVFs is undefined by the spec; the model caps it),
   * clearing it removes them. Each enable creates new VF instances, as
   * Linux allocates new pci_devs.
   */
  private syncVfs(pf: PciFunction): void {
    const state = this.sriovState(pf);
    const enabled = (pf.config.hwRead(state.pos + PCI_SRIOV_CTRL, 2) & PCI_SRIOV_CTRL_VFE) !== 0;
    if (!enabled) {
      if (state.vfs.length === 0) return;
      const gone = state.vfs;
      state.vfs = [];
      pf.setVirtfns([]);
      for (const vf of [...gone].reverse()) {
        vf.setPresent(false);
        this.unplace(vf);
        for (const listener of this.removed.slice()) listener(vf);
      }
      return;
    }
    if (state.vfs.length > 0) return;
    const total = pf.config.hwRead(state.pos + PCI_SRIOV_TOTAL_VF, 2);
    const count = Math.min(pf.config.hwRead(state.pos + PCI_SRIOV_NUM_VF, 2), total);
    const vfs: PciFunction[] = [];
    for (let index = 0; index < count; index++) vfs.push(this.createVf(state, index));
    state.vfs = vfs;
    pf.setVirtfns(vfs);
    for (const vf of vfs) for (const listener of this.added.slice()) listener(vf);
  }

  private createVf(state: SriovState, index: number): PciFunction {
    const pf = state.pf;
    const template = pf.spec.vf!;
    const sriovParams = pf.spec.extendedCapabilities.sriov!;
    const bdf = this.vfBdf(pf, index);
    const spec: FunctionSpec = {
      bdf,
      label: template.label,
      vendorId: pf.vendorId,
      deviceId: pf.config.hwRead(state.pos + PCI_SRIOV_VF_DID, 2),
      revision: template.revision,
      classCode: template.classCode,
      subsystemVendorId: template.subsystemVendorId,
      subsystemId: template.subsystemId,
      interruptPin: 0,
      multifunction: false,
      bridge: null,
      bars: sriovParams.vfBars,
      romSize: null,
      capabilities: template.capabilities,
      extendedCapabilities: template.extendedCapabilities,
      resets: template.resets,
      noIommu: pf.noIommu,
      vf: null,
    };
    const vf = new PciFunction(spec, { physfn: pf, index });
    for (const bar of sriovParams.vfBars) {
      const iov = pf.iovBars[bar.index];
      if (iov && iov.address !== 0n) vf.bars[bar.index]!.address = iov.address + BigInt(index) * bar.size;
    }
    this.place(vf, this.vfBus(pf, bdf.bus));
    return vf;
  }

  /** The bus a VF lives on: the PF's, or a virtual child bus of it (virtfn_add_bus). */
  private vfBus(pf: PciFunction, number: number): PciBus {
    if (number === pf.bus.number) return pf.bus;
    const existing = this.bus(pf.bdf.domain, number);
    if (existing) return existing;
    const bus = new PciBus(pf.bdf.domain, number, null, pf.bus, false);
    pf.bus.children.push(bus);
    this.busByKey.set(bus.name, bus);
    return bus;
  }
}

/**
 * pci_walk_bus(): the functions on `bus` and, depth first, on the buses
 * behind its bridges, each bridge before what is behind it. Virtual VF buses
 * hang off no bridge and are not visited, as in Linux.
 */
export function walkBus(bus: PciBus): PciFunction[] {
  const out: PciFunction[] = [];
  for (const fn of bus.devices) {
    out.push(fn);
    if (fn.subordinate) out.push(...walkBus(fn.subordinate));
  }
  return out;
}

/** Everything a secondary bus reset of `bridge` reaches: all functions physically below it, in bdf order. */
export function functionsBelow(bridge: PciFunction): PciFunction[] {
  const top = bridge.subordinate;
  if (!top) return [];
  const out: PciFunction[] = [];
  const visit = (bus: PciBus) => {
    out.push(...bus.devices);
    for (const child of bus.children) visit(child);
  };
  visit(top);
  return out.sort((a, b) => compareBdf(a.bdf, b.bdf));
}

/**
 * Pulses Secondary Bus Reset in the bridge's Bridge Control, as Linux's
 * pci_reset_secondary_bus() does: set, then clear. Everything below is
 * reset on assertion and held until deassertion (the topology watches the
 * register).
 */
export function secondaryBusReset(bridge: PciFunction): void {
  if (!bridge.isBridge) throw new SimError('NOT_SUPPORTED', `${bridge.name} is not a bridge`);
  const ctrl = bridge.config.read(PCI_BRIDGE_CONTROL, 2);
  bridge.config.write(PCI_BRIDGE_CONTROL, 2, ctrl | PCI_BRIDGE_CTL_BUS_RESET);
  bridge.config.write(PCI_BRIDGE_CONTROL, 2, ctrl & ~PCI_BRIDGE_CTL_BUS_RESET);
}
