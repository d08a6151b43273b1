import type { EventfdCtx } from '../os/index.js';
import type { PciFunction } from '../platform/pci-function.js';
import { VFIO_PCI_NUM_IRQS } from '../uapi/index.js';
import { VfioDevice } from '../vfio/vfio-device.js';
import type { VfioDeviceOps } from '../vfio/vfio-device-ops.js';
import type { PermBits } from './config/perm-bits.js';
import { createVfioPciCoreHooks, type VfioPciCoreHooks } from './hooks.js';
import type { IrqContext } from './intrs/irq-context.js';
import type { PciSavedState } from './pci-state.js';
import type { Ioeventfd } from './regions/ioeventfd.js';
import type { VfioPciRegion } from './regions/dev-region.js';
import { checkVendorInfo, type VfioPciVendorInfo } from './vendor-info.js';

/**
 * vfio-pci-core's module parameters (vfio_pci_core_set_params), which the
 * driver built on it passes through: vfio-pci's nointxmask, disable_vga
 * and disable_idle_d3, plus whether the kernel was built with
 * CONFIG_VFIO_PCI_VGA.
 */
export interface VfioPciCoreParams {
  /** Never use DisINTx to mask INTx (nointxmask). */
  readonly nointxmask: boolean;
  /** CONFIG_VFIO_PCI_VGA and not disable_vga: VGA devices get the legacy VGA region. */
  readonly vga: boolean;
  /** Leave unused devices in D0 instead of D3hot (disable_idle_d3). */
  readonly disableIdleD3: boolean;
}

export const defaultVfioPciCoreParams: VfioPciCoreParams = Object.freeze({
  nointxmask: false,
  vga: false,
  disableIdleD3: false,
});

export interface VfioPciCoreDeviceOptions {
  readonly params?: Partial<VfioPciCoreParams>;
  /** One-time facts a variant driver states about the device (virtual capabilities, I/O page faults). */
  readonly vendorInfo?: VfioPciVendorInfo;
}

/** The VF token of an SR-IOV PF bound to a vfio-pci-core driver (struct vfio_pci_vf_token). */
export interface VfioPciVfToken {
  /** 16 bytes; random at bind, then whatever the user set. */
  uuid: Uint8Array;
  /** Open VFs of this PF. */
  users: number;
}

/**
 * struct vfio_pci_core_device: a vfio device wrapping one PCI function, with
 * everything vfio-pci-core keeps about it. A variant driver extends this
 * class for its own state, as mlx5vf_pci_core_device embeds
 * vfio_pci_core_device.
 *
 * The config shadow, the regions and the interrupt state exist from the
 * first open (vfioPciCoreEnable) to the last close (vfioPciCoreDisable).
 */
export class VfioPciCoreDevice extends VfioDevice {
  declare readonly ops: VfioDeviceOps<VfioPciCoreDevice>;
  readonly pdev: PciFunction;
  /** The device's extension points, tapped by variant drivers. */
  readonly hooks: VfioPciCoreHooks;
  readonly vendorInfo: Required<VfioPciVendorInfo>;
  readonly params: VfioPciCoreParams;

  // ---- config virtualization (vfio_pci_config.c) ----
  /** The user's view of config space where it differs from the function's. */
  vconfig: Uint8Array = new Uint8Array(0);
  /** Per byte: the capability id that owns it, or a PCI_CAP_ID_INVALID* marker. */
  configMap: Uint8Array = new Uint8Array(0);
  /** The MSI capability's permissions, which depend on its flags. */
  msiPerm: PermBits | null = null;
  /** Permissions of the vendor-declared shadow-only capabilities, by header offset. */
  readonly virtualCapPerms = new Map<number, PermBits>();
  /** A BAR register was written: recompute the sizing view before the next BAR read. */
  bardirty = true;
  /** The BAR and ROM registers as the host programmed them, to put back after a reset the host did not see. */
  readonly rbar = new Uint32Array(7);
  /** A PCIe or PCI-X 2.0 function with a non-empty extended config space. */
  extendedCaps = false;

  // ---- regions ----
  readonly barMmapSupported: boolean[] = [false, false, false, false, false, false];
  /** Device-specific regions, indexes VFIO_PCI_NUM_REGIONS and up. */
  readonly regions: VfioPciRegion[] = [];
  /** BAR holding the MSI-X table (0xff without MSI-X), and the table's extent in it. */
  msixBar = 0xff;
  msixOffset = 0;
  msixSize = 0;
  hasVga = false;
  readonly ioeventfds: Ioeventfd[] = [];

  // ---- interrupts (vfio_pci_intrs.c) ----
  /** VFIO_PCI_*_IRQ_INDEX in use, VFIO_PCI_NUM_IRQS for none. */
  irqType: number = VFIO_PCI_NUM_IRQS;
  /** Per-vector state of the index in use. */
  readonly irqCtx = new Map<number, IrqContext>();
  /** The user set DisINTx in the virtual command register. */
  virqDisabled = false;
  /** INTx can be masked with DisINTx (PCI 2.3). */
  pci23 = false;
  /** INTx is hidden from the user: a device with broken DisINTx, or nointxmask quirk. */
  nointx = false;
  /** log2 of the MSI vectors enabled, the virtual Multiple Message Capable. */
  msiQmax = 0;
  /** MSI-X vectors can be added while MSI-X is enabled. */
  hasDynMsix = false;
  errTrigger: EventfdCtx | null = null;
  reqTrigger: EventfdCtx | null = null;

  // ---- reset and power ----
  /** A function reset worked at enable: VFIO_DEVICE_RESET is offered. */
  resetWorks = false;
  /** The device was used since it was last reset. */
  needsReset = false;
  /** D3hot -> D0 resets the function, so config state must be saved around it. */
  needsPmRestore = false;
  /** Userspace put the device in low power through VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY*. */
  pmRuntimeEngaged = false;
  pmWakeEventfd: EventfdCtx | null = null;
  /** Config state saved at enable, restored at disable (pci_saved_state). */
  pciSavedState: PciSavedState | null = null;
  /** Config state saved when the user moved the function to D3hot (pm_save). */
  pmSave: PciSavedState | null = null;
  /** A reset is running: BAR mappings fault until it is over. */
  resetting = false;

  // ---- SR-IOV ----
  /** For an SR-IOV PF: the VF token userspace must present for its VFs. */
  vfToken: VfioPciVfToken | null = null;
  /** For a VF whose PF is bound to a vfio-pci-core driver that enabled SR-IOV. */
  sriovPfCoreDev: VfioPciCoreDevice | null = null;

  constructor(pdev: PciFunction, ops: VfioDeviceOps<any>, options: VfioPciCoreDeviceOptions = {}) {
    super(pdev, ops);
    this.pdev = pdev;
    this.hooks = createVfioPciCoreHooks();
    this.vendorInfo = checkVendorInfo(options.vendorInfo ?? {}) as Required<VfioPciVendorInfo>;
    this.params = Object.freeze({ ...defaultVfioPciCoreParams, ...options.params });
  }

  /** The device tolerates I/O page faults, as its driver declared. */
  get ioPageFaultCapable(): boolean {
    return this.vendorInfo.ioPageFaultCapable;
  }

  /** Whether the device's config shadow exists (between first open and last close). */
  get enabled(): boolean {
    return this.vconfig.length !== 0;
  }
}
