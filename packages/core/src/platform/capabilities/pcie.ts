import type { ConfigSpace } from '../config-space.js';
import {
  PCI_CAP_ID_EXP,
  PCI_EXP_DEVCAP,
  PCI_EXP_DEVCAP2,
  PCI_EXP_DEVCAP2_ARI,
  PCI_EXP_DEVCAP2_COMP_TMOUT_DIS,
  PCI_EXP_DEVCAP2_LTR,
  PCI_EXP_DEVCAP_EXT_TAG,
  PCI_EXP_DEVCAP_FLR,
  PCI_EXP_DEVCAP_L0S,
  PCI_EXP_DEVCAP_L1,
  PCI_EXP_DEVCAP_RBER,
  PCI_EXP_DEVCTL,
  PCI_EXP_DEVCTL2,
  PCI_EXP_DEVCTL2_ARI,
  PCI_EXP_DEVCTL2_COMP_TIMEOUT,
  PCI_EXP_DEVCTL2_COMP_TMOUT_DIS,
  PCI_EXP_DEVCTL2_LTR_EN,
  PCI_EXP_DEVCTL_AUX_PME,
  PCI_EXP_DEVCTL_BCR_FLR,
  PCI_EXP_DEVCTL_CERE,
  PCI_EXP_DEVCTL_EXT_TAG,
  PCI_EXP_DEVCTL_FERE,
  PCI_EXP_DEVCTL_NFERE,
  PCI_EXP_DEVCTL_NOSNOOP_EN,
  PCI_EXP_DEVCTL_PAYLOAD,
  PCI_EXP_DEVCTL_READRQ,
  PCI_EXP_DEVCTL_READRQ_512B,
  PCI_EXP_DEVCTL_RELAX_EN,
  PCI_EXP_DEVCTL_URRE,
  PCI_EXP_DEVSTA,
  PCI_EXP_DEVSTA_CED,
  PCI_EXP_DEVSTA_FED,
  PCI_EXP_DEVSTA_NFED,
  PCI_EXP_DEVSTA_URD,
  PCI_EXP_FLAGS,
  PCI_EXP_FLAGS_SLOT,
  PCI_EXP_LNKCAP,
  PCI_EXP_LNKCAP2,
  PCI_EXP_LNKCAP_ASPMS,
  PCI_EXP_LNKCAP_CLKPM,
  PCI_EXP_LNKCAP_DLLLARC,
  PCI_EXP_LNKCAP_LBNC,
  PCI_EXP_LNKCTL,
  PCI_EXP_LNKCTL2,
  PCI_EXP_LNKCTL2_TLS,
  PCI_EXP_LNKCTL_ASPMC,
  PCI_EXP_LNKCTL_CCC,
  PCI_EXP_LNKCTL_CLKREQ_EN,
  PCI_EXP_LNKCTL_ES,
  PCI_EXP_LNKCTL_HAWD,
  PCI_EXP_LNKCTL_LABIE,
  PCI_EXP_LNKCTL_LBMIE,
  PCI_EXP_LNKCTL_LD,
  PCI_EXP_LNKCTL_RCB,
  PCI_EXP_LNKSTA,
  PCI_EXP_LNKSTA2,
  PCI_EXP_LNKSTA_DLLLA,
  PCI_EXP_LNKSTA_LABS,
  PCI_EXP_LNKSTA_LBMS,
  PCI_EXP_LNKSTA_SLC,
  PCI_EXP_RTCTL,
  PCI_EXP_RTCTL_PMEIE,
  PCI_EXP_RTCTL_SECEE,
  PCI_EXP_RTCTL_SEFEE,
  PCI_EXP_RTCTL_SENFEE,
  PCI_EXP_RTSTA,
  PCI_EXP_RTSTA_PME,
  PCI_EXP_SLTCAP,
  PCI_EXP_SLTCAP_AIP,
  PCI_EXP_SLTCAP_HPC,
  PCI_EXP_SLTCAP_PCP,
  PCI_EXP_SLTCAP_PIP,
  PCI_EXP_SLTCTL,
  PCI_EXP_SLTCTL_ABPE,
  PCI_EXP_SLTCTL_AIC,
  PCI_EXP_SLTCTL_CCIE,
  PCI_EXP_SLTCTL_DLLSCE,
  PCI_EXP_SLTCTL_HPIE,
  PCI_EXP_SLTCTL_MRLSCE,
  PCI_EXP_SLTCTL_PCC,
  PCI_EXP_SLTCTL_PDCE,
  PCI_EXP_SLTCTL_PFDE,
  PCI_EXP_SLTCTL_PIC,
  PCI_EXP_SLTSTA,
  PCI_EXP_SLTSTA_ABP,
  PCI_EXP_SLTSTA_CC,
  PCI_EXP_SLTSTA_DLLSC,
  PCI_EXP_SLTSTA_MRLSC,
  PCI_EXP_SLTSTA_PDC,
  PCI_EXP_SLTSTA_PDS,
  PCI_EXP_SLTSTA_PFD,
  PCI_EXP_TYPE_DOWNSTREAM,
  PCI_EXP_TYPE_ENDPOINT,
  PCI_EXP_TYPE_LEG_END,
  PCI_EXP_TYPE_PCI_BRIDGE,
  PCI_EXP_TYPE_RC_END,
  PCI_EXP_TYPE_ROOT_PORT,
  PCI_EXP_TYPE_UPSTREAM,
} from '../pci-regs.js';
import type { CapabilityBlueprint } from './capability.js';

/** Device/Port Type of the PCI Express Capabilities register. */
export type PcieType =
  | 'endpoint'
  | 'legacy-endpoint'
  | 'rc-endpoint'
  | 'root-port'
  | 'upstream-port'
  | 'downstream-port'
  | 'pcie-to-pci-bridge';

export const PCIE_TYPE_CODE: Readonly<Record<PcieType, number>> = {
  'endpoint': PCI_EXP_TYPE_ENDPOINT,
  'legacy-endpoint': PCI_EXP_TYPE_LEG_END,
  'rc-endpoint': PCI_EXP_TYPE_RC_END,
  'root-port': PCI_EXP_TYPE_ROOT_PORT,
  'upstream-port': PCI_EXP_TYPE_UPSTREAM,
  'downstream-port': PCI_EXP_TYPE_DOWNSTREAM,
  'pcie-to-pci-bridge': PCI_EXP_TYPE_PCI_BRIDGE,
};

/** Link speed by generation: 1 = 2.5 GT/s ... 5 = 32 GT/s (the LNKCAP SLS encoding). */
export type PcieLinkSpeed = 1 | 2 | 3 | 4 | 5;

export interface PcieLink {
  readonly speed: PcieLinkSpeed;
  /** Lanes: 1, 2, 4, 8, 16 or 32. */
  readonly width: number;
}

export interface PcieSlot {
  /** Physical Slot Number (SLTCAP bits 31:19). */
  readonly number: number;
  /** Hot-Plug Capable: pciehp drives the slot and can reset it. */
  readonly hotplug: boolean;
  /** Presence Detect State: a card is in the slot. */
  readonly occupied: boolean;
}

export interface PcieParams {
  readonly type: PcieType;
  /** Capability version: 2 for every device since PCIe 2.0. */
  readonly version: 1 | 2;
  /** PCI_EXP_DEVCAP_FLR: Function Level Reset capability (endpoints). */
  readonly flr: boolean;
  /** Max_Payload_Size Supported, bytes (128-4096). */
  readonly maxPayload: number;
  /** The link; null for a Root Complex Integrated Endpoint, which has none. */
  readonly link: PcieLink | null;
  /** A slot on a root or downstream port. */
  readonly slot: PcieSlot | null;
  /** Port Number in LNKCAP (ports). */
  readonly portNumber: number;
  /** DLLLA on a root or downstream port: the link to the device below is up. */
  readonly linkActive: boolean;
  readonly offset?: number;
}

const PORT_TYPES: ReadonlySet<PcieType> = new Set(['root-port', 'downstream-port']);

/** Register extent of the PCIe capability for a version, type and slot presence. */
export function pcieLength(version: 1 | 2, type: PcieType, hasSlot: boolean): number {
  if (version === 2) return 0x3c;
  if (type === 'rc-endpoint') return 0x0c;
  if (type === 'root-port') return 0x24;
  return hasSlot ? 0x1c : 0x14;
}

/**
 * The PCI Express Capability structure. Port-only registers (slot, root) are
 * defined for the types that have them; every other byte reads 0.
 */
export function pcieCapability(params: PcieParams): CapabilityBlueprint {
  const slot = PORT_TYPES.has(params.type) ? params.slot : null;
  return {
    kind: 'standard',
    id: PCI_CAP_ID_EXP,
    name: 'pcie',
    version: 0,
    length: pcieLength(params.version, params.type, slot !== null),
    offset: params.offset,
    install(config: ConfigSpace, at: number) {
      const type = params.type;
      const isPort = PORT_TYPES.has(type);
      const isEndpoint = type === 'endpoint' || type === 'legacy-endpoint' || type === 'rc-endpoint';
      config.define(at + PCI_EXP_FLAGS, 2, {
        value: params.version | (PCIE_TYPE_CODE[type] << 4) | (slot ? PCI_EXP_FLAGS_SLOT : 0),
      });

      const payloadCode = Math.log2(params.maxPayload / 128);
      config.define(at + PCI_EXP_DEVCAP, 4, {
        value:
          payloadCode |
          PCI_EXP_DEVCAP_EXT_TAG |
          (isEndpoint ? PCI_EXP_DEVCAP_L0S | PCI_EXP_DEVCAP_L1 : 0) |
          PCI_EXP_DEVCAP_RBER |
          (params.flr && isEndpoint ? PCI_EXP_DEVCAP_FLR : 0),
      });
      // Power-on DevCtl: relaxed ordering and no-snoop enabled, 128-byte
      // payload, 512-byte read requests. Bit 15 is Initiate FLR on an endpoint
      // (write-only: reads 0) and Bridge Configuration Retry Enable on a
      // PCIe-to-PCI bridge (RW).
      config.define(at + PCI_EXP_DEVCTL, 2, {
        value: PCI_EXP_DEVCTL_RELAX_EN | PCI_EXP_DEVCTL_NOSNOOP_EN | PCI_EXP_DEVCTL_READRQ_512B,
        writable:
          PCI_EXP_DEVCTL_CERE |
          PCI_EXP_DEVCTL_NFERE |
          PCI_EXP_DEVCTL_FERE |
          PCI_EXP_DEVCTL_URRE |
          PCI_EXP_DEVCTL_RELAX_EN |
          PCI_EXP_DEVCTL_PAYLOAD |
          PCI_EXP_DEVCTL_EXT_TAG |
          PCI_EXP_DEVCTL_AUX_PME |
          PCI_EXP_DEVCTL_NOSNOOP_EN |
          PCI_EXP_DEVCTL_READRQ |
          (type === 'pcie-to-pci-bridge' ? PCI_EXP_DEVCTL_BCR_FLR : 0),
        sticky: PCI_EXP_DEVCTL_AUX_PME,
      });
      config.define(at + PCI_EXP_DEVSTA, 2, {
        value: 0,
        rw1c: PCI_EXP_DEVSTA_CED | PCI_EXP_DEVSTA_NFED | PCI_EXP_DEVSTA_FED | PCI_EXP_DEVSTA_URD,
      });

      const link = params.link;
      if (link) {
        config.define(at + PCI_EXP_LNKCAP, 4, {
          value:
            link.speed |
            (link.width << 4) |
            PCI_EXP_LNKCAP_ASPMS |
            (isPort ? PCI_EXP_LNKCAP_DLLLARC | PCI_EXP_LNKCAP_LBNC : PCI_EXP_LNKCAP_CLKPM) |
            ((params.portNumber & 0xff) << 24),
        });
        const lnkctlWritable = isPort
          ? PCI_EXP_LNKCTL_ASPMC | PCI_EXP_LNKCTL_LD | PCI_EXP_LNKCTL_CCC | PCI_EXP_LNKCTL_ES |
            PCI_EXP_LNKCTL_CLKREQ_EN | PCI_EXP_LNKCTL_HAWD | PCI_EXP_LNKCTL_LBMIE | PCI_EXP_LNKCTL_LABIE
          : PCI_EXP_LNKCTL_ASPMC | (type === 'upstream-port' ? 0 : PCI_EXP_LNKCTL_RCB) | PCI_EXP_LNKCTL_CCC |
            PCI_EXP_LNKCTL_ES | PCI_EXP_LNKCTL_CLKREQ_EN | PCI_EXP_LNKCTL_HAWD;
        config.define(at + PCI_EXP_LNKCTL, 2, {
          value: 0,
          writable: lnkctlWritable,
        });
        const up = !isPort || params.linkActive;
        config.define(at + PCI_EXP_LNKSTA, 2, {
          value:
            (up ? link.speed | (link.width << 4) : 0) |
            PCI_EXP_LNKSTA_SLC |
            (isPort && params.linkActive ? PCI_EXP_LNKSTA_DLLLA : 0),
          rw1c: isPort ? PCI_EXP_LNKSTA_LBMS | PCI_EXP_LNKSTA_LABS : 0,
        });
      }

      if (slot) {
        config.define(at + PCI_EXP_SLTCAP, 4, {
          value:
            ((slot.number & 0x1fff) << 19) |
            (75 << 7) |
            (slot.hotplug ? PCI_EXP_SLTCAP_PCP | PCI_EXP_SLTCAP_AIP | PCI_EXP_SLTCAP_PIP | PCI_EXP_SLTCAP_HPC : 0),
        });
        config.define(at + PCI_EXP_SLTCTL, 2, {
          value: 0,
          writable: slot.hotplug
            ? PCI_EXP_SLTCTL_ABPE | PCI_EXP_SLTCTL_PFDE | PCI_EXP_SLTCTL_MRLSCE | PCI_EXP_SLTCTL_PDCE |
              PCI_EXP_SLTCTL_CCIE | PCI_EXP_SLTCTL_HPIE | PCI_EXP_SLTCTL_AIC | PCI_EXP_SLTCTL_PIC |
              PCI_EXP_SLTCTL_PCC | PCI_EXP_SLTCTL_DLLSCE
            : 0,
        });
        config.define(at + PCI_EXP_SLTSTA, 2, {
          value: slot.occupied ? PCI_EXP_SLTSTA_PDS : 0,
          rw1c:
            PCI_EXP_SLTSTA_ABP | PCI_EXP_SLTSTA_PFD | PCI_EXP_SLTSTA_MRLSC | PCI_EXP_SLTSTA_PDC |
            PCI_EXP_SLTSTA_CC | PCI_EXP_SLTSTA_DLLSC,
        });
      }

      if (type === 'root-port') {
        config.define(at + PCI_EXP_RTCTL, 2, {
          value: 0,
          writable: PCI_EXP_RTCTL_SECEE | PCI_EXP_RTCTL_SENFEE | PCI_EXP_RTCTL_SEFEE | PCI_EXP_RTCTL_PMEIE,
        });
        config.define(at + PCI_EXP_RTSTA, 4, { value: 0, rw1c: PCI_EXP_RTSTA_PME });
      }

      if (params.version === 2) {
        const ari = isPort;
        const ltr = isEndpoint;
        config.define(at + PCI_EXP_DEVCAP2, 4, {
          value: 0xf | PCI_EXP_DEVCAP2_COMP_TMOUT_DIS | (ari ? PCI_EXP_DEVCAP2_ARI : 0) | (ltr ? PCI_EXP_DEVCAP2_LTR : 0),
        });
        config.define(at + PCI_EXP_DEVCTL2, 2, {
          value: 0,
          writable:
            PCI_EXP_DEVCTL2_COMP_TIMEOUT |
            PCI_EXP_DEVCTL2_COMP_TMOUT_DIS |
            (ari ? PCI_EXP_DEVCTL2_ARI : 0) |
            (ltr ? PCI_EXP_DEVCTL2_LTR_EN : 0),
        });
        if (link) {
          config.define(at + PCI_EXP_LNKCAP2, 4, { value: ((1 << link.speed) - 1) << 1 });
          // Target Link Speed, Enter Compliance, Hardware Autonomous Speed Disable.
          config.define(at + PCI_EXP_LNKCTL2, 2, { value: link.speed, writable: PCI_EXP_LNKCTL2_TLS | 0x30 });
          config.define(at + PCI_EXP_LNKSTA2, 2, { value: 0 });
        }
      }
    },
  };
}
