import { cpus, loadavg, totalmem } from 'node:os';
import type { Figure } from './measure.js';

export interface Machine {
  readonly cpu: string;
  readonly cores: number;
  readonly memoryGiB: number;
  readonly node: string;
  readonly platform: string;
  /** 1-minute load average when the run started: other work on the machine skews every figure. */
  readonly loadAverage: number;
}

export function machine(): Machine {
  const list = cpus();
  return {
    cpu: list[0]?.model.trim() ?? 'unknown',
    cores: list.length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    loadAverage: Math.round(loadavg()[0]! * 100) / 100,
  };
}

/** A stated goal and whether the measured figure meets it. Informational: never fails the run. */
export interface Target {
  readonly name: string;
  readonly value: string;
  readonly goal: string;
  readonly pass: boolean;
}

export function rate(opsPerSecond: number): string {
  if (opsPerSecond >= 1e6) return `${(opsPerSecond / 1e6).toFixed(2)} M/s`;
  if (opsPerSecond >= 1e3) return `${(opsPerSecond / 1e3).toFixed(1)} k/s`;
  return `${opsPerSecond.toFixed(0)} /s`;
}

export function duration(ns: number): string {
  if (ns >= 1e6) return `${(ns / 1e6).toFixed(2)} ms`;
  if (ns >= 1e3) return `${(ns / 1e3).toFixed(2)} µs`;
  return `${ns.toFixed(1)} ns`;
}

/** The figures as a fixed-width table, each model figure with its cost in units of its reference. */
export function table(figures: readonly Figure[]): string {
  const byName = new Map(figures.map((f) => [f.name, f]));
  const rows = [['benchmark', 'unit', 'rate', '±', 'per op', 'vs reference']];
  for (const f of figures) {
    const ref = f.reference ? byName.get(f.reference) : undefined;
    rows.push([
      f.name,
      f.unit,
      rate(f.opsPerSecond),
      `${f.rme.toFixed(1)}%`,
      duration(f.nsPerOp),
      ref ? `${(f.nsPerOp / ref.nsPerOp).toFixed(1)}x ${ref.name.replace('reference: ', '')}` : '',
    ]);
  }
  const widths = rows[0]!.map((_, col) => Math.max(...rows.map((row) => row[col]!.length)));
  const right = new Set([2, 3, 4]);
  const line = (row: string[]) => row.map((cell, col) => (right.has(col) ? cell.padStart(widths[col]!) : cell.padEnd(widths[col]!))).join('  ').trimEnd();
  return [line(rows[0]!), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.slice(1).map(line)].join('\n');
}

export function targetLines(targets: readonly Target[]): string {
  return targets.map((t) => `${t.pass ? 'PASS' : 'FAIL'}  ${t.name}: ${t.value} (target: ${t.goal})`).join('\n');
}
