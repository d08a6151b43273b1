import { uapiFacts } from '@vfiosim/core';

/*
 * strace-style rendering of struct arguments: `{argsz=32, flags=A|B}`.
 * Flag words are spelled with the header's names, addresses in hex.
 */

type Constants = typeof uapiFacts.constants;
type ConstantName = keyof Constants;

/** Which header constants spell the bits of a struct's flag field, by struct and field. */
const FLAG_NAMES: Readonly<Record<string, Readonly<Record<string, readonly ConstantName[]>>>> = {
  vfio_device_info: {
    flags: [
      'VFIO_DEVICE_FLAGS_RESET', 'VFIO_DEVICE_FLAGS_PCI', 'VFIO_DEVICE_FLAGS_PLATFORM', 'VFIO_DEVICE_FLAGS_AMBA',
      'VFIO_DEVICE_FLAGS_CCW', 'VFIO_DEVICE_FLAGS_AP', 'VFIO_DEVICE_FLAGS_FSL_MC', 'VFIO_DEVICE_FLAGS_CAPS', 'VFIO_DEVICE_FLAGS_CDX',
    ],
  },
  vfio_region_info: {
    flags: ['VFIO_REGION_INFO_FLAG_READ', 'VFIO_REGION_INFO_FLAG_WRITE', 'VFIO_REGION_INFO_FLAG_MMAP', 'VFIO_REGION_INFO_FLAG_CAPS'],
  },
  vfio_irq_info: {
    flags: ['VFIO_IRQ_INFO_EVENTFD', 'VFIO_IRQ_INFO_MASKABLE', 'VFIO_IRQ_INFO_AUTOMASKED', 'VFIO_IRQ_INFO_NORESIZE'],
  },
  vfio_irq_set: {
    flags: [
      'VFIO_IRQ_SET_DATA_NONE', 'VFIO_IRQ_SET_DATA_BOOL', 'VFIO_IRQ_SET_DATA_EVENTFD',
      'VFIO_IRQ_SET_ACTION_MASK', 'VFIO_IRQ_SET_ACTION_UNMASK', 'VFIO_IRQ_SET_ACTION_TRIGGER',
    ],
  },
  vfio_pci_hot_reset_info: {
    flags: ['VFIO_PCI_HOT_RESET_FLAG_DEV_ID', 'VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED'],
  },
  iommu_ioas_map: {
    flags: ['IOMMU_IOAS_MAP_FIXED_IOVA', 'IOMMU_IOAS_MAP_WRITEABLE', 'IOMMU_IOAS_MAP_READABLE'],
  },
  iommu_hwpt_alloc: {
    flags: ['IOMMU_HWPT_ALLOC_NEST_PARENT', 'IOMMU_HWPT_ALLOC_DIRTY_TRACKING', 'IOMMU_HWPT_FAULT_ID_VALID', 'IOMMU_HWPT_ALLOC_PASID'],
  },
};

/** Fields whose value is an address or a length in bytes: shown in hex. */
const HEX_FIELDS = /(^|_)(va|vaddr|iova|addr|user_va|offset|size|length|uptr|start|last|dst_iova|src_iova)$/;

/** `A|B|0x40` for the bits of `value` named in `names`, the unnamed rest in hex. */
export function formatFlags(value: number, names: readonly ConstantName[]): string {
  if (value === 0) return '0';
  const parts: string[] = [];
  let rest = value >>> 0;
  for (const name of names) {
    const bit = uapiFacts.constants[name] as number;
    if (bit !== 0 && (rest & bit) === bit) {
      parts.push(name);
      rest = (rest & ~bit) >>> 0;
    }
  }
  if (rest !== 0) parts.push(`0x${rest.toString(16)}`);
  return parts.join('|');
}

export function hex(value: number | bigint): string {
  return value === 0 || value === 0n ? '0' : `0x${value.toString(16)}`;
}

function formatValue(struct: string, field: string, value: unknown): string {
  if (typeof value === 'bigint') return hex(value);
  if (typeof value === 'number') {
    const names = FLAG_NAMES[struct]?.[field];
    if (names) return formatFlags(value, names);
    // A 32-bit `size` is iommufd's struct-size header, a count; byte lengths and addresses are 64-bit fields (bigint).
    if (field === 'flags' || field === 'data_type' || (field !== 'size' && HEX_FIELDS.test(field))) return hex(value >>> 0);
    return String(value);
  }
  if (Array.isArray(value)) return `[${value.map((v) => formatValue(struct, field, v)).join(', ')}]`;
  if (value !== null && typeof value === 'object') return formatFields(struct, value as Record<string, unknown>, Object.keys(value));
  return String(value);
}

/** `{a=1, b=0x2000}` of the named fields of a decoded struct, in the order given. */
export function formatFields(struct: string, value: Record<string, unknown>, fields: readonly string[]): string {
  return `{${fields.map((field) => `${field}=${formatValue(struct, field, value[field])}`).join(', ')}}`;
}

/** Deep equality of decoded struct values (numbers, bigints, nested objects and arrays). */
export function sameValue(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) return false;
  return keys.every((key) => sameValue((a as Record<string, unknown>)[key], (b as Record<string, unknown>)[key]));
}
