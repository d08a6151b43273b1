import { z } from 'zod';
import { Errno } from '../errors/index.js';
import { PROT_READ, PROT_WRITE, type Process } from '../os/index.js';
import {
  VFIO_DEVICE_ATTACH_PASID,
  VFIO_DEVICE_BIND_FLAG_TOKEN,
  VFIO_DEVICE_DETACH_PASID,
  VFIO_DEVICE_FEATURE_GET,
  VFIO_DEVICE_FEATURE_PROBE,
  VFIO_DEVICE_FEATURE_SET,
  VFIO_DEVICE_FLAGS_AMBA,
  VFIO_DEVICE_FLAGS_AP,
  VFIO_DEVICE_FLAGS_CAPS,
  VFIO_DEVICE_FLAGS_CCW,
  VFIO_DEVICE_FLAGS_CDX,
  VFIO_DEVICE_FLAGS_FSL_MC,
  VFIO_DEVICE_FLAGS_PCI,
  VFIO_DEVICE_FLAGS_PLATFORM,
  VFIO_DEVICE_FLAGS_RESET,
  VFIO_DEVICE_INFO_CAP_PCI_ATOMIC_COMP,
  VFIO_IRQ_INFO_AUTOMASKED,
  VFIO_IRQ_INFO_EVENTFD,
  VFIO_IRQ_INFO_MASKABLE,
  VFIO_IRQ_INFO_NORESIZE,
  VFIO_IRQ_SET_ACTION_MASK,
  VFIO_IRQ_SET_ACTION_TRIGGER,
  VFIO_IRQ_SET_ACTION_UNMASK,
  VFIO_IRQ_SET_DATA_BOOL,
  VFIO_IRQ_SET_DATA_EVENTFD,
  VFIO_IRQ_SET_DATA_NONE,
  VFIO_PCI_CONFIG_REGION_INDEX,
  VFIO_REGION_INFO_CAP_MSIX_MAPPABLE,
  VFIO_REGION_INFO_CAP_SPARSE_MMAP,
  VFIO_REGION_INFO_CAP_TYPE,
  VFIO_REGION_INFO_FLAG_CAPS,
  VFIO_REGION_INFO_FLAG_MMAP,
  VFIO_REGION_INFO_FLAG_READ,
  VFIO_REGION_INFO_FLAG_WRITE,
  vfio_device_attach_iommufd_pt,
  vfio_device_bind_iommufd,
  vfio_device_detach_iommufd_pt,
  vfio_device_feature,
  vfio_device_info,
  vfio_device_info_cap_pci_atomic_comp,
  vfio_irq_info,
  vfio_irq_set,
  vfio_region_info,
  vfio_region_info_cap_sparse_mmap,
  vfio_region_info_cap_type,
  vfio_region_sparse_mmap_area,
} from '../uapi/index.js';
import { ArgBuffer } from './arg-buffer.js';
import { FdHandle } from './fd-handle.js';
import { parseInfoCaps, type VfioInfoCap } from './info-caps.js';
import { eventfdSlotSchema, fdSchema, featureSchema, parseInput, u32Schema, u64Schema } from './input.js';
import { checkSyscall, SyscallError } from './syscall-error.js';

/** The bus a vfio device is on, from the VFIO_DEVICE_FLAGS_* type bit. */
export type VfioDeviceType = 'pci' | 'platform' | 'amba' | 'ccw' | 'ap' | 'fsl-mc' | 'cdx' | 'unknown';

/** VFIO_DEVICE_GET_INFO, decoded, with its capability chain. */
export interface VfioDeviceInfo {
  readonly flags: number;
  readonly type: VfioDeviceType;
  /** VFIO_DEVICE_FLAGS_RESET: VFIO_DEVICE_RESET is supported. */
  readonly resettable: boolean;
  readonly numRegions: number;
  readonly numIrqs: number;
  readonly caps: readonly VfioInfoCap[];
  /** VFIO_PCI_ATOMIC_COMP* flags of VFIO_DEVICE_INFO_CAP_PCI_ATOMIC_COMP; null without the capability. */
  readonly pciAtomicComp: number | null;
}

/** VFIO_DEVICE_GET_REGION_INFO, decoded, with its capability chain. */
export interface VfioRegionInfo {
  readonly index: number;
  readonly flags: number;
  readonly size: bigint;
  /** Where the region starts in the device fd, for pread/pwrite/mmap. */
  readonly offset: bigint;
  readonly readable: boolean;
  readonly writable: boolean;
  readonly mmappable: boolean;
  readonly caps: readonly VfioInfoCap[];
  /** VFIO_REGION_INFO_CAP_TYPE; null for the fixed regions. */
  readonly type: { readonly type: number; readonly subtype: number } | null;
  /** VFIO_REGION_INFO_CAP_SPARSE_MMAP: the only parts that may be mapped; null when the whole region may. */
  readonly sparseMmap: readonly { readonly offset: bigint; readonly size: bigint }[] | null;
  /** VFIO_REGION_INFO_CAP_MSIX_MAPPABLE: the MSI-X table of this BAR may be mapped too. */
  readonly msixMappable: boolean;
}

/** VFIO_DEVICE_GET_IRQ_INFO, decoded. */
export interface VfioIrqInfo {
  readonly index: number;
  readonly flags: number;
  readonly count: number;
  readonly eventfd: boolean;
  readonly maskable: boolean;
  readonly automasked: boolean;
  readonly noresize: boolean;
}

export type IrqAction = 'mask' | 'unmask' | 'trigger';

/**
 * VFIO_DEVICE_SET_IRQS. `data` picks the DATA_* type: `none` (count
 * vectors, count 0 with TRIGGER disables the index), `bool` (one byte per
 * vector) or `eventfd` (one fd per vector; -1 detaches).
 */
export interface SetIrqsRequest {
  readonly index: number;
  readonly action?: IrqAction;
  readonly start?: number;
  readonly data:
    | { readonly type: 'none'; readonly count: number }
    | { readonly type: 'bool'; readonly values: readonly boolean[] }
    | { readonly type: 'eventfd'; readonly fds: readonly number[] };
}

/** Which directions to ask VFIO_DEVICE_FEATURE_PROBE about; neither asks whether the feature exists at all. */
export interface FeatureProbe {
  readonly get?: boolean;
  readonly set?: boolean;
}

const setIrqsSchema = z.object({
  index: u32Schema,
  action: z.enum(['mask', 'unmask', 'trigger']).default('trigger'),
  start: u32Schema.default(0),
  data: z.discriminatedUnion('type', [
    z.object({ type: z.literal('none'), count: u32Schema }),
    z.object({ type: z.literal('bool'), values: z.array(z.boolean()) }),
    z.object({ type: z.literal('eventfd'), fds: z.array(eventfdSlotSchema) }),
  ]),
});
const bindSchema = z.object({ token: z.instanceof(Uint8Array).refine((token) => token.length === 16, 'must be 16 bytes').optional() });
const pasidSchema = z.object({ pasid: u32Schema.optional() });
const probeSchema = z.object({ get: z.boolean().optional(), set: z.boolean().optional() });
const configSizeSchema = z.union([z.literal(1), z.literal(2), z.literal(4)]);
const lengthSchema = z.number().int().nonnegative();

const ACTIONS: Record<IrqAction, number> = {
  mask: VFIO_IRQ_SET_ACTION_MASK,
  unmask: VFIO_IRQ_SET_ACTION_UNMASK,
  trigger: VFIO_IRQ_SET_ACTION_TRIGGER,
};

const DEVICE_TYPES: ReadonlyArray<readonly [number, VfioDeviceType]> = [
  [VFIO_DEVICE_FLAGS_PCI, 'pci'],
  [VFIO_DEVICE_FLAGS_PLATFORM, 'platform'],
  [VFIO_DEVICE_FLAGS_AMBA, 'amba'],
  [VFIO_DEVICE_FLAGS_CCW, 'ccw'],
  [VFIO_DEVICE_FLAGS_AP, 'ap'],
  [VFIO_DEVICE_FLAGS_FSL_MC, 'fsl-mc'],
  [VFIO_DEVICE_FLAGS_CDX, 'cdx'],
];

/** Where the VF token goes in the argument area, clear of the struct at its start. */
const TOKEN_OFFSET = 0x100;
const VFIO_IRQ_SET_HEADER = vfio_irq_set.size;

/**
 * An open vfio device: a /dev/vfio/devices/vfioN cdev, or a device fd a
 * group handed out. Every method is one or more system calls on the fd,
 * with the uAPI structs encoded in the process's memory; a refusal comes
 * back as a SyscallError carrying the kernel's errno.
 *
 * A cdev has no access until bindIommufd succeeds (the kernel answers
 * EINVAL to everything else before that); a group's device fd has access
 * from the start.
 */
export class VfioDeviceHandle extends FdHandle {
  /** Region offsets from GET_REGION_INFO; fixed while the fd is open. */
  readonly #regionOffsets = new Map<number, bigint>();

  private constructor(proc: Process, fd: number) {
    super(proc, fd);
  }

  /** Opens a device cdev by path, or by its number N in /dev/vfio/devices/vfioN. */
  static openCdev(proc: Process, cdev: string | number): VfioDeviceHandle {
    const which = parseInput(z.union([z.string().min(1), u32Schema]), cdev, 'cdev');
    const path = typeof which === 'number' ? `/dev/vfio/devices/vfio${which}` : which;
    return new VfioDeviceHandle(proc, checkSyscall(proc.open(path), 'open', { path }));
  }

  /** Takes over a device fd the process already holds (from VFIO_GROUP_GET_DEVICE_FD, or passed over a socket). */
  static fromFd(proc: Process, fd: number): VfioDeviceHandle {
    return new VfioDeviceHandle(proc, parseInput(fdSchema, fd, 'fd'));
  }

  // ------------------------------------------------------------ iommufd (cdev only)

  /**
   * VFIO_DEVICE_BIND_IOMMUFD: binds the cdev to an iommufd context and
   * opens the device; returns the device id iommufd gave it. `token` is
   * the 16-byte VF token (VFIO_DEVICE_BIND_FLAG_TOKEN).
   */
  bindIommufd(iommufd: FdHandle | number, options: { token?: Uint8Array } = {}): number {
    const fd = typeof iommufd === 'number' ? parseInput(fdSchema, iommufd, 'iommufd') : iommufd.fd;
    const { token } = parseInput(bindSchema, options, 'options');
    let tokenPtr = 0n;
    if (token) {
      this.assertOpen('ioctl', 'VFIO_DEVICE_BIND_IOMMUFD');
      tokenPtr = ArgBuffer.of(this.proc, TOKEN_OFFSET + token.length).put(token, TOKEN_OFFSET);
    }
    const answer = this.ioctlStruct('VFIO_DEVICE_BIND_IOMMUFD', vfio_device_bind_iommufd, {
      argsz: vfio_device_bind_iommufd.size,
      flags: token ? VFIO_DEVICE_BIND_FLAG_TOKEN : 0,
      iommufd: fd,
      token_uuid_ptr: tokenPtr,
    });
    return answer.value.out_devid;
  }

  /**
   * VFIO_DEVICE_ATTACH_IOMMUFD_PT: attaches the device (or one PASID of
   * it) to an IOAS or HWPT; returns the id the kernel attached, which for
   * an IOAS is the HWPT it found or made.
   */
  attachPt(ptId: number, options: { pasid?: number } = {}): number {
    const id = parseInput(u32Schema, ptId, 'ptId');
    const { pasid } = parseInput(pasidSchema, options, 'options');
    const answer = this.ioctlStruct('VFIO_DEVICE_ATTACH_IOMMUFD_PT', vfio_device_attach_iommufd_pt, {
      argsz: vfio_device_attach_iommufd_pt.size,
      flags: pasid === undefined ? 0 : VFIO_DEVICE_ATTACH_PASID,
      pt_id: id,
      pasid: pasid ?? 0,
    });
    return answer.value.pt_id;
  }

  /** VFIO_DEVICE_DETACH_IOMMUFD_PT: of the device, or of one PASID. */
  detachPt(options: { pasid?: number } = {}): void {
    const { pasid } = parseInput(pasidSchema, options, 'options');
    this.ioctlStruct('VFIO_DEVICE_DETACH_IOMMUFD_PT', vfio_device_detach_iommufd_pt, {
      argsz: vfio_device_detach_iommufd_pt.size,
      flags: pasid === undefined ? 0 : VFIO_DEVICE_DETACH_PASID,
      pasid: pasid ?? 0,
    });
  }

  // ------------------------------------------------------------ information

  /**
   * VFIO_DEVICE_GET_INFO. Asked first with the bare struct; when the kernel
   * reports a capability chain that did not fit (argsz raised), asked again
   * with room for it, as QEMU's vfio_get_device_info does.
   */
  getInfo(): VfioDeviceInfo {
    let answer = this.ioctlStruct('VFIO_DEVICE_GET_INFO', vfio_device_info, { argsz: vfio_device_info.size });
    if (answer.value.flags & VFIO_DEVICE_FLAGS_CAPS && answer.value.argsz > vfio_device_info.size) {
      const argsz = answer.value.argsz;
      answer = this.ioctlStruct('VFIO_DEVICE_GET_INFO', vfio_device_info, { argsz }, argsz);
    }
    const info = answer.value;
    const caps = info.flags & VFIO_DEVICE_FLAGS_CAPS ? parseInfoCaps(answer.bytes, info.cap_offset) : [];
    const atomic = caps.find((cap) => cap.id === VFIO_DEVICE_INFO_CAP_PCI_ATOMIC_COMP);
    return {
      flags: info.flags,
      type: DEVICE_TYPES.find(([bit]) => info.flags & bit)?.[1] ?? 'unknown',
      resettable: (info.flags & VFIO_DEVICE_FLAGS_RESET) !== 0,
      numRegions: info.num_regions,
      numIrqs: info.num_irqs,
      caps,
      pciAtomicComp: atomic ? vfio_device_info_cap_pci_atomic_comp.decode(atomic.bytes).flags : null,
    };
  }

  /** VFIO_DEVICE_GET_REGION_INFO, again with room for the capability chain when the kernel asks for it. */
  regionInfo(index: number): VfioRegionInfo {
    const regionIndex = parseInput(u32Schema, index, 'index');
    const ask = { argsz: vfio_region_info.size, index: regionIndex };
    let answer = this.ioctlStruct('VFIO_DEVICE_GET_REGION_INFO', vfio_region_info, ask);
    if (answer.value.flags & VFIO_REGION_INFO_FLAG_CAPS && answer.value.argsz > vfio_region_info.size) {
      const argsz = answer.value.argsz;
      answer = this.ioctlStruct('VFIO_DEVICE_GET_REGION_INFO', vfio_region_info, { ...ask, argsz }, argsz);
    }
    const info = answer.value;
    const caps = info.flags & VFIO_REGION_INFO_FLAG_CAPS && info.cap_offset ? parseInfoCaps(answer.bytes, info.cap_offset) : [];
    const type = caps.find((cap) => cap.id === VFIO_REGION_INFO_CAP_TYPE);
    const sparse = caps.find((cap) => cap.id === VFIO_REGION_INFO_CAP_SPARSE_MMAP);
    this.#regionOffsets.set(regionIndex, info.offset);
    return {
      index: regionIndex,
      flags: info.flags,
      size: info.size,
      offset: info.offset,
      readable: (info.flags & VFIO_REGION_INFO_FLAG_READ) !== 0,
      writable: (info.flags & VFIO_REGION_INFO_FLAG_WRITE) !== 0,
      mmappable: (info.flags & VFIO_REGION_INFO_FLAG_MMAP) !== 0,
      caps,
      type: type ? regionType(type.bytes) : null,
      sparseMmap: sparse ? sparseAreas(sparse.bytes) : null,
      msixMappable: caps.some((cap) => cap.id === VFIO_REGION_INFO_CAP_MSIX_MAPPABLE),
    };
  }

  /** VFIO_DEVICE_GET_IRQ_INFO. */
  irqInfo(index: number): VfioIrqInfo {
    const irqIndex = parseInput(u32Schema, index, 'index');
    const { flags, count } = this.ioctlStruct('VFIO_DEVICE_GET_IRQ_INFO', vfio_irq_info, { argsz: vfio_irq_info.size, index: irqIndex }).value;
    return {
      index: irqIndex,
      flags,
      count,
      eventfd: (flags & VFIO_IRQ_INFO_EVENTFD) !== 0,
      maskable: (flags & VFIO_IRQ_INFO_MASKABLE) !== 0,
      automasked: (flags & VFIO_IRQ_INFO_AUTOMASKED) !== 0,
      noresize: (flags & VFIO_IRQ_INFO_NORESIZE) !== 0,
    };
  }

  // ------------------------------------------------------------ interrupts

  /** VFIO_DEVICE_SET_IRQS: the header and its data array, argsz covering both. */
  setIrqs(request: SetIrqsRequest): void {
    const { index, action, start, data } = parseInput(setIrqsSchema, request, 'request');
    let flags = ACTIONS[action];
    let payload: Uint8Array;
    let count: number;
    if (data.type === 'none') {
      flags |= VFIO_IRQ_SET_DATA_NONE;
      count = data.count;
      payload = new Uint8Array(0);
    } else if (data.type === 'bool') {
      flags |= VFIO_IRQ_SET_DATA_BOOL;
      count = data.values.length;
      payload = Uint8Array.from(data.values, (value) => (value ? 1 : 0));
    } else {
      flags |= VFIO_IRQ_SET_DATA_EVENTFD;
      count = data.fds.length;
      payload = new Uint8Array(count * 4);
      const view = new DataView(payload.buffer);
      data.fds.forEach((fd, i) => view.setInt32(i * 4, fd, true));
    }
    const arg = new Uint8Array(VFIO_IRQ_SET_HEADER + payload.length);
    arg.set(vfio_irq_set.encodeNew({ argsz: arg.length, flags, index, start, count }));
    arg.set(payload, VFIO_IRQ_SET_HEADER);
    this.ioctlBytes('VFIO_DEVICE_SET_IRQS', arg);
  }

  /** Signals `fds` for vectors start.. of the index (ACTION_TRIGGER with eventfds); enables the index if needed. */
  enableIrqs(index: number, fds: readonly number[], start = 0): void {
    this.setIrqs({ index, start, data: { type: 'eventfd', fds } });
  }

  /** Disables every vector of the index (ACTION_TRIGGER, DATA_NONE, count 0). */
  disableIrqs(index: number): void {
    this.setIrqs({ index, data: { type: 'none', count: 0 } });
  }

  // ------------------------------------------------------------ reset and features

  /** VFIO_DEVICE_RESET (EINVAL when the device has no working reset; see getInfo().resettable). */
  reset(): void {
    this.ioctlValue('VFIO_DEVICE_RESET');
  }

  /**
   * VFIO_DEVICE_FEATURE with PROBE: whether the feature is there (with
   * GET and/or SET when asked). The kernel's "no" is ENOTTY for a feature
   * the device lacks and EINVAL for a direction it does not support; both
   * read as false. Any other errno is thrown.
   */
  probeFeature(feature: number, probe: FeatureProbe = {}): boolean {
    const id = parseInput(featureSchema, feature, 'feature');
    const { get, set } = parseInput(probeSchema, probe, 'probe');
    const flags = VFIO_DEVICE_FEATURE_PROBE | (get ? VFIO_DEVICE_FEATURE_GET : 0) | (set ? VFIO_DEVICE_FEATURE_SET : 0) | id;
    try {
      this.#feature(flags, new Uint8Array(0));
      return true;
    } catch (error) {
      if (error instanceof SyscallError && (error.errno === Errno.ENOTTY || error.errno === Errno.EINVAL)) return false;
      throw error;
    }
  }

  /** VFIO_DEVICE_FEATURE with GET: `length` bytes of the feature's payload as the kernel wrote them. */
  getFeature(feature: number, length: number): Uint8Array {
    const id = parseInput(featureSchema, feature, 'feature');
    const size = parseInput(lengthSchema, length, 'length');
    return this.#feature(VFIO_DEVICE_FEATURE_GET | id, new Uint8Array(size)).payload;
  }

  /** VFIO_DEVICE_FEATURE with SET; returns the ioctl's result and the payload as the kernel left it (some SETs write back, e.g. a migration data_fd). */
  setFeature(feature: number, payload: Uint8Array): { rc: number; payload: Uint8Array } {
    const id = parseInput(featureSchema, feature, 'feature');
    const data = parseInput(z.instanceof(Uint8Array), payload, 'payload');
    return this.#feature(VFIO_DEVICE_FEATURE_SET | id, data);
  }

  #feature(flags: number, payload: Uint8Array): { rc: number; payload: Uint8Array } {
    const arg = new Uint8Array(vfio_device_feature.size + payload.length);
    arg.set(vfio_device_feature.encodeNew({ argsz: arg.length, flags }));
    arg.set(payload, vfio_device_feature.size);
    const { rc, bytes } = this.ioctlBytes('VFIO_DEVICE_FEATURE', arg);
    return { rc, payload: bytes.slice(vfio_device_feature.size) };
  }

  // ------------------------------------------------------------ region access

  /** pread of `length` bytes at `offset` into the region; may return fewer (the access was clipped at the region's end). */
  readRegion(index: number, offset: bigint | number, length: number): Uint8Array {
    const at = this.#regionOffset(index) + parseInput(u64Schema, offset, 'offset');
    const buf = new Uint8Array(parseInput(lengthSchema, length, 'length'));
    this.assertOpen('pread');
    const count = checkSyscall(this.proc.pread(this.fd, buf, at), 'pread', { fd: this.fd });
    return buf.subarray(0, count);
  }

  /** pwrite of `bytes` at `offset` into the region; the count the kernel took. */
  writeRegion(index: number, offset: bigint | number, bytes: Uint8Array): number {
    const at = this.#regionOffset(index) + parseInput(u64Schema, offset, 'offset');
    const data = parseInput(z.instanceof(Uint8Array), bytes, 'bytes');
    this.assertOpen('pwrite');
    return checkSyscall(this.proc.pwrite(this.fd, data, at), 'pwrite', { fd: this.fd });
  }

  /** A little-endian config register of a vfio-pci device, through its config region. */
  readConfig(offset: number, size: 1 | 2 | 4): number {
    const width = parseInput(configSizeSchema, size, 'size');
    const bytes = this.readRegion(VFIO_PCI_CONFIG_REGION_INDEX, offset, width);
    // vfio-pci refuses a config access past the end (EFAULT) rather than shortening it.
    if (bytes.length !== width) throw new Error(`config read of ${width} bytes at 0x${offset.toString(16)} returned ${bytes.length}`);
    let value = 0;
    for (let i = width - 1; i >= 0; i--) value = value * 256 + bytes[i]!;
    return value;
  }

  /** Writes a little-endian config register of a vfio-pci device, through its config region. */
  writeConfig(offset: number, size: 1 | 2 | 4, value: number): void {
    const width = parseInput(configSizeSchema, size, 'size');
    const bits = parseInput(u32Schema, value, 'value');
    const bytes = new Uint8Array(width);
    for (let i = 0; i < width; i++) bytes[i] = (bits >>> (8 * i)) & 0xff;
    const count = this.writeRegion(VFIO_PCI_CONFIG_REGION_INDEX, offset, bytes);
    if (count !== width) throw new Error(`config write of ${width} bytes at 0x${offset.toString(16)} took ${count}`);
  }

  /** mmap(2) of part of a region (MAP_SHARED, read and write unless `prot` says otherwise); the address. */
  mmapRegion(index: number, offset: bigint | number, length: bigint | number, prot = PROT_READ | PROT_WRITE): bigint {
    const at = this.#regionOffset(index) + parseInput(u64Schema, offset, 'offset');
    const size = parseInput(u64Schema, length, 'length');
    this.assertOpen('mmap');
    const va = this.proc.mmap(size, { fd: this.fd, offset: at, prot: parseInput(u32Schema, prot, 'prot') });
    if (va < 0n) throw new SyscallError('mmap', Number(-va), { fd: this.fd });
    return va;
  }

  /** The region's offset in the fd, from GET_REGION_INFO on first use: a VMM never computes it itself. */
  #regionOffset(index: number): bigint {
    const regionIndex = parseInput(u32Schema, index, 'index');
    return this.#regionOffsets.get(regionIndex) ?? this.regionInfo(regionIndex).offset;
  }
}

function regionType(bytes: Uint8Array): { type: number; subtype: number } {
  const { type, subtype } = vfio_region_info_cap_type.decode(bytes);
  return { type, subtype };
}

/** The areas of a sparse mmap capability; nr_areas of them follow its header. */
function sparseAreas(bytes: Uint8Array): { offset: bigint; size: bigint }[] {
  const { nr_areas } = vfio_region_info_cap_sparse_mmap.decode(bytes);
  const end = vfio_region_info_cap_sparse_mmap.size + nr_areas * vfio_region_sparse_mmap_area.size;
  if (end > bytes.length) throw new RangeError(`sparse mmap capability claims ${nr_areas} areas but has room for fewer`);
  return Array.from({ length: nr_areas }, (_, i) =>
    vfio_region_sparse_mmap_area.decode(bytes, vfio_region_info_cap_sparse_mmap.size + i * vfio_region_sparse_mmap_area.size),
  );
}
