import type { VfioDevice } from './vfio-device.js';

/**
 * struct vfio_device_set: devices whose open/close and reset must be
 * serialised together because a reset of one can reach the others. vfio-pci
 * puts every device that shares a slot or bus reset in one set; a device
 * whose driver names no set gets a singleton set of its own.
 */
export class DevSet {
  readonly devices: VfioDevice[] = [];

  constructor(readonly setId: unknown) {}

  /** Opens across every device of the set (vfio_device_set_open_count). */
  get openCount(): number {
    let count = 0;
    for (const device of this.devices) count += device.openCount;
    return count;
  }
}
