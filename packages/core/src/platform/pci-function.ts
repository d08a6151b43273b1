import { SimError } from '../errors/index.js';
import { formatBdf, requesterId, type Bdf } from './bdf.js';
import { PlainBarMemory, type BarAccessSize, type BarHandler } from './bar-memory.js';
import type { BarSpec } from './bars.js';
import { findCapability, findExtCapability, pcieTypeFromCode } from './capabilities/layout.js';
import type { PcieType } from './capabilities/pcie.js';
import { writtenField, type ConfigAccessSize, type ConfigSpace, type ConfigWrite } from './config-space.js';
import { buildConfigSpace } from './function-config.js';
import type { BridgeKind, FunctionSpec, PlatformResets } from './function-spec.js';
import { msixEntryWritten } from './interrupts.js';
import { MsixTable } from './msix-table.js';
import {
  PCI_AF_CAP,
  PCI_AF_CAP_FLR,
  PCI_AF_CAP_TP,
  PCI_AF_CTRL,
  PCI_AF_CTRL_FLR,
  PCI_CAP_ID_AF,
  PCI_CAP_ID_EXP,
  PCI_CAP_ID_MSIX,
  PCI_CAP_ID_PM,
  PCI_COMMAND,
  PCI_COMMAND_IO,
  PCI_COMMAND_MEMORY,
  PCI_EXP_DEVCAP,
  PCI_EXP_DEVCAP_FLR,
  PCI_EXP_DEVCTL,
  PCI_EXP_DEVCTL_BCR_FLR,
  PCI_EXP_DEVCTL_PAYLOAD,
  PCI_EXP_FLAGS,
  PCI_EXP_FLAGS_TYPE,
  PCI_EXP_LNKCTL,
  PCI_EXT_CAP_ID_ATS,
  PCI_EXT_CAP_ID_PASID,
  PCI_EXT_CAP_ID_SRIOV,
  PCI_HEADER_TYPE_BRIDGE,
  PCI_MSIX_ENTRY_SIZE,
  PCI_MSIX_PBA,
  PCI_MSIX_TABLE,
  PCI_MSIX_TABLE_BIR,
  PCI_MSIX_TABLE_OFFSET,
  PCI_PASID_CAP,
  PCI_PASID_CAP_WIDTH,
  PCI_PM_CAP_D1,
  PCI_PM_CAP_D2,
  PCI_PM_CTRL,
  PCI_PM_CTRL_NO_SOFT_RESET,
  PCI_PM_CTRL_STATE_MASK,
  PCI_PM_PMC,
  PCI_ROM_ADDRESS,
  PCI_ROM_ADDRESS_ENABLE,
  PCI_SRIOV_CTRL,
  PCI_SRIOV_CTRL_MSE,
  PCI_D0,
  PCI_D1,
  PCI_D2,
  PCI_D3hot,
} from './pci-regs.js';
import { buildRomImage } from './rom-image.js';
import type { PciBus, PciSlot } from './topology.js';

/**
 * How a function came to be reset. `bus` is a secondary bus reset of the
 * bridge above, `slot` the same driven by the hot-plug controller of the
 * slot; the others are the function's own reset mechanisms.
 */
export type ResetKind = 'flr' | 'af_flr' | 'pm' | 'acpi' | 'device_specific' | 'bus' | 'slot';

export type PowerState = 'D0' | 'D1' | 'D2' | 'D3hot';

export interface ResetEvent {
  readonly fn: PciFunction;
  readonly kind: ResetKind;
}

export type ResetListener = (event: ResetEvent) => void;

/** A BAR with the address the OS assigned it during enumeration (Linux's pci_resource_start). */
export interface PciBar extends BarSpec {
  /** Assigned bus address; kept by the OS, so it survives resets that clear the register. */
  address: bigint;
}

/** The expansion ROM: size, assigned address and contents. */
export interface PciRom {
  readonly size: bigint;
  address: bigint;
  readonly image: Uint8Array;
}

/** Identity of a VF within its PF. */
export interface VirtfnIdentity {
  readonly physfn: PciFunction;
  /** VF number, 0-based. */
  readonly index: number;
}

const POWER_STATES: readonly PowerState[] = ['D0', 'D1', 'D2', 'D3hot'];

/**
 * One PCI function as hardware: config space with its write side effects,
 * BARs, expansion ROM and MSI-X table, and the resets it implements. What
 * the OS keeps about it (assigned BAR addresses, the bound driver) is kept
 * alongside, because other layers read it the way Linux reads pci_dev.
 */
export class PciFunction {
  readonly bdf: Bdf;
  /** `dddd:bb:dd.f` */
  readonly name: string;
  /** Free-form label from the host description. */
  readonly label: string | null;
  readonly config: ConfigSpace;
  /** IDs as Linux reports them (for a VF: the PF's vendor and the SR-IOV VF Device ID). */
  readonly vendorId: number;
  readonly deviceId: number;
  readonly classCode: number;
  readonly revision: number;
  readonly subsystemVendorId: number;
  readonly subsystemId: number;
  readonly bridgeKind: BridgeKind | null;
  /** PCIe Device/Port Type, or null for a conventional PCI function. */
  readonly pcieType: PcieType | null;
  readonly multifunction: boolean;
  readonly noIommu: boolean;
  readonly platformResets: PlatformResets;
  /** BARs by number; a 64-bit BAR appears at its first number only. */
  readonly bars: ReadonlyArray<PciBar | undefined>;
  readonly rom: PciRom | null;
  /**
   * For an SR-IOV PF: the VF BAR resources by VF BAR number, each the VF BAR
   * size times TotalVFs (Linux's PCI_IOV_RESOURCES); VF n's BAR sits at
   * n * size into it.
   */
  readonly iovBars: ReadonlyArray<PciBar | undefined>;
  readonly msix: MsixTable | null;
  readonly virtfn: VirtfnIdentity | null;
  /** The hardware description the function was built from. */
  readonly spec: FunctionSpec;

  /** Name of the bound driver, managed by the driver core; null when unbound. */
  driverName: string | null = null;
  /**
   * For an SR-IOV PF: what Linux keeps in its struct pci_sriov, the SR-IOV
   * Control value and NumVFs that sriov_enable()/sriov_disable() last
   * programmed (the topology's enableSriov/disableSriov keep it). Restoring
   * the function after a reset brings VFs back from this record, not from
   * registers saved before the reset. Null for anything but a PF.
   */
  readonly iov: { ctrl: number; numVfs: number } | null;

  private busRef: PciBus | null = null;
  private subordinateRef: PciBus | null = null;
  private slotRef: PciSlot | null = null;
  private virtfnList: PciFunction[] = [];
  private heldInReset = false;
  private presentFlag = true;
  private lastPowerState: number = PCI_D0;
  private resets = 0;
  private lastResetKind: ResetKind | null = null;
  private readonly resetListeners: ResetListener[] = [];
  private readonly memory = new PlainBarMemory();
  private handler: BarHandler = this.memory;

  private readonly pmPos: number;
  private readonly expPos: number;
  private readonly afPos: number;
  /** For a VF: where the PF's SR-IOV capability is (VF MSE gates the VF's BARs). */
  private readonly pfSriovPos: number;
  private readonly msixLayout: { tableBar: number; tableOffset: number; pbaBar: number; pbaOffset: number } | null;

  constructor(spec: FunctionSpec, virtfn: VirtfnIdentity | null = null) {
    this.spec = spec;
    this.bdf = spec.bdf;
    this.name = formatBdf(spec.bdf);
    this.label = spec.label;
    this.virtfn = virtfn;
    this.vendorId = spec.vendorId;
    this.deviceId = spec.deviceId;
    this.classCode = spec.classCode;
    this.revision = spec.revision;
    this.subsystemVendorId = spec.subsystemVendorId;
    this.subsystemId = spec.subsystemId;
    this.bridgeKind = spec.bridge;
    this.multifunction = spec.multifunction;
    this.noIommu = spec.noIommu;
    this.platformResets = spec.resets;
    this.config = buildConfigSpace({
      vendorId: spec.vendorId,
      deviceId: spec.deviceId,
      revision: spec.revision,
      classCode: spec.classCode,
      subsystemVendorId: spec.subsystemVendorId,
      subsystemId: spec.subsystemId,
      interruptPin: spec.interruptPin,
      multifunction: spec.multifunction,
      headerType: spec.bridge ? PCI_HEADER_TYPE_BRIDGE : 0,
      bars: spec.bars,
      romSize: spec.romSize,
      capabilities: spec.capabilities,
      extendedCapabilities: spec.extendedCapabilities,
      virtfn: virtfn !== null,
    });

    const bars: Array<PciBar | undefined> = new Array(6).fill(undefined);
    for (const bar of spec.bars) bars[bar.index] = { ...bar, address: 0n };
    this.bars = bars;
    const iovBars: Array<PciBar | undefined> = new Array(6).fill(undefined);
    const sriov = spec.extendedCapabilities.sriov;
    if (sriov) {
      for (const bar of sriov.vfBars) iovBars[bar.index] = { ...bar, size: bar.size * BigInt(sriov.totalVfs), address: 0n };
    }
    this.iovBars = iovBars;
    const sriovPos = spec.vf ? findExtCapability(this.config, PCI_EXT_CAP_ID_SRIOV) : 0;
    this.iov = sriovPos ? { ctrl: this.config.hwRead(sriovPos + PCI_SRIOV_CTRL, 2), numVfs: 0 } : null;
    this.rom =
      spec.romSize !== null && !virtfn
        ? { size: spec.romSize, address: 0n, image: buildRomImage(Number(spec.romSize), spec.vendorId, spec.deviceId, spec.classCode) }
        : null;

    this.pmPos = findCapability(this.config, PCI_CAP_ID_PM);
    this.expPos = findCapability(this.config, PCI_CAP_ID_EXP);
    this.afPos = findCapability(this.config, PCI_CAP_ID_AF);
    this.pfSriovPos = virtfn ? findExtCapability(virtfn.physfn.config, PCI_EXT_CAP_ID_SRIOV) : 0;
    this.pcieType = this.expPos ? pcieTypeFromCode((this.config.read(this.expPos + PCI_EXP_FLAGS, 2) & PCI_EXP_FLAGS_TYPE) >> 4) : null;

    const msixPos = findCapability(this.config, PCI_CAP_ID_MSIX);
    if (msixPos && spec.capabilities.msix) {
      const table = this.config.read(msixPos + PCI_MSIX_TABLE, 4);
      const pba = this.config.read(msixPos + PCI_MSIX_PBA, 4);
      this.msixLayout = {
        tableBar: table & PCI_MSIX_TABLE_BIR,
        tableOffset: (table & PCI_MSIX_TABLE_OFFSET) >>> 0,
        pbaBar: pba & PCI_MSIX_TABLE_BIR,
        pbaOffset: (pba & PCI_MSIX_TABLE_OFFSET) >>> 0,
      };
      this.msix = new MsixTable(spec.capabilities.msix.tableSize);
    } else {
      this.msixLayout = null;
      this.msix = null;
    }

    if (this.expPos) this.config.watch(this.expPos + PCI_EXP_DEVCTL, 2, (w) => this.onDevctlWrite(w));
    if (this.pmPos) this.config.watch(this.pmPos + PCI_PM_CTRL, 2, () => this.onPmcsrWrite());
    if (this.afPos) this.config.watch(this.afPos + PCI_AF_CTRL, 1, (w) => this.onAfCtrlWrite(w));
  }

  /* ---- identity ---- */

  get isBridge(): boolean {
    return this.bridgeKind !== null;
  }

  get isVirtfn(): boolean {
    return this.virtfn !== null;
  }

  get physfn(): PciFunction | null {
    return this.virtfn?.physfn ?? null;
  }

  /** The VFs currently enabled on this PF, in VF order. */
  get virtfns(): readonly PciFunction[] {
    return this.virtfnList;
  }

  /** Requester ID the function tags its requests with: PCI_DEVID(bus, devfn). */
  get rid(): number {
    return requesterId(this.bdf);
  }

  /** PASID Max Width (log2 of the PASIDs it can emit); 0 without a PASID capability. */
  get maxPasidLog2(): number {
    const pos = findExtCapability(this.config, PCI_EXT_CAP_ID_PASID);
    return pos ? (this.config.hwRead(pos + PCI_PASID_CAP, 2) & PCI_PASID_CAP_WIDTH) >> 8 : 0;
  }

  /** The function implements ATS (and so caches translations in a device TLB). */
  get atsCapable(): boolean {
    return findExtCapability(this.config, PCI_EXT_CAP_ID_ATS) !== 0;
  }

  /** Config space size: 4096 for PCIe, 256 for conventional PCI. */
  get cfgSize(): number {
    return this.config.size;
  }

  /* ---- topology links (set by the topology) ---- */

  /** The bus the function sits on. */
  get bus(): PciBus {
    if (!this.busRef) throw new SimError('NO_DEVICE', `${this.name} is not attached to a bus`);
    return this.busRef;
  }

  /** For a bridge: the bus it leads to. */
  get subordinate(): PciBus | null {
    return this.subordinateRef;
  }

  /** The hot-plug or physical slot the function sits in, as Linux's pci_dev->slot. */
  get slot(): PciSlot | null {
    return this.slotRef;
  }

  /** Wiring done by the topology when it places the function. */
  attach(bus: PciBus, slot: PciSlot | null): void {
    this.busRef = bus;
    this.slotRef = slot;
  }

  /** Wiring done by the topology for a bridge. */
  attachSubordinate(bus: PciBus): void {
    this.subordinateRef = bus;
  }

  /** Wiring done by the topology when VF Enable changes. */
  setVirtfns(vfs: PciFunction[]): void {
    this.virtfnList = vfs;
  }

  /* ---- resets ---- */

  /** How many resets of any kind the function has gone through. */
  get resetCount(): number {
    return this.resets;
  }

  get lastReset(): ResetKind | null {
    return this.lastResetKind;
  }

  /** Calls `listener` after each reset of this function; returns a function that removes it. */
  onReset(listener: ResetListener): () => void {
    this.resetListeners.push(listener);
    return () => {
      const at = this.resetListeners.indexOf(listener);
      if (at >= 0) this.resetListeners.splice(at, 1);
    };
  }

  /** PCI_EXP_DEVCAP_FLR is set. */
  get flrCapable(): boolean {
    return this.expPos !== 0 && (this.config.hwRead(this.expPos + PCI_EXP_DEVCAP, 4) & PCI_EXP_DEVCAP_FLR) !== 0;
  }

  /** Conventional PCI Advanced Features FLR with Transactions Pending, as Linux's af_flr requires. */
  get afFlrCapable(): boolean {
    if (!this.afPos) return false;
    const cap = this.config.hwRead(this.afPos + PCI_AF_CAP, 1);
    return (cap & PCI_AF_CAP_FLR) !== 0 && (cap & PCI_AF_CAP_TP) !== 0;
  }

  /** Offset of the PM capability, 0 without one. */
  get pmCap(): number {
    return this.pmPos;
  }

  /** Offset of the PCIe capability, 0 without one. */
  get pcieCap(): number {
    return this.expPos;
  }

  /** PCI_PM_CTRL_NO_SOFT_RESET: D3hot->D0 keeps state (no PM reset). */
  get noSoftReset(): boolean {
    return this.pmPos !== 0 && (this.config.hwRead(this.pmPos + PCI_PM_CTRL, 2) & PCI_PM_CTRL_NO_SOFT_RESET) !== 0;
  }

  get powerState(): PowerState {
    if (!this.pmPos) return 'D0';
    return POWER_STATES[this.config.hwRead(this.pmPos + PCI_PM_CTRL, 2) & PCI_PM_CTRL_STATE_MASK];
  }

  /** Whether a secondary bus reset above holds the function in reset. */
  get isHeldInReset(): boolean {
    return this.heldInReset;
  }

  /**
   * Function Level Reset the way software starts one: set BCR_FLR in DevCtl.
   * Throws NOT_SUPPORTED when DevCap does not advertise FLR (the write would
   * do nothing on such hardware).
   */
  flr(): void {
    if (!this.flrCapable) throw new SimError('NOT_SUPPORTED', `${this.name} cannot FLR: PCI_EXP_DEVCAP_FLR is clear`);
    const at = this.expPos + PCI_EXP_DEVCTL;
    this.config.write(at, 2, this.config.read(at, 2) | PCI_EXP_DEVCTL_BCR_FLR);
  }

  /** FLR through the Advanced Features capability (conventional PCI). */
  afFlr(): void {
    if (!this.afFlrCapable) throw new SimError('NOT_SUPPORTED', `${this.name} cannot FLR through Advanced Features`);
    this.config.write(this.afPos + PCI_AF_CTRL, 1, PCI_AF_CTRL_FLR);
  }

  /**
   * PM reset as Linux's pci_pm_reset() drives it: D0 -> D3hot -> D0, which
   * resets the function when NoSoftReset is clear.
   */
  pmReset(): void {
    if (!this.pmPos) throw new SimError('NOT_SUPPORTED', `${this.name} has no PM capability`);
    if (this.noSoftReset) {
      throw new SimError('NOT_SUPPORTED', `${this.name} sets PCI_PM_CTRL_NO_SOFT_RESET: D3hot->D0 does not reset it`);
    }
    if (this.powerState !== 'D0') throw new SimError('INVALID_ARGUMENT', `${this.name} is in ${this.powerState}, not D0`);
    const at = this.pmPos + PCI_PM_CTRL;
    const csr = this.config.read(at, 2) & ~PCI_PM_CTRL_STATE_MASK;
    this.config.write(at, 2, csr | PCI_D3hot);
    this.config.write(at, 2, csr | PCI_D0);
  }

  /** Firmware _RST. */
  acpiReset(): void {
    if (!this.platformResets.acpi) throw new SimError('NOT_SUPPORTED', `${this.name} has no ACPI _RST method`);
    this.resetToPowerOnState('acpi');
  }

  /** The reset a kernel quirk implements for this device. */
  deviceSpecificReset(): void {
    if (!this.platformResets.deviceSpecific) throw new SimError('NOT_SUPPORTED', `${this.name} has no device-specific reset`);
    this.resetToPowerOnState('device_specific');
  }

  /**
   * What the function does when a reset reaches it: config space back to its
   * power-on values (Command 0, BARs unassigned, interrupts disabled, VF
   * Enable clear), device memory and MSI-X state cleared. Sticky bits stay;
   * FLR additionally leaves Max_Payload_Size and Link Control alone (PCIe
   * Base spec, FLR). Restoring what the OS had programmed is the OS's job.
   */
  resetToPowerOnState(kind: ResetKind): void {
    const preserve: Array<{ offset: number; size: ConfigAccessSize; mask: number }> = [];
    if ((kind === 'flr' || kind === 'af_flr') && this.expPos) {
      preserve.push({ offset: this.expPos + PCI_EXP_DEVCTL, size: 2, mask: PCI_EXP_DEVCTL_PAYLOAD });
      preserve.push({ offset: this.expPos + PCI_EXP_LNKCTL, size: 2, mask: 0xffff });
    }
    this.config.resetToPowerOn(preserve);
    this.lastPowerState = PCI_D0;
    this.memory.clear();
    this.msix?.reset();
    this.resets++;
    this.lastResetKind = kind;
    for (const listener of this.resetListeners.slice()) listener({ fn: this, kind });
  }

  /**
   * Holds the function in reset (secondary bus reset asserted above it) or
   * releases it: while held it answers no config or memory requests.
   */
  setHeldInReset(held: boolean): void {
    this.heldInReset = held;
    this.config.setResponding(!held && this.present);
  }

  /**
   * Whether the function exists on the bus. A VF exists only while its PF
   * has VF Enable set and NumVFs covers it.
   */
  get present(): boolean {
    return this.presentFlag;
  }

  /** Set by the topology as VF Enable changes. */
  setPresent(present: boolean): void {
    this.presentFlag = present;
    this.config.setResponding(present && !this.heldInReset);
  }

  /* ---- BAR and ROM access ---- */

  /** Plugs in the model behind the BARs; null restores plain memory. */
  setBarHandler(handler: BarHandler | null): void {
    this.handler = handler ?? this.memory;
  }

  /**
   * Whether the function decodes accesses to `bar` now: it must be in D0,
   * not held in reset, with I/O or Memory Space enabled in Command (for a VF,
   * VF MSE in the PF's SR-IOV control). Otherwise the request ends in a
   * master abort: reads return all-ones and writes vanish.
   */
  decodes(bar: number): boolean {
    const spec = this.bars[bar];
    if (!spec || !this.config.isResponding || this.powerState !== 'D0') return false;
    if (this.virtfn) {
      return (this.virtfn.physfn.config.hwRead(this.pfSriovPos + PCI_SRIOV_CTRL, 2) & PCI_SRIOV_CTRL_MSE) !== 0;
    }
    const command = this.config.hwRead(PCI_COMMAND, 2);
    return (command & (spec.kind === 'io' ? PCI_COMMAND_IO : PCI_COMMAND_MEMORY)) !== 0;
  }

  readBar(bar: number, offset: bigint, size: BarAccessSize): bigint {
    this.checkBarAccess(bar, offset, size);
    if (!this.decodes(bar)) return (1n << BigInt(size * 8)) - 1n;
    const msix = this.msixTarget(bar, offset, size);
    if (msix) return msix.kind === 'table' ? this.msix!.readTable(msix.at, size) : this.msix!.readPba(msix.at, size);
    return this.handler.read(bar, offset, size);
  }

  writeBar(bar: number, offset: bigint, size: BarAccessSize, value: bigint): void {
    this.checkBarAccess(bar, offset, size);
    if (!this.decodes(bar)) return;
    const masked = value & ((1n << BigInt(size * 8)) - 1n);
    const msix = this.msixTarget(bar, offset, size);
    if (msix) {
      if (msix.kind === 'table') {
        this.msix!.writeTable(msix.at, size, masked);
        msixEntryWritten(this, Math.floor(msix.at / PCI_MSIX_ENTRY_SIZE));
      }
      return;
    }
    this.handler.write(bar, offset, size, masked);
  }

  /** Reads the expansion ROM; like hardware, only while the ROM BAR and Memory Space are enabled. */
  readRom(offset: bigint, size: BarAccessSize): bigint {
    const rom = this.rom;
    if (!rom) throw new SimError('NO_DEVICE', `${this.name} has no expansion ROM`);
    if (offset < 0n || offset + BigInt(size) > rom.size) {
      throw new SimError('OUT_OF_RANGE', `ROM offset 0x${offset.toString(16)} size ${size} is outside ${rom.size} bytes`);
    }
    const enabled =
      this.config.isResponding &&
      (this.config.hwRead(PCI_ROM_ADDRESS, 4) & PCI_ROM_ADDRESS_ENABLE) !== 0 &&
      (this.config.hwRead(PCI_COMMAND, 2) & PCI_COMMAND_MEMORY) !== 0;
    if (!enabled) return (1n << BigInt(size * 8)) - 1n;
    let value = 0n;
    for (let i = size - 1; i >= 0; i--) value = (value << 8n) | BigInt(rom.image[Number(offset) + i]);
    return value;
  }

  private checkBarAccess(bar: number, offset: bigint, size: BarAccessSize): void {
    const spec = Number.isInteger(bar) && bar >= 0 ? this.bars[bar] : undefined;
    if (!spec) throw new SimError('NO_DEVICE', `${this.name} does not implement BAR ${bar}`);
    if (size !== 1 && size !== 2 && size !== 4 && size !== 8) {
      throw new SimError('INVALID_ARGUMENT', `BAR access size ${size}; accesses are 1, 2, 4 or 8 bytes`);
    }
    if (offset < 0n || offset + BigInt(size) > spec.size) {
      throw new SimError('OUT_OF_RANGE', `BAR ${bar} offset 0x${offset.toString(16)} size ${size} is outside its ${spec.size} bytes`);
    }
    if (offset % BigInt(size) !== 0n) {
      throw new SimError('INVALID_ARGUMENT', `BAR ${bar} access of ${size} bytes at 0x${offset.toString(16)} is not naturally aligned`);
    }
  }

  private msixTarget(bar: number, offset: bigint, size: number): { kind: 'table' | 'pba'; at: number } | null {
    const layout = this.msixLayout;
    const msix = this.msix;
    if (!layout || !msix) return null;
    const end = offset + BigInt(size);
    if (bar === layout.tableBar) {
      const start = BigInt(layout.tableOffset);
      if (offset >= start && end <= start + BigInt(msix.size * PCI_MSIX_ENTRY_SIZE)) return { kind: 'table', at: Number(offset - start) };
    }
    if (bar === layout.pbaBar) {
      const start = BigInt(layout.pbaOffset);
      if (offset >= start && end <= start + BigInt(msix.pbaLength)) return { kind: 'pba', at: Number(offset - start) };
    }
    return null;
  }

  /* ---- config write side effects ---- */

  private onDevctlWrite(write: ConfigWrite): void {
    const field = writtenField(write, this.expPos + PCI_EXP_DEVCTL, 2);
    if (field && field.value & PCI_EXP_DEVCTL_BCR_FLR && this.flrCapable) this.resetToPowerOnState('flr');
  }

  private onAfCtrlWrite(write: ConfigWrite): void {
    const field = writtenField(write, this.afPos + PCI_AF_CTRL, 1);
    if (field && field.value & PCI_AF_CTRL_FLR && this.afFlrCapable) this.resetToPowerOnState('af_flr');
  }

  /**
   * PowerState writes: a state the function does not support is discarded
   * (PM spec: the write completes, the state stays); D3hot -> D0 with
   * NoSoftReset clear is an internal reset.
   */
  private onPmcsrWrite(): void {
    const at = this.pmPos + PCI_PM_CTRL;
    const requested = this.config.hwRead(at, 2) & PCI_PM_CTRL_STATE_MASK;
    const pmc = this.config.hwRead(this.pmPos + PCI_PM_PMC, 2);
    if ((requested === PCI_D1 && !(pmc & PCI_PM_CAP_D1)) || (requested === PCI_D2 && !(pmc & PCI_PM_CAP_D2))) {
      this.config.hwUpdate(at, 2, PCI_PM_CTRL_STATE_MASK, this.lastPowerState);
      return;
    }
    const previous = this.lastPowerState;
    this.lastPowerState = requested;
    if (previous === PCI_D3hot && requested === PCI_D0 && !this.noSoftReset) this.resetToPowerOnState('pm');
  }
}

/**
 * Whether a device the driver core hands a PCI driver is one of the
 * platform's functions. The driver core matches on the identity registers
 * alone (any PciBusDevice), so a driver that needs the hardware (config
 * space, BARs, resets) checks this before it uses the function.
 */
export function isPciFunction(dev: object): dev is PciFunction {
  return dev instanceof PciFunction;
}
