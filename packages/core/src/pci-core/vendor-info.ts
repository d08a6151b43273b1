import { SimError } from '../errors/index.js';
import { PCI_CFG_SPACE_EXP_SIZE, PCI_CFG_SPACE_SIZE } from '../platform/pci-regs.js';

/**
 * An extended capability that exists only in vfio's config shadow. A
 * variant driver declares one when the function itself cannot show it: a
 * VF whose PASID, ATS or PRI state is owned by the PF, so the VMM would
 * otherwise find no capability to expose to the guest. vfio-pci links it
 * at the end of the extended capability list the user walks; the function
 * never sees reads or writes of it.
 */
export interface VirtualExtCapability {
  /** Extended capability id (PCI_EXT_CAP_ID_PASID, ...). */
  readonly id: number;
  /** Capability version (header bits 19:16). */
  readonly version: number;
  /** Config offset of the header: dword aligned, in 0x100-0xffc, free of real capabilities. */
  readonly offset: number;
  /** The registers after the 4-byte header, as the user first reads them. */
  readonly body: Uint8Array;
  /** Bits of `body` the user may change (the rest read back as declared); none when omitted. */
  readonly writable?: Uint8Array;
}

/**
 * One-time facts a variant driver states about its device when it creates
 * it. They are fixed for the device's life and surface where the kernel
 * surfaces the corresponding state.
 */
export interface VfioPciVendorInfo {
  /** Capabilities placed in the config shadow at first open. */
  readonly virtualExtCapabilities?: readonly VirtualExtCapability[];
  /**
   * The device copes with I/O page faults (it retries a DMA after a PRI
   * page request is answered). Exposed as
   * VfioPciCoreDevice.ioPageFaultCapable, for the IOMMU side to consult
   * when a fault-reporting HWPT is attached to the device.
   */
  readonly ioPageFaultCapable?: boolean;
}

/** Checks a declaration before the device exists, so a bad one fails the driver's probe, not the user's open. */
export function checkVendorInfo(info: VfioPciVendorInfo): VfioPciVendorInfo {
  const caps = info.virtualExtCapabilities ?? [];
  const taken: Array<[number, number]> = [];
  for (const cap of caps) {
    const end = cap.offset + 4 + cap.body.length;
    if (!Number.isInteger(cap.offset) || cap.offset % 4 !== 0 || cap.offset < PCI_CFG_SPACE_SIZE || end > PCI_CFG_SPACE_EXP_SIZE) {
      throw new SimError('INVALID_ARGUMENT', `virtual capability 0x${cap.id.toString(16)} at 0x${cap.offset.toString(16)} does not fit extended config space`);
    }
    if (!Number.isInteger(cap.id) || cap.id <= 0 || cap.id > 0xffff || !Number.isInteger(cap.version) || cap.version < 0 || cap.version > 0xf) {
      throw new SimError('INVALID_ARGUMENT', `virtual capability id 0x${cap.id.toString(16)} version ${cap.version} is not a valid header`);
    }
    if (cap.writable && cap.writable.length !== cap.body.length) {
      throw new SimError('INVALID_ARGUMENT', `virtual capability 0x${cap.id.toString(16)}: writable mask and body differ in length`);
    }
    if (taken.some(([start, stop]) => cap.offset < stop && start < end)) {
      throw new SimError('INVALID_ARGUMENT', `virtual capability 0x${cap.id.toString(16)} overlaps another at 0x${cap.offset.toString(16)}`);
    }
    taken.push([cap.offset, end]);
  }
  return Object.freeze({
    virtualExtCapabilities: Object.freeze(caps.map((cap) => Object.freeze({ ...cap, body: cap.body.slice(), writable: cap.writable?.slice() }))),
    ioPageFaultCapable: info.ioPageFaultCapable ?? false,
  });
}
