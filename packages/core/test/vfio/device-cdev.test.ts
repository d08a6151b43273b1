import { beforeEach, describe, expect, it } from 'vitest';
import {
  Errno,
  MAP_SHARED,
  PROT_READ,
  SimError,
  VFIO_DEVICE_ATTACH_IOMMUFD_PT,
  VFIO_DEVICE_ATTACH_PASID,
  VFIO_DEVICE_BIND_FLAG_TOKEN,
  VFIO_DEVICE_BIND_IOMMUFD,
  VFIO_DEVICE_DETACH_IOMMUFD_PT,
  VFIO_DEVICE_DETACH_PASID,
  VFIO_DEVICE_GET_INFO,
  VFIO_GROUP_GET_DEVICE_FD,
  VFIO_GROUP_SET_CONTAINER,
  vfio_device_attach_iommufd_pt,
  vfio_device_bind_iommufd,
  vfio_device_detach_iommufd_pt,
  type Process,
} from '@vfiosim/core';
import { fixtureDriver, hostDriver, makeHost, spawnWithScratch, writeString, type Host } from './harness.js';

const FN = '0000:00:01.0';
const CDEV = '/dev/vfio/devices/vfio0';

describe('vfio device cdev', () => {
  let host: Host;
  let proc: Process;
  let va: bigint;
  let driver: ReturnType<typeof fixtureDriver>;
  let iommufdFd: number;
  let ioas: number;

  function setup(ops: Parameters<typeof fixtureDriver>[1] = {}): void {
    host = makeHost();
    driver = fixtureDriver(host.vfio, ops);
    host.drivers.registerPciDriver(driver);
    host.addFunction(FN, 5);
    ({ proc, va } = spawnWithScratch(host.system));
    iommufdFd = proc.open('/dev/iommu');
    ioas = host.iommufd.allocIoas(proc, iommufdFd);
  }

  beforeEach(() => setup());

  function bind(fd: number, fields: Partial<Record<keyof typeof bindDefaults, number | bigint>> = {}, at = va): number {
    const value = { ...bindDefaults, iommufd: iommufdFd, ...fields };
    proc.mem.write(at, vfio_device_bind_iommufd.encodeNew(value as never));
    return proc.ioctl(fd, VFIO_DEVICE_BIND_IOMMUFD, at);
  }
  const bindDefaults = { argsz: 24, flags: 0, iommufd: 0, out_devid: 0xffff, token_uuid_ptr: 0n };

  function attach(fd: number, ptId: number, flags = 0, argsz = 16, pasid = 0): number {
    proc.mem.write(va, vfio_device_attach_iommufd_pt.encodeNew({ argsz, flags, pt_id: ptId, pasid }));
    return proc.ioctl(fd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, va);
  }

  function detach(fd: number, flags = 0, argsz = 12, pasid = 0): number {
    proc.mem.write(va, vfio_device_detach_iommufd_pt.encodeNew({ argsz, flags, pasid }));
    return proc.ioctl(fd, VFIO_DEVICE_DETACH_IOMMUFD_PT, va);
  }

  const vdev = () => driver.devices.get(FN)!;

  it('runs the cdev flow: bind, attach, detach, close', () => {
    const fd = proc.open(CDEV);
    expect(fd).toBeGreaterThanOrEqual(0);
    expect(vdev().events).toEqual([]);
    expect(bind(fd)).toBe(0);
    const ctx = host.iommufd.ctxOf(proc, iommufdFd);
    const devid = host.iommufd.deviceIdInCtx(ctx, host.drivers.findDevice('pci', FN) as never);
    expect(proc.mem.readU32(va + 12n)).toBe(devid);
    expect(vdev().events).toEqual(['open']);
    expect(vdev().cdevOpened).toBe(true);

    expect(attach(fd, ioas)).toBe(0);
    expect(proc.mem.readU32(va + 8n)).toBe(ioas + 1000);
    expect(vdev().iommufdAttached).toBe(true);
    expect(attach(fd, ioas)).toBe(0);
    expect(host.iommufd.calls.at(-1)).toBe(`replace ${FN} rid ${ioas}`);
    expect(detach(fd)).toBe(0);
    expect(vdev().iommufdAttached).toBe(false);

    expect(proc.ioctl(fd, VFIO_DEVICE_GET_INFO, va)).toBe(42);
    const refs = ctx.refs;
    expect(proc.close(fd)).toBe(0);
    expect(vdev().events).toEqual(['open', `ioctl 0x${VFIO_DEVICE_GET_INFO.toString(16)}`, 'close']);
    expect(host.iommufd.calls.at(-1)).toBe(`unbind ${FN}`);
    expect(ctx.refs).toBe(refs - 1);
    expect(vdev().cdevOpened).toBe(false);
  });

  it('detaches the RID and every PASID when a bound file closes', () => {
    const fd = proc.open(CDEV);
    bind(fd);
    attach(fd, ioas);
    expect(attach(fd, ioas, VFIO_DEVICE_ATTACH_PASID, 16, 7)).toBe(0);
    expect(vdev().pasids).toEqual(new Set([7]));
    proc.close(fd);
    expect(host.iommufd.calls.slice(-3)).toEqual([`detach ${FN} 7`, `detach ${FN} rid`, `unbind ${FN}`]);
  });

  describe('before VFIO_DEVICE_BIND_IOMMUFD', () => {
    it('answers EINVAL to every other ioctl and to read, write and mmap', () => {
      const fd = proc.open(CDEV);
      expect(proc.ioctl(fd, VFIO_DEVICE_GET_INFO, va)).toBe(-Errno.EINVAL);
      expect(attach(fd, ioas)).toBe(-Errno.EINVAL);
      expect(detach(fd)).toBe(-Errno.EINVAL);
      expect(proc.pread(fd, new Uint8Array(4), 0)).toBe(-Errno.EINVAL);
      expect(proc.pwrite(fd, new Uint8Array(4), 0)).toBe(-Errno.EINVAL);
      expect(proc.mmap(4096, { fd })).toBe(-BigInt(Errno.EINVAL));
      expect(vdev().events).toEqual([]);
    });

    it('closes without touching the device', () => {
      const fd = proc.open(CDEV);
      expect(proc.close(fd)).toBe(0);
      expect(vdev().events).toEqual([]);
      expect(vdev().refcount).toBe(1);
    });
  });

  describe('VFIO_DEVICE_BIND_IOMMUFD argument checks', () => {
    it('answers EFAULT for an unmapped argument', () => {
      const fd = proc.open(CDEV);
      expect(proc.ioctl(fd, VFIO_DEVICE_BIND_IOMMUFD, 0x1000n)).toBe(-Errno.EFAULT);
    });

    it('answers EINVAL for argsz below 16', () => {
      const fd = proc.open(CDEV);
      expect(bind(fd, { argsz: 15 })).toBe(-Errno.EINVAL);
      expect(proc.mem.readU32(va + 12n)).toBe(0xffff);
    });

    it('accepts the 16-byte struct of older headers', () => {
      const fd = proc.open(CDEV);
      expect(bind(fd, { argsz: 16, token_uuid_ptr: 0xdeadn })).toBe(0);
    });

    it('answers E2BIG for non-zero bytes past the 24-byte struct, and accepts zero ones', () => {
      const fd = proc.open(CDEV);
      proc.mem.write(va + 24n, Uint8Array.of(0, 0, 0, 1));
      expect(bind(fd, { argsz: 28 })).toBe(-Errno.E2BIG);
      proc.mem.write(va + 24n, Uint8Array.of(0, 0, 0, 0));
      expect(bind(fd, { argsz: 28 })).toBe(0);
    });

    it('answers EINVAL for unknown flags and for a negative iommufd', () => {
      const fd = proc.open(CDEV);
      expect(bind(fd, { flags: 2 })).toBe(-Errno.EINVAL);
      expect(bind(fd, { iommufd: -1 })).toBe(-Errno.EINVAL);
      expect(vdev().events).toEqual([]);
    });

    it('answers EBADF for a closed fd and EBADFD for files that are not an iommufd', () => {
      const fd = proc.open(CDEV);
      expect(bind(fd, { iommufd: 77 })).toBe(-Errno.EBADF);
      expect(bind(fd, { iommufd: proc.eventfd() })).toBe(-Errno.EBADFD);
      expect(bind(fd, { iommufd: proc.open('/dev/vfio/vfio') })).toBe(-Errno.EBADFD);
      expect(bind(fd, { iommufd: fd })).toBe(-Errno.EBADFD);
      expect(vdev().events).toEqual([]);
      expect(proc.open('/dev/vfio/5')).toBeGreaterThanOrEqual(0);
    });

    it('answers EINVAL to a second bind of the same file', () => {
      const fd = proc.open(CDEV);
      expect(bind(fd)).toBe(0);
      expect(bind(fd)).toBe(-Errno.EINVAL);
      expect(vdev().events).toEqual(['open']);
    });

    it('answers EINVAL to binding a second cdev file while the device is bound', () => {
      const first = proc.open(CDEV);
      const second = proc.open(CDEV);
      expect(bind(first)).toBe(0);
      expect(bind(second)).toBe(-Errno.EINVAL);
      expect(vdev().openCount).toBe(1);
      proc.close(first);
      expect(bind(second)).toBe(0);
    });
  });

  describe('the VF token', () => {
    it('answers EINVAL to the token flag when the driver takes no token', () => {
      const fd = proc.open(CDEV);
      expect(bind(fd, { flags: VFIO_DEVICE_BIND_FLAG_TOKEN, token_uuid_ptr: va + 64n })).toBe(-Errno.EINVAL);
    });

    it('hands the driver the 16-byte UUID, or null without the flag', () => {
      const seen: (number[] | null)[] = [];
      setup({
        ops: {
          matchTokenUuid: (_vdev, uuid) => {
            seen.push(uuid && [...uuid]);
            if (uuid && uuid[0] !== 0xab) throw new SimError('ACCESS_DENIED', 'wrong token');
          },
        },
      });
      const fd = proc.open(CDEV);
      proc.mem.write(va + 64n, new Uint8Array(16).fill(0xcd));
      expect(bind(fd, { flags: VFIO_DEVICE_BIND_FLAG_TOKEN, token_uuid_ptr: va + 64n })).toBe(-Errno.EACCES);
      expect(bind(fd, { flags: VFIO_DEVICE_BIND_FLAG_TOKEN, token_uuid_ptr: 0x1000n })).toBe(-Errno.EFAULT);
      proc.mem.write(va + 64n, new Uint8Array(16).fill(0xab));
      expect(bind(fd, { flags: VFIO_DEVICE_BIND_FLAG_TOKEN, token_uuid_ptr: va + 64n })).toBe(0);
      const other = proc.open('/dev/vfio/devices/vfio0');
      proc.close(fd);
      expect(bind(other)).toBe(0);
      expect(seen).toEqual([new Array(16).fill(0xcd), new Array(16).fill(0xab), null]);
    });
  });

  describe('the group and the cdev exclude each other', () => {
    it('answers EBUSY to a bind while the group file is open', () => {
      const groupFd = proc.open('/dev/vfio/5');
      const fd = proc.open(CDEV);
      expect(bind(fd)).toBe(-Errno.EBUSY);
      proc.close(groupFd);
      expect(bind(fd)).toBe(0);
    });

    it('answers EBUSY to opening the group while a cdev file is bound', () => {
      const fd = proc.open(CDEV);
      bind(fd);
      expect(proc.open('/dev/vfio/5')).toBe(-Errno.EBUSY);
      proc.close(fd);
      expect(proc.open('/dev/vfio/5')).toBeGreaterThanOrEqual(0);
    });

    it('lets the group open while a cdev file is open but unbound', () => {
      const fd = proc.open(CDEV);
      expect(proc.open('/dev/vfio/5')).toBeGreaterThanOrEqual(0);
      expect(bind(fd)).toBe(-Errno.EBUSY);
    });

    it('answers EINVAL to BIND_IOMMUFD on a device fd from the group', () => {
      const groupFd = proc.open('/dev/vfio/5');
      proc.mem.writeU32(va, iommufdFd);
      expect(proc.ioctl(groupFd, VFIO_GROUP_SET_CONTAINER, va)).toBe(0);
      writeString(proc, va, FN);
      const deviceFd = proc.ioctl(groupFd, VFIO_GROUP_GET_DEVICE_FD, va);
      expect(deviceFd).toBeGreaterThanOrEqual(0);
      expect(host.iommufd.calls).toEqual([`bind ${FN}`, `attach ${FN} rid ${host.iommufd.ctxOf(proc, iommufdFd).compatIoas}`]);
      expect(bind(deviceFd)).toBe(-Errno.EINVAL);
      // The cdev-only ioctls are the driver's on a group fd.
      expect(attach(deviceFd, ioas)).toBe(42);
    });
  });

  describe('a failed bind leaves nothing behind', () => {
    it('when iommufd refuses the device (its group has a host driver)', () => {
      host.drivers.registerPciDriver(hostDriver('e1000e', [{ vendor: 0x8086, device: 0x10d3 }]));
      host.addFunction('0000:00:01.1', 5, { deviceId: 0x10d3 });
      const fd = proc.open(CDEV);
      const ctx = host.iommufd.ctxOf(proc, iommufdFd);
      const refs = ctx.refs;
      expect(bind(fd)).toBe(-Errno.EPERM);
      expect(vdev().openCount).toBe(0);
      expect(vdev().events).toEqual([]);
      expect(host.drivers.moduleOf(vdev().dev)!.refs).toBe(0);
      expect(ctx.refs).toBe(refs);
      expect(proc.open('/dev/vfio/5')).toBeGreaterThanOrEqual(0);
    });

    it('when out_devid cannot be written back: the device is closed and unbound again', () => {
      const memfd = proc.memfdCreate('bind');
      proc.ftruncate(memfd, 4096);
      proc.pwrite(memfd, vfio_device_bind_iommufd.encodeNew({ argsz: 24, flags: 0, iommufd: iommufdFd }), 0);
      const ro = proc.mmap(4096, { fd: memfd, prot: PROT_READ, flags: MAP_SHARED });
      const fd = proc.open(CDEV);
      expect(proc.ioctl(fd, VFIO_DEVICE_BIND_IOMMUFD, ro)).toBe(-Errno.EFAULT);
      expect(vdev().events).toEqual(['open', 'close']);
      expect(host.iommufd.calls).toEqual([`bind ${FN}`, `unbind ${FN}`]);
      expect(vdev().openCount).toBe(0);
      expect(bind(fd)).toBe(0);
    });
  });

  describe('VFIO_DEVICE_ATTACH_IOMMUFD_PT', () => {
    let fd: number;
    beforeEach(() => {
      fd = proc.open(CDEV);
      expect(bind(fd)).toBe(0);
    });

    it('answers EINVAL for argsz below 12 and for unknown flags', () => {
      expect(attach(fd, ioas, 0, 11)).toBe(-Errno.EINVAL);
      expect(attach(fd, ioas, 2)).toBe(-Errno.EINVAL);
      expect(vdev().iommufdAttached).toBe(false);
    });

    it('takes the 12-byte struct without a PASID', () => {
      expect(attach(fd, ioas, 0, 12)).toBe(0);
    });

    it('answers EINVAL for a PASID attach with argsz below 16', () => {
      expect(attach(fd, ioas, VFIO_DEVICE_ATTACH_PASID, 12, 3)).toBe(-Errno.EINVAL);
      expect(vdev().pasids.size).toBe(0);
    });

    it('answers the iommufd errno for an unknown pt_id', () => {
      expect(attach(fd, 999)).toBe(-Errno.ENOENT);
      expect(vdev().iommufdAttached).toBe(false);
    });

    it('undoes the attach when pt_id cannot be written back', () => {
      const memfd = proc.memfdCreate('attach');
      proc.ftruncate(memfd, 4096);
      proc.pwrite(memfd, vfio_device_attach_iommufd_pt.encodeNew({ argsz: 16, flags: 0, pt_id: ioas }), 0);
      const ro = proc.mmap(4096, { fd: memfd, prot: PROT_READ, flags: MAP_SHARED });
      expect(proc.ioctl(fd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, ro)).toBe(-Errno.EFAULT);
      expect(host.iommufd.calls.slice(-2)).toEqual([`attach ${FN} rid ${ioas}`, `detach ${FN} rid`]);
      expect(vdev().iommufdAttached).toBe(false);
    });
  });

  describe('VFIO_DEVICE_DETACH_IOMMUFD_PT', () => {
    let fd: number;
    beforeEach(() => {
      fd = proc.open(CDEV);
      expect(bind(fd)).toBe(0);
    });

    it('answers EINVAL for argsz below 8 and for unknown flags', () => {
      attach(fd, ioas);
      expect(detach(fd, 0, 7)).toBe(-Errno.EINVAL);
      expect(detach(fd, 2)).toBe(-Errno.EINVAL);
      expect(vdev().iommufdAttached).toBe(true);
    });

    it('answers EINVAL for a PASID detach with argsz below 12, and detaches with 12', () => {
      attach(fd, ioas, VFIO_DEVICE_ATTACH_PASID, 16, 9);
      expect(detach(fd, VFIO_DEVICE_DETACH_PASID, 8, 9)).toBe(-Errno.EINVAL);
      expect(detach(fd, VFIO_DEVICE_DETACH_PASID, 12, 9)).toBe(0);
      expect(vdev().pasids.size).toBe(0);
    });

    it('succeeds when nothing is attached', () => {
      expect(detach(fd, 0, 8)).toBe(0);
      expect(detach(fd, VFIO_DEVICE_DETACH_PASID, 12, 4)).toBe(0);
    });
  });

  describe('a driver without PASID ops', () => {
    beforeEach(() => {
      setup({ ops: { pasidAttachIoas: undefined, pasidDetachIoas: undefined } });
    });

    it('answers EOPNOTSUPP to PASID attach and detach before looking at argsz', () => {
      const fd = proc.open(CDEV);
      bind(fd);
      expect(attach(fd, ioas, VFIO_DEVICE_ATTACH_PASID, 12, 1)).toBe(-Errno.EOPNOTSUPP);
      expect(detach(fd, VFIO_DEVICE_DETACH_PASID, 8, 1)).toBe(-Errno.EOPNOTSUPP);
    });
  });
});
