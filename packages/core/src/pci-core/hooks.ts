import { HookMap, SyncBailHook, SyncHook, SyncWaterfallHook } from 'tapable';
import type { Process } from '../os/index.js';
import { nameTapErrors } from './hook-taps.js';
import type { VfioPciCoreDevice } from './vfio-pci-core-device.js';

/*
 * The extension points of one vfio-pci-core device, declared once per
 * device and frozen (VfioPciCoreDevice.hooks). A variant driver taps them
 * from its probe, naming each tap after its plugin:
 *
 *   vdev.hooks.configWrite.for(0x44).tap({ name: 'mlx5-vfio-pci' }, (ctx) => ...)
 *
 * Every hook is synchronous. The paths that run them answer a system call
 * synchronously — pread/pwrite of the config region, ioctl, open and close
 * of the device file — exactly as the kernel's vfio_pci_core code runs
 * under the caller's syscall without sleeping for a reply, so there is no
 * point at which an asynchronous tap could be awaited. Work a variant
 * driver must do slowly belongs to its own state machine (migration), not
 * to these hooks.
 *
 * A tap that throws aborts the operation with its error (see
 * nameTapErrors: the hook and tap name are added, the errno is kept).
 *
 * Order on the main paths:
 *
 *   open   enable (config shadow built, reset tried) -> registerRegions ->
 *          openDevice -> finish enable (BAR mmaps probed)
 *   close  closeDevice -> disable (interrupts off, regions dropped,
 *          function reset and restored)
 *   config read   default virtualization of the chunk -> configRead
 *   config write  configWrite[dword] -> (unclaimed) default virtualization
 *   reset  beforeReset -> function reset -> reset -> afterReset
 *   ioctl  ioctl[request] -> (unclaimed) vfio-pci-core's ioctls
 *   VFIO_DEVICE_FEATURE  (vfio core's own features) ->
 *          deviceFeature[feature] -> (unclaimed) vfio-pci-core's features
 */

/** Argument of registerRegions, openDevice and closeDevice. */
export interface DeviceContext {
  readonly vdev: VfioPciCoreDevice;
}

/** One config-space chunk as vfio-pci-core splits an access: 1, 2 or 4 bytes, naturally aligned, inside one capability. */
export interface ConfigAccessContext {
  readonly vdev: VfioPciCoreDevice;
  /** Offset of the chunk in config space. */
  readonly offset: number;
  readonly size: 1 | 2 | 4;
}

export interface ConfigWriteContext extends ConfigAccessContext {
  /** The bytes the user wrote, little-endian, `size` bytes wide. */
  readonly value: number;
}

/** What happens to the function around a reset. */
export interface ResetContext {
  readonly vdev: VfioPciCoreDevice;
  /**
   * Why the function is reset: VFIO_DEVICE_RESET; an FLR the user started
   * through the virtualized PCIe or AF FLR bit; a bus or slot reset of
   * VFIO_DEVICE_PCI_HOT_RESET; the reset vfio-pci-core does when the device
   * is first opened; the slot or bus reset of a dev_set when its last device
   * closes. The function reset at last close runs no hooks, as the kernel
   * calls no reset_prepare/reset_done there.
   */
  readonly cause: 'ioctl' | 'config-flr' | 'hot-reset' | 'open' | 'close';
  /** The reset method that ran ('flr', 'pm', 'bus', ...); null before it ran or when none worked. */
  method: string | null;
}

export interface IoctlContext {
  readonly vdev: VfioPciCoreDevice;
  readonly proc: Process;
  readonly request: number;
  readonly argp: bigint;
}

/** VFIO_DEVICE_FEATURE as a device's feature op sees it (struct vfio_device_feature already checked by the vfio core). */
export interface FeatureContext {
  readonly vdev: VfioPciCoreDevice;
  readonly proc: Process;
  /** The user's flags: VFIO_DEVICE_FEATURE_GET / SET / PROBE and the feature id. */
  readonly flags: number;
  /** User address of the feature's payload (the data[] after the 8-byte header). */
  readonly argp: bigint;
  /** The user's argsz, header included (vfio_check_feature compares against it). */
  readonly argsz: number;
}

export interface VfioPciCoreHooks {
  /**
   * SyncHook, sequential. Runs on the first open of the device, after
   * vfio-pci-core has enabled the function (config shadow built), before
   * openDevice. A variant driver registers its device-specific regions here
   * with vfioPciCoreRegisterDevRegion; they are dropped again by the close
   * path. Throwing fails the open and undoes the enable.
   */
  readonly registerRegions: SyncHook<[DeviceContext]>;

  /**
   * SyncWaterfallHook. Runs for every chunk of a config-space read through
   * the config region, after the default virtualization produced the value
   * (virtual bits from the shadow, the rest from the function); each tap
   * receives the previous value and returns the one the user sees. Nothing
   * runs after it for that chunk.
   */
  readonly configRead: SyncWaterfallHook<[number, ConfigAccessContext]>;

  /**
   * HookMap of SyncBailHook, keyed by the dword-aligned offset that
   * contains the chunk (0x44 receives writes to 0x44-0x47 of any size; a
   * chunk never spans two dwords). Runs for every chunk of a config-space
   * write, before the default virtualization. The first tap to return true
   * claims the chunk and the default handling is skipped; returning
   * undefined passes it on. Nothing but the default handling runs after it.
   */
  readonly configWrite: HookMap<SyncBailHook<[ConfigWriteContext], true | undefined>>;

  /**
   * SyncHook, sequential. Runs before the function is reset, with BAR
   * mappings already revoked (the kernel's reset_prepare error handler).
   * Followed by the reset itself, then reset.
   */
  readonly beforeReset: SyncHook<[ResetContext]>;

  /**
   * SyncHook, sequential. Runs right after the function was reset and its
   * saved config state restored: the variant driver's own reset work, such
   * as returning its migration state machine to RUNNING (reset_done in
   * mlx5). Also runs when every reset method failed, with method null.
   * Followed by afterReset.
   */
  readonly reset: SyncHook<[ResetContext]>;

  /**
   * SyncHook, sequential. Runs last, after vfio-pci-core finished its own
   * post-reset work; BAR mappings fault in again from here on if memory
   * decode is enabled. Nothing follows.
   */
  readonly afterReset: SyncHook<[ResetContext]>;

  /**
   * SyncHook, sequential. Runs on the first open, after registerRegions and
   * before BAR mmaps are probed. Throwing fails the open (the device is
   * disabled again, no closeDevice runs).
   */
  readonly openDevice: SyncHook<[DeviceContext]>;

  /**
   * SyncHook, sequential. Runs on the last close, before vfio-pci-core
   * disables the function (interrupts still configured, regions still
   * registered). A throw does not stop the close: vfio-pci-core still
   * disables the function, then rethrows the tap's error to the vfio core.
   */
  readonly closeDevice: SyncHook<[DeviceContext]>;

  /**
   * HookMap of SyncBailHook, keyed by ioctl request number. Runs for every
   * ioctl the vfio core passes to the device's ops, before vfio-pci-core's
   * own handling; the first tap returning a number answers the ioctl with
   * it (a tap fails the ioctl by throwing a SimError, whose errno the
   * caller sees). Unclaimed requests go to vfio-pci-core, which answers
   * ENOTTY for ones it does not know.
   */
  readonly ioctl: HookMap<SyncBailHook<[IoctlContext], number | undefined>>;

  /**
   * HookMap of SyncBailHook, keyed by feature id (flags &
   * VFIO_DEVICE_FEATURE_MASK). Runs for features the vfio core does not
   * answer itself, before vfio-pci-core's features (low power, VF token).
   * The first tap returning a number answers (errors are thrown as
   * SimError); taps check the request with vfioCheckFeature. Unclaimed
   * features end in ENOTTY.
   */
  readonly deviceFeature: HookMap<SyncBailHook<[FeatureContext], number | undefined>>;
}

/** The hook object of one device; every hook reports tap errors under its name. */
export function createVfioPciCoreHooks(): VfioPciCoreHooks {
  return Object.freeze({
    registerRegions: nameTapErrors(new SyncHook<[DeviceContext]>(['ctx']), 'registerRegions'),
    configRead: nameTapErrors(new SyncWaterfallHook<[number, ConfigAccessContext]>(['value', 'ctx']), 'configRead'),
    configWrite: new HookMap(
      (offset: number) =>
        nameTapErrors(new SyncBailHook<[ConfigWriteContext], true | undefined>(['ctx']), `configWrite[0x${offset.toString(16)}]`),
      'configWrite',
    ),
    beforeReset: nameTapErrors(new SyncHook<[ResetContext]>(['ctx']), 'beforeReset'),
    reset: nameTapErrors(new SyncHook<[ResetContext]>(['ctx']), 'reset'),
    afterReset: nameTapErrors(new SyncHook<[ResetContext]>(['ctx']), 'afterReset'),
    openDevice: nameTapErrors(new SyncHook<[DeviceContext]>(['ctx']), 'openDevice'),
    closeDevice: nameTapErrors(new SyncHook<[DeviceContext]>(['ctx']), 'closeDevice'),
    ioctl: new HookMap(
      (request: number) =>
        nameTapErrors(new SyncBailHook<[IoctlContext], number | undefined>(['ctx']), `ioctl[0x${(request >>> 0).toString(16)}]`),
      'ioctl',
    ),
    deviceFeature: new HookMap(
      (feature: number) =>
        nameTapErrors(new SyncBailHook<[FeatureContext], number | undefined>(['ctx']), `deviceFeature[${feature}]`),
      'deviceFeature',
    ),
  });
}
