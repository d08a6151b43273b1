import { bdfFromDevfn, formatBdf, parseBdf, requesterId, type Bdf } from './bdf.js';
import { barSizeProblem, romSizeProblem, type BarSpec } from './bars.js';
import type { AcsParams } from './capabilities/acs.js';
import type { AerParams } from './capabilities/aer.js';
import type { MsixParams } from './capabilities/msix.js';
import type { PcieLink, PcieParams, PcieType } from './capabilities/pcie.js';
import type { PmParams } from './capabilities/pm.js';
import { planCapabilities } from './capabilities/placement.js';
import { capabilityBlueprints, configSpaceSize } from './function-config.js';
import type { BridgeKind, ExtendedCapabilitySpecs, FunctionSpec, StandardCapabilitySpecs, VfTemplate } from './function-spec.js';
import type { ParsedBridge, ParsedDevice, ParsedHostDescription } from './host-description.js';
import { PCI_CLASS_BRIDGE_PCI } from './pci-regs.js';

export type IssuePath = Array<string | number>;

/** A semantic problem in a host description, at the path of the offending field. */
export interface PlanProblem {
  readonly path: IssuePath;
  readonly message: string;
}

/** A function to build, and for a bridge the bus it leads to. */
export interface PlannedFunction {
  readonly name: string;
  readonly spec: FunctionSpec;
  readonly bridge: {
    readonly secondaryBus: number;
    readonly subordinateBus: number;
    /** The secondary bus is conventional PCI. */
    readonly conventional: boolean;
    readonly slot: { readonly number: number; readonly hotplug: boolean } | null;
  } | null;
}

/** A validated host description, ready to build. */
export interface PlatformPlan {
  readonly rootBuses: ReadonlyArray<{ readonly domain: number; readonly bus: number }>;
  readonly functions: readonly PlannedFunction[];
  readonly sriovAtBoot: ReadonlyArray<{ readonly bdf: Bdf; readonly numVfs: number }>;
}

type ProviderKind = 'root' | BridgeKind;

interface Entry {
  readonly path: IssuePath;
  readonly bdf: Bdf;
  readonly name: string;
  readonly bridge: ParsedBridge | null;
  readonly device: ParsedDevice | null;
}

interface Provider {
  readonly kind: ProviderKind;
  readonly entry: Entry | null;
}

/** Vendor and device IDs of the bridge each kind defaults to (real parts). */
const BRIDGE_IDS: Readonly<Record<BridgeKind, { vendorId: number; deviceId: number }>> = {
  'root-port': { vendorId: 0x8086, deviceId: 0x2030 }, // Intel Sky Lake-E PCIe Root Port A
  'upstream-port': { vendorId: 0x10b5, deviceId: 0x8747 }, // Broadcom/PLX PEX 8747
  'downstream-port': { vendorId: 0x10b5, deviceId: 0x8747 },
  'pcie-to-pci': { vendorId: 0x1b21, deviceId: 0x1080 }, // ASMedia ASM1083/1085
  'pci-bridge': { vendorId: 0x1011, deviceId: 0x0026 }, // DEC 21154
};

const BRIDGE_PCIE_TYPE: Readonly<Record<BridgeKind, PcieType | null>> = {
  'root-port': 'root-port',
  'upstream-port': 'upstream-port',
  'downstream-port': 'downstream-port',
  'pcie-to-pci': 'pcie-to-pci-bridge',
  'pci-bridge': null,
};

const KIND_NAME: Readonly<Record<ProviderKind, string>> = {
  'root': 'the root bus',
  'root-port': 'root port',
  'upstream-port': 'switch upstream port',
  'downstream-port': 'switch downstream port',
  'pcie-to-pci': 'PCIe-to-PCI bridge',
  'pci-bridge': 'PCI-to-PCI bridge',
};

type Placed = { offset?: number };
const DEFAULT_PM: Placed & { noSoftReset?: boolean; d1: boolean; d2: boolean; pme: string[] } = { d1: false, d2: false, pme: ['D0', 'D3hot', 'D3cold'] };
const DEFAULT_MSI: Placed & { vectors: 1 | 2 | 4 | 8 | 16 | 32; address64: boolean; perVectorMask: boolean } = { vectors: 1, address64: true, perVectorMask: true };
const DEFAULT_MSIX: Placed & { tableSize: number } = { tableSize: 8 };
const DEFAULT_PCIE: Placed & { type?: PcieType; version: 1 | 2; flr: boolean; maxPayload: number; link?: PcieLink } = { version: 2, flr: true, maxPayload: 256 };
const DEFAULT_AF: Placed & { flr: boolean; transactionsPending: boolean } = { flr: true, transactionsPending: true };
const DEFAULT_AER: Placed & { ecrc: boolean } = { ecrc: false };
const DEFAULT_ATS: Placed & { invalidateQueueDepth: number; pageAligned: boolean } = { invalidateQueueDepth: 0, pageAligned: true };
const DEFAULT_PASID: Placed & { width: number; exec: boolean; privileged: boolean } = { width: 20, exec: false, privileged: false };
const DEFAULT_PRI: Placed & { outstandingRequests: number; pasidRequired: boolean } = { outstandingRequests: 512, pasidRequired: false };
/** `acs: true`: the features a switch downstream port typically implements. */
const DEFAULT_ACS: AcsParams = { sv: true, tb: true, rr: true, cr: true, uf: true, ec: false, dt: false, egressBits: 0 };
const MSIX_WINDOW = 0x10000n;
const PME_BITS: Readonly<Record<string, number>> = { D0: 1, D1: 2, D2: 4, D3hot: 8, D3cold: 16 };

/** `devices[2].capabilities.msix.tableBar` */
export function formatIssuePath(path: ReadonlyArray<PropertyKey>): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out ? `.${String(part)}` : String(part);
  }
  return out || '(description)';
}

function hex2(n: number): string {
  return n.toString(16).padStart(2, '0');
}

/** Resolves a `true | false | object | undefined` capability toggle against its defaults. */
function resolve<T extends object>(value: boolean | T | undefined, defaults: T, defaultOn: boolean): T | null {
  if (value === false) return null;
  if (value === true) return defaults;
  if (value === undefined) return defaultOn ? defaults : null;
  return value;
}

/**
 * Checks a parsed description against the rules of PCI topology and turns
 * it into build specs. Returns every problem found; the plan only when
 * there are none.
 */
export function planHost(d: ParsedHostDescription): { plan: PlatformPlan | null; problems: PlanProblem[] } {
  const problems: PlanProblem[] = [];
  const report = (path: IssuePath, message: string) => problems.push({ path, message });
  const where = (entry: Entry) => `${formatIssuePath(entry.path)} (${entry.name})`;

  const entries: Entry[] = [
    ...d.bridges.map((bridge, i): Entry => {
      const bdf = parseBdf(bridge.bdf);
      return { path: ['bridges', i], bdf, name: formatBdf(bdf), bridge, device: null };
    }),
    ...d.devices.map((device, i): Entry => {
      const bdf = parseBdf(device.bdf);
      return { path: ['devices', i], bdf, name: formatBdf(bdf), bridge: null, device };
    }),
  ];

  // Addresses are unique.
  const byName = new Map<string, Entry>();
  for (const entry of entries) {
    const previous = byName.get(entry.name);
    if (previous) report([...entry.path, 'bdf'], `${entry.name} is already used by ${formatIssuePath(previous.path)}`);
    else byName.set(entry.name, entry);
  }
  const unique = [...byName.values()];

  // Root buses.
  const busKey = (domain: number, bus: number) => `${domain}:${bus}`;
  const roots: Array<{ domain: number; bus: number }> = [];
  if (d.rootBuses) {
    for (const [i, text] of d.rootBuses.entries()) {
      const [domain, bus] = text.split(':').map((part) => parseInt(part, 16));
      if (roots.some((r) => r.domain === domain && r.bus === bus)) report(['rootBuses', i], `root bus ${text} is listed twice`);
      else roots.push({ domain, bus });
    }
  } else {
    for (const domain of new Set([0, ...unique.map((e) => e.bdf.domain)])) roots.push({ domain, bus: 0 });
  }

  // Who provides each bus.
  const providers = new Map<string, Provider>();
  const providing = new Set<Entry>();
  for (const root of roots) providers.set(busKey(root.domain, root.bus), { kind: 'root', entry: null });
  for (const entry of unique) {
    const bridge = entry.bridge;
    if (!bridge) continue;
    const secondary = bridge.secondaryBus;
    if (secondary <= entry.bdf.bus) {
      report([...entry.path, 'secondaryBus'], `secondary bus 0x${hex2(secondary)} must be above the bridge's own bus 0x${hex2(entry.bdf.bus)}`);
      continue;
    }
    const existing = providers.get(busKey(entry.bdf.domain, secondary));
    if (existing) {
      report(
        [...entry.path, 'secondaryBus'],
        existing.entry
          ? `bus 0x${hex2(secondary)} is already the secondary bus of ${where(existing.entry)}`
          : `bus 0x${hex2(secondary)} is a root bus`,
      );
      continue;
    }
    providers.set(busKey(entry.bdf.domain, secondary), { kind: bridge.kind, entry });
    providing.add(entry);
  }
  const providerOf = (entry: Entry) => providers.get(busKey(entry.bdf.domain, entry.bdf.bus));
  const occupied = (bridge: Entry) => unique.some((e) => e.bdf.domain === bridge.bdf.domain && e.bdf.bus === bridge.bridge!.secondaryBus);

  // Placement: every function on a provided bus, where PCIe allows it.
  const placed = new Map<Entry, Provider>();
  for (const entry of unique) {
    const provider = providerOf(entry);
    if (!provider) {
      report(
        [...entry.path, 'bdf'],
        `bus 0x${hex2(entry.bdf.bus)} of ${entry.name} is neither a root bus nor the secondary bus of any bridge`,
      );
      continue;
    }
    placed.set(entry, provider);
    const above = provider.entry ? `${KIND_NAME[provider.kind]} ${provider.entry.name}` : KIND_NAME.root;
    if ((provider.kind === 'root-port' || provider.kind === 'downstream-port') && entry.bdf.device !== 0) {
      report(
        [...entry.path, 'bdf'],
        `${entry.name} is device 0x${hex2(entry.bdf.device)} below ${above}; a PCIe link carries only device 0`,
      );
    }
    const kind = entry.bridge?.kind;
    const allowed: Readonly<Record<BridgeKind, readonly ProviderKind[]>> = {
      'root-port': ['root'],
      'upstream-port': ['root-port', 'downstream-port'],
      'downstream-port': ['upstream-port'],
      'pcie-to-pci': ['root', 'root-port', 'downstream-port'],
      'pci-bridge': ['root', 'pcie-to-pci', 'pci-bridge'],
    };
    if (kind && !allowed[kind].includes(provider.kind)) {
      report([...entry.path, 'kind'], `a ${KIND_NAME[kind]} cannot sit on bus 0x${hex2(entry.bdf.bus)} below ${above}`);
    }
    if (!kind && provider.kind === 'upstream-port') {
      report([...entry.path, 'bdf'], `${entry.name} is on the internal bus of the switch below ${above}; only downstream ports sit there`);
    }
    if (entry.bridge?.slot && kind !== 'root-port' && kind !== 'downstream-port') {
      report([...entry.path, 'slot'], `only root and downstream ports implement slots, not a ${KIND_NAME[kind!]}`);
    }
  }

  // Multifunction devices: functions 1-7 exist only beside function 0.
  const devicesByKey = new Map<string, Entry[]>();
  for (const entry of unique) {
    const k = `${entry.bdf.domain}:${entry.bdf.bus}:${entry.bdf.device}`;
    devicesByKey.set(k, [...(devicesByKey.get(k) ?? []), entry]);
  }
  const multifunction = new Map<Entry, boolean>();
  for (const group of devicesByKey.values()) {
    const fn0 = group.find((e) => e.bdf.function === 0);
    const others = group.filter((e) => e.bdf.function !== 0);
    if (others.length > 0 && !fn0) {
      for (const other of others) {
        const zero = formatBdf({ ...other.bdf, function: 0 });
        report([...other.path, 'bdf'], `${other.name} has no function 0 (${zero}); Linux looks for functions 1-7 only when function 0 exists`);
      }
    }
    const explicit0 = fn0 ? (fn0.bridge ?? fn0.device)!.multifunction : undefined;
    if (others.length > 0 && fn0 && explicit0 === false) {
      report(
        [...fn0.path, 'multifunction'],
        `function 0 must set the multifunction bit: functions ${others.map((o) => o.bdf.function).join(', ')} exist`,
      );
    }
    for (const entry of group) multifunction.set(entry, (entry.bridge ?? entry.device)!.multifunction ?? group.length > 1);
  }

  // Per-function hardware.
  const planned: PlannedFunction[] = [];
  const sriovAtBoot: Array<{ bdf: Bdf; numVfs: number }> = [];
  const vfClaims: Array<{ entry: Entry; index: number; bdf: Bdf }> = [];
  for (const entry of unique) {
    const provider = placed.get(entry);
    if (!provider) continue;
    if (entry.bridge) {
      const spec = bridgeSpec(entry, entry.bridge, multifunction.get(entry)!, occupied(entry), report);
      planned.push({
        name: entry.name,
        spec,
        bridge: {
          secondaryBus: entry.bridge.secondaryBus,
          subordinateBus: entry.bridge.secondaryBus,
          conventional: entry.bridge.kind === 'pcie-to-pci' || entry.bridge.kind === 'pci-bridge',
          slot: entry.bridge.slot ?? null,
        },
      });
    } else {
      const spec = deviceSpec(entry, entry.device!, multifunction.get(entry)!, provider, report);
      planned.push({ name: entry.name, spec, bridge: null });
      const sriov = entry.device!.extendedCapabilities.sriov;
      if (sriov && spec.extendedCapabilities.sriov) {
        const params = spec.extendedCapabilities.sriov;
        const sriovPath = [...entry.path, 'extendedCapabilities', 'sriov'];
        if (sriov.numVfs > sriov.totalVfs) {
          report([...sriovPath, 'numVfs'], `${sriov.numVfs} VFs exceed TotalVFs ${sriov.totalVfs}`);
        } else if (sriov.numVfs > 0) {
          sriovAtBoot.push({ bdf: entry.bdf, numVfs: sriov.numVfs });
        }
        for (let index = 0; index < sriov.totalVfs; index++) {
          const rid = requesterId(entry.bdf) + params.vfOffset + params.vfStride * index;
          if (rid > 0xffff) {
            report([...sriovPath, 'totalVfs'], `VF ${index} would need routing ID 0x${rid.toString(16)}, beyond bus ff`);
            break;
          }
          vfClaims.push({ entry, index, bdf: bdfFromDevfn(entry.bdf.domain, rid >> 8, rid & 0xff) });
        }
      }
    }
  }

  // VF routing IDs collide with nothing and land on buses nobody else owns.
  const vfByName = new Map<string, { entry: Entry; index: number }>();
  for (const claim of vfClaims) {
    const sriovPath = [...claim.entry.path, 'extendedCapabilities', 'sriov', 'vfOffset'];
    const name = formatBdf(claim.bdf);
    const clash = byName.get(name);
    const vfClash = vfByName.get(name);
    if (clash) {
      report(sriovPath, `VF ${claim.index} would be at ${name}, which ${formatIssuePath(clash.path)} already uses`);
      continue;
    }
    if (vfClash) {
      report(sriovPath, `VF ${claim.index} would be at ${name}, which VF ${vfClash.index} of ${where(vfClash.entry)} already uses`);
      continue;
    }
    vfByName.set(name, claim);
    if (claim.bdf.bus !== claim.entry.bdf.bus) {
      const owner = providers.get(busKey(claim.bdf.domain, claim.bdf.bus));
      if (owner) {
        report(
          sriovPath,
          `VF ${claim.index} at ${name} lands on bus 0x${hex2(claim.bdf.bus)}, which is ${owner.entry ? `the secondary bus of ${where(owner.entry)}` : 'a root bus'}`,
        );
      }
    }
  }

  // Bus ranges: each bridge's range covers what is behind it and nests.
  const bridgeEntries = unique.filter((e) => providing.has(e) && placed.has(e));
  const ranges = new Map<Entry, { start: number; end: number }>();
  const children = (bridge: Entry) => bridgeEntries.filter((e) => e.bdf.domain === bridge.bdf.domain && e.bdf.bus === bridge.bridge!.secondaryBus);
  const rangeOf = (bridge: Entry): { start: number; end: number } => {
    const known = ranges.get(bridge);
    if (known) return known;
    const start = bridge.bridge!.secondaryBus;
    let end = start;
    for (const child of children(bridge)) if (child.bdf.bus > bridge.bdf.bus) end = Math.max(end, rangeOf(child).end);
    for (const claim of vfClaims) {
      if (claim.entry.bdf.domain === bridge.bdf.domain && claim.entry.bdf.bus === start) end = Math.max(end, claim.bdf.bus);
    }
    const range = { start, end };
    ranges.set(bridge, range);
    return range;
  };
  const ancestors = (entry: Entry): Set<Entry> => {
    const out = new Set<Entry>();
    for (let provider = placed.get(entry); provider?.entry && !out.has(provider.entry); provider = placed.get(provider.entry)) {
      out.add(provider.entry);
    }
    return out;
  };
  for (const [i, a] of bridgeEntries.entries()) {
    const ra = rangeOf(a);
    for (const b of bridgeEntries.slice(i + 1)) {
      if (a.bdf.domain !== b.bdf.domain) continue;
      const rb = rangeOf(b);
      if (rb.start > ra.end || ra.start > rb.end) continue;
      if (ancestors(a).has(b) || ancestors(b).has(a)) continue;
      report(
        [...b.path, 'secondaryBus'],
        `buses ${hex2(rb.start)}-${hex2(rb.end)} behind ${b.name} overlap buses ${hex2(ra.start)}-${hex2(ra.end)} behind ${where(a)}`,
      );
    }
    for (const root of roots) {
      if (root.domain === a.bdf.domain && root.bus >= ra.start && root.bus <= ra.end) {
        report([...a.path, 'secondaryBus'], `buses ${hex2(ra.start)}-${hex2(ra.end)} behind ${a.name} include root bus 0x${hex2(root.bus)}`);
      }
    }
    for (const claim of vfClaims) {
      if (claim.bdf.domain !== a.bdf.domain || claim.bdf.bus === claim.entry.bdf.bus) continue;
      if (claim.bdf.bus < ra.start || claim.bdf.bus > ra.end || ancestors(claim.entry).has(a)) continue;
      report(
        [...claim.entry.path, 'extendedCapabilities', 'sriov', 'vfOffset'],
        `VF ${claim.index} lands on bus 0x${hex2(claim.bdf.bus)}, inside buses ${hex2(ra.start)}-${hex2(ra.end)} behind ${where(a)}`,
      );
    }
  }

  if (problems.length > 0) return { plan: null, problems };
  // No IOMMU translates for a bridge means none for anything behind it either.
  const functions = planned.map((p): PlannedFunction => {
    const entry = byName.get(p.name)!;
    const noIommu = p.spec.noIommu || [...ancestors(entry)].some((a) => a.bridge!.noIommu);
    const spec = noIommu === p.spec.noIommu ? p.spec : { ...p.spec, noIommu };
    return { ...p, spec, bridge: p.bridge ? { ...p.bridge, subordinateBus: rangeOf(entry).end } : null };
  });
  return { plan: { rootBuses: roots, functions, sriovAtBoot }, problems };
}

type Report = (path: IssuePath, message: string) => void;

function pmParams(pm: { noSoftReset?: boolean; d1: boolean; d2: boolean; pme: string[]; offset?: number } | null, pcie: boolean): PmParams | undefined {
  if (!pm) return undefined;
  return {
    d1: pm.d1,
    d2: pm.d2,
    // Modern PCIe functions keep their state across D3hot; the default follows that.
    noSoftReset: pm.noSoftReset ?? pcie,
    pmeSupport: pm.pme.reduce((bits, state) => bits | PME_BITS[state], 0),
    offset: pm.offset,
  };
}

function aerParams(aer: typeof DEFAULT_AER | null, root: boolean): AerParams | undefined {
  return aer ? { root, ecrc: aer.ecrc, offset: aer.offset } : undefined;
}

/** Validates BAR entries; returns the valid ones and whether all were. */
function barSpecs(
  bars: ReadonlyArray<{ index: number; type: 'mem32' | 'mem64' | 'io'; size: bigint; prefetchable: boolean }>,
  path: IssuePath,
  count: number,
  report: Report,
  memoryOnly: string | null,
): { bars: BarSpec[]; valid: boolean } {
  const out: BarSpec[] = [];
  let valid = true;
  const registers = new Map<number, number>();
  for (const [i, bar] of bars.entries()) {
    const at = [...path, i];
    let ok = true;
    if (bar.index >= count) {
      report([...at, 'index'], `BAR ${bar.index} does not exist; this header has BARs 0-${count - 1}`);
      valid = false;
      continue;
    }
    if (bar.type === 'mem64' && bar.index === count - 1) {
      report([...at, 'index'], `a 64-bit BAR at index ${bar.index} has no BAR ${bar.index + 1} to hold its upper half`);
      ok = false;
    }
    const regs = bar.type === 'mem64' ? [bar.index, bar.index + 1] : [bar.index];
    for (const reg of regs) {
      const other = registers.get(reg);
      if (other !== undefined && ok) {
        report([...at, 'index'], `BAR register ${reg} is already taken by ${formatIssuePath([...path, other])}`);
        ok = false;
      }
    }
    if (memoryOnly && bar.type === 'io') {
      report([...at, 'type'], memoryOnly);
      ok = false;
    }
    const sizeProblem = barSizeProblem(bar.type, bar.size);
    if (sizeProblem) {
      report([...at, 'size'], sizeProblem);
      ok = false;
    }
    if (bar.type === 'io' && bar.prefetchable) {
      report([...at, 'prefetchable'], 'I/O BARs are never prefetchable');
      ok = false;
    }
    if (!ok) {
      valid = false;
      continue;
    }
    for (const reg of regs) registers.set(reg, i);
    out.push({ index: bar.index, kind: bar.type, size: bar.size, prefetchable: bar.prefetchable });
  }
  return { bars: out, valid };
}

/** Places the MSI-X table and PBA (defaults: table at half, PBA at three quarters of the first 64 KiB of the first memory BAR). */
function msixParams(
  msix: { tableSize: number; tableBar?: number; tableOffset?: number; pbaBar?: number; pbaOffset?: number; offset?: number },
  bars: readonly BarSpec[],
  path: IssuePath,
  report: Report,
): MsixParams | undefined {
  const firstMemory = bars.filter((b) => b.kind !== 'io').sort((a, b) => a.index - b.index)[0];
  const tableBar = msix.tableBar ?? firstMemory?.index;
  if (tableBar === undefined) {
    report([...path, 'tableBar'], 'no memory BAR can hold the MSI-X table; add one to bars');
    return undefined;
  }
  const pbaBar = msix.pbaBar ?? tableBar;
  const barFor = (index: number, field: string): BarSpec | undefined => {
    const bar = bars.find((b) => b.index === index);
    if (!bar) report([...path, field], `BAR ${index} does not exist`);
    else if (bar.kind === 'io') report([...path, field], `BAR ${index} is an I/O BAR; MSI-X structures live in memory space`);
    else return bar;
    return undefined;
  };
  const table = barFor(tableBar, 'tableBar');
  const pba = msix.pbaBar === undefined || msix.pbaBar === tableBar ? table : barFor(pbaBar, 'pbaBar');
  if (!table || !pba) return undefined;

  const window = table.size < MSIX_WINDOW ? table.size : MSIX_WINDOW;
  const tableLength = msix.tableSize * 16;
  const pbaLength = Math.ceil(msix.tableSize / 64) * 8;
  const tableOffset = msix.tableOffset ?? Number(window / 2n);
  const pbaOffset = msix.pbaOffset ?? (pbaBar === tableBar ? tableOffset + Math.max(Number(window / 4n), tableLength) : 0);
  let ok = true;
  for (const [field, offset] of [['tableOffset', tableOffset], ['pbaOffset', pbaOffset]] as const) {
    if (offset % 8 !== 0) {
      report([...path, field], `0x${offset.toString(16)} is not QWORD aligned`);
      ok = false;
    }
  }
  const tableFits = BigInt(tableOffset + tableLength) <= table.size;
  if (!tableFits) {
    report(
      [...path, msix.tableOffset === undefined ? 'tableSize' : 'tableOffset'],
      `the table (${msix.tableSize} entries, ${tableLength} bytes at 0x${tableOffset.toString(16)}) does not fit in BAR ${tableBar} of ${table.size} bytes`,
    );
    ok = false;
  }
  // A PBA placed after an oversized table shares its problem; only a pinned one gets its own report.
  if ((tableFits || msix.pbaOffset !== undefined) && BigInt(pbaOffset + pbaLength) > pba.size) {
    report([...path, 'pbaOffset'], `the PBA (${pbaLength} bytes at 0x${pbaOffset.toString(16)}) does not fit in BAR ${pbaBar} of ${pba.size} bytes`);
    ok = false;
  }
  if (ok && pbaBar === tableBar && pbaOffset < tableOffset + tableLength && tableOffset < pbaOffset + pbaLength) {
    report([...path, 'pbaOffset'], `the PBA at 0x${pbaOffset.toString(16)} overlaps the table at 0x${tableOffset.toString(16)}`);
    ok = false;
  }
  return ok ? { tableSize: msix.tableSize, tableBar, tableOffset, pbaBar, pbaOffset, offset: msix.offset } : undefined;
}

/** Checks the capability layout fits, naming the capability's offset field otherwise. */
function checkLayout(caps: StandardCapabilitySpecs, ext: ExtendedCapabilitySpecs, path: IssuePath, report: Report): void {
  const blueprints = capabilityBlueprints(caps, ext);
  const planned = planCapabilities(blueprints, configSpaceSize(caps));
  if ('problem' in planned) {
    const bp = blueprints[planned.problem.index];
    const section = bp.kind === 'standard' ? 'capabilities' : 'extendedCapabilities';
    report([...path, section, bp.name, 'offset'], planned.problem.message);
  }
}

function bridgeSpec(entry: Entry, b: ParsedBridge, multifunction: boolean, occupied: boolean, report: Report): FunctionSpec {
  const ids = BRIDGE_IDS[b.kind];
  const pcieType = BRIDGE_PCIE_TYPE[b.kind];
  const capsIn = b.capabilities;
  const isPort = b.kind === 'root-port' || b.kind === 'downstream-port';
  if (!pcieType && capsIn.pcie) report([...entry.path, 'capabilities', 'pcie'], 'a conventional PCI-to-PCI bridge has no PCIe capability');
  const extIn = b.extendedCapabilities;
  if (!pcieType && (extIn.aer || extIn.acs)) {
    report([...entry.path, 'extendedCapabilities', extIn.aer ? 'aer' : 'acs'], 'a conventional PCI-to-PCI bridge has 256 bytes of config space and no extended capabilities');
  }
  if (b.kind === 'pcie-to-pci' && extIn.acs) {
    report([...entry.path, 'extendedCapabilities', 'acs'], 'PCIe-to-PCI bridges never implement ACS (PCIe spec 6.12.1)');
  }

  const defaultLink: PcieLink = b.kind === 'pcie-to-pci' ? { speed: 1, width: 1 } : { speed: 3, width: 16 };
  const pcieIn = capsIn.pcie;
  const pcie: PcieParams | undefined = pcieType
    ? {
        type: pcieType,
        version: pcieIn?.version ?? 2,
        flr: false,
        maxPayload: pcieIn?.maxPayload ?? 256,
        link: pcieIn?.link ?? defaultLink,
        slot: isPort && b.slot ? { number: b.slot.number, hotplug: b.slot.hotplug, occupied } : null,
        portNumber: entry.bdf.device,
        linkActive: occupied,
        offset: pcieIn?.offset,
      }
    : undefined;
  const caps: StandardCapabilitySpecs = {
    pm: pmParams(resolve(capsIn.pm, DEFAULT_PM, true), pcieType !== null),
    msi: resolve(capsIn.msi, DEFAULT_MSI, pcieType !== null) ?? undefined,
    pcie,
  };
  const acs = resolve<AcsParams>(extIn.acs, DEFAULT_ACS, false);
  const ext: ExtendedCapabilitySpecs = pcieType
    ? {
        aer: aerParams(resolve(extIn.aer, DEFAULT_AER, true), b.kind === 'root-port'),
        acs: acs && b.kind !== 'pcie-to-pci' ? acs : undefined,
      }
    : {};
  const { bars } = barSpecs(b.bars, [...entry.path, 'bars'], 2, report, null);
  checkLayout(caps, ext, entry.path, report);
  return {
    bdf: entry.bdf,
    label: b.label ?? null,
    vendorId: b.vendorId ?? ids.vendorId,
    deviceId: b.deviceId ?? ids.deviceId,
    revision: b.revision,
    classCode: PCI_CLASS_BRIDGE_PCI << 8,
    subsystemVendorId: 0,
    subsystemId: 0,
    interruptPin: isPort ? 1 : 0,
    multifunction,
    bridge: b.kind,
    bars,
    romSize: null,
    capabilities: caps,
    extendedCapabilities: ext,
    resets: { acpi: false, deviceSpecific: false },
    noIommu: b.noIommu,
    vf: null,
  };
}

function deviceSpec(entry: Entry, dev: ParsedDevice, multifunction: boolean, provider: Provider, report: Report): FunctionSpec {
  const path = entry.path;
  const conventionalBus = provider.kind === 'pcie-to-pci' || provider.kind === 'pci-bridge';
  const pcieBus = provider.kind === 'root-port' || provider.kind === 'downstream-port';
  const capsIn = dev.capabilities;
  const extIn = dev.extendedCapabilities;

  if (conventionalBus && capsIn.pcie) {
    report([...path, 'capabilities', 'pcie'], `${entry.name} is on conventional PCI bus 0x${hex2(entry.bdf.bus)}; it cannot have a PCIe capability`);
  }
  if (pcieBus && capsIn.pcie === false) {
    report([...path, 'capabilities', 'pcie'], `${entry.name} is below a PCIe port and so is a PCI Express function; it needs the PCIe capability`);
  }
  const pcieIn = conventionalBus ? null : resolve(capsIn.pcie, DEFAULT_PCIE, true);
  const type: PcieType = pcieIn?.type ?? (provider.kind === 'root' ? 'rc-endpoint' : 'endpoint');
  if (pcieIn?.type === 'rc-endpoint' && provider.kind !== 'root') {
    report([...path, 'capabilities', 'pcie', 'type'], 'a Root Complex Integrated Endpoint sits on a root bus');
  }
  const link: PcieLink | null = type === 'rc-endpoint' ? null : (pcieIn?.link ?? { speed: 3, width: 8 });
  const pcie: PcieParams | undefined = pcieIn
    ? {
        type,
        version: pcieIn.version,
        flr: pcieIn.flr,
        maxPayload: pcieIn.maxPayload,
        link,
        slot: null,
        portNumber: 0,
        linkActive: false,
        offset: pcieIn.offset,
      }
    : undefined;

  if (!pcie) {
    for (const name of ['aer', 'acs', 'ats', 'pasid', 'pri', 'sriov'] as const) {
      if (extIn[name]) {
        report(
          [...path, 'extendedCapabilities', name],
          `${entry.name} is a conventional PCI function with 256 bytes of config space; extended capabilities need PCIe`,
        );
      }
    }
  }

  // MSI-X placement is only checked against BARs that are themselves valid.
  const { bars, valid: barsValid } = barSpecs(dev.bars, [...path, 'bars'], 6, report, null);
  if (dev.romSize !== undefined) {
    const problem = romSizeProblem(dev.romSize);
    if (problem) report([...path, 'romSize'], problem);
  }
  const msixIn = resolve(capsIn.msix, DEFAULT_MSIX, pcie !== undefined);
  const caps: StandardCapabilitySpecs = {
    pm: pmParams(resolve(capsIn.pm, DEFAULT_PM, true), pcie !== undefined),
    msi: resolve(capsIn.msi, DEFAULT_MSI, pcie !== undefined) ?? undefined,
    pcie,
    msix: msixIn && barsValid ? msixParams(msixIn, bars, [...path, 'capabilities', 'msix'], report) : undefined,
    af: resolve(capsIn.af, DEFAULT_AF, false) ?? undefined,
  };
  const ext: ExtendedCapabilitySpecs = pcie
    ? {
        aer: aerParams(resolve(extIn.aer, DEFAULT_AER, true), false),
        acs: resolve<AcsParams>(extIn.acs, DEFAULT_ACS, false) ?? undefined,
        ats: resolve(extIn.ats, DEFAULT_ATS, false) ?? undefined,
        pasid: resolve(extIn.pasid, DEFAULT_PASID, false) ?? undefined,
        pri: resolve(extIn.pri, DEFAULT_PRI, false) ?? undefined,
        sriov: undefined,
      }
    : {};

  let vf: VfTemplate | null = null;
  let sriovSpec: ExtendedCapabilitySpecs['sriov'];
  const sriov = extIn.sriov;
  if (sriov && pcie) {
    const sriovPath = [...path, 'extendedCapabilities', 'sriov'];
    const { bars: vfBars, valid: vfBarsValid } = barSpecs(sriov.vfBars, [...sriovPath, 'vfBars'], 6, report, 'VF BARs map memory space only');
    const template = sriov.vf;
    const vfPath = [...sriovPath, 'vf'];
    if (template.capabilities.pcie === false) {
      report([...vfPath, 'capabilities', 'pcie'], 'a VF is a PCI Express function; it needs the PCIe capability');
    }
    const vfPcieIn = resolve(template.capabilities.pcie, DEFAULT_PCIE, true);
    const vfMsixIn = resolve(template.capabilities.msix, DEFAULT_MSIX, true);
    const vfCaps: StandardCapabilitySpecs = {
      pm: pmParams(resolve(template.capabilities.pm, DEFAULT_PM, false), true),
      msi: resolve(template.capabilities.msi, DEFAULT_MSI, false) ?? undefined,
      pcie: vfPcieIn
        ? {
            type: vfPcieIn.type ?? type,
            version: vfPcieIn.version,
            flr: vfPcieIn.flr,
            maxPayload: vfPcieIn.maxPayload,
            link: (vfPcieIn.type ?? type) === 'rc-endpoint' ? null : (vfPcieIn.link ?? link),
            slot: null,
            portNumber: 0,
            linkActive: false,
            offset: vfPcieIn.offset,
          }
        : undefined,
      msix: vfMsixIn && vfBarsValid ? msixParams(vfMsixIn, vfBars, [...vfPath, 'capabilities', 'msix'], report) : undefined,
      af: resolve(template.capabilities.af, DEFAULT_AF, false) ?? undefined,
    };
    const vfExt: ExtendedCapabilitySpecs = {
      aer: aerParams(resolve(template.extendedCapabilities.aer, DEFAULT_AER, false), false),
      ats: resolve(template.extendedCapabilities.ats, DEFAULT_ATS, false) ?? undefined,
      pasid: resolve(template.extendedCapabilities.pasid, DEFAULT_PASID, false) ?? undefined,
      pri: resolve(template.extendedCapabilities.pri, DEFAULT_PRI, false) ?? undefined,
    };
    checkLayout(vfCaps, vfExt, vfPath, report);
    vf = {
      label: template.label ?? dev.label ?? null,
      classCode: template.classCode ?? dev.classCode,
      revision: template.revision ?? dev.revision,
      subsystemVendorId: template.subsystemVendorId ?? dev.subsystemVendorId ?? dev.vendorId,
      subsystemId: template.subsystemId ?? dev.subsystemId ?? dev.deviceId,
      capabilities: vfCaps,
      extendedCapabilities: vfExt,
      resets: template.resets,
    };
    sriovSpec = {
      initialVfs: sriov.totalVfs,
      totalVfs: sriov.totalVfs,
      vfOffset: sriov.vfOffset ?? 8 - entry.bdf.function,
      vfStride: sriov.vfStride,
      vfDeviceId: sriov.vfDeviceId ?? dev.deviceId,
      supportedPageSizes: sriov.supportedPageSizes,
      functionDependencyLink: entry.bdf.function,
      vfBars,
      offset: sriov.offset,
    };
  }
  const extWithSriov: ExtendedCapabilitySpecs = sriovSpec ? { ...ext, sriov: sriovSpec } : ext;
  checkLayout(caps, extWithSriov, path, report);

  return {
    bdf: entry.bdf,
    label: dev.label ?? null,
    vendorId: dev.vendorId,
    deviceId: dev.deviceId,
    revision: dev.revision,
    classCode: dev.classCode,
    subsystemVendorId: dev.subsystemVendorId ?? dev.vendorId,
    subsystemId: dev.subsystemId ?? dev.deviceId,
    interruptPin: dev.interruptPin,
    multifunction,
    bridge: null,
    bars,
    romSize: dev.romSize ?? null,
    capabilities: caps,
    extendedCapabilities: extWithSriov,
    resets: dev.resets,
    noIommu: dev.noIommu,
    vf,
  };
}
