import { SimError } from '../../errors/index.js';
import { CapChain } from '../../vfio/cap-chain.js';
import type { UserMemory } from '../../uapi/index.js';
import {
  VFIO_PCI_BAR5_REGION_INDEX,
  VFIO_PCI_CONFIG_REGION_INDEX,
  VFIO_PCI_NUM_REGIONS,
  VFIO_PCI_ROM_REGION_INDEX,
  VFIO_PCI_VGA_REGION_INDEX,
  VFIO_REGION_INFO_CAP_MSIX_MAPPABLE,
  VFIO_REGION_INFO_CAP_TYPE,
  VFIO_REGION_INFO_FLAG_CAPS,
  VFIO_REGION_INFO_FLAG_MMAP,
  VFIO_REGION_INFO_FLAG_READ,
  VFIO_REGION_INFO_FLAG_WRITE,
  offsetofEnd,
  readVfioArgsz,
  vfio_info_cap_header,
  vfio_region_info,
  vfio_region_info_cap_type,
  writeBack,
} from '../../uapi/index.js';
import { vfioPciMemoryLockAndEnable, vfioPciMemoryUnlockAndRestore } from '../memory.js';
import { vfioPciIndexToOffset } from '../offsets.js';
import type { VfioPciCoreDevice } from '../vfio-pci-core-device.js';
import { pciMapRom } from './bar-rw.js';
import { VFIO_PCI_VGA_REGION_SIZE } from './vga.js';

const REGION_INFO_MINSZ = offsetofEnd(vfio_region_info, 'offset');
const RW = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;

/** What vfio_pci_ioctl_get_region_info fills in for one region. */
interface RegionAnswer {
  flags: number;
  size: bigint;
}

/** The BAR's size as Linux's resource sees it: 0 for an unimplemented BAR and for the upper half of a 64-bit one. */
export function barLength(vdev: VfioPciCoreDevice, index: number): bigint {
  return vdev.pdev.bars[index]?.size ?? 0n;
}

/**
 * vfio_pci_ioctl_get_region_info's body: the region's flags and size, and
 * its capabilities. A BAR that can be mmapped advertises the MSI-X table as
 * mappable too when it holds it. The ROM is probed for a valid image with
 * memory decode forced on; a BAR size is reported for it, not the image's.
 * Device regions lead with their type capability. EINVAL for the VGA
 * region without VGA and for indexes past the last region.
 */
export function vfioPciRegionInfo(vdev: VfioPciCoreDevice, index: number, caps: CapChain): RegionAnswer {
  if (index === VFIO_PCI_CONFIG_REGION_INDEX) return { flags: RW, size: BigInt(vdev.pdev.cfgSize) };
  if (index <= VFIO_PCI_BAR5_REGION_INDEX) {
    const size = barLength(vdev, index);
    if (!size) return { flags: 0, size };
    let flags = RW;
    if (vdev.barMmapSupported[index]) {
      flags |= VFIO_REGION_INFO_FLAG_MMAP;
      if (index === vdev.msixBar) caps.add(vfio_info_cap_header.encodeNew({ id: VFIO_REGION_INFO_CAP_MSIX_MAPPABLE, version: 1 }));
    }
    return { flags, size };
  }
  if (index === VFIO_PCI_ROM_REGION_INDEX) {
    const rom = vdev.pdev.rom;
    if (!rom || rom.address === 0n) return { flags: 0, size: 0n };
    const cmd = vfioPciMemoryLockAndEnable(vdev);
    try {
      const mapped = pciMapRom(vdev);
      if (!mapped) return { flags: 0, size: 0n };
      mapped.unmap();
      return { flags: VFIO_REGION_INFO_FLAG_READ, size: rom.size };
    } finally {
      vfioPciMemoryUnlockAndRestore(vdev, cmd);
    }
  }
  if (index === VFIO_PCI_VGA_REGION_INDEX) {
    if (!vdev.hasVga) throw new SimError('INVALID_ARGUMENT', `${vdev.name} has no VGA region`);
    return { flags: RW, size: VFIO_PCI_VGA_REGION_SIZE };
  }
  const region = vdev.regions[index - VFIO_PCI_NUM_REGIONS];
  if (!region) throw new SimError('INVALID_ARGUMENT', `${vdev.name} has no region ${index}`);
  caps.add(vfio_region_info_cap_type.encodeNew({ header: { id: VFIO_REGION_INFO_CAP_TYPE, version: 1 }, type: region.type, subtype: region.subtype }));
  region.ops.addCapability?.(vdev, region, caps);
  return { flags: region.flags, size: region.size };
}

/**
 * VFIO_DEVICE_GET_REGION_INFO: the capability chain follows the struct
 * when argsz leaves room for it (cap_offset then points at it); otherwise
 * argsz is raised to the size needed and cap_offset is 0. Either way a
 * region with capabilities has VFIO_REGION_INFO_FLAG_CAPS. The struct goes
 * back whole (32 bytes).
 */
export function vfioPciIoctlGetRegionInfo(vdev: VfioPciCoreDevice, mem: UserMemory, argp: bigint): number {
  const { value: info } = readVfioArgsz(mem, argp, vfio_region_info, REGION_INFO_MINSZ);
  const caps = new CapChain(vfio_region_info.size);
  const answer = vfioPciRegionInfo(vdev, info.index, caps);
  info.offset = vfioPciIndexToOffset(info.index);
  info.size = answer.size;
  info.flags = answer.flags;
  // Without capabilities cap_offset goes back as the user wrote it.
  if (caps.size) {
    info.flags |= VFIO_REGION_INFO_FLAG_CAPS;
    if (info.argsz < vfio_region_info.size + caps.size) {
      info.argsz = vfio_region_info.size + caps.size;
      info.cap_offset = 0;
    } else {
      mem.copyToUser(argp + BigInt(vfio_region_info.size), caps.bytes());
      info.cap_offset = vfio_region_info.size;
    }
  }
  writeBack(mem, argp, vfio_region_info, info, REGION_INFO_MINSZ);
  return 0;
}
