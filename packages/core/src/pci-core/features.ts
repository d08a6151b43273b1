import { SimError } from '../errors/index.js';
import type { Process } from '../os/index.js';
import {
  VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY,
  VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP,
  VFIO_DEVICE_FEATURE_LOW_POWER_EXIT,
  VFIO_DEVICE_FEATURE_MASK,
  VFIO_DEVICE_FEATURE_PCI_VF_TOKEN,
  VFIO_DEVICE_FEATURE_SET,
} from '../uapi/index.js';
import { vfioCheckFeature } from '../vfio/device-feature.js';
import { vfioPciFeatureLowPowerEntry, vfioPciFeatureLowPowerEntryWithWakeup, vfioPciFeatureLowPowerExit } from './power.js';
import type { VfioPciCoreDevice } from './vfio-pci-core-device.js';

const UUID_SIZE = 16;

/**
 * VFIO_DEVICE_FEATURE_PCI_VF_TOKEN: sets the token a PF's VFs must be
 * opened with. ENOTTY unless the device is an SR-IOV PF; SET only, since
 * reading it back would leak the previous user's token.
 */
function featureVfToken(vdev: VfioPciCoreDevice, proc: Process, flags: number, argp: bigint, argsz: number): number {
  const token = vdev.vfToken;
  if (!token) throw new SimError('NO_HANDLER', `${vdev.name} is not an SR-IOV PF`);
  if (vfioCheckFeature(flags, argsz, VFIO_DEVICE_FEATURE_SET, UUID_SIZE) === 0) return 0;
  token.uuid = proc.mm.copyFromUser(argp, UUID_SIZE);
  return 0;
}

/**
 * vfio_pci_core_ioctl_feature, behind the deviceFeature hook: the first
 * tap that answers wins; otherwise the low-power features and the VF
 * token; any other feature is ENOTTY.
 */
export function vfioPciCoreIoctlFeature(vdev: VfioPciCoreDevice, proc: Process, flags: number, argp: bigint, argsz: number): number {
  const feature = flags & VFIO_DEVICE_FEATURE_MASK;
  const hook = vdev.hooks.deviceFeature.get(feature);
  if (hook?.isUsed()) {
    const answer = hook.call({ vdev, proc, flags, argp, argsz });
    if (answer !== undefined) return answer;
  }
  switch (feature) {
    case VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY:
      return vfioPciFeatureLowPowerEntry(vdev, flags, argsz);
    case VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP:
      return vfioPciFeatureLowPowerEntryWithWakeup(vdev, proc, flags, argp, argsz);
    case VFIO_DEVICE_FEATURE_LOW_POWER_EXIT:
      return vfioPciFeatureLowPowerExit(vdev, flags, argsz);
    case VFIO_DEVICE_FEATURE_PCI_VF_TOKEN:
      return featureVfToken(vdev, proc, flags, argp, argsz);
    default:
      throw new SimError('NO_HANDLER', `${vdev.name} has no device feature ${feature}`);
  }
}
