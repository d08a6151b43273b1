import { SimError } from '../errors/index.js';
import {
  IOMMU_NO_PASID,
  type IommuClientDevice, type IommuDevice, type IommuDomain, type IommuDriver, type IommuResvRegion, type IommuUserData,
} from './iommu-driver.js';
import { createInvalidationHooks, type InvalidationHooks } from './invalidation-hooks.js';
import type { DeviceTlb, Iotlb, IotlbEntry } from './iotlb.js';

/*
 * IommuCore: the parts of drivers/iommu/iommu.c that userspace-facing code
 * relies on.
 *
 * - A registry of IOMMU drivers. Plugins register theirs; when a device
 *   appears, the first driver whose probe_device claims it translates for it.
 * - Per IOMMU group runtime state: the devices, the domain the group is
 *   attached to now, its default domain (kernel ownership) and the blocking
 *   domain (user ownership between attachments), the PASID attachments, and
 *   DMA ownership.
 *
 * DMA ownership follows iommu.c exactly:
 * - A kernel driver that does DMA through the DMA API binds with
 *   deviceUseDefaultDomain() (iommu_device_use_default_domain), which the
 *   driver core calls for every driver except those that set
 *   driver_managed_dma (vfio-pci and the other vfio drivers do). It counts
 *   the group as kernel-owned; it fails with EBUSY when a user owns the
 *   group or the group is off its default domain.
 * - vfio's group path claims the whole group with claimDmaOwner()
 *   (iommu_group_claim_dma_owner): EPERM if anyone (kernel driver or another
 *   user) already counts as owner.
 * - iommufd claims per device with deviceClaimDmaOwner()
 *   (iommu_device_claim_dma_owner): devices of one group may share the
 *   claim if they present the same owner; another owner gets EPERM.
 * - Taking ownership needs the group on its default domain (EBUSY
 *   otherwise) and moves it to the blocking domain, so no DMA passes until
 *   the new owner attaches a domain of its own. Releasing the last claim
 *   returns the group to its default domain.
 *
 * Device TLBs: the ATC of an ATS-capable device is part of the device, so
 * any reset of it (FLR, PM, bus or slot reset, whoever drives it) empties
 * it. A probed device that reports its resets (onReset, as a PCI function
 * does) has its ATC dropped on each.
 *
 * Attachment: type1 attaches whole groups (attachGroup/detachGroup);
 * iommufd replaces a group's domain while it owns it (replaceGroupDomain)
 * and attaches domains per device PASID (attachDevicePasid and friends).
 * A driver's attach_dev may refuse a device; then every device already
 * moved goes back and the group keeps its old domain.
 *
 * Translation context: what the DMA engine needs for every request of a
 * device (its IOMMU unit, its ATC, the domain of its DMA without PASID, and
 * the engine's last-hit memo) sits on the device's record, so a request
 * costs one lookup by device. The core keeps the domain current and forgets
 * the memo on every attachment change of the device's group (RID or PASID);
 * the memo carries the generation of the cache it came from, so any IOTLB or
 * ATC change (invalidation, fill, eviction) voids it as well.
 *
 * Public API:
 *   class IommuCore
 *     invalidationHooks
 *     registerDriver(driver), drivers
 *     probeDevice(dev, groupId), releaseDevice(dev)
 *     groupIdOf(dev), group(groupId), driverFor(dev), iommuFor(dev)
 *     pagingDomainAlloc(dev, flags?, userData?), resvRegions(groupId)
 *     claimDmaOwner(groupId, owner), releaseDmaOwner(groupId)
 *     deviceClaimDmaOwner(dev, owner), deviceReleaseDmaOwner(dev)
 *     deviceUseDefaultDomain(dev), deviceUnuseDefaultDomain(dev)
 *     dmaOwnerClaimed(groupId), dmaOwner(groupId)
 *     attachGroup(groupId, domain), detachGroup(groupId, domain), replaceGroupDomain(groupId, domain)
 *     attachDevicePasid(dev, pasid, domain), replaceDevicePasid(dev, pasid, domain),
 *     detachDevicePasid(dev, pasid, domain)
 *     domainFor(dev, pasid), translationContext(dev)
 *   interface IommuGroupView, DeviceTranslationContext, TranslationMemo
 */

/** A read-only look at one IOMMU group's runtime state. */
export interface IommuGroupView {
  readonly id: number;
  readonly devices: readonly IommuClientDevice[];
  readonly driver: IommuDriver;
  /** The domain the group's devices translate through (RID / no PASID). */
  readonly domain: IommuDomain;
  readonly defaultDomain: IommuDomain;
  readonly blockingDomain: IommuDomain;
  /** The user owner (vfio group, iommufd context...), or null while only kernel drivers count. */
  readonly owner: object | null;
  /** owner_cnt: claims held, by the user owner or by kernel drivers using the default domain. */
  readonly ownerCount: number;
  /** PASID attachments of the group's devices. */
  readonly pasidDomains: ReadonlyMap<number, IommuDomain>;
}

class IommuGroup implements IommuGroupView {
  readonly devices: IommuClientDevice[] = [];
  domain: IommuDomain;
  owner: object | null = null;
  ownerCount = 0;
  readonly pasidDomains = new Map<number, IommuDomain>();

  constructor(
    readonly id: number,
    readonly driver: IommuDriver,
    readonly defaultDomain: IommuDomain,
  ) {
    this.domain = defaultDomain;
  }

  get blockingDomain(): IommuDomain {
    return this.driver.blockedDomain;
  }
}

/**
 * The DMA engine's memo of the translation a device's last request used.
 * Valid while `entry` is not null and `cache.generation` still equals
 * `generation`: then a lookup of the same PASID in the same caches finds
 * `entry` again for any IOVA in [base, base + size).
 */
export interface TranslationMemo {
  entry: IotlbEntry | null;
  pasid: number | null;
  /** The cache a lookup answers from first: the device's ATC if it has one, else the IOTLB. */
  cache: Iotlb | DeviceTlb | null;
  generation: number;
  /** The entry's page, as numbers (memoised only below 2^53). */
  base: number;
  size: number;
  /** entry.pa - entry.iova: the output address of an IOVA in the page is iova + delta. */
  delta: bigint;
}

/** A device's translation state, found with one lookup (IommuCore.translationContext). */
export interface DeviceTranslationContext {
  readonly iommu: IommuDevice;
  /** The device's ATC (fixed from probe to release), or null without ATS. */
  readonly atc: DeviceTlb | null;
  /** The domain DMA without a PASID translates through now (the group's domain). */
  readonly domain: IommuDomain;
  /** Owned by the DMA engine; IommuCore empties it on every attachment change of the group. */
  readonly memo: TranslationMemo;
}

interface DeviceLink extends DeviceTranslationContext {
  readonly group: IommuGroup;
  domain: IommuDomain;
  /** Stops emptying the device's ATC on its resets. */
  readonly unsubscribeReset: () => void;
}

function emptyMemo(): TranslationMemo {
  return { entry: null, pasid: null, cache: null, generation: 0, base: 0, size: 0, delta: 0n };
}

function hex(value: number): string {
  return `0x${value.toString(16)}`;
}

export class IommuCore {
  /** Plugins tap these to observe or extend cache invalidation (see invalidation-hooks.ts). */
  readonly invalidationHooks: InvalidationHooks = createInvalidationHooks();
  readonly #drivers: IommuDriver[] = [];
  readonly #groups = new Map<number, IommuGroup>();
  readonly #devices = new Map<IommuClientDevice, DeviceLink>();

  /** Registers an IOMMU driver (iommu_device_register); a second driver of the same name is EEXIST. */
  registerDriver(driver: IommuDriver): void {
    if (this.#drivers.some((d) => d.name === driver.name)) {
      throw new SimError('EXISTS', `IOMMU driver ${driver.name} is already registered`);
    }
    this.#drivers.push(driver);
  }

  get drivers(): readonly IommuDriver[] {
    return this.#drivers;
  }

  /**
   * iommu_probe_device: finds the driver whose hardware translates for
   * `dev`, places the device in IOMMU group `groupId` and attaches it to the
   * group's current domain (the default domain for a new group). ENODEV when
   * no registered driver claims the device; EINVAL when the group already
   * belongs to another driver; EEXIST when the device was probed before.
   */
  probeDevice(dev: IommuClientDevice, groupId: number): void {
    if (this.#devices.has(dev)) throw new SimError('EXISTS', `${dev.name} is already behind an IOMMU`);
    let iommu: IommuDevice | null = null;
    for (const driver of this.#drivers) {
      iommu = driver.probeDevice(dev);
      if (iommu) break;
    }
    if (!iommu) throw new SimError('NO_DEVICE', `no registered IOMMU driver translates for ${dev.name}`);
    const driver = iommu.driver;
    let group = this.#groups.get(groupId);
    if (group && group.driver !== driver) {
      driver.releaseDevice?.(dev);
      throw new SimError('INVALID_ARGUMENT', `IOMMU group ${groupId} belongs to ${group.driver.name}, not ${driver.name}`);
    }
    const created = !group;
    group ??= new IommuGroup(groupId, driver, driver.defaultDomain ?? driver.identityDomain ?? driver.blockedDomain);
    try {
      group.domain.attachDev(dev, null);
    } catch (error) {
      driver.releaseDevice?.(dev);
      throw error;
    }
    if (created) this.#groups.set(groupId, group);
    group.devices.push(dev);
    const unsubscribeReset = dev.onReset?.(() => iommu.deviceTlb(dev)?.invalidateAll()) ?? (() => {});
    this.#devices.set(dev, { group, iommu, atc: iommu.deviceTlb(dev), domain: group.domain, memo: emptyMemo(), unsubscribeReset });
  }

  /** iommu_release_device: the device leaves its group and its driver. */
  releaseDevice(dev: IommuClientDevice): void {
    const link = this.#link(dev);
    const group = link.group;
    group.devices.splice(group.devices.indexOf(dev), 1);
    this.#devices.delete(dev);
    link.unsubscribeReset();
    link.iommu.driver.releaseDevice?.(dev);
    if (group.devices.length === 0 && group.ownerCount === 0) this.#groups.delete(group.id);
  }

  groupIdOf(dev: IommuClientDevice): number | null {
    return this.#devices.get(dev)?.group.id ?? null;
  }

  group(groupId: number): IommuGroupView | undefined {
    return this.#groups.get(groupId);
  }

  driverFor(dev: IommuClientDevice): IommuDriver | null {
    return this.#devices.get(dev)?.iommu.driver ?? null;
  }

  /** The hardware unit that translates `dev`'s DMA. */
  iommuFor(dev: IommuClientDevice): IommuDevice | null {
    return this.#devices.get(dev)?.iommu ?? null;
  }

  /** The translation context of `dev`, or null when it is not behind an IOMMU. */
  translationContext(dev: IommuClientDevice): DeviceTranslationContext | null {
    return this.#devices.get(dev) ?? null;
  }

  /** iommu_paging_domain_alloc_flags: a paging domain from `dev`'s driver. */
  pagingDomainAlloc(dev: IommuClientDevice, flags = 0, userData: IommuUserData | null = null): IommuDomain {
    return this.#link(dev).iommu.driver.domainAllocPaging(dev, flags, userData);
  }

  /** iommu_get_group_resv_regions: the reserved regions of every device in the group. */
  resvRegions(groupId: number): IommuResvRegion[] {
    const group = this.#group(groupId);
    return group.devices.flatMap((dev) => [...(group.driver.getResvRegions?.(dev) ?? [])]);
  }

  // ------------------------------------------------------------ DMA ownership

  /** iommu_group_claim_dma_owner: EPERM if the group already has an owner of any kind. */
  claimDmaOwner(groupId: number, owner: object): void {
    const group = this.#group(groupId);
    if (group.ownerCount !== 0) {
      throw new SimError('NOT_PERMITTED', `IOMMU group ${groupId} is already owned (${group.owner ? 'by a user' : 'by a kernel driver'})`);
    }
    this.#takeOwnership(group, owner);
  }

  /** iommu_group_release_dma_owner. */
  releaseDmaOwner(groupId: number): void {
    this.#releaseOwnership(this.#group(groupId));
  }

  /**
   * iommu_device_claim_dma_owner: the first claim takes the group; later
   * claims for devices of the same group must present the same owner
   * (EPERM otherwise) and only count.
   */
  deviceClaimDmaOwner(dev: IommuClientDevice, owner: object): void {
    const group = this.#devices.get(dev)?.group;
    if (!group) throw new SimError('NO_DEVICE', `${dev.name} is not behind an IOMMU`);
    if (group.ownerCount !== 0) {
      if (group.owner !== owner) {
        throw new SimError('NOT_PERMITTED', `IOMMU group ${group.id} of ${dev.name} is owned by someone else`);
      }
      group.ownerCount++;
      return;
    }
    this.#takeOwnership(group, owner);
  }

  /** iommu_device_release_dma_owner. */
  deviceReleaseDmaOwner(dev: IommuClientDevice): void {
    const group = this.#link(dev).group;
    if (group.ownerCount > 1) group.ownerCount--;
    else this.#releaseOwnership(group);
  }

  /**
   * iommu_device_use_default_domain: a kernel driver without
   * driver_managed_dma binds to `dev`. EBUSY while a user owns the group or
   * the group is not on its default domain. A device with no IOMMU is fine.
   */
  deviceUseDefaultDomain(dev: IommuClientDevice): void {
    const group = this.#devices.get(dev)?.group;
    if (!group) return;
    if (group.ownerCount !== 0 && (group.owner !== null || group.domain !== group.defaultDomain)) {
      throw new SimError('BUSY', `IOMMU group ${group.id} of ${dev.name} is owned by userspace`);
    }
    group.ownerCount++;
  }

  /** iommu_device_unuse_default_domain: the kernel driver unbinds. */
  deviceUnuseDefaultDomain(dev: IommuClientDevice): void {
    const group = this.#devices.get(dev)?.group;
    if (!group) return;
    if (group.ownerCount === 0 || group.owner !== null) {
      throw new Error(`${dev.name}: default-domain use released without a matching use`);
    }
    group.ownerCount--;
  }

  /** iommu_group_dma_owner_claimed: any claim, by a kernel driver or a user. */
  dmaOwnerClaimed(groupId: number): boolean {
    return this.#group(groupId).ownerCount !== 0;
  }

  dmaOwner(groupId: number): object | null {
    return this.#group(groupId).owner;
  }

  // ------------------------------------------------------------ attachment

  /**
   * iommu_attach_group: EBUSY while another user domain is attached (only
   * the default or blocking domain may be replaced this way); EINVAL if the
   * domain belongs to another driver.
   */
  attachGroup(groupId: number, domain: IommuDomain): void {
    const group = this.#group(groupId);
    if (group.domain !== group.defaultDomain && group.domain !== group.blockingDomain) {
      throw new SimError('BUSY', `IOMMU group ${groupId} is already attached to a domain`);
    }
    this.#checkDriver(group, domain);
    this.#setDomain(group, domain);
  }

  /**
   * iommu_detach_group: back to the blocking domain while owned, the
   * default domain otherwise. Like the kernel, it does not check that
   * `domain` is the one attached; the caller names what it attached.
   */
  detachGroup(groupId: number, _domain: IommuDomain): void {
    this.#setCoreDomain(this.#group(groupId));
  }

  /**
   * iommu_group_replace_domain (iommufd attach/replace): switches the
   * group to `domain` whatever it is attached to now; EINVAL for another
   * driver's domain. The caller owns the group.
   */
  replaceGroupDomain(groupId: number, domain: IommuDomain): void {
    const group = this.#group(groupId);
    this.#checkDriver(group, domain);
    this.#setDomain(group, domain);
  }

  /**
   * iommu_attach_device_pasid: every device of the group translates DMA
   * tagged `pasid` through `domain`. EOPNOTSUPP if the domain cannot be
   * attached to a PASID; EINVAL for PASID 0, another driver's domain or a
   * PASID wider than a device supports; EBUSY if the PASID is attached.
   */
  attachDevicePasid(dev: IommuClientDevice, pasid: number, domain: IommuDomain): void {
    const group = this.#checkPasidAttach(dev, pasid, domain);
    if (group.pasidDomains.has(pasid)) throw new SimError('BUSY', `PASID ${hex(pasid)} of IOMMU group ${group.id} is attached`);
    this.#setGroupPasid(group, pasid, domain, null);
    group.pasidDomains.set(pasid, domain);
    this.#forgetMemos(group);
  }

  /** iommu_replace_device_pasid: EINVAL unless the PASID is attached already. */
  replaceDevicePasid(dev: IommuClientDevice, pasid: number, domain: IommuDomain): void {
    const group = this.#checkPasidAttach(dev, pasid, domain);
    const old = group.pasidDomains.get(pasid);
    if (!old) throw new SimError('INVALID_ARGUMENT', `PASID ${hex(pasid)} of IOMMU group ${group.id} is not attached`);
    if (old === domain) return;
    this.#setGroupPasid(group, pasid, domain, old);
    group.pasidDomains.set(pasid, domain);
    this.#forgetMemos(group);
  }

  /** iommu_detach_device_pasid: the PASID goes back to blocking (`domain` is what the caller attached; not checked, as in the kernel). */
  detachDevicePasid(dev: IommuClientDevice, pasid: number, domain: IommuDomain): void {
    const group = this.#link(dev).group;
    for (const member of group.devices) group.blockingDomain.setDevPasid?.(member, pasid, domain);
    group.pasidDomains.delete(pasid);
    this.#forgetMemos(group);
  }

  /**
   * The domain DMA from `dev` goes through: its group's domain without a
   * PASID; the PASID's domain with one, or, when the driver lets the guest
   * own the PASID table, the nested domain attached to the RID. null: the
   * DMA has nowhere to go (the device is not behind an IOMMU, or nothing is
   * attached for that PASID).
   */
  domainFor(dev: IommuClientDevice, pasid: number | null): IommuDomain | null {
    const group = this.#devices.get(dev)?.group;
    if (!group) return null;
    if (pasid === null) return group.domain;
    const domain = group.pasidDomains.get(pasid);
    if (domain) return domain;
    return group.driver.userPasidTable && group.domain.kind === 'nested' ? group.domain : null;
  }

  // ------------------------------------------------------------ internals

  #link(dev: IommuClientDevice): DeviceLink {
    const link = this.#devices.get(dev);
    if (!link) throw new SimError('NO_DEVICE', `${dev.name} is not behind an IOMMU`);
    return link;
  }

  #group(groupId: number): IommuGroup {
    const group = this.#groups.get(groupId);
    if (!group) throw new SimError('NO_DEVICE', `no IOMMU group ${groupId}`);
    return group;
  }

  #checkDriver(group: IommuGroup, domain: IommuDomain): void {
    if (domain.driver !== group.driver) {
      throw new SimError('INVALID_ARGUMENT', `a ${domain.driver.name} domain cannot translate for IOMMU group ${group.id} (${group.driver.name})`);
    }
  }

  #takeOwnership(group: IommuGroup, owner: object): void {
    if (group.domain !== group.defaultDomain) {
      throw new SimError('BUSY', `IOMMU group ${group.id} is attached to a non-default domain`);
    }
    this.#setDomain(group, group.blockingDomain);
    group.owner = owner;
    group.ownerCount++;
  }

  #releaseOwnership(group: IommuGroup): void {
    if (group.ownerCount === 0 || group.owner === null) throw new Error(`IOMMU group ${group.id}: DMA ownership released but not held`);
    if (group.pasidDomains.size !== 0) throw new Error(`IOMMU group ${group.id}: DMA ownership released with PASIDs attached`);
    group.ownerCount = 0;
    group.owner = null;
    this.#setDomain(group, group.defaultDomain);
  }

  #setCoreDomain(group: IommuGroup): void {
    this.#setDomain(group, group.owner ? group.blockingDomain : group.defaultDomain);
  }

  /** __iommu_group_set_domain: all devices or none. */
  #setDomain(group: IommuGroup, domain: IommuDomain): void {
    const old = group.domain;
    if (old === domain) return;
    const moved: IommuClientDevice[] = [];
    try {
      for (const dev of group.devices) {
        domain.attachDev(dev, old);
        moved.push(dev);
      }
    } catch (error) {
      for (const dev of moved) old.attachDev(dev, domain);
      throw error;
    }
    group.domain = domain;
    for (const dev of group.devices) this.#devices.get(dev)!.domain = domain;
    this.#forgetMemos(group);
  }

  /** An attachment changed: a memoised translation may belong to a domain the device no longer uses. */
  #forgetMemos(group: IommuGroup): void {
    for (const dev of group.devices) {
      const memo = this.#devices.get(dev)!.memo;
      memo.entry = null;
      memo.cache = null;
    }
  }

  #checkPasidAttach(dev: IommuClientDevice, pasid: number, domain: IommuDomain): IommuGroup {
    if (!domain.setDevPasid || !domain.driver.blockedDomain.setDevPasid) {
      throw new SimError('NOT_SUPPORTED', `a ${domain.kind} ${domain.driver.name} domain cannot be attached to a PASID`);
    }
    const group = this.#link(dev).group;
    if (domain.driver !== group.driver || pasid === IOMMU_NO_PASID) {
      throw new SimError('INVALID_ARGUMENT', `cannot attach PASID ${hex(pasid)} of ${dev.name} to this domain`);
    }
    for (const member of group.devices) {
      if (!Number.isInteger(pasid) || pasid < 0 || pasid >= 2 ** member.maxPasidLog2) {
        throw new SimError('INVALID_ARGUMENT', `PASID ${hex(pasid)} is beyond what ${member.name} supports`);
      }
    }
    return group;
  }

  #setGroupPasid(group: IommuGroup, pasid: number, domain: IommuDomain, old: IommuDomain | null): void {
    const moved: IommuClientDevice[] = [];
    try {
      for (const dev of group.devices) {
        domain.setDevPasid!(dev, pasid, old);
        moved.push(dev);
      }
    } catch (error) {
      for (const dev of moved) {
        if (old) old.setDevPasid!(dev, pasid, domain);
        else group.blockingDomain.setDevPasid!(dev, pasid, domain);
      }
      throw error;
    }
  }
}
