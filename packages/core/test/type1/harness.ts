import { expect } from 'vitest';
import {
  DmaEngine,
  IommuCore,
  System,
  VFIO_DMA_MAP_FLAG_READ,
  VFIO_DMA_MAP_FLAG_WRITE,
  VFIO_IOMMU_DIRTY_PAGES,
  VFIO_IOMMU_GET_INFO,
  VFIO_IOMMU_MAP_DMA,
  VFIO_IOMMU_UNMAP_DMA,
  VFIO_TYPE1v2_IOMMU,
  syscall,
  type IommuClientDevice,
  type Process,
  type Type1Options,
  type VfioIommuType1,
  type1IommuDriver,
  vfio_bitmap,
  vfio_iommu_type1_dirty_bitmap,
  vfio_iommu_type1_dirty_bitmap_get,
  vfio_iommu_type1_dma_map,
  vfio_iommu_type1_dma_unmap,
} from '@vfiosim/core';
import { FakeIommu, clientDevice, type FakeIommuOptions } from './fake-iommu.js';

export const PAGE = 4096n;
export const RW = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE;
export const EPERM = -1;
export const ENOENT = -2;
export const EFAULT = -14;
export const EBUSY = -16;
export const EEXIST = -17;
export const ENODEV = -19;
export const EINVAL = -22;
export const ENOTTY = -25;
export const ENOSPC = -28;
export const EACCES = -13;
export const EIO = -5;
export const EOVERFLOW = -75;

/** Default device layout: group 1 holds 0000:01:00.0 behind `iommu0`. */
const DEFAULT_IOMMUS: FakeIommuOptions[] = [{ name: 'iommu0', devices: ['0000:01:00.0', '0000:01:00.1'] }];

export interface HostSetup {
  readonly iommus?: readonly FakeIommuOptions[];
  readonly type?: number;
  readonly options?: Type1Options;
}

/**
 * One host with a type1 container back end, as VFIO_SET_IOMMU leaves it,
 * and a VMM process. Groups are attached the way the vfio core does it:
 * claim DMA ownership, then attach_group.
 */
export class Host {
  readonly system = new System();
  readonly core = new IommuCore();
  readonly iommus: FakeIommu[];
  readonly backend: VfioIommuType1;
  readonly dma: DmaEngine;
  proc: Process;
  /** A page of the VMM's memory that ioctl arguments are built in. */
  argp: bigint;
  readonly #devices = new Map<string, IommuClientDevice>();
  #nextRid = 0x100;

  constructor(setup: HostSetup = {}) {
    this.iommus = (setup.iommus ?? DEFAULT_IOMMUS).map((o) => new FakeIommu(o));
    for (const iommu of this.iommus) this.core.registerDriver(iommu);
    this.backend = type1IommuDriver(this.core, setup.options).open(setup.type ?? VFIO_TYPE1v2_IOMMU) as VfioIommuType1;
    this.dma = new DmaEngine(this.core, this.system.physMem);
    this.proc = this.system.spawn();
    this.argp = this.mmap(PAGE * 4n);
  }

  /** Probes `devName` into IOMMU group `groupId` (once) and claims the group for the container. */
  device(devName: string, groupId: number): IommuClientDevice {
    let dev = this.#devices.get(devName);
    if (!dev) {
      dev = clientDevice(devName, this.#nextRid++);
      this.core.probeDevice(dev, groupId);
      this.#devices.set(devName, dev);
    }
    return dev;
  }

  /** VFIO_GROUP_SET_CONTAINER for an IOMMU-backed group: returns the device and 0 or -errno. */
  attach(groupId: number, devName = '0000:01:00.0'): { dev: IommuClientDevice; rc: number } {
    const dev = this.device(devName, groupId);
    if (!this.core.dmaOwnerClaimed(groupId)) this.core.claimDmaOwner(groupId, this);
    return { dev, rc: syscall(() => (this.backend.attachGroup({ id: groupId }, 'iommu'), 0)) };
  }

  attachEmulated(groupId: number): number {
    return syscall(() => (this.backend.attachGroup({ id: groupId }, 'emulated'), 0));
  }

  mmap(length: bigint, options: Parameters<Process['mmap']>[1] = {}): bigint {
    const va = this.proc.mmap(length, options);
    if (va < 0n) throw new Error(`mmap failed: ${va}`);
    return va;
  }

  /** Fills [va, va + length) with a byte pattern that depends on the address. */
  fill(va: bigint, length: number, seed: number): Uint8Array {
    const bytes = Uint8Array.from({ length }, (_, i) => (i * 7 + seed) & 0xff);
    expect(this.proc.mem.write(va, bytes)).toBe(0);
    return bytes;
  }

  /** Runs a container ioctl with `arg` copied to the argument page; returns rc and the argument as the kernel left it. */
  ioctl(request: number, arg: Uint8Array, argp = this.argp): { rc: number; out: Uint8Array } {
    if (arg.length > 0) expect(this.proc.mem.write(argp, arg)).toBe(0);
    const rc = syscall(() => this.backend.ioctl(this.proc, request, argp));
    const out = arg.length > 0 ? (this.proc.mem.read(argp, arg.length) as Uint8Array) : new Uint8Array();
    return { rc, out };
  }

  map(vaddr: bigint, iova: bigint, size: bigint, flags = RW, argsz = 32): number {
    const arg = vfio_iommu_type1_dma_map.encodeNew({ argsz, flags, vaddr, iova, size });
    return this.ioctl(VFIO_IOMMU_MAP_DMA, arg).rc;
  }

  /** UNMAP_DMA; `size` is what the kernel wrote back (the request's size if it failed). */
  unmap(iova: bigint, size: bigint, flags = 0, argsz = 24): { rc: number; size: bigint } {
    const arg = vfio_iommu_type1_dma_unmap.encodeNew({ argsz, flags, iova, size });
    const { rc, out } = this.ioctl(VFIO_IOMMU_UNMAP_DMA, arg);
    return { rc, size: vfio_iommu_type1_dma_unmap.readField(out, 'size') };
  }

  /** UNMAP_DMA with GET_DIRTY_BITMAP: the unmap struct followed by a struct vfio_bitmap. */
  unmapDirty(iova: bigint, size: bigint, bitmap: { pgsize: bigint; size: bigint; data: bigint }, flags: number, argsz = 48) {
    const arg = new Uint8Array(48);
    vfio_iommu_type1_dma_unmap.encode({ argsz, flags, iova, size }, arg);
    vfio_bitmap.encode(bitmap, arg, 24);
    const { rc, out } = this.ioctl(VFIO_IOMMU_UNMAP_DMA, arg);
    return { rc, size: vfio_iommu_type1_dma_unmap.readField(out, 'size') };
  }

  getInfo(argsz: number, length = Math.max(argsz, 24)): { rc: number; out: Uint8Array } {
    const arg = new Uint8Array(length).fill(0xee);
    arg.set(new Uint8Array(new Uint32Array([argsz]).buffer), 0);
    return this.ioctl(VFIO_IOMMU_GET_INFO, arg);
  }

  dirty(flags: number, argsz = 8): number {
    return this.ioctl(VFIO_IOMMU_DIRTY_PAGES, vfio_iommu_type1_dirty_bitmap.encodeNew({ argsz, flags })).rc;
  }

  /** DIRTY_PAGES(GET_BITMAP) of [iova, iova + size) into the user bitmap at `data`. */
  getBitmap(iova: bigint, size: bigint, bitmap: { pgsize: bigint; size: bigint; data: bigint }, argsz = 48, flags = 4): number {
    const arg = new Uint8Array(48);
    vfio_iommu_type1_dirty_bitmap.encode({ argsz, flags }, arg);
    vfio_iommu_type1_dirty_bitmap_get.encode({ iova, size, bitmap }, arg, 8);
    return this.ioctl(VFIO_IOMMU_DIRTY_PAGES, arg).rc;
  }

  readU64s(va: bigint, count: number): bigint[] {
    const bytes = this.proc.mem.read(va, count * 8) as Uint8Array;
    return Array.from({ length: count }, (_, i) => new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(i * 8, true));
  }

  /** The container state a failed call must leave untouched. */
  snapshot() {
    return {
      mappings: this.backend.mappings(),
      dmaAvail: this.backend.dmaAvail,
      pinned: this.system.physMem.pinnedFrames,
      ranges: this.backend.iovaRanges,
      pgsizes: this.backend.pgsizeBitmap,
      domains: this.backend.domains.length,
      invalid: this.backend.vaddrInvalidCount,
    };
  }
}
