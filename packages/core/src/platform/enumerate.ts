import { SimError } from '../errors/index.js';
import { findExtCapability } from './capabilities/layout.js';
import type { PciFunction } from './pci-function.js';
import {
  PCI_ACS_CAP,
  PCI_ACS_CR,
  PCI_ACS_CTRL,
  PCI_ACS_RR,
  PCI_ACS_SV,
  PCI_ACS_UF,
  PCI_BASE_ADDRESS_0,
  PCI_COMMAND,
  PCI_COMMAND_IO,
  PCI_COMMAND_MASTER,
  PCI_COMMAND_MEMORY,
  PCI_EXT_CAP_ID_ACS,
  PCI_EXT_CAP_ID_SRIOV,
  PCI_IO_BASE,
  PCI_IO_LIMIT,
  PCI_MEMORY_BASE,
  PCI_MEMORY_LIMIT,
  PCI_PREF_BASE_UPPER32,
  PCI_PREF_LIMIT_UPPER32,
  PCI_PREF_MEMORY_BASE,
  PCI_PREF_MEMORY_LIMIT,
  PCI_PRIMARY_BUS,
  PCI_ROM_ADDRESS,
  PCI_SECONDARY_BUS,
  PCI_SRIOV_BAR,
  PCI_SUBORDINATE_BUS,
} from './pci-regs.js';
import type { PciBus, Topology } from './topology.js';

type Pool = 'io' | 'mem' | 'pref';

/** Address space each root bus hands out: 16-bit I/O, MMIO below 4 GiB, 64-bit prefetchable MMIO. */
const WINDOWS: Readonly<Record<Pool, { base: bigint; limit: bigint; granule: bigint }>> = {
  io: { base: 0x1000n, limit: 0x10000n, granule: 0x1000n },
  mem: { base: 0x80000000n, limit: 0xfec00000n, granule: 0x100000n },
  pref: { base: 0x4000000000n, limit: 0x10000000000000n, granule: 0x100000n },
};

interface Request {
  readonly size: bigint;
  readonly align: bigint;
  readonly assign: (address: bigint) => void;
}

interface Sized {
  readonly requests: Record<Pool, Request[]>;
}

/**
 * What firmware and the Linux PCI core leave behind after boot, applied to
 * power-on hardware: bridges carry their bus numbers, every BAR, ROM and
 * SR-IOV VF BAR has an address inside its bridges' windows, bridges forward
 * memory and I/O, and ACS is enabled the way pci_std_enable_acs() does when
 * an IOMMU asked for it. Endpoints keep Command at 0: drivers enable them.
 */
export function enumeratePlatform(topology: Topology): void {
  for (const bus of topology.buses()) {
    const bridge = bus.self;
    if (!bridge) continue;
    bridge.config.write8(PCI_PRIMARY_BUS, bridge.bus.number);
    bridge.config.write8(PCI_SECONDARY_BUS, bus.number);
    bridge.config.write8(PCI_SUBORDINATE_BUS, bus.subordinateNumber);
  }

  const cursor: Record<Pool, bigint> = { io: WINDOWS.io.base, mem: WINDOWS.mem.base, pref: WINDOWS.pref.base };
  for (const root of topology.rootBuses()) {
    const sized = sizeBus(root);
    for (const pool of ['io', 'mem', 'pref'] as const) {
      const { total, align, placed } = pack(sized.requests[pool]);
      const base = roundUp(cursor[pool], align);
      if (base + total > WINDOWS[pool].limit) {
        throw new SimError(
          'INVALID_HOST_DESCRIPTION',
          `devices: the ${pool} resources of root bus ${root.name} need ${total} bytes, more than the host's ${pool} window`,
        );
      }
      for (const { request, offset } of placed) request.assign(base + offset);
      cursor[pool] = base + total;
    }
  }

  const iommuPresent = topology.functions().some((fn) => !fn.noIommu);
  for (const fn of topology.functions()) {
    if (fn.isBridge) fn.config.write16(PCI_COMMAND, PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
    if (iommuPresent) enableAcs(fn);
  }
}

/** pci_std_enable_acs(): Source Validation, Request/Completion Redirect, Upstream Forwarding where implemented. */
function enableAcs(fn: PciFunction): void {
  const pos = findExtCapability(fn.config, PCI_EXT_CAP_ID_ACS);
  if (!pos) return;
  const cap = fn.config.read(pos + PCI_ACS_CAP, 2);
  const ctrl = fn.config.read(pos + PCI_ACS_CTRL, 2);
  fn.config.write(pos + PCI_ACS_CTRL, 2, ctrl | (cap & (PCI_ACS_SV | PCI_ACS_RR | PCI_ACS_CR | PCI_ACS_UF)));
}

/** Resources requested on a bus: device BARs, ROMs, VF BARs, and the windows of bridges sized from below. */
function sizeBus(bus: PciBus): Sized {
  const requests: Record<Pool, Request[]> = { io: [], mem: [], pref: [] };
  for (const fn of bus.devices) {
    for (const bar of fn.bars) {
      if (!bar) continue;
      requests[poolOf(bar.kind, bar.prefetchable)].push({
        size: bar.size,
        align: bar.size,
        assign: (address) => {
          bar.address = address;
          writeBar(fn, PCI_BASE_ADDRESS_0 + bar.index * 4, bar.kind === 'mem64', address);
        },
      });
    }
    const rom = fn.rom;
    if (rom) {
      requests.mem.push({
        size: rom.size,
        align: rom.size,
        assign: (address) => {
          rom.address = address;
          fn.config.write32(PCI_ROM_ADDRESS, Number(address & 0xfffff800n));
        },
      });
    }
    const sriov = findExtCapability(fn.config, PCI_EXT_CAP_ID_SRIOV);
    for (const bar of fn.iovBars) {
      if (!bar) continue;
      // The VF BAR resource is TotalVFs copies of one VF's BAR, aligned like one.
      const perVf = fn.spec.extendedCapabilities.sriov!.vfBars.find((b) => b.index === bar.index)!;
      requests[poolOf(bar.kind, bar.prefetchable)].push({
        size: bar.size,
        align: perVf.size,
        assign: (address) => {
          bar.address = address;
          writeBar(fn, sriov + PCI_SRIOV_BAR + bar.index * 4, bar.kind === 'mem64', address);
        },
      });
    }
    const child = fn.subordinate;
    if (child) {
      const below = sizeBus(child);
      for (const pool of ['io', 'mem', 'pref'] as const) {
        const { total, align } = pack(below.requests[pool]);
        if (total === 0n) {
          disableWindow(fn, pool);
          continue;
        }
        const granule = WINDOWS[pool].granule;
        const size = roundUp(total, granule);
        requests[pool].push({
          size,
          align: align > granule ? align : granule,
          assign: (address) => {
            programWindow(fn, pool, address, address + size - 1n);
            const { placed } = pack(below.requests[pool]);
            for (const { request, offset } of placed) request.assign(address + offset);
          },
        });
      }
    }
  }
  return { requests };
}

/** 64-bit prefetchable BARs go in the prefetchable window; every other memory BAR below 4 GiB. */
function poolOf(kind: 'mem32' | 'mem64' | 'io', prefetchable: boolean): Pool {
  if (kind === 'io') return 'io';
  return kind === 'mem64' && prefetchable ? 'pref' : 'mem';
}

/** Largest alignment first, each at its alignment: the order pbus_size_mem() packs in. */
function pack(requests: readonly Request[]): { total: bigint; align: bigint; placed: Array<{ request: Request; offset: bigint }> } {
  const sorted = [...requests].sort((a, b) => (a.align === b.align ? 0 : a.align > b.align ? -1 : 1));
  let offset = 0n;
  let align = 1n;
  const placed: Array<{ request: Request; offset: bigint }> = [];
  for (const request of sorted) {
    offset = roundUp(offset, request.align);
    placed.push({ request, offset });
    offset += request.size;
    if (request.align > align) align = request.align;
  }
  return { total: offset, align, placed };
}

function roundUp(value: bigint, align: bigint): bigint {
  return ((value + align - 1n) / align) * align;
}

function writeBar(fn: PciFunction, register: number, is64: boolean, address: bigint): void {
  fn.config.write32(register, Number(address & 0xffffffffn));
  if (is64) fn.config.write32(register + 4, Number(address >> 32n));
}

function programWindow(bridge: PciFunction, pool: Pool, base: bigint, limit: bigint): void {
  const c = bridge.config;
  if (pool === 'io') {
    c.write8(PCI_IO_BASE, Number((base >> 8n) & 0xf0n));
    c.write8(PCI_IO_LIMIT, Number((limit >> 8n) & 0xf0n));
  } else if (pool === 'mem') {
    c.write16(PCI_MEMORY_BASE, Number((base >> 16n) & 0xfff0n));
    c.write16(PCI_MEMORY_LIMIT, Number((limit >> 16n) & 0xfff0n));
  } else {
    c.write16(PCI_PREF_MEMORY_BASE, Number((base >> 16n) & 0xfff0n));
    c.write16(PCI_PREF_MEMORY_LIMIT, Number((limit >> 16n) & 0xfff0n));
    c.write32(PCI_PREF_BASE_UPPER32, Number(base >> 32n));
    c.write32(PCI_PREF_LIMIT_UPPER32, Number(limit >> 32n));
  }
}

/** A closed window has base above limit, as Linux programs an unused one. */
function disableWindow(bridge: PciFunction, pool: Pool): void {
  const c = bridge.config;
  if (pool === 'io') {
    c.write8(PCI_IO_BASE, 0xf0);
    c.write8(PCI_IO_LIMIT, 0x00);
  } else if (pool === 'mem') {
    c.write16(PCI_MEMORY_BASE, 0xfff0);
    c.write16(PCI_MEMORY_LIMIT, 0x0000);
  } else {
    c.write16(PCI_PREF_MEMORY_BASE, 0xfff0);
    c.write16(PCI_PREF_MEMORY_LIMIT, 0x0000);
    c.write32(PCI_PREF_BASE_UPPER32, 0);
    c.write32(PCI_PREF_LIMIT_UPPER32, 0);
  }
}
