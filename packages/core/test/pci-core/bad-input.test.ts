import { describe, expect, it } from 'vitest';
import {
  Errno,
  IOMMU_IOAS_ALLOC,
  MAP_PRIVATE,
  VFIO_DEVICE_ATTACH_IOMMUFD_PT,
  VFIO_DEVICE_ATTACH_PASID,
  VFIO_DEVICE_BIND_IOMMUFD,
  VFIO_DEVICE_DETACH_IOMMUFD_PT,
  VFIO_DEVICE_FEATURE,
  VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY,
  VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP,
  VFIO_DEVICE_FEATURE_PROBE,
  VFIO_DEVICE_FEATURE_SET,
  VFIO_DEVICE_GET_INFO,
  VFIO_DEVICE_GET_IRQ_INFO,
  VFIO_DEVICE_GET_REGION_INFO,
  VFIO_DEVICE_IOEVENTFD,
  VFIO_DEVICE_IOEVENTFD_32,
  VFIO_DEVICE_RESET,
  VFIO_DEVICE_SET_IRQS,
  VFIO_IRQ_SET_ACTION_TRIGGER,
  VFIO_IRQ_SET_ACTION_UNMASK,
  VFIO_IRQ_SET_DATA_EVENTFD,
  VFIO_PCI_BAR0_REGION_INDEX,
  VFIO_PCI_ERR_IRQ_INDEX,
  VFIO_PCI_INTX_IRQ_INDEX,
  VFIO_PCI_MSIX_IRQ_INDEX,
  VFIO_PCI_NUM_IRQS,
  VFIO_PCI_NUM_REGIONS,
  VFIO_PCI_REQ_IRQ_INDEX,
  VFIO_PCI_VGA_REGION_INDEX,
  iommu_ioas_alloc,
  vfio_device_attach_iommufd_pt,
  vfio_device_bind_iommufd,
  vfio_device_detach_iommufd_pt,
  vfio_device_feature,
  vfio_device_info,
  vfio_device_ioeventfd,
  vfio_device_low_power_entry_with_wakeup,
  vfio_irq_info,
  vfio_irq_set,
  vfio_region_info,
  vfioPciIndexToOffset,
} from '@vfiosim/core';
import { Rig } from './helpers.js';

/*
 * Every device ioctl against the bad input a VMM can hand it, issued raw
 * on the process: argsz below the minimum, unknown flags, the wrong kind of
 * file, a device file not bound to iommufd, a closed fd, an index out of
 * range, an fd that is not an eventfd. Each must get the kernel's errno and
 * leave the device, the function and the argument exactly as they were.
 */

/** Everything a failed call could have touched: the device's vfio state, the function's config space and reset count. */
function snapshot(rig: Rig): unknown {
  const { vdev, fn } = rig;
  const config: number[] = [];
  for (let at = 0; at < fn.cfgSize; at += 4) config.push(fn.config.read(at, 4));
  return {
    openCount: vdev.openCount,
    attached: vdev.iommufdAttached,
    pasids: [...vdev.pasids],
    irqType: vdev.irqType,
    vectors: [...vdev.irqCtx.entries()].map(([vector, ctx]) => [vector, ctx.trigger !== null, ctx.masked, ctx.unmask !== null]),
    errTrigger: vdev.errTrigger,
    reqTrigger: vdev.reqTrigger,
    ioeventfds: vdev.ioeventfds.length,
    lowPower: vdev.pmRuntimeEngaged,
    vconfig: [...vdev.vconfig],
    config,
    resets: fn.resetCount,
    regions: vdev.regions.length,
  };
}

/** Runs `call`, expects -errno, and checks that the device and the argument bytes did not change. */
function refuses(rig: Rig, errno: number, call: () => number, argp = rig.scratch, argLength = 64): void {
  const before = snapshot(rig);
  const arg = (rig.proc.mem.read(argp, argLength) as Uint8Array).slice();
  expect(call()).toBe(-errno);
  expect(snapshot(rig)).toEqual(before);
  expect([...(rig.proc.mem.read(argp, argLength) as Uint8Array)]).toEqual([...arg]);
}

interface StructIoctl {
  readonly name: string;
  readonly request: number;
  /** The kernel's minsz: offsetofend of the last field it cannot do without. */
  readonly minsz: number;
  /** A well-formed argument; `argsz` replaces the declared size. */
  readonly arg: (rig: Rig, argsz: number) => Uint8Array;
}

const STRUCT_IOCTLS: readonly StructIoctl[] = [
  { name: 'VFIO_DEVICE_GET_INFO', request: VFIO_DEVICE_GET_INFO, minsz: 16, arg: (_rig, argsz) => vfio_device_info.encodeNew({ argsz }) },
  { name: 'VFIO_DEVICE_GET_REGION_INFO', request: VFIO_DEVICE_GET_REGION_INFO, minsz: 32, arg: (_rig, argsz) => vfio_region_info.encodeNew({ argsz, index: 0 }) },
  { name: 'VFIO_DEVICE_GET_IRQ_INFO', request: VFIO_DEVICE_GET_IRQ_INFO, minsz: 16, arg: (_rig, argsz) => vfio_irq_info.encodeNew({ argsz, index: 0 }) },
  {
    name: 'VFIO_DEVICE_SET_IRQS',
    request: VFIO_DEVICE_SET_IRQS,
    minsz: 20,
    arg: (rig, argsz) => {
      const bytes = new Uint8Array(24);
      bytes.set(vfio_irq_set.encodeNew({ argsz, flags: VFIO_IRQ_SET_ACTION_TRIGGER | VFIO_IRQ_SET_DATA_EVENTFD, index: VFIO_PCI_MSIX_IRQ_INDEX, start: 0, count: 1 }));
      new DataView(bytes.buffer).setInt32(20, rig.proc.eventfd(0), true);
      return bytes;
    },
  },
  {
    name: 'VFIO_DEVICE_FEATURE',
    request: VFIO_DEVICE_FEATURE,
    minsz: 8,
    arg: (_rig, argsz) => vfio_device_feature.encodeNew({ argsz, flags: VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY }),
  },
  {
    name: 'VFIO_DEVICE_IOEVENTFD',
    request: VFIO_DEVICE_IOEVENTFD,
    // offsetofend(fd): the struct's tail padding is not required.
    minsz: 28,
    arg: (rig, argsz) => vfio_device_ioeventfd.encodeNew({ argsz, flags: VFIO_DEVICE_IOEVENTFD_32, offset: vfioPciIndexToOffset(VFIO_PCI_BAR0_REGION_INDEX), data: 1n, fd: rig.proc.eventfd(0) }),
  },
  { name: 'VFIO_DEVICE_ATTACH_IOMMUFD_PT', request: VFIO_DEVICE_ATTACH_IOMMUFD_PT, minsz: 12, arg: (rig, argsz) => vfio_device_attach_iommufd_pt.encodeNew({ argsz, pt_id: ioasOf(rig) }) },
  { name: 'VFIO_DEVICE_DETACH_IOMMUFD_PT', request: VFIO_DEVICE_DETACH_IOMMUFD_PT, minsz: 8, arg: (_rig, argsz) => vfio_device_detach_iommufd_pt.encodeNew({ argsz }) },
];

/** Every device ioctl: the struct ones and the one without an argument. */
const ALL_IOCTLS: readonly { name: string; request: number }[] = [...STRUCT_IOCTLS, { name: 'VFIO_DEVICE_RESET', request: VFIO_DEVICE_RESET }];

const ioases = new WeakMap<Rig, number>();

/** An IOAS in the rig's iommufd context (the one its device fd is bound to), made once. */
function ioasOf(rig: Rig): number {
  let id = ioases.get(rig);
  if (id === undefined) {
    const at = rig.scratch + 0x8000n;
    rig.proc.mem.write(at, iommu_ioas_alloc.encodeNew({ size: iommu_ioas_alloc.size }));
    expect(rig.proc.ioctl(rig.iommufd, IOMMU_IOAS_ALLOC, at)).toBe(0);
    id = iommu_ioas_alloc.decode(rig.proc.mem.read(at, iommu_ioas_alloc.size) as Uint8Array).out_ioas_id;
    ioases.set(rig, id);
  }
  return id;
}

/** Writes a VFIO_DEVICE_SET_IRQS argument with eventfd data into the rig's scratch memory. */
function putIrqSet(rig: Rig, flags: number, index: number, start: number, fds: readonly number[]): void {
  const bytes = new Uint8Array(20 + fds.length * 4);
  bytes.set(vfio_irq_set.encodeNew({ argsz: bytes.length, flags, index, start, count: fds.length }));
  fds.forEach((fd, i) => new DataView(bytes.buffer).setInt32(20 + i * 4, fd, true));
  rig.proc.mem.write(rig.scratch, bytes);
}

/** VFIO_DEVICE_SET_IRQS with the argument already in place. */
function setIrqs(rig: Rig): number {
  return rig.proc.ioctl(rig.fd, VFIO_DEVICE_SET_IRQS, rig.scratch);
}

function ioctlWith(rig: Rig, fd: number, request: number, arg: Uint8Array): number {
  rig.proc.mem.write(rig.scratch, arg);
  return rig.proc.ioctl(fd, request, rig.scratch);
}

describe('bad input to the device ioctls', () => {
  describe.each(STRUCT_IOCTLS)('$name', (ioctl) => {
    it('succeeds with the well-formed argument, so the refusals below are about the one thing wrong', () => {
      const rig = new Rig();
      expect(ioctlWith(rig, rig.fd, ioctl.request, ioctl.arg(rig, ioctl.arg(rig, 0).length))).toBeGreaterThanOrEqual(0);
    });

    it('answers EINVAL to argsz one byte below the minimum, writing nothing back', () => {
      const rig = new Rig();
      const arg = ioctl.arg(rig, ioctl.minsz - 1);
      rig.proc.mem.write(rig.scratch, arg);
      refuses(rig, Errno.EINVAL, () => rig.proc.ioctl(rig.fd, ioctl.request, rig.scratch));
    });

    it('answers EFAULT to an argument pointer into unmapped memory', () => {
      const rig = new Rig();
      const hole = rig.scratch + 0x10000n;
      expect(rig.proc.mem.read(hole, 1)).toBe(-Errno.EFAULT);
      refuses(rig, Errno.EFAULT, () => rig.proc.ioctl(rig.fd, ioctl.request, hole));
    });
  });

  describe.each(ALL_IOCTLS)('$name on the wrong file', ({ request }) => {
    it('answers EBADF on a closed fd', () => {
      const rig = new Rig();
      const fd = rig.proc.open(rig.host.vfio.cdevPath(rig.vdev));
      expect(rig.proc.close(fd)).toBe(0);
      refuses(rig, Errno.EBADF, () => rig.proc.ioctl(fd, request, rig.scratch));
    });

    it('answers EINVAL on a cdev file not bound to iommufd, without reaching the driver', () => {
      const rig = new Rig();
      const unbound = rig.proc.open(rig.host.vfio.cdevPath(rig.vdev));
      refuses(rig, Errno.EINVAL, () => rig.proc.ioctl(unbound, request, rig.scratch));
    });

    it('answers ENOTTY on an iommufd, an eventfd and a memfd', () => {
      const rig = new Rig();
      const others = [rig.iommufd, rig.proc.eventfd(0), rig.proc.memfdCreate('guest-ram')];
      for (const fd of others) refuses(rig, Errno.ENOTTY, () => rig.proc.ioctl(fd, request, rig.scratch));
    });

    it('answers ENOTTY on the device\'s group file', () => {
      const rig = new Rig();
      // The group cannot be opened while a cdev of its device is bound.
      expect(rig.proc.close(rig.fd)).toBe(0);
      const group = rig.proc.open(rig.vdev.group!.devPath);
      expect(group).toBeGreaterThanOrEqual(0);
      refuses(rig, Errno.ENOTTY, () => rig.proc.ioctl(group, request, rig.scratch));
    });

    it('answers EINVAL on a container with no IOMMU set, which has no back end to pass it to', () => {
      const rig = new Rig();
      const container = rig.proc.open('/dev/vfio/vfio');
      refuses(rig, Errno.EINVAL, () => rig.proc.ioctl(container, request, rig.scratch));
    });
  });

  describe('VFIO_DEVICE_BIND_IOMMUFD', () => {
    function bindArg(fields: Parameters<typeof vfio_device_bind_iommufd.encodeNew>[0]): Uint8Array {
      return vfio_device_bind_iommufd.encodeNew({ argsz: vfio_device_bind_iommufd.size, ...fields });
    }

    it('answers EINVAL to argsz below 16, unknown flags and a negative iommufd, leaving the file unbound', () => {
      const rig = new Rig();
      const fd = rig.proc.open(rig.host.vfio.cdevPath(rig.vdev));
      for (const arg of [bindArg({ argsz: 15, iommufd: rig.iommufd }), bindArg({ flags: 1 << 1, iommufd: rig.iommufd }), bindArg({ iommufd: -1 })]) {
        rig.proc.mem.write(rig.scratch, arg);
        refuses(rig, Errno.EINVAL, () => rig.proc.ioctl(fd, VFIO_DEVICE_BIND_IOMMUFD, rig.scratch));
      }
      rig.proc.mem.write(rig.scratch, vfio_device_info.encodeNew({ argsz: vfio_device_info.size }));
      expect(rig.proc.ioctl(fd, VFIO_DEVICE_GET_INFO, rig.scratch)).toBe(-Errno.EINVAL);
    });

    it('answers EBADF for a closed iommufd and EBADFD for an eventfd or a device fd given as one', () => {
      const rig = new Rig();
      const fd = rig.proc.open(rig.host.vfio.cdevPath(rig.vdev));
      const closed = rig.proc.eventfd(0);
      rig.proc.close(closed);
      rig.proc.mem.write(rig.scratch, bindArg({ iommufd: closed }));
      refuses(rig, Errno.EBADF, () => rig.proc.ioctl(fd, VFIO_DEVICE_BIND_IOMMUFD, rig.scratch));
      for (const notIommufd of [rig.proc.eventfd(0), rig.fd]) {
        rig.proc.mem.write(rig.scratch, bindArg({ iommufd: notIommufd }));
        refuses(rig, Errno.EBADFD, () => rig.proc.ioctl(fd, VFIO_DEVICE_BIND_IOMMUFD, rig.scratch));
      }
    });
  });

  describe('unknown flags', () => {
    it('are EINVAL for SET_IRQS, FEATURE, IOEVENTFD, ATTACH_IOMMUFD_PT and DETACH_IOMMUFD_PT', () => {
      const rig = new Rig();
      const efd = rig.proc.eventfd(0);
      const cases: Array<[number, Uint8Array]> = [
        [VFIO_DEVICE_SET_IRQS, vfio_irq_set.encodeNew({ argsz: 20, flags: VFIO_IRQ_SET_ACTION_TRIGGER | (1 << 6), index: VFIO_PCI_MSIX_IRQ_INDEX, count: 0 })],
        [VFIO_DEVICE_FEATURE, vfio_device_feature.encodeNew({ argsz: 8, flags: VFIO_DEVICE_FEATURE_PROBE | VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY | (1 << 19) })],
        [VFIO_DEVICE_IOEVENTFD, vfio_device_ioeventfd.encodeNew({ argsz: 32, flags: VFIO_DEVICE_IOEVENTFD_32 | (1 << 4), offset: vfioPciIndexToOffset(0), fd: efd })],
        [VFIO_DEVICE_ATTACH_IOMMUFD_PT, vfio_device_attach_iommufd_pt.encodeNew({ argsz: 16, flags: VFIO_DEVICE_ATTACH_PASID << 1, pt_id: ioasOf(rig) })],
        [VFIO_DEVICE_DETACH_IOMMUFD_PT, vfio_device_detach_iommufd_pt.encodeNew({ argsz: 12, flags: 1 << 1 })],
      ];
      for (const [request, arg] of cases) {
        rig.proc.mem.write(rig.scratch, arg);
        refuses(rig, Errno.EINVAL, () => rig.proc.ioctl(rig.fd, request, rig.scratch));
      }
    });

    it('in the output-only flags of the info ioctls are ignored and overwritten, as the kernel does', () => {
      const rig = new Rig();
      rig.proc.mem.write(rig.scratch, vfio_irq_info.encodeNew({ argsz: 16, flags: 0xffff0000, index: VFIO_PCI_REQ_IRQ_INDEX }));
      expect(rig.proc.ioctl(rig.fd, VFIO_DEVICE_GET_IRQ_INFO, rig.scratch)).toBe(0);
      expect(rig.proc.mem.readU32(rig.scratch + 4n)).toBe(rig.irqInfo(VFIO_PCI_REQ_IRQ_INDEX).info.flags);
    });
  });

  describe('indexes out of range', () => {
    it('are EINVAL for region info past the last region and for the VGA region of a device without VGA', () => {
      const rig = new Rig();
      for (const index of [VFIO_PCI_NUM_REGIONS, VFIO_PCI_VGA_REGION_INDEX, 0xffffffff]) {
        rig.proc.mem.write(rig.scratch, vfio_region_info.encodeNew({ argsz: 32, index }));
        refuses(rig, Errno.EINVAL, () => rig.proc.ioctl(rig.fd, VFIO_DEVICE_GET_REGION_INFO, rig.scratch));
      }
    });

    it('are EINVAL for interrupt info and SET_IRQS past the last index', () => {
      const rig = new Rig();
      rig.proc.mem.write(rig.scratch, vfio_irq_info.encodeNew({ argsz: 16, index: VFIO_PCI_NUM_IRQS }));
      refuses(rig, Errno.EINVAL, () => rig.proc.ioctl(rig.fd, VFIO_DEVICE_GET_IRQ_INFO, rig.scratch));
      putIrqSet(rig, VFIO_IRQ_SET_ACTION_TRIGGER | VFIO_IRQ_SET_DATA_EVENTFD, VFIO_PCI_NUM_IRQS, 0, [rig.proc.eventfd(0)]);
      refuses(rig, Errno.EINVAL, () => setIrqs(rig));
    });

    it('are EINVAL for vectors past the index\'s count, and enable nothing', () => {
      const rig = new Rig();
      const efd = rig.proc.eventfd(0);
      const trigger = VFIO_IRQ_SET_ACTION_TRIGGER | VFIO_IRQ_SET_DATA_EVENTFD;
      for (const [index, start, fds] of [
        [VFIO_PCI_MSIX_IRQ_INDEX, 8, [efd]],
        [VFIO_PCI_MSIX_IRQ_INDEX, 6, [efd, efd, efd]],
        [VFIO_PCI_INTX_IRQ_INDEX, 1, [efd]],
      ] as const) {
        putIrqSet(rig, trigger, index, start, fds);
        refuses(rig, Errno.EINVAL, () => setIrqs(rig));
      }
    });

    it('are EINVAL for pread, pwrite and mmap past the last region', () => {
      const rig = new Rig();
      const past = vfioPciIndexToOffset(VFIO_PCI_NUM_REGIONS);
      refuses(rig, Errno.EINVAL, () => rig.proc.pread(rig.fd, new Uint8Array(4), past));
      refuses(rig, Errno.EINVAL, () => rig.proc.pwrite(rig.fd, new Uint8Array(4), past));
      const before = snapshot(rig);
      expect(rig.proc.mmap(0x1000, { fd: rig.fd, offset: past })).toBe(-BigInt(Errno.EINVAL));
      expect(rig.proc.mmap(0x1000, { fd: rig.fd, offset: vfioPciIndexToOffset(0), flags: MAP_PRIVATE })).toBe(-BigInt(Errno.EINVAL));
      expect(snapshot(rig)).toEqual(before);
    });
  });

  describe('fds that are not eventfds', () => {
    it('are EINVAL as interrupt triggers, for every index, and EBADF when not open at all', () => {
      const rig = new Rig();
      const trigger = VFIO_IRQ_SET_ACTION_TRIGGER | VFIO_IRQ_SET_DATA_EVENTFD;
      const memfd = rig.proc.memfdCreate('not-an-eventfd');
      for (const index of [VFIO_PCI_INTX_IRQ_INDEX, VFIO_PCI_MSIX_IRQ_INDEX, VFIO_PCI_ERR_IRQ_INDEX, VFIO_PCI_REQ_IRQ_INDEX]) {
        for (const fd of [memfd, rig.fd, rig.iommufd]) {
          putIrqSet(rig, trigger, index, 0, [fd]);
          refuses(rig, Errno.EINVAL, () => setIrqs(rig));
        }
        putIrqSet(rig, trigger, index, 0, [memfd + 100]);
        refuses(rig, Errno.EBADF, () => setIrqs(rig));
      }
    });

    it('are EINVAL as the INTx unmask eventfd, leaving INTx unmasked by the user only', () => {
      const rig = new Rig();
      expect(rig.setIrqs(VFIO_IRQ_SET_ACTION_TRIGGER | VFIO_IRQ_SET_DATA_EVENTFD, VFIO_PCI_INTX_IRQ_INDEX, 0, 1, [rig.proc.eventfd(0)])).toBe(0);
      putIrqSet(rig, VFIO_IRQ_SET_ACTION_UNMASK | VFIO_IRQ_SET_DATA_EVENTFD, VFIO_PCI_INTX_IRQ_INDEX, 0, [rig.proc.memfdCreate('x')]);
      refuses(rig, Errno.EINVAL, () => setIrqs(rig));
    });

    it('are EINVAL for an ioeventfd and for the low-power wakeup eventfd', () => {
      const rig = new Rig();
      const memfd = rig.proc.memfdCreate('not-an-eventfd');
      rig.proc.mem.write(rig.scratch, vfio_device_ioeventfd.encodeNew({ argsz: 32, flags: VFIO_DEVICE_IOEVENTFD_32, offset: vfioPciIndexToOffset(0), data: 1n, fd: memfd }));
      refuses(rig, Errno.EINVAL, () => rig.proc.ioctl(rig.fd, VFIO_DEVICE_IOEVENTFD, rig.scratch));
      const wakeup = new Uint8Array(8 + vfio_device_low_power_entry_with_wakeup.size);
      wakeup.set(vfio_device_feature.encodeNew({ argsz: wakeup.length, flags: VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP }));
      wakeup.set(vfio_device_low_power_entry_with_wakeup.encodeNew({ wakeup_eventfd: memfd }), 8);
      rig.proc.mem.write(rig.scratch, wakeup);
      refuses(rig, Errno.EINVAL, () => rig.proc.ioctl(rig.fd, VFIO_DEVICE_FEATURE, rig.scratch));
    });
  });
});
