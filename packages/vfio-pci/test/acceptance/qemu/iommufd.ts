import { expect } from 'vitest';
import {
  Errno,
  IOMMU_HW_CAP_DIRTY_TRACKING,
  IOMMU_HWPT_ALLOC_DIRTY_TRACKING,
  IOMMU_HWPT_DATA_NONE,
  IOMMU_IOAS_MAP_FIXED_IOVA,
  IOMMU_IOAS_MAP_READABLE,
  IOMMU_IOAS_MAP_WRITEABLE,
  iommu_destroy,
  iommu_hw_info,
  iommu_hwpt_alloc,
  iommu_ioas_alloc,
  iommu_ioas_iova_ranges,
  iommu_ioas_map,
  iommu_ioas_unmap,
  iommu_iova_range,
  vfio_device_attach_iommufd_pt,
  vfio_device_bind_iommufd,
  vfio_device_detach_iommufd_pt,
} from '@vfiosim/core';
import type { Syscalls } from './trace.js';

/*
 * QEMU's iommufd back end (backends/iommufd.c and hw/vfio/iommufd.c): the
 * device cdev bound to one /dev/iommu, one IOAS per address space, an
 * automatic HWPT per compatible IOMMU, attached by HWPT id.
 */

export interface QemuHwpt {
  readonly id: number;
  readonly flags: number;
}

export class QemuIommufd {
  /** The backend's /dev/iommu, opened by the first device that connects. */
  fd = -1;
  ioasId = 0;
  readonly hwpts: QemuHwpt[] = [];
  ranges: { start: bigint; last: bigint }[] = [];
  pgsizes = 0n;

  constructor(readonly sys: Syscalls) {}

  /** iommufd_backend_connect. */
  connect(): void {
    if (this.fd < 0) {
      this.fd = this.sys.open('/dev/iommu');
      expect(this.fd).toBeGreaterThanOrEqual(0);
    }
  }

  /** iommufd_cdev_connect_and_bind: the device's devid in this iommufd. */
  bind(deviceFd: number): number {
    this.connect();
    const { rc, out } = this.sys.ioctl(deviceFd, 'VFIO_DEVICE_BIND_IOMMUFD', vfio_device_bind_iommufd, {
      argsz: vfio_device_bind_iommufd.size,
      flags: 0,
      iommufd: this.fd,
    });
    expect(rc).toBe(0);
    return out.out_devid;
  }

  /** iommufd_backend_get_device_info: the type and capabilities, with `dataLen` bytes of driver data. */
  getDeviceInfo(devid: number, dataLen = 0): { type: number; caps: bigint; data: Uint8Array } {
    const data = this.sys.user.alloc(Math.max(dataLen, 1));
    const { rc, out } = this.sys.ioctl(this.fd, 'IOMMU_GET_HW_INFO', iommu_hw_info, {
      size: iommu_hw_info.size,
      dev_id: devid,
      data_len: dataLen,
      data_uptr: dataLen ? data : 0n,
    });
    expect(rc).toBe(0);
    return { type: out.out_data_type, caps: out.out_capabilities, data: this.sys.user.read(data, dataLen) };
  }

  /** iommufd_cdev_attach_ioas_hwpt: 0 or -errno. */
  attach(deviceFd: number, id: number): number {
    return this.sys.ioctl(deviceFd, 'VFIO_DEVICE_ATTACH_IOMMUFD_PT', vfio_device_attach_iommufd_pt, {
      argsz: vfio_device_attach_iommufd_pt.size,
      flags: 0,
      pt_id: id,
    }).rc;
  }

  detach(deviceFd: number): number {
    return this.sys.ioctl(deviceFd, 'VFIO_DEVICE_DETACH_IOMMUFD_PT', vfio_device_detach_iommufd_pt, {
      argsz: vfio_device_detach_iommufd_pt.size,
      flags: 0,
    }).rc;
  }

  /**
   * iommufd_cdev_autodomains_get: try every HWPT QEMU already has (EINVAL
   * means incompatible, try the next); else ask for the IOMMU's
   * capabilities, allocate a HWPT (with dirty tracking when offered) and
   * attach to it.
   */
  autodomainsGet(deviceFd: number, devid: number): QemuHwpt {
    for (const hwpt of this.hwpts) {
      const rc = this.attach(deviceFd, hwpt.id);
      if (rc === 0) return hwpt;
      expect(rc).toBe(-Errno.EINVAL);
    }
    const { caps } = this.getDeviceInfo(devid);
    const flags = caps & BigInt(IOMMU_HW_CAP_DIRTY_TRACKING) ? IOMMU_HWPT_ALLOC_DIRTY_TRACKING : 0;
    const { rc, out } = this.sys.ioctl(this.fd, 'IOMMU_HWPT_ALLOC', iommu_hwpt_alloc, {
      size: iommu_hwpt_alloc.size,
      flags,
      dev_id: devid,
      pt_id: this.ioasId,
      data_type: IOMMU_HWPT_DATA_NONE,
    });
    expect(rc).toBe(0);
    expect(this.attach(deviceFd, out.out_hwpt_id)).toBe(0);
    const hwpt = { id: out.out_hwpt_id, flags };
    this.hwpts.unshift(hwpt);
    return hwpt;
  }

  /** iommufd_backend_alloc_ioas. */
  allocIoas(): void {
    const { rc, out } = this.sys.ioctl(this.fd, 'IOMMU_IOAS_ALLOC', iommu_ioas_alloc, { size: iommu_ioas_alloc.size, flags: 0 });
    expect(rc).toBe(0);
    this.ioasId = out.out_ioas_id;
  }

  /**
   * iommufd_cdev_get_info_iova_range: the bare struct first (EMSGSIZE tells
   * how many ranges), then the ranges right behind the struct.
   */
  getInfoIovaRange(): void {
    const first = this.sys.ioctl(this.fd, 'IOMMU_IOAS_IOVA_RANGES', iommu_ioas_iova_ranges, {
      size: iommu_ioas_iova_ranges.size,
      ioas_id: this.ioasId,
    });
    expect(first.rc === 0 || first.rc === -Errno.EMSGSIZE).toBe(true);
    const n = first.out.num_iovas;
    const buf = new Uint8Array(iommu_ioas_iova_ranges.size + n * iommu_iova_range.size);
    const at = this.sys.user.push(buf);
    this.sys.proc.mem.write(
      at,
      iommu_ioas_iova_ranges.encodeNew({ ...first.out, allowed_iovas: at + BigInt(iommu_ioas_iova_ranges.size) }),
    );
    expect(this.sys.ioctlPtr(this.fd, 'IOMMU_IOAS_IOVA_RANGES', at)).toBe(0);
    const bytes = this.sys.user.read(at, buf.length);
    const info = iommu_ioas_iova_ranges.decode(bytes);
    this.ranges = Array.from({ length: info.num_iovas }, (_, i) =>
      iommu_iova_range.decode(bytes, iommu_ioas_iova_ranges.size + i * iommu_iova_range.size),
    );
    this.pgsizes = info.out_iova_alignment;
  }

  /** iommufd_backend_map_dma. */
  mapDma(iova: bigint, size: bigint, vaddr: bigint, readonly = false): number {
    return this.sys.ioctl(this.fd, 'IOMMU_IOAS_MAP', iommu_ioas_map, {
      size: iommu_ioas_map.size,
      flags: IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_FIXED_IOVA | (readonly ? 0 : IOMMU_IOAS_MAP_WRITEABLE),
      ioas_id: this.ioasId,
      user_va: vaddr,
      iova,
      length: size,
    }).rc;
  }

  /** iommufd_backend_unmap_dma: ENOENT counts as success, as for the legacy back end. */
  unmapDma(iova: bigint, size: bigint): { rc: number; length: bigint } {
    const { rc, out } = this.sys.ioctl(this.fd, 'IOMMU_IOAS_UNMAP', iommu_ioas_unmap, {
      size: iommu_ioas_unmap.size,
      ioas_id: this.ioasId,
      iova,
      length: size,
    });
    return { rc: rc === -Errno.ENOENT ? 0 : rc, length: out.length };
  }

  /** iommufd_backend_free_id. */
  freeId(id: number): number {
    return this.sys.ioctl(this.fd, 'IOMMU_DESTROY', iommu_destroy, { size: iommu_destroy.size, id }).rc;
  }
}
