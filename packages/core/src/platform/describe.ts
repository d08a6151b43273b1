import type { IommuGroups } from './iommu-groups.js';
import type { PciFunction } from './pci-function.js';
import type { Platform } from './platform.js';
import { busResetRoute, hotResetScope, resetMethods } from './reset-scope.js';
import type { PciBus, Topology } from './topology.js';

/** Class names lspci prints for the classes descriptions commonly use (class >> 8). */
const CLASS_NAMES: Readonly<Record<number, string>> = {
  0x0106: 'SATA controller',
  0x0108: 'Non-Volatile memory controller',
  0x0200: 'Ethernet controller',
  0x0207: 'Infiniband controller',
  0x0300: 'VGA compatible controller',
  0x0302: '3D controller',
  0x0403: 'Audio device',
  0x0600: 'Host bridge',
  0x0601: 'ISA bridge',
  0x0604: 'PCI bridge',
  0x0880: 'System peripheral',
  0x0b40: 'Co-processor',
  0x0c03: 'USB controller',
  0x1200: 'Processing accelerators',
  0xff00: 'Unassigned class',
};

function className(classCode: number): string {
  const cls = classCode >> 8;
  return CLASS_NAMES[cls] ?? `Class ${cls.toString(16).padStart(4, '0')}`;
}

function hex(n: number, width: number): string {
  return n.toString(16).padStart(width, '0');
}

/**
 * The tree `lspci -tvnn`-style output draws: root buses as `-[dddd:bb]-`,
 * bridges as `dd.f-[secondary(-subordinate)]--`, functions as
 * `dd.f  vvvv:dddd name`. Connector characters follow lspci: `+-` for a
 * sibling with more to come, `\-` for the last, `|` continuing a branch.
 */
export function lspciTree(topology: Topology): string {
  const out: string[] = [];
  const line: string[] = [];

  // Like lspci's print_it(): emit the line, then turn it into the prefix of
  // the next one (branches that continue become '|', everything else ' ').
  const printIt = (end: number) => {
    out.push(line.slice(0, end).join(''));
    for (let i = 0; i < end; i++) line[i] = line[i] === '+' || line[i] === '|' ? '|' : ' ';
    line.length = end;
  };
  const put = (at: number, text: string): number => {
    for (let i = 0; i < text.length; i++) line[at + i] = text[i];
    return at + text.length;
  };

  const showDev = (fn: PciFunction, at: number) => {
    let p = put(at, `${hex(fn.bdf.device, 2)}.${fn.bdf.function}`);
    const secondary = fn.subordinate;
    if (secondary) {
      const sub = secondary.subordinateNumber;
      p = put(p, sub === secondary.number ? `-[${hex(secondary.number, 2)}]-` : `-[${hex(secondary.number, 2)}-${hex(sub, 2)}]-`);
      showBuses(busesBehind(secondary), p, false);
      return;
    }
    p = put(p, `  ${hex(fn.vendorId, 4)}:${hex(fn.deviceId, 4)} ${fn.label ?? className(fn.classCode)}`);
    printIt(p);
  };

  const showBus = (bus: PciBus, at: number) => {
    const devices = bus.devices;
    if (devices.length === 0) {
      printIt(at);
    } else if (devices.length === 1) {
      showDev(devices[0], put(at, '--'));
    } else {
      for (const [i, fn] of devices.entries()) {
        put(at, i === devices.length - 1 ? '\\-' : '+-');
        showDev(fn, at + 2);
      }
    }
  };

  const showBuses = (buses: readonly PciBus[], at: number, host: boolean) => {
    const p = put(at, '-');
    if (buses.length === 1) {
      showBus(buses[0], host ? put(p, `[${buses[0].name}]-`) : p);
      return;
    }
    for (const [i, bus] of buses.entries()) {
      const k = put(p, `${i === buses.length - 1 ? '\\-' : '+-'}[${bus.name}]-`);
      showBus(bus, k);
    }
  };

  // lspci lists 0000:00 last and the other top-level buses before it, newest
  // first; a VF bus hanging off a root bus is one of them.
  const roots = [...topology.rootBuses(), ...topology.rootBuses().flatMap((bus) => bus.children.filter((c) => c.isVirtual))].sort(
    (a, b) => a.domain - b.domain || a.number - b.number,
  );
  const first = roots.findIndex((bus) => bus.domain === 0 && bus.number === 0);
  const ordered = first >= 0 ? [...roots.filter((_, i) => i !== first).reverse(), roots[first]] : [...roots].reverse();
  showBuses(ordered, 0, true);
  return out.join('\n') + '\n';
}

/** The secondary bus of a bridge, plus any virtual VF buses hanging off it (lspci prepends those). */
function busesBehind(secondary: PciBus): PciBus[] {
  const virtual = secondary.children.filter((child) => child.isVirtual).reverse();
  return [...virtual, secondary];
}

/**
 * `find /sys/kernel/iommu_groups/ -type l` as people print it: one line per
 * function, by group number then address.
 */
export function iommuGroupListing(groups: IommuGroups): string {
  const lines: string[] = [];
  for (const group of groups.all()) {
    for (const fn of group.functions) lines.push(`/sys/kernel/iommu_groups/${group.id}/devices/${fn.name}`);
  }
  return lines.length ? lines.join('\n') + '\n' : '';
}

/**
 * Per function: what each reset mechanism offers and whom a vfio hot reset
 * would touch. Columns: FLR (DevCap), PM (D3hot->D0 resets: yes, NoSoftReset
 * set: nsr, no PM capability: -), BUS (how the `bus` method would go:
 * slot N, bridge, or -), the kernel's reset_method list, and the hot reset
 * scope (slot or bus, with the functions it reaches) or ENODEV.
 */
export function resetScopeTable(platform: Platform): string {
  const rows: string[][] = [['DEVICE', 'FLR', 'PM', 'BUS', 'RESET_METHOD', 'HOT_RESET']];
  for (const fn of platform.functions()) {
    const route = busResetRoute(fn);
    const scope = hotResetScope(fn);
    rows.push([
      fn.name,
      fn.flrCapable ? 'yes' : 'no',
      fn.pmCap === 0 ? '-' : fn.noSoftReset ? 'nsr' : 'yes',
      route ? (route.kind === 'slot' ? `slot ${route.slot.number}` : route.bridge.name) : '-',
      resetMethods(fn).join(' ') || '-',
      scope
        ? `${scope.kind === 'slot' ? `slot ${scope.slot!.number}` : `bus ${scope.bus.name}`}: ${scope.functions.map((f) => f.name).join(' ')}`
        : 'ENODEV',
    ]);
  }
  const widths = rows[0].map((_, col) => Math.max(...rows.map((row) => row[col].length)));
  return rows.map((row) => row.map((cell, col) => (col === row.length - 1 ? cell : cell.padEnd(widths[col]))).join('  ')).join('\n') + '\n';
}
