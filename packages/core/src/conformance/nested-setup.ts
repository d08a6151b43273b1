import { AssertionError } from 'node:assert';
import type { DmaFault } from '../iommu/dma-engine.js';
import type { IommuDomain } from '../iommu/iommu-driver.js';
import { HwptNested } from '../iommu/iommufd/index.js';
import {
  IOMMU_HWPT_ALLOC,
  IOMMU_HWPT_ALLOC_NEST_PARENT,
  IOMMU_HWPT_INVALIDATE,
  IOMMU_IOAS_ALLOC,
  IOMMU_IOAS_MAP,
  IOMMU_IOAS_MAP_READABLE,
  IOMMU_IOAS_MAP_WRITEABLE,
  IOMMU_VDEVICE_ALLOC,
  IOMMU_VIOMMU_ALLOC,
  VFIO_DEVICE_ATTACH_IOMMUFD_PT,
  iommu_hwpt_alloc,
  iommu_hwpt_invalidate,
  iommu_ioas_alloc,
  iommu_ioas_map,
  iommu_vdevice_alloc,
  iommu_viommu_alloc,
  vfio_device_attach_iommufd_pt,
  type DeepPartial,
} from '../uapi/index.js';
import { bindDevice, type BoundDevice } from './bound-device.js';
import { setupOk } from './expect.js';
import { GuestRam } from './guest-ram.js';
import type { InvalidationEntryContext, InvalidationSubject, IommuDriverSubject } from './iommu-subject.js';
import type { Stage1Table } from './stage1.js';

/*
 * The nested setup of a VMM with a vIOMMU, built through /dev/iommu the way
 * QEMU builds it: the device bound to iommufd, an IOAS holding guest RAM
 * (the stage-2 mapping, IOVA = IPA) through a NEST_PARENT paging HWPT, the
 * driver's vIOMMU and the device's vDEVICE when the driver has one, then a
 * nested HWPT of the driver's data type whose stage 1 sits in guest RAM,
 * and the device attached to it.
 *
 * Public API: NestedSetup, NestedAttachment, InvalidateOptions, STAGE1_IOVA
 */

const PAGE = 4096n;
/** Guest RAM: 256 KiB, stage-1 tables from the bottom, data pages at the top. */
const GUEST_RAM_PAGES = 64;
const DATA_PAGES = 8;
/** Where the suite's stage-1 mappings start: an IOVA no IPA equals, inside any driver's stage-1 input range. */
export const STAGE1_IOVA = 0x4000_0000n;
/** Scratch offset of the data an ioctl points at (nested data, invalidation arrays). */
const DATA_AT = 0x1000;

/** How IOMMU_HWPT_INVALIDATE lays out and describes the array (see NestedSetup.invalidate). */
export interface InvalidateOptions {
  /** Bytes per entry slot, and the entry_len passed. */
  readonly entryLen: number;
  /** Byte for the slot bytes past an entry (a long entry's tail). */
  readonly fill?: number;
  /** Struct fields that override the defaults (data_uptr, entry_len, __reserved...). */
  readonly fields?: DeepPartial<iommu_hwpt_invalidate>;
}

export interface NestedAttachment {
  readonly hwpt: number;
  readonly stage1: Stage1Table;
  readonly domain: IommuDomain;
}

export class NestedSetup {
  readonly ioas: number;
  readonly parent: number;
  readonly guest: GuestRam;
  readonly viommu: number | null = null;
  readonly virtId: bigint | null = null;

  constructor(readonly subject: IommuDriverSubject, readonly dev: BoundDevice) {
    const { user } = dev;
    const needsViommu = subject.nested.via === 'viommu' || subject.invalidations.some((inv) => inv.target === 'viommu');
    if (needsViommu && !subject.viommu) {
      throw new AssertionError({ message: 'subject error: a nested HWPT or an invalidation through the vIOMMU needs `viommu`' });
    }
    const ioas = user.ioctl(dev.iommufd, IOMMU_IOAS_ALLOC, iommu_ioas_alloc, { size: iommu_ioas_alloc.size });
    setupOk(ioas.rc, 'IOMMU_IOAS_ALLOC');
    this.ioas = ioas.out.out_ioas_id;
    const parent = this.hwptAlloc({ flags: IOMMU_HWPT_ALLOC_NEST_PARENT, pt_id: this.ioas });
    setupOk(parent.rc, 'IOMMU_HWPT_ALLOC of a NEST_PARENT paging HWPT');
    this.parent = parent.id;

    // Mapped after the parent exists, so iommufd picks an IPA inside the driver's aperture.
    const size = BigInt(GUEST_RAM_PAGES) * PAGE;
    const va = user.proc.mmap(size);
    setupOk(va, 'mmap of guest RAM');
    const map = user.ioctl(dev.iommufd, IOMMU_IOAS_MAP, iommu_ioas_map, {
      size: iommu_ioas_map.size,
      flags: IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE,
      ioas_id: this.ioas,
      user_va: va,
      length: size,
    });
    setupOk(map.rc, 'IOMMU_IOAS_MAP of guest RAM');
    this.guest = new GuestRam(user.proc, va, map.out.iova, size, DATA_PAGES);

    if (subject.viommu) {
      const viommu = user.ioctl(dev.iommufd, IOMMU_VIOMMU_ALLOC, iommu_viommu_alloc, {
        size: iommu_viommu_alloc.size,
        type: subject.viommu.type,
        dev_id: dev.devId,
        hwpt_id: this.parent,
      });
      setupOk(viommu.rc, 'IOMMU_VIOMMU_ALLOC');
      this.viommu = viommu.out.out_viommu_id;
      this.virtId = subject.viommu.virtId ?? 1n;
      const vdev = user.ioctl(dev.iommufd, IOMMU_VDEVICE_ALLOC, iommu_vdevice_alloc, {
        size: iommu_vdevice_alloc.size,
        viommu_id: this.viommu,
        dev_id: dev.devId,
        virt_id: this.virtId,
      });
      setupOk(vdev.rc, 'IOMMU_VDEVICE_ALLOC');
    }
  }

  static create(subject: IommuDriverSubject): NestedSetup {
    return new NestedSetup(subject, bindDevice(subject, { detectStaleTranslations: true }));
  }

  get invalidationContext(): InvalidationEntryContext {
    return { virtId: this.virtId };
  }

  /** Where the subject's nested HWPTs are allocated: the parent HWPT or the vIOMMU. */
  get nestedPt(): number {
    return this.subject.nested.via === 'viommu' ? this.viommu! : this.parent;
  }

  /** IOMMU_HWPT_ALLOC for the device with `fields`; `data` is placed in scratch and pointed at (data_len set from it). */
  hwptAlloc(fields: DeepPartial<iommu_hwpt_alloc>, data?: Uint8Array): { rc: number; id: number } {
    const { user } = this.dev;
    const extra: DeepPartial<iommu_hwpt_alloc> = {};
    if (data) {
      user.write(user.at(DATA_AT), data);
      extra.data_uptr = user.at(DATA_AT);
      extra.data_len = data.length;
    }
    const { rc, out } = user.ioctl(this.dev.iommufd, IOMMU_HWPT_ALLOC, iommu_hwpt_alloc, {
      size: iommu_hwpt_alloc.size,
      dev_id: this.dev.devId,
      ...extra,
      ...fields,
    });
    return { rc, id: out.out_hwpt_id };
  }

  /** Objects alive in the iommufd context, to prove a failed call left none behind. */
  liveObjects(): number {
    const ictx = this.dev.host.iommufd.ctxFromFile(this.dev.user.proc.fdget(this.dev.iommufd));
    if (!ictx) throw new AssertionError({ message: 'setup failed: the /dev/iommu fd is not an iommufd' });
    return ictx.objects.live().length;
  }

  /** The driver's domain behind a nested HWPT id (for model-side stage-1 knobs). */
  nestedDomain(hwpt: number): IommuDomain {
    const ictx = this.dev.host.iommufd.ctxFromFile(this.dev.user.proc.fdget(this.dev.iommufd))!;
    return ictx.objects.get<HwptNested>(hwpt, 'hwpt_nested').hwDomain;
  }

  /** A new stage-1 table in guest RAM and a nested HWPT of the driver's type over it (not attached). */
  allocNested(): NestedAttachment {
    const stage1 = this.subject.stage1.create(this.guest);
    const ctx = { host: this.dev.host, guest: this.guest, stage1 };
    const { rc, id } = this.hwptAlloc({ pt_id: this.nestedPt, data_type: this.subject.nested.dataType }, this.subject.nested.data(ctx));
    setupOk(rc, `IOMMU_HWPT_ALLOC of a nested HWPT with data_type 0x${this.subject.nested.dataType.toString(16)}`);
    const domain = this.nestedDomain(id);
    this.subject.nested.attachStage1?.({ ...ctx, domain });
    return { hwpt: id, stage1, domain };
  }

  /** VFIO_DEVICE_ATTACH_IOMMUFD_PT on the device cdev; the rc and the pt_id written back. */
  attach(ptId: number): { rc: number; ptId: number } {
    const { rc, out } = this.dev.user.ioctl(this.dev.fd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, vfio_device_attach_iommufd_pt, {
      argsz: vfio_device_attach_iommufd_pt.size,
      pt_id: ptId,
    });
    return { rc, ptId: out.pt_id };
  }

  /** allocNested() and attach the device to it. */
  attachNested(): NestedAttachment {
    const nested = this.allocNested();
    setupOk(this.attach(nested.hwpt).rc, 'VFIO_DEVICE_ATTACH_IOMMUFD_PT to the nested HWPT');
    return nested;
  }

  /** The object an invalidation subject's requests go to. */
  targetOf(inv: InvalidationSubject, nested: NestedAttachment): number {
    return inv.target === 'viommu' ? this.viommu! : nested.hwpt;
  }

  /**
   * IOMMU_HWPT_INVALIDATE. Each entry is laid out in an `entryLen`-byte
   * slot (cut if the slot is shorter, and the slot's bytes past the entry
   * filled with `fill`). Returns the rc and entry_num as written back.
   */
  invalidate(
    target: number,
    dataType: number,
    entries: readonly Uint8Array[],
    options: InvalidateOptions,
  ): { rc: number; entryNum: number } {
    const { user } = this.dev;
    const array = new Uint8Array(entries.length * options.entryLen).fill(options.fill ?? 0);
    entries.forEach((entry, i) => array.set(entry.subarray(0, options.entryLen), i * options.entryLen));
    user.write(user.at(DATA_AT), array);
    const { rc, out } = user.ioctl(this.dev.iommufd, IOMMU_HWPT_INVALIDATE, iommu_hwpt_invalidate, {
      size: iommu_hwpt_invalidate.size,
      hwpt_id: target,
      data_uptr: user.at(DATA_AT),
      data_type: dataType,
      entry_len: options.entryLen,
      entry_num: entries.length,
      ...options.fields,
    });
    return { rc, entryNum: out.entry_num };
  }

  /** A DMA write by the device; the fault, or null when the bytes landed. */
  dmaWrite(iova: bigint, bytes: Uint8Array): DmaFault | null {
    return this.dev.host.dma.tryDmaWrite(this.dev.fn, iova, bytes);
  }

  dmaRead(iova: bigint, length: number): { fault: DmaFault | null; bytes: Uint8Array } {
    const bytes = new Uint8Array(length);
    const fault = this.dev.host.dma.tryDmaRead(this.dev.fn, iova, bytes);
    return { fault, bytes };
  }
}
