import { SimError } from '../../errors/index.js';
import {
  PCI_CAPABILITY_LIST,
  PCI_CAP_ID_MSI,
  PCI_CAP_ID_PM,
  PCI_CAP_LIST_NEXT,
  PCI_CAP_SIZEOF,
  PCI_CFG_SPACE_SIZE,
  PCI_COMMAND,
  PCI_COMMAND_MEMORY,
  PCI_DEVICE_ID,
  PCI_INTERRUPT_PIN,
  PCI_MSI_FLAGS,
  PCI_PM_CAP_PME_MASK,
  PCI_PM_CTRL,
  PCI_PM_CTRL_PME_ENABLE,
  PCI_PM_CTRL_PME_STATUS,
  PCI_PM_PMC,
  PCI_STATUS,
  PCI_STATUS_CAP_LIST,
  PCI_STD_HEADER_SIZEOF,
  PCI_VENDOR_ID,
  pciExtCapId,
  pciExtCapNext,
} from '../../platform/pci-regs.js';
import type { VfioPciCoreDevice } from '../vfio-pci-core-device.js';
import { physRead, shadowRead, shadowWrite } from './access.js';
import { PCI_CAP_ID_BASIC, vfioCapLength, vfioExtCapLength, type SizingContext } from './cap-lengths.js';
import { PCI_CAP_ID_FIRST_HIDDEN, PCI_CAP_ID_INVALID, PCI_CAP_ID_INVALID_VIRT } from './config-map.js';
import { RBAR_OFFSETS } from './header.js';
import { msiPerms } from './msi.js';
import { ALL_VIRT, NO_WRITE, PermBits } from './perm-bits.js';
import { defaultRead, defaultWrite } from './access.js';

/*
 * Building the config shadow at first open (vfio_config_init): the header
 * and every exposed capability are copied from the function into vconfig;
 * capabilities vfio hides are unlinked from the chains the user walks; the
 * map records which capability owns each byte so accesses find their
 * permissions.
 */

/** Copies [offset, offset + size) of the function into the shadow, in the widest aligned reads. */
function fillShadow(vdev: VfioPciCoreDevice, offset: number, size: number): void {
  let at = offset;
  let left = size;
  while (left) {
    const width = left >= 4 && at % 4 === 0 ? 4 : left >= 2 && at % 2 === 0 ? 2 : 1;
    shadowWrite(vdev, at, width, physRead(vdev, at, width));
    at += width;
    left -= width;
  }
}

/** Walks the standard list: exposed capabilities are mapped and copied, hidden ones skipped by their predecessor's next pointer. */
function capInit(vdev: VfioPciCoreDevice, sizing: SizingContext): void {
  if (!(physRead(vdev, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST)) return;
  const map = vdev.configMap;
  let pos = physRead(vdev, PCI_CAPABILITY_LIST, 1);
  let prev = PCI_CAPABILITY_LIST;
  let caps = 0;
  for (let loops = (PCI_CFG_SPACE_SIZE - PCI_STD_HEADER_SIZEOF) / PCI_CAP_SIZEOF; pos && loops > 0; loops--) {
    const cap = physRead(vdev, pos, 1);
    const next = physRead(vdev, pos + PCI_CAP_LIST_NEXT, 1);
    const len = vfioCapLength(sizing, cap, pos);
    if (!len) {
      vdev.vconfig[prev] = next;
      pos = next;
      continue;
    }
    const end = Math.min(pos + len, map.length);
    map.fill(cap, pos, end);
    fillShadow(vdev, pos, end - pos);
    if (cap === PCI_CAP_ID_PM) {
      // PME is handled by the host, never by the user.
      shadowWrite(vdev, pos + PCI_PM_PMC, 2, shadowRead(vdev, pos + PCI_PM_PMC, 2) & ~PCI_PM_CAP_PME_MASK);
      shadowWrite(vdev, pos + PCI_PM_CTRL, 2, shadowRead(vdev, pos + PCI_PM_CTRL, 2) & ~(PCI_PM_CTRL_PME_ENABLE | PCI_PM_CTRL_PME_STATUS));
    }
    if (cap === PCI_CAP_ID_MSI && !vdev.msiPerm) vdev.msiPerm = msiPerms(physRead(vdev, pos + PCI_MSI_FLAGS, 2));
    prev = pos + PCI_CAP_LIST_NEXT;
    pos = next;
    caps++;
  }
  if (!caps) shadowWrite(vdev, PCI_STATUS, 2, shadowRead(vdev, PCI_STATUS, 2) & ~PCI_STATUS_CAP_LIST);
}

/**
 * Walks the extended list. A hidden capability is skipped by rewriting its
 * predecessor's next pointer; one that opens the list has no predecessor,
 * so its header stays as an anchor with id and version zeroed. When no
 * extended capability is exposed, the first header reads as zero.
 */
function ecapInit(vdev: VfioPciCoreDevice, sizing: SizingContext): number | null {
  if (!vdev.extendedCaps) return null;
  const map = vdev.configMap;
  let epos = PCI_CFG_SPACE_SIZE;
  let prev: number | null = null;
  let ecaps = 0;
  for (let loops = (vdev.pdev.cfgSize - PCI_CFG_SPACE_SIZE) / PCI_CAP_SIZEOF; loops > 0 && epos >= PCI_CFG_SPACE_SIZE; loops--) {
    const header = physRead(vdev, epos, 4);
    const ecap = pciExtCapId(header);
    let len = vfioExtCapLength(sizing, ecap, epos);
    let hidden = false;
    if (!len) {
      if (prev !== null) {
        epos = pciExtCapNext(header);
        shadowWrite(vdev, prev, 4, ((shadowRead(vdev, prev, 4) & ~(0xffc << 20)) | (epos << 20)) >>> 0);
        continue;
      }
      len = PCI_CAP_SIZEOF;
      hidden = true;
    }
    const end = Math.min(epos + len, map.length);
    map.fill(hidden ? PCI_CAP_ID_FIRST_HIDDEN : ecap, epos, end);
    fillShadow(vdev, epos, end - epos);
    if (hidden) shadowWrite(vdev, epos, 4, (shadowRead(vdev, epos, 4) & (0xffc << 20)) >>> 0);
    else ecaps++;
    prev = epos;
    epos = pciExtCapNext(header);
  }
  if (!ecaps) shadowWrite(vdev, PCI_CFG_SPACE_SIZE, 4, 0);
  return prev;
}

/**
 * Places the capabilities the variant driver declared for the shadow only,
 * linked after the last extended capability the user sees, each ending the
 * chain in turn. Their bytes must not belong to anything vfio exposes.
 */
function virtualCapInit(vdev: VfioPciCoreDevice, last: number | null): void {
  const caps = vdev.vendorInfo.virtualExtCapabilities;
  if (caps.length === 0) return;
  if (!vdev.extendedCaps) {
    throw new SimError('INVALID_ARGUMENT', `${vdev.name}: virtual extended capabilities need a PCIe function with extended config space`);
  }
  const map = vdev.configMap;
  const exposed = shadowRead(vdev, PCI_CFG_SPACE_SIZE, 4) !== 0;
  let prev = exposed ? last : null;
  for (const cap of caps) {
    const end = cap.offset + 4 + cap.body.length;
    for (let at = cap.offset; at < end; at++) {
      const owner = map[at];
      if (owner !== PCI_CAP_ID_INVALID && !(owner === PCI_CAP_ID_FIRST_HIDDEN && prev === null && at < PCI_CFG_SPACE_SIZE + 4)) {
        throw new SimError('INVALID_ARGUMENT', `${vdev.name}: virtual capability 0x${cap.id.toString(16)} overlaps config byte 0x${at.toString(16)}`);
      }
    }
    if (prev === null && cap.offset !== PCI_CFG_SPACE_SIZE) {
      // Nothing opens the list: an anchor at 0x100 points to the capability.
      anchor(vdev, cap.offset);
    } else if (prev !== null) {
      shadowWrite(vdev, prev, 4, ((shadowRead(vdev, prev, 4) & ~(0xffc << 20)) | (cap.offset << 20)) >>> 0);
    }
    map.fill(PCI_CAP_ID_INVALID_VIRT, cap.offset, end);
    shadowWrite(vdev, cap.offset, 4, (cap.id | (cap.version << 16)) >>> 0);
    vdev.vconfig.set(cap.body, cap.offset + 4);
    const perm = new PermBits(4 + cap.body.length, defaultRead, defaultWrite).dword(0, ALL_VIRT, NO_WRITE);
    for (let i = 0; i < cap.body.length; i++) perm.byte(4 + i, 0xff, cap.writable?.[i] ?? 0);
    vdev.virtualCapPerms.set(cap.offset, perm);
    prev = cap.offset;
  }
}

/** A shadow-only header at 0x100 with id 0, leading the user to the first virtual capability. */
function anchor(vdev: VfioPciCoreDevice, next: number): void {
  vdev.configMap.fill(PCI_CAP_ID_INVALID_VIRT, PCI_CFG_SPACE_SIZE, PCI_CFG_SPACE_SIZE + 4);
  shadowWrite(vdev, PCI_CFG_SPACE_SIZE, 4, (next << 20) >>> 0);
  vdev.virtualCapPerms.set(PCI_CFG_SPACE_SIZE, new PermBits(4, defaultRead, defaultWrite).dword(0, ALL_VIRT, NO_WRITE));
}

/**
 * vfio_config_init: builds the shadow and the map. The BAR values are saved
 * for restoring after resets vfio does not see; a VF gets its real ids and
 * no INTx pin; a function without a Memory Space bit gets a virtual one
 * set; INTx is hidden when masking it is broken or no line is routed.
 */
export function vfioConfigInit(vdev: VfioPciCoreDevice): void {
  const { pdev } = vdev;
  const size = pdev.cfgSize;
  vdev.configMap = new Uint8Array(size).fill(PCI_CAP_ID_INVALID);
  vdev.configMap.fill(PCI_CAP_ID_BASIC, 0, PCI_STD_HEADER_SIZEOF);
  vdev.vconfig = new Uint8Array(size);
  vdev.msiPerm = null;
  vdev.virtualCapPerms.clear();
  try {
    fillShadow(vdev, 0, PCI_STD_HEADER_SIZEOF);
    vdev.bardirty = true;
    RBAR_OFFSETS.forEach((offset, i) => {
      vdev.rbar[i] = shadowRead(vdev, offset, 4);
    });
    if (pdev.isVirtfn) {
      shadowWrite(vdev, PCI_VENDOR_ID, 2, pdev.vendorId);
      shadowWrite(vdev, PCI_DEVICE_ID, 2, pdev.deviceId);
      vdev.vconfig[PCI_INTERRUPT_PIN] = 0;
      shadowWrite(vdev, PCI_COMMAND, 2, shadowRead(vdev, PCI_COMMAND, 2) | PCI_COMMAND_MEMORY);
    }
    if (vdev.nointx || !intxRouted(vdev)) vdev.vconfig[PCI_INTERRUPT_PIN] = 0;

    const sizing: SizingContext = { config: pdev.config, extendedCaps: false };
    capInit(vdev, sizing);
    vdev.extendedCaps = sizing.extendedCaps;
    const last = ecapInit(vdev, sizing);
    virtualCapInit(vdev, last);
  } catch (error) {
    vfioConfigFree(vdev);
    throw error;
  }
}

/** The function has an INTx pin the host routed (pdev->irq); VFs never do. */
export function intxRouted(vdev: VfioPciCoreDevice): boolean {
  return !vdev.pdev.isVirtfn && vdev.pdev.spec.interruptPin !== 0;
}

/** vfio_config_free: drops the shadow, the map and the MSI permissions. */
export function vfioConfigFree(vdev: VfioPciCoreDevice): void {
  vdev.vconfig = new Uint8Array(0);
  vdev.configMap = new Uint8Array(0);
  vdev.msiPerm = null;
  vdev.virtualCapPerms.clear();
}
