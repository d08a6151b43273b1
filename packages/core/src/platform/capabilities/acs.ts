import type { ConfigSpace } from '../config-space.js';
import {
  PCI_ACS_CAP,
  PCI_ACS_CR,
  PCI_ACS_CTRL,
  PCI_ACS_DT,
  PCI_ACS_EC,
  PCI_ACS_EGRESS_CTL_V,
  PCI_ACS_RR,
  PCI_ACS_SV,
  PCI_ACS_TB,
  PCI_ACS_UF,
  PCI_EXT_CAP_ID_ACS,
} from '../pci-regs.js';
import type { CapabilityBlueprint } from './capability.js';

export interface AcsParams {
  /** Source Validation */
  readonly sv: boolean;
  /** Translation Blocking */
  readonly tb: boolean;
  /** P2P Request Redirect */
  readonly rr: boolean;
  /** P2P Completion Redirect */
  readonly cr: boolean;
  /** Upstream Forwarding */
  readonly uf: boolean;
  /** P2P Egress Control */
  readonly ec: boolean;
  /** Direct Translated P2P */
  readonly dt: boolean;
  /** Egress Control Vector Size in bits (0 encodes 256); meaningful with `ec`. */
  readonly egressBits: number;
  readonly offset?: number;
}

/** The ACS Capability register bits for a set of features. */
export function acsCapabilityBits(p: Pick<AcsParams, 'sv' | 'tb' | 'rr' | 'cr' | 'uf' | 'ec' | 'dt'>): number {
  return (
    (p.sv ? PCI_ACS_SV : 0) |
    (p.tb ? PCI_ACS_TB : 0) |
    (p.rr ? PCI_ACS_RR : 0) |
    (p.cr ? PCI_ACS_CR : 0) |
    (p.uf ? PCI_ACS_UF : 0) |
    (p.ec ? PCI_ACS_EC : 0) |
    (p.dt ? PCI_ACS_DT : 0)
  );
}

/** ACS register extent: 8 bytes plus the egress control vector in dwords. */
export function acsLength(ec: boolean, egressBits: number): number {
  if (!ec) return 8;
  const bits = egressBits === 0 ? 256 : Math.ceil(egressBits / 32) * 32;
  return 8 + bits / 8;
}

/**
 * Access Control Services. Control bits exist only for the features the
 * capability register advertises; the rest are hard-wired 0. Everything is
 * disabled at power-on: the OS enables what it wants.
 */
export function acsCapability(params: AcsParams): CapabilityBlueprint {
  return {
    kind: 'extended',
    id: PCI_EXT_CAP_ID_ACS,
    name: 'acs',
    version: 1,
    length: acsLength(params.ec, params.egressBits),
    offset: params.offset,
    install(config: ConfigSpace, at: number) {
      const cap = acsCapabilityBits(params);
      config.define(at + PCI_ACS_CAP, 2, { value: cap | (params.ec ? (params.egressBits & 0xff) << 8 : 0) });
      config.define(at + PCI_ACS_CTRL, 2, { value: 0, writable: cap });
      if (params.ec) {
        const bits = params.egressBits === 0 ? 256 : params.egressBits;
        for (let i = 0; i * 32 < bits; i++) {
          const remaining = bits - i * 32;
          const writable = remaining >= 32 ? 0xffffffff : (1 << remaining) - 1;
          config.define(at + PCI_ACS_EGRESS_CTL_V + i * 4, 4, { value: 0, writable });
        }
      }
    },
  };
}
