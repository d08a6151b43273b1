import { CapChain } from '../vfio/cap-chain.js';
import type { PciFunction } from '../platform/pci-function.js';
import {
  PCI_EXP_DEVCAP2,
  PCI_EXP_DEVCAP2_ATOMIC_COMP128,
  PCI_EXP_DEVCAP2_ATOMIC_COMP32,
  PCI_EXP_DEVCAP2_ATOMIC_COMP64,
  PCI_EXP_DEVCAP2_ATOMIC_ROUTE,
  PCI_EXP_DEVCTL2,
  PCI_EXP_DEVCTL2_ATOMIC_EGRESS_BLOCK,
  PCI_EXP_DEVCTL2_ATOMIC_REQ,
} from '../platform/pci-regs.js';
import {
  VFIO_DEVICE_FLAGS_CAPS,
  VFIO_DEVICE_FLAGS_PCI,
  VFIO_DEVICE_FLAGS_RESET,
  VFIO_DEVICE_INFO_CAP_PCI_ATOMIC_COMP,
  VFIO_PCI_ATOMIC_COMP128,
  VFIO_PCI_ATOMIC_COMP32,
  VFIO_PCI_ATOMIC_COMP64,
  VFIO_PCI_NUM_IRQS,
  VFIO_PCI_NUM_REGIONS,
  offsetofEnd,
  readVfioArgsz,
  vfio_device_info,
  vfio_device_info_cap_pci_atomic_comp,
  writeBack,
  type UserMemory,
} from '../uapi/index.js';
import type { VfioPciCoreDevice } from './vfio-pci-core-device.js';

const DEVICE_INFO_MINSZ = offsetofEnd(vfio_device_info, 'num_irqs');

/**
 * pci_enable_atomic_ops_to_root: an endpoint may issue AtomicOps of the
 * sizes in `mask` when every switch port above routes them, no upstream
 * port blocks them on egress, and the root port completes all of them; it
 * then gets AtomicOp Requester Enable. VFs and other port types cannot.
 */
function pciEnableAtomicOpsToRoot(fn: PciFunction, mask: number): boolean {
  if (fn.isVirtfn || !fn.pcieType) return false;
  if (fn.pcieType !== 'endpoint' && fn.pcieType !== 'legacy-endpoint' && fn.pcieType !== 'rc-endpoint') return false;
  for (let bus = fn.bus; bus.parent; bus = bus.parent) {
    const bridge = bus.self;
    if (!bridge?.pcieCap) continue;
    const cap = bridge.config.read(bridge.pcieCap + PCI_EXP_DEVCAP2, 4);
    if ((bridge.pcieType === 'upstream-port' || bridge.pcieType === 'downstream-port') && !(cap & PCI_EXP_DEVCAP2_ATOMIC_ROUTE)) return false;
    if (bridge.pcieType === 'root-port' && (cap & mask) !== mask) return false;
    if (bridge.pcieType === 'upstream-port' && bridge.config.read(bridge.pcieCap + PCI_EXP_DEVCTL2, 2) & PCI_EXP_DEVCTL2_ATOMIC_EGRESS_BLOCK) return false;
  }
  const at = fn.pcieCap + PCI_EXP_DEVCTL2;
  fn.config.write(at, 2, fn.config.read(at, 2) | PCI_EXP_DEVCTL2_ATOMIC_REQ);
  return true;
}

/**
 * vfio_pci_info_atomic_cap: which AtomicOp completions the path to the
 * root supports for the device (the PF's, for a VF), each size enabled
 * where possible. No capability when none is.
 */
function atomicCap(vdev: VfioPciCoreDevice, caps: CapChain): void {
  const fn = vdev.pdev.physfn ?? vdev.pdev;
  if (!fn.pcieCap) return;
  const devcap2 = fn.config.read(fn.pcieCap + PCI_EXP_DEVCAP2, 4);
  let flags = 0;
  const sizes: Array<[number, number]> = [
    [PCI_EXP_DEVCAP2_ATOMIC_COMP32, VFIO_PCI_ATOMIC_COMP32],
    [PCI_EXP_DEVCAP2_ATOMIC_COMP64, VFIO_PCI_ATOMIC_COMP64],
    [PCI_EXP_DEVCAP2_ATOMIC_COMP128, VFIO_PCI_ATOMIC_COMP128],
  ];
  for (const [bit, flag] of sizes) if (devcap2 & bit && pciEnableAtomicOpsToRoot(fn, bit)) flags |= flag;
  if (!flags) return;
  caps.add(vfio_device_info_cap_pci_atomic_comp.encodeNew({ header: { id: VFIO_DEVICE_INFO_CAP_PCI_ATOMIC_COMP, version: 1 }, flags, reserved: 0 }));
}

/**
 * VFIO_DEVICE_GET_INFO: a PCI device (with RESET when a function reset
 * worked at open), the nine fixed regions plus the device's own, five
 * interrupt indexes, and a capability chain. The struct goes back cut to
 * argsz; cap_offset and pad are zero unless the chain fits after it.
 */
export function vfioPciIoctlGetInfo(vdev: VfioPciCoreDevice, mem: UserMemory, argp: bigint): number {
  const { value: user } = readVfioArgsz(mem, argp, vfio_device_info, DEVICE_INFO_MINSZ);
  const info = { argsz: user.argsz, flags: VFIO_DEVICE_FLAGS_PCI, num_regions: VFIO_PCI_NUM_REGIONS + vdev.regions.length, num_irqs: VFIO_PCI_NUM_IRQS, cap_offset: 0, pad: 0 };
  if (vdev.resetWorks) info.flags |= VFIO_DEVICE_FLAGS_RESET;
  const caps = new CapChain(vfio_device_info.size);
  atomicCap(vdev, caps);
  if (caps.size) {
    info.flags |= VFIO_DEVICE_FLAGS_CAPS;
    if (info.argsz < vfio_device_info.size + caps.size) {
      info.argsz = vfio_device_info.size + caps.size;
    } else {
      mem.copyToUser(argp + BigInt(vfio_device_info.size), caps.bytes());
      info.cap_offset = vfio_device_info.size;
    }
  }
  writeBack(mem, argp, vfio_device_info, info, Math.min(user.argsz, vfio_device_info.size));
  return 0;
}

