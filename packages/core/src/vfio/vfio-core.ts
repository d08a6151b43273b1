import { inject, injectable } from 'tsyringe';
import { SimError } from '../errors/index.js';
import type { HostOptions } from '../host/host-options.js';
import type { IommuCore } from '../iommu/iommu-core.js';
import { WaitQueue, type Process, type System, type Timer } from '../os/index.js';
import { DRIVER_CORE, HOST_OPTIONS, IOMMU_CORE, IOMMUFD_KAPI, SYSTEM } from '../tokens.js';
import { openContainer } from './container.js';
import { DevSet } from './dev-set.js';
import { openCdevDeviceFile } from './device-file.js';
import type { DriverCore } from './driver-core.js';
import { VfioGroup } from './group.js';
import { Ida } from './ida.js';
import type { IommuGroupHandle } from './iommu-group-kapi.js';
import type { IommufdKapi } from './iommufd-kapi.js';
import { VfioIommufdGlue } from './iommufd-glue.js';
import { KernelLog } from './kernel-log.js';
import { createNoiommuDriver } from './noiommu-driver.js';
import { iommuClientOf, type VfioDevice, type VfioInterfaces } from './vfio-device.js';
import type { VfioGroupType, VfioIommuDriverOps } from './vfio-iommu-driver.js';

/** MINORMASK: vfio device and group minors are 20-bit. */
const MINORMASK = (1 << 20) - 1;
/** vfio_unregister_group_dev asks the driver to release the device this often (HZ * 10). */
export const VFIO_UNREGISTER_REQUEST_INTERVAL_NS = 10_000_000_000n;
/** The misc device /dev/vfio/vfio (the container). */
export const VFIO_CONTAINER_PATH = '/dev/vfio/vfio';

/** How a driver registers a device beyond its type: which interfaces it exposes (default: both). */
export type VfioRegisterOptions = Partial<VfioInterfaces>;

/**
 * The vfio module (drivers/vfio/vfio_main.c with group.c, container.c and
 * device_cdev.c): vfio drivers register their devices here, and the core
 * publishes them to userspace as /dev/vfio/<group> files (with the
 * /dev/vfio/vfio container) and /dev/vfio/devices/vfioN cdevs.
 *
 * Registration errors follow __vfio_register_dev: a driver without the four
 * iommufd ops, a device with no IOMMU group (unless noiommu mode is on), or
 * a device registered twice in its group is EINVAL with a warning in `log`
 * (the kernel's WARN_ON: these are driver bugs).
 */
@injectable()
export class VfioCore {
  /** What vfio logged: WARN_ONs for driver bugs, noiommu notices. */
  readonly log = new KernelLog();
  /** The iommufd half of the device ops (vfio_iommufd_physical_* / _emulated_*). */
  readonly iommufdGlue: VfioIommufdGlue;
  /** The container back end every kernel with CONFIG_VFIO_NOIOMMU registers at load. */
  readonly noiommuDriver: VfioIommuDriverOps;
  readonly #deviceIda = new Ida(MINORMASK);
  /** Group ids given to software (noiommu, emulated) IOMMU groups. */
  readonly #softwareGroupIda = new Ida(MINORMASK);
  /** vfio groups of hardware IOMMU groups, by group id. */
  readonly #groups = new Map<number, VfioGroup>();
  readonly #devSets = new Map<unknown, DevSet>();
  /** Container back ends, newest first (the kernel's list_add). */
  readonly #iommuDrivers: VfioIommuDriverOps[] = [];
  readonly #registered = new Set<VfioDevice>();
  #noiommu: boolean;

  /**
   * capable(CAP_SYS_RAWIO), which no-IOMMU groups and devices demand. The
   * model's processes carry no credentials, so every process counts as
   * privileged (the root a VMM runs as) unless this is replaced.
   */
  capableRawio: (proc: Process) => boolean = () => true;

  constructor(
    @inject(SYSTEM) readonly system: System,
    @inject(DRIVER_CORE) readonly drivers: DriverCore,
    @inject(IOMMU_CORE) readonly iommu: IommuCore,
    @inject(IOMMUFD_KAPI) readonly iommufd: IommufdKapi,
    @inject(HOST_OPTIONS) options: Pick<HostOptions, 'noiommu'>,
  ) {
    this.#noiommu = options.noiommu;
    this.iommufdGlue = new VfioIommufdGlue(iommufd, iommu);
    this.noiommuDriver = createNoiommuDriver(() => this.#noiommu);
    this.#iommuDrivers.push(this.noiommuDriver);
    system.devfs.register(VFIO_CONTAINER_PATH, (_proc, flags) => openContainer(this, flags));
  }

  /**
   * enable_unsafe_noiommu_mode (a writable module parameter): devices with
   * no IOMMU registered while it is on get a /dev/vfio/noiommu-N group.
   */
  get noiommu(): boolean {
    return this.#noiommu;
  }

  set noiommu(enabled: boolean) {
    this.#noiommu = enabled;
  }

  // ------------------------------------------------------------ container back ends

  /** vfio_register_iommu_driver: EINVAL for a driver registered already. */
  registerIommuDriver(ops: VfioIommuDriverOps): void {
    if (this.#iommuDrivers.includes(ops)) throw new SimError('INVALID_ARGUMENT', `IOMMU driver ${ops.name} is already registered`);
    this.#iommuDrivers.unshift(ops);
  }

  unregisterIommuDriver(ops: VfioIommuDriverOps): void {
    const at = this.#iommuDrivers.indexOf(ops);
    if (at >= 0) this.#iommuDrivers.splice(at, 1);
  }

  /** Registered container back ends, in the order VFIO_SET_IOMMU tries them. */
  get iommuDrivers(): readonly VfioIommuDriverOps[] {
    return this.#iommuDrivers;
  }

  // ------------------------------------------------------------ device sets

  /**
   * vfio_assign_device_set: puts the device in the set named by `setId`
   * (any value compared by identity: a slot, a bus), creating the set on
   * first use. EINVAL for a null or undefined id.
   */
  assignDeviceSet(vdev: VfioDevice, setId: unknown): DevSet {
    if (setId === null || setId === undefined) {
      this.log.warn(vdev.name, 'vfio_assign_device_set without a set id');
      throw new SimError('INVALID_ARGUMENT', `${vdev.name}: a device set needs an id`);
    }
    let set = this.#devSets.get(setId);
    if (!set) {
      set = new DevSet(setId);
      this.#devSets.set(setId, set);
    }
    set.devices.push(vdev);
    vdev.devSet = set;
    return set;
  }

  /** vfio_find_device_in_devset: the vfio device of the set wrapping `dev`, if any. */
  findDeviceInDevSet(set: DevSet, dev: object): VfioDevice | undefined {
    return set.devices.find((vdev) => vdev.dev === dev);
  }

  #releaseDeviceSet(vdev: VfioDevice): void {
    const set = vdev.devSet;
    if (!set) return;
    set.devices.splice(set.devices.indexOf(vdev), 1);
    if (set.devices.length === 0) this.#devSets.delete(set.setId);
    vdev.devSet = null;
  }

  // ------------------------------------------------------------ registration

  /** vfio_register_group_dev: a physical device behind an IOMMU (or without one in noiommu mode). */
  registerGroupDev(vdev: VfioDevice, options: VfioRegisterOptions = {}): void {
    this.#register(vdev, 'iommu', options);
  }

  /**
   * vfio_register_emulated_iommu_dev: a device that reaches memory only
   * through the container's or iommufd's pin and read paths; it gets a
   * software group of its own.
   */
  registerEmulatedIommuDev(vdev: VfioDevice, options: VfioRegisterOptions = {}): void {
    this.#register(vdev, 'emulated', options);
  }

  #register(vdev: VfioDevice, type: 'iommu' | 'emulated', options: VfioRegisterOptions): void {
    const ops = vdev.ops;
    if (!ops.bindIommufd || !ops.unbindIommufd || !ops.attachIoas || !ops.detachIoas) {
      this.log.warn(vdev.name, `driver ${ops.name} registers a device without bind_iommufd, unbind_iommufd, attach_ioas and detach_ioas`);
      throw new SimError('INVALID_ARGUMENT', `${vdev.name}: driver ${ops.name} lacks the iommufd ops`);
    }
    if (vdev.refcount !== 0 || this.#isRegisteredDev(vdev)) {
      this.log.warn(vdev.name, `driver bug: ${vdev.name} is registered with vfio twice`);
      throw new SimError('INVALID_ARGUMENT', `${vdev.name} is already registered with vfio`);
    }
    const interfaces: VfioInterfaces = { group: true, cdev: true, ...options };
    this.#initDevice(vdev);
    let group: VfioGroup | null = null;
    try {
      if (!vdev.devSet) this.assignDeviceSet(vdev, vdev);
      group = this.#setGroup(vdev, type, interfaces);
      const cdev = interfaces.cdev && group?.type !== 'noiommu';
      if (cdev) this.system.devfs.register(this.cdevPath(vdev), (_proc, flags) => openCdevDeviceFile(vdev, flags));
      vdev.interfaces = { group: interfaces.group, cdev };
    } catch (error) {
      if (group) this.#removeGroup(group);
      this.#releaseDevice(vdev);
      throw error;
    }
    vdev.group = group;
    vdev.vfio = this;
    vdev.refcount = 1;
    vdev.registrationWait = new WaitQueue(this.system.clock);
    group?.devices.unshift(vdev);
    this.#registered.add(vdev);
  }

  /** vfio_group_has_device: another registered vfio device wraps the same struct device. */
  #isRegisteredDev(vdev: VfioDevice): boolean {
    for (const other of this.#registered) if (other.dev === vdev.dev) return true;
    return false;
  }

  /** vfio_init_device: the lowest free minor, then the driver's init op. */
  #initDevice(vdev: VfioDevice): void {
    vdev.index = this.#deviceIda.alloc();
    try {
      vdev.ops.init?.(vdev);
    } catch (error) {
      this.#deviceIda.free(vdev.index);
      vdev.index = -1;
      throw error;
    }
  }

  /** vfio_device_release: the set, the minor, then the driver's release op. */
  #releaseDevice(vdev: VfioDevice): void {
    this.#releaseDeviceSet(vdev);
    this.#deviceIda.free(vdev.index);
    vdev.index = -1;
    vdev.ops.release?.(vdev);
  }

  /**
   * vfio_device_set_group: the vfio group of the device's IOMMU group,
   * created on the first device; a no-IOMMU or emulated device gets a
   * software group of its own. EINVAL for a device with no IOMMU group
   * outside noiommu mode. null when the device is registered without the
   * group interface.
   */
  #setGroup(vdev: VfioDevice, type: 'iommu' | 'emulated', interfaces: VfioInterfaces): VfioGroup | null {
    const groupId = type === 'iommu' ? this.#groupIdOf(vdev) : null;
    // No-IOMMU devices exist only as groups (CONFIG_VFIO_NOIOMMU needs CONFIG_VFIO_GROUP).
    if (type === 'iommu' && groupId === null && (!this.#noiommu || !interfaces.group)) {
      throw new SimError('INVALID_ARGUMENT', `${vdev.name} is not behind an IOMMU and noiommu mode is off`);
    }
    if (!interfaces.group) return null;
    if (groupId !== null) {
      const existing = this.#groups.get(groupId);
      if (existing) {
        existing.drivers++;
        return existing;
      }
      return this.#createGroup({ id: groupId }, 'iommu');
    }
    const softwareType: VfioGroupType = type === 'emulated' ? 'emulated' : 'noiommu';
    const id = this.#softwareGroupIda.alloc((candidate) => this.iommu.group(candidate) !== undefined || this.#groups.has(candidate));
    if (softwareType === 'noiommu') this.log.warn(vdev.name, 'Adding kernel taint for vfio-noiommu group on device');
    return this.#createGroup({ id }, softwareType);
  }

  /** iommu_group_get(dev): null for a device no IOMMU translates for. */
  #groupIdOf(vdev: VfioDevice): number | null {
    const client = iommuClientOf(vdev.dev);
    return client ? this.iommu.groupIdOf(client) : null;
  }

  #createGroup(iommuGroup: IommuGroupHandle, type: VfioGroupType): VfioGroup {
    const group = new VfioGroup(this, iommuGroup, type);
    this.system.devfs.register(group.devPath, (proc, flags) => group.open(proc, flags));
    if (type === 'iommu') this.#groups.set(iommuGroup.id, group);
    return group;
  }

  /** vfio_device_remove_group: the last device out removes the node and detaches the container. */
  #removeGroup(group: VfioGroup): void {
    if (--group.drivers !== 0) return;
    this.system.devfs.unregister(group.devPath);
    if (group.type === 'iommu') this.#groups.delete(group.id);
    else this.#softwareGroupIda.free(group.id);
    if (group.container) group.container.detachGroup(group);
    group.iommuGroup = null;
  }

  /** The /dev path of the device's cdev. */
  cdevPath(vdev: VfioDevice): string {
    return `/dev/vfio/devices/vfio${vdev.index}`;
  }

  /**
   * vfio_unregister_group_dev: the device leaves its group and loses its
   * cdev (no new opens), then this waits on the virtual clock until every
   * file of the device is closed, calling the driver's request op (vfio-pci
   * signals its REQ interrupt) at once and again every 10 virtual seconds.
   * Then the group goes if this was its last device, and the device is
   * released (its minor is free again).
   */
  async unregister(vdev: VfioDevice): Promise<void> {
    if (!this.#registered.has(vdev)) throw new SimError('NO_SUCH_DEVICE', `${vdev.name} is not registered with vfio`);
    const group = vdev.group;
    if (group) group.devices.splice(group.devices.indexOf(vdev), 1);
    if (vdev.interfaces.cdev) this.system.devfs.unregister(this.cdevPath(vdev));
    this.putRegistration(vdev);
    if (vdev.refcount !== 0) {
      // The requests run from the clock, so each one happens at its exact
      // virtual time (0, 10 s, 20 s ...), however the caller advances time.
      let count = 0;
      let timer: Timer | null = null;
      const ask = (): void => {
        if (vdev.refcount === 0) return;
        vdev.ops.request?.(vdev, count++);
        timer = this.system.clock.after(VFIO_UNREGISTER_REQUEST_INTERVAL_NS, ask);
      };
      ask();
      await vdev.registrationWait!.waitEvent(() => vdev.refcount === 0);
      (timer as Timer | null)?.cancel();
    }
    if (group) this.#removeGroup(group);
    this.#registered.delete(vdev);
    vdev.group = null;
    vdev.vfio = null;
    vdev.registrationWait = null;
    this.#releaseDevice(vdev);
  }

  /** Registered devices, by minor. */
  get devices(): readonly VfioDevice[] {
    return [...this.#registered].sort((a, b) => a.index - b.index);
  }

  // ------------------------------------------------------------ used by the file operations

  /** vfio_device_try_get_registration: fails once unregister has dropped the driver's reference. */
  tryGetRegistration(vdev: VfioDevice): boolean {
    if (vdev.refcount === 0) return false;
    vdev.refcount++;
    return true;
  }

  /** vfio_device_put_registration: the last put lets unregister finish. */
  putRegistration(vdev: VfioDevice): void {
    if (vdev.refcount === 0) throw new Error(`${vdev.name}: registration reference underflow`);
    vdev.refcount--;
    if (vdev.refcount === 0) vdev.registrationWait?.wakeUp();
  }

  /**
   * vfio_device_get_from_name: the devices of the group newest first; a
   * driver's match op decides (and may abort with its errno), otherwise the
   * name must equal the device name. ENODEV when nothing matches. Returns
   * with a registration reference held.
   */
  groupDeviceByName(group: VfioGroup, name: string): VfioDevice {
    for (const vdev of group.devices) {
      const matches = vdev.ops.match ? vdev.ops.match(vdev, name) : vdev.name === name;
      if (matches && this.tryGetRegistration(vdev)) return vdev;
    }
    throw new SimError('NO_SUCH_DEVICE', `vfio group ${group.name} has no device named "${name}"`);
  }

  /** iommu_group_dma_owner_claimed for the GET_STATUS VIABLE bit; software groups have no owners. */
  groupDmaOwnerClaimed(group: VfioGroup): boolean {
    if (group.type !== 'iommu' || !group.iommuGroup) return false;
    return this.iommu.dmaOwnerClaimed(group.iommuGroup.id);
  }
}
