import { describe, expect, it } from 'vitest';
import {
  IOMMU_HWPT_ALLOC_DIRTY_TRACKING, IOMMU_TEST_PASID_RESERVED, IommuCore, MOCK_FLAGS_DEVICE_NO_DIRTY,
  MOCK_FLAGS_DEVICE_PASID, PhysicalMemory, createMockIommuDriver,
  type IommuClientDevice, type IommuDevice, type IommuDomain, type IommuDomainKind, type IommuDriver,
} from '@vfiosim/core';
import { mockHost, simError } from './helpers.js';

/** The smallest driver the contract allows, with an identity default domain; it records every attach. */
function fakeDriver() {
  const attaches: IommuDomainKind[] = [];
  const domain = (kind: IommuDomainKind): IommuDomain => ({
    kind,
    get driver() {
      return driver;
    },
    tag: 0,
    pgsizeBitmap: 0n,
    apertureStart: 0n,
    apertureEnd: 0n,
    parent: null,
    dirtyOps: null,
    attachDev: () => {
      attaches.push(kind);
    },
    translate: () => {},
    free: () => {},
  });
  const identity = domain('identity');
  const blocked = domain('blocked');
  const driver: IommuDriver = {
    name: 'fake',
    probeDevice: () => ({ name: 'fake-unit', driver, deviceTlb: () => null } as unknown as IommuDevice),
    capable: () => false,
    blockedDomain: blocked,
    identityDomain: identity,
    domainAllocPaging: () => domain('paging'),
  };
  return { driver, identity, blocked, attaches };
}

describe('IOMMU driver registry and probing', () => {
  it('rejects a second driver of the same name with EEXIST', () => {
    const { core, physMem } = mockHost();
    expect(simError(() => core.registerDriver(createMockIommuDriver({ physMem }))).errnoName).toBe('EEXIST');
  });

  it('gives a device to the first driver that claims it, and ENODEV when none does', () => {
    const physMem = new PhysicalMemory();
    const core = new IommuCore();
    const picky = createMockIommuDriver({ physMem, name: 'picky', claims: (dev) => dev.name.startsWith('0000:01') });
    const catchAll = createMockIommuDriver({ physMem, name: 'catch-all' });
    core.registerDriver(picky);
    const stray: IommuClientDevice = { name: '0000:02:00.0', rid: 0x200, maxPasidLog2: 0, atsCapable: false };
    expect(simError(() => core.probeDevice(stray, 3)).errnoName).toBe('ENODEV');
    core.registerDriver(catchAll);
    const mine: IommuClientDevice = { name: '0000:01:00.0', rid: 0x100, maxPasidLog2: 0, atsCapable: false };
    core.probeDevice(mine, 1);
    core.probeDevice(stray, 3);
    expect(core.driverFor(mine)).toBe(picky);
    expect(core.driverFor(stray)).toBe(catchAll);
    expect(core.iommuFor(stray)).toBe(catchAll.iommu);
    expect(core.groupIdOf(mine)).toBe(1);
    // One group, one driver.
    const other: IommuClientDevice = { name: '0000:03:00.0', rid: 0x300, maxPasidLog2: 0, atsCapable: false };
    expect(simError(() => core.probeDevice(other, 1)).errnoName).toBe('EINVAL');
    expect(core.group(1)!.devices).toEqual([mine]);
    expect(simError(() => core.probeDevice(mine, 1)).errnoName).toBe('EEXIST');
  });

  it('starts a group on its default domain and forgets it when the last device goes', () => {
    const { core, mock, device } = mockHost();
    const dev = device(4);
    expect(core.group(4)!.domain).toBe(mock.blockedDomain);
    expect(core.group(4)!.defaultDomain).toBe(mock.blockedDomain);
    core.releaseDevice(dev);
    expect(core.group(4)).toBeUndefined();
    expect(core.groupIdOf(dev)).toBeNull();
  });
});

describe('DMA ownership', () => {
  it('refuses a group claim while another owner holds the group with EPERM', () => {
    const { core, device } = mockHost();
    device(1);
    const vfioGroupA = {};
    core.claimDmaOwner(1, vfioGroupA);
    expect(core.dmaOwner(1)).toBe(vfioGroupA);
    expect(simError(() => core.claimDmaOwner(1, {})).errnoName).toBe('EPERM');
    // Even the same owner: a group claim is exclusive.
    expect(simError(() => core.claimDmaOwner(1, vfioGroupA)).errnoName).toBe('EPERM');
  });

  it('refuses a kernel DMA-API driver on a user-owned group with EBUSY', () => {
    const { core, device } = mockHost();
    const dev = device(1);
    core.deviceClaimDmaOwner(dev, {});
    expect(simError(() => core.deviceUseDefaultDomain(dev)).errnoName).toBe('EBUSY');
    expect(core.group(1)!.ownerCount).toBe(1);
  });

  it('refuses a user claim while a kernel driver uses the default domain with EPERM', () => {
    const { core, device } = mockHost();
    const a = device(1);
    core.deviceUseDefaultDomain(a);
    expect(core.dmaOwnerClaimed(1)).toBe(true);
    expect(simError(() => core.claimDmaOwner(1, {})).errnoName).toBe('EPERM');
    expect(simError(() => core.deviceClaimDmaOwner(a, {})).errnoName).toBe('EPERM');
    core.deviceUnuseDefaultDomain(a);
    core.claimDmaOwner(1, {});
  });

  it('refuses to take ownership of a group off its default domain with EBUSY', () => {
    const { core, device } = mockHost();
    const dev = device(1);
    const domain = core.pagingDomainAlloc(dev);
    core.attachGroup(1, domain);
    expect(simError(() => core.claimDmaOwner(1, {})).errnoName).toBe('EBUSY');
    expect(simError(() => core.deviceClaimDmaOwner(dev, {})).errnoName).toBe('EBUSY');
    expect(core.dmaOwnerClaimed(1)).toBe(false);
    // The first kernel driver only counts; a claim already held makes the off-default domain EBUSY.
    core.deviceUseDefaultDomain(dev);
    expect(simError(() => core.deviceUseDefaultDomain(dev)).errnoName).toBe('EBUSY');
  });

  it('lets devices of one group share a claim with the same owner and counts them', () => {
    const { core, mock, device } = mockHost();
    const a = device(2);
    const b = mock.createDevice();
    core.probeDevice(b, 2);
    const ictx = {};
    core.deviceClaimDmaOwner(a, ictx);
    core.deviceClaimDmaOwner(b, ictx);
    expect(core.group(2)).toMatchObject({ owner: ictx, ownerCount: 2, domain: mock.blockedDomain });
    expect(simError(() => core.deviceClaimDmaOwner(b, {})).errnoName).toBe('EPERM');
    core.deviceReleaseDmaOwner(a);
    expect(core.dmaOwner(2)).toBe(ictx);
    core.deviceReleaseDmaOwner(b);
    expect(core.group(2)).toMatchObject({ owner: null, ownerCount: 0 });
  });

  it('moves the group to the blocking domain on claim and back to the default domain on release', () => {
    const fake = fakeDriver();
    const core = new IommuCore();
    core.registerDriver(fake.driver);
    const dev: IommuClientDevice = { name: '0000:05:00.0', rid: 0x500, maxPasidLog2: 0, atsCapable: false };
    core.probeDevice(dev, 1);
    expect(core.group(1)!.domain).toBe(fake.identity);
    core.claimDmaOwner(1, {});
    expect(core.group(1)!.domain).toBe(fake.blocked);
    const domain = core.pagingDomainAlloc(dev);
    core.attachGroup(1, domain);
    core.detachGroup(1, domain);
    expect(core.group(1)!.domain).toBe(fake.blocked);
    core.releaseDmaOwner(1);
    expect(core.group(1)!.domain).toBe(fake.identity);
    expect(fake.attaches).toEqual(['identity', 'blocked', 'paging', 'blocked', 'identity']);
  });
});

describe('attaching domains', () => {
  it('refuses a second user domain on a group with EBUSY and a foreign driver domain with EINVAL', () => {
    const { core, device, physMem } = mockHost();
    const dev = device(1);
    core.claimDmaOwner(1, {});
    const d1 = core.pagingDomainAlloc(dev);
    const d2 = core.pagingDomainAlloc(dev);
    core.attachGroup(1, d1);
    expect(simError(() => core.attachGroup(1, d2)).errnoName).toBe('EBUSY');
    core.replaceGroupDomain(1, d2);
    expect(core.group(1)!.domain).toBe(d2);

    const other = createMockIommuDriver({ physMem, name: 'other' });
    const foreignDev = other.createDevice();
    const otherCore = new IommuCore();
    otherCore.registerDriver(other);
    otherCore.probeDevice(foreignDev, 1);
    const foreign = other.domainAllocPaging(foreignDev, 0, null);
    expect(simError(() => core.replaceGroupDomain(1, foreign)).errnoName).toBe('EINVAL');
    core.detachGroup(1, d2);
    expect(simError(() => core.attachGroup(1, foreign)).errnoName).toBe('EINVAL');
  });

  it('moves all devices of a group or none when the driver refuses one', () => {
    const { core, mock } = mockHost();
    const tracking = mock.createDevice();
    const noDirty = mock.createDevice(MOCK_FLAGS_DEVICE_NO_DIRTY);
    core.probeDevice(tracking, 5);
    core.probeDevice(noDirty, 5);
    core.claimDmaOwner(5, {});
    const dirtyDomain = core.pagingDomainAlloc(tracking, IOMMU_HWPT_ALLOC_DIRTY_TRACKING);
    expect(simError(() => core.replaceGroupDomain(5, dirtyDomain)).errnoName).toBe('EINVAL');
    expect(core.group(5)!.domain).toBe(mock.blockedDomain);
    expect(mock.mockDevice(tracking).domain).toBe(mock.blockedDomain);
  });

  it('checks PASID attachments: width, PASID 0, a taken PASID, and rolls a failed replace back', () => {
    const { core, device, mock } = mockHost();
    const dev = device(1, MOCK_FLAGS_DEVICE_PASID);
    const narrow = device(2);
    core.deviceClaimDmaOwner(dev, {});
    const d1 = core.pagingDomainAlloc(dev);
    const d2 = core.pagingDomainAlloc(dev);
    expect(simError(() => core.attachDevicePasid(narrow, 1, core.pagingDomainAlloc(narrow))).errnoName).toBe('EINVAL');
    expect(simError(() => core.attachDevicePasid(dev, 0, d1)).errnoName).toBe('EINVAL');
    expect(simError(() => core.attachDevicePasid(dev, 1 << 20, d1)).errnoName).toBe('EINVAL');
    expect(simError(() => core.replaceDevicePasid(dev, 5, d1)).errnoName).toBe('EINVAL');
    core.attachDevicePasid(dev, 5, d1);
    expect(simError(() => core.attachDevicePasid(dev, 5, d2)).errnoName).toBe('EBUSY');
    expect(core.domainFor(dev, 5)).toBe(d1);

    // The mock fails every second attach of the reserved PASID: the replace must leave d1 in place.
    core.attachDevicePasid(dev, IOMMU_TEST_PASID_RESERVED, d1);
    expect(simError(() => core.replaceDevicePasid(dev, IOMMU_TEST_PASID_RESERVED, d2)).errnoName).toBe('ENOMEM');
    expect(core.domainFor(dev, IOMMU_TEST_PASID_RESERVED)).toBe(d1);
    core.replaceDevicePasid(dev, IOMMU_TEST_PASID_RESERVED, d2);
    expect(core.domainFor(dev, IOMMU_TEST_PASID_RESERVED)).toBe(d2);
    core.detachDevicePasid(dev, IOMMU_TEST_PASID_RESERVED, d2);
    core.detachDevicePasid(dev, 5, d1);
    expect(core.domainFor(dev, 5)).toBeNull();
    expect(mock.mockDevice(dev).pasid1024FakeError).toBe(false);
  });

  it('refuses a PASID attachment of a domain that cannot take one with EOPNOTSUPP', () => {
    const { core, device, mock } = mockHost();
    const dev = device(1, MOCK_FLAGS_DEVICE_PASID);
    const noPasid = Object.create(core.pagingDomainAlloc(dev), { setDevPasid: { value: undefined } });
    expect(simError(() => core.attachDevicePasid(dev, 3, noPasid)).errnoName).toBe('EOPNOTSUPP');
    expect(mock.userPasidTable).toBe(true);
  });
});
