import { z } from 'zod';
import type { Process } from '../os/index.js';
import { s32, VFIO_GROUP_FLAGS_CONTAINER_SET, VFIO_GROUP_FLAGS_VIABLE, vfio_group_status } from '../uapi/index.js';
import { FdHandle } from './fd-handle.js';
import { fdSchema, parseInput } from './input.js';
import { checkSyscall } from './syscall-error.js';
import { VfioDeviceHandle } from './vfio-device-handle.js';

/** VFIO_GROUP_GET_STATUS, decoded. */
export interface VfioGroupStatus {
  readonly flags: number;
  /**
   * VFIO_GROUP_FLAGS_VIABLE: every device of the IOMMU group is bound to a
   * vfio driver or to none. With an iommufd set it always reads true; the
   * check then happens per device, at GET_DEVICE_FD.
   */
  readonly viable: boolean;
  /** VFIO_GROUP_FLAGS_CONTAINER_SET: a container or an iommufd is attached. */
  readonly containerSet: boolean;
}

const groupSchema = z.union([z.number().int().nonnegative(), z.string().min(1)]);
const nameSchema = z.string().min(1).refine((name) => !name.includes('\0'), 'must not contain NUL');

/**
 * An open /dev/vfio/<group>: the legacy way to reach devices. The group is
 * attached to a container (or an iommufd, for the compatibility path),
 * then hands out device fds by name.
 */
export class VfioGroupHandle extends FdHandle {
  private constructor(proc: Process, fd: number) {
    super(proc, fd);
  }

  /**
   * Opens a group by IOMMU group id (7 opens /dev/vfio/7), by name
   * ("noiommu-0") or by path ("/dev/vfio/7").
   */
  static open(proc: Process, group: number | string): VfioGroupHandle {
    const which = parseInput(groupSchema, group, 'group');
    const path = typeof which === 'string' && which.startsWith('/') ? which : `/dev/vfio/${which}`;
    return new VfioGroupHandle(proc, checkSyscall(proc.open(path), 'open', { path }));
  }

  /** Takes over a group fd the process already holds (passed over a socket, say). */
  static fromFd(proc: Process, fd: number): VfioGroupHandle {
    return new VfioGroupHandle(proc, parseInput(fdSchema, fd, 'fd'));
  }

  /** VFIO_GROUP_GET_STATUS. */
  status(): VfioGroupStatus {
    const { flags } = this.ioctlStruct('VFIO_GROUP_GET_STATUS', vfio_group_status, { argsz: vfio_group_status.size }).value;
    return {
      flags,
      viable: (flags & VFIO_GROUP_FLAGS_VIABLE) !== 0,
      containerSet: (flags & VFIO_GROUP_FLAGS_CONTAINER_SET) !== 0,
    };
  }

  /**
   * VFIO_GROUP_SET_CONTAINER with a container, an iommufd (the VFIO
   * compatibility path), or any fd of the process (the kernel answers
   * EBADFD for one that is neither).
   */
  setContainer(container: FdHandle | number): void {
    const fd = typeof container === 'number' ? parseInput(fdSchema, container, 'container') : container.fd;
    const arg = new Uint8Array(4);
    s32.write(arg, 0, fd);
    this.ioctlBytes('VFIO_GROUP_SET_CONTAINER', arg);
  }

  /** VFIO_GROUP_UNSET_CONTAINER (EBUSY while devices opened through the container are open). */
  unsetContainer(): void {
    this.ioctlValue('VFIO_GROUP_UNSET_CONTAINER');
  }

  /**
   * VFIO_GROUP_GET_DEVICE_FD: the device of the group with this name (a
   * PCI address for vfio-pci; vfio-pci also takes "<bdf> vf_token=<uuid>").
   */
  getDevice(name: string): VfioDeviceHandle {
    const deviceName = parseInput(nameSchema, name, 'name');
    const bytes = new TextEncoder().encode(`${deviceName}\0`);
    const { rc } = this.ioctlBytes('VFIO_GROUP_GET_DEVICE_FD', bytes, 0);
    return VfioDeviceHandle.fromFd(this.proc, rc);
  }
}
