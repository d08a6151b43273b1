import type { BusDevice } from './vfio-device.js';

/** PCI_ANY_ID: a wildcard id field. */
export const PCI_ANY_ID = 0xffffffff;

/**
 * One entry of a PCI driver's id table (struct pci_device_id). Omitted ids
 * are wildcards; `classMask` 0 ignores the class.
 */
export interface PciDeviceId {
  readonly vendor?: number;
  readonly device?: number;
  readonly subvendor?: number;
  readonly subdevice?: number;
  /** 24-bit class code (base class, subclass, prog-if), compared under `classMask`. */
  readonly class?: number;
  readonly classMask?: number;
  /**
   * Matches only when the device's driver_override names this driver
   * (PCI_DRIVER_OVERRIDE_DEVICE_VFIO): vfio variant drivers list their
   * devices this way so that they never take a device by default.
   */
  readonly overrideOnly?: boolean;
  readonly driverData?: unknown;
}

/** The identity registers of a PCI function a driver matches on. */
export interface PciBusDevice extends BusDevice {
  readonly vendorId: number;
  readonly deviceId: number;
  readonly subsystemVendorId: number;
  readonly subsystemId: number;
  /** 24-bit class code. */
  readonly classCode: number;
}

/** The id a driver's probe receives when driver_override alone made it match (pci_device_id_any). */
export const PCI_DEVICE_ID_ANY: PciDeviceId = Object.freeze({
  vendor: PCI_ANY_ID,
  device: PCI_ANY_ID,
  subvendor: PCI_ANY_ID,
  subdevice: PCI_ANY_ID,
});

function fieldMatches(want: number | undefined, have: number): boolean {
  return want === undefined || want === PCI_ANY_ID || want === have;
}

/** pci_match_one_device: every given id equal or wildcard, and the class equal under the mask. */
export function pciIdMatches(id: PciDeviceId, dev: PciBusDevice): boolean {
  return (
    fieldMatches(id.vendor, dev.vendorId) &&
    fieldMatches(id.device, dev.deviceId) &&
    fieldMatches(id.subvendor, dev.subsystemVendorId) &&
    fieldMatches(id.subdevice, dev.subsystemId) &&
    (((id.class ?? 0) ^ dev.classCode) & (id.classMask ?? 0)) === 0
  );
}

/**
 * pci_match_device: with driver_override set, only the named driver can
 * match, through its table if an entry fits (override-only entries
 * included) or through the catch-all id otherwise; without it, the first
 * entry that fits and is not override-only.
 */
export function pciMatchDevice(
  driverName: string,
  idTable: readonly PciDeviceId[],
  dev: PciBusDevice,
  driverOverride: string | null,
): PciDeviceId | null {
  const overridden = driverOverride !== null;
  if (overridden && driverOverride !== driverName) return null;
  for (const id of idTable) {
    if (!pciIdMatches(id, dev)) continue;
    if (!id.overrideOnly || overridden) return id;
  }
  return overridden ? PCI_DEVICE_ID_ANY : null;
}
