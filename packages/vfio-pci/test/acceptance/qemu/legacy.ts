import { expect } from 'vitest';
import {
  VFIO_API_VERSION,
  VFIO_DMA_MAP_FLAG_READ,
  VFIO_DMA_MAP_FLAG_WRITE,
  VFIO_GROUP_FLAGS_VIABLE,
  VFIO_IOMMU_INFO_CAPS,
  VFIO_SPAPR_TCE_IOMMU,
  VFIO_SPAPR_TCE_v2_IOMMU,
  VFIO_TYPE1_IOMMU,
  VFIO_TYPE1v2_IOMMU,
  vfio_group_status,
  vfio_info_cap_header,
  vfio_iommu_type1_dma_map,
  vfio_iommu_type1_dma_unmap,
  vfio_iommu_type1_info,
} from '@vfiosim/core';
import type { Syscalls } from './trace.js';

/*
 * QEMU's legacy container back end (hw/vfio/container-legacy.c): groups,
 * /dev/vfio/vfio, the richest type1 flavour, the IOMMU info dance and the
 * DMA map/unmap calls its memory listener makes.
 */

export class QemuLegacyContainer {
  containerFd = -1;
  iommuType = 0;
  info: vfio_iommu_type1_info | null = null;
  infoBytes: Uint8Array = new Uint8Array(0);
  /** Group fds by group id (QEMU's vfio_group_list). */
  readonly groups = new Map<number, number>();

  constructor(readonly sys: Syscalls) {}

  /**
   * vfio_group_get + vfio_container_connect: open the group, insist it is
   * viable, then join an existing container or create one.
   */
  groupGet(groupId: number): number {
    const existing = this.groups.get(groupId);
    if (existing !== undefined) return existing;
    const fd = this.sys.open(`/dev/vfio/${groupId}`);
    expect(fd).toBeGreaterThanOrEqual(0);
    const status = this.sys.ioctl(fd, 'VFIO_GROUP_GET_STATUS', vfio_group_status, { argsz: vfio_group_status.size });
    expect(status.rc).toBe(0);
    expect(status.out.flags & VFIO_GROUP_FLAGS_VIABLE, `group ${groupId} is not viable`).toBeTruthy();
    if (this.containerFd >= 0) {
      expect(this.sys.ioctlBytes(fd, 'VFIO_GROUP_SET_CONTAINER', int32(this.containerFd)).rc).toBe(0);
    } else {
      this.#createContainer(fd);
    }
    this.groups.set(groupId, fd);
    return fd;
  }

  #createContainer(groupFd: number): void {
    const fd = this.sys.open('/dev/vfio/vfio');
    expect(fd).toBeGreaterThanOrEqual(0);
    expect(this.sys.ioctlValue(fd, 'VFIO_GET_API_VERSION')).toBe(VFIO_API_VERSION);
    // vfio_get_iommu_type: the first type the container says it can do.
    this.iommuType = [VFIO_TYPE1v2_IOMMU, VFIO_TYPE1_IOMMU, VFIO_SPAPR_TCE_v2_IOMMU, VFIO_SPAPR_TCE_IOMMU].find(
      (type) => this.sys.ioctlValue(fd, 'VFIO_CHECK_EXTENSION', type) > 0,
    )!;
    expect(this.iommuType).toBe(VFIO_TYPE1v2_IOMMU);
    // vfio_set_iommu.
    expect(this.sys.ioctlBytes(groupFd, 'VFIO_GROUP_SET_CONTAINER', int32(fd)).rc).toBe(0);
    expect(this.sys.ioctlValue(fd, 'VFIO_SET_IOMMU', this.iommuType)).toBe(0);
    this.containerFd = fd;
    this.#getInfo();
  }

  /** vfio_get_iommu_info: the type1 info, with the argsz the kernel asks for when it has capabilities. */
  #getInfo(): void {
    let argsz = vfio_iommu_type1_info.size;
    for (;;) {
      const { rc, out, bytes } = this.sys.ioctl(this.containerFd, 'VFIO_IOMMU_GET_INFO', vfio_iommu_type1_info, { argsz }, argsz);
      expect(rc).toBe(0);
      if (out.argsz > argsz) {
        argsz = out.argsz;
        continue;
      }
      this.info = out;
      this.infoBytes = bytes;
      return;
    }
  }

  /** vfio_get_iommu_info_cap: the chain walked as QEMU walks it. */
  infoCap(id: number): number | null {
    const info = this.info!;
    if (!(info.flags & VFIO_IOMMU_INFO_CAPS)) return null;
    for (let at = info.cap_offset; at; ) {
      const header = vfio_info_cap_header.decode(this.infoBytes, at);
      if (header.id === id) return at;
      at = header.next;
    }
    return null;
  }

  /** vfio_legacy_dma_map. */
  dmaMap(iova: bigint, size: bigint, vaddr: bigint, readonly = false): number {
    return this.sys.ioctl(this.containerFd, 'VFIO_IOMMU_MAP_DMA', vfio_iommu_type1_dma_map, {
      argsz: vfio_iommu_type1_dma_map.size,
      flags: VFIO_DMA_MAP_FLAG_READ | (readonly ? 0 : VFIO_DMA_MAP_FLAG_WRITE),
      vaddr,
      iova,
      size,
    }).rc;
  }

  /** vfio_legacy_dma_unmap_one: 0 or -errno, and the size the kernel reports. */
  dmaUnmap(iova: bigint, size: bigint): { rc: number; size: bigint } {
    const { rc, out } = this.sys.ioctl(this.containerFd, 'VFIO_IOMMU_UNMAP_DMA', vfio_iommu_type1_dma_unmap, {
      argsz: vfio_iommu_type1_dma_unmap.size,
      iova,
      size,
    });
    return { rc, size: out.size };
  }

  /** vfio_legacy_dma_unmap(unmap_all): the unmap ioctl does not take a 64-bit span, so two halves. */
  dmaUnmapAll(): { rc: number; sizes: bigint[] } {
    const half = 1n << 63n;
    const first = this.dmaUnmap(0n, half);
    if (first.rc) return { rc: first.rc, sizes: [first.size] };
    const second = this.dmaUnmap(half, half);
    return { rc: second.rc, sizes: [first.size, second.size] };
  }

  /** vfio_device_get: VFIO_GROUP_GET_DEVICE_FD by name. */
  getDeviceFd(groupFd: number, name: string): number {
    const bytes = new TextEncoder().encode(`${name}\0`);
    return this.sys.ioctlBytes(groupFd, 'VFIO_GROUP_GET_DEVICE_FD', bytes).rc;
  }

  /** vfio_container_disconnect + vfio_group_put: unset, close the container with its last group, close the group. */
  groupPut(groupId: number): void {
    const fd = this.groups.get(groupId)!;
    this.groups.delete(groupId);
    expect(this.sys.ioctlBytes(fd, 'VFIO_GROUP_UNSET_CONTAINER', int32(this.containerFd)).rc).toBe(0);
    if (this.groups.size === 0) {
      expect(this.sys.close(this.containerFd)).toBe(0);
      this.containerFd = -1;
    }
    expect(this.sys.close(fd)).toBe(0);
  }
}

function int32(value: number): Uint8Array {
  const bytes = new Uint8Array(4);
  new DataView(bytes.buffer).setInt32(0, value, true);
  return bytes;
}
