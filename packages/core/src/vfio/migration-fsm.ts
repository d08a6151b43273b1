import { SimError } from '../errors/index.js';
import { VFIO_DEVICE_STATE_ERROR, VFIO_DEVICE_STATE_NR } from '../uapi/constants.js';
import { migStateFlagsValidity, migStateTransitions, uapiFacts, type MigStateName } from '../uapi/facts.js';

/*
 * The migration v2 state machine (vfio_mig_get_next_state): a user asks for
 * any state, the driver only implements single arcs, so the core breaks the
 * request into arcs one step at a time. Both tables come from the ABI facts,
 * indexed here by the enum values so a lookup costs two array reads.
 */

const constants = uapiFacts.constants as Readonly<Record<string, number>>;

function stateValue(name: MigStateName): number {
  const value = constants[name];
  if (value === undefined) throw new RangeError(`the ABI facts have no value for ${name}`);
  return value;
}

/** fromFsm[cur][target]: the next step before unsupported states are skipped. */
const fromFsm: readonly (readonly number[])[] = (() => {
  const table: number[][] = Array.from({ length: VFIO_DEVICE_STATE_NR }, () => new Array<number>(VFIO_DEVICE_STATE_NR));
  for (const [cur, row] of Object.entries(migStateTransitions) as [MigStateName, Record<MigStateName, MigStateName>][]) {
    for (const [target, next] of Object.entries(row) as [MigStateName, MigStateName][]) {
      table[stateValue(cur)]![stateValue(target)] = stateValue(next);
    }
  }
  return table;
})();

/**
 * The VFIO_MIGRATION_* bits a device must report for a state to exist on it.
 * ERROR needs every bit (~0U), so it is never a valid current or target state.
 */
const requiredFlags: readonly number[] = (() => {
  const table = new Array<number>(VFIO_DEVICE_STATE_NR);
  for (const [name, rule] of Object.entries(migStateFlagsValidity.required_flags)) {
    table[stateValue(name as MigStateName)] = rule.mask >>> 0;
  }
  return table;
})();

function supported(state: number, migrationFlags: number): boolean {
  const required = requiredFlags[state]!;
  return ((required & migrationFlags) >>> 0) === required;
}

function inRange(state: number): boolean {
  return Number.isInteger(state) && state >= 0 && state < VFIO_DEVICE_STATE_NR;
}

/**
 * vfio_mig_get_next_state(): the next arc the driver must take from `cur`
 * towards `target` on a device with `migrationFlags`. A driver calls it in
 * a loop until it reaches the target.
 *
 * Throws EINVAL when either state is out of range or not supported by the
 * device, or when no path exists (STOP_COPY to PRE_COPY or PRE_COPY_P2P).
 * The stored kernel's skip loop has no ERROR guard and spins forever on
 * those two arcs for a PRE_COPY device; the model stops at ERROR and
 * answers EINVAL, as the stable fix (Fixes: 4db52602a607) does.
 */
export function vfioMigGetNextState(migrationFlags: number, cur: number, target: number): number {
  if (!inRange(cur) || !supported(cur, migrationFlags)) {
    throw new SimError('INVALID_ARGUMENT', `migration state ${cur} is not a state this device can be in`);
  }
  if (!inRange(target) || !supported(target, migrationFlags)) {
    throw new SimError('INVALID_ARGUMENT', `migration state ${target} is not supported by this device`);
  }
  let next = fromFsm[cur]![target]!;
  while (next !== VFIO_DEVICE_STATE_ERROR && !supported(next, migrationFlags)) {
    next = fromFsm[next]![target]!;
  }
  if (next === VFIO_DEVICE_STATE_ERROR) {
    throw new SimError('INVALID_ARGUMENT', `no path from migration state ${cur} to ${target}`);
  }
  return next;
}
