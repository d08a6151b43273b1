import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { SimError, vfioMigGetNextState } from '@vfiosim/core';

type Cell = string | { next: string; path: string[] };
interface Derived {
  migration_flags_value: number;
  table: Record<string, Record<string, Cell>>;
}

// The expected answers are the facts' independently derived table, read from
// the JSON file itself rather than through the module under test.
const facts = JSON.parse(
  readFileSync(new URL('../../src/uapi/facts/linux-uapi-facts.json', import.meta.url), 'utf8'),
) as { constants: Record<string, number>; mig_state_next_step_by_flags_derived: Record<string, Derived> };

const derived = facts.mig_state_next_step_by_flags_derived;
const stateNames = Object.keys(facts.constants).filter(
  (name) => /^VFIO_DEVICE_STATE_[A-Z_0-9]+$/.test(name) && name !== 'VFIO_DEVICE_STATE_NR' && name !== 'VFIO_DEVICE_STATE_MASK' && !name.includes('_V1_'),
);
const value = (name: string): number => facts.constants[name]!;

function errnoOf(body: () => unknown): string | undefined {
  try {
    body();
    return undefined;
  } catch (error) {
    if (error instanceof SimError) return error.errnoName;
    throw error;
  }
}

describe('vfioMigGetNextState', () => {
  it('covers all eight migration states', () => {
    expect(stateNames).toHaveLength(8);
  });

  for (const [combo, { migration_flags_value: flags, table }] of Object.entries(derived)) {
    describe(`device with ${combo}`, () => {
      for (const cur of stateNames) {
        const row = table[cur];
        if (!row) {
          it(`rejects ${cur} as the current state with EINVAL`, () => {
            for (const target of stateNames) expect(errnoOf(() => vfioMigGetNextState(flags, value(cur), value(target)))).toBe('EINVAL');
          });
          continue;
        }
        for (const target of stateNames) {
          const cell = row[target]!;
          if (typeof cell === 'string') {
            it(`answers EINVAL from ${cur} to ${target}`, () => {
              expect(cell.startsWith('EINVAL')).toBe(true);
              expect(errnoOf(() => vfioMigGetNextState(flags, value(cur), value(target)))).toBe('EINVAL');
            });
          } else {
            it(`steps from ${cur} to ${target} along ${cell.path.join(' > ')}`, () => {
              expect(vfioMigGetNextState(flags, value(cur), value(target))).toBe(value(cell.next));
              const walked = [cur];
              let at = value(cur);
              while (at !== value(target)) {
                at = vfioMigGetNextState(flags, at, value(target));
                walked.push(stateNames.find((name) => value(name) === at)!);
              }
              expect(walked).toEqual(cell.path);
            });
          }
        }
      }
    });
  }

  it('rejects every state on a device without STOP_COPY with EINVAL', () => {
    for (const cur of stateNames) {
      for (const target of stateNames) expect(errnoOf(() => vfioMigGetNextState(0, value(cur), value(target)))).toBe('EINVAL');
    }
  });

  it('rejects states outside the enum with EINVAL', () => {
    expect(errnoOf(() => vfioMigGetNextState(7, 8, value('VFIO_DEVICE_STATE_STOP')))).toBe('EINVAL');
    expect(errnoOf(() => vfioMigGetNextState(7, value('VFIO_DEVICE_STATE_STOP'), 8))).toBe('EINVAL');
    expect(errnoOf(() => vfioMigGetNextState(7, value('VFIO_DEVICE_STATE_STOP'), 0xffffffff))).toBe('EINVAL');
  });

  it('ignores migration flag bits it does not know', () => {
    const stop = value('VFIO_DEVICE_STATE_STOP');
    const running = value('VFIO_DEVICE_STATE_RUNNING');
    expect(vfioMigGetNextState(1 | 0x100, stop, running)).toBe(running);
  });
});
