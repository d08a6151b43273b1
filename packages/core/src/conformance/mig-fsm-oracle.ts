import { SimError } from '../errors/index.js';
import { VFIO_DEVICE_STATE_ERROR, VFIO_DEVICE_STATE_NR } from '../uapi/constants.js';
import { migStateFlagsValidity, uapiFacts } from '../uapi/facts.js';
import { vfioMigGetNextState } from '../vfio/migration-fsm.js';

/*
 * What the migration cases expect of a driver, from the vfio core's rules:
 * which states a device with given VFIO_MIGRATION_* flags has, the path
 * vfio_mig_get_next_state() walks from one to another (a driver must walk
 * exactly that, one arc at a time), and which arcs hand userspace a data
 * fd (the uAPI's "saving group" entries and STOP -> RESUMING).
 *
 * Public API: migStates(), migNonStates(), migStateName(), migPath(), opensDataFd()
 */

const constants = uapiFacts.constants as Readonly<Record<string, number>>;
const required = migStateFlagsValidity.required_flags as Readonly<Record<string, { readonly mask: number }>>;

function value(name: string): number {
  const v = constants[name];
  if (v === undefined) throw new RangeError(`the ABI facts have no ${name}`);
  return v;
}

const byValue = new Map<number, string>(Object.keys(required).map((name) => [value(name), name.replace('VFIO_DEVICE_STATE_', '')]));

/** "STOP_COPY" for VFIO_DEVICE_STATE_STOP_COPY; the number for anything else. */
export function migStateName(state: number): string {
  return byValue.get(state) ?? String(state);
}

/** The states a device with `flags` can be in (ERROR excluded: it is never requested), in enum order. */
export function migStates(flags: number): number[] {
  const states: number[] = [];
  for (const [name, rule] of Object.entries(required)) {
    const state = value(name);
    if (state !== VFIO_DEVICE_STATE_ERROR && ((rule.mask & flags) >>> 0) === rule.mask >>> 0) states.push(state);
  }
  return states.sort((a, b) => a - b);
}

/** Every value that is not a state of a device with `flags`: unsupported states, ERROR, and values past the enum. */
export function migNonStates(flags: number): number[] {
  const states = new Set(migStates(flags));
  const out: number[] = [];
  for (let state = 0; state < VFIO_DEVICE_STATE_NR; state++) if (!states.has(state)) out.push(state);
  out.push(VFIO_DEVICE_STATE_NR, 0x7fffffff);
  return out;
}

/** The states vfio_mig_get_next_state() steps through from `from` to `to` (`to` last), or null when it refuses. */
export function migPath(flags: number, from: number, to: number): number[] | null {
  const path: number[] = [];
  let cur = from;
  try {
    while (cur !== to) {
      cur = vfioMigGetNextState(flags, cur, to);
      path.push(cur);
    }
  } catch (error) {
    if (error instanceof SimError && error.errnoName === 'EINVAL') return null;
    throw error;
  }
  return path;
}

const STREAM_ARCS = new Set([
  ['RUNNING', 'PRE_COPY'],
  ['RUNNING_P2P', 'PRE_COPY_P2P'],
  ['STOP', 'STOP_COPY'],
  ['STOP', 'RESUMING'],
].map(([from, to]) => `${value(`VFIO_DEVICE_STATE_${from}`)}>${value(`VFIO_DEVICE_STATE_${to}`)}`));

/**
 * The arcs that start a data transfer session and return a new data_fd.
 * Moves inside the saving group (PRE_COPY, PRE_COPY_P2P, STOP_COPY) keep
 * the session's fd and return none.
 */
export function opensDataFd(from: number, to: number): boolean {
  return STREAM_ARCS.has(`${from}>${to}`);
}
