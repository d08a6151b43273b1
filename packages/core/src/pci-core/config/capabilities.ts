import {
  PCI_AF_CAP,
  PCI_AF_CAP_FLR,
  PCI_AF_CAP_TP,
  PCI_AF_CTRL,
  PCI_AF_CTRL_FLR,
  PCI_CAP_AF_SIZEOF,
  PCI_CAP_EXP_ENDPOINT_SIZEOF_V2,
  PCI_CAP_ID_AF,
  PCI_CAP_ID_EXP,
  PCI_CAP_ID_PCIX,
  PCI_CAP_ID_PM,
  PCI_CAP_ID_VNDR,
  PCI_CAP_LIST_NEXT,
  PCI_CAP_PCIX_SIZEOF_V2,
  PCI_ERR_CAP,
  PCI_ERR_CAP_ECRC_CHKE,
  PCI_ERR_CAP_ECRC_GENE,
  PCI_ERR_COR_ADV_NFAT,
  PCI_ERR_COR_BAD_DLLP,
  PCI_ERR_COR_BAD_TLP,
  PCI_ERR_COR_INTERNAL,
  PCI_ERR_COR_LOG_OVER,
  PCI_ERR_COR_MASK,
  PCI_ERR_COR_RCVR,
  PCI_ERR_COR_REP_ROLL,
  PCI_ERR_COR_REP_TIMER,
  PCI_ERR_COR_STATUS,
  PCI_ERR_ROOT_COMMAND,
  PCI_ERR_UNC_ACSV,
  PCI_ERR_UNC_ATOMEG,
  PCI_ERR_UNC_COMP_ABORT,
  PCI_ERR_UNC_COMP_TIME,
  PCI_ERR_UNC_DLP,
  PCI_ERR_UNC_ECRC,
  PCI_ERR_UNC_FCP,
  PCI_ERR_UNC_INTN,
  PCI_ERR_UNC_MALF_TLP,
  PCI_ERR_UNC_MCBTLP,
  PCI_ERR_UNC_POISON_TLP,
  PCI_ERR_UNC_RX_OVER,
  PCI_ERR_UNC_SURPDN,
  PCI_ERR_UNC_TLPPRE,
  PCI_ERR_UNC_UND,
  PCI_ERR_UNC_UNSUP,
  PCI_ERR_UNC_UNX_COMP,
  PCI_ERR_UNCOR_MASK,
  PCI_ERR_UNCOR_SEVER,
  PCI_ERR_UNCOR_STATUS,
  PCI_EXP_DEVCAP,
  PCI_EXP_DEVCAP_FLR,
  PCI_EXP_DEVCTL,
  PCI_EXP_DEVCTL2,
  PCI_EXP_DEVCTL2_ARI,
  PCI_EXP_DEVCTL_BCR_FLR,
  PCI_EXP_DEVCTL_PAYLOAD,
  PCI_EXP_DEVCTL_PHANTOM,
  PCI_EXP_DEVCTL_READRQ,
  PCI_EXT_CAP_ID_DVSEC,
  PCI_EXT_CAP_ID_ERR,
  PCI_EXT_CAP_ID_PWR,
  PCI_EXT_CAP_ID_VNDR,
  PCI_EXT_CAP_PWR_SIZEOF,
  PCI_PM_CAP_PME_MASK,
  PCI_PM_CTRL,
  PCI_PM_CTRL_PME_ENABLE,
  PCI_PM_CTRL_PME_STATUS,
  PCI_PM_CTRL_STATE_MASK,
  PCI_PM_PMC,
  PCI_PM_SIZEOF,
  PCI_PWR_DATA,
  PCI_X_CMD,
  PCI_X_ECC_CSR,
} from '../../platform/pci-regs.js';
import { vfioPciSetPowerState } from '../power.js';
import { vfioPciTryResetFunction } from '../reset.js';
import type { VfioPciCoreDevice } from '../vfio-pci-core-device.js';
import { defaultRead, defaultWrite, directRead, physRead, physWrite, rawWrite, shadowRead, shadowWrite } from './access.js';
import { ALL_VIRT, ALL_WRITE, NO_VIRT, NO_WRITE, PermBits } from './perm-bits.js';

/*
 * Permission tables of the capabilities vfio-pci filters, and the write
 * side effects some of them need (vfio_pci_config.c's init_pci_cap_*_perm
 * and *_config_write). Every capability keeps its next pointer virtual so
 * hidden capabilities can be unlinked.
 */

/**
 * The PowerState bits are not writable: vfio carries out the transition
 * itself (saving and restoring state for functions that reset on
 * D3hot->D0) when the user writes PMCSR.
 */
function pmWrite(vdev: VfioPciCoreDevice, pos: number, count: number, perm: PermBits, offset: number, value: number): void {
  defaultWrite(vdev, pos, count, perm, offset, value);
  if (offset !== PCI_PM_CTRL) return;
  const states = ['D0', 'D1', 'D2', 'D3hot'] as const;
  vfioPciSetPowerState(vdev, states[value & PCI_PM_CTRL_STATE_MASK]);
}

/**
 * Both the virtual FLR bit and MRRS: an FLR request resets the function
 * (through vfio's reset path, when DevCap says FLR exists) and the bit
 * always reads back 0; a changed MRRS goes to the function, but never
 * below the function's MPS, since the user cannot know the fabric's MPS.
 */
function expWrite(vdev: VfioPciCoreDevice, pos: number, count: number, perm: PermBits, offset: number, value: number): void {
  const ctrlAt = pos - offset + PCI_EXP_DEVCTL;
  const readrq = shadowRead(vdev, ctrlAt, 2) & PCI_EXP_DEVCTL_READRQ;
  defaultWrite(vdev, pos, count, perm, offset, value);

  const ctrl = shadowRead(vdev, ctrlAt, 2);
  if (ctrl & PCI_EXP_DEVCTL_BCR_FLR) {
    shadowWrite(vdev, ctrlAt, 2, ctrl & ~PCI_EXP_DEVCTL_BCR_FLR);
    const devcap = physRead(vdev, pos - offset + PCI_EXP_DEVCAP, 4);
    if (devcap & PCI_EXP_DEVCAP_FLR) vfioPciTryResetFunction(vdev, 'config-flr');
  }

  const newReadrq = shadowRead(vdev, ctrlAt, 2) & PCI_EXP_DEVCTL_READRQ;
  if (newReadrq !== readrq) {
    const physCtrl = physRead(vdev, ctrlAt, 2);
    const mps = 128 << ((physCtrl & PCI_EXP_DEVCTL_PAYLOAD) >> 5);
    const bytes = Math.max(128 << (newReadrq >> 12), mps);
    // pcie_set_readrq: MRRS tops out at 4096 bytes (encoding 5).
    if (bytes <= 4096) {
      const encoded = (Math.log2(bytes) - 7) << 12;
      physWrite(vdev, ctrlAt, 2, (physCtrl & ~PCI_EXP_DEVCTL_READRQ) | encoded);
    }
  }
}

/** Conventional PCI's FLR: honoured only with both the FLR and Transactions Pending capabilities. */
function afWrite(vdev: VfioPciCoreDevice, pos: number, count: number, perm: PermBits, offset: number, value: number): void {
  const ctrlAt = pos - offset + PCI_AF_CTRL;
  defaultWrite(vdev, pos, count, perm, offset, value);
  const ctrl = shadowRead(vdev, ctrlAt, 1);
  if (!(ctrl & PCI_AF_CTRL_FLR)) return;
  shadowWrite(vdev, ctrlAt, 1, ctrl & ~PCI_AF_CTRL_FLR);
  const cap = physRead(vdev, pos - offset + PCI_AF_CAP, 1);
  if (cap & PCI_AF_CAP_FLR && cap & PCI_AF_CAP_TP) vfioPciTryResetFunction(vdev, 'config-flr');
}

/** Power Management: PME is the host's business, so its support and state are hidden. */
function pmPerms(): PermBits {
  return new PermBits(PCI_PM_SIZEOF, defaultRead, pmWrite)
    .byte(PCI_CAP_LIST_NEXT, 0xff, NO_WRITE)
    .word(PCI_PM_PMC, PCI_PM_CAP_PME_MASK, NO_WRITE)
    .dword(
      PCI_PM_CTRL,
      PCI_PM_CTRL_PME_ENABLE | PCI_PM_CTRL_PME_STATUS,
      ~(PCI_PM_CTRL_PME_ENABLE | PCI_PM_CTRL_PME_STATUS | PCI_PM_CTRL_STATE_MASK) >>> 0,
    );
}

/** PCI-X: command and ECC control/status are the user's. */
function pcixPerms(): PermBits {
  return new PermBits(PCI_CAP_PCIX_SIZEOF_V2, defaultRead, defaultWrite)
    .byte(PCI_CAP_LIST_NEXT, 0xff, NO_WRITE)
    .word(PCI_X_CMD, NO_VIRT, 0xffff)
    .dword(PCI_X_ECC_CSR, NO_VIRT, ALL_WRITE);
}

/**
 * PCI Express: device control is writable except Phantom Functions (which
 * would confuse the IOMMU); MPS is virtual, since the right value depends
 * on the whole fabric; FLR and MRRS are virtual and handled by expWrite;
 * ARI Forwarding in DevCtl2 is the host's.
 */
function expPerms(): PermBits {
  return new PermBits(PCI_CAP_EXP_ENDPOINT_SIZEOF_V2, defaultRead, expWrite)
    .byte(PCI_CAP_LIST_NEXT, 0xff, NO_WRITE)
    .word(PCI_EXP_DEVCTL, PCI_EXP_DEVCTL_BCR_FLR | PCI_EXP_DEVCTL_PAYLOAD | PCI_EXP_DEVCTL_READRQ, ~PCI_EXP_DEVCTL_PHANTOM & 0xffff)
    .word(PCI_EXP_DEVCTL2, NO_VIRT, ~PCI_EXP_DEVCTL2_ARI & 0xffff);
}

function afPerms(): PermBits {
  return new PermBits(PCI_CAP_AF_SIZEOF, defaultRead, afWrite)
    .byte(PCI_CAP_LIST_NEXT, 0xff, NO_WRITE)
    .byte(PCI_AF_CTRL, PCI_AF_CTRL_FLR, PCI_AF_CTRL_FLR);
}

/** AER: the user may mask, set severity and clear error status, and toggle ECRC; the header dword is virtual. */
function aerPerms(): PermBits {
  const uncor =
    PCI_ERR_UNC_UND | PCI_ERR_UNC_DLP | PCI_ERR_UNC_SURPDN | PCI_ERR_UNC_POISON_TLP | PCI_ERR_UNC_FCP |
    PCI_ERR_UNC_COMP_TIME | PCI_ERR_UNC_COMP_ABORT | PCI_ERR_UNC_UNX_COMP | PCI_ERR_UNC_RX_OVER |
    PCI_ERR_UNC_MALF_TLP | PCI_ERR_UNC_ECRC | PCI_ERR_UNC_UNSUP | PCI_ERR_UNC_ACSV | PCI_ERR_UNC_INTN |
    PCI_ERR_UNC_MCBTLP | PCI_ERR_UNC_ATOMEG | PCI_ERR_UNC_TLPPRE;
  const cor =
    PCI_ERR_COR_RCVR | PCI_ERR_COR_BAD_TLP | PCI_ERR_COR_BAD_DLLP | PCI_ERR_COR_REP_ROLL |
    PCI_ERR_COR_REP_TIMER | PCI_ERR_COR_ADV_NFAT | PCI_ERR_COR_INTERNAL | PCI_ERR_COR_LOG_OVER;
  return new PermBits(PCI_ERR_ROOT_COMMAND, defaultRead, defaultWrite)
    .dword(0, ALL_VIRT, NO_WRITE)
    .dword(PCI_ERR_UNCOR_STATUS, NO_VIRT, uncor)
    .dword(PCI_ERR_UNCOR_MASK, NO_VIRT, uncor)
    .dword(PCI_ERR_UNCOR_SEVER, NO_VIRT, uncor)
    .dword(PCI_ERR_COR_STATUS, NO_VIRT, cor)
    .dword(PCI_ERR_COR_MASK, NO_VIRT, cor)
    .dword(PCI_ERR_CAP, NO_VIRT, PCI_ERR_CAP_ECRC_GENE | PCI_ERR_CAP_ECRC_CHKE);
}

/** Power Budgeting: the data selector may be written; the data stays read-only. */
function pwrPerms(): PermBits {
  return new PermBits(PCI_EXT_CAP_PWR_SIZEOF, defaultRead, defaultWrite).dword(0, ALL_VIRT, NO_WRITE).byte(PCI_PWR_DATA, NO_VIRT, 0xff);
}

/** Read-only, straight from the function but for the chain bytes: every capability without its own table. */
export const directReadOnly = new PermBits(0, directRead, null);

/** Vendor-specific capabilities: read like any capability, written raw (their meaning is the driver's). */
const directRawWrite = new PermBits(0, directRead, rawWrite);

/** Permissions of standard capabilities by id; absent ids are read-only. MSI's depend on the device. */
export const capPerms: ReadonlyMap<number, PermBits> = new Map([
  [PCI_CAP_ID_PM, pmPerms()],
  [PCI_CAP_ID_PCIX, pcixPerms()],
  [PCI_CAP_ID_VNDR, directRawWrite],
  [PCI_CAP_ID_EXP, expPerms()],
  [PCI_CAP_ID_AF, afPerms()],
]);

/** Permissions of extended capabilities by id; absent ids are read-only. */
export const ecapPerms: ReadonlyMap<number, PermBits> = new Map([
  [PCI_EXT_CAP_ID_ERR, aerPerms()],
  [PCI_EXT_CAP_ID_PWR, pwrPerms()],
  [PCI_EXT_CAP_ID_VNDR, directRawWrite],
  [PCI_EXT_CAP_ID_DVSEC, directRawWrite],
]);
