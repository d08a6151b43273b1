import { beforeEach, describe, expect, it } from 'vitest';
import {
  Errno,
  IOMMU_OPTION,
  IOMMU_OPTION_HUGE_PAGES,
  IOMMU_OPTION_OP_GET,
  IOMMU_VFIO_IOAS,
  IOMMU_VFIO_IOAS_GET,
  MAP_ANONYMOUS,
  MAP_SHARED,
  MOCK_APERTURE_LAST,
  MOCK_APERTURE_START,
  PAGE_SIZE,
  PCI_COMMAND,
  PCI_COMMAND_MASTER,
  PCI_COMMAND_MEMORY,
  PROT_READ,
  PROT_WRITE,
  VFIO_API_VERSION,
  VFIO_CHECK_EXTENSION,
  VFIO_DMA_MAP_FLAG_READ,
  VFIO_DMA_MAP_FLAG_WRITE,
  VFIO_DMA_UNMAP_FLAG_ALL,
  VFIO_GET_API_VERSION,
  VFIO_GROUP_GET_DEVICE_FD,
  VFIO_GROUP_SET_CONTAINER,
  VFIO_IOMMU_GET_INFO,
  VFIO_IOMMU_INFO_CAPS,
  VFIO_IOMMU_INFO_PGSIZES,
  VFIO_IOMMU_MAP_DMA,
  VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE,
  VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL,
  VFIO_IOMMU_UNMAP_DMA,
  VFIO_PCI_CONFIG_REGION_INDEX,
  VFIO_SET_IOMMU,
  VFIO_TYPE1_IOMMU,
  VFIO_TYPE1v2_IOMMU,
  iommu_option,
  iommu_vfio_ioas,
  vfio_info_cap_header,
  vfio_iommu_type1_dma_map,
  vfio_iommu_type1_dma_unmap,
  vfio_iommu_type1_info,
  vfio_iommu_type1_info_cap_iova_range,
  vfio_iommu_type1_info_dma_avail,
  vfio_iova_range,
  vfioPciIndexToOffset,
  type Host,
} from '@vfiosim/core';
import { NIC_BDF, nicHost } from './hosts.js';
import { Sysfs } from './libvfio/vfio-pci-device.js';
import { User } from './user.js';

/*
 * tools/testing/selftests/iommu/iommufd.c, the VFIO compatibility cases
 * (TEST_F(iommufd, simple_ioctls/unmap_cmd/map_cmd/info_cmd/set_iommu_cmd)
 * and FIXTURE(vfio_compat_mock_domain)), with one difference: what "VFIO
 * would consider a group" is a real one here. Upstream fakes it with a mock
 * domain and IOMMU_VFIO_IOAS_SET; here the 82599's group joins /dev/iommu
 * with VFIO_GROUP_SET_CONTAINER, which makes vfio create the compat IOAS.
 */

const BUFFER_SIZE = 8n * BigInt(PAGE_SIZE);
const RW = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE;

describe('TEST_F(iommufd, ...) VFIO compatibility ioctls on a bare /dev/iommu', () => {
  let user: User;
  let fd: number;
  let buffer: bigint;

  beforeEach(() => {
    user = new User(nicHost().spawn());
    fd = user.proc.open('/dev/iommu');
    buffer = user.proc.mmap(BUFFER_SIZE);
  });

  it('simple_ioctls', () => {
    expect(user.proc.ioctl(fd, VFIO_GET_API_VERSION)).toBe(VFIO_API_VERSION);
    expect(user.proc.ioctl(fd, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU)).toBe(1);
  });

  it('unmap_cmd: argsz 1 and unknown flags are EINVAL, then ENODEV without a compat IOAS', () => {
    const unmap = (argsz: number, flags: number) =>
      user.ioctl(fd, VFIO_IOMMU_UNMAP_DMA, vfio_iommu_type1_dma_unmap, { argsz, flags, iova: MOCK_APERTURE_START, size: BigInt(PAGE_SIZE) }).rc;
    expect(unmap(1, 0)).toBe(-Errno.EINVAL);
    expect(unmap(vfio_iommu_type1_dma_unmap.size, 1 << 31)).toBe(-Errno.EINVAL);
    expect(unmap(vfio_iommu_type1_dma_unmap.size, 0)).toBe(-Errno.ENODEV);
  });

  it('map_cmd: argsz 1 and unknown flags are EINVAL, then ENODEV without a compat IOAS', () => {
    const map = (argsz: number, flags: number) =>
      user.ioctl(fd, VFIO_IOMMU_MAP_DMA, vfio_iommu_type1_dma_map, { argsz, flags, iova: MOCK_APERTURE_START, size: BigInt(PAGE_SIZE), vaddr: buffer }).rc;
    expect(map(1, 0)).toBe(-Errno.EINVAL);
    expect(map(vfio_iommu_type1_dma_map.size, 1 << 31)).toBe(-Errno.EINVAL);
    expect(map(vfio_iommu_type1_dma_map.size, RW)).toBe(-Errno.ENODEV);
  });

  it('info_cmd: argsz 1 is EINVAL, then ENODEV', () => {
    expect(user.ioctl(fd, VFIO_IOMMU_GET_INFO, vfio_iommu_type1_info, { argsz: 1 }).rc).toBe(-Errno.EINVAL);
    expect(user.ioctl(fd, VFIO_IOMMU_GET_INFO, vfio_iommu_type1_info, { argsz: vfio_iommu_type1_info.size }).rc).toBe(-Errno.ENODEV);
  });

  it('set_iommu_cmd: both type1 flavours need a group first (ENODEV)', () => {
    expect(user.proc.ioctl(fd, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU)).toBe(-Errno.ENODEV);
    expect(user.proc.ioctl(fd, VFIO_SET_IOMMU, VFIO_TYPE1_IOMMU)).toBe(-Errno.ENODEV);
  });
});

describe.each([
  ['Ver1v2', VFIO_TYPE1v2_IOMMU],
  ['Ver1v0', VFIO_TYPE1_IOMMU],
] as const)('FIXTURE(vfio_compat_mock_domain) with a real group (%s)', (_variant, version) => {
  let host: Host;
  let user: User;
  let fd: number;
  let groupFd: number;
  let ioasId: number;
  let buffer: bigint;

  beforeEach(() => {
    host = nicHost();
    user = new User(host.spawn());
    fd = user.proc.open('/dev/iommu');
    expect(fd).toBeGreaterThan(0);
    buffer = user.proc.mmap(BUFFER_SIZE, { prot: PROT_READ | PROT_WRITE, flags: MAP_SHARED | MAP_ANONYMOUS });

    groupFd = user.proc.open(`/dev/vfio/${new Sysfs(host).iommuGroup(NIC_BDF)}`);
    expect(user.proc.ioctl(groupFd, VFIO_GROUP_SET_CONTAINER, user.int(fd))).toBe(0);
    const get = user.ioctl(fd, IOMMU_VFIO_IOAS, iommu_vfio_ioas, { size: iommu_vfio_ioas.size, op: IOMMU_VFIO_IOAS_GET });
    expect(get.rc).toBe(0);
    ioasId = get.out.ioas_id;
    expect(user.proc.ioctl(fd, VFIO_SET_IOMMU, version)).toBe(0);
  });

  const map = (iova: bigint, vaddr: bigint, size: bigint) =>
    user.ioctl(fd, VFIO_IOMMU_MAP_DMA, vfio_iommu_type1_dma_map, { argsz: vfio_iommu_type1_dma_map.size, flags: RW, vaddr, iova, size }).rc;
  const unmap = (iova: bigint, size: bigint, flags = 0) =>
    user.ioctl(fd, VFIO_IOMMU_UNMAP_DMA, vfio_iommu_type1_dma_unmap, { argsz: vfio_iommu_type1_dma_unmap.size, flags, iova, size });

  it('simple_close: closing the group and the container releases the device for another user', () => {
    expect(user.proc.close(groupFd)).toBe(0);
    expect(user.proc.close(fd)).toBe(0);
    expect(host.iommu.dmaOwnerClaimed(new Sysfs(host).iommuGroup(NIC_BDF))).toBe(false);
  });

  it('option_huge_pages: type1 turns huge pages off in the compat IOAS, type1v2 leaves them on', () => {
    const { rc, out } = user.ioctl(fd, IOMMU_OPTION, iommu_option, {
      size: iommu_option.size,
      option_id: IOMMU_OPTION_HUGE_PAGES,
      op: IOMMU_OPTION_OP_GET,
      val64: 3n,
      object_id: ioasId,
    });
    expect(rc).toBe(0);
    expect(out.val64).toBe(version === VFIO_TYPE1_IOMMU ? 0n : 1n);
  });

  it('get_info: pre-cap ABI, the chain size, and a sound chain for every argsz without writing past it', () => {
    const BUF = 4096;
    const call = (argsz: number) => {
      const bytes = new Uint8Array(BUF).fill(0xaa);
      bytes.set(vfio_iommu_type1_info.encodeNew({ argsz }).subarray(0, Math.min(argsz, vfio_iommu_type1_info.size)));
      bytes.fill(0, 4, Math.min(argsz, vfio_iommu_type1_info.size));
      const at = user.push(bytes);
      expect(user.proc.ioctl(fd, VFIO_IOMMU_GET_INFO, at)).toBe(0);
      const after = user.read(at, BUF);
      // ioctl_check_buf: nothing past argsz was touched.
      expect(after.subarray(argsz).every((b) => b === 0xaa)).toBe(true);
      const header = new Uint8Array(vfio_iommu_type1_info.size);
      header.set(after.subarray(0, Math.min(argsz, header.length)));
      return { info: vfio_iommu_type1_info.decode(header), bytes: after };
    };

    const preCap = call(vfio_iommu_type1_info.offsetOf('cap_offset'));
    expect(preCap.info.iova_pgsizes).not.toBe(0n);
    expect(preCap.info.flags).toBe(VFIO_IOMMU_INFO_PGSIZES | VFIO_IOMMU_INFO_CAPS);

    const size = call(vfio_iommu_type1_info.size);
    expect(size.info.flags).toBe(VFIO_IOMMU_INFO_PGSIZES | VFIO_IOMMU_INFO_CAPS);
    expect(size.info.cap_offset).toBe(0);
    // iommufd has no migration capability: DMA avail (12, padded to 16 since v6.6) then IOVA ranges (16 + 16).
    expect(size.info.argsz).toBe(vfio_iommu_type1_info.size + 16 + 32);

    for (let argsz = vfio_iommu_type1_info.size; argsz < size.info.argsz; argsz++) {
      const { info, bytes } = call(argsz);
      expect(info.flags).toBe(VFIO_IOMMU_INFO_PGSIZES | VFIO_IOMMU_INFO_CAPS);
      if (!info.cap_offset) continue;
      expect(info.argsz).toBeGreaterThanOrEqual(info.cap_offset + vfio_info_cap_header.size);
      for (let at = info.cap_offset; ; ) {
        const cap = vfio_info_cap_header.decode(bytes, at);
        const capSize = (cap.next || info.argsz) - at;
        if (cap.id === VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE) {
          const data = vfio_iommu_type1_info_cap_iova_range.decode(bytes, at);
          expect([data.header.version, data.nr_iovas]).toEqual([1, 1]);
          expect(vfio_iova_range.decode(bytes, at + vfio_iommu_type1_info_cap_iova_range.size)).toEqual({
            start: MOCK_APERTURE_START,
            end: MOCK_APERTURE_LAST,
          });
        } else {
          // Upstream asserts sizeof(*data) == the space it takes, written before
          // vfio_compat.c aligned every capability to 8 bytes; the kernel now
          // pads the 12-byte DMA_AVAIL to 16 so the IOVA ranges after it are aligned.
          expect(cap.id).toBe(VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL);
          expect(vfio_iommu_type1_info_dma_avail.decode(bytes, at)).toEqual({ header: { ...cap }, avail: 0xffffffff });
          expect(capSize).toBe(16);
        }
        if (!cap.next) break;
        expect(info.argsz).toBeGreaterThanOrEqual(cap.next + vfio_info_cap_header.size);
        expect(cap.next).toBeGreaterThanOrEqual(at);
        at = cap.next;
      }
    }
  });

  it('map: map/unmap, UNMAP_FLAG_ALL needs iova and size 0, then page by page in a shuffled order', () => {
    expect(map(MOCK_APERTURE_START, buffer, BUFFER_SIZE)).toBe(0);
    const simple = unmap(MOCK_APERTURE_START, BUFFER_SIZE);
    expect([simple.rc, simple.out.size]).toEqual([0, BUFFER_SIZE]);

    expect(map(MOCK_APERTURE_START, buffer, BUFFER_SIZE)).toBe(0);
    expect(unmap(MOCK_APERTURE_START, BUFFER_SIZE, VFIO_DMA_UNMAP_FLAG_ALL).rc).toBe(-Errno.EINVAL);
    const all = unmap(0n, 0n, VFIO_DMA_UNMAP_FLAG_ALL);
    expect([all.rc, all.out.size]).toEqual([0, BUFFER_SIZE]);

    const page = BigInt(PAGE_SIZE);
    const pages = Array.from({ length: Number(BUFFER_SIZE / page) }, (_, i) => BigInt(i));
    for (const i of pages) expect(map(MOCK_APERTURE_START + i * page, buffer + i * page, page)).toBe(0);
    // A fixed permutation stands for the upstream rand() shuffle.
    for (const i of [5n, 2n, 7n, 0n, 3n, 6n, 1n, 4n]) expect(unmap(MOCK_APERTURE_START + i * page, page).rc).toBe(0);
  });

  it('huge_map: type1 cuts a mapping into pieces, type1v2 answers ENOENT (4 MiB of small pages: no hugetlbfs)', () => {
    const size = 4n << 20n;
    const buf = user.proc.mmap(size, { prot: PROT_READ | PROT_WRITE, flags: MAP_SHARED | MAP_ANONYMOUS });
    expect(map(MOCK_APERTURE_START, buf, size)).toBe(0);
    const piece = size / 16n;
    for (const i of [3n, 11n, 0n, 15n, 7n, 8n, 1n, 14n, 2n, 13n, 4n, 12n, 5n, 10n, 6n, 9n]) {
      const { rc } = unmap(MOCK_APERTURE_START + i * piece, piece);
      expect(rc).toBe(version === VFIO_TYPE1_IOMMU ? 0 : -Errno.ENOENT);
    }
  });

  it('lets the device DMA through a mapping made on the compat container', () => {
    expect(map(MOCK_APERTURE_START, buffer, BUFFER_SIZE)).toBe(0);
    const name = user.string(NIC_BDF);
    const deviceFd = user.proc.ioctl(groupFd, VFIO_GROUP_GET_DEVICE_FD, name);
    expect(deviceFd).toBeGreaterThan(0);
    const fn = host.platform.get(NIC_BDF);
    const command = new Uint8Array([PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, 0]);
    expect(user.proc.pwrite(deviceFd, command, vfioPciIndexToOffset(VFIO_PCI_CONFIG_REGION_INDEX) + BigInt(PCI_COMMAND))).toBe(2);
    host.dma.dmaWrite(fn, MOCK_APERTURE_START + 0x10n, new Uint8Array([1, 2, 3, 4]));
    expect([...user.read(buffer + 0x10n, 4)]).toEqual([1, 2, 3, 4]);
  });
});
