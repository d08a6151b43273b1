import type { BusDevice } from './vfio-device.js';

/**
 * struct auxiliary_device: a slice of a parent device's function (an SR-IOV
 * sub-function, a vDPA or RDMA personality) that the parent's driver
 * publishes on the auxiliary bus. Its name is "<modname>.<devname>.<id>",
 * and drivers match on the part before the last dot.
 */
export class AuxiliaryDevice implements BusDevice {
  readonly name: string;

  constructor(
    readonly parent: BusDevice,
    /** KBUILD_MODNAME of the parent's driver. */
    readonly modname: string,
    /** auxdev->name: the kind of device ("sf", "eth", "vnet"). */
    readonly devname: string,
    readonly id: number,
  ) {
    this.name = `${modname}.${devname}.${id}`;
  }

  /** The prefix drivers match against: "<modname>.<devname>". */
  get matchName(): string {
    return this.name.slice(0, this.name.lastIndexOf('.'));
  }
}

/** struct auxiliary_device_id: "<modname>.<devname>" of the devices a driver takes. */
export interface AuxiliaryDeviceId {
  readonly name: string;
  readonly driverData?: unknown;
}

/** auxiliary_match_id: the first entry whose name is the device name up to its last dot. */
export function auxiliaryMatchId(idTable: readonly AuxiliaryDeviceId[], adev: AuxiliaryDevice): AuxiliaryDeviceId | null {
  const prefix = adev.matchName;
  return idTable.find((id) => id.name === prefix) ?? null;
}
