import { SimError } from '../errors/index.js';
import type { MmapRequest, MmapTarget, Process } from '../os/index.js';
import { findExtCapability } from '../platform/capabilities/layout.js';
import { PCI_EXT_CAP_ID_SRIOV, PCI_HEADER_TYPE, PCI_HEADER_TYPE_MASK, PCI_HEADER_TYPE_NORMAL } from '../platform/pci-regs.js';
import { VFIO_MIGRATION_STOP_COPY } from '../uapi/index.js';
import type { VfioCore } from '../vfio/vfio-core.js';
import type { IommufdCtxHandle, VfioDeviceOps } from '../vfio/vfio-device-ops.js';
import { vfioPciCoreCloseDevice, vfioPciCoreDisable, vfioPciCoreEnable, vfioPciCoreFinishEnable } from './enable.js';
import { vfioPciCoreIoctlFeature } from './features.js';
import { vfioPciAssignDevSet } from './hot-reset/index.js';
import { vfioPciCoreIoctl } from './ioctl.js';
import { vfioPciProbePowerState, vfioPciSetPowerState } from './power.js';
import { vfioPciCoreMmap } from './regions/mmap.js';
import { vfioPciCoreRead, vfioPciCoreWrite } from './regions/rw.js';
import type { VfioPciCoreDevice } from './vfio-pci-core-device.js';

/*
 * vfio-pci-core's driver entry points (include/linux/vfio_pci_core.h): the
 * default ops table a driver built on vfio-pci-core uses, and the pieces a
 * variant driver calls from its own entries.
 */

/**
 * The open_device a plain driver uses (vfio_pci_open_device): enable the
 * function, let the variant driver register its regions and do its own
 * open work (registerRegions, openDevice hooks), then finish enabling.
 * A failing hook undoes the enable.
 */
export function vfioPciCoreOpenDevice(vdev: VfioPciCoreDevice): void {
  vfioPciCoreEnable(vdev);
  try {
    const hooks = vdev.hooks;
    if (hooks.registerRegions.isUsed()) hooks.registerRegions.call({ vdev });
    if (hooks.openDevice.isUsed()) hooks.openDevice.call({ vdev });
  } catch (error) {
    vfioPciCoreDisable(vdev);
    throw error;
  }
  vfioPciCoreFinishEnable(vdev);
}

/**
 * close_device: the closeDevice hook, then vfio_pci_core_close_device. A
 * close cannot fail, so a throwing tap does not stop the disable; its
 * error is passed on afterwards for the caller to report.
 */
export function vfioPciCoreClose(vdev: VfioPciCoreDevice): void {
  let failure: unknown = null;
  try {
    if (vdev.hooks.closeDevice.isUsed()) vdev.hooks.closeDevice.call({ vdev });
  } catch (error) {
    failure = error;
  }
  vfioPciCoreCloseDevice(vdev);
  if (failure) throw failure;
}

/**
 * vfio_pci_core_request: unregister is waiting for the user to let go of
 * the device; the REQ eventfd asks it to.
 */
export function vfioPciCoreRequest(vdev: VfioPciCoreDevice): void {
  vdev.reqTrigger?.signal();
}

/** vfio_pci_core_aer_err_detected: an uncorrectable error was reported for the function; the ERR eventfd tells the user. */
export function vfioPciCoreAerErrDetected(vdev: VfioPciCoreDevice): void {
  vdev.errTrigger?.signal();
}

const UUID_TEXT = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}/;

/** uuid_parse: the 36-character textual form to 16 bytes; EINVAL when malformed. */
function uuidParse(text: string): Uint8Array {
  if (!UUID_TEXT.test(text)) throw new SimError('INVALID_ARGUMENT', `"${text.slice(0, 36)}" is not a UUID`);
  const hex = text.slice(0, 36).replaceAll('-', '');
  return Uint8Array.from({ length: 16 }, (_, i) => parseInt(hex.slice(i * 2, i * 2 + 2), 16));
}

function uuidEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

/**
 * vfio_pci_core_match_token_uuid: the VF token rules. A VF whose PF is
 * driven by vfio-pci-core needs the PF's token (EACCES without it or with a
 * wrong one); a VF of another PF driver must not be given one (EINVAL). A
 * PF with VFs in use needs the current token; with none in use, a given
 * token becomes the token. Anything else given a token is EINVAL.
 */
export function vfioPciCoreMatchTokenUuid(vdev: VfioPciCoreDevice, uuid: Uint8Array | null): void {
  if (vdev.pdev.isVirtfn) {
    const pf = vdev.sriovPfCoreDev;
    if (!pf?.vfToken) {
      if (uuid) throw new SimError('INVALID_ARGUMENT', `${vdev.name}: VF token given, but the PF is not bound to vfio-pci`);
      return;
    }
    if (!uuid) throw new SimError('ACCESS_DENIED', `${vdev.name}: a VF token is required`);
    if (!uuidEqual(uuid, pf.vfToken.uuid)) throw new SimError('ACCESS_DENIED', `${vdev.name}: wrong VF token`);
    return;
  }
  const token = vdev.vfToken;
  if (token) {
    if (token.users) {
      if (!uuid) throw new SimError('ACCESS_DENIED', `${vdev.name}: VFs are in use; the VF token is required`);
      if (!uuidEqual(uuid, token.uuid)) throw new SimError('ACCESS_DENIED', `${vdev.name}: wrong VF token`);
    } else if (uuid) {
      token.uuid = uuid.slice();
    }
    return;
  }
  if (uuid) throw new SimError('INVALID_ARGUMENT', `${vdev.name}: VF token given to a device that is neither PF nor VF`);
}

/**
 * vfio_pci_core_match: the group's GET_DEVICE_FD name must start with the
 * device's name; what follows, if anything, is a space and options, of
 * which only one "vf_token=<uuid>" is known (EINVAL for anything else, or a
 * second one). The token is then checked (matchTokenUuid op).
 */
export function vfioPciCoreMatch(vdev: VfioPciCoreDevice, buf: string): boolean {
  const name = vdev.name;
  if (!buf.startsWith(name)) return false;
  let rest = buf.slice(name.length);
  let uuid: Uint8Array | null = null;
  if (rest.length) {
    if (rest[0] !== ' ') return false;
    while (rest.length) {
      if (rest[0] === ' ') {
        rest = rest.slice(1);
        continue;
      }
      if (uuid || !rest.startsWith('vf_token=')) throw new SimError('INVALID_ARGUMENT', `${name}: unknown or repeated option in "${buf}"`);
      rest = rest.slice('vf_token='.length);
      if (rest.length < 36) throw new SimError('INVALID_ARGUMENT', `${name}: vf_token is too short`);
      uuid = uuidParse(rest);
      rest = rest.slice(36);
    }
  }
  const check = vdev.ops.matchTokenUuid ?? vfioPciCoreMatchTokenUuid;
  check(vdev, uuid);
  return true;
}

/**
 * vfio-pci-core's ops table. A driver spreads it and names itself
 * (`{ ...vfioPciCoreOps, name: 'vfio-pci' }`); a variant driver overrides
 * entries and calls the exported helpers from its own. The iommufd entries
 * are the vfio core's physical-device glue, reached through the VfioCore
 * the device is registered with.
 */
export const vfioPciCoreOps: VfioDeviceOps<VfioPciCoreDevice> = Object.freeze({
  name: 'vfio-pci-core',
  openDevice: (vdev: VfioPciCoreDevice) => vfioPciCoreOpenDevice(vdev),
  closeDevice: (vdev: VfioPciCoreDevice) => vfioPciCoreClose(vdev),
  ioctl: (vdev: VfioPciCoreDevice, proc: Process, request: number, argp: bigint) => vfioPciCoreIoctl(vdev, proc, request, argp),
  deviceFeature: (vdev: VfioPciCoreDevice, proc: Process, flags: number, argp: bigint, argsz: number) =>
    vfioPciCoreIoctlFeature(vdev, proc, flags, argp, argsz),
  read: (vdev: VfioPciCoreDevice, proc: Process, length: number, offset: bigint) => vfioPciCoreRead(vdev, proc, length, offset),
  write: (vdev: VfioPciCoreDevice, proc: Process, data: Uint8Array, offset: bigint) => vfioPciCoreWrite(vdev, proc, data, offset),
  mmap: (vdev: VfioPciCoreDevice, _proc: Process, offset: bigint, length: bigint, request: MmapRequest): MmapTarget =>
    vfioPciCoreMmap(vdev, offset, length, request),
  request: (vdev: VfioPciCoreDevice) => vfioPciCoreRequest(vdev),
  match: (vdev: VfioPciCoreDevice, name: string) => vfioPciCoreMatch(vdev, name),
  matchTokenUuid: (vdev: VfioPciCoreDevice, uuid: Uint8Array | null) => vfioPciCoreMatchTokenUuid(vdev, uuid),
  bindIommufd: (vdev: VfioPciCoreDevice, ictx: IommufdCtxHandle) => glue(vdev).physicalBind(vdev, ictx),
  unbindIommufd: (vdev: VfioPciCoreDevice) => glue(vdev).physicalUnbind(vdev),
  attachIoas: (vdev: VfioPciCoreDevice, ptId: number) => glue(vdev).physicalAttachIoas(vdev, ptId),
  detachIoas: (vdev: VfioPciCoreDevice) => glue(vdev).physicalDetachIoas(vdev),
  pasidAttachIoas: (vdev: VfioPciCoreDevice, pasid: number, ptId: number) => glue(vdev).physicalPasidAttachIoas(vdev, pasid, ptId),
  pasidDetachIoas: (vdev: VfioPciCoreDevice, pasid: number) => glue(vdev).physicalPasidDetachIoas(vdev, pasid),
});

function glue(vdev: VfioPciCoreDevice): VfioCore['iommufdGlue'] {
  if (!vdev.vfio) throw new SimError('NO_SUCH_DEVICE', `${vdev.name} is not registered with vfio`);
  return vdev.vfio.iommufdGlue;
}

/**
 * A token nobody can guess is what the kernel's uuid_gen gives a PF at
 * bind; the model derives one from the PF's address so runs repeat.
 * Userspace sets its own with VFIO_DEVICE_FEATURE_PCI_VF_TOKEN before
 * relying on it either way.
 */
function initialVfToken(vdev: VfioPciCoreDevice): Uint8Array {
  const seed = new TextEncoder().encode(`vfio-pci vf token ${vdev.name}`);
  const out = new Uint8Array(16);
  seed.forEach((byte, i) => {
    out[i % 16] = (out[i % 16]! * 31 + byte) & 0xff;
  });
  return out;
}

/**
 * vfio_pci_core_register_device: checks the device can be driven (a type 0
 * header; complete migration and dirty-logging ops when any are given;
 * EBUSY for a PF with VFs enabled), puts it in the dev_set of functions a
 * slot or bus reset would also reach (its own set on a root bus or as a
 * VF), gives an SR-IOV PF its VF token, brings it to D0 and lets it idle,
 * then registers it with the vfio core.
 */
export function vfioPciCoreRegisterDevice(vdev: VfioPciCoreDevice, vfio: VfioCore): void {
  const { pdev } = vdev;
  if ((pdev.config.read(PCI_HEADER_TYPE, 1) & PCI_HEADER_TYPE_MASK) !== PCI_HEADER_TYPE_NORMAL) {
    throw new SimError('INVALID_ARGUMENT', `${vdev.name} is a bridge`);
  }
  if (vdev.migOps && !(vdev.migrationFlags & VFIO_MIGRATION_STOP_COPY)) {
    throw new SimError('INVALID_ARGUMENT', `${vdev.name}: migration needs VFIO_MIGRATION_STOP_COPY`);
  }
  if (pdev.virtfns.length > 0) throw new SimError('BUSY', `${vdev.name}: cannot bind to a PF with SR-IOV enabled`);

  vfioPciAssignDevSet(vfio, vdev);
  if (findExtCapability(pdev.config, PCI_EXT_CAP_ID_SRIOV)) vdev.vfToken = { uuid: initialVfToken(vdev), users: 0 };
  vfioPciProbePowerState(vdev);
  vfioPciSetPowerState(vdev, 'D0');
  if (!vdev.params.disableIdleD3) vfioPciSetPowerState(vdev, 'D3hot');
  try {
    vfio.registerGroupDev(vdev);
  } catch (error) {
    vdev.vfToken = null;
    vfioPciSetPowerState(vdev, 'D0');
    throw error;
  }
}

/**
 * vfio_pci_core_unregister_device: leaves the vfio core, which waits
 * (signalling the REQ eventfd) until userspace has closed the device; then
 * the function goes back to D0 for whatever driver comes next.
 */
export async function vfioPciCoreUnregisterDevice(vdev: VfioPciCoreDevice, vfio: VfioCore): Promise<void> {
  await vfio.unregister(vdev);
  vdev.vfToken = null;
  vfioPciSetPowerState(vdev, 'D0');
}
