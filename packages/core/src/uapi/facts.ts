import facts from './facts/linux-uapi-facts.json' with { type: 'json' };

/**
 * The ABI facts every uAPI codec, constant and request number is checked
 * against: read off the kernel headers named in `source` and compiled on
 * x86-64. Frozen, since every layer shares this one copy.
 */
export type UapiFacts = DeepReadonly<typeof facts>;

type DeepReadonly<T> = T extends object ? { readonly [K in keyof T]: DeepReadonly<T[K]> } : T;

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}

export const uapiFacts: UapiFacts = deepFreeze(facts);

/** The migration states of enum vfio_device_mig_state, by name. */
export type MigStateName = keyof typeof facts.mig_state_transitions;

/**
 * vfio_mig_get_next_state()'s step table: `migStateTransitions[cur][new]` is
 * the next state on the shortest permitted path from cur to new, before the
 * device's supported states are taken into account.
 */
export const migStateTransitions = uapiFacts.mig_state_transitions as Readonly<
  Record<MigStateName, Readonly<Record<MigStateName, MigStateName>>>
>;

/**
 * Which VFIO_MIGRATION_* flags a device must report for each state to be
 * usable, the rule that applies them, and the STOP_COPY->PRE_COPY arcs the
 * kernel's skip loop must refuse (see `skip_loop_error_sentinel_bug`).
 */
export const migStateFlagsValidity = uapiFacts.mig_state_flags_validity;

/** Per ioctl: the struct, the field whose end is the minimum size, the minimum and the full struct size. */
export const ioctlMinSizes = uapiFacts.ioctl_min_sizes;

/** Per VFIO_DEVICE_FEATURE: which of GET/SET it supports and the minimum payload after the 8-byte header. */
export const vfioDeviceFeatureMinData = uapiFacts.vfio_device_feature_min_data;
