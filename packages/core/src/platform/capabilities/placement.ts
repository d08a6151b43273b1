import type { ConfigSpace } from '../config-space.js';
import {
  PCI_CAPABILITY_LIST,
  PCI_CFG_SPACE_SIZE,
  PCI_STATUS,
  PCI_STATUS_CAP_LIST,
  PCI_STD_HEADER_SIZEOF,
} from '../pci-regs.js';
import type { CapabilityBlueprint } from './capability.js';

/** Where each capability of a function goes, in blueprint order. */
export type CapabilityPlan = readonly number[];

/** Why a set of capabilities cannot be laid out: which one, and the reason. */
export interface CapabilityPlanProblem {
  readonly index: number;
  readonly message: string;
}

/** Automatic placement aligns capabilities to 16 bytes, as most devices lay them out. */
const AUTO_ALIGN = 0x10;

/**
 * Chooses offsets: pinned capabilities where pinned, the others in order at
 * the first free 16-byte-aligned slot of their region (0x40-0xff standard,
 * 0x100-0xfff extended). The extended chain must start at 0x100.
 */
export function planCapabilities(
  blueprints: readonly CapabilityBlueprint[],
  configSize: number,
): { plan: CapabilityPlan } | { problem: CapabilityPlanProblem } {
  const offsets: number[] = new Array(blueprints.length).fill(-1);
  const used: Array<{ start: number; end: number; index: number }> = [];

  const region = (bp: CapabilityBlueprint) =>
    bp.kind === 'standard' ? { start: PCI_STD_HEADER_SIZEOF, end: PCI_CFG_SPACE_SIZE } : { start: PCI_CFG_SPACE_SIZE, end: configSize };

  for (const [index, bp] of blueprints.entries()) {
    if (bp.offset === undefined) continue;
    const { start, end } = region(bp);
    if (bp.kind === 'extended' && configSize <= PCI_CFG_SPACE_SIZE) {
      return { problem: { index, message: 'a function with 256 bytes of config space has no extended capabilities' } };
    }
    if (bp.offset % 4 !== 0) return { problem: { index, message: `offset 0x${bp.offset.toString(16)} is not dword aligned` } };
    if (bp.offset < start || bp.offset + bp.length > end) {
      return {
        problem: {
          index,
          message: `offset 0x${bp.offset.toString(16)} + ${bp.length} bytes is outside 0x${start.toString(16)}-0x${(end - 1).toString(16)}`,
        },
      };
    }
    const clash = used.find((u) => u.start < bp.offset! + bp.length && bp.offset! < u.end);
    if (clash) {
      const other = blueprints[clash.index];
      return {
        problem: { index, message: `offset 0x${bp.offset.toString(16)} overlaps ${other.name} at 0x${clash.start.toString(16)}` },
      };
    }
    used.push({ start: bp.offset, end: bp.offset + bp.length, index });
    offsets[index] = bp.offset;
  }

  for (const [index, bp] of blueprints.entries()) {
    if (bp.offset !== undefined) continue;
    const { start, end } = region(bp);
    if (bp.kind === 'extended' && configSize <= PCI_CFG_SPACE_SIZE) {
      return { problem: { index, message: 'a function with 256 bytes of config space has no extended capabilities' } };
    }
    let at = start;
    for (;;) {
      if (at + bp.length > end) {
        return { problem: { index, message: `no room for ${bp.length} bytes in 0x${start.toString(16)}-0x${(end - 1).toString(16)}` } };
      }
      const clash = used.find((u) => u.start < at + bp.length && at < u.end);
      if (!clash) break;
      at = Math.ceil(clash.end / AUTO_ALIGN) * AUTO_ALIGN;
    }
    used.push({ start: at, end: at + bp.length, index });
    offsets[index] = at;
  }

  const extended = blueprints.map((bp, index) => ({ bp, index })).filter(({ bp }) => bp.kind === 'extended');
  if (extended.length > 0 && !extended.some(({ index }) => offsets[index] === PCI_CFG_SPACE_SIZE)) {
    return { problem: { index: extended[0].index, message: 'the extended capability chain starts at 0x100; one capability must be there' } };
  }
  return { plan: offsets };
}

/**
 * Writes the capabilities into `config` at the planned offsets and links
 * both chains in ascending offset order: Status.CAP_LIST and the capability
 * pointer for the standard list, the next field of each extended header.
 */
export function installCapabilities(config: ConfigSpace, blueprints: readonly CapabilityBlueprint[], plan: CapabilityPlan): void {
  const placed = blueprints.map((bp, index) => ({ bp, at: plan[index] })).sort((a, b) => a.at - b.at);
  const standard = placed.filter((p) => p.bp.kind === 'standard');
  const extended = placed.filter((p) => p.bp.kind === 'extended');

  for (const [i, { bp, at }] of standard.entries()) {
    const next = standard[i + 1]?.at ?? 0;
    config.define(at, 2, { value: bp.id | (next << 8) });
    bp.install(config, at);
  }
  if (standard.length > 0) {
    const status = config.hwRead(PCI_STATUS, 2);
    config.define(PCI_STATUS, 2, {
      value: status | PCI_STATUS_CAP_LIST,
      writable: config.writableBits(PCI_STATUS, 2),
      rw1c: config.rw1cBits(PCI_STATUS, 2),
    });
    config.define(PCI_CAPABILITY_LIST, 1, { value: standard[0].at });
  }

  for (const [i, { bp, at }] of extended.entries()) {
    const next = extended[i + 1]?.at ?? 0;
    config.define(at, 4, { value: (bp.id | (bp.version << 16) | (next << 20)) >>> 0 });
    bp.install(config, at);
  }
}
