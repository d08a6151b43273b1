import { describe, expect, it } from 'vitest';
import {
  Errno,
  VFIO_DEVICE_FEATURE,
  VFIO_DEVICE_FEATURE_GET,
  VFIO_DEVICE_FEATURE_PCI_VF_TOKEN,
  VFIO_DEVICE_FEATURE_PROBE,
  VFIO_DEVICE_FEATURE_SET,
  vfio_device_feature,
  type Host,
} from '@vfiosim/core';
import { NIC_BDF, PF_BDF, nicHost, sriovPfHost } from './hosts.js';
import { IOMMU_MODES, Iommu } from './libvfio/iommu.js';
import { Sysfs, VfioPciDevice, uuidParse } from './libvfio/vfio-pci-device.js';
import { User } from './user.js';

/*
 * tools/testing/selftests/vfio/vfio_pci_sriov_uapi_test.c, the PF half.
 * The VF half (a VF of a vfio-pci PF opened with the same, another or no
 * token) needs VFs created through sriov_numvfs on the vfio-pci PF
 * (vfio_pci_core_sriov_configure), which the model does not have: see the
 * report. What the PF side of the token uAPI does is asserted here, in
 * every IOMMU mode, with the kernel's errnos.
 */

const UUID_1 = '52ac9bff-3a88-4fbd-901a-0d767c3b6c97';
const UUID_2 = '88594674-90a0-47a9-aea8-9d9b352ac08a';

/**
 * device_init of the selftest: the group path with "<bdf> vf_token=<uuid>"
 * or the cdev path with VFIO_DEVICE_BIND_FLAG_TOKEN. 0, or the -errno of
 * the step that failed.
 */
function deviceInit(host: Host, iommu: Iommu, bdf: string, vfToken?: string): { rc: number; device: VfioPciDevice } {
  const device = new VfioPciDevice(bdf, iommu);
  const sysfs = new Sysfs(host);
  if (iommu.mode.containerPath) {
    device.groupSetup(sysfs);
    device.containerSetIommu();
    const fd = device.groupGetDeviceFd(bdf, vfToken);
    return { rc: fd < 0 ? fd : 0, device };
  }
  device.cdevOpen(sysfs);
  return { rc: device.bindIommufd(iommu.iommufd, vfToken), device };
}

function featureToken(user: User, fd: number, flags: number, token: string | null, argsz?: number): number {
  const size = vfio_device_feature.size + 16;
  const buf = new Uint8Array(size);
  buf.set(vfio_device_feature.encodeNew({ argsz: argsz ?? size, flags: flags | VFIO_DEVICE_FEATURE_PCI_VF_TOKEN }));
  if (token) buf.set(uuidParse(token), vfio_device_feature.size);
  return user.proc.ioctl(fd, VFIO_DEVICE_FEATURE, user.push(buf));
}

describe.each(IOMMU_MODES.map((mode) => mode.name))('vfio_pci_sriov_uapi_test, PF side (%s)', (mode) => {
  it('FIXTURE_SETUP: the PF opens with a token, which becomes its VF token', () => {
    const host = sriovPfHost();
    const iommu = new Iommu(new User(host.spawn()), mode);
    const { rc } = deviceInit(host, iommu, PF_BDF, UUID_1);
    expect(rc).toBe(0);
  });

  it('the PF opens without a token too: no VF uses it yet', () => {
    const host = sriovPfHost();
    const iommu = new Iommu(new User(host.spawn()), mode);
    expect(deviceInit(host, iommu, PF_BDF).rc).toBe(0);
  });

  it('override_token: VFIO_DEVICE_FEATURE_PCI_VF_TOKEN SET on the PF; GET is EINVAL, PROBE of SET answers 0', () => {
    const host = sriovPfHost();
    const user = new User(host.spawn());
    const iommu = new Iommu(user, mode);
    const { rc, device } = deviceInit(host, iommu, PF_BDF, UUID_1);
    expect(rc).toBe(0);
    device.setVfToken(UUID_2);
    expect(featureToken(user, device.fd, VFIO_DEVICE_FEATURE_GET, null)).toBe(-Errno.EINVAL);
    expect(featureToken(user, device.fd, VFIO_DEVICE_FEATURE_PROBE | VFIO_DEVICE_FEATURE_SET, null)).toBe(0);
    // SET needs the 16-byte UUID after the header.
    expect(featureToken(user, device.fd, VFIO_DEVICE_FEATURE_SET, UUID_2, vfio_device_feature.size + 15)).toBe(-Errno.EINVAL);
  });

  it('pf_early_close: closing the PF leaves nothing that stops it opening again with another token', () => {
    const host = sriovPfHost();
    const user = new User(host.spawn());
    const iommu = new Iommu(user, mode);
    const first = deviceInit(host, iommu, PF_BDF, UUID_1);
    expect(first.rc).toBe(0);
    expect(user.proc.close(first.device.fd)).toBe(0);
    if (first.device.groupFd) expect(user.proc.close(first.device.groupFd)).toBe(0);
    expect(deviceInit(host, iommu, PF_BDF, UUID_2).rc).toBe(0);
  });

  it('a token given to a function that is neither PF nor VF is EINVAL', () => {
    const host = nicHost();
    const iommu = new Iommu(new User(host.spawn()), mode);
    expect(deviceInit(host, iommu, NIC_BDF, UUID_1).rc).toBe(-Errno.EINVAL);
  });
});

describe('the "vf_token=" option of VFIO_GROUP_GET_DEVICE_FD (vfio_pci_core_match)', () => {
  function groupOfPf() {
    const host = sriovPfHost();
    const user = new User(host.spawn());
    const iommu = new Iommu(user, 'vfio_type1v2_iommu');
    const device = new VfioPciDevice(PF_BDF, iommu);
    device.groupSetup(new Sysfs(host));
    device.containerSetIommu();
    return (arg: string) => device.groupGetDeviceFd(arg);
  }

  it('takes spaces around the option and answers ENODEV for a name that only starts like the device', () => {
    const getFd = groupOfPf();
    expect(getFd(`${PF_BDF}   vf_token=${UUID_1}  `)).toBeGreaterThan(0);
    expect(getFd(`${PF_BDF}x`)).toBe(-Errno.ENODEV);
    expect(getFd(PF_BDF.slice(0, -1))).toBe(-Errno.ENODEV);
  });

  it('refuses an unknown option, a second token, a short or malformed UUID with EINVAL', () => {
    const getFd = groupOfPf();
    expect(getFd(`${PF_BDF} foo=1`)).toBe(-Errno.EINVAL);
    expect(getFd(`${PF_BDF} vf_token=${UUID_1} vf_token=${UUID_2}`)).toBe(-Errno.EINVAL);
    expect(getFd(`${PF_BDF} vf_token=${UUID_1.slice(0, 35)}`)).toBe(-Errno.EINVAL);
    expect(getFd(`${PF_BDF} vf_token=${UUID_1.replace('-', 'x')}`)).toBe(-Errno.EINVAL);
    expect(getFd(`${PF_BDF} vf_token=${UUID_1}x`)).toBe(-Errno.EINVAL);
  });
});
