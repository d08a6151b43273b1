import type { ConfigSpace } from '../config-space.js';

/** Where a capability lives: the standard list (0x40-0xff) or the extended one (0x100-0xfff). */
export type CapabilityKind = 'standard' | 'extended';

/**
 * A capability ready to be placed in a function's config space: its id, the
 * bytes it occupies, and how to define its registers. The layout code writes
 * the id and next pointer (and the extended header's version); `install`
 * defines everything after them.
 */
export interface CapabilityBlueprint {
  readonly kind: CapabilityKind;
  readonly id: number;
  /** Short name used in messages and renderings ("msix", "acs"). */
  readonly name: string;
  /** Extended capability version (header bits 19:16); 0 for standard capabilities. */
  readonly version: number;
  /** Bytes the register block occupies in hardware. */
  readonly length: number;
  /** A fixed offset, when the description pins one. */
  readonly offset?: number;
  install(config: ConfigSpace, offset: number): void;
}

/** A capability found by walking a config space. */
export interface CapabilityInfo {
  readonly kind: CapabilityKind;
  readonly id: number;
  readonly offset: number;
  /** Register-block length as the registers describe it; 0 when the id is unknown to the model. */
  readonly length: number;
  /** Extended capability version; 0 for standard capabilities. */
  readonly version: number;
  /** Next pointer as read (0 at the end of the chain). */
  readonly next: number;
}
