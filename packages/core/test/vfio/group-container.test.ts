import { beforeEach, describe, expect, it } from 'vitest';
import {
  Errno,
  MemoryObject,
  SimError,
  O_RDWR,
  VFIO_API_VERSION,
  VFIO_CHECK_EXTENSION,
  VFIO_GET_API_VERSION,
  VFIO_GROUP_FLAGS_CONTAINER_SET,
  VFIO_GROUP_FLAGS_VIABLE,
  VFIO_GROUP_GET_DEVICE_FD,
  VFIO_GROUP_GET_STATUS,
  VFIO_GROUP_SET_CONTAINER,
  VFIO_GROUP_UNSET_CONTAINER,
  VFIO_IOMMU_GET_INFO,
  VFIO_NOIOMMU_IOMMU,
  VFIO_SET_IOMMU,
  VFIO_TYPE1v2_IOMMU,
  VFIO_DEVICE_GET_INFO,
  vfio_group_status,
  type Process,
} from '@vfiosim/core';
import { fixtureDriver, hostDriver, makeHost, spawnWithScratch, writeString, type Host } from './harness.js';

const FN = '0000:00:01.0';
const SIBLING = '0000:00:01.1';

function status(proc: Process, va: bigint, groupFd: number, argsz = 8): { rc: number; flags: number } {
  proc.mem.write(va, vfio_group_status.encodeNew({ argsz, flags: 0xdead }));
  const rc = proc.ioctl(groupFd, VFIO_GROUP_GET_STATUS, va);
  return { rc, flags: proc.mem.readU32(va + 4n) };
}

function setContainer(proc: Process, va: bigint, groupFd: number, containerFd: number): number {
  proc.mem.writeU32(va, containerFd);
  return proc.ioctl(groupFd, VFIO_GROUP_SET_CONTAINER, va);
}

function getDeviceFd(proc: Process, va: bigint, groupFd: number, name: string): number {
  writeString(proc, va, name);
  return proc.ioctl(groupFd, VFIO_GROUP_GET_DEVICE_FD, va);
}

describe('vfio group and container', () => {
  let host: Host;
  let proc: Process;
  let va: bigint;
  let driver: ReturnType<typeof fixtureDriver>;

  beforeEach(() => {
    host = makeHost();
    driver = fixtureDriver(host.vfio);
    host.drivers.registerPciDriver(driver);
    host.addFunction(FN, 5);
    ({ proc, va } = spawnWithScratch(host.system));
  });

  /** The legacy sequence a VMM runs: group, container, SET_IOMMU, device fd. */
  function openDevice(): { groupFd: number; containerFd: number; deviceFd: number } {
    const groupFd = proc.open('/dev/vfio/5');
    const containerFd = proc.open('/dev/vfio/vfio');
    expect(setContainer(proc, va, groupFd, containerFd)).toBe(0);
    expect(proc.ioctl(containerFd, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU)).toBe(0);
    const deviceFd = getDeviceFd(proc, va, groupFd, FN);
    expect(deviceFd).toBeGreaterThanOrEqual(0);
    return { groupFd, containerFd, deviceFd };
  }

  it('publishes the group under /dev/vfio/<group id> and the container under /dev/vfio/vfio', () => {
    expect(host.system.devfs.list()).toEqual(['/dev/iommu', '/dev/vfio/5', '/dev/vfio/devices/vfio0', '/dev/vfio/vfio']);
  });

  it('runs the container flow: status, set container, set iommu, device fd', () => {
    const groupFd = proc.open('/dev/vfio/5');
    expect(status(proc, va, groupFd)).toEqual({ rc: 0, flags: VFIO_GROUP_FLAGS_VIABLE });
    const containerFd = proc.open('/dev/vfio/vfio');
    expect(proc.ioctl(containerFd, VFIO_GET_API_VERSION)).toBe(VFIO_API_VERSION);
    expect(proc.ioctl(containerFd, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU)).toBe(1);
    expect(setContainer(proc, va, groupFd, containerFd)).toBe(0);
    expect(status(proc, va, groupFd)).toEqual({ rc: 0, flags: VFIO_GROUP_FLAGS_VIABLE | VFIO_GROUP_FLAGS_CONTAINER_SET });
    expect(proc.ioctl(containerFd, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU)).toBe(0);
    expect(host.type1.events).toEqual([`open ${VFIO_TYPE1v2_IOMMU}`, 'attach 5 iommu']);

    const deviceFd = getDeviceFd(proc, va, groupFd, FN);
    expect(deviceFd).toBe(2);
    const vdev = driver.devices.get(FN)!;
    expect(vdev.events).toEqual(['open']);
    expect(host.type1.events.at(-1)).toBe(`register ${FN}`);
    expect(proc.ioctl(deviceFd, VFIO_DEVICE_GET_INFO, va)).toBe(42);
    expect(vdev.events.at(-1)).toBe(`ioctl 0x${VFIO_DEVICE_GET_INFO.toString(16)}`);
  });

  it('gives the device fd O_RDWR with close-on-exec and region access by offset', () => {
    const { deviceFd } = openDevice();
    expect(proc.files.isCloexec(deviceFd)).toBe(true);
    expect(proc.fdget(deviceFd).flags & O_RDWR).toBe(O_RDWR);
    expect(proc.pwrite(deviceFd, Uint8Array.of(1, 2, 3), 2)).toBe(3);
    const buf = new Uint8Array(4);
    expect(proc.pread(deviceFd, buf, 1)).toBe(4);
    expect([...buf]).toEqual([0, 1, 2, 3]);
  });

  it('sends container ioctls it does not answer to the back end, with the raw argument', () => {
    const { containerFd } = openDevice();
    expect(proc.ioctl(containerFd, VFIO_IOMMU_GET_INFO, va)).toBe(7);
    expect(host.type1.events).toContain(`ioctl 0x${VFIO_IOMMU_GET_INFO.toString(16)} ${va}`);
    expect(proc.ioctl(containerFd, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU)).toBe(1);
    expect(host.type1.events.at(-1)).toBe(`ioctl 0x${VFIO_CHECK_EXTENSION.toString(16)} ${VFIO_TYPE1v2_IOMMU}`);
  });

  it('opens the device again through the group and calls open_device only for the first', () => {
    const { groupFd, deviceFd } = openDevice();
    const second = getDeviceFd(proc, va, groupFd, FN);
    expect(second).toBeGreaterThan(deviceFd);
    const vdev = driver.devices.get(FN)!;
    expect(vdev.openCount).toBe(2);
    expect(proc.close(deviceFd)).toBe(0);
    expect(vdev.events).toEqual(['open']);
    expect(proc.close(second)).toBe(0);
    expect(vdev.events).toEqual(['open', 'close']);
    expect(host.type1.events.slice(-1)).toEqual([`unregister ${FN}`]);
  });

  it('keeps the group attached while a device is open after the group fd is closed', () => {
    const { groupFd, containerFd, deviceFd } = openDevice();
    expect(proc.close(groupFd)).toBe(0);
    expect(proc.close(containerFd)).toBe(0);
    expect(host.type1.events).not.toContain('detach 5');
    expect(proc.open('/dev/vfio/5')).toBe(-Errno.EBUSY);
    expect(proc.close(deviceFd)).toBe(0);
    expect(host.type1.events.slice(-4)).toEqual(['container close', `unregister ${FN}`, 'detach 5', 'release']);
    expect(proc.open('/dev/vfio/5')).toBeGreaterThanOrEqual(0);
  });

  describe('the device fd', () => {
    it('answers EINVAL to read, write, mmap and ioctl the driver does not implement', () => {
      host = makeHost();
      driver = fixtureDriver(host.vfio, { ops: { read: undefined, write: undefined, ioctl: undefined } });
      host.drivers.registerPciDriver(driver);
      host.addFunction(FN, 5);
      ({ proc, va } = spawnWithScratch(host.system));
      const { deviceFd } = openDevice();
      expect(proc.pread(deviceFd, new Uint8Array(4), 0)).toBe(-Errno.EINVAL);
      expect(proc.read(deviceFd, new Uint8Array(4))).toBe(-Errno.EINVAL);
      expect(proc.pwrite(deviceFd, new Uint8Array(4), 0)).toBe(-Errno.EINVAL);
      expect(proc.mmap(4096, { fd: deviceFd })).toBe(-BigInt(Errno.EINVAL));
      expect(proc.ioctl(deviceFd, VFIO_DEVICE_GET_INFO, va)).toBe(-Errno.EINVAL);
    });

    it('hands mmap to the driver with the offset and the mapping request', () => {
      const seen: string[] = [];
      host = makeHost();
      const object = new MemoryObject(host.system.physMem, 'shmem', 0x2000n);
      driver = fixtureDriver(host.vfio, {
        ops: {
          mmap: (_vdev, _proc, offset, length, request) => {
            seen.push(`${offset} ${length} ${request.shared}`);
            return { kind: 'ram', object, offset: 0n };
          },
        },
      });
      host.drivers.registerPciDriver(driver);
      host.addFunction(FN, 5);
      ({ proc, va } = spawnWithScratch(host.system));
      const { deviceFd } = openDevice();
      const at = proc.mmap(0x2000, { fd: deviceFd, offset: 0x10000 });
      expect(at).toBeGreaterThan(0n);
      expect(seen).toEqual(['65536 8192 true']);
      expect(proc.mem.write(at, Uint8Array.of(9))).toBe(0);
    });

    it('answers EBADF once closed', () => {
      const { deviceFd } = openDevice();
      proc.close(deviceFd);
      expect(proc.ioctl(deviceFd, VFIO_DEVICE_GET_INFO, va)).toBe(-Errno.EBADF);
    });
  });

  describe('an iommufd as the container', () => {
    it('reports CONTAINER_SET and VIABLE, and attaches the device to the compat IOAS on open', () => {
      const groupFd = proc.open('/dev/vfio/5');
      const iommufd = proc.open('/dev/iommu');
      expect(setContainer(proc, va, groupFd, iommufd)).toBe(0);
      expect(status(proc, va, groupFd).flags).toBe(VFIO_GROUP_FLAGS_VIABLE | VFIO_GROUP_FLAGS_CONTAINER_SET);
      const deviceFd = getDeviceFd(proc, va, groupFd, FN);
      expect(deviceFd).toBeGreaterThanOrEqual(0);
      const compat = host.iommufd.ctxOf(proc, iommufd).compatIoas;
      expect(host.iommufd.calls).toEqual([`bind ${FN}`, `attach ${FN} rid ${compat}`]);
      proc.close(deviceFd);
      expect(host.iommufd.calls.slice(-2)).toEqual([`detach ${FN} rid`, `unbind ${FN}`]);
    });

    it('still reads VIABLE with a host-driver sibling, and fails the device open with EPERM', () => {
      host.drivers.registerPciDriver(hostDriver('e1000e', [{ vendor: 0x8086, device: 0x10d3 }]));
      host.addFunction(SIBLING, 5, { deviceId: 0x10d3 });
      const groupFd = proc.open('/dev/vfio/5');
      const iommufd = proc.open('/dev/iommu');
      expect(setContainer(proc, va, groupFd, iommufd)).toBe(0);
      expect(status(proc, va, groupFd).flags).toBe(VFIO_GROUP_FLAGS_VIABLE | VFIO_GROUP_FLAGS_CONTAINER_SET);
      expect(getDeviceFd(proc, va, groupFd, FN)).toBe(-Errno.EPERM);
      expect(driver.devices.get(FN)!.events).toEqual([]);
    });

    it('drops the iommufd with UNSET_CONTAINER even while a device is open', () => {
      const groupFd = proc.open('/dev/vfio/5');
      const iommufd = proc.open('/dev/iommu');
      setContainer(proc, va, groupFd, iommufd);
      const ctx = host.iommufd.ctxOf(proc, iommufd);
      const refs = ctx.refs;
      expect(getDeviceFd(proc, va, groupFd, FN)).toBeGreaterThanOrEqual(0);
      expect(proc.ioctl(groupFd, VFIO_GROUP_UNSET_CONTAINER)).toBe(0);
      expect(ctx.refs).toBe(refs - 1);
      // The open device still holds the group's DMA ownership through iommufd.
      expect(status(proc, va, groupFd).flags).toBe(0);
    });
  });

  describe('VFIO_GROUP_GET_STATUS', () => {
    it('answers EINVAL for argsz below 8 and leaves the struct alone', () => {
      const groupFd = proc.open('/dev/vfio/5');
      expect(status(proc, va, groupFd, 7)).toEqual({ rc: -Errno.EINVAL, flags: 0xdead });
    });

    it('answers EFAULT for an unmapped argument', () => {
      const groupFd = proc.open('/dev/vfio/5');
      expect(proc.ioctl(groupFd, VFIO_GROUP_GET_STATUS, 0x1000n)).toBe(-Errno.EFAULT);
    });

    it('copies back only argsz and flags even when argsz is larger', () => {
      const groupFd = proc.open('/dev/vfio/5');
      proc.mem.write(va, new Uint8Array(16).fill(0xee));
      proc.mem.writeU32(va, 16);
      expect(proc.ioctl(groupFd, VFIO_GROUP_GET_STATUS, va)).toBe(0);
      expect(proc.mem.readU32(va + 4n)).toBe(VFIO_GROUP_FLAGS_VIABLE);
      expect([...(proc.mem.read(va + 8n, 8) as Uint8Array)]).toEqual(new Array(8).fill(0xee));
    });

    it('reports a group with a sibling bound to a host driver as not viable', () => {
      const nic = hostDriver('e1000e', [{ vendor: 0x8086, device: 0x10d3 }]);
      host.drivers.registerPciDriver(nic);
      host.addFunction(SIBLING, 5, { deviceId: 0x10d3 });
      expect(host.drivers.driverName(host.drivers.findDevice('pci', SIBLING)!)).toBe('e1000e');
      const groupFd = proc.open('/dev/vfio/5');
      expect(status(proc, va, groupFd)).toEqual({ rc: 0, flags: 0 });
    });

    it('reports a group whose sibling has no driver as viable', () => {
      host.drivers.setDriverOverride(host.drivers.findDevice('pci', FN)!, 'vfio-fixture');
      host.addFunction(SIBLING, 5, { vendorId: 0x15b3 });
      expect(host.drivers.driverName(host.drivers.findDevice('pci', SIBLING)!)).toBeNull();
      const groupFd = proc.open('/dev/vfio/5');
      expect(status(proc, va, groupFd).flags).toBe(VFIO_GROUP_FLAGS_VIABLE);
    });
  });

  describe('opening the group', () => {
    it('refuses a second open with EBUSY', () => {
      expect(proc.open('/dev/vfio/5')).toBeGreaterThanOrEqual(0);
      expect(proc.open('/dev/vfio/5')).toBe(-Errno.EBUSY);
      const other = host.system.spawn();
      expect(other.open('/dev/vfio/5')).toBe(-Errno.EBUSY);
    });

    it('can be opened again once the first file is closed', () => {
      const fd = proc.open('/dev/vfio/5');
      expect(proc.close(fd)).toBe(0);
      expect(proc.open('/dev/vfio/5')).toBe(fd);
    });
  });

  describe('VFIO_GROUP_SET_CONTAINER', () => {
    it('answers EFAULT when the fd cannot be read', () => {
      const groupFd = proc.open('/dev/vfio/5');
      expect(proc.ioctl(groupFd, VFIO_GROUP_SET_CONTAINER, 0x1000n)).toBe(-Errno.EFAULT);
    });

    it('answers EBADF for a closed fd', () => {
      const groupFd = proc.open('/dev/vfio/5');
      expect(setContainer(proc, va, groupFd, 99)).toBe(-Errno.EBADF);
    });

    it('answers EBADFD for a group fd passed as the container', () => {
      const groupFd = proc.open('/dev/vfio/5');
      expect(setContainer(proc, va, groupFd, groupFd)).toBe(-Errno.EBADFD);
      expect(status(proc, va, groupFd).flags).toBe(VFIO_GROUP_FLAGS_VIABLE);
    });

    it('answers EBADFD for an eventfd', () => {
      const groupFd = proc.open('/dev/vfio/5');
      const efd = proc.eventfd();
      expect(setContainer(proc, va, groupFd, efd)).toBe(-Errno.EBADFD);
    });

    it('answers EINVAL when a container is already set', () => {
      const groupFd = proc.open('/dev/vfio/5');
      const containerFd = proc.open('/dev/vfio/vfio');
      expect(setContainer(proc, va, groupFd, containerFd)).toBe(0);
      const other = proc.open('/dev/vfio/vfio');
      expect(setContainer(proc, va, groupFd, other)).toBe(-Errno.EINVAL);
      expect(setContainer(proc, va, groupFd, 99)).toBe(-Errno.EBADF);
    });

    it('answers EPERM when a sibling is bound to a host driver, and claims nothing', () => {
      host.drivers.registerPciDriver(hostDriver('e1000e', [{ vendor: 0x8086, device: 0x10d3 }]));
      host.addFunction(SIBLING, 5, { deviceId: 0x10d3 });
      const groupFd = proc.open('/dev/vfio/5');
      const containerFd = proc.open('/dev/vfio/vfio');
      expect(setContainer(proc, va, groupFd, containerFd)).toBe(-Errno.EPERM);
      expect(status(proc, va, groupFd).flags).toBe(0);
      expect(proc.ioctl(containerFd, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU)).toBe(-Errno.EINVAL);
    });

    it('keeps host drivers from probing a device of a group userspace owns', () => {
      const groupFd = proc.open('/dev/vfio/5');
      const containerFd = proc.open('/dev/vfio/vfio');
      expect(setContainer(proc, va, groupFd, containerFd)).toBe(0);
      const nic = hostDriver('e1000e', [{ vendor: 0x8086, device: 0x10d3 }]);
      host.drivers.registerPciDriver(nic);
      host.addFunction(SIBLING, 5, { deviceId: 0x10d3 });
      expect(nic.probed).toEqual([]);
      expect(host.drivers.log.messages.at(-1)).toMatchObject({ level: 'warn', device: SIBLING });
    });

    it('attaches a second group to a container whose back end is set', () => {
      host.addFunction('0000:00:02.0', 6);
      const { containerFd } = openDevice();
      const group6 = proc.open('/dev/vfio/6');
      expect(setContainer(proc, va, group6, containerFd)).toBe(0);
      expect(host.type1.events).toContain('attach 6 iommu');
    });

    it('answers the back end\'s errno when it refuses a group, and leaves the group unclaimed', () => {
      host.addFunction('0000:00:02.0', 6);
      const { containerFd } = openDevice();
      host.type1.refuse.add(6);
      const group6 = proc.open('/dev/vfio/6');
      expect(setContainer(proc, va, group6, containerFd)).toBe(-Errno.EBUSY);
      expect(status(proc, va, group6).flags).toBe(VFIO_GROUP_FLAGS_VIABLE);
    });
  });

  describe('VFIO_GROUP_UNSET_CONTAINER', () => {
    it('answers EINVAL without a container', () => {
      const groupFd = proc.open('/dev/vfio/5');
      expect(proc.ioctl(groupFd, VFIO_GROUP_UNSET_CONTAINER)).toBe(-Errno.EINVAL);
    });

    it('answers EBUSY while a device opened through the container is open', () => {
      const { groupFd, deviceFd } = openDevice();
      expect(proc.ioctl(groupFd, VFIO_GROUP_UNSET_CONTAINER)).toBe(-Errno.EBUSY);
      expect(proc.close(deviceFd)).toBe(0);
      expect(proc.ioctl(groupFd, VFIO_GROUP_UNSET_CONTAINER)).toBe(0);
      expect(host.type1.events.slice(-2)).toEqual(['detach 5', 'release']);
      expect(status(proc, va, groupFd).flags).toBe(VFIO_GROUP_FLAGS_VIABLE);
    });

    it('returns the container to the unset state when its last group leaves', () => {
      const { groupFd, containerFd, deviceFd } = openDevice();
      proc.close(deviceFd);
      expect(proc.ioctl(groupFd, VFIO_GROUP_UNSET_CONTAINER)).toBe(0);
      expect(proc.ioctl(containerFd, VFIO_IOMMU_GET_INFO, va)).toBe(-Errno.EINVAL);
      expect(setContainer(proc, va, groupFd, containerFd)).toBe(0);
      expect(proc.ioctl(containerFd, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU)).toBe(0);
    });
  });

  describe('the container', () => {
    it('answers EINVAL to SET_IOMMU without a group', () => {
      const containerFd = proc.open('/dev/vfio/vfio');
      expect(proc.ioctl(containerFd, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU)).toBe(-Errno.EINVAL);
    });

    it('answers EINVAL to a second SET_IOMMU', () => {
      const { containerFd } = openDevice();
      expect(proc.ioctl(containerFd, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU)).toBe(-Errno.EINVAL);
    });

    it('answers ENODEV to SET_IOMMU with a type no back end supports', () => {
      const groupFd = proc.open('/dev/vfio/5');
      const containerFd = proc.open('/dev/vfio/vfio');
      setContainer(proc, va, groupFd, containerFd);
      expect(proc.ioctl(containerFd, VFIO_SET_IOMMU, 99)).toBe(-Errno.ENODEV);
      expect(proc.ioctl(containerFd, VFIO_SET_IOMMU, VFIO_NOIOMMU_IOMMU)).toBe(-Errno.ENODEV);
    });

    it('answers the attach errno of the back end that failed to take the groups', () => {
      const groupFd = proc.open('/dev/vfio/5');
      const containerFd = proc.open('/dev/vfio/vfio');
      setContainer(proc, va, groupFd, containerFd);
      host.type1.refuse.add(5);
      expect(proc.ioctl(containerFd, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU)).toBe(-Errno.EBUSY);
      host.type1.refuse.clear();
      expect(proc.ioctl(containerFd, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU)).toBe(0);
    });

    it('answers CHECK_EXTENSION from every back end before SET_IOMMU', () => {
      const containerFd = proc.open('/dev/vfio/vfio');
      expect(proc.ioctl(containerFd, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU)).toBe(1);
      expect(proc.ioctl(containerFd, VFIO_CHECK_EXTENSION, VFIO_NOIOMMU_IOMMU)).toBe(0);
      expect(proc.ioctl(containerFd, VFIO_CHECK_EXTENSION, 1n << 40n)).toBe(0);
      host.vfio.noiommu = true;
      expect(proc.ioctl(containerFd, VFIO_CHECK_EXTENSION, VFIO_NOIOMMU_IOMMU)).toBe(1);
    });

    it('answers EINVAL to any other ioctl before SET_IOMMU', () => {
      const containerFd = proc.open('/dev/vfio/vfio');
      expect(proc.ioctl(containerFd, VFIO_IOMMU_GET_INFO, va)).toBe(-Errno.EINVAL);
      expect(proc.ioctl(containerFd, 0x1234)).toBe(-Errno.EINVAL);
    });

    it('tells the back end when the container file closes while a group keeps it', () => {
      const { containerFd } = openDevice();
      expect(proc.close(containerFd)).toBe(0);
      expect(host.type1.events.at(-1)).toBe('container close');
    });
  });

  describe('VFIO_GROUP_GET_DEVICE_FD', () => {
    it('answers EINVAL without a container', () => {
      const groupFd = proc.open('/dev/vfio/5');
      expect(getDeviceFd(proc, va, groupFd, FN)).toBe(-Errno.EINVAL);
      expect(driver.devices.get(FN)!.refcount).toBe(1);
    });

    it('answers EINVAL before SET_IOMMU and opens nothing', () => {
      const groupFd = proc.open('/dev/vfio/5');
      const containerFd = proc.open('/dev/vfio/vfio');
      setContainer(proc, va, groupFd, containerFd);
      expect(getDeviceFd(proc, va, groupFd, FN)).toBe(-Errno.EINVAL);
      const vdev = driver.devices.get(FN)!;
      expect(vdev.events).toEqual([]);
      expect(vdev.openCount).toBe(0);
      expect(proc.files.fds()).toEqual([0, 1]);
    });

    it('answers ENODEV for a name no device of the group has', () => {
      const { groupFd } = openDevice();
      expect(getDeviceFd(proc, va, groupFd, '0000:00:09.0')).toBe(-Errno.ENODEV);
      expect(getDeviceFd(proc, va, groupFd, `${FN} `)).toBe(-Errno.ENODEV);
    });

    it('answers EFAULT for an unreadable name and EINVAL for one without a NUL in a page', () => {
      const { groupFd } = openDevice();
      expect(proc.ioctl(groupFd, VFIO_GROUP_GET_DEVICE_FD, 0x1000n)).toBe(-Errno.EFAULT);
      proc.mem.write(va, new Uint8Array(4096).fill(0x41));
      expect(proc.ioctl(groupFd, VFIO_GROUP_GET_DEVICE_FD, va)).toBe(-Errno.EINVAL);
      proc.mem.write(va + 4096n - 3n, Uint8Array.of(0x41, 0x41, 0x41));
      expect(proc.ioctl(groupFd, VFIO_GROUP_GET_DEVICE_FD, va + 4096n - 3n)).toBe(-Errno.ENODEV);
    });

    it('lets the driver\'s match op decide and abort with its errno', () => {
      host = makeHost();
      driver = fixtureDriver(host.vfio, {
        ops: {
          match: (vdev, name) => {
            if (name.includes('vf_token=')) throw new SimError('NOT_PERMITTED', 'token refused');
            return name === `${vdev.name} alias`;
          },
        },
      });
      host.drivers.registerPciDriver(driver);
      host.addFunction(FN, 5);
      ({ proc, va } = spawnWithScratch(host.system));
      const groupFd = proc.open('/dev/vfio/5');
      const containerFd = proc.open('/dev/vfio/vfio');
      setContainer(proc, va, groupFd, containerFd);
      proc.ioctl(containerFd, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU);
      expect(getDeviceFd(proc, va, groupFd, FN)).toBe(-Errno.ENODEV);
      expect(getDeviceFd(proc, va, groupFd, `${FN} vf_token=x`)).toBe(-Errno.EPERM);
      expect(getDeviceFd(proc, va, groupFd, `${FN} alias`)).toBeGreaterThanOrEqual(0);
    });

    it('answers EMFILE when no fd is free and leaves the device closed', () => {
      const groupFd = proc.open('/dev/vfio/5');
      const containerFd = proc.open('/dev/vfio/vfio');
      setContainer(proc, va, groupFd, containerFd);
      proc.ioctl(containerFd, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU);
      while (proc.eventfd() >= 0);
      writeString(proc, va, FN);
      expect(proc.ioctl(groupFd, VFIO_GROUP_GET_DEVICE_FD, va)).toBe(-Errno.EMFILE);
      const vdev = driver.devices.get(FN)!;
      expect(vdev.openCount).toBe(0);
      expect(vdev.refcount).toBe(1);
    });

    it('undoes the container use and the module reference when open_device fails', () => {
      host = makeHost();
      driver = fixtureDriver(host.vfio, {
        ops: {
          openDevice: () => {
            throw new SimError('IO_ERROR', 'device did not come up');
          },
        },
      });
      host.drivers.registerPciDriver(driver);
      host.addFunction(FN, 5);
      ({ proc, va } = spawnWithScratch(host.system));
      const groupFd = proc.open('/dev/vfio/5');
      const containerFd = proc.open('/dev/vfio/vfio');
      setContainer(proc, va, groupFd, containerFd);
      proc.ioctl(containerFd, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU);
      expect(getDeviceFd(proc, va, groupFd, FN)).toBe(-Errno.EIO);
      const vdev = driver.devices.get(FN)!;
      expect(vdev.openCount).toBe(0);
      expect(vdev.refcount).toBe(1);
      expect(host.drivers.moduleOf(vdev.dev)!.refs).toBe(0);
      expect(host.type1.events.slice(-2)).toEqual([`register ${FN}`, `unregister ${FN}`]);
      expect(proc.ioctl(groupFd, VFIO_GROUP_UNSET_CONTAINER)).toBe(0);
    });
  });
});
