import type { VfioSimPlugin } from '../host/index.js';
import type { HostDescription } from '../platform/index.js';
import type { BoundDevice } from './bound-device.js';

/*
 * What the variant driver suite must be told about a vfio-pci-core driver:
 * the host to run it on, and the few things only the driver knows (its own
 * regions, its own state a reset must clear, its migration support). Config
 * space, region layout, reset and the migration state machine are the
 * kernel's and the suite checks them against the kernel's rules.
 *
 * Public API: VariantDriverSubject, VariantDeviceRegion, VariantDeviceState,
 * VariantMigration
 */

/** A device-specific region, as VFIO_REGION_INFO_CAP_TYPE names it. */
export interface VariantDeviceRegion {
  readonly type: number;
  readonly subtype: number;
}

/** Driver-owned state a reset must clear (a mailbox, a vendor region, a firmware queue...). */
export interface VariantDeviceState {
  /** Moves the state away from its reset value, through the uAPI where it can. */
  perturb(dev: BoundDevice): void;
  /** Throws (an AssertionError, with a message) unless the state is back to its reset value. */
  assertReset(dev: BoundDevice): void;
}

export interface VariantMigration {
  /** The VFIO_MIGRATION_* flags the driver reports (STOP_COPY at least). */
  readonly flags: number;
  /**
   * The FSM arcs the driver has executed so far, oldest first, as
   * [from, to] states. When given, the suite checks that every SET walked
   * exactly the path vfio_mig_get_next_state() prescribes; without it, only
   * the end state and the data fd can be seen from userspace.
   */
  arcs?(dev: BoundDevice): readonly (readonly [number, number])[];
}

export interface VariantDriverSubject {
  /**
   * Fresh plugins for one host: an IOMMU driver the device sits behind (so
   * it can be bound to iommufd) and the variant driver. Called once per case.
   */
  plugins(): readonly VfioSimPlugin[];
  /** A host whose function `bdf` is bound to the variant driver (`driver` in its description). */
  readonly description: HostDescription;
  readonly bdf: string;
  /** The driver's device-specific regions in index order; none when absent. */
  readonly deviceRegions?: readonly VariantDeviceRegion[];
  readonly deviceState?: VariantDeviceState;
  /** The driver's migration support; absent for a driver without VFIO_DEVICE_FEATURE_MIGRATION. */
  readonly migration?: VariantMigration;
}
